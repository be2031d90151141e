import Foundation
import Switchyard

extension Renderer {
    /// The SQL prompt over the whole body: the statement, a line on the transaction, and
    /// the outcome (rows, text, or a held write with its rows before and after).
    static func sqlPrompt(_ prompt: SQLPrompt, _ state: ConsoleState, _ layout: Layout, _ screen: inout Screen) {
        let top = 1
        let bottom = layout.hints.y
        let width = layout.width
        screen.fill(x: 0, y: top, width: width, height: bottom - top, role: .normal)
        let label = " SQL "
        let used = screen.put(label, x: 0, y: top, role: .badge)
        if case .typing = prompt.phase {
            field(prompt.field, x: used + 1, y: top, width: width - used - 2, &screen)
        } else {
            screen.put(prompt.statement ?? prompt.field.value ?? "", x: used + 1, y: top, role: .dim, limit: width - used - 2)
        }
        let infoY = top + 1
        let bodyY = top + 2
        let bodyHeight = max(bottom - bodyY, 0)
        switch prompt.phase {
        case .typing:
            var info = "one statement, in the admin context on the primary; each runs in its own transaction"
            if let recalled = prompt.recalled { info = "history \(recalled + 1) of \(state.promptHistory.count)   " + info }
            screen.put(info, x: 1, y: infoY, role: .dim, limit: width - 2)
            let lines = [
                "Enter runs it. A query's rows open here, a page at a time from a server-side cursor.",
                "A statement that writes runs in a transaction held open: you see what it did (rows before",
                "and after) and y commits it, n rolls it back. EXPLAIN ANALYZE asks first: it executes.",
                "Each committed write goes into the change history with its statement.",
            ]
            for (index, line) in lines.prefix(bodyHeight).enumerated() {
                screen.put(line, x: 2, y: bodyY + 1 + index, role: .dim, limit: width - 4)
            }
        case .confirmAnalyze(let statement):
            screen.put("EXPLAIN ANALYZE executes the statement. Everything it does is rolled back afterwards,", x: 1, y: bodyY, role: .lag_warn, limit: width - 2)
            screen.put("but it runs for real meanwhile (locks, triggers, sequences move on).", x: 1, y: bodyY + 1, role: .lag_warn, limit: width - 2)
            screen.put(statement.text, x: 1, y: bodyY + 3, role: .dim, limit: width - 2)
            screen.put("y: run it   any other key: back", x: 1, y: bodyY + 5, role: .normal, limit: width - 2)
        case .rows(let rows):
            let last = rows.offset + rows.rows.count
            let range = rows.rows.isEmpty ? "no rows" : "rows \(rows.offset + 1)–\(last)\(rows.atEnd ? " of \(last)" : " (more follow)")"
            if rows.atEnd && rows.offset == 0 {
                // The whole result came at once: its transaction has ended already.
                screen.put(" \(range)   (all of them; the transaction has ended)   Esc back to the statement", x: 1, y: infoY, role: .dim, limit: width - 2)
            } else {
                screen.put(" TRANSACTION OPEN (read) ", x: 1, y: infoY, role: .lag_warn)
                screen.put("  \(range)   Esc closes it", x: 26, y: infoY, role: .dim, limit: width - 27)
            }
            promptRows(rows, prompt, x: 1, y: bodyY, width: width - 2, height: bodyHeight, &screen)
        case .text(let title, let lines):
            screen.put(title, x: 1, y: infoY, role: .grid_header, limit: width - 2)
            for (index, line) in lines.dropFirst(prompt.scroll).prefix(bodyHeight).enumerated() {
                screen.put(line, x: 1, y: bodyY + index, role: .normal, limit: width - 2)
            }
        case .held(let write):
            let rolls = timeOfDay(write.expires)
            let badge = " TRANSACTION OPEN — NOT COMMITTED "
            let badgeWidth = screen.put(badge, x: 1, y: infoY, role: .error)
            screen.put("  \(write.summary)   y commits, n rolls back; rolls back by itself at \(rolls)", x: 1 + badgeWidth, y: infoY,
                       role: .lag_warn, limit: width - badgeWidth - 2)
            var lines: [(String, StyleRole)] = []
            if let note = write.note { lines.append((note, .dim)) }
            if write.sample.isEmpty {
                lines.append((write.rows.map { "\($0) row\($0 == 1 ? "" : "s")" } ?? "no rows reported", .normal))
            }
            let more = (write.rows ?? 0) - write.sample.count
            for entry in write.sample.dropFirst(prompt.scroll) {
                lines.append(contentsOf: heldLines(entry, columns: write.columns))
            }
            if more > 0 && write.sample.count > 0 { lines.append(("… and \(more) more row\(more == 1 ? "" : "s") not shown", .dim)) }
            for (index, line) in lines.prefix(bodyHeight).enumerated() {
                screen.put(line.0, x: 1, y: bodyY + index, role: line.1, limit: width - 2)
            }
        }
    }

    /// One row of a held write: its key, then each column before → after.
    static func heldLines(_ entry: ChangeAudit.Entry, columns: [String]) -> [(String, StyleRole)] {
        var lines: [(String, StyleRole)] = []
        let action = entry.action == .statement ? "" : entry.action.rawValue + " "
        lines.append(("\(action)\(entry.keyLabel == "-" ? "" : entry.keyLabel)", .grid_header))
        for change in entry.changes(order: columns) {
            switch entry.action {
            case .insert, .statement:
                lines.append(("   \(change.column) = \(historyValue(change.after, limit: 80))", .normal))
            case .delete:
                lines.append(("   \(change.column) was \(historyValue(change.before, limit: 80))", .normal))
            case .update:
                lines.append(("   \(change.column): \(historyValue(change.before, limit: 60)) → \(historyValue(change.after, limit: 60))", .normal))
            }
        }
        return lines
    }

    /// A page of a prompt query: column names, then the rows; the cursor row marked.
    static func promptRows(_ rows: PromptRows, _ prompt: SQLPrompt, x: Int, y: Int, width: Int, height: Int, _ screen: inout Screen) {
        guard height > 1 else { return }
        if rows.columns.isEmpty {
            screen.put("(the statement returns no columns)", x: x, y: y, role: .dim, limit: width)
            return
        }
        // Column widths from the names and this page's values, each at most 40.
        var columns: [(index: Int, width: Int)] = []
        var used = 2
        for index in prompt.firstColumn..<rows.columns.count {
            var size = Screen.displayWidth(rows.columns[index])
            for row in rows.rows where row.indices.contains(index) {
                size = max(size, min(Screen.displayWidth(Screen.fit(row[index] ?? "∅", to: 40)), 40))
            }
            size = min(max(size, 4), 40)
            if used + size > width, !columns.isEmpty { break }
            columns.append((index, min(size, width - used)))
            used += size + 1
        }
        var column = x + 2
        for (index, size) in columns {
            screen.put(Screen.fit(rows.columns[index], to: size), x: column, y: y, role: .grid_header, limit: size)
            column += size + 1
        }
        if prompt.firstColumn > 0 { screen.put("◀", x: x, y: y, role: .dim) }
        if let last = columns.last?.index, last < rows.columns.count - 1 { screen.put("▶", x: x + width - 1, y: y, role: .dim) }
        for (rowIndex, row) in rows.rows.prefix(height - 1).enumerated() {
            let rowY = y + 1 + rowIndex
            let selected = rowIndex == prompt.cursorRow
            if selected {
                screen.fill(x: x, y: rowY, width: width, height: 1, role: .selected)
                screen.put("▶", x: x, y: rowY, role: .selected)
            }
            var column = x + 2
            for (index, size) in columns where row.indices.contains(index) {
                let value = row[index]
                let role: StyleRole = selected ? .selected : (value == nil ? .null : .normal)
                screen.put(value.map { Screen.fit($0, to: size) } ?? "∅", x: column, y: rowY, role: role, limit: size)
                column += size + 1
            }
        }
    }
}
