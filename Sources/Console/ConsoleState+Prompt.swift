import Foundation
import Switchyard

// The SQL prompt (`:`): keys and outcomes. Statements run in the admin context on the
// primary; a query's rows and a write both keep their transaction open on the server
// (see ``DataService/runStatement``) until the user leaves the rows, or answers y or n.

extension ConsoleState {
    /// Rows of a prompt query a page shows: the body minus the prompt, info and header lines.
    public var promptPageSize: Int { max(height - 7, 1) }

    mutating func openPrompt() -> [ConsoleEffect] {
        mode = .sqlPrompt(SQLPrompt(promptDraft))
        return []
    }

    mutating func promptKey(_ command: Command, key: Key, _ prompt: SQLPrompt) -> [ConsoleEffect] {
        var prompt = prompt
        switch prompt.phase {
        case .typing:
            switch command {
            case .quit:
                return [.quit, .endPrompt]
            case .cancel:
                promptDraft = prompt.field.value ?? ""
                mode = .browse
                return []
            case .previous:
                guard !promptHistory.isEmpty else {
                    setMessage("no statements in the history yet")
                    return []
                }
                if let index = prompt.recalled {
                    prompt.recalled = max(index - 1, 0)
                } else {
                    prompt.draft = prompt.field.value ?? ""
                    prompt.recalled = promptHistory.count - 1
                }
                prompt.field = TextField(promptHistory[prompt.recalled!])
            case .next:
                guard let index = prompt.recalled else { return [] }
                if index + 1 < promptHistory.count {
                    prompt.recalled = index + 1
                    prompt.field = TextField(promptHistory[index + 1])
                } else {
                    prompt.recalled = nil
                    prompt.field = TextField(prompt.draft)
                }
            case .save:
                return runPrompt(prompt, confirmed: false)
            default:
                _ = prompt.field.handle(key)
            }
            mode = .sqlPrompt(prompt)
            return []
        case .confirmAnalyze:
            if command == .confirm { return runPrompt(prompt, confirmed: true) }
            prompt.phase = .typing
            mode = .sqlPrompt(prompt)
            setMessage("EXPLAIN ANALYZE not run")
            return []
        case .rows(let rows):
            return promptRowsKey(command, rows, prompt)
        case .text(_, let lines):
            switch command {
            case .quit: return [.quit]
            case .scrollUp: prompt.scroll = max(prompt.scroll - 1, 0)
            case .scrollDown: prompt.scroll = min(prompt.scroll + 1, max(lines.count - 1, 0))
            case .cancel: prompt.phase = .typing
            default: break
            }
            mode = .sqlPrompt(prompt)
            return []
        case .held(let write):
            switch command {
            case .quit:
                return quitKeyFromPrompt()
            case .scrollUp: prompt.scroll = max(prompt.scroll - 1, 0)
            case .scrollDown: prompt.scroll = min(prompt.scroll + 1, max(write.sample.count - 1, 0))
            case .confirm:
                mode = .sqlPrompt(prompt)
                let request = start("committing", writes: true)
                return [.promptCommand(.commit, request: request)]
            case .cancel:
                mode = .sqlPrompt(prompt)
                let request = start("rolling back")
                return [.promptCommand(.rollback, request: request)]
            default: break
            }
            mode = .sqlPrompt(prompt)
            return []
        }
    }

    private mutating func quitKeyFromPrompt() -> [ConsoleEffect] {
        mode = .confirmQuit(previous: mode)
        return []
    }

    /// A bulk action: its statement runs held in the prompt's transaction — the count and
    /// the rows before and after shown, y commits it with a history row for each row.
    mutating func runBulk(_ statement: Statement, label: String) -> [ConsoleEffect] {
        var prompt = SQLPrompt(promptDraft)
        prompt.statement = label
        prompt.bulk = true
        mode = .sqlPrompt(prompt)
        setMessage(nil)
        let request = start("working out \(label)")
        return [.runStatement(PromptStatement(statement.sql, parameters: statement.parameters, label: label), pageSize: promptPageSize, request: request)]
    }

    /// Runs the typed statement, or says why not (the text stays in the prompt).
    private mutating func runPrompt(_ prompt: SQLPrompt, confirmed: Bool) -> [ConsoleEffect] {
        var prompt = prompt
        let text = prompt.field.value ?? ""
        let statement = PromptStatement(text)
        if statement.kind == .empty {
            setMessage("type a statement first", error: true)
            prompt.phase = .typing
            mode = .sqlPrompt(prompt)
            return []
        }
        if let refusal = DataService.promptRefusal(statement, readOnly: readOnly) {
            setMessage(refusal, error: true)
            prompt.phase = .typing
            mode = .sqlPrompt(prompt)
            return []
        }
        if statement.kind == .explain(analyze: true), !confirmed {
            prompt.phase = .confirmAnalyze(statement)
            mode = .sqlPrompt(prompt)
            return []
        }
        var effects: [ConsoleEffect] = []
        if promptHistory.last != statement.text {
            promptHistory.append(statement.text)
            if promptHistory.count > Self.promptHistoryLimit { promptHistory.removeFirst(promptHistory.count - Self.promptHistoryLimit) }
            effects.append(.rememberStatement(statement.text))
        }
        prompt.recalled = nil
        prompt.phase = .typing
        prompt.statement = statement.text
        prompt.cursorRow = 0
        prompt.firstColumn = 0
        prompt.scroll = 0
        mode = .sqlPrompt(prompt)
        setMessage(nil)
        let request = start("running the statement")
        return effects + [.runStatement(statement, pageSize: promptPageSize, request: request)]
    }

    private mutating func promptRowsKey(_ command: Command, _ rows: PromptRows, _ prompt: SQLPrompt) -> [ConsoleEffect] {
        var prompt = prompt
        let size = promptPageSize
        func page(_ offset: Int, cursor: Int) -> [ConsoleEffect] {
            prompt.cursorRow = cursor
            mode = .sqlPrompt(prompt)
            let request = start("fetching rows")
            return [.promptCommand(.page(offset: max(offset, 0), count: size), request: request)]
        }
        switch command {
        case .quit:
            return [.quit, .endPrompt]
        case .cancel:
            prompt.phase = .typing
            mode = .sqlPrompt(prompt)
            setMessage("rows closed: the transaction ended")
            return [.endPrompt]
        case .up:
            if prompt.cursorRow > 0 {
                prompt.cursorRow -= 1
            } else if rows.offset > 0 {
                return page(rows.offset - size, cursor: size - 1)
            }
        case .down:
            if prompt.cursorRow + 1 < rows.rows.count {
                prompt.cursorRow += 1
            } else if !rows.atEnd {
                return page(rows.offset + rows.rows.count, cursor: 0)
            } else {
                setMessage("last row")
            }
        case .pageDown:
            if rows.atEnd {
                prompt.cursorRow = max(rows.rows.count - 1, 0)
                setMessage("last page")
            } else {
                return page(rows.offset + rows.rows.count, cursor: 0)
            }
        case .pageUp:
            if rows.offset > 0 { return page(rows.offset - size, cursor: 0) }
            prompt.cursorRow = 0
        case .first:
            if rows.offset > 0 { return page(0, cursor: 0) }
            prompt.cursorRow = 0
        case .left:
            prompt.firstColumn = max(prompt.firstColumn - 1, 0)
        case .right:
            prompt.firstColumn = min(prompt.firstColumn + 1, max(rows.columns.count - 1, 0))
        default:
            break
        }
        mode = .sqlPrompt(prompt)
        return []
    }

    /// The outcome of a prompt statement or command.
    mutating func promptEvent(_ event: ConsoleEvent) -> [ConsoleEffect] {
        switch event {
        case .promptRows(let rows, let request):
            guard finish(request), case .sqlPrompt(var prompt) = mode else { return [] }
            prompt.phase = .rows(rows)
            prompt.cursorRow = min(prompt.cursorRow, max(rows.rows.count - 1, 0))
            mode = .sqlPrompt(prompt)
            if rows.rows.isEmpty && rows.offset == 0 { setMessage("no rows") }
            return []
        case .promptText(let title, let lines, let request):
            guard finish(request), case .sqlPrompt(var prompt) = mode else { return [] }
            prompt.phase = .text(title: title, lines: lines)
            prompt.scroll = 0
            mode = .sqlPrompt(prompt)
            return []
        case .promptHeld(let write, let request):
            guard finish(request), case .sqlPrompt(var prompt) = mode else { return [] }
            prompt.phase = .held(write)
            prompt.scroll = 0
            mode = .sqlPrompt(prompt)
            setMessage("\(write.summary): not committed yet — y commits, n rolls back")
            return []
        case .promptDone(let text, let request):
            let cancelled = busy == "cancelling"
            guard finish(request) else { return [] }
            if case .sqlPrompt(var prompt) = mode {
                if case .text = prompt.phase {} else { prompt.phase = .typing }
                mode = .sqlPrompt(prompt)
                if prompt.bulk {
                    // Back to the rows; committed marks are spent.
                    mode = .browse
                    if text.hasPrefix("committed") { grid?.marks = Marks() }
                }
            }
            if !text.isEmpty { setMessage(cancelled ? "the commit was already under way — \(text)" : text, error: text.hasPrefix("rolled back by itself")) }
            // The grid behind shows what was committed.
            if text.hasPrefix("committed"), grid != nil { return [reloadCurrentPage()] }
            return []
        case .promptEnded(let text):
            guard !text.isEmpty else { return [] }
            if case .sqlPrompt(var prompt) = mode, prompt.transactionOpen, pending == nil {
                prompt.phase = .typing
                mode = .sqlPrompt(prompt)
            } else if case .confirmQuit(.sqlPrompt(var prompt)) = mode, prompt.transactionOpen {
                prompt.phase = .typing
                mode = .sqlPrompt(prompt)
            }
            setMessage(text, error: true)
            return []
        default:
            return []
        }
    }
}
