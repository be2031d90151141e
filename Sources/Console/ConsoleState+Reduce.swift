import Switchyard

extension ConsoleState {
    /// The console's whole behaviour: state + event → new state + effects. Pure.
    public mutating func reduce(_ event: ConsoleEvent) -> [ConsoleEffect] {
        switch event {
        case .key(let key):
            return handleKey(key)
        case .resize(let width, let height):
            self.width = width
            self.height = height
            return []
        case .start:
            let request = start("loading tables")
            return [.loadTables(request: request)]
        case .tick:
            if busy != nil { spinner += 1 }
            return []
        case .tablesLoaded(let tables, let request):
            guard finish(request) else { return [] }
            self.tables = tables
            tableCursor = min(tableCursor, max(tables.count - 1, 0))
            if tables.isEmpty { setMessage("no tables in this database") }
            if let name = openOnLoad {
                openOnLoad = nil
                return reduce(.openNamed(name))
            }
            return []
        case .tableOpened(let shape, let request):
            guard finish(request) else { return [] }
            grid = Grid(shape: shape)
            if let index = tables.firstIndex(of: shape.table) { tableCursor = index }
            focus = .grid
            mode = .browse
            if !shape.hasPrimaryKey { setMessage("\(shape.table.qualifiedName) has no primary key: read-only") }
            return [load(.first)]
        case .pageLoaded(let rows, let keys, let position, let request):
            guard finish(request), var grid else { return [] }
            let limit = pageSize
            switch position {
            case .first:
                grid.atStart = true
                grid.atEnd = rows.count < limit
                grid.cursorRow = 0
            case .last:
                grid.atEnd = true
                grid.atStart = rows.count < limit
                grid.cursorRow = max(rows.count - 1, 0)
            case .after:
                if rows.isEmpty {
                    grid.atEnd = true
                    self.grid = grid
                    setMessage("end of table")
                    return []
                }
                grid.atStart = false
                grid.atEnd = rows.count < limit
                grid.cursorRow = 0
            case .before:
                if rows.count < limit {
                    self.grid = grid
                    return [load(.first)]
                }
                grid.atStart = false
                grid.atEnd = false
                grid.cursorRow = rows.count - 1
            case .from:
                grid.atEnd = rows.count < limit
                grid.cursorRow = min(grid.cursorRow, max(rows.count - 1, 0))
            }
            grid.rows = rows
            grid.keys = keys
            grid.loaded = true
            self.grid = grid
            return []
        case .saved(let row, let request):
            guard finish(request) else { return [] }
            return afterSave(row)
        case .conflict(let current, let request):
            guard finish(request) else { return [] }
            let mine: [Int: String?]
            switch mode {
            case .editCell(let edit): mine = [edit.column: edit.field.value]
            case .form(let form): mine = Dictionary(uniqueKeysWithValues: form.touched.map { ($0, form.fields[$0].value) })
            default: mine = [:]
            }
            mode = .conflict(Conflict(mine: mine, current: current, resume: mode))
            setMessage(
                current == nil ? "conflict: the row was deleted by someone else; nothing was written"
                    : "conflict: the row changed since you loaded it; nothing was written", error: true)
            return []
        case .failed(let message, let request):
            guard finish(request) else { return [] }
            if case .confirmDelete = mode { mode = .browse }
            setMessage(message, error: true)
            return []
        case .checkProgress(let result, let request):
            guard pending == request, case .failover(var view) = mode else { return [] }
            view.results.append(result)
            mode = .failover(view)
            return []
        case .checksDone(let report, let request):
            guard finish(request), case .failover(var view) = mode else { return [] }
            view.results = report.results
            view.candidates = report.candidates
            view.summary = report.summaryLine
            view.selected = min(view.selected, max(report.candidates.count - 1, 0))
            mode = .failover(view)
            return []
        case .promoted(let node, let request):
            guard finish(request) else { return [] }
            setMessage("\(node) promoted: it is the primary now; writes follow it within two monitor intervals")
            return rerunChecks()
        case .openNamed(let name):
            guard let index = tables.firstIndex(where: { $0.qualifiedName == name || $0.name == name }) else {
                setMessage("no table \(name)", error: true)
                return []
            }
            tableCursor = index
            let request = start("opening \(tables[index].name)")
            return [.openTable(tables[index], request: request)]
        case .topology(let topology, let history):
            nodes = topology.nodes.map { NodeSummary(state: $0, lagHistory: history[$0.name] ?? []) }
            primaryName = topology.primary?.name
            splitBrain = topology.primaries.count > 1 ? topology.primaries.map(\.name) : []
            return []
        case .log(let entries):
            log = entries
            return []
        case .warning(let text):
            setMessage(text, error: true)
            return []
        }
    }

    // MARK: Requests

    /// Marks `request` done; false when it is not the one we wait for (cancelled, stale).
    private mutating func finish(_ request: Int) -> Bool {
        guard pending == request else { return false }
        pending = nil
        busy = nil
        return true
    }

    private mutating func start(_ label: String) -> Int {
        let request = nextRequest
        nextRequest += 1
        pending = request
        busy = label
        spinner = 0
        return request
    }

    mutating func setMessage(_ text: String?, error: Bool = false) {
        message = text
        messageIsError = error
    }

    private mutating func load(_ position: PagePosition) -> ConsoleEffect {
        let grid = grid!
        let request = start("loading \(grid.shape.table.name)")
        return .loadPage(grid.shape, position, sort: grid.sort, filter: grid.filter, limit: pageSize, request: request)
    }

    private mutating func afterSave(_ row: [String?]?) -> [ConsoleEffect] {
        switch mode {
        case .editCell(let edit):
            if let row, grid?.rows.indices.contains(edit.row) == true { grid?.rows[edit.row] = row }
            mode = .browse
            setMessage("saved \(grid?.shape.columns[edit.column].name ?? "")")
            return []
        case .form(let form):
            mode = .browse
            if case .edit = form.kind, let row, let index = grid?.cursorRow, grid?.rows.indices.contains(index) == true {
                grid?.rows[index] = row
                setMessage("saved row")
                return []
            }
            setMessage("row added")
            return [load(.last)]
        case .confirmDelete:
            mode = .browse
            setMessage("row deleted")
            return [reloadCurrentPage()]
        default:
            return []
        }
    }

    private mutating func reloadCurrentPage() -> ConsoleEffect {
        if let first = grid?.keys.first { return load(.from(first)) }
        return load(.first)
    }

    // MARK: Keys

    /// Looks the key up in the keymap for the current scopes and hands the command to the
    /// current mode.
    private mutating func handleKey(_ key: Key) -> [ConsoleEffect] {
        let scopes = self.scopes
        let command: Command
        if let binding = Keymap.binding(for: key, in: scopes) {
            if let reason = binding.disabledReason?(self) {
                setMessage(reason, error: true)
                return []
            }
            command = binding.command
        } else if scopes.contains(.textField) {
            command = .type
        } else {
            return []
        }
        if busy != nil { return busyCommand(command) }
        if isTooSmall { return command == .quit ? quitNow() : [] }
        if command == .help, !scopes.contains(.help) {
            mode = .help(HelpView(previous: mode))
            return []
        }
        switch mode {
        case .browse:
            return browseCommand(command)
        case .help(var view):
            let lines = Keymap.helpContent(for: view.previous, state: self).count
            if view.handle(command, lineCount: lines, visible: max(height - 6, 1)) {
                mode = .help(view)
            } else {
                mode = view.previous
            }
            return []
        case .failover(var view):
            let outcome = view.handle(command, key: key)
            mode = .failover(view)
            return failoverOutcome(outcome)
        case .confirmQuit(let previous):
            if command == .confirm { return quitNow() }
            mode = previous
            return []
        case .editCell(var edit):
            let outcome = edit.handle(command, key: key)
            mode = .editCell(edit)
            switch outcome {
            case .stay: return []
            case .quit: return quitKey()
            case .cancel:
                mode = .browse
                setMessage("edit cancelled")
                return []
            case .save:
                guard let grid else { return [] }
                let request = start("saving")
                return [.update(grid.shape, seen: edit.seen, changes: [edit.column: edit.field.value], request: request)]
            }
        case .form(var form):
            let outcome = form.handle(command, key: key)
            mode = .form(form)
            switch outcome {
            case .stay: return []
            case .quit: return quitKey()
            case .cancel:
                mode = .browse
                setMessage("form cancelled")
                return []
            case .save:
                guard let grid else { return [] }
                return submit(form, grid)
            }
        case .confirmDelete(let confirmation):
            if command == .confirm, let grid {
                let request = start("deleting")
                return [.delete(grid.shape, seen: confirmation.seen, request: request)]
            }
            mode = .browse
            setMessage("delete cancelled")
            return []
        case .filter(var prompt):
            guard var grid else { return [] }
            let outcome = prompt.handle(command, key: key, columnCount: grid.shape.columns.count)
            mode = .filter(prompt)
            switch outcome {
            case .stay: return []
            case .cancel:
                mode = .browse
                return []
            case .apply:
                mode = .browse
                let value = prompt.field.value ?? ""
                if value.isEmpty && prompt.op != .isNull {
                    grid.filter = nil
                    setMessage("filter cleared")
                } else {
                    grid.filter = Filter(column: prompt.column, op: prompt.op, value: value)
                }
                self.grid = grid
                return [load(.first)]
            }
        case .conflict(let conflict):
            switch command {
            case .cancel: discard(conflict)
            case .editAgain: editAgain(conflict)
            case .quit: return quitKey()
            default: break
            }
            return []
        }
    }

    /// Keys while a query runs: Esc cancels it on the server, quitting abandons it.
    private mutating func busyCommand(_ command: Command) -> [ConsoleEffect] {
        guard let request = pending else { return [] }
        switch command {
        case .cancelQuery:
            pending = nil
            busy = nil
            setMessage("cancelled")
            return [.cancel(request: request)]
        case .quit:
            pending = nil
            busy = nil
            return [.cancel(request: request)] + quitKey()
        default:
            return []
        }
    }

    private mutating func discard(_ conflict: Conflict) {
        mode = .browse
        setMessage("your change was discarded; the row shows its current values")
        if let current = conflict.current, let index = grid?.cursorRow, grid?.rows.indices.contains(index) == true {
            grid?.rows[index] = current
        }
    }

    /// Back to the editor with the user's text, now against the current row.
    private mutating func editAgain(_ conflict: Conflict) {
        var resume = conflict.resume
        if let current = conflict.current {
            switch resume {
            case .editCell(var edit):
                edit.seen = current
                resume = .editCell(edit)
            case .form(var form):
                if case .edit = form.kind { form.kind = .edit(seen: current) }
                resume = .form(form)
            default: break
            }
            if let index = grid?.cursorRow, grid?.rows.indices.contains(index) == true { grid?.rows[index] = current }
        }
        mode = resume
        setMessage("your input is kept; Enter saves it over the current row")
    }

    private mutating func failoverOutcome(_ outcome: FailoverView.Outcome) -> [ConsoleEffect] {
        switch outcome {
        case .stay: return []
        case .close:
            mode = .browse
            return []
        case .rerun: return rerunChecks()
        case .message(let text, let error):
            setMessage(text, error: error)
            return []
        case .promote(let target):
            let request = start("promoting \(target)")
            return [.promote(node: target, request: request)]
        }
    }

    private mutating func rerunChecks() -> [ConsoleEffect] {
        if case .failover(var view) = mode {
            view.results = []
            view.summary = nil
            view.confirmation = nil
            mode = .failover(view)
        }
        let request = start("checking failover readiness")
        return [.runChecks(request: request)]
    }

    private mutating func quitNow() -> [ConsoleEffect] {
        quit = true
        return [.quit]
    }

    /// Quits, or asks first when an edit would be lost.
    private mutating func quitKey() -> [ConsoleEffect] {
        if mode.hasUnsavedInput {
            mode = .confirmQuit(previous: mode)
            return []
        }
        return quitNow()
    }

    private mutating func browseCommand(_ command: Command) -> [ConsoleEffect] {
        switch command {
        case .quit: return quitNow()
        case .failover:
            mode = .failover(FailoverView())
            return rerunChecks()
        case .focusNext:
            focus = Focus.allCases[(Focus.allCases.firstIndex(of: focus)! + 1) % Focus.allCases.count]
            return []
        case .focusPrevious:
            focus = Focus.allCases[(Focus.allCases.firstIndex(of: focus)! + Focus.allCases.count - 1) % Focus.allCases.count]
            return []
        default:
            break
        }
        switch focus {
        case .tables: return tablesCommand(command)
        case .grid: return gridCommand(command)
        case .pane: return command == .refresh ? refresh() : []
        }
    }

    private mutating func tablesCommand(_ command: Command) -> [ConsoleEffect] {
        let last = max(tables.count - 1, 0)
        switch command {
        case .up: tableCursor = max(tableCursor - 1, 0)
        case .down: tableCursor = min(tableCursor + 1, last)
        case .first: tableCursor = 0
        case .last: tableCursor = last
        case .pageUp: tableCursor = max(tableCursor - 10, 0)
        case .pageDown: tableCursor = min(tableCursor + 10, last)
        case .open:
            guard tables.indices.contains(tableCursor) else { return [] }
            let request = start("opening \(tables[tableCursor].name)")
            return [.openTable(tables[tableCursor], request: request)]
        case .reloadTables:
            let request = start("loading tables")
            return [.loadTables(request: request)]
        default: break
        }
        return []
    }

    private mutating func refresh() -> [ConsoleEffect] {
        guard grid != nil else {
            let request = start("loading tables")
            return [.loadTables(request: request)]
        }
        return [reloadCurrentPage()]
    }

    private mutating func gridCommand(_ command: Command) -> [ConsoleEffect] {
        guard var grid else {
            if command == .editCell { focus = .tables }
            return []
        }
        let columnCount = grid.shape.columns.count
        setMessage(nil)
        switch command {
        case .up:
            if grid.cursorRow > 0 {
                grid.cursorRow -= 1
            } else if !grid.atStart, let first = grid.keys.first {
                return [load(.before(first))]
            }
        case .down:
            if grid.cursorRow < grid.rows.count - 1 {
                grid.cursorRow += 1
            } else if !grid.atEnd, let last = grid.keys.last {
                return [load(.after(last))]
            }
        case .pageDown:
            if !grid.atEnd, let last = grid.keys.last { return [load(.after(last))] }
            grid.cursorRow = max(grid.rows.count - 1, 0)
        case .pageUp:
            if !grid.atStart, let first = grid.keys.first { return [load(.before(first))] }
            grid.cursorRow = 0
        case .first: return [load(.first)]
        case .last: return [load(.last)]
        case .left: grid.cursorColumn = max(grid.cursorColumn - 1, 0)
        case .right: grid.cursorColumn = min(grid.cursorColumn + 1, max(columnCount - 1, 0))
        case .refresh: return [reloadCurrentPage()]
        case .sort:
            // ascending → descending → off
            if let sort = grid.sort, sort.column == grid.cursorColumn {
                grid.sort = sort.descending ? nil : Sort(column: sort.column, descending: true)
            } else {
                grid.sort = Sort(column: grid.cursorColumn, descending: false)
            }
            self.grid = grid
            return [load(.first)]
        case .filter:
            let existing = grid.filter
            mode = .filter(FilterPrompt(
                column: existing?.column ?? grid.cursorColumn, op: existing?.op ?? .equals, field: TextField(existing?.value ?? "")))
        case .editCell:
            guard let row = grid.selectedRow, row.indices.contains(grid.cursorColumn) else { break }
            mode = .editCell(CellEdit(row: grid.cursorRow, column: grid.cursorColumn, field: TextField(row[grid.cursorColumn]), seen: row))
        case .editRow:
            guard let row = grid.selectedRow else { break }
            mode = .form(RowForm(kind: .edit(seen: row), fields: row.map { TextField($0) }))
        case .addRow:
            mode = .form(RowForm(kind: .add, fields: grid.shape.columns.map { _ in TextField("") }))
        case .deleteRow:
            guard let row = grid.selectedRow else { break }
            let statement = SQLBuilder.delete(grid.shape, seen: row)
            mode = .confirmDelete(DeleteConfirmation(
                seen: row, sql: statement.sql, key: SQLBuilder.describeKey(grid.shape, row: row)))
        default:
            break
        }
        self.grid = grid
        return []
    }

    private mutating func submit(_ form: RowForm, _ grid: Grid) -> [ConsoleEffect] {
        mode = .form(form)
        let values = Dictionary(uniqueKeysWithValues: form.touched.sorted().map { ($0, form.fields[$0].value) })
        switch form.kind {
        case .add:
            let request = start("inserting")
            return [.insert(grid.shape, values: values, request: request)]
        case .edit(let seen):
            let changed = values.filter { $0.value != seen[$0.key] }
            guard !changed.isEmpty else {
                mode = .browse
                setMessage("nothing changed")
                return []
            }
            let request = start("saving")
            return [.update(grid.shape, seen: seen, changes: changed, request: request)]
        }
    }
}
