import Foundation
import PostgresClient
import Switchyard

/// Draws a ``ConsoleState`` into a ``Screen``. Pure: the same state always gives the same
/// screen, so layouts are tested as text.
public enum Renderer {
    static let spinnerFrames: [Character] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"]
    static let sparks: [Character] = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"]

    public static func render(_ state: ConsoleState, clock: (Date) -> String = Renderer.timeOfDay) -> Screen {
        var screen = Screen(width: state.width, height: state.height)
        if state.isTooSmall {
            let lines = [
                "Terminal too small: \(state.width)×\(state.height)",
                "Switchyard needs at least \(ConsoleState.minimumWidth)×\(ConsoleState.minimumHeight).",
                "Enlarge the window, or press q to quit.",
            ]
            for (index, line) in lines.enumerated() {
                let y = state.height / 2 - 1 + index
                screen.put(line, x: max((state.width - Screen.displayWidth(line)) / 2, 0), y: y, role: index == 0 ? .error : .normal)
            }
            return screen
        }
        let layout = state.layout
        header(state, layout, &screen)
        if layout.showTables { tables(state, layout, &screen) }
        grid(state, layout, &screen)
        if layout.showPane { pane(state, layout, &screen, clock: clock) }
        hints(state, layout, &screen)
        status(state, layout, &screen)
        overlay(state, layout, &screen)
        return screen
    }

    public static func timeOfDay(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone.current
        let parts = calendar.dateComponents([.hour, .minute, .second], from: date)
        return String(format: "%02d:%02d:%02d", parts.hour ?? 0, parts.minute ?? 0, parts.second ?? 0)
    }

    // MARK: Header and status

    /// How a cluster's colour is drawn: through the theme's roles of that colour.
    static func clusterRole(_ color: ClusterColor) -> StyleRole {
        switch color {
        case .red: return .error
        case .yellow: return .lag_warn
        case .green: return .lag_ok
        case .blue: return .primary
        case .cyan: return .replica
        case .magenta: return .badge
        }
    }

    static func header(_ state: ConsoleState, _ layout: Layout, _ screen: inout Screen) {
        screen.fill(x: 0, y: 0, width: layout.width, height: 1, role: .header)
        let lead = screen.put(" Switchyard │ ", x: 0, y: 0, role: .header)
        screen.put(state.clusterName, x: lead, y: 0, role: state.clusterColor.map(clusterRole) ?? .header)
        let badge: String
        let role: StyleRole
        if !state.splitBrain.isEmpty {
            badge = " SPLIT BRAIN: \(state.splitBrain.joined(separator: " + ")) — writes refused "
            role = .error
        } else if let primary = state.primaryName {
            badge = (state.readOnly ? " READ-ONLY " : state.protected ? " PROTECTED " : "") + " ADMIN → primary \(primary) "
            role = state.protected && !state.readOnly ? .error : .badge
        } else {
            badge = " ADMIN → primary unavailable "
            role = .error
        }
        var x = layout.width - Screen.displayWidth(badge) - 1
        screen.put(badge, x: x, y: 0, role: role)
        if let busy = state.busy {
            let text = "\(spinnerFrames[state.spinner % spinnerFrames.count]) \(busy)… (Esc cancels) "
            x -= Screen.displayWidth(text) + 1
            screen.put(text, x: max(x, 20), y: 0, role: .header)
        }
    }

    static func hints(_ state: ConsoleState, _ layout: Layout, _ screen: inout Screen) {
        let y = layout.hints.y
        screen.fill(x: 0, y: y, width: layout.width, height: 1, role: .dim)
        let text = Keymap.hintLine(for: state)
        if case .filter(let prompt) = state.mode, state.busy == nil {
            let columns = state.grid?.shape.columns ?? []
            let column = columns.indices.contains(prompt.column) ? columns[prompt.column].name : "?"
            screen.put(" filter ", x: 0, y: y, role: .badge)
            var x = 8
            x += screen.put(" \(column) ▲▼ ", x: x, y: y, role: .selected)
            x += screen.put(" \(prompt.op.rawValue) ⇥ ", x: x, y: y, role: .badge)
            let hintWidth = Screen.displayWidth(text)
            if prompt.op.takesValue { field(prompt.field, x: x + 1, y: y, width: layout.width - x - hintWidth - 4, &screen) }
            screen.put(text, x: layout.width - hintWidth - 1, y: y, role: .dim)
            return
        }
        screen.put(" " + text, x: 0, y: y, role: .dim)
    }

    static func status(_ state: ConsoleState, _ layout: Layout, _ screen: inout Screen) {
        let y = layout.status.y
        let role: StyleRole = state.messageIsError ? .error : .status
        screen.fill(x: 0, y: y, width: layout.width, height: 1, role: role)
        screen.put(" " + (state.message ?? "ready"), x: 0, y: y, role: role)
    }

    // MARK: Tables

    static func tables(_ state: ConsoleState, _ layout: Layout, _ screen: inout Screen) {
        let area = layout.tables
        let focused = state.focus == .tables && state.mode == .browse
        screen.put(" Tables", x: area.x, y: area.y, role: focused ? .focus_border : .border, limit: area.width - 1)
        separator(x: area.x + area.width - 1, y: area.y, height: area.height, focused: focused, &screen)
        let rows = area.height - 1
        guard rows > 0 else { return }
        let first = max(0, min(state.tableCursor - rows / 2, state.tables.count - rows))
        for (offset, table) in state.tables.dropFirst(first).prefix(rows).enumerated() {
            let index = first + offset
            let y = area.y + 1 + offset
            let count = table.kind == .table ? shortCount(table.estimatedRows) : table.kind.mark
            let nameWidth = area.width - 2 - count.count - 1
            let selected = index == state.tableCursor
            let role: StyleRole = selected && state.focus == .tables ? .selected : (state.grid?.shape.table == table ? .focus_border : .normal)
            if selected { screen.fill(x: area.x, y: y, width: area.width - 1, height: 1, role: role) }
            screen.put(Screen.fit(table.qualifiedName, to: nameWidth), x: area.x + 1, y: y, role: role)
            screen.put(count, x: area.x + area.width - 1 - count.count, y: y, role: selected ? role : .dim)
        }
    }

    static func kindLabel(_ kind: TableInfo.Kind) -> String {
        switch kind {
        case .table: return "table"
        case .view: return "view"
        case .materializedView: return "materialized view"
        }
    }

    static func shortCount(_ rows: Int64) -> String {
        if rows < 0 { return "?" }
        if rows < 1000 { return "\(rows)" }
        if rows < 1_000_000 { return "\(rows / 1000)k" }
        return String(format: "%.1fM", Double(rows) / 1_000_000)
    }

    static func separator(x: Int, y: Int, height: Int, focused: Bool, _ screen: inout Screen) {
        for row in y..<(y + height) { screen.put("│", x: x, y: row, role: focused ? .focus_border : .border) }
    }

    // MARK: Grid

    static func grid(_ state: ConsoleState, _ layout: Layout, _ screen: inout Screen) {
        let area = layout.grid
        let focused = state.focus == .grid
        guard let grid = state.grid else {
            screen.put(" No table open: choose one on the left and press Enter", x: area.x, y: area.y, role: .border, limit: area.width)
            return
        }
        let shape = grid.shape
        var title = " \(shape.table.qualifiedName)  ~\(shortCount(shape.table.estimatedRows)) rows"
        if !state.trail.isEmpty {
            // The way here, e.g. `orders › customers #42`.
            title = " " + (state.trail.map(\.label) + [state.gridLabel ?? shape.table.name]).joined(separator: " › ")
                + "  (\(shape.table.qualifiedName))"
        }
        if let scope = grid.scope { title += "  where \(scope.label)" }
        if let marked = grid.marks.label { title += "  [\(marked)]" }
        if let sort = grid.sort { title += "  sort \(shape.columns[sort.column].name) \(sort.descending ? "↓" : "↑")" }
        if let filter = grid.filter {
            let conditions = filter.conditions.map { condition -> String in
                let name = shape.columns.indices.contains(condition.column) ? shape.columns[condition.column].name : "?"
                return "\(name) \(condition.op.rawValue)" + (condition.op.takesValue ? " '\(condition.value)'" : "")
            }
            title += "  filter " + conditions.joined(separator: " and ")
            if let count = grid.matching { title += "  \(count.capped ? "≥" : "")\(shortCount(Int64(count.rows))) match" }
        }
        if shape.readOnlyReason != nil {
            title += "  READ-ONLY (\(kindLabel(shape.table.kind)))"
        } else if shape.columns.isEmpty {
            title += "  READ-ONLY (no columns)"
        } else if !shape.hasPrimaryKey {
            title += "  READ-ONLY (no primary key)"
        }
        screen.put(title, x: area.x, y: area.y, role: focused ? .focus_border : .border, limit: area.width)

        let columns = visibleColumns(grid, width: area.width - 2)
        var x = area.x + 2
        for (index, width) in columns {
            let column = shape.columns[index]
            let name = column.primaryKeyPosition != nil ? column.name + " ⚷" : column.name
            screen.put(Screen.fit(name, to: width), x: x, y: area.y + 1, role: .grid_header, limit: width)
            screen.put(Screen.fit(column.type + (column.notNull ? "" : "?"), to: width), x: x, y: area.y + 2, role: .dim, limit: width)
            x += width + 1
        }
        let body = layout.gridBody
        if shape.columns.isEmpty {
            // Rows without columns: nothing to show a row of, only how many there are.
            let count = shape.table.estimatedRows >= 0 ? "\(shortCount(shape.table.estimatedRows)) rows" : "its rows"
            screen.put(" (no columns: \(count), nothing else to show)", x: area.x, y: body.y, role: .dim, limit: area.width)
            return
        }
        if grid.loaded && grid.rows.isEmpty {
            screen.put(grid.filter == nil ? " (no rows)" : " (no rows match the filter)", x: area.x, y: body.y, role: .dim)
        }
        for (rowIndex, row) in grid.rows.prefix(body.height).enumerated() {
            let y = body.y + rowIndex
            let selectedRow = rowIndex == grid.cursorRow
            if selectedRow { screen.put(focused ? "▶" : "›", x: area.x, y: y, role: focused ? .focus_border : .dim) }
            if grid.isMarked(rowIndex) { screen.put("●", x: area.x + 1, y: y, role: .lag_warn) }
            var x = area.x + 2
            for (index, width) in columns where row.indices.contains(index) {
                let value = row[index]
                let isCursor = selectedRow && index == grid.cursorColumn && focused
                let role: StyleRole = isCursor ? .selected : (value == nil ? .null : .normal)
                if isCursor { screen.fill(x: x, y: y, width: width, height: 1, role: .selected) }
                screen.put(value.map { Screen.fit($0, to: width) } ?? "∅", x: x, y: y, role: role, limit: width)
                x += width + 1
            }
        }
    }

    /// The key column (frozen) and as many further columns as fit, keeping the cursor
    /// column in view. Returns (column index, width) pairs.
    /// A column's width from its name, type and the values on screen (at most 28 cells).
    static func naturalWidth(_ grid: Grid, _ index: Int, typeCap: Int = 28) -> Int {
        let widest = 28
        let column = grid.shape.columns[index]
        var width = max(Screen.displayWidth(column.name) + (column.primaryKeyPosition != nil ? 2 : 0), min(column.type.count + 1, typeCap), 4)
        // Only as much of a value as could be shown is measured: a huge value costs no
        // more than a short one.
        for row in grid.rows where width < widest && row.indices.contains(index) {
            width = max(width, row[index].map { Screen.displayWidth(String($0.prefix(widest + 1))) } ?? 1)
        }
        return min(width, widest)
    }

    /// The key columns (pinned on the left) and as many further columns as fit, keeping
    /// the cursor column in view; hidden columns left out, widths set with `<` `>` kept.
    /// Returns (column index, width) pairs.
    static func visibleColumns(_ grid: Grid, width: Int) -> [(Int, Int)] {
        let shape = grid.shape
        guard !shape.columns.isEmpty else { return [] }
        var known = [Int?](repeating: nil, count: shape.columns.count)
        func columnWidth(_ index: Int) -> Int {
            if let width = known[index] { return width }
            let width = grid.widths[index] ?? naturalWidth(grid, index, typeCap: typeCap)
            known[index] = width
            return width
        }
        let shown = shape.columns.indices.filter { !grid.hidden.contains($0) }
        // Type labels (`numeric(12,2)`) whole while every column fits that way; cut to ten
        // cells when room is short.
        let whole = shown.reduce(0) { $0 + (grid.widths[$1] ?? naturalWidth(grid, $1)) + 1 }
        let typeCap = whole <= width ? 28 : 10
        var pinned = shape.keyIndexes.filter { shown.contains($0) }
        if pinned.isEmpty, let first = shown.first { pinned = [first] }
        var result: [(Int, Int)] = []
        var used = 0
        for index in pinned {
            let w = min(columnWidth(index), max(width - used, 0))
            guard w >= 3 || result.isEmpty else { break }
            result.append((index, w))
            used += w + 1
        }
        let others = shown.filter { !pinned.contains($0) }
        guard !others.isEmpty, used < width else { return result }
        // Start far enough right that the cursor column fits: walk left from the cursor
        // column while the columns still fit.
        var start = 0
        if let cursorPosition = others.firstIndex(of: grid.cursorColumn) {
            var needed = 0
            start = cursorPosition + 1
            while start > 0 {
                let next = needed + columnWidth(others[start - 1]) + 1
                if used + next > width && start <= cursorPosition { break }
                needed = next
                start -= 1
            }
        }
        for index in others[start...] {
            let w = columnWidth(index)
            if used + w > width {
                if width - used >= 4 { result.append((index, width - used)) }
                break
            }
            result.append((index, w))
            used += w + 1
        }
        return result
    }

    static func field(_ field: TextField, x: Int, y: Int, width: Int, _ screen: inout Screen) {
        guard width > 2 else { return }
        if field.isNull {
            screen.put("∅ NULL", x: x, y: y, role: .null, limit: width)
            screen.put(" ", x: x + 6, y: y, role: .selected)
            return
        }
        // Keep the cursor in view: walk left from it only as far as fits (linear in the
        // field's width, not in the value's length).
        let text = field.characters
        var start = min(max(field.cursor, 0), text.count)
        var used = 0
        while start > 0 {
            let w = Screen.displayWidth(TerminalText.visible(text[start - 1]))
            if used + w > width - 2 { break }
            used += w
            start -= 1
        }
        var column = x
        for index in start...text.count {
            let character: Character = index < text.count ? TerminalText.visible(text[index]) : " "
            let w = Screen.displayWidth(character)
            if column + w > x + width { break }
            screen.put(String(character), x: column, y: y, role: index == field.cursor ? .selected : .normal)
            column += w
        }
    }

    // MARK: Side pane

    static func pane(_ state: ConsoleState, _ layout: Layout, _ screen: inout Screen, clock: (Date) -> String) {
        let area = layout.pane
        let focused = state.focus == .pane && state.mode == .browse
        separator(x: area.x, y: area.y, height: area.height, focused: focused, &screen)
        let x = area.x + 2
        let width = area.width - 2
        var y = area.y
        let used = screen.put("Nodes", x: x, y: y, role: focused ? .focus_border : .border)
        screen.put(state.heartbeatProblem == nil ? "  lag: bytes, age" : "  lag: no heartbeat!", x: x + used, y: y,
                   role: state.heartbeatProblem == nil ? .dim : .lag_warn, limit: width - used)
        y += 1
        for node in state.nodes {
            let item = node.state
            if !item.reachable {
                screen.put(" \(item.name) DOWN ", x: x, y: y, role: .node_down, limit: width)
                screen.put(Screen.fit(item.error ?? "unreachable", to: width - 2), x: x + 1, y: y + 1, role: .dim, limit: width - 1)
                y += 2
                continue
            }
            let roleText = item.role == .primary ? "primary" : item.role == .replica ? "replica" : "unknown"
            var used = screen.put(item.name, x: x, y: y, role: item.role == .primary ? .primary : .replica)
            used += screen.put(" \(roleText)", x: x + used, y: y, role: item.role == .primary ? .primary : .replica)
            let receiver = item.walReceiverStatus.map { $0 == "unknown" ? "receiver ? no pg_monitor" : $0 } ?? "not streaming"
            let detail = item.role == .primary ? " running" : " \(receiver)\(item.replayPaused == true ? " PAUSED" : "")"
            screen.put(detail, x: x + used, y: y, role: item.walReceiverStatus == "streaming" || item.role == .primary ? .dim : .lag_warn, limit: width - used)
            let lagMs = item.lagMilliseconds
            let role = lagRole(lagMs, bytes: item.lagBytes, state)
            let lagText = " \(bytes(item.lagBytes)) \(lagMs.map(milliseconds) ?? "?")"
            let written = screen.put(lagText, x: x, y: y + 1, role: role, limit: width)
            let sparkWidth = width - written - 1
            if sparkWidth > 3 {
                screen.put(sparkline(node.lagHistory.suffix(sparkWidth), state), x: x + written + 1, y: y + 1, role: role)
            }
            y += 2
            if let disagreement = state.patroni?.disagreement(for: item) {
                screen.put(" ≠ \(disagreement)", x: x, y: y, role: .lag_critical, limit: width)
                y += 1
            }
        }
        if let patroni = state.patroni {
            let text: String
            let role: StyleRole
            if let error = patroni.error {
                (text, role) = ("Patroni not answering: \(error)", .lag_critical)
            } else if patroni.paused {
                (text, role) = ("Patroni PAUSED: no automatic failover", .lag_warn)
            } else {
                (text, role) = ("Patroni leader \(patroni.leader ?? "none")", patroni.leader == nil ? .lag_critical : .dim)
            }
            screen.put(text, x: x, y: y, role: role, limit: width)
            y += 1
        }
        y += 1
        guard y < area.y + area.height - 1 else { return }
        var title = "Query log"
        if state.followedFiles > 0 { title += " +\(state.followedFiles) followed" }
        let filters = [state.logContextFilter, state.logSourceFilter].compactMap { $0 }
        if !filters.isEmpty { title += " [\(filters.joined(separator: ", "))]" }
        screen.put(title, x: x, y: y, role: focused ? .focus_border : .border, limit: width)
        y += 1
        let rows = area.y + area.height - y
        guard rows > 0 else { return }
        let log = state.visibleLog
        let labelled = state.followedFiles > 0 || state.log.contains { $0.source != nil }
        for entry in log.suffix(rows) {
            let context = entry.context ?? "-"
            let role: StyleRole = entry.error != nil ? .lag_critical : context == "admin" ? .log_admin : .log_public
            let duration = entry.durationMs < 10 ? String(format: "%.1f", entry.durationMs) : String(format: "%.0f", entry.durationMs)
            let tag = context == "admin" ? "A" : context == "public" ? "P" : String(context.prefix(1))
            let source = labelled ? " " + String((entry.source ?? ConsoleState.localLogSource).prefix(10)) : ""
            // Node and reason code first: they survive the narrowest pane (Q shows the rest).
            let line = "\(entry.node) \(entry.code ?? "-") \(tag)\(source) \(duration) \(entry.sql.split(whereSeparator: \.isWhitespace).joined(separator: " "))"
            screen.put(line, x: x, y: y, role: role, limit: width)
            y += 1
        }
    }

    static func lagRole(_ ms: Double?, bytes: UInt64?, _ state: ConsoleState) -> StyleRole {
        guard let ms else { return (bytes ?? 0) > 0 ? .lag_critical : .dim }
        if ms >= state.criticalLag.milliseconds { return .lag_critical }
        if ms >= state.warnLag.milliseconds { return .lag_warn }
        return .lag_ok
    }

    static func bytes(_ value: UInt64?) -> String {
        guard let value else { return "? B" }
        if value < 1024 { return "\(value) B" }
        if value < 1024 * 1024 { return String(format: "%.1f kB", Double(value) / 1024) }
        return String(format: "%.1f MB", Double(value) / 1_048_576)
    }

    static func milliseconds(_ ms: Double) -> String { formatMilliseconds(ms) }

    static func sparkline<C: Collection>(_ values: C, _ state: ConsoleState) -> String where C.Element == Double? {
        let top = max(state.criticalLag.milliseconds, values.compactMap { $0 }.max() ?? 0, 1)
        return String(values.map { value -> Character in
            guard let value else { return "·" }
            let level = Int((value / top * Double(sparks.count - 1)).rounded())
            return sparks[min(max(level, 0), sparks.count - 1)]
        })
    }

    // MARK: Overlays

    static func box(_ title: String, lines: [(String, StyleRole)], in layout: Layout, width: Int? = nil, _ screen: inout Screen) -> Rect {
        let inner = lines.map { Screen.displayWidth($0.0) }.max() ?? 0
        let boxWidth = min(width ?? max(inner + 4, Screen.displayWidth(title) + 6), layout.width - 4)
        let boxHeight = min(lines.count + 2, layout.height - 4)
        let x = (layout.width - boxWidth) / 2
        let y = max((layout.height - boxHeight) / 2, 1)
        screen.fill(x: x, y: y, width: boxWidth, height: boxHeight, role: .help)
        screen.put("┌" + String(repeating: "─", count: boxWidth - 2) + "┐", x: x, y: y, role: .help)
        screen.put(" \(title) ", x: x + 2, y: y, role: .help)
        for row in 1..<(boxHeight - 1) {
            screen.put("│", x: x, y: y + row, role: .help)
            screen.put("│", x: x + boxWidth - 1, y: y + row, role: .help)
        }
        screen.put("└" + String(repeating: "─", count: boxWidth - 2) + "┘", x: x, y: y + boxHeight - 1, role: .help)
        for (index, line) in lines.prefix(boxHeight - 2).enumerated() {
            screen.put(line.0, x: x + 2, y: y + 1 + index, role: line.1 == .normal ? .help : line.1, limit: boxWidth - 4)
        }
        return Rect(x: x, y: y, width: boxWidth, height: boxHeight)
    }

    /// A recorded value as the history shows it: NULL named, long text cut (control
    /// characters become symbols when drawn, as in the grid).
    static func historyValue(_ value: String?, limit: Int) -> String {
        guard let value else { return "NULL" }
        let flat = value.replacingOccurrences(of: "\n", with: "↵")
        return flat.count > limit ? String(flat.prefix(limit - 1)) + "…" : flat
    }

    static func historyLines(_ view: HistoryView, _ state: ConsoleState, height: Int, width: Int = 116) -> [(String, StyleRole)] {
        guard view.loaded else { return [(state.busy ?? "reading…", .dim)] }
        if let plan = view.revert {
            let change = plan.change
            var lines: [(String, StyleRole)] = [
                ("Revert change #\(change.id): \(change.action.rawValue) of \(change.table) \(change.keyLabel) at \(change.changedAt.prefix(19)) by \(change.role)?", .grid_header),
                ("", .normal),
                ("It runs, on the primary, in the admin context:", .normal),
            ]
            if let note = plan.note { lines.insert((note, .lag_warn), at: 1) }
            lines += wrap(plan.sql, width: max(width - 2, 20)).map { ("  " + $0, .dim) }
            lines.append(("", .normal))
            lines.append(("It is written only if the row is still as you see it now, with a history row naming change #\(change.id).", .normal))
            lines.append(("y: revert   any other key: cancel", .normal))
            return Array(lines.prefix(max(height, 3)))
        }
        if let conflict = view.conflict {
            var lines: [(String, StyleRole)] = [(conflict.reason, .lag_critical), ("", .normal)]
            let name = min(max(conflict.versions.map { Screen.displayWidth($0.column) }.max() ?? 6, 6), 24)
            let cell = max((width - name - 8) / 3, 8)
            func row(_ a: String, _ b: String, _ c: String, _ d: String) -> String {
                [Screen.fit(a, to: name).padding(toLength: name, withPad: " ", startingAt: 0),
                 Screen.fit(b, to: cell).padding(toLength: cell, withPad: " ", startingAt: 0),
                 Screen.fit(c, to: cell).padding(toLength: cell, withPad: " ", startingAt: 0), Screen.fit(d, to: cell)].joined(separator: "  ")
            }
            lines.append((row("column", "before the change", "the change wrote", "now"), .grid_header))
            for version in conflict.versions {
                let now = conflict.rowExists ? historyValue(version.now, limit: cell) : "(no row)"
                let moved = conflict.rowExists ? version.now != (conflict.change.action == .delete ? version.before : version.after) : conflict.change.action != .delete
                lines.append((row(version.column, conflict.change.action == .insert ? "(no row)" : historyValue(version.before, limit: cell),
                                  conflict.change.action == .delete ? "(no row)" : historyValue(version.after, limit: cell), now), moved ? .lag_warn : .normal))
            }
            lines.append(("", .normal))
            lines.append(("Nothing was written. Any key: back to the history", .dim))
            return Array(lines.prefix(max(height, 3)))
        }
        guard !view.entries.isEmpty else {
            return [("No changes recorded\(view.keyLabel == nil ? " for this table" : " for this row") in \(ChangeAudit.table).", .normal), ("", .normal),
                    ("Esc close", .dim)]
        }
        if view.detail, view.entries.indices.contains(view.selected) {
            let entry = view.entries[view.selected]
            var lines: [(String, StyleRole)] = [
                ("\(entry.action.rawValue) \(entry.table) \(entry.keyLabel)  at \(entry.changedAt)", .grid_header),
                (entry.fromTrigger
                    ? "by \(entry.role) through \(entry.application.map { $0.isEmpty ? "an unnamed client" : $0 } ?? "?") from \(entry.clientHost ?? "a local socket") — recorded by the table's trigger, not the console"
                    : "by \(entry.role) (\(entry.osUser ?? "?")@\(entry.clientHost ?? "?"))", .dim), ("", .normal),
            ]
            if let reverts = entry.reverts { lines.insert(("reverts change #\(reverts)", .dim), at: 2) }
            if let statement = entry.statement { lines.insert(("by the statement: \(historyValue(statement, limit: 200))", .dim), at: 2) }
            // Before and after side by side, long values wrapped in their column.
            let name = min(max(entry.changes(order: view.columns).map { Screen.displayWidth($0.column) }.max() ?? 6, 6), 24)
            let cell = max((width - name - 6) / 2, 10)
            lines.append((Screen.fit("column", to: name).padding(toLength: name, withPad: " ", startingAt: 0) + "  "
                          + "before".padding(toLength: cell, withPad: " ", startingAt: 0) + "│ after", .grid_header))
            for change in entry.changes(order: view.columns) {
                // At most six lines a value, so the other columns stay in view.
                func wrapped(_ value: String?) -> [String] {
                    let lines = wrap(historyValue(value, limit: 2000), width: cell - 1)
                    return lines.count <= 6 ? lines : Array(lines.prefix(5)) + ["… (\(Renderer.bytes(UInt64(value?.utf8.count ?? 0))))"]
                }
                let left = entry.action == .insert ? ["(no row)"] : wrapped(change.before)
                let right = entry.action == .delete ? ["(no row)"] : wrapped(change.after)
                for index in 0..<max(left.count, right.count, 1) {
                    let label = index == 0 ? Screen.fit(change.column, to: name) : ""
                    let l = index < left.count ? left[index] : ""
                    let r = index < right.count ? right[index] : ""
                    lines.append((label.padding(toLength: name, withPad: " ", startingAt: 0) + "  " + l.padding(toLength: cell, withPad: " ", startingAt: 0)
                                  + "│ " + r, left != right ? .normal : .dim))
                }
            }
            lines.append(("", .normal))
            lines.append(("Enter/Esc back to the list", .dim))
            return Array(lines.prefix(max(height, 3)))
        }
        let visible = max(height - 2, 1)
        let first = max(0, min(view.selected - visible / 2, view.entries.count - visible))
        var lines: [(String, StyleRole)] = []
        for (index, entry) in view.entries.enumerated().dropFirst(first).prefix(visible) {
            let marker = index == view.selected ? "▶" : " "
            let changes = entry.changes(order: view.columns).map { change -> String in
                switch entry.action {
                case .update: return "\(change.column): \(historyValue(change.before, limit: 40)) → \(historyValue(change.after, limit: 40))"
                case .insert: return "\(change.column)=\(historyValue(change.after, limit: 20))"
                case .delete: return "\(change.column)=\(historyValue(change.before, limit: 20))"
                case .statement: return ""
                }
            }.joined(separator: "  ") + (entry.statement.map { "  ‹\(historyValue($0, limit: 60))›" } ?? "")
                + (entry.reverts.map { "  (reverts #\($0))" } ?? "")
            let time = String(entry.changedAt.prefix(19)).replacingOccurrences(of: "T", with: " ")
            let key = view.keyLabel == nil ? " \(entry.keyLabel)" : ""
            let who = entry.fromTrigger ? "\(entry.role) via \(entry.application.map { $0.isEmpty ? "?" : $0 } ?? "?") (not the console)" : entry.role
            lines.append(("\(marker) #\(entry.id)  \(time)  \(who)  \(entry.action.rawValue)\(key)  \(changes)", index == view.selected ? .selected : .normal))
        }
        lines.append(("", .normal))
        lines.append(("\(view.entries.count) change\(view.entries.count == 1 ? "" : "s"), newest first   ↑↓ choose   Enter diff   u revert   Esc close", .dim))
        return lines
    }

    /// The lag history over the whole area between the header and the hint line: per node a
    /// chart of the worst lag in each slice of the last ten minutes, the warn and critical
    /// lines, now and max, and events marked under the chart.
    static func lagView(_ state: ConsoleState, _ layout: Layout, _ screen: inout Screen) {
        let top = 1, bottom = layout.height - 2
        screen.fill(x: 0, y: top, width: layout.width, height: bottom - top, role: .normal)
        let history = state.lagHistory
        let warn = state.warnLag.milliseconds, critical = state.criticalLag.milliseconds
        screen.put(" Lag, last 10 minutes — warn \(milliseconds(warn)), critical \(milliseconds(critical)); "
                   + "marks: ▼ down ▲ up ★ promoted ▽ demoted ◆ timeline", x: 0, y: top, role: .border, limit: layout.width)
        screen.put(" lag = age of the oldest change the replica has not applied (how stale its data is)"
                   + (state.heartbeatProblem.map { "; no heartbeat (\($0)): an idle replica reads 0" } ?? ", timed by the monitor's heartbeat"),
                   x: 0, y: top + 1, role: state.heartbeatProblem == nil ? .dim : .lag_warn, limit: layout.width)
        let nodes = history.nodes
        guard !nodes.isEmpty, let end = state.lastTopologyAt else {
            screen.put(" no samples yet", x: 0, y: top + 2, role: .dim)
            return
        }
        let axis = 8
        let width = max(layout.width - axis - 2, 10)
        let room = bottom - top - 2
        let perNode = max(room / nodes.count, 4)
        let chartHeight = max(perNode - 3, 1)
        var y = top + 2
        for name in nodes where y + perNode <= bottom + 1 {
            let samples = history.samples[name] ?? []
            let current = samples.last
            let known = samples.compactMap(\.lagMs)
            let peak = known.max() ?? 0
            let nowText: String
            if let current, !current.reachable {
                nowText = "DOWN"
            } else {
                nowText = "\(current?.lagMs.map(milliseconds) ?? "?") / \(bytes(current?.lagBytes))"
            }
            let role = current?.reachable == false ? StyleRole.node_down : lagRole(current?.lagMs, bytes: current?.lagBytes, state)
            var used = screen.put(" \(name) ", x: 0, y: y, role: .grid_header)
            used += screen.put(" now \(nowText)", x: used, y: y, role: role)
            screen.put("   max \(milliseconds(peak))", x: used, y: y, role: .dim, limit: layout.width - used)
            // Scale: at least up to the critical line, so the lines mean the same on every chart.
            let scale = max(peak, critical * 1.25, 1)
            let buckets = history.buckets(name, columns: width, end: end)
            for row in 0..<chartHeight {
                let low = scale * Double(chartHeight - row - 1) / Double(chartHeight)
                let high = scale * Double(chartHeight - row) / Double(chartHeight)
                let lineY = y + 1 + row
                if row == 0 { screen.put(String(milliseconds(scale).prefix(axis - 1)), x: 0, y: lineY, role: .dim) }
                for (column, bucket) in buckets.enumerated() {
                    let x = axis + 1 + column
                    if bucket.down {
                        if row == chartHeight - 1 { screen.put("×", x: x, y: lineY, role: .node_down) }
                        continue
                    }
                    if let lag = bucket.lagMs, lag > low {
                        let glyph = lag >= high ? "█" : "▄"
                        screen.put(glyph, x: x, y: lineY, role: lag >= critical ? .lag_critical : lag >= warn ? .lag_warn : .lag_ok)
                    } else if (low..<high).contains(critical) {
                        screen.put("┄", x: x, y: lineY, role: .lag_critical)
                    } else if (low..<high).contains(warn) {
                        screen.put("┄", x: x, y: lineY, role: .lag_warn)
                    }
                }
            }
            // The time axis with this node's events.
            let axisY = y + 1 + chartHeight
            screen.put("-10 min", x: 0, y: axisY, role: .dim)
            screen.put("now", x: axis + 1 + width - 3, y: axisY, role: .dim)
            let start = end.addingTimeInterval(-LagHistory.window)
            for event in history.events where event.node == name && event.at >= start {
                let column = min(Int(event.at.timeIntervalSince(start) / LagHistory.window * Double(width)), width - 1)
                let mark: String
                switch event.kind {
                case .down: mark = "▼"
                case .up: mark = "▲"
                case .promoted: mark = "★"
                case .demoted: mark = "▽"
                case .timeline: mark = "◆"
                }
                screen.put(mark, x: axis + 1 + column, y: axisY, role: event.kind == .down ? .node_down : .primary)
            }
            y += perNode
        }
        if let last = history.events.last {
            screen.put(" last event: \(last.node) \(last.kind.rawValue) (\(last.detail))", x: 0, y: bottom - 1, role: .dim, limit: layout.width)
        }
    }

    /// The query log over the whole area between the header and the hint line: newest
    /// first, one statement a line (time, source, context, node, ms, rows, reason code, the
    /// reason where there is room, SQL), or the selected one whole.
    static func queryLogView(_ view: QueryLogView, _ state: ConsoleState, _ layout: Layout, _ screen: inout Screen) {
        let top = 1, bottom = layout.height - 2
        let width = layout.width
        screen.fill(x: 0, y: top, width: width, height: bottom - top, role: .normal)
        let entries = view.entries(state.log)
        if let input = view.searchInput {
            let label = screen.put(" Search the SQL for: ", x: 0, y: top, role: .grid_header, limit: width)
            field(input, x: label, y: top, width: max(width - label - 1, 10), &screen)
        } else {
            var title = " Query log — \(entries.count) of \(state.log.count) kept (10 000 per source), newest first"
            if !view.filterLabel.isEmpty { title += " — \(view.filterLabel)" }
            screen.put(title, x: 0, y: top, role: .border, limit: width)
        }
        guard !entries.isEmpty else {
            screen.put(state.log.isEmpty ? " no statements yet" : " no statement matches the filters", x: 0, y: top + 2, role: .dim)
            return
        }
        let selection = view.selectedIndex(entries)
        if view.detail {
            queryLogDetail(entries[selection], x: 1, y: top + 2, width: width - 2, bottom: bottom, &screen)
            return
        }
        // Narrow screens: seconds only, A/P for the context, shorter sources; the SQL keeps the rest.
        let narrow = width < 120
        let timeWidth = narrow ? 8 : 12
        let contextWidth = narrow ? 1 : 6
        let sources = Set(state.log.map { $0.source ?? ConsoleState.localLogSource })
        let sourceWidth = sources.count > 1 ? min(sources.map { Screen.displayWidth($0) }.max() ?? 7, narrow ? 8 : 14) : 0
        let nodeWidth = max(entries.prefix(500).map { Screen.displayWidth($0.node) }.max() ?? 4, 4)
        let fixed = timeWidth + 1 + (sourceWidth > 0 ? sourceWidth + 1 : 0) + contextWidth + 1 + nodeWidth + 1 + 7 + 6 + 9
        // The reason text gets a column of its own once the SQL keeps 60.
        let reasonWidth = min(max(width - fixed - 60, 0), 60)
        func cell(_ text: String, _ size: Int, right: Bool = false) -> String {
            let fitted = Screen.fit(text, to: size)
            let pad = String(repeating: " ", count: max(size - Screen.displayWidth(fitted), 0))
            return right ? pad + fitted : fitted + pad
        }
        func line(_ time: String, _ source: String, _ context: String, _ node: String, _ ms: String, _ rows: String, _ code: String,
                  _ reason: String, _ sql: String) -> String {
            var text = cell(time, timeWidth) + " "
            if sourceWidth > 0 { text += cell(source, sourceWidth) + " " }
            text += cell(context, contextWidth) + " " + cell(node, nodeWidth) + " " + cell(ms, 6, right: true) + " " + cell(rows, 5, right: true)
                + " " + cell(code, 8) + " "
            if reasonWidth > 0 { text += cell(reason, reasonWidth) + " " }
            return text + sql
        }
        screen.put(line(narrow ? "UTC" : "TIME (UTC)", "SOURCE", narrow ? "C" : "CTX", "NODE", "MS", "ROWS", "REASON", "WHY", "SQL"), x: 0, y: top + 1, role: .grid_header, limit: width)
        let rows = ConsoleState.queryLogRows(height: layout.height)
        let first = view.topIndex(entries, rows: rows)
        for (offset, entry) in entries.dropFirst(first).prefix(rows).enumerated() {
            let index = first + offset
            let context = entry.context ?? "-"
            let ms = entry.durationMs < 10 ? String(format: "%.1f", entry.durationMs) : String(format: "%.0f", entry.durationMs)
            let sql = entry.sql.split(whereSeparator: \.isWhitespace).joined(separator: " ")
            let text = line(
                String(timeWithMilliseconds(entry.time).prefix(timeWidth)), entry.source ?? ConsoleState.localLogSource,
                narrow ? (context == "admin" ? "A" : context == "public" ? "P" : String(context.prefix(1))) : context, entry.node, ms,
                entry.rows.map(String.init) ?? "-", entry.code ?? "-", entry.reason, entry.error.map { "ERROR \($0) · " + sql } ?? sql)
            let role: StyleRole = index == selection ? .selected : entry.error != nil ? .lag_critical : context == "admin" ? .log_admin : .log_public
            screen.put(text, x: 0, y: top + 2 + offset, role: role, limit: width)
        }
    }

    /// One query-log entry whole: each field on its own lines, the SQL as written.
    static func queryLogDetail(_ entry: QueryLogEntry, x: Int, y: Int, width: Int, bottom: Int, _ screen: inout Screen) {
        var y = y
        let labelWidth = 10
        let textWidth = max(width - labelWidth - 1, 10)
        for (label, text) in entry.detailFields where y < bottom {
            for (index, piece) in wrap(text, width: textWidth).enumerated() where y < bottom {
                if index == 0 { screen.put(label, x: x, y: y, role: .grid_header) }
                screen.put(piece, x: x + labelWidth + 1, y: y, role: label == "error" ? .lag_critical : .normal, limit: textWidth)
                y += 1
            }
        }
        y += 1
        guard y < bottom else { return }
        screen.put("SQL", x: x, y: y, role: .grid_header)
        y += 1
        for sourceLine in entry.sql.split(separator: "\n", omittingEmptySubsequences: false) {
            for piece in wrap(String(sourceLine), width: width) where y < bottom {
                screen.put(piece, x: x, y: y, role: .normal, limit: width)
                y += 1
            }
        }
    }

    /// `text` cut into lines of at most `width` cells (at spaces where it can).
    static func wrap(_ text: String, width: Int) -> [String] {
        guard width > 0 else { return [text] }
        var lines: [String] = []
        var current = ""
        var currentWidth = 0
        for character in text {
            let w = Screen.displayWidth(character)
            if currentWidth + w > width {
                if let space = current.lastIndex(of: " "), current.distance(from: current.startIndex, to: space) > width / 2 {
                    lines.append(String(current[..<space]))
                    current = String(current[current.index(after: space)...])
                    currentWidth = Screen.displayWidth(current)
                } else {
                    lines.append(current)
                    current = ""
                    currentWidth = 0
                }
            }
            current.append(character)
            currentWidth += w
        }
        lines.append(current)
        return lines
    }

    /// `HH:MM:SS.mmm`, UTC (as the query-log files write it).
    static func timeWithMilliseconds(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parts = calendar.dateComponents([.hour, .minute, .second, .nanosecond], from: date)
        return String(format: "%02d:%02d:%02d.%03d", parts.hour ?? 0, parts.minute ?? 0, parts.second ?? 0, (parts.nanosecond ?? 0) / 1_000_000)
    }

    static func overlay(_ state: ConsoleState, _ layout: Layout, _ screen: inout Screen) {
        switch state.mode {
        case .browse, .filter: return
        case .help(let view):
            let content = Keymap.helpContent(for: view.previous, state: state)
            let visible = max(layout.height - 6, 1)
            let first = min(view.scroll, max(content.count - visible, 0))
            let lines = content.dropFirst(first).prefix(visible).map { line -> (String, StyleRole) in
                switch line.kind {
                case .title: return (line.text, .grid_header)
                case .disabled: return (line.text, .dim)
                case .binding, .blank: return (line.text, .normal)
                }
            }
            let more = content.count > visible ? " (↑↓ \(first + 1)–\(first + lines.count) of \(content.count))" : ""
            _ = box("Keys" + more, lines: Array(lines), in: layout, &screen)
        case .editCell(let edit):
            guard let grid = state.grid else { return }
            let column = grid.shape.columns[edit.column]
            let key = SQLBuilder.describeKey(grid.shape, row: edit.seen)
            let rect = box("Edit \(column.name) (\(column.type)) where \(key)", lines: [("", .normal), ("", .normal)],
                           in: layout, width: min(layout.width - 8, 90), &screen)
            field(edit.field, x: rect.x + 2, y: rect.y + 1, width: rect.width - 4, &screen)
            var status = edit.field.isNull ? "value: NULL" : "\(edit.field.characters.count) characters"
            if column.isDateTime {
                // What the server will read the text as.
                status += "  ·  DateStyle \(grid.shape.dateStyle ?? "?"), time zone \(grid.shape.timeZone ?? "?")"
            } else if TypedValues.isJSON(column.type) {
                status += "  ·  JSON, checked before saving, saved minified (E: pretty in $EDITOR)"
            }
            screen.put(status, x: rect.x + 2, y: rect.y + 2, role: .help, limit: rect.width - 4)
        case .form(let form):
            guard let grid = state.grid else { return }
            let isAdd = form.kind == .add
            let nameWidth = min(grid.shape.columns.map { Screen.displayWidth($0.name) }.max() ?? 8, 24)
            let lines = grid.shape.columns.enumerated().map { index, column -> (String, StyleRole) in
                let required = column.notNull && column.defaultExpression == nil ? "*" : " "
                let name = Screen.fit(column.name, to: nameWidth).padding(toLength: nameWidth, withPad: " ", startingAt: 0)
                var hint = ""
                if isAdd && !form.touched.contains(index) {
                    hint = column.defaultExpression.map { "default: \($0)" } ?? (column.notNull ? "required" : "NULL")
                }
                return ("\(required)\(name) \(hint)", .normal)
            }
            let rect = box(isAdd ? "Add row to \(grid.shape.table.qualifiedName)  (* NOT NULL)" : "Edit row \(SQLBuilder.describeKey(grid.shape, row: form.fieldsSeen))",
                           lines: lines, in: layout, width: min(layout.width - 6, 110), &screen)
            let valueX = rect.x + 2 + nameWidth + 2
            let valueWidth = rect.width - (valueX - rect.x) - 2
            for (index, field) in form.fields.enumerated() where index < rect.height - 2 {
                let y = rect.y + 1 + index
                if isAdd && !form.touched.contains(index) && index != form.cursor { continue }
                screen.fill(x: valueX, y: y, width: valueWidth, height: 1, role: .help)
                if let cut = form.long[index] {
                    let note = "(\(bytes(UInt64(cut.bytes))): Enter on the cell edits it) "
                    let used = screen.put(note, x: valueX, y: y, role: .dim, limit: valueWidth)
                    screen.put(field.value.map { Screen.fit($0, to: valueWidth - used) } ?? "", x: valueX + used, y: y, role: .help,
                               limit: valueWidth - used)
                } else if index == form.cursor {
                    Renderer.field(field, x: valueX, y: y, width: valueWidth, &screen)
                } else {
                    screen.put(field.value.map { Screen.fit($0, to: valueWidth) } ?? "∅", x: valueX, y: y, role: field.isNull ? .null : .help, limit: valueWidth)
                }
            }
        case .confirmRefresh(let table, let sql):
            let lines: [(String, StyleRole)] = [
                ("Refresh \(table.qualifiedName)? It runs, on the primary:", .normal), ("", .normal), (sql, .dim), ("", .normal),
                ("Readers of the view wait until it finishes.", .normal), ("Enter: refresh   any other key: cancel", .normal),
            ]
            _ = box("Refresh materialized view", lines: lines, in: layout, width: min(layout.width - 6, 100), &screen)
        case .confirmDelete(let confirmation):
            let lines: [(String, StyleRole)] = [
                ("Delete the row where \(confirmation.key)?", .normal),
                ("", .normal),
                (confirmation.sql, .dim),
                ("", .normal),
                ("It is deleted only if nobody changed it since you loaded it.", .normal),
                ("y: delete   any other key: cancel", .normal),
            ]
            _ = box("Delete row", lines: lines, in: layout, width: min(layout.width - 6, 110), &screen)
        case .conflict(let conflict):
            guard let grid = state.grid else { return }
            var lines: [(String, StyleRole)] = [
                (conflict.current == nil ? "The row was deleted by someone else." : "The row changed since you loaded it. Nothing was written.", .normal),
                ("", .normal),
            ]
            for (index, mine) in conflict.mine.sorted(by: { $0.key < $1.key }) {
                let name = grid.shape.columns[index].name
                lines.append(("\(name): now \(conflict.current.map { $0[index] ?? "NULL" } ?? "—")", .normal))
                lines.append(("\(String(repeating: " ", count: name.count))  yours \(mine ?? "NULL")", .normal))
            }
            if let current = conflict.current {
                let others = grid.shape.columns.indices.filter { conflict.mine[$0] == nil }
                let changedElsewhere = others.filter { index in
                    if case .editCell(let edit) = conflict.resume { return edit.seen[index] != current[index] }
                    if case .form(let form) = conflict.resume, case .edit(let seen) = form.kind { return seen[index] != current[index] }
                    return false
                }
                for index in changedElsewhere {
                    lines.append(("\(grid.shape.columns[index].name): now \(current[index] ?? "NULL") (changed by someone else)", .normal))
                }
            }
            lines.append(("", .normal))
            lines.append(("Enter: edit again, your input kept   Esc: discard yours", .normal))
            _ = box("Conflict", lines: lines, in: layout, width: min(layout.width - 6, 100), &screen)
        case .lagView:
            lagView(state, layout, &screen)
        case .queryLog(let view):
            queryLogView(view, state, layout, &screen)
        case .exportPrompt(let prompt):
            let table = state.grid?.shape.table
            var scope: [String] = []
            if let filter = state.grid?.filter, let grid = state.grid {
                let names = filter.conditions.compactMap { grid.shape.columns.indices.contains($0.column) ? grid.shape.columns[$0.column].name : nil }
                scope.append("filter on \(names.joined(separator: ", "))")
            }
            if let reference = state.grid?.scope { scope.append("where \(reference.label)") }
            let lines: [(String, StyleRole)] = [
                ("Export \(table?.qualifiedName ?? "?")\(scope.isEmpty ? "" : " (" + scope.joined(separator: ", ") + ")"), sorted as shown", .normal),
                ("", .normal),
                ("Format  \(prompt.format.label)\(prompt.format == .csv ? " (RFC 4180, header, NULL as '\(state.exportNull)')" : " (one JSON object per line)")   Tab", .normal),
                ("Source  \(prompt.fromReplica ? "least-lagging replica within the lag limit (spares the primary)" : "primary (what you just saved)")   Shift-Tab", .normal),
                ("File", .normal),
                ("", .normal),
                ("Enter: export (streamed, COPY … TO STDOUT)   Esc: cancel", .dim),
            ]
            let rect = box("Export", lines: lines, in: layout, width: min(layout.width - 6, 100), &screen)
            field(prompt.path, x: rect.x + 10, y: rect.y + 5, width: rect.width - 14, &screen)
        case .exporting(let status):
            let estimate = max(status.job.shape.table.estimatedRows, 0)
            let elapsed = max(status.updated.timeIntervalSince(status.started), 0.001)
            let rate = Double(status.bytes) / elapsed
            var lines: [(String, StyleRole)] = []
            let barWidth = min(layout.width - 16, 60)
            if estimate > 0 {
                let fraction = min(Double(status.rows) / Double(estimate), 1)
                let filled = Int(fraction * Double(barWidth))
                lines.append(("[" + String(repeating: "█", count: filled) + String(repeating: "░", count: barWidth - filled) + "] \(Int(fraction * 100))%", .lag_ok))
                let rowRate = Double(status.rows) / elapsed
                let eta = rowRate > 0 ? max(Double(estimate - Int64(status.rows)) / rowRate, 0) : 0
                lines.append(("\(status.rows) of ~\(shortCount(estimate)) rows   \(bytes(UInt64(status.bytes)))   \(bytes(UInt64(rate)))/s   ETA \(Int(eta.rounded())) s", .normal))
            } else {
                lines.append(("\(status.rows) rows   \(bytes(UInt64(status.bytes)))   \(bytes(UInt64(rate)))/s", .normal))
            }
            lines.append(("to \(status.job.path)", .dim))
            lines.append(("Esc cancels (the partial file is removed)", .dim))
            _ = box("Exporting \(status.job.shape.table.qualifiedName)", lines: lines, in: layout, width: min(layout.width - 6, barWidth + 10), &screen)
        case .pick(let pick):
            let name = state.grid.flatMap { $0.shape.columns.indices.contains(pick.column) ? $0.shape.columns[pick.column].name : nil } ?? "value"
            var lines: [(String, StyleRole)] = []
            for (index, choice) in pick.choices.enumerated() {
                let marker = index == pick.selected ? "▶" : " "
                let current = choice == pick.seen[pick.column] ? "  (now)" : ""
                lines.append(("\(marker) \(choice ?? "NULL")\(current)", index == pick.selected ? .selected : choice == nil ? .null : .normal))
            }
            lines.append(("", .normal))
            lines.append(("↑↓ choose   Enter save   Esc cancel", .dim))
            _ = box("Choose \(name)", lines: lines, in: layout, &screen)
        case .references(let view):
            var lines: [(String, StyleRole)] = []
            if !view.loaded {
                lines.append((state.busy ?? "counting…", .dim))
            } else if view.items.isEmpty {
                lines.append(("No foreign key references this table.", .normal))
            } else {
                for (index, item) in view.items.enumerated() {
                    let count = item.count.map { "\($0) row\($0 == 1 ? "" : "s")" } ?? "not counted: \(item.uncounted ?? "?")"
                    let marker = index == view.selected ? "▶" : " "
                    lines.append(("\(marker) \(item.table.qualifiedName) (\(item.columns.joined(separator: ", ")))  \(count)",
                                  index == view.selected ? .selected : .normal))
                }
            }
            lines.append(("", .normal))
            lines.append(("↑↓ choose   Enter open them   Esc close", .dim))
            _ = box(view.title, lines: lines, in: layout, width: min(layout.width - 4, 100), &screen)
        case .history(let view):
            _ = box(view.title, lines: historyLines(view, state, height: layout.height - 6, width: layout.width - 8), in: layout, width: layout.width - 4, &screen)
        case .failover(let view):
            var lines: [(String, StyleRole)] = [(view.summary ?? (state.busy != nil ? "running checks…" : ""), .normal), ("", .normal)]
            // On a small terminal, passing checks collapse into one line.
            let room = layout.height - 8 - view.candidates.count - (view.confirmation == nil ? 0 : 4) - 4
            let passed = view.results.filter { $0.status == .pass }
            let shown = view.results.count > room ? view.results.filter { $0.status != .pass } : view.results
            if shown.count < view.results.count { lines.append(("\(passed.count) checks passed", .lag_ok)) }
            for result in shown {
                let role: StyleRole = result.status == .pass ? .lag_ok : result.status == .warn ? .lag_warn : .lag_critical
                let node = (result.node ?? "-").padding(toLength: 5, withPad: " ", startingAt: 0)
                lines.append(("\(result.status.rawValue.padding(toLength: 7, withPad: " ", startingAt: 0)) \(result.check.padding(toLength: 12, withPad: " ", startingAt: 0)) \(node) \(result.summary)", role))
            }
            if !view.candidates.isEmpty {
                lines.append(("", .normal))
                lines.append(("Candidates, best first (↑↓ choose, P promote):", .normal))
                for (index, candidate) in view.candidates.enumerated() {
                    let marker = index == view.selected ? "▶" : " "
                    let behind = candidate.missingBytes.map { "\($0) bytes behind" } ?? "primary unknown"
                    let ineligible = candidate.ineligible.map { "  (Patroni would not promote it: \($0))" } ?? ""
                    lines.append(("\(marker) \(index + 1). \(candidate.node)  received \(candidate.receiveLSN?.description ?? "?")  \(behind)\(ineligible)",
                                  index == view.selected ? .selected : .normal))
                }
            }
            if view.confirmation != nil, view.candidates.indices.contains(view.selected) {
                let target = view.candidates[view.selected].node
                lines.append(("", .normal))
                if state.patroni != nil {
                    lines.append(("Promote \(target)? Patroni switches over to it (fails over when there is no healthy", .normal))
                    lines.append(("leader); the others follow it. Never pg_promote() here. Type \(target) to confirm:", .normal))
                } else {
                    lines.append(("Promote \(target)? It runs pg_promote() on \(target), then repoints the other replicas", .normal))
                    lines.append(("to it. Type \(target) to confirm:", .normal))
                }
                lines.append(("", .normal))
            }
            lines.append(("", .normal))
            lines.append(("r re-run   Esc close", .dim))
            let rect = box("Failover readiness", lines: lines, in: layout, width: min(layout.width - 4, 120), &screen)
            if let field = view.confirmation {
                Renderer.field(field, x: rect.x + 2, y: rect.y + rect.height - 4, width: 24, &screen)
            }
        case .sqlPrompt(let prompt):
            sqlPrompt(prompt, state, layout, &screen)
        case .clusterList(let selected):
            var lines: [(String, StyleRole)] = state.clusterNames.enumerated().map { index, name in
                ((index == selected ? "▶ " : "  ") + name + (index == 0 ? "  (this one)" : ""), index == selected ? .selected : .normal)
            }
            lines += [("", .normal), ("↑↓ choose   Enter switch (each keeps its place)   Esc stay", .dim)]
            _ = box("Clusters", lines: lines, in: layout, &screen)
        case .copyRow(let prompt):
            let key = state.grid.flatMap { grid in grid.selectedRow.map { SQLBuilder.describeKey(grid.shape, row: $0) } } ?? ""
            let rect = box("Copy the row \(key)", lines: [
                ("Format  \(RowCopy.Format.allCases.map { $0 == prompt.format ? "[\($0.label)]" : $0.label }.joined(separator: " "))   Tab", .normal),
                ("File", .normal),
                ("", .normal),
                ("Enter: copy (the whole row, read again) — with no file, to the terminal's clipboard (OSC 52)   Esc: cancel", .dim),
            ], in: layout, width: min(layout.width - 6, 110), &screen)
            field(prompt.path, x: rect.x + 8, y: rect.y + 2, width: rect.width - 12, &screen)
        case .tableSearch(let field):
            let rect = box("Find a table", lines: [("", .normal), ("Enter opens it   Esc stops", .dim)], in: layout, width: 50, &screen)
            Renderer.field(field, x: rect.x + 2, y: rect.y + 1, width: rect.width - 4, &screen)
        case .rowView(let view):
            guard let grid = state.grid, grid.rows.indices.contains(view.row) else { return }
            let row = grid.rows[view.row]
            let long = grid.longValues(view.row)
            let nameWidth = min(grid.shape.columns.map { Screen.displayWidth($0.name) }.max() ?? 8, 24)
            let valueWidth = max(layout.width - 8 - nameWidth - 3, 10)
            var lines: [(String, StyleRole)] = []
            var selectedLine = 0
            for (index, column) in grid.shape.columns.enumerated() where !grid.hidden.contains(index) {
                let name = Screen.fit(column.name, to: nameWidth).padding(toLength: nameWidth, withPad: " ", startingAt: 0)
                let value = row.indices.contains(index) ? row[index] : nil
                var wrapped = value.map { wrap(TerminalText.sanitized($0), width: valueWidth) } ?? ["∅ NULL"]
                if let cut = long[index] { wrapped.append("… (\(bytes(UInt64(cut.bytes))) in all: Enter edits it whole)") }
                if index == view.column { selectedLine = lines.count }
                for (offset, part) in wrapped.prefix(12).enumerated() {
                    let marker = index == view.column && offset == 0 ? "▶ " : "  "
                    lines.append((marker + (offset == 0 ? name : String(repeating: " ", count: nameWidth)) + "  " + part,
                                  index == view.column ? .selected : value == nil ? .null : .normal))
                }
                if wrapped.count > 12 { lines.append(("  " + String(repeating: " ", count: nameWidth) + "  … \(wrapped.count - 12) more lines", .dim)) }
            }
            let room = max(layout.height - 8, 3)
            let first = max(0, min(selectedLine - room / 2, lines.count - room))
            let key = SQLBuilder.describeKey(grid.shape, row: row)
            _ = box("Row \(key.isEmpty ? String(view.row + 1) : key) of \(grid.shape.table.qualifiedName)",
                    lines: Array(lines.dropFirst(first).prefix(room)) + [("", .normal), ("↑↓ column   Enter edit   Esc back", .dim)],
                    in: layout, width: layout.width - 4, &screen)
        case .confirmProtected(let write):
            var under = state
            under.mode = write.previous
            overlay(under, layout, &screen)
            let rect = box("\(state.clusterName) is protected", lines: [
                ("About to \(write.summary).", .normal), ("", .normal),
                ("Type the cluster's name (\(state.clusterName)) and Enter to write it; Esc: nothing is written.", .normal),
                ("", .normal),
            ], in: layout, width: min(layout.width - 8, 90), &screen)
            field(write.field, x: rect.x + 2, y: rect.y + 4, width: min(rect.width - 4, 40), &screen)
        case .bulkSet(let prompt):
            guard let grid = state.grid, grid.shape.columns.indices.contains(prompt.column) else { return }
            let column = grid.shape.columns[prompt.column]
            let rect = box("Set \(column.name) (\(column.type)) on \(grid.marks.label ?? "the marked rows")",
                           lines: [("", .normal), ("Enter: run it held — the count and the rows before and after are shown, y commits   Esc: cancel", .dim)],
                           in: layout, width: min(layout.width - 8, 100), &screen)
            field(prompt.field, x: rect.x + 2, y: rect.y + 1, width: rect.width - 4, &screen)
        case .confirmQuit(let previous):
            if case .sqlPrompt(let prompt) = previous {
                sqlPrompt(prompt, state, layout, &screen)
                _ = box("Quit?", lines: [("A write is held open, not committed. Quit and roll it back?", .normal), ("y: quit   any other key: back", .normal)], in: layout, &screen)
                return
            }
            _ = box("Quit?", lines: [("An edit is not saved. Quit and lose it?", .normal), ("y: quit   any other key: back", .normal)], in: layout, &screen)
        }
    }
}

extension RowForm {
    /// The row the form was opened on (edit forms), for its title.
    var fieldsSeen: [String?] {
        if case .edit(let seen) = kind { return seen }
        return fields.map(\.value)
    }
}
