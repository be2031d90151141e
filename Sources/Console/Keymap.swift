/// Where a key binding applies: one of the console's modes, or the browse mode with a
/// given focus. A state is in one or more scopes at once (``ConsoleState/scopes``); the
/// first scope that binds a key wins.
public enum KeyScope: String, Sendable, CaseIterable {
    case tables, grid, pane, browse
    case busy, tooSmall
    case editCell, form, filter, textField
    case confirmDelete, confirmRefresh, conflict, failover, promote, history, references, pick, lagView, queryLog, logSearch, exportPrompt
    case sqlPrompt, confirmAnalyze, promptRows, promptText, promptHeld, confirmRevert, revertConflict, bulkSet, confirmProtected
    case rowView, tableSearch, copyRow, clusterList
    case help, confirmQuit

    /// The section title in the help box.
    public var title: String {
        switch self {
        case .tables: return "Table list"
        case .grid: return "Records"
        case .pane: return "Nodes and query log"
        case .browse: return "Anywhere while browsing"
        case .busy: return "While a query runs"
        case .tooSmall: return "Terminal too small"
        case .editCell: return "Editing a cell"
        case .form: return "Row form"
        case .filter: return "Filter prompt"
        case .textField: return "Typing in a field"
        case .confirmDelete: return "Delete confirmation"
        case .confirmRefresh: return "Refresh confirmation"
        case .conflict: return "Conflict"
        case .failover: return "Failover view"
        case .history: return "Change history"
        case .references: return "Referencing tables"
        case .pick: return "Pick list"
        case .lagView: return "Lag history"
        case .queryLog: return "Query log (Q)"
        case .logSearch: return "Searching the query log"
        case .exportPrompt: return "Export"
        case .promote: return "Promotion confirmation"
        case .confirmRevert: return "Revert confirmation"
        case .bulkSet: return "Setting a column on the marked rows"
        case .confirmProtected: return "A write on a protected cluster"
        case .rowView: return "One row, every column (o)"
        case .tableSearch: return "Finding a table (/)"
        case .copyRow: return "Copying a row (c)"
        case .clusterList: return "Clusters (C)"
        case .revertConflict: return "A change that cannot be reverted"
        case .sqlPrompt: return "SQL prompt (:)"
        case .confirmAnalyze: return "EXPLAIN ANALYZE confirmation"
        case .promptRows: return "A query's rows (its transaction open)"
        case .promptText: return "A statement's text output"
        case .promptHeld: return "A write waiting for y (its transaction open)"
        case .help: return "Help"
        case .confirmQuit: return "Quit confirmation"
        }
    }
}

/// What a key asks for. Each mode's `handle` interprets the commands of its scopes.
public enum Command: Sendable, Equatable {
    case quit, help, failover, focusNext, focusPrevious
    case up, down, left, right, pageUp, pageDown, first, last
    case open, reloadTables, refresh
    case editCell, editRow, addRow, deleteRow, sort, filter
    case save, cancel, next, previous
    case nextOperator, previousOperator
    case confirm, dismiss, editAgain, rerun, promote, cancelQuery
    case scrollUp, scrollDown, externalEdit
    case logAdminOnly, logPublicOnly, logNextSource, logNextNode, queryLogView
    case rowHistory, tableHistory
    case followReference, showReferences, back
    case toggle, editInEditor, refreshView, lagHistory, export, nextFormat, switchSource
    case toggleTables, togglePane, repaint
    case sqlPrompt, revert
    case mark, markMatching, bulkDelete, bulkSet
    case hideColumn, showColumns, narrower, wider, rowView, search, copyRow, clusters
    /// The key goes to the text field being edited (typing, cursor, Ctrl-U, Ctrl-N).
    case type
}

/// One key binding: the keys, where they apply, what they do, how help and the hint line
/// describe them, and why they are unavailable in a given state.
public struct Binding: Sendable {
    /// The keys; empty means "any key no other binding of the scope takes".
    public var keys: [Key]
    public var scopes: [KeyScope]
    public var command: Command
    /// The keys as the help box and the README show them; defaults to the keys' names.
    public var keyLabel: String
    /// Short label for the hint line; nil keeps the binding out of it.
    public var hint: String?
    /// Keys as the hint line shows them (defaults to ``keyLabel``).
    public var hintKeys: String?
    /// One sentence for the help box and the README.
    public var help: String
    /// Why the binding does nothing in this state (nil: it is available).
    public var disabledReason: (@Sendable (ConsoleState) -> String?)?

    init(_ keys: [Key], _ scopes: [KeyScope], _ command: Command, label: String? = nil, hint: String? = nil,
         hintKeys: String? = nil, help: String, disabledReason: (@Sendable (ConsoleState) -> String?)? = nil) {
        self.keys = keys
        self.scopes = scopes
        self.command = command
        self.keyLabel = label ?? (keys.isEmpty ? "any other key" : keys.map(\.label).joined(separator: " "))
        self.hint = hint
        self.hintKeys = hintKeys
        self.help = help
        self.disabledReason = disabledReason
    }

    func matches(_ key: Key) -> Bool { keys.isEmpty || keys.contains(key) }
}

extension Key {
    /// How help and the README name the key.
    public var label: String {
        switch self {
        case .character(" "): return "Space"
        case .character(let character): return String(character)
        case .control(let character): return "Ctrl-\(character.uppercased())"
        case .enter: return "Enter"
        case .escape: return "Esc"
        case .tab: return "Tab"
        case .backTab: return "Shift-Tab"
        case .backspace: return "Backspace"
        case .delete: return "Delete"
        case .up: return "↑"
        case .down: return "↓"
        case .left: return "←"
        case .right: return "→"
        case .pageUp: return "PgUp"
        case .pageDown: return "PgDn"
        case .home: return "Home"
        case .end: return "End"
        case .function(let number): return "F\(number)"
        }
    }
}

/// Every key the console understands, in the order help shows them. Dispatch, the hint
/// line, the `?` help and the README's key table all read this one table.
public enum Keymap {
    public static let bindings: [Binding] = [
        // Table list.
        Binding([.up, .character("k")], [.tables], .up, hint: "move", hintKeys: "↑↓", help: "previous table"),
        Binding([.down, .character("j")], [.tables], .down, help: "next table"),
        Binding([.home, .character("g")], [.tables], .first, help: "first table"),
        Binding([.end, .character("G")], [.tables], .last, help: "last table"),
        Binding([.pageUp], [.tables], .pageUp, help: "ten tables up"),
        Binding([.pageDown], [.tables], .pageDown, help: "ten tables down"),
        Binding([.enter, .right, .character("l")], [.tables], .open, hint: "open", hintKeys: "Enter",
                help: "open the table under the cursor", disabledReason: { $0.tables.isEmpty ? "no tables to open" : nil }),
        Binding([.character("r")], [.tables], .reloadTables, hint: "reload", help: "reload the table list"),
        Binding([.character("/")], [.tables], .search, hint: "find", help: "find a table: the cursor jumps to the first name holding what you type"),

        // Records.
        Binding([.up, .character("k")], [.grid], .up, hint: "move", hintKeys: "↑↓←→", help: "previous row (loads the page before at the top)"),
        Binding([.down, .character("j")], [.grid], .down, help: "next row (loads the next page at the bottom)"),
        Binding([.left, .character("h")], [.grid], .left, help: "previous column"),
        Binding([.right, .character("l")], [.grid], .right, help: "next column"),
        Binding([.pageUp, .control("b")], [.grid], .pageUp, help: "page before (keyset pagination, never OFFSET)"),
        Binding([.pageDown, .control("f")], [.grid], .pageDown, help: "next page"),
        Binding([.character("g"), .home], [.grid], .first, hint: "first/last", hintKeys: "g/G", help: "first page"),
        Binding([.character("G"), .end], [.grid], .last, help: "last page"),
        Binding([.enter], [.grid], .editCell, hint: "edit", help: "edit the cell (Enter saves, Esc cancels, Ctrl-N sets NULL)",
                disabledReason: { writeRefusal($0, needsRow: true) }),
        Binding([.character("e")], [.grid], .editRow, hint: "row", help: "edit the whole row in a form",
                disabledReason: { writeRefusal($0, needsRow: true) }),
        Binding([.character("a")], [.grid], .addRow, hint: "add", help: "add a row (untouched fields take their defaults)",
                disabledReason: { writeRefusal($0, needsRow: false, privilege: .insert) }),
        Binding([.character("d")], [.grid], .deleteRow, hint: "delete", help: "delete the row (shows the SQL, asks first)",
                disabledReason: { writeRefusal($0, needsRow: true, privilege: .delete) }),
        Binding([.character("s")], [.grid], .sort, hint: "sort", help: "sort by the column (again: descending, again: off)",
                disabledReason: { noColumns($0) }),
        Binding([.character("/")], [.grid], .filter, hint: "filter", help: "filter: column ▲▼, operator Tab, value; / again adds a condition (AND)",
                disabledReason: { noColumns($0) }),
        Binding([.character("r")], [.grid], .refresh, hint: "refresh", help: "reload the rows on screen"),
        Binding([.character("H")], [.grid], .rowHistory, hint: "history", help: "the change history of the row under the cursor (switchyard.changes)",
                disabledReason: { Keymap.historyRefusal($0, needsRow: true) }),
        Binding([.character(" ")], [.grid], .toggle, label: "Space", hint: "toggle", help: "flip a boolean cell (true ↔ false; NULL → true) and save it",
                disabledReason: { Keymap.toggleRefusal($0) }),
        Binding([.character("E")], [.grid], .editInEditor, help: "edit the cell in $VISUAL or $EDITOR (JSON pretty-printed there)",
                disabledReason: { Keymap.writeRefusal($0, needsRow: true) }),
        Binding([.character("M")], [.grid, .tables], .refreshView, hint: "refresh view",
                help: "REFRESH MATERIALIZED VIEW of the materialized view (asks first, showing the statement)",
                disabledReason: { Keymap.refreshRefusal($0) }),
        Binding([.character("x")], [.grid], .export, hint: "export",
                help: "export the table as shown (filter, sort) to CSV or JSON Lines, streamed with COPY",
                disabledReason: { Keymap.noColumns($0) }),
        Binding([.character("f")], [.grid], .followReference, hint: "follow", help: "open the row this foreign-key cell references",
                disabledReason: { Keymap.followRefusal($0) }),
        Binding([.character("R")], [.grid], .showReferences, help: "the tables and rows that reference this row (with counts); Enter opens them",
                disabledReason: { Keymap.historyRefusal($0, needsRow: true) }),
        Binding([.backspace], [.grid], .back, hint: "back", hintKeys: "⌫", help: "back along the trail of followed references, to the same row",
                disabledReason: { $0.trail.isEmpty ? "nothing to go back to: follow a reference with f or R first" : nil }),
        Binding([.character("v")], [.grid], .mark, hint: "mark", help: "mark or unmark the row for a bulk action (and move down)",
                disabledReason: { Keymap.writeRefusal($0, needsRow: true, privilege: nil) }),
        Binding([.character("V")], [.grid], .markMatching, help: "mark every row the filter matches (all rows without one); again: clear the marks",
                disabledReason: { Keymap.writeRefusal($0, needsRow: false, privilege: nil) }),
        Binding([.character("D")], [.grid], .bulkDelete, hint: "delete marked",
                help: "delete the marked rows: one transaction, shown (count, rows) before y, a history row each",
                disabledReason: { Keymap.bulkRefusal($0, privilege: .delete) }),
        Binding([.character("=")], [.grid], .bulkSet, help: "set the cursor's column on all marked rows to one value (shown before y)",
                disabledReason: { Keymap.bulkRefusal($0, privilege: .update) }),
        Binding([.character("o")], [.grid], .rowView, hint: "row view", help: "the row top to bottom: every column, long values wrapped; Enter edits one",
                disabledReason: { state in state.grid?.selectedRow == nil ? "no row selected" : nil }),
        Binding([.character("z")], [.grid], .hideColumn, help: "hide the column (Z shows every column again)",
                disabledReason: { state in
                    guard let grid = state.grid else { return "open a table first" }
                    return grid.shape.columns.count - grid.hidden.count <= 1 ? "the last column shown stays" : nil
                }),
        Binding([.character("Z")], [.grid], .showColumns, help: "show every hidden column",
                disabledReason: { state in state.grid?.hidden.isEmpty != false ? "no column is hidden" : nil }),
        Binding([.character("c")], [.grid], .copyRow, hint: "copy", help: "copy the row, whole, as CSV, JSON or an INSERT: to the clipboard (OSC 52) or a file",
                disabledReason: { state in state.grid?.selectedRow == nil ? "no row selected" : state.grid?.shape.hasPrimaryKey == false ? "no primary key: the row cannot be read whole again" : nil }),
        Binding([.character("<")], [.grid], .narrower, help: "narrow the column"),
        Binding([.character(">")], [.grid], .wider, help: "widen the column"),
        Binding([.character("T")], [.grid], .tableHistory, help: "the recent changes to the open table",
                disabledReason: { Keymap.historyRefusal($0, needsRow: false) }),

        // Side pane.
        Binding([.character("r")], [.pane], .refresh, hint: "refresh", help: "reload the open table's rows (or the table list)"),
        Binding([.character("A")], [.pane], .logAdminOnly, hint: "admin", help: "query log: only admin-context statements (again: all)"),
        Binding([.character("P")], [.pane], .logPublicOnly, hint: "public", help: "query log: only public-context statements (again: all)"),
        Binding([.character("S")], [.pane], .logNextSource, hint: "source",
                help: "query log: only one source (this console, or a followed app), next on each press, then all"),

        // Anywhere while browsing.
        Binding([.tab], [.browse], .focusNext, hint: "focus", help: "move focus: tables, records, nodes and log"),
        Binding([.backTab], [.browse], .focusPrevious, help: "move focus back"),
        Binding([.character("L")], [.browse], .lagHistory, hint: "lag", help: "every node's lag over the last 10 minutes, with events"),
        Binding([.character("Q")], [.browse], .queryLogView, hint: "log", help: "the whole query log, full screen: which node served each statement, and why"),
        Binding([.control("l")], [.browse], .repaint, label: "Ctrl-L", help: "repaint the whole screen"),
        Binding([.character("[")], [.browse], .toggleTables, help: "hide or show the table list (the grid takes its room)"),
        Binding([.character("]")], [.browse], .togglePane, help: "hide or show the nodes and query log pane (the grid takes its room)"),
        Binding([.character("F")], [.browse], .failover, hint: "failover", help: "failover readiness: checks, candidates, guarded promote"),
        Binding([.character("C")], [.browse], .clusters, help: "the clusters the config names ([[clusters]]): switch to another, each keeps its place",
                disabledReason: { $0.clusterNames.count < 2 ? "the config names no other cluster ([[clusters]])" : nil }),
        Binding([.character(":")], [.browse], .sqlPrompt, hint: "SQL", help: "the SQL prompt: one statement in the admin context; a write is shown and held until y"),
        Binding([.character("?")], [.browse, .failover, .history, .references, .lagView, .queryLog, .promptRows, .promptText, .promptHeld], .help, hint: "keys", help: "this help"),
        Binding([.function(1)], [.browse, .failover, .history, .references, .pick, .lagView, .queryLog, .logSearch, .exportPrompt, .editCell, .form, .filter, .confirmDelete, .confirmRefresh, .conflict, .promote, .confirmQuit, .sqlPrompt, .confirmAnalyze, .bulkSet, .confirmProtected, .rowView, .tableSearch, .copyRow], .help,
                help: "the keys of what you are doing (returns to it)"),
        Binding([.character("q"), .control("c")], [.browse], .quit, hint: "quit", hintKeys: "q", help: "quit"),

        // While a query runs.
        Binding([.escape], [.busy], .cancelQuery, hint: "cancel", help: "cancel the running query on the server"),
        Binding([.control("c")], [.busy], .quit, label: "q Ctrl-C", hint: "quit", hintKeys: "q",
                help: "quit, abandoning the running query (q while browsing)"),
        Binding([.character("q")], [.busy], .quit, label: "", help: "",
                disabledReason: { $0.mode == .browse ? nil : "a query is running: Esc cancels it, Ctrl-C quits" }),

        // Terminal too small.
        Binding([.character("q"), .control("c")], [.tooSmall], .quit, hint: "quit", hintKeys: "q", help: "quit"),

        // Editing a cell.
        Binding([.enter], [.editCell], .save, hint: "save", help: "save the value (only if nobody changed the row)"),
        Binding([.escape], [.editCell], .cancel, hint: "cancel", help: "close the editor, nothing written"),
        Binding([.function(4)], [.editCell], .externalEdit, hint: "$EDITOR", hintKeys: "F4",
                help: "edit the value in $VISUAL or $EDITOR (values over 10 000 characters open there at once)"),

        // Row form.
        Binding([.tab, .down, .enter], [.form], .next, hint: "next", hintKeys: "Tab/↓",
                help: "next field (Enter on the last field saves)"),
        Binding([.backTab, .up], [.form], .previous, hint: "previous", hintKeys: "↑", help: "previous field"),
        Binding([.control("s"), .function(2)], [.form], .save, hint: "save", hintKeys: "Ctrl-S", help: "save the row"),
        Binding([.escape], [.form], .cancel, hint: "cancel", help: "close the form, nothing written"),

        // Filter prompt.
        Binding([.up], [.filter], .previous, help: "previous column"),
        Binding([.down], [.filter], .next, help: "next column"),
        Binding([.tab], [.filter], .nextOperator, help: "next operator: = contains, starts with, != < <= > >= in, is (not) null"),
        Binding([.backTab], [.filter], .previousOperator, help: "previous operator"),
        Binding([.enter], [.filter], .save, hint: "apply", help: "apply the filter (an empty value clears it)"),
        Binding([.escape], [.filter], .cancel, hint: "close", help: "close the prompt, filter unchanged"),

        // Typing in a field.
        Binding([.left, .right], [.textField], .type, label: "← →", help: "move the text cursor"),
        Binding([.home, .control("a")], [.textField], .type, help: "to the start of the text"),
        Binding([.end, .control("e")], [.textField], .type, help: "to the end of the text"),
        Binding([.backspace, .delete], [.textField], .type, help: "delete before / at the cursor"),
        Binding([.control("u")], [.textField], .type, hint: "clear", help: "clear the text"),
        Binding([.control("n")], [.textField], .type, hint: "NULL", help: "set the value to NULL (typing replaces it)"),

        // Delete confirmation.
        Binding([.enter, .character("y")], [.confirmRefresh], .confirm, hint: "refresh", hintKeys: "Enter", help: "run the refresh"),
        Binding([], [.confirmRefresh], .cancel, hint: "cancel", help: "cancel, nothing refreshed"),
        Binding([.character("y"), .character("Y")], [.confirmDelete], .confirm, hint: "delete", hintKeys: "y",
                help: "delete the row (only if nobody changed it)"),
        Binding([], [.confirmDelete], .cancel, hint: "cancel", help: "cancel, nothing deleted"),

        // Conflict.
        Binding([.enter, .character("e")], [.conflict], .editAgain, hint: "edit again with your input", hintKeys: "Enter",
                help: "back to the editor with your input, now against the current row"),
        Binding([.escape], [.conflict], .cancel, hint: "discard yours", help: "discard your input; the row shows its current values"),

        // Quitting with unsaved input.
        Binding([.control("c")], [.editCell, .form, .conflict], .quit, hint: "quit", hintKeys: "Ctrl-C",
                help: "quit (asks first: the edit is not saved)"),

        // Export.
        Binding([.tab], [.exportPrompt], .nextFormat, hint: "format", hintKeys: "Tab", help: "CSV or JSON Lines"),
        Binding([.backTab], [.exportPrompt], .switchSource, hint: "source", hintKeys: "Shift-Tab",
                help: "read from the primary, or from the least-lagging replica within max_replica_lag_ms"),
        Binding([.enter], [.exportPrompt], .save, hint: "export", help: "start; Esc cancels it while it runs (the partial file is removed)"),
        Binding([.escape], [.exportPrompt], .cancel, hint: "cancel", help: "close, nothing exported"),

        // Row view.
        Binding([.up, .character("k")], [.rowView], .up, hint: "column", hintKeys: "↑↓", help: "previous column"),
        Binding([.down, .character("j")], [.rowView], .down, help: "next column"),
        Binding([.enter], [.rowView], .editCell, hint: "edit", help: "edit this column's value",
                disabledReason: { Keymap.writeRefusal($0, needsRow: true) }),
        Binding([.escape, .character("q"), .character("o")], [.rowView], .cancel, hint: "close", hintKeys: "Esc", help: "back to the grid"),

        // Clusters.
        Binding([.up, .character("k")], [.clusterList], .up, hint: "choose", hintKeys: "↑↓", help: "previous cluster"),
        Binding([.down, .character("j")], [.clusterList], .down, help: "next cluster"),
        Binding([.enter], [.clusterList], .open, hint: "switch", help: "switch to it (this one keeps its place for when you come back)"),
        Binding([.escape, .character("q")], [.clusterList], .cancel, hint: "close", hintKeys: "Esc", help: "stay on this cluster"),

        // Copying a row.
        Binding([.tab], [.copyRow], .nextFormat, hint: "format", hintKeys: "Tab", help: "CSV, JSON or INSERT"),
        Binding([.enter], [.copyRow], .save, hint: "copy", help: "copy: to the file named, or with no file to the terminal's clipboard"),
        Binding([.escape], [.copyRow], .cancel, hint: "cancel", help: "nothing copied"),

        // Finding a table.
        Binding([.enter], [.tableSearch], .save, hint: "open", help: "open the table found"),
        Binding([.escape], [.tableSearch], .cancel, hint: "stop", help: "stop searching (the cursor stays)"),

        // Protected cluster.
        Binding([.enter], [.confirmProtected], .confirm, hint: "write", help: "write it, if the name typed is the cluster's"),
        Binding([.escape], [.confirmProtected], .cancel, hint: "cancel", help: "write nothing (your input is kept)"),

        // Bulk set.
        Binding([.enter], [.bulkSet], .save, hint: "preview", help: "run it held: the count and rows before and after are shown, y commits"),
        Binding([.escape], [.bulkSet], .cancel, hint: "cancel", help: "close, nothing written"),

        // SQL prompt.
        Binding([.enter], [.sqlPrompt], .save, hint: "run", help: "run the statement in a transaction of its own (a write waits for y before it commits)"),
        Binding([.up], [.sqlPrompt], .previous, hint: "history", hintKeys: "↑↓", help: "the statement before in the history (kept across sessions)"),
        Binding([.down], [.sqlPrompt], .next, help: "the statement after in the history, then back to what you typed"),
        Binding([.escape], [.sqlPrompt], .cancel, hint: "close", help: "close the prompt (the text is kept for the next :)"),
        Binding([.control("c")], [.sqlPrompt, .promptRows, .promptText], .quit, hint: "quit", hintKeys: "Ctrl-C", help: "quit"),
        Binding([.control("c")], [.promptHeld], .quit, hint: "quit", hintKeys: "Ctrl-C", help: "quit (asks first: the held write rolls back)"),
        Binding([.character("y"), .character("Y")], [.confirmAnalyze], .confirm, hint: "run it", hintKeys: "y",
                help: "run EXPLAIN ANALYZE: the statement executes, then everything it did is rolled back"),
        Binding([], [.confirmAnalyze], .cancel, hint: "cancel", hintKeys: "any other key", help: "back to the prompt, nothing run"),
        Binding([.up, .character("k")], [.promptRows], .up, hint: "move", hintKeys: "↑↓←→", help: "previous row (the page before at the top)"),
        Binding([.down, .character("j")], [.promptRows], .down, help: "next row (the next page at the bottom)"),
        Binding([.left, .character("h")], [.promptRows], .left, help: "columns to the left"),
        Binding([.right, .character("l")], [.promptRows], .right, help: "columns to the right"),
        Binding([.pageUp, .control("b")], [.promptRows], .pageUp, hint: "", hintKeys: "PgUp/PgDn", help: "page before"),
        Binding([.pageDown, .control("f")], [.promptRows], .pageDown, help: "next page (fetched from the server's cursor)"),
        Binding([.character("g"), .home], [.promptRows], .first, hint: "first", hintKeys: "g", help: "first page"),
        Binding([.escape, .character("q"), .character(":")], [.promptRows], .cancel, hint: "close", hintKeys: "Esc",
                help: "close the rows (the transaction ends) and edit the statement"),
        Binding([.up, .character("k")], [.promptText, .promptHeld], .scrollUp, hint: "scroll", hintKeys: "↑↓", help: "scroll up"),
        Binding([.down, .character("j")], [.promptText, .promptHeld], .scrollDown, help: "scroll down"),
        Binding([.escape, .character("q"), .enter], [.promptText], .cancel, hint: "back", hintKeys: "Esc", help: "back to the prompt"),
        Binding([.character("y"), .character("Y")], [.promptHeld], .confirm, hint: "commit", hintKeys: "y", help: "commit the write (and its history rows)"),
        Binding([.character("n"), .character("N"), .escape], [.promptHeld], .cancel, hint: "roll back", hintKeys: "n/Esc",
                help: "roll back: nothing is written"),

        // Lag history.
        Binding([.escape, .character("q"), .character("L")], [.lagView], .cancel, hint: "close", hintKeys: "Esc", help: "back to the records"),

        // Query log.
        Binding([.up, .character("k")], [.queryLog], .up, hint: "move", hintKeys: "↑↓", help: "newer statement"),
        Binding([.down, .character("j")], [.queryLog], .down, help: "older statement"),
        Binding([.pageUp, .control("b")], [.queryLog], .pageUp, help: "a page newer"),
        Binding([.pageDown, .control("f")], [.queryLog], .pageDown, help: "a page older"),
        Binding([.character("g"), .home], [.queryLog], .first, help: "the newest (and follow new ones)"),
        Binding([.character("G"), .end], [.queryLog], .last, help: "the oldest kept"),
        Binding([.enter], [.queryLog], .open, hint: "whole", help: "the statement whole: SQL, reason, guard, tokens, error, file (again: back)"),
        Binding([.character("/")], [.queryLog], .filter, hint: "search", help: "search the SQL (Enter applies, empty clears)"),
        Binding([.character("A")], [.queryLog], .logAdminOnly, hint: "admin", help: "only admin-context statements (again: all)"),
        Binding([.character("P")], [.queryLog], .logPublicOnly, hint: "public", help: "only public-context statements (again: all)"),
        Binding([.character("S")], [.queryLog], .logNextSource, hint: "source", help: "only this console, then each followed app, then all"),
        Binding([.character("N")], [.queryLog], .logNextNode, hint: "node", help: "only one node, the next on each press, then all"),
        Binding([.escape, .character("q"), .character("Q")], [.queryLog], .cancel, hint: "close", hintKeys: "Esc",
                help: "close (from a whole statement: back to the list)"),
        Binding([.enter], [.logSearch], .save, hint: "search", help: "search for the text typed"),
        Binding([.escape], [.logSearch], .cancel, hint: "cancel", help: "stop typing, the search unchanged"),

        // Pick list.
        Binding([.up, .character("k")], [.pick], .up, hint: "choose", hintKeys: "↑↓", help: "previous value"),
        Binding([.down, .character("j")], [.pick], .down, help: "next value"),
        Binding([.enter], [.pick], .save, hint: "save", help: "save the chosen value"),
        Binding([.escape], [.pick], .cancel, hint: "cancel", help: "close the list, nothing written"),

        // Referencing tables.
        Binding([.up, .character("k")], [.references], .up, hint: "table", hintKeys: "↑↓", help: "previous referencing table"),
        Binding([.down, .character("j")], [.references], .down, help: "next referencing table"),
        Binding([.enter], [.references], .open, hint: "open", help: "open it, filtered to the rows that reference this one"),
        Binding([.escape, .character("q")], [.references], .cancel, hint: "close", hintKeys: "Esc", help: "close the list"),

        // Change history.
        Binding([.up, .character("k")], [.history], .up, hint: "change", hintKeys: "↑↓", help: "newer change"),
        Binding([.down, .character("j")], [.history], .down, help: "older change"),
        Binding([.enter], [.history], .open, hint: "diff", help: "the whole change: every column before and after (again: back to the list)"),
        Binding([.character("r")], [.history], .refresh, help: "read the history again"),
        Binding([.character("u")], [.history], .revert, hint: "revert",
                help: "revert the change: its inverse as an ordinary edit, shown first; refused when the row changed since",
                disabledReason: { Keymap.revertRefusal($0) }),
        Binding([.character("y"), .character("Y")], [.confirmRevert], .confirm, hint: "revert", hintKeys: "y",
                help: "write the revert (only if the row is still as the change left it)"),
        Binding([], [.confirmRevert], .cancel, hint: "cancel", hintKeys: "any other key", help: "back to the history, nothing written"),
        Binding([], [.revertConflict], .cancel, hint: "back", hintKeys: "any key", help: "back to the history"),
        Binding([.escape, .character("q")], [.history], .cancel, hint: "close", hintKeys: "Esc", help: "close the history (from a diff: back to the list)"),

        // Failover view.
        Binding([.character("r")], [.failover], .rerun, hint: "re-run checks", help: "run the checks again"),
        Binding([.up, .character("k")], [.failover], .up, hint: "candidate", hintKeys: "↑↓", help: "previous candidate"),
        Binding([.down, .character("j")], [.failover], .down, help: "next candidate"),
        Binding([.character("P")], [.failover], .promote, hint: "promote (asks for the name)",
                help: "promote the chosen candidate: type its name to confirm",
                disabledReason: { state in
                    if state.readOnly { return readOnlyReason }
                    guard case .failover(let view) = state.mode else { return nil }
                    return view.candidates.indices.contains(view.selected) ? nil : "no replica to promote"
                }),
        Binding([.escape, .character("q")], [.failover], .cancel, hint: "close", hintKeys: "Esc", help: "close the failover view"),

        // Promotion confirmation.
        Binding([.enter], [.promote], .confirm, hint: "promote", help: "promote, if the typed name matches the candidate"),
        Binding([.escape], [.promote], .cancel, hint: "cancel", help: "cancel the promotion"),

        // Help.
        Binding([.up, .character("k")], [.help], .scrollUp, hint: "scroll", hintKeys: "↑↓", help: "scroll up"),
        Binding([.down, .character("j")], [.help], .scrollDown, help: "scroll down"),
        Binding([], [.help], .dismiss, hint: "close", hintKeys: "any key", help: "close the help"),

        // Quit confirmation.
        Binding([.character("y"), .character("Y")], [.confirmQuit], .confirm, hint: "quit and lose the edit", hintKeys: "y",
                help: "quit and lose the edit"),
        Binding([], [.confirmQuit], .cancel, hint: "returns", hintKeys: "any other key", help: "back to the edit"),
    ]

    /// The binding `key` triggers in `scopes` (the first scope that binds it wins).
    public static func binding(for key: Key, in scopes: [KeyScope]) -> Binding? {
        for scope in scopes {
            guard let table = dispatch[scope] else { continue }
            if let exact = table.keys[key] ?? table.anyKey { return exact }
        }
        return nil
    }

    /// Per scope: each key's binding (the first in table order), and the catch-all.
    private static let dispatch: [KeyScope: (keys: [Key: Binding], anyKey: Binding?)] = {
        var tables: [KeyScope: (keys: [Key: Binding], anyKey: Binding?)] = [:]
        for binding in bindings {
            for scope in binding.scopes {
                var table = tables[scope] ?? ([:], nil)
                if binding.keys.isEmpty {
                    table.anyKey = table.anyKey ?? binding
                } else {
                    for key in binding.keys where table.keys[key] == nil { table.keys[key] = binding }
                }
                tables[scope] = table
            }
        }
        return tables
    }()

    /// The bindings of one scope, in table order, without hidden aliases.
    public static func bindings(in scope: KeyScope) -> [Binding] {
        bindings.filter { $0.scopes.contains(scope) && !$0.help.isEmpty }
    }

    /// The hint line for a state: the hinted bindings of its scopes, disabled ones left out.
    public static func hintLine(for state: ConsoleState) -> String {
        var seen = Set<String>()
        var parts: [String] = []
        for scope in state.scopes {
            for binding in bindings(in: scope) {
                guard let hint = binding.hint, binding.disabledReason?(state) == nil else { continue }
                let keys = binding.hintKeys ?? binding.keyLabel
                let text = hint.isEmpty ? keys : "\(keys) \(hint)"
                if seen.insert(keys).inserted { parts.append(text) }
            }
        }
        return parts.joined(separator: "  ")
    }

    /// The help box's lines for a set of scopes: a title per scope, then key and sentence.
    public static func helpLines(for scopes: [KeyScope], state: ConsoleState? = nil) -> [HelpLine] {
        var lines: [HelpLine] = []
        for scope in scopes {
            let scoped = bindings(in: scope)
            guard !scoped.isEmpty else { continue }
            if !lines.isEmpty { lines.append(HelpLine(text: "", kind: .blank)) }
            lines.append(HelpLine(text: scope.title, kind: .title))
            for binding in scoped {
                let keys = binding.keyLabel.padding(toLength: max(Screen.displayWidth(binding.keyLabel), 16), withPad: " ", startingAt: 0)
                let reason = state.flatMap { binding.disabledReason?($0) }
                lines.append(HelpLine(text: "\(keys)  \(binding.help)" + (reason.map { " — unavailable: \($0)" } ?? ""),
                                      kind: reason == nil ? .binding : .disabled))
            }
        }
        return lines
    }

    /// Everything the help box shows when opened from `mode`.
    public static func helpContent(for mode: Mode, state: ConsoleState) -> [HelpLine] {
        helpLines(for: helpScopes(for: mode), state: state) + [
            HelpLine(text: "", kind: .blank),
            HelpLine(text: "Everything here runs in the admin context: reads and writes on the primary.", kind: .binding),
            HelpLine(text: "Lag: bytes of WAL still to replay, and the age of the oldest change not applied", kind: .binding),
            HelpLine(text: "(how stale the replica's data is), timed by the monitor's heartbeat.", kind: .binding),
        ]
    }

    /// The scopes whose keys the help box shows when opened from `mode`: the mode's own,
    /// with what may be pressed while its query runs.
    public static func helpScopes(for mode: Mode) -> [KeyScope] {
        switch mode {
        case .browse, .help: return [.browse, .tables, .grid, .pane, .busy]
        case .failover, .history, .references:
            let scopes = mode.keyScopes
            return [.failover, .history, .references].contains(scopes[0]) ? scopes + [.busy] : scopes
        default: return mode.keyScopes
        }
    }

    /// The README's key table for the browse mode (Markdown), generated from the bindings.
    public static func markdownTable() -> String {
        var rows = ["| where | keys | what |", "|---|---|---|"]
        for scope in helpScopes(for: .browse) {
            for binding in bindings(in: scope) {
                let keys = binding.keyLabel.replacingOccurrences(of: "|", with: "\\|")
                rows.append("| \(scope.title) | `\(keys)` | \(binding.help) |")
            }
        }
        return rows.joined(separator: "\n")
    }

    // MARK: Disabled reasons

    /// Why the console writes nothing at all.
    static let readOnlyReason = "this console is read-only (--read-only or [cluster] read_only): nothing is written from here"

    /// Why `D` and `=` have nothing to act on.
    static func bulkRefusal(_ state: ConsoleState, privilege: TablePrivilege) -> String? {
        if let refusal = writeRefusal(state, needsRow: false, privilege: privilege) { return refusal }
        return state.grid?.marks.isEmpty != false ? "no rows marked: v marks a row, V every row the filter matches" : nil
    }

    /// Why `u` cannot revert the selected change.
    static func revertRefusal(_ state: ConsoleState) -> String? {
        if state.readOnly { return readOnlyReason }
        guard case .history(let view) = state.mode, view.entries.indices.contains(view.selected) else { return "no change selected" }
        let entry = view.entries[view.selected]
        if entry.action == .statement { return "a statement without rows of its own cannot be reverted here" }
        if entry.key.isEmpty { return "the change names no row" }
        return nil
    }

    static func noColumns(_ state: ConsoleState) -> String? {
        guard let grid = state.grid else { return nil }
        return grid.shape.columns.isEmpty ? "\(grid.shape.table.qualifiedName) has no columns" : nil
    }

    /// The materialized view `M` would refresh: the open one from the grid, the one under
    /// the cursor in the table list.
    static func refreshTarget(_ state: ConsoleState) -> TableInfo? {
        if state.focus == .tables { return state.tables.indices.contains(state.tableCursor) ? state.tables[state.tableCursor] : nil }
        return state.grid?.shape.table
    }

    static func refreshRefusal(_ state: ConsoleState) -> String? {
        if state.readOnly { return readOnlyReason }
        guard let table = refreshTarget(state) else { return "no table chosen" }
        return table.kind == .materializedView ? nil : "\(table.qualifiedName) is not a materialized view"
    }

    /// Why Space cannot toggle: not a boolean column, or the table is read-only.
    static func toggleRefusal(_ state: ConsoleState) -> String? {
        if let refusal = writeRefusal(state, needsRow: true) { return refusal }
        guard let grid = state.grid, grid.shape.columns.indices.contains(grid.cursorColumn) else { return "no column" }
        let column = grid.shape.columns[grid.cursorColumn]
        return column.isBoolean ? nil : "\(column.name) is \(column.type), not boolean: Space toggles booleans only"
    }

    /// Why `f` cannot follow: not on a foreign-key column, or the reference is NULL.
    static func followRefusal(_ state: ConsoleState) -> String? {
        guard let grid = state.grid, let row = grid.selectedRow else { return "no row selected" }
        guard let key = grid.shape.foreignKey(at: grid.cursorColumn) else {
            let column = grid.shape.columns.indices.contains(grid.cursorColumn) ? grid.shape.columns[grid.cursorColumn].name : "this column"
            return "\(column) is not a foreign key: nothing to follow"
        }
        if key.columns.contains(where: { row.indices.contains($0) && row[$0] == nil }) { return "the reference is NULL: nothing to follow" }
        return nil
    }

    /// Why the history cannot be shown: no table open, or (for a row) no row or no key.
    static func historyRefusal(_ state: ConsoleState, needsRow: Bool) -> String? {
        guard let grid = state.grid else { return "open a table first" }
        if needsRow && !grid.shape.hasPrimaryKey { return "\(grid.shape.table.qualifiedName) has no primary key: its rows have no history" }
        if needsRow && grid.selectedRow == nil { return "no row selected" }
        return nil
    }

    /// Why rows of the open table cannot be edited. A missing primary (or a split brain)
    /// does not close the editors: the user may prepare an edit while the primary comes
    /// back; the save then fails with the reason and keeps the text.
    static func writeRefusal(_ state: ConsoleState, needsRow: Bool, privilege: TablePrivilege? = .update) -> String? {
        if state.readOnly { return readOnlyReason }
        guard let grid = state.grid else { return nil }
        if let privilege, grid.shape.missingPrivileges.contains(privilege) {
            return "your role may not \(privilege.rawValue.uppercased()) \(grid.shape.table.qualifiedName) (has_table_privilege): the server would refuse it"
        }
        if let reason = grid.shape.readOnlyReason { return "\(grid.shape.table.qualifiedName) is read-only: \(reason)" }
        if !grid.shape.hasPrimaryKey { return "\(grid.shape.table.qualifiedName) has no primary key: read-only" }
        if needsRow && grid.selectedRow == nil { return "no row selected" }
        return nil
    }
}

/// One line of the help box.
public struct HelpLine: Sendable, Equatable {
    public enum Kind: Sendable { case title, binding, disabled, blank }
    public var text: String
    public var kind: Kind
}

extension ConsoleState {
    /// The key scopes the state is in, most specific first.
    public var scopes: [KeyScope] {
        if busy != nil { return [.busy] }
        if isTooSmall { return [.tooSmall] }
        switch mode {
        case .browse:
            switch focus {
            case .tables: return [.tables, .browse]
            case .grid: return [.grid, .browse]
            case .pane: return [.pane, .browse]
            }
        default: return mode.keyScopes
        }
    }
}

extension Mode {
    /// The key scopes of this mode while it is shown (the browse mode's own depend on the
    /// focus: see ``ConsoleState/scopes``).
    var keyScopes: [KeyScope] {
        switch self {
        case .browse: return [.browse]
        case .editCell: return [.editCell, .textField]
        case .form: return [.form, .textField]
        case .filter: return [.filter, .textField]
        case .confirmDelete: return [.confirmDelete]
        case .confirmRefresh: return [.confirmRefresh]
        case .conflict: return [.conflict]
        case .failover(let view): return view.confirmation == nil ? [.failover] : [.promote, .textField]
        case .history(let view): return view.revert != nil ? [.confirmRevert] : view.conflict != nil ? [.revertConflict] : [.history]
        case .references: return [.references]
        case .pick: return [.pick]
        case .lagView: return [.lagView]
        case .queryLog(let view): return view.searchInput == nil ? [.queryLog] : [.logSearch, .textField]
        case .exportPrompt: return [.exportPrompt, .textField]
        case .exporting: return [.busy]
        case .help: return [.help]
        case .confirmQuit: return [.confirmQuit]
        case .sqlPrompt(let prompt): return prompt.scopes
        case .bulkSet: return [.bulkSet, .textField]
        case .confirmProtected: return [.confirmProtected, .textField]
        case .rowView: return [.rowView]
        case .tableSearch: return [.tableSearch, .textField]
        case .copyRow: return [.copyRow, .textField]
        case .clusterList: return [.clusterList]
        }
    }
}

extension SQLPrompt {
    /// The key scopes of the prompt's phase.
    var scopes: [KeyScope] {
        switch phase {
        case .typing: return [.sqlPrompt, .textField]
        case .confirmAnalyze: return [.confirmAnalyze]
        case .rows: return [.promptRows]
        case .text: return [.promptText]
        case .held: return [.promptHeld]
        }
    }
}
