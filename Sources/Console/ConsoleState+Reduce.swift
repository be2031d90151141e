import Switchyard

extension ConsoleState {
    /// The console's whole behaviour: state + event → new state + effects. Pure.
    public mutating func reduce(_ event: ConsoleEvent) -> [ConsoleEffect] {
        var effects = guardProtected(reduceOne(event))
        // Keys typed while a read ran, in order, until one of them starts another read.
        while busy == nil, !queuedKeys.isEmpty {
            effects += guardProtected(handleKey(queuedKeys.removeFirst()))
        }
        return effects
    }

    /// On a protected cluster, effects that commit a write wait for the cluster's name.
    private mutating func guardProtected(_ effects: [ConsoleEffect]) -> [ConsoleEffect] {
        if protectionPassed {
            // These are the effects the name was just typed for.
            protectionPassed = false
            return effects
        }
        guard protected, let write = effects.first(where: \.commitsWrite) else { return effects }
        mode = .confirmProtected(ProtectedWrite(
            effects: effects, previous: mode, busy: busy, pending: pending, pendingWrites: pendingWrites, summary: write.writeSummary))
        busy = nil
        pending = nil
        pendingWrites = false
        setMessage("\(clusterName) is protected: type its name and Enter to write; Esc: nothing is written")
        return []
    }

    /// The name typed, or Esc, for a held-back write.
    mutating func protectedKey(_ command: Command, key: Key, _ write: ProtectedWrite) -> [ConsoleEffect] {
        var write = write
        switch command {
        case .confirm:
            guard write.field.value == clusterName else {
                setMessage("\"\(write.field.value ?? "")\" is not \(clusterName): nothing written", error: true)
                write.field = TextField("")
                mode = .confirmProtected(write)
                return []
            }
            mode = write.previous
            busy = write.busy
            pending = write.pending
            pendingWrites = write.pendingWrites
            setMessage(nil)
            protectionPassed = true
            return write.effects
        case .cancel:
            mode = write.previous
            setMessage("not written: \(clusterName) is protected and its name was not typed" + (write.previous.hasUnsavedInput ? "; your input is kept" : ""))
            // A held prompt write stays held (still n/y); other modes return as they were.
            return []
        default:
            _ = write.field.handle(key)
            mode = .confirmProtected(write)
            return []
        }
    }

    private mutating func reduceOne(_ event: ConsoleEvent) -> [ConsoleEffect] {
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
            if reloadGridOnLoad, grid != nil {
                reloadGridOnLoad = false
                return [reloadCurrentPage()]
            }
            if let name = openOnLoad {
                openOnLoad = nil
                return reduce(.openNamed(name))
            }
            return []
        case .tableOpened(let shape, let request):
            guard finish(request) else { return [] }
            grid = Grid(shape: shape)
            trail = []
            gridLabel = nil
            if let index = tables.firstIndex(of: shape.table) { tableCursor = index }
            focus = .grid
            mode = .browse
            if !shape.hasPrimaryKey { setMessage("\(shape.table.qualifiedName) has no primary key: read-only") }
            return [load(.first)]
        case .pageLoaded(let rows, let keys, let position, let request, let long, let matching):
            guard finish(request), var grid else { return [] }
            let limit = pageSize
            if grid.filter == nil { grid.matching = nil } else if let matching { grid.matching = matching }
            grid.shownSort = grid.sort
            grid.shownFilter = grid.filter
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
            grid.long = long
            grid.loaded = true
            self.grid = grid
            return []
        case .valueLoaded(let value, let request):
            // The whole value of a cut cell: edit it now, the row as seen with it.
            guard finish(request), let grid, let row = grid.selectedRow, row.indices.contains(grid.cursorColumn) else { return [] }
            var seen = row
            seen[grid.cursorColumn] = value
            var long = grid.longValues(grid.cursorRow)
            long[grid.cursorColumn] = nil
            mode = .editCell(CellEdit(row: grid.cursorRow, column: grid.cursorColumn, field: TextField(value), seen: seen, long: long))
            if let value, value.count > CellEdit.externalEditorCharacters { return [.editExternally(value)] }
            return []
        case .externallyEdited(let value, let problem):
            guard case .editCell(var edit) = mode else { return [] }
            if let problem {
                setMessage(problem, error: true)
                return []
            }
            edit.field = TextField(value)
            mode = .editCell(edit)
            setMessage("edited in the external editor: Enter saves, Esc discards")
            return []
        case .saved(let row, let request):
            let cancelled = busy == "cancelling"
            guard finish(request) else { return [] }
            let effects = afterSave(row)
            if cancelled { setMessage("committed before the cancel arrived — \(message ?? "saved")", error: true) }
            return effects
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
            if pending == request, case .exporting = mode { mode = .browse }
            if pending == request, !pendingWrites { restoreShownOrder() }
            let promoting = pendingWrites && busy.map { $0.hasPrefix("promoting") || $0 == "cancelling" } == true
            guard finish(request) else { return [] }
            if case .confirmDelete = mode { mode = .browse }
            if case .sqlPrompt(var prompt) = mode {
                // A statement or commit that failed rolled its transaction back.
                prompt.phase = .typing
                mode = prompt.bulk ? .browse : .sqlPrompt(prompt)
            }
            setMessage(message, error: true)
            // After a promotion that failed or was cancelled the candidate may still be
            // leaving recovery: show the cluster as it is before anything else is promoted.
            if promoting, case .failover = mode { return rerunChecks() }
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
        case .promoted(let node, let how, let request):
            let cancelled = busy == "cancelling"
            guard finish(request) else { return [] }
            if cancelled {
                setMessage("\(node) was promoted before the cancel arrived: it is the primary now", error: true)
                return rerunChecks()
            }
            setMessage("\(node) promoted (\(how)): it is the primary now; writes follow it within two monitor intervals")
            return rerunChecks()
        case .historyLoaded(let entries, let request):
            guard finish(request), case .history(var view) = mode else { return [] }
            view.entries = entries
            view.loaded = true
            view.selected = min(view.selected, max(entries.count - 1, 0))
            view.detail = view.detail && !entries.isEmpty
            mode = .history(view)
            return []
        case .followed(let shape, let anchor, let label, let request):
            guard finish(request) else { return [] }
            pushTrail()
            grid = Grid(shape: shape)
            gridLabel = "\(shape.table.name) \(label)"
            if let index = tables.firstIndex(of: shape.table) { tableCursor = index }
            focus = .grid
            mode = .browse
            return [load(.from(anchor))]
        case .exportProgress(let rows, let bytes, let at, let request):
            guard pending == request, case .exporting(var status) = mode else { return [] }
            status.rows = rows
            status.bytes = bytes
            status.updated = at
            mode = .exporting(status)
            return []
        case .exported(let path, let rows, let bytes, let node, let took, let request):
            guard finish(request) else { return [] }
            if case .exporting = mode { mode = .browse }
            setMessage("exported \(rows) rows (\(Renderer.bytes(UInt64(bytes)))) from \(node) to \(path) in \(String(format: "%.1f", took / 1000)) s")
            return []
        case .viewRefreshed(let table, let took, let request):
            guard finish(request) else { return [] }
            setMessage("refreshed \(table.qualifiedName) in \(Int(took)) ms")
            return grid?.shape.table == table ? [reloadCurrentPage()] : []
        case .referencesLoaded(let items, let request):
            guard finish(request), case .references(var view) = mode else { return [] }
            view.items = items
            view.loaded = true
            view.selected = min(view.selected, max(items.count - 1, 0))
            mode = .references(view)
            return []
        case .referencingOpened(let shape, let scope, let request):
            guard finish(request) else { return [] }
            pushTrail()
            var opened = Grid(shape: shape)
            opened.scope = scope
            grid = opened
            gridLabel = "\(shape.table.name) where \(scope.label)"
            if let index = tables.firstIndex(of: shape.table) { tableCursor = index }
            focus = .grid
            mode = .browse
            return [load(.first)]
        case .openNamed(let name):
            guard let index = tables.firstIndex(where: { $0.qualifiedName == name || $0.name == name }) else {
                setMessage("no table \(name)", error: true)
                return []
            }
            tableCursor = index
            let request = start("opening \(tables[index].name)")
            return [.openTable(tables[index], request: request)]
        case .topology(let topology, let history, let at):
            lagHistory.record(topology, at: at)
            lastTopologyAt = at
            nodes = topology.nodes.map { NodeSummary(state: $0, lagHistory: history[$0.name] ?? []) }
            primaryName = topology.primary?.name
            patroni = topology.patroni
            splitBrain = topology.primaries.count > 1 ? topology.primaries.map(\.name) : []
            heartbeatProblem = topology.heartbeatProblem
            return []
        case .log(let entries):
            log = entries
            return []
        case .followedFiles(let count):
            followedFiles = count
            return []
        case .warning(let text):
            setMessage(text, error: true)
            return []
        case .promptRows, .promptText, .promptHeld, .promptDone, .promptEnded:
            return promptEvent(event)
        case .copied(let text, let clipboard, let request):
            guard finish(request) else { return [] }
            setMessage(text)
            return clipboard.map { [.setClipboard($0)] } ?? []
        case .revertReady(let plan, let request):
            guard finish(request), case .history(var view) = mode else { return [] }
            view.revert = plan
            view.conflict = nil
            mode = .history(view)
            setMessage(plan.note.map { "\($0) — y writes it" } ?? "y writes the revert; any other key cancels", error: plan.note != nil)
            return []
        case .revertConflict(let conflict, let request):
            guard finish(request), case .history(var view) = mode else { return [] }
            view.revert = nil
            view.conflict = conflict
            mode = .history(view)
            setMessage(conflict.reason, error: true)
            return []
        case .reverted(let text, let request):
            guard finish(request) else { return [] }
            setMessage(text)
            guard case .history(var view) = mode else { return [] }
            view.revert = nil
            view.selected = 0
            view.wroteRevert = true
            mode = .history(view)
            // The history shows the revert; the grid behind shows the row as it is now.
            let reload = start("reading the change history")
            return [.loadHistory(table: view.table, key: view.key, request: reload)]
        }
    }

    // MARK: Requests

    /// Marks `request` done; false when it is not the one we wait for (cancelled, stale).
    mutating func finish(_ request: Int) -> Bool {
        guard pending == request else { return false }
        pending = nil
        busy = nil
        pendingWrites = false
        return true
    }

    /// After a load that did not arrive: the title says what the rows on screen are.
    mutating func restoreShownOrder() {
        guard var grid, grid.sort != grid.shownSort || grid.filter != grid.shownFilter else { return }
        grid.sort = grid.shownSort
        grid.filter = grid.shownFilter
        if grid.filter == nil { grid.matching = nil }
        self.grid = grid
    }

    mutating func start(_ label: String, writes: Bool = false) -> Int {
        let request = nextRequest
        nextRequest += 1
        pending = request
        pendingWrites = writes
        busy = label
        spinner = 0
        return request
    }

    mutating func setMessage(_ text: String?, error: Bool = false) {
        message = text
        messageIsError = error
    }

    mutating func load(_ position: PagePosition) -> ConsoleEffect {
        let grid = grid!
        let request = start("loading \(grid.shape.table.name)")
        return .loadPage(grid.shape, position, sort: grid.sort, filter: grid.filter, limit: pageSize, request: request, scope: grid.scope)
    }

    private mutating func afterSave(_ row: [String?]?) -> [ConsoleEffect] {
        switch mode {
        case .editCell(let edit):
            if let row { grid?.replaceRow(edit.row, with: row) }
            mode = .browse
            setMessage("saved \(grid?.shape.columns[edit.column].name ?? "")")
            return []
        case .form(let form):
            mode = .browse
            if case .edit = form.kind, let row, let index = grid?.cursorRow, grid?.rows.indices.contains(index) == true {
                grid?.replaceRow(index, with: row)
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

    mutating func reloadCurrentPage() -> ConsoleEffect {
        if let first = grid?.keys.first { return load(.from(first)) }
        return load(.first)
    }
}
