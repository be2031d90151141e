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

    private mutating func handleKey(_ key: Key) -> [ConsoleEffect] {
        if busy != nil {
            if key == .escape, let request = pending {
                pending = nil
                busy = nil
                setMessage("cancelled")
                return [.cancel(request: request)]
            }
            if key == .control("c") || (key == .character("q") && mode == .browse) {
                // Quitting abandons the running query.
                let cancel = pending.map { [ConsoleEffect.cancel(request: $0)] } ?? []
                pending = nil
                busy = nil
                return cancel + quitKey()
            }
            return []
        }
        if isTooSmall {
            if key == .character("q") || key == .control("c") { return [.quit] }
            return []
        }
        switch mode {
        case .browse: return browseKey(key)
        case .help:
            mode = .browse
            return []
        case .failover(var view):
            return failoverKey(key, &view)
        case .confirmQuit(let previous):
            if key == .character("y") || key == .character("Y") {
                quit = true
                return [.quit]
            }
            mode = previous
            return []
        case .editCell(var edit):
            switch key {
            case .escape:
                mode = .browse
                setMessage("edit cancelled")
            case .enter:
                guard let grid else { return [] }
                let request = start("saving")
                return [.update(grid.shape, seen: edit.seen, changes: [edit.column: edit.field.value], request: request)]
            case .control("c"):
                return quitKey()
            default:
                if edit.field.handle(key) { mode = .editCell(edit) }
            }
            return []
        case .form(var form):
            return formKey(key, &form)
        case .confirmDelete(let confirmation):
            if key == .character("y") || key == .character("Y"), let grid {
                let request = start("deleting")
                return [.delete(grid.shape, seen: confirmation.seen, request: request)]
            }
            mode = .browse
            setMessage("delete cancelled")
            return []
        case .filter(var prompt):
            return filterKey(key, &prompt)
        case .conflict(let conflict):
            switch key {
            case .escape:
                mode = .browse
                setMessage("your change was discarded; the row shows its current values")
                if let current = conflict.current, let index = grid?.cursorRow, grid?.rows.indices.contains(index) == true {
                    grid?.rows[index] = current
                }
                return []
            case .enter, .character("e"):
                // Back to the editor with the user's text, now against the current row.
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
                return []
            case .control("c"):
                return quitKey()
            default:
                return []
            }
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

    private mutating func failoverKey(_ key: Key, _ view: inout FailoverView) -> [ConsoleEffect] {
        if var field = view.confirmation {
            switch key {
            case .escape:
                view.confirmation = nil
                setMessage("promotion cancelled")
            case .enter:
                let target = view.candidates.indices.contains(view.selected) ? view.candidates[view.selected].node : nil
                guard let target, field.value == target else {
                    setMessage("the name does not match \(target ?? "a candidate"): nothing promoted", error: true)
                    view.confirmation = nil
                    mode = .failover(view)
                    return []
                }
                view.confirmation = nil
                mode = .failover(view)
                let request = start("promoting \(target)")
                return [.promote(node: target, request: request)]
            default:
                _ = field.handle(key)
                view.confirmation = field
            }
            mode = .failover(view)
            return []
        }
        switch key {
        case .escape, .character("q"):
            mode = .browse
            return []
        case .character("r"):
            return rerunChecks()
        case .up, .character("k"):
            view.selected = max(view.selected - 1, 0)
        case .down, .character("j"):
            view.selected = min(view.selected + 1, max(view.candidates.count - 1, 0))
        case .character("P"):
            guard view.candidates.indices.contains(view.selected) else {
                setMessage("no replica to promote", error: true)
                return []
            }
            view.confirmation = TextField("")
            setMessage("type \(view.candidates[view.selected].node) and Enter to promote it; Esc cancels")
        default:
            break
        }
        mode = .failover(view)
        return []
    }

    private mutating func quitKey() -> [ConsoleEffect] {
        if mode.hasUnsavedInput {
            mode = .confirmQuit(previous: mode)
            return []
        }
        quit = true
        return [.quit]
    }

    private mutating func browseKey(_ key: Key) -> [ConsoleEffect] {
        switch key {
        case .character("q"), .control("c"):
            quit = true
            return [.quit]
        case .character("?"):
            mode = .help
            return []
        case .character("F"):
            mode = .failover(FailoverView())
            return rerunChecks()
        case .tab:
            focus = Focus.allCases[(Focus.allCases.firstIndex(of: focus)! + 1) % Focus.allCases.count]
            return []
        case .backTab:
            focus = Focus.allCases[(Focus.allCases.firstIndex(of: focus)! + Focus.allCases.count - 1) % Focus.allCases.count]
            return []
        default:
            break
        }
        switch focus {
        case .tables: return tablesKey(key)
        case .grid: return gridKey(key)
        case .pane:
            if key == .character("r") { return refresh() }
            return []
        }
    }

    private mutating func tablesKey(_ key: Key) -> [ConsoleEffect] {
        switch key {
        case .up, .character("k"): tableCursor = max(tableCursor - 1, 0)
        case .down, .character("j"): tableCursor = min(tableCursor + 1, max(tables.count - 1, 0))
        case .home, .character("g"): tableCursor = 0
        case .end, .character("G"): tableCursor = max(tables.count - 1, 0)
        case .pageUp: tableCursor = max(tableCursor - 10, 0)
        case .pageDown: tableCursor = min(tableCursor + 10, max(tables.count - 1, 0))
        case .enter, .right, .character("l"):
            guard tables.indices.contains(tableCursor) else { return [] }
            let request = start("opening \(tables[tableCursor].name)")
            return [.openTable(tables[tableCursor], request: request)]
        case .character("r"):
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

    private mutating func gridKey(_ key: Key) -> [ConsoleEffect] {
        guard var grid else {
            if key == .enter { focus = .tables }
            return []
        }
        let columnCount = grid.shape.columns.count
        setMessage(nil)
        switch key {
        case .up, .character("k"):
            if grid.cursorRow > 0 {
                grid.cursorRow -= 1
            } else if !grid.atStart, let first = grid.keys.first {
                self.grid = grid
                return [load(.before(first))]
            }
        case .down, .character("j"):
            if grid.cursorRow < grid.rows.count - 1 {
                grid.cursorRow += 1
            } else if !grid.atEnd, let last = grid.keys.last {
                self.grid = grid
                return [load(.after(last))]
            }
        case .pageDown, .control("f"):
            if !grid.atEnd, let last = grid.keys.last {
                self.grid = grid
                return [load(.after(last))]
            }
            grid.cursorRow = max(grid.rows.count - 1, 0)
        case .pageUp, .control("b"):
            if !grid.atStart, let first = grid.keys.first {
                self.grid = grid
                return [load(.before(first))]
            }
            grid.cursorRow = 0
        case .character("g"), .home:
            self.grid = grid
            return [load(.first)]
        case .character("G"), .end:
            self.grid = grid
            return [load(.last)]
        case .left, .character("h"):
            grid.cursorColumn = max(grid.cursorColumn - 1, 0)
        case .right, .character("l"):
            grid.cursorColumn = min(grid.cursorColumn + 1, max(columnCount - 1, 0))
        case .character("r"):
            self.grid = grid
            return [reloadCurrentPage()]
        case .character("s"):
            // ascending → descending → off
            if let sort = grid.sort, sort.column == grid.cursorColumn {
                grid.sort = sort.descending ? nil : Sort(column: sort.column, descending: true)
            } else {
                grid.sort = Sort(column: grid.cursorColumn, descending: false)
            }
            self.grid = grid
            return [load(.first)]
        case .character("/"):
            let existing = grid.filter
            mode = .filter(FilterPrompt(
                column: existing?.column ?? grid.cursorColumn, op: existing?.op ?? .equals, field: TextField(existing?.value ?? "")))
        case .enter:
            guard let row = grid.selectedRow else { break }
            guard grid.shape.hasPrimaryKey else {
                setMessage("\(grid.shape.table.qualifiedName) has no primary key: read-only", error: true)
                break
            }
            mode = .editCell(CellEdit(row: grid.cursorRow, column: grid.cursorColumn, field: TextField(row[grid.cursorColumn]), seen: row))
        case .character("e"):
            guard let row = grid.selectedRow else { break }
            guard grid.shape.hasPrimaryKey else {
                setMessage("\(grid.shape.table.qualifiedName) has no primary key: read-only", error: true)
                break
            }
            mode = .form(RowForm(kind: .edit(seen: row), fields: row.map { TextField($0) }))
        case .character("a"):
            guard grid.shape.hasPrimaryKey else {
                setMessage("\(grid.shape.table.qualifiedName) has no primary key: read-only", error: true)
                break
            }
            mode = .form(RowForm(kind: .add, fields: grid.shape.columns.map { _ in TextField("") }))
        case .character("d"):
            guard let row = grid.selectedRow else { break }
            guard grid.shape.hasPrimaryKey else {
                setMessage("\(grid.shape.table.qualifiedName) has no primary key: read-only", error: true)
                break
            }
            let statement = SQLBuilder.delete(grid.shape, seen: row)
            mode = .confirmDelete(DeleteConfirmation(
                seen: row, sql: statement.sql, key: SQLBuilder.describeKey(grid.shape, row: row)))
        default:
            break
        }
        self.grid = grid
        return []
    }

    private mutating func formKey(_ key: Key, _ form: inout RowForm) -> [ConsoleEffect] {
        guard let grid else { return [] }
        switch key {
        case .escape:
            mode = .browse
            setMessage("form cancelled")
            return []
        case .control("c"):
            return quitKey()
        case .tab, .down, .enter:
            if key == .enter && form.cursor == form.fields.count - 1 { return submit(form, grid) }
            form.cursor = min(form.cursor + 1, form.fields.count - 1)
        case .backTab, .up:
            form.cursor = max(form.cursor - 1, 0)
        case .control("s"), .function(2):
            return submit(form, grid)
        default:
            if form.fields[form.cursor].handle(key) { form.touched.insert(form.cursor) }
        }
        mode = .form(form)
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

    private mutating func filterKey(_ key: Key, _ prompt: inout FilterPrompt) -> [ConsoleEffect] {
        guard var grid else { return [] }
        let count = grid.shape.columns.count
        switch key {
        case .escape:
            mode = .browse
            return []
        case .up: prompt.column = (prompt.column + count - 1) % count
        case .down: prompt.column = (prompt.column + 1) % count
        case .tab:
            let all = FilterOperator.allCases
            prompt.op = all[(all.firstIndex(of: prompt.op)! + 1) % all.count]
        case .backTab:
            let all = FilterOperator.allCases
            prompt.op = all[(all.firstIndex(of: prompt.op)! + all.count - 1) % all.count]
        case .enter:
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
        default:
            _ = prompt.field.handle(key)
        }
        mode = .filter(prompt)
        return []
    }
}
