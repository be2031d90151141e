import Foundation
import Switchyard

extension ConsoleState {
    // MARK: Keys

    /// Looks the key up in the keymap for the current scopes and hands the command to the
    /// current mode.
    mutating func handleKey(_ key: Key) -> [ConsoleEffect] {
        if busy != nil, !pendingWrites {
            // Esc and quitting act now; any other key typed while a read runs waits and is
            // applied in order once the read is done (`s s` sorts twice, `G k k` ends two
            // rows up). While a write runs, keys still wait for nothing.
            if let binding = Keymap.binding(for: key, in: [.busy]) { return busyCommand(binding.command) }
            if queuedKeys.count < Self.keyQueueLimit { queuedKeys.append(key) }
            return []
        }
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
        case .sqlPrompt(let prompt):
            return promptKey(command, key: key, prompt)
        case .rowView(var view):
            guard var grid else { mode = .browse; return [] }
            switch command {
            case .up: view.column = grid.shownColumn(from: view.column, -1)
            case .down: view.column = grid.shownColumn(from: view.column, 1)
            case .cancel:
                mode = .browse
                return []
            case .editCell:
                mode = .browse
                grid.cursorRow = view.row
                grid.cursorColumn = view.column
                self.grid = grid
                return gridCommand(.editCell)
            default: break
            }
            mode = .rowView(view)
            return []
        case .clusterList(var selected):
            switch command {
            case .up: selected = max(selected - 1, 0)
            case .down: selected = min(selected + 1, max(clusterNames.count - 1, 0))
            case .cancel:
                mode = .browse
                return []
            case .open:
                mode = .browse
                guard clusterNames.indices.contains(selected), selected != 0 else { return [] }
                switchTo = clusterNames[selected]
                return quitNow()
            default: break
            }
            mode = .clusterList(selected: selected)
            return []
        case .copyRow(var prompt):
            switch command {
            case .cancel:
                mode = .browse
                setMessage("nothing copied")
                return []
            case .nextFormat:
                prompt.format = prompt.format.next
                mode = .copyRow(prompt)
                return []
            case .save:
                mode = .browse
                guard let grid, let row = grid.selectedRow else { return [] }
                let path = prompt.path.value.flatMap { $0.isEmpty ? nil : $0 }
                let request = start("copying the row")
                return [.copyRow(grid.shape, key: grid.shape.keyIndexes.map { row[$0] }, format: prompt.format, path: path, request: request)]
            default:
                _ = prompt.path.handle(key)
                mode = .copyRow(prompt)
                return []
            }
        case .tableSearch(var field):
            switch command {
            case .cancel:
                mode = .browse
                return []
            case .save:
                mode = .browse
                return tablesCommand(.open)
            default:
                _ = field.handle(key)
                mode = .tableSearch(field)
                let text = (field.value ?? "").lowercased()
                if !text.isEmpty {
                    if let found = tables.firstIndex(where: { $0.qualifiedName.lowercased().contains(text) }) {
                        tableCursor = found
                        setMessage(nil)
                    } else {
                        setMessage("no table name holds \"\(field.value ?? "")\"", error: true)
                    }
                }
                return []
            }
        case .confirmProtected(let write):
            return protectedKey(command, key: key, write)
        case .bulkSet(var prompt):
            switch command {
            case .cancel:
                mode = .browse
                setMessage("nothing set")
                return []
            case .save:
                guard let grid, grid.shape.columns.indices.contains(prompt.column) else { mode = .browse; return [] }
                let column = grid.shape.columns[prompt.column]
                let statement = SQLBuilder.bulkSet(grid.shape, grid.marks, column: prompt.column, value: prompt.field.value)
                return runBulk(statement, label: "set \(column.name) = \(prompt.field.value.map { "'\(Renderer.historyValue($0, limit: 40))'" } ?? "NULL") on \(grid.marks.label ?? "") (\(grid.shape.table.qualifiedName))")
            default:
                _ = prompt.field.handle(key)
                mode = .bulkSet(prompt)
                return []
            }
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
        case .lagView:
            if command == .cancel { mode = .browse }
            return []
        case .queryLog(var view):
            let nodes = self.nodes.map(\.state.name)
            if view.handle(command, key: key, log: log, nodes: nodes, sources: logSources, rows: Self.queryLogRows(height: height)) {
                mode = .queryLog(view)
            } else {
                mode = .browse
            }
            return []
        case .exporting:
            return []
        case .exportPrompt(var prompt):
            switch command {
            case .cancel:
                mode = .browse
                setMessage("export cancelled")
            case .nextFormat:
                prompt.format = prompt.format == .csv ? .jsonLines : .csv
                // The default name follows the format.
                if let path = prompt.path.value, path.hasSuffix(".csv") || path.hasSuffix(".jsonl") {
                    prompt.path = TextField(String(path[..<path.lastIndex(of: ".")!]) + (prompt.format == .csv ? ".csv" : ".jsonl"))
                }
                mode = .exportPrompt(prompt)
            case .switchSource:
                prompt.fromReplica.toggle()
                mode = .exportPrompt(prompt)
            case .save:
                guard let grid, let path = prompt.path.value, !path.isEmpty else {
                    setMessage("name the file to export to", error: true)
                    return []
                }
                let job = ExportJob(
                    shape: grid.shape, sort: grid.sort, filter: grid.filter, scope: grid.scope, format: prompt.format,
                    fromReplica: prompt.fromReplica, path: path)
                let now = Date()
                mode = .exporting(ExportStatus(job: job, started: now, updated: now))
                let request = start("exporting \(grid.shape.table.qualifiedName)")
                return [.export(job, request: request)]
            default:
                _ = prompt.path.handle(key)
                mode = .exportPrompt(prompt)
            }
            return []
        case .confirmRefresh(let table, _):
            mode = .browse
            guard command == .confirm else {
                setMessage("refresh cancelled")
                return []
            }
            let request = start("refreshing \(table.qualifiedName)")
            return [.refreshView(table, request: request)]
        case .pick(var pick):
            switch pick.handle(command) {
            case .stay:
                mode = .pick(pick)
                return []
            case .cancel:
                mode = .browse
                setMessage("edit cancelled")
                return []
            case .save(let value):
                return saveCell(row: pick.row, column: pick.column, value: value, seen: pick.seen, long: pick.long)
            }
        case .references(var view):
            switch view.handle(command) {
            case .stay:
                mode = .references(view)
                return []
            case .close:
                mode = .browse
                return []
            case .open(let item):
                mode = .references(view)
                let request = start("opening \(item.table.qualifiedName)")
                return [.openReferencing(item, request: request)]
            }
        case .history(var view):
            switch view.handle(command) {
            case .stay:
                mode = .history(view)
                return []
            case .close:
                mode = .browse
                return view.wroteRevert && grid != nil ? [reloadCurrentPage()] : []
            case .reload:
                mode = .history(view)
                let request = start("reading the change history")
                return [.loadHistory(table: view.table, key: view.key, request: request)]
            case .prepareRevert(let entry):
                mode = .history(view)
                let request = start("preparing the revert of change #\(entry.id)")
                return [.prepareRevert(entry, request: request)]
            case .revert(let plan):
                mode = .history(view)
                let request = start("reverting change #\(plan.change.id)", writes: true)
                return [.revert(plan, request: request)]
            case .message(let text):
                mode = .history(view)
                setMessage(text)
                return []
            }
        case .confirmQuit(let previous):
            if command == .confirm { return quitNow() }
            mode = previous
            return []
        case .editCell(var edit):
            let outcome = edit.handle(command, key: key)
            mode = .editCell(edit)
            return editorOutcome(outcome, cancelled: "edit cancelled") { state, grid in
                var value = edit.field.value
                if let text = value, grid.shape.columns.indices.contains(edit.column), TypedValues.isJSON(grid.shape.columns[edit.column].type) {
                    // Caught here, before the round trip; the text stays in the editor.
                    if let problem = TypedValues.jsonProblem(text) {
                        state.setMessage("not valid JSON: \(problem); your text is kept", error: true)
                        return []
                    }
                    value = TypedValues.minifiedJSON(text)
                }
                let request = state.start("saving", writes: true)
                return [.update(grid.shape, seen: edit.seen, changes: [edit.column: value], long: edit.long, request: request)]
            }
        case .form(var form):
            if command == .cancel, !form.touched.isEmpty, !form.discardArmed {
                // Typed work is not dropped on one key.
                form.discardArmed = true
                mode = .form(form)
                let count = form.touched.count
                setMessage("\(count) changed field\(count == 1 ? "" : "s") would be lost: Esc again discards, any other key keeps editing", error: true)
                return []
            }
            let outcome = form.handle(command, key: key)
            mode = .form(form)
            return editorOutcome(outcome, cancelled: "form cancelled") { state, grid in state.submit(form, grid) }
        case .confirmDelete(let confirmation):
            if command == .confirm, let grid {
                let request = start("deleting", writes: true)
                return [.delete(grid.shape, seen: confirmation.seen, long: confirmation.long, request: request)]
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
                let value = prompt.field.value ?? ""
                if value.isEmpty && prompt.op.takesValue {
                    mode = .browse
                    grid.filter = nil
                    setMessage("filter cleared")
                } else {
                    let condition = FilterCondition(column: prompt.column, op: prompt.op, value: value)
                    if let problem = FilterValidation.problem(condition, type: grid.shape.columns[prompt.column].type) {
                        // Nothing sent; the prompt stays open with the text as typed.
                        setMessage(problem, error: true)
                        return []
                    }
                    mode = .browse
                    grid.filter = grid.filter?.and(condition) ?? Filter(conditions: [condition])
                    if (grid.filter?.conditions.count ?? 0) > 1 { setMessage("filter: every condition must hold; / and Enter on nothing clears them") }
                }
                if grid.marks.matching != nil {
                    // Marks that stood for the old filter's rows would act on rows no longer shown.
                    grid.marks.matching = nil
                    setMessage("the filter changed: the rows marked with V are unmarked")
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

    /// What the cell editor and the row form ask for after a key.
    private mutating func editorOutcome(
        _ outcome: EditorOutcome, cancelled: String, save: (inout ConsoleState, Grid) -> [ConsoleEffect]
    ) -> [ConsoleEffect] {
        switch outcome {
        case .stay: return []
        case .quit: return quitKey()
        case .external:
            guard case .editCell(let edit) = mode else { return [] }
            return [.editExternally(edit.field.value)]
        case .cancel:
            mode = .browse
            setMessage(cancelled)
            return []
        case .save:
            guard let grid else { return [] }
            return save(&self, grid)
        }
    }

    /// Keys while a query runs: Esc cancels it on the server, quitting abandons it.
    private mutating func busyCommand(_ command: Command) -> [ConsoleEffect] {
        guard let request = pending else { return [] }
        switch command {
        case .cancelQuery where pendingWrites:
            // A write may commit before the cancel arrives: wait for what really happened.
            guard busy != "cancelling" else { return [] }
            busy = "cancelling"
            setMessage("cancel sent; waiting to learn whether it was in time")
            return [.cancel(request: request)]
        case .cancelQuery:
            pending = nil
            busy = nil
            queuedKeys = []
            restoreShownOrder()
            if case .exporting(let status) = mode {
                mode = .browse
                setMessage("export cancelled: \(status.job.path) is removed")
            } else {
                setMessage("cancelled")
            }
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
        if let current = conflict.current, let index = grid?.cursorRow { grid?.replaceRow(index, with: current) }
    }

    /// Back to the editor with the user's text, now against the current row.
    private mutating func editAgain(_ conflict: Conflict) {
        var resume = conflict.resume
        if let current = conflict.current {
            // The current row was read whole: nothing in it is compared by digest any more.
            switch resume {
            case .editCell(var edit):
                edit.seen = current
                edit.long = [:]
                resume = .editCell(edit)
            case .form(var form):
                if case .edit = form.kind { form.kind = .edit(seen: current) }
                form.long = [:]
                resume = .form(form)
            default: break
            }
            if let index = grid?.cursorRow { grid?.replaceRow(index, with: current) }
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
            let request = start("promoting \(target)", writes: true)
            return [.promote(node: target, request: request)]
        }
    }

    mutating func rerunChecks() -> [ConsoleEffect] {
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
        case .sqlPrompt:
            return openPrompt()
        case .clusters:
            mode = .clusterList(selected: 0)
            return []
        case .focusNext, .focusPrevious:
            // Through the parts shown only.
            let shown = Focus.allCases.filter { ($0 != .tables || showTables) && ($0 != .pane || showPane) }
            let index = shown.firstIndex(of: focus) ?? 0
            focus = shown[(index + (command == .focusNext ? 1 : shown.count - 1)) % shown.count]
            return []
        case .lagHistory:
            mode = .lagView
            return []
        case .queryLogView:
            mode = .queryLog(QueryLogView())
            return []
        case .toggleTables, .togglePane:
            if command == .toggleTables { showTables.toggle() } else { showPane.toggle() }
            // Focus never stays on a part that is hidden.
            if (focus == .tables && !showTables) || (focus == .pane && !showPane) { focus = .grid }
            return []
        case .export:
            guard let grid else { return [] }
            mode = .exportPrompt(ExportPrompt(path: TextField("\(grid.shape.table.schema).\(grid.shape.table.name).csv")))
            return []
        case .refreshView:
            guard let table = Keymap.refreshTarget(self) else { return [] }
            // Shown as it runs: both names quoted, as libpq quotes them.
            let quoted = [table.schema, table.name].map { "\"" + $0.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
            mode = .confirmRefresh(table, sql: "refresh materialized view \(quoted.joined(separator: "."))")
            return []
        default:
            break
        }
        switch focus {
        case .tables: return tablesCommand(command)
        case .grid: return gridCommand(command)
        case .pane: return paneCommand(command)
        }
    }

    private mutating func paneCommand(_ command: Command) -> [ConsoleEffect] {
        switch command {
        case .refresh: return refresh()
        case .logAdminOnly: logContextFilter = logContextFilter == "admin" ? nil : "admin"
        case .logPublicOnly: logContextFilter = logContextFilter == "public" ? nil : "public"
        case .logNextSource:
            let sources = logSources
            if let current = logSourceFilter, let index = sources.firstIndex(of: current) {
                logSourceFilter = index + 1 < sources.count ? sources[index + 1] : nil
            } else {
                logSourceFilter = sources.first
            }
        default: break
        }
        return []
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
        case .search:
            mode = .tableSearch(TextField(""))
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

    /// Saves `value` into one cell: through the cell editor's path, so the outcome (saved,
    /// conflict with the value kept, failure) is reported as for a typed edit.
    mutating func saveCell(row: Int, column: Int, value: String?, seen: [String?], long: [Int: LongValue]) -> [ConsoleEffect] {
        guard let grid else { return [] }
        mode = .editCell(CellEdit(row: row, column: column, field: TextField(value), seen: seen, long: long))
        let request = start("saving", writes: true)
        return [.update(grid.shape, seen: seen, changes: [column: value], long: long, request: request)]
    }

    /// `#42` or `#(1, 7)`: a row by its key.
    func rowLabel(_ shape: TableShape, _ row: [String?]) -> String {
        let shown = shape.keyIndexes.map { row.indices.contains($0) ? row[$0] ?? "NULL" : "?" }
        return shown.count == 1 ? "#\(shown[0])" : "#(\(shown.joined(separator: ", ")))"
    }

    /// The open grid as a stop on the trail.
    mutating func pushTrail() {
        guard let grid else { return }
        let anchor = grid.keys.indices.contains(grid.cursorRow) ? grid.keys[grid.cursorRow] : nil
        let label = gridLabel ?? grid.shape.table.name
        trail.append(TrailStop(
            shape: grid.shape, sort: grid.sort, filter: grid.filter, scope: grid.scope, anchor: anchor, cursorColumn: grid.cursorColumn,
            label: label))
        if trail.count > 50 { trail.removeFirst() }
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
        case .left: grid.cursorColumn = grid.shownColumn(from: grid.cursorColumn, -1)
        case .right: grid.cursorColumn = min(grid.shownColumn(from: grid.cursorColumn, 1), max(columnCount - 1, 0))
        case .hideColumn:
            guard grid.shape.columns.indices.contains(grid.cursorColumn) else { break }
            grid.hidden.insert(grid.cursorColumn)
            let name = grid.shape.columns[grid.cursorColumn].name
            let right = grid.shownColumn(from: grid.cursorColumn, 1)
            grid.cursorColumn = right != grid.cursorColumn ? right : grid.shownColumn(from: grid.cursorColumn, -1)
            setMessage("\(name) hidden (\(grid.hidden.count) hidden; Z shows them)")
        case .showColumns:
            grid.hidden = []
            setMessage("every column shown")
        case .narrower, .wider:
            guard grid.shape.columns.indices.contains(grid.cursorColumn) else { break }
            let now = grid.widths[grid.cursorColumn] ?? Renderer.naturalWidth(grid, grid.cursorColumn)
            grid.widths[grid.cursorColumn] = min(max(now + (command == .wider ? 4 : -4), 3), 200)
        case .rowView:
            guard grid.selectedRow != nil else { break }
            mode = .rowView(RowView(row: grid.cursorRow, column: grid.cursorColumn))
        case .copyRow:
            guard grid.selectedRow != nil else { break }
            mode = .copyRow(CopyPrompt())
        case .refresh: return [reloadCurrentPage()]
        case .toggle:
            guard let row = grid.selectedRow, row.indices.contains(grid.cursorColumn) else { return [] }
            let now = row[grid.cursorColumn]
            let flipped = now == "true" || now == "t" ? "false" : "true"
            self.grid = grid
            return saveCell(row: grid.cursorRow, column: grid.cursorColumn, value: flipped, seen: row, long: grid.longValues(grid.cursorRow))
        case .editInEditor:
            guard let row = grid.selectedRow, row.indices.contains(grid.cursorColumn) else { return [] }
            let long = grid.longValues(grid.cursorRow)
            if long[grid.cursorColumn] != nil {
                // Fetch it whole first (Enter does the same), then F4 opens the editor.
                return gridCommand(.editCell)
            }
            var value = row[grid.cursorColumn]
            if let text = value, TypedValues.isJSON(grid.shape.columns[grid.cursorColumn].type) { value = TypedValues.prettyJSON(text) }
            mode = .editCell(CellEdit(row: grid.cursorRow, column: grid.cursorColumn, field: TextField(value), seen: row, long: long))
            self.grid = grid
            return [.editExternally(value)]
        case .followReference:
            guard let row = grid.selectedRow, let key = grid.shape.foreignKey(at: grid.cursorColumn) else { return [] }
            let request = start("following \(key.name)")
            return [.follow(grid.shape, key, values: key.columns.map { row[$0] }, request: request)]
        case .showReferences:
            guard let row = grid.selectedRow else { return [] }
            mode = .references(ReferencesView(title: "Referencing \(grid.shape.table.qualifiedName) \(rowLabel(grid.shape, row))"))
            let request = start("counting references")
            return [.loadReferences(grid.shape, row: row, request: request)]
        case .back:
            guard let stop = trail.popLast() else { return [] }
            var restored = Grid(shape: stop.shape)
            restored.sort = stop.sort
            restored.filter = stop.filter
            restored.scope = stop.scope
            restored.cursorColumn = stop.cursorColumn
            self.grid = restored
            gridLabel = trail.isEmpty ? nil : stop.label
            if let index = tables.firstIndex(of: stop.shape.table) { tableCursor = index }
            return [load(stop.anchor.map { .from($0) } ?? .first)]
        case .rowHistory, .tableHistory:
            let shape = grid.shape
            var key: [String: String?]?
            var label: String?
            if command == .rowHistory, let row = grid.selectedRow {
                let values = DataService.values(shape, row, shape.keyIndexes)
                key = values
                let shown = shape.keyIndexes.map { row[$0] ?? "NULL" }
                label = shown.count == 1 ? "#\(shown[0])" : "#(\(shown.joined(separator: ", ")))"
            }
            mode = .history(HistoryView(table: shape.table.qualifiedName, key: key, keyLabel: label, columns: shape.columns.map(\.name)))
            let request = start("reading the change history")
            return [.loadHistory(table: shape.table.qualifiedName, key: key, request: request)]
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
            // A new condition, on the column under the cursor; those in place stay (AND).
            mode = .filter(FilterPrompt(column: grid.cursorColumn, op: .equals, field: TextField("")))
        case .editCell:
            guard let row = grid.selectedRow, row.indices.contains(grid.cursorColumn) else { break }
            let long = grid.longValues(grid.cursorRow)
            let column = grid.shape.columns[grid.cursorColumn]
            if let choices = column.choices, long[grid.cursorColumn] == nil {
                // An enum or a CHECK … IN list: choose, don't type.
                let options: [String?] = choices + (column.notNull ? [] : [nil])
                let current = options.firstIndex { $0 == row[grid.cursorColumn] } ?? 0
                mode = .pick(PickList(row: grid.cursorRow, column: grid.cursorColumn, seen: row, long: long, choices: options, selected: current))
                break
            }
            if let cut = long[grid.cursorColumn] {
                // Shown cut: fetch it whole first, never edit (and save) the cut text.
                self.grid = grid
                let request = start("loading the whole value (\(Renderer.bytes(UInt64(cut.bytes))))")
                return [.loadValue(grid.shape, row: row, column: grid.cursorColumn, request: request)]
            }
            let value = row[grid.cursorColumn]
            mode = .editCell(CellEdit(row: grid.cursorRow, column: grid.cursorColumn, field: TextField(value), seen: row, long: long))
            if let value, value.count > CellEdit.externalEditorCharacters {
                self.grid = grid
                return [.editExternally(value)]
            }
        case .editRow:
            guard let row = grid.selectedRow else { break }
            mode = .form(RowForm(
                kind: .edit(seen: row), fields: row.map { TextField($0) }, cursor: min(grid.cursorColumn, max(row.count - 1, 0)),
                long: grid.longValues(grid.cursorRow)))
        case .addRow:
            mode = .form(RowForm(
                kind: .add, fields: grid.shape.columns.map { _ in TextField("") },
                cursor: min(grid.cursorColumn, max(grid.shape.columns.count - 1, 0))))
        case .mark:
            guard let row = grid.selectedRow else { break }
            let key = grid.shape.keyIndexes.map { row[$0] }
            if grid.marks.keys.remove(key) == nil { grid.marks.keys.insert(key) }
            if grid.cursorRow < grid.rows.count - 1 { grid.cursorRow += 1 }
            setMessage(grid.marks.label.map { "\($0): D deletes them, = sets a column on them, V clears" } ?? "no rows marked")
        case .markMatching:
            if !grid.marks.isEmpty {
                grid.marks = Marks()
                setMessage("marks cleared")
            } else {
                grid.marks.matching = Marks.MatchingRows(filter: grid.filter, scope: grid.scope, counted: grid.filter == nil ? nil : grid.matching)
                setMessage("\(grid.marks.label ?? "") — \(grid.filter == nil && grid.scope == nil ? "every row of the table" : "as the filter stands now"): D deletes them, = sets a column, V clears")
            }
        case .bulkDelete:
            self.grid = grid
            return runBulk(SQLBuilder.bulkDelete(grid.shape, grid.marks), label: "delete \(grid.marks.label ?? "") (\(grid.shape.table.qualifiedName))")
        case .bulkSet:
            guard grid.shape.columns.indices.contains(grid.cursorColumn) else { break }
            mode = .bulkSet(BulkSetPrompt(column: grid.cursorColumn, field: TextField("")))
        case .deleteRow:
            guard let row = grid.selectedRow else { break }
            let long = grid.longValues(grid.cursorRow)
            let statement = SQLBuilder.delete(grid.shape, seen: row, long: long)
            mode = .confirmDelete(DeleteConfirmation(
                seen: row, sql: statement.sql, key: SQLBuilder.describeKey(grid.shape, row: row), long: long))
        default:
            break
        }
        self.grid = grid
        return []
    }

    mutating func submit(_ form: RowForm, _ grid: Grid) -> [ConsoleEffect] {
        mode = .form(form)
        let values = Dictionary(uniqueKeysWithValues: form.touched.sorted().map { ($0, form.fields[$0].value) })
        switch form.kind {
        case .add:
            let request = start("inserting", writes: true)
            return [.insert(grid.shape, values: values, request: request)]
        case .edit(let seen):
            let changed = values.filter { $0.value != seen[$0.key] }
            guard !changed.isEmpty else {
                mode = .browse
                setMessage("nothing changed")
                return []
            }
            let request = start("saving", writes: true)
            return [.update(grid.shape, seen: seen, changes: changed, long: form.long, request: request)]
        }
    }
}
