@testable import Console
import Foundation
import PropertyBased
@testable import Switchyard
import Testing

/// The SQL prompt: how statements are classified, how the console's state machine runs
/// them, and where their history is kept.
@Suite struct SQLPromptStateTests {
    @Test func statementsAreClassifiedAndTheirTargetFound() {
        #expect(PromptStatement("  select 1 ;; ").text == "select 1")
        #expect(PromptStatement("select 1").kind == .query)
        #expect(PromptStatement("WITH x AS (select 1) select * from x").kind == .query)
        #expect(PromptStatement("explain select 1").kind == .explain(analyze: false))
        #expect(PromptStatement("EXPLAIN ANALYZE delete from t").kind == .explain(analyze: true))
        #expect(PromptStatement("explain (analyze, buffers) select 1").kind == .explain(analyze: true))
        #expect(PromptStatement("explain (analyze false) select 1").kind == .explain(analyze: false))
        #expect(PromptStatement("begin").kind == .transactionControl)
        #expect(PromptStatement("commit").kind == .transactionControl)
        #expect(PromptStatement("select 1; select 2").multiple)
        #expect(!PromptStatement("select ';'").multiple, "a semicolon in a literal is not a second statement")
        #expect(PromptStatement("   ").kind == .empty)

        let update = PromptStatement("update only public.\"Order\" as o set x = 1 where o.id = 2").target
        #expect(update == PromptStatement.Target(action: .update, table: "public.\"Order\"", reference: "o"))
        #expect(PromptStatement("delete from items where id = 1").target == .init(action: .delete, table: "items", reference: "items"))
        #expect(PromptStatement("delete from s.items i using t where i.id = t.id").target == .init(action: .delete, table: "s.items", reference: "i"))
        #expect(PromptStatement("insert into s.t (a) values (1)").target == .init(action: .insert, table: "s.t", reference: "t"))
        #expect(PromptStatement("update t set a = 1 returning *").target == nil, "RETURNING rows are shown as they are")
        #expect(PromptStatement("create table t (a int)").target == nil)
    }

    @Test func anyTextIsClassifiedWithoutCrashing() async {
        await propertyCheck(count: 2000, input: NastyText.string, NastyText.string) { head, tail in
            for text in ["update " + head + " set " + tail, "delete from " + head, "insert into " + head + tail, "explain (" + head, head + ";" + tail] {
                let statement = PromptStatement(text)
                if let target = statement.target { #expect(!target.table.isEmpty && !target.reference.isEmpty) }
                #expect(statement.text.count <= text.count)
            }
        }
    }

    /// A console with the prompt open and `text` typed.
    func typed(_ text: String, history: [String] = []) -> ConsoleState {
        var state = ConsoleState(width: 120, height: 40, clusterName: "c")
        state.promptHistory = history
        _ = state.reduce(.key(.character(":")))
        for character in text { _ = state.reduce(.key(.character(character))) }
        return state
    }

    var prompt: (ConsoleState) -> SQLPrompt? {
        { if case .sqlPrompt(let prompt) = $0.mode { prompt } else { nil } }
    }

    @Test func aWriteIsHeldUntilYesAndRolledBackOnNo() {
        var state = typed("update t set a = 1")
        let effects = state.reduce(.key(.enter))
        #expect(effects.first == .rememberStatement("update t set a = 1"))
        guard case .runStatement(let statement, _, let request) = effects.last else { Issue.record("\(effects)"); return }
        #expect(statement.text == "update t set a = 1" && state.busy != nil)
        #expect(state.promptHistory == ["update t set a = 1"])
        let write = PromptWrite(statement: statement.text, summary: "UPDATE 2", rows: 2, sample: [], columns: ["a"], note: nil, expires: Date())
        _ = state.reduce(.promptHeld(write, request: request))
        #expect(prompt(state)?.transactionOpen == true)
        #expect(Renderer.render(state).text.contains("TRANSACTION OPEN — NOT COMMITTED"))
        // Quitting now asks: the write would roll back.
        _ = state.reduce(.key(.control("c")))
        guard case .confirmQuit = state.mode else { Issue.record("quit without asking: \(state.mode)"); return }
        _ = state.reduce(.key(.character("x")))
        // y commits; the answer returns to the prompt.
        guard case .promptCommand(.commit, let commit) = state.reduce(.key(.character("y"))).first else { Issue.record("no commit"); return }
        #expect(state.pendingWrites, "a commit is waited for, also after Esc")
        _ = state.reduce(.promptDone("committed: UPDATE 2", request: commit))
        #expect(prompt(state)?.phase == .typing && state.message == "committed: UPDATE 2")

        // n rolls back.
        guard case .runStatement(_, _, let second) = state.reduce(.key(.enter)).last else { Issue.record("not run again"); return }
        _ = state.reduce(.promptHeld(write, request: second))
        guard case .promptCommand(.rollback, let rollback) = state.reduce(.key(.character("n"))).first else { Issue.record("no rollback"); return }
        _ = state.reduce(.promptDone("rolled back: UPDATE 2 was not committed", request: rollback))
        #expect(prompt(state)?.phase == .typing && prompt(state)?.field.value == "update t set a = 1", "the statement stays to edit")
        #expect(state.promptHistory == ["update t set a = 1"], "a repeat is not kept twice")
    }

    @Test func aHeldWriteThatTimesOutIsSaidAndClosed() {
        var state = typed("delete from t")
        guard case .runStatement(_, _, let request) = state.reduce(.key(.enter)).last else { return }
        _ = state.reduce(.promptHeld(PromptWrite(statement: "delete from t", summary: "DELETE 1", rows: 1, sample: [], columns: [], note: nil, expires: Date()), request: request))
        _ = state.reduce(.promptEnded("rolled back by itself: DELETE 1 waited 2 min for y"))
        #expect(prompt(state)?.phase == .typing)
        #expect(state.messageIsError && state.message?.contains("rolled back by itself") == true)
    }

    @Test func refusedStatementsKeepTheTextAndAnalyzeAsksFirst() {
        for text in ["begin", "select 1; select 2", "   "] {
            var state = typed(text)
            #expect(state.reduce(.key(.enter)).isEmpty, "\(text) ran")
            #expect(state.messageIsError && prompt(state)?.field.value == text)
        }
        var state = typed("explain analyze delete from t")
        #expect(state.reduce(.key(.enter)).isEmpty)
        guard case .confirmAnalyze = prompt(state)?.phase else { Issue.record("not asked"); return }
        #expect(state.reduce(.key(.character("n"))).isEmpty)
        #expect(prompt(state)?.phase == .typing)
        _ = state.reduce(.key(.enter))
        let effects = state.reduce(.key(.character("y")))
        #expect(effects.contains { if case .runStatement = $0 { true } else { false } })
    }

    @Test func historyIsRecalledWithUpAndDownAndTheDraftComesBack() {
        var state = typed("draft", history: ["one", "two"])
        _ = state.reduce(.key(.up))
        #expect(prompt(state)?.field.value == "two")
        _ = state.reduce(.key(.up))
        _ = state.reduce(.key(.up))
        #expect(prompt(state)?.field.value == "one")
        _ = state.reduce(.key(.down))
        _ = state.reduce(.key(.down))
        #expect(prompt(state)?.field.value == "draft")
        // Esc closes; the next : brings the text back.
        _ = state.reduce(.key(.escape))
        #expect(state.mode == .browse)
        _ = state.reduce(.key(.character(":")))
        #expect(prompt(state)?.field.value == "draft")
    }

    @Test func rowsArePagedThroughTheOpenTransaction() {
        var state = typed("select g from generate_series(1, 100) g")
        guard case .runStatement(_, let size, let request) = state.reduce(.key(.enter)).last else { return }
        #expect(size == state.promptPageSize)
        let page = PromptRows(columns: ["g"], rows: (1...size).map { [String($0)] }, offset: 0, atEnd: false)
        _ = state.reduce(.promptRows(page, request: request))
        for _ in 1..<size { #expect(state.reduce(.key(.down)).isEmpty) }
        guard case .promptCommand(.page(let offset, let count), let next) = state.reduce(.key(.down)).first else { Issue.record("no next page"); return }
        #expect(offset == size && count == size)
        _ = state.reduce(.promptRows(PromptRows(columns: ["g"], rows: [["\(size + 1)"]], offset: size, atEnd: true), request: next))
        #expect(prompt(state)?.cursorRow == 0)
        #expect(Renderer.render(state).text.contains("TRANSACTION OPEN (read)"))
        // Esc leaves the rows and ends their transaction.
        #expect(state.reduce(.key(.escape)) == [.endPrompt])
        #expect(prompt(state)?.phase == .typing)
    }

    @Test func randomKeysAndOutcomesKeepThePromptConsistent() async {
        let keys: [Key] = [.enter, .escape, .up, .down, .left, .right, .pageUp, .pageDown, .character("y"), .character("n"), .character("s"),
                           .character(":"), .character(";"), .character("q"), .backspace, .control("u"), .home]
        let step = Gen<Int>.int(in: 0..<(keys.count + 4))
        await propertyCheck(count: 300, input: step.array(of: 1...60), Gen.int(in: 0...30)) { steps, rows in
            var state = ConsoleState(width: 100, height: 30, clusterName: "c")
            state.promptHistory = ["select 1", "update t set a = 1"]
            for index in steps {
                var effects: [ConsoleEffect]
                if index < keys.count {
                    effects = state.reduce(.key(keys[index]))
                } else {
                    effects = state.reduce(.promptEnded(index % 2 == 0 ? "rolled back by itself" : ""))
                }
                for effect in effects {
                    switch effect {
                    case .runStatement(let statement, let size, let request):
                        if statement.kind == .query {
                            let page = PromptRows(columns: ["a"], rows: (0..<min(rows, size)).map { [String($0)] }, offset: 0, atEnd: rows <= size)
                            _ = state.reduce(.promptRows(page, request: request))
                        } else {
                            _ = state.reduce(.promptHeld(PromptWrite(statement: statement.text, summary: "X", rows: 1, sample: [], columns: [], note: nil, expires: Date()), request: request))
                        }
                    case .promptCommand(.page(let offset, let count), let request):
                        _ = state.reduce(.promptRows(PromptRows(columns: ["a"], rows: (0..<max(min(rows - offset, count), 0)).map { [String($0)] },
                                                                offset: offset, atEnd: offset + count >= rows), request: request))
                    case .promptCommand(_, let request):
                        _ = state.reduce(.promptDone("done", request: request))
                    default: break
                    }
                }
                if state.quit { break }
                if let prompt = prompt(state), case .rows(let page) = prompt.phase {
                    #expect(page.rows.isEmpty ? prompt.cursorRow == 0 : page.rows.indices.contains(prompt.cursorRow))
                }
                _ = Renderer.render(state)
            }
        }
    }

    @Test func theHistoryFileIsPrivateKeepsLinesAndItsLimit() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sy-history-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        var history = PromptHistory.standard(environment: ["XDG_STATE_HOME": folder.path, "HOME": "/nonexistent"])
        #expect(history.path == folder.path + "/switchyard/sql_history")
        #expect(PromptHistory.standard(environment: ["XDG_STATE_HOME": "relative", "HOME": "/h"]).path == "/h/.local/state/switchyard/sql_history")
        history.limit = 3
        try history.append("select 1")
        try history.append("select 'two\nlines'")
        try history.append("select 'two\nlines'")
        #expect(history.load() == ["select 1", "select 'two\nlines'"])
        try history.append("a")
        try history.append("b")
        #expect(history.load() == ["select 'two\nlines'", "a", "b"])
        let attributes = try FileManager.default.attributesOfItem(atPath: history.path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let directory = try FileManager.default.attributesOfItem(atPath: folder.path + "/switchyard")
        #expect((directory[.posixPermissions] as? Int) == 0o700)
        // A damaged line is skipped, not fatal.
        try Data("not json\n\"ok\"\n".utf8).write(to: URL(fileURLWithPath: history.path))
        #expect(history.load() == ["ok"])
    }
}
