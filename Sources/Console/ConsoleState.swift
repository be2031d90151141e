import Foundation
import Switchyard

/// A key press, decoded by the driver.
public enum Key: Sendable, Hashable {
    case character(Character)
    case control(Character)  // Ctrl-A … Ctrl-Z, as the lowercase letter
    case enter, escape, tab, backTab, backspace, delete
    case up, down, left, right, pageUp, pageDown, home, end
    case function(Int)
}

/// Single-line text input with a cursor; `isNull` is SQL NULL (distinct from "").
public struct TextField: Sendable, Equatable {
    public var characters: [Character]
    public var cursor: Int
    public var isNull: Bool

    public init(_ value: String?) {
        characters = Array(value ?? "")
        cursor = characters.count
        isNull = value == nil
    }

    public var value: String? { isNull ? nil : String(characters) }

    /// Applies an editing key; returns false when the key is not an editing key.
    mutating func handle(_ key: Key) -> Bool {
        switch key {
        case .character(let character):
            if isNull { characters = []; cursor = 0; isNull = false }
            characters.insert(character, at: cursor)
            cursor += 1
        case .backspace:
            if isNull { isNull = false }
            if cursor > 0 { characters.remove(at: cursor - 1); cursor -= 1 }
        case .delete:
            if isNull { isNull = false }
            if cursor < characters.count { characters.remove(at: cursor) }
        case .left: cursor = max(cursor - 1, 0)
        case .right: cursor = min(cursor + 1, characters.count)
        case .home, .control("a"): cursor = 0
        case .end, .control("e"): cursor = characters.count
        case .control("u"): characters = []; cursor = 0; isNull = false
        case .control("n"): characters = []; cursor = 0; isNull = true
        default: return false
        }
        return true
    }
}

public enum Focus: Sendable, Equatable, CaseIterable {
    case tables, grid, pane
}

/// The rows on screen for the open table.
public struct Grid: Sendable, Equatable {
    public var shape: TableShape
    public var rows: [[String?]] = []
    /// Sort-key values of each row (anchors for the next and previous page).
    public var keys: [[String?]] = []
    public var cursorRow = 0
    public var cursorColumn = 0
    public var atStart = true
    public var atEnd = true
    public var sort: Sort?
    public var filter: Filter?
    /// How many rows the filter matches (counted up to a cap when the first page loads).
    public var matching: MatchCount?
    /// The sort and filter the rows on screen were loaded with: what the title goes back
    /// to when a load with a new sort or filter is cancelled or fails.
    public var shownSort: Sort?
    public var shownFilter: Filter?
    /// Only the rows that reference one row elsewhere (opened from `R`).
    public var scope: ReferenceScope?
    public var loaded = false
    /// Per row, the values shown cut (column index → size and digest).
    public var long: [[Int: LongValue]] = []
    /// Rows marked for a bulk action (`v`, `V`).
    public var marks = Marks()
    /// Columns hidden with `z` (back with `Z`), and widths set with `<` `>`.
    public var hidden: Set<Int> = []
    public var widths: [Int: Int] = [:]

    /// The next shown column after `column` in `direction` (+1, -1); `column` itself at an end.
    func shownColumn(from column: Int, _ direction: Int) -> Int {
        var next = column + direction
        while shape.columns.indices.contains(next) {
            if !hidden.contains(next) { return next }
            next += direction
        }
        return column
    }

    public var selectedRow: [String?]? { rows.indices.contains(cursorRow) ? rows[cursorRow] : nil }

    /// Whether row `index` on screen is marked (by its key, or as one of the rows the
    /// marked filter matches when that filter is the one shown).
    public func isMarked(_ index: Int) -> Bool {
        guard rows.indices.contains(index) else { return false }
        if let matching = marks.matching, matching.filter == filter, matching.scope == scope { return true }
        return !marks.keys.isEmpty && marks.keys.contains(shape.keyIndexes.map { rows[index][$0] })
    }

    /// The cut values of row `index` (none when unknown).
    public func longValues(_ index: Int) -> [Int: LongValue] { long.indices.contains(index) ? long[index] : [:] }

    /// Row `index` now holds whole values (from RETURNING or a fresh read).
    mutating func replaceRow(_ index: Int, with row: [String?]) {
        guard rows.indices.contains(index) else { return }
        rows[index] = row
        if long.indices.contains(index) { long[index] = [:] }
    }
}

/// Rows chosen for a bulk action: one by one by their keys (`v`), or every row a filter
/// matches (`V`), kept as the condition and counted again when the action is shown.
public struct Marks: Sendable, Equatable {
    /// Primary-key values of rows marked one by one, in key-column order.
    public var keys: Set<[String?]> = []
    /// Every row matching this filter and scope (`V`); nil: none so marked.
    public var matching: MatchingRows?

    public struct MatchingRows: Sendable, Equatable {
        public var filter: Filter?
        public var scope: ReferenceScope?
        /// How many matched when marked (counted up to a cap), for the title.
        public var counted: MatchCount?

        public init(filter: Filter?, scope: ReferenceScope?, counted: MatchCount?) {
            self.filter = filter
            self.scope = scope
            self.counted = counted
        }
    }

    public init() {}

    public var isEmpty: Bool { keys.isEmpty && matching == nil }

    /// For the title: `3 marked`, `all ≥10k matching marked`.
    public var label: String? {
        if let matching {
            return "all \(matching.counted.map { ($0.capped ? "≥" : "") + String($0.rows) + " " } ?? "")matching rows marked"
        }
        return keys.isEmpty ? nil : "\(keys.count) marked"
    }
}

/// One row shown vertically: the column the cursor is on (Enter edits it) and the scroll.
public struct RowView: Sendable, Equatable {
    public var row: Int
    public var column: Int
    public var scroll = 0
}

/// `=` with rows marked: the value to set one column to on all of them.
public struct BulkSetPrompt: Sendable, Equatable {
    public var column: Int
    public var field: TextField
}

public struct CellEdit: Sendable, Equatable {
    /// Values longer than this open in `$VISUAL`/`$EDITOR` at once.
    public static let externalEditorCharacters = 10_000

    public var row: Int
    public var column: Int
    public var field: TextField
    /// The row as the user saw it when editing began.
    public var seen: [String?]
    /// Other values of that row that were shown cut (compared by digest on save).
    public var long: [Int: LongValue] = [:]
}

public struct RowForm: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case edit(seen: [String?])
        case add
    }

    public var kind: Kind
    public var fields: [TextField]
    /// Fields the user changed; in an add form, untouched fields take their defaults.
    public var touched: Set<Int> = []
    public var cursor = 0
    /// Values shown cut: the form cannot edit them (Enter on the cell can).
    public var long: [Int: LongValue] = [:]
    /// Esc was pressed once with changed fields: a second Esc discards them.
    public var discardArmed = false
}

public struct Conflict: Sendable, Equatable {
    /// What the user wanted to write (column index → value).
    public var mine: [Int: String?]
    /// The row as it is now (nil: it was deleted).
    public var current: [String?]?
    /// The editor to go back to, with the user's input.
    public var resume: Mode
}

public struct DeleteConfirmation: Sendable, Equatable {
    public var seen: [String?]
    public var sql: String
    public var key: String
    /// Values of the row that were shown cut (compared by digest).
    public var long: [Int: LongValue] = [:]
}

public struct FilterPrompt: Sendable, Equatable {
    public var column: Int
    public var op: FilterOperator
    public var field: TextField
}

/// The failover view: check results as they arrive, the candidates, a guarded promote.
public struct FailoverView: Sendable, Equatable {
    public var results: [CheckResult] = []
    public var candidates: [Candidate] = []
    public var summary: String?
    public var selected = 0
    /// While set, the user is typing the name of the replica to promote.
    public var confirmation: TextField?
}

/// The change history of one row (`H`) or of the open table (`T`), newest first.
public struct HistoryView: Sendable, Equatable {
    /// `schema.table`.
    public var table: String
    /// The row's key (column → value); nil: the whole table.
    public var key: [String: String?]?
    /// How the title names the row, e.g. `#42`.
    public var keyLabel: String?
    /// Column order for showing changes.
    public var columns: [String]
    public var entries: [ChangeAudit.Entry] = []
    public var loaded = false
    public var selected = 0
    /// Showing the whole change of the selected entry.
    public var detail = false
    /// A revert waiting for y.
    public var revert: RevertPlan?
    /// Why the selected change cannot be reverted: its three versions.
    public var conflict: RevertConflict?
    /// A revert was written from here: the grid behind is read again on close.
    public var wroteRevert = false

    public init(table: String, key: [String: String?]?, keyLabel: String?, columns: [String]) {
        self.table = table
        self.key = key
        self.keyLabel = keyLabel
        self.columns = columns
    }

    public var title: String { keyLabel.map { "History of \(table) \($0)" } ?? "Recent changes to \(table)" }
}

/// Rows a filter matches: counted up to a cap, so a filter on a huge table costs a bounded scan.
public struct MatchCount: Sendable, Equatable {
    public var rows: Int
    /// The count stopped at the cap: at least `rows`.
    public var capped: Bool

    public init(rows: Int, capped: Bool) {
        self.rows = rows
        self.capped = capped
    }
}

/// A place left by following a reference (`f`, `R`), to come back to with Backspace.
public struct TrailStop: Sendable, Equatable {
    public var shape: TableShape
    public var sort: Sort?
    public var filter: Filter?
    public var scope: ReferenceScope?
    /// Sort-key values of the row the cursor was on (nil: the table was empty).
    public var anchor: [String?]?
    public var cursorColumn: Int
    /// How the title names it: `orders`, `customers #42`.
    public var label: String
}

/// The tables whose rows reference the current row (`R`), with counts.
public struct ReferencesView: Sendable, Equatable {
    public var title: String
    public var items: [Referencing] = []
    public var loaded = false
    public var selected = 0

    public init(title: String) { self.title = title }
}

/// Choosing a value from a pick list (an enum, or a CHECK … IN list).
public struct PickList: Sendable, Equatable {
    public var row: Int
    public var column: Int
    public var seen: [String?]
    public var long: [Int: LongValue]
    /// The choices, NULL (nil) last when the column allows it.
    public var choices: [String?]
    public var selected: Int
}

/// An export to start: format, where to read from, the file.
public struct ExportPrompt: Sendable, Equatable {
    public var format: ExportFormat = .csv
    /// Read from the least-lagging replica within the lag limit, not the primary.
    public var fromReplica = false
    public var path: TextField
}

/// What an export does, for its effect.
public struct ExportJob: Sendable, Equatable {
    public var shape: TableShape
    public var sort: Sort?
    public var filter: Filter?
    public var scope: ReferenceScope?
    public var format: ExportFormat
    public var fromReplica: Bool
    public var path: String

    public init(
        shape: TableShape, sort: Sort?, filter: Filter?, scope: ReferenceScope?, format: ExportFormat, fromReplica: Bool, path: String
    ) {
        self.shape = shape
        self.sort = sort
        self.filter = filter
        self.scope = scope
        self.format = format
        self.fromReplica = fromReplica
        self.path = path
    }
}

/// A running export's progress.
public struct ExportStatus: Sendable, Equatable {
    public var job: ExportJob
    public var rows = 0
    public var bytes = 0
    public var started: Date
    public var updated: Date
}

/// A write held back until the cluster's name is typed (`[cluster] protected`): the
/// effects that would run, and the request and mode they would run under.
public struct ProtectedWrite: Sendable, Equatable {
    public var effects: [ConsoleEffect]
    public var previous: Mode
    public var busy: String?
    public var pending: Int?
    public var pendingWrites: Bool
    public var field = TextField("")
    /// What will be written, for the box.
    public var summary: String
}

/// The help box: the keys of the mode it was opened from, which it returns to.
public struct HelpView: Sendable, Equatable {
    public var previous: Mode
    public var scroll = 0

    public init(previous: Mode) { self.previous = previous }
}

/// The SQL prompt (`:`): a statement typed, then its outcome — a query's rows (its
/// transaction open, paged through a cursor), text (EXPLAIN), or a write held open until
/// `y` commits or `n` rolls it back.
public struct SQLPrompt: Sendable, Equatable {
    public enum Phase: Sendable, Equatable {
        case typing
        /// EXPLAIN ANALYZE executes the statement: asked first.
        case confirmAnalyze(PromptStatement)
        case rows(PromptRows)
        case text(title: String, lines: [String])
        case held(PromptWrite)
    }

    public var field: TextField
    public var phase: Phase = .typing
    /// The statement whose outcome is shown.
    public var statement: String?
    /// Index into the history while recalling (nil: a new statement).
    public var recalled: Int?
    /// What was typed before recalling began, back on ↓ past the newest.
    public var draft: String = ""
    /// The rows phase: cursor row within the page, first column shown. The text and held
    /// phases: lines scrolled.
    public var cursorRow = 0
    public var firstColumn = 0
    public var scroll = 0
    /// A bulk action from the grid (`D`, `=`): back to the grid once it is answered.
    public var bulk = false

    public init(_ text: String = "") { field = TextField(text) }

    /// Whether the prompt's transaction is open (rows being paged, or a write held).
    public var transactionOpen: Bool {
        switch phase {
        case .rows, .held: return true
        default: return false
        }
    }
}

public indirect enum Mode: Sendable, Equatable {
    case browse
    case sqlPrompt(SQLPrompt)
    /// One row top to bottom (`o`): every column, long values wrapped.
    case rowView(RowView)
    /// Jumping to a table by name as it is typed (`/` in the table list).
    case tableSearch(TextField)
    /// Copying the row (`c`): format and where to.
    case copyRow(CopyPrompt)
    /// The clusters to switch to (`C`), the one chosen.
    case clusterList(selected: Int)
    /// `=` on the marked rows: typing the value one column gets on all of them.
    case bulkSet(BulkSetPrompt)
    case failover(FailoverView)
    case history(HistoryView)
    case references(ReferencesView)
    case pick(PickList)
    /// `REFRESH MATERIALIZED VIEW`, shown before it runs.
    case confirmRefresh(TableInfo, sql: String)
    /// The full-screen lag history (`L`).
    case lagView
    /// The full-screen query log (`Q`).
    case queryLog(QueryLogView)
    case exportPrompt(ExportPrompt)
    case exporting(ExportStatus)
    case editCell(CellEdit)
    case form(RowForm)
    case confirmDelete(DeleteConfirmation)
    case filter(FilterPrompt)
    case conflict(Conflict)
    case help(HelpView)
    case confirmQuit(previous: Mode)
    /// `[cluster] protected`: a write waits until the cluster's name is typed.
    case confirmProtected(ProtectedWrite)

    var hasUnsavedInput: Bool {
        switch self {
        case .editCell, .form, .conflict: return true
        case .confirmProtected(let write): return write.previous.hasUnsavedInput
        case .sqlPrompt(let prompt):
            if case .held = prompt.phase { return true }
            return false
        default: return false
        }
    }
}

/// One row of the side pane's node list.
public struct NodeSummary: Sendable, Equatable {
    public var state: NodeState
    /// Lag in milliseconds of the last samples, oldest first (nil: unknown or down).
    public var lagHistory: [Double?]
}

/// Everything the console shows. Changed only by ``ConsoleState/reduce(_:)``.
public struct ConsoleState: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var clusterName: String
    public var focus: Focus = .tables
    public var tables: [TableInfo] = []
    public var tableCursor = 0
    public var grid: Grid?
    public var mode: Mode = .browse
    public var message: String?
    public var messageIsError = false
    /// What is running, e.g. "loading customers"; nil when idle.
    public var busy: String?
    public var spinner = 0
    public var nodes: [NodeSummary] = []
    /// How a CSV export writes NULL (`[console] export_null`).
    public var exportNull = ""
    /// Ten minutes of every node's lag and events, for the `L` view.
    public var lagHistory = LagHistory()
    /// When the newest topology arrived (the lag view's right edge).
    public var lastTopologyAt: Date?
    /// Where following references came from, oldest first (Backspace walks back).
    public var trail: [TrailStop] = []
    /// The open grid's place in the trail, e.g. `customers #42` (nil: opened from the list).
    public var gridLabel: String?
    /// Patroni's view, when the cluster has `[patroni]`.
    public var patroni: PatroniView?
    public var primaryName: String?
    public var splitBrain: [String] = []
    /// Why the monitor writes no heartbeat (``Topology/heartbeatProblem``).
    public var heartbeatProblem: String?
    /// The newest statements, oldest first: this console's own (`source` nil) and those
    /// of followed query-log files (`source` set), merged by time.
    public var log: [QueryLogEntry] = []
    /// Query-log pane filters: a context name, a source (``localLogSource`` for this console).
    public var logContextFilter: String?
    public var logSourceFilter: String?
    /// Files followed with `--follow`, for the pane's title.
    public var followedFiles = 0
    public var warnLag: Duration
    public var criticalLag: Duration
    public var nextRequest = 1
    public var pending: Int?
    /// The pending request writes (or promotes): Esc then waits for its real outcome.
    public var pendingWrites = false
    /// Whether the table list and the side pane are shown (`[`, `]`).
    public var showTables = true
    public var showPane = true
    /// Keys typed while a read was running, applied in order once it is done.
    public var queuedKeys: [Key] = []
    /// At most this many keys wait (a held-down key must not grow the queue without end).
    static let keyQueueLimit = 256
    /// SQL prompt statements, oldest first (kept in the XDG state directory).
    public var promptHistory: [String] = []
    /// At most this many are kept.
    public static let promptHistoryLimit = 1000
    /// What the prompt held when it was closed, for the next `:`.
    public var promptDraft = ""
    /// `--read-only` or `[cluster] read_only`: no key writes; the SQL prompt reads only.
    public var readOnly = false
    /// `[cluster] protected`: a write commits only after the cluster's name is typed.
    public var protected = false
    /// `[cluster] color`: the title bar shows the cluster's name in it.
    public var clusterColor: ClusterColor?
    /// Every cluster the configuration names (`[[clusters]]`), this one first.
    public var clusterNames: [String] = []
    /// The cluster chosen with `C` to switch to (the console then ends with it).
    public var switchTo: String?
    /// Back on a cluster left before: once the table list is in, the rows on screen are
    /// read again.
    public var reloadGridOnLoad = false
    /// The name was typed for the effects being returned now.
    var protectionPassed = false
    /// `schema.table` to open once the table list arrives (`--table`).
    public var openOnLoad: String?
    public var quit = false

    /// How the pane labels this console's own statements.
    public static let localLogSource = "console"

    /// Every source in the log, this console first.
    public var logSources: [String] {
        var sources = [Self.localLogSource]
        for entry in log {
            if let source = entry.source, !sources.contains(source) { sources.append(source) }
        }
        return sources
    }

    /// The log as the pane shows it, filters applied.
    public var visibleLog: [QueryLogEntry] {
        guard logContextFilter != nil || logSourceFilter != nil else { return log }
        return log.filter { entry in
            (logContextFilter == nil || entry.context == logContextFilter)
                && (logSourceFilter == nil || (entry.source ?? Self.localLogSource) == logSourceFilter)
        }
    }

    public init(width: Int, height: Int, clusterName: String, warnLag: Duration = .milliseconds(200), criticalLag: Duration = .seconds(1)) {
        self.width = width
        self.height = height
        self.clusterName = clusterName
        self.warnLag = warnLag
        self.criticalLag = criticalLag
    }

    /// Lines of the query log view's list at this terminal height.
    static func queryLogRows(height: Int) -> Int { max(height - 5, 1) }

    public static let minimumWidth = 80
    public static let minimumHeight = 24

    public var isTooSmall: Bool { width < Self.minimumWidth || height < Self.minimumHeight }

    /// Grid rows that fit on screen: what one page fetches.
    public var pageSize: Int { max(layout.gridBody.height, 1) }

    /// The screen's layout now (which side parts are shown).
    public var layout: Layout { Layout(width: width, height: height, showTables: showTables, showPane: showPane) }
}

/// What the console asks the outside world to do.
public enum ConsoleEffect: Sendable, Equatable {
    case loadTables(request: Int)
    case openTable(TableInfo, request: Int)
    case loadPage(TableShape, PagePosition, sort: Sort?, filter: Filter?, limit: Int, request: Int, scope: ReferenceScope? = nil)
    case update(TableShape, seen: [String?], changes: [Int: String?], long: [Int: LongValue] = [:], request: Int)
    case insert(TableShape, values: [Int: String?], request: Int)
    case delete(TableShape, seen: [String?], long: [Int: LongValue] = [:], request: Int)
    /// The whole value of one cell that was shown cut, to edit it.
    case loadValue(TableShape, row: [String?], column: Int, request: Int)
    /// Edit this text in `$VISUAL`/`$EDITOR` (the terminal is lent to it meanwhile).
    case editExternally(String?)
    case runChecks(request: Int)
    case promote(node: String, request: Int)
    /// Stream the table (filter, scope, sort) to a file with COPY.
    case export(ExportJob, request: Int)
    /// `REFRESH MATERIALIZED VIEW` of the table.
    case refreshView(TableInfo, request: Int)
    /// Open the row `values` of `foreignKey` point to.
    case follow(TableShape, ForeignKey, values: [String?], request: Int)
    /// The tables referencing `row` of `shape`, with counts.
    case loadReferences(TableShape, row: [String?], request: Int)
    /// Open a referencing table filtered to the rows that reference the current row.
    case openReferencing(Referencing, request: Int)
    /// Recorded changes of one row (`key`) or of the table.
    case loadHistory(table: String, key: [String: String?]?, request: Int)
    /// Work out how to undo a recorded change, checking the row is as the change left it.
    case prepareRevert(ChangeAudit.Entry, request: Int)
    /// Write a prepared revert (conflict-checked again, with its own history row).
    case revert(RevertPlan, request: Int)
    /// Run a statement from the SQL prompt in a transaction of its own.
    case runStatement(PromptStatement, pageSize: Int, request: Int)
    /// A page, a commit or a rollback for the prompt's open transaction.
    case promptCommand(PromptCommand, request: Int)
    /// Roll back the prompt's open transaction, no answer awaited (the prompt was left).
    case endPrompt
    /// Append a statement to the prompt history file.
    case rememberStatement(String)
    /// The row with this key, whole, as text: into `path`, or (nil) handed back to be put
    /// on the terminal's clipboard.
    case copyRow(TableShape, key: [String?], format: RowCopy.Format, path: String?, request: Int)
    /// Put text on the terminal's clipboard (OSC 52).
    case setClipboard(String)
    case cancel(request: Int)
    case quit
}

/// What happened: a key, a resize, or a result of an effect.
public enum ConsoleEvent: Sendable {
    /// The console opened: load the table list.
    case start
    case key(Key)
    case resize(width: Int, height: Int)
    case tick
    case tablesLoaded([TableInfo], request: Int)
    case tableOpened(TableShape, request: Int)
    case pageLoaded(
        rows: [[String?]], keys: [[String?]], position: PagePosition, request: Int, long: [[Int: LongValue]] = [], matching: MatchCount? = nil)
    /// The whole value asked for by ``ConsoleEffect/loadValue(_:row:column:request:)``.
    case valueLoaded(String?, request: Int)
    /// What the external editor left (nil text and a problem when it failed).
    case externallyEdited(String?, problem: String?)
    case saved(row: [String?]?, request: Int)
    /// The row changed or vanished since the user saw it; `current` is how it is now.
    case conflict(current: [String?]?, request: Int)
    case failed(message: String, request: Int)
    /// One failover check finished (more may follow).
    case checkProgress(CheckResult, request: Int)
    case checksDone(FailoverReport, request: Int)
    case promoted(node: String, how: String, request: Int)
    case historyLoaded([ChangeAudit.Entry], request: Int)
    /// The referenced table, and the sort-key values of the referenced row in it.
    case followed(TableShape, anchor: [String?], label: String, request: Int)
    case referencesLoaded([Referencing], request: Int)
    case viewRefreshed(TableInfo, took: Double, request: Int)
    case exportProgress(rows: Int, bytes: Int, at: Date = Date(), request: Int)
    case exported(path: String, rows: Int, bytes: Int, node: String, took: Double, request: Int)
    case referencingOpened(TableShape, scope: ReferenceScope, request: Int)
    /// Open `schema.table` (from `--table`), once the table list is known.
    case openNamed(String)
    case topology(Topology, history: [String: [Double?]], at: Date = Date())
    case log([QueryLogEntry])
    /// How many files `--follow` matches now.
    case followedFiles(Int)
    /// Something the user should know that is not the answer to a request.
    case warning(String)
    /// How a change would be undone, to confirm.
    case revertReady(RevertPlan, request: Int)
    /// The row is no longer as the change left it: nothing can be undone blindly.
    case revertConflict(RevertConflict, request: Int)
    /// A revert was written.
    case reverted(String, request: Int)
    /// A page of the prompt query's rows (its transaction stays open).
    case promptRows(PromptRows, request: Int)
    /// Text a prompt statement produced (EXPLAIN); its transaction is over.
    case promptText(title: String, lines: [String], request: Int)
    /// A prompt statement wrote: its transaction waits for y or n.
    case promptHeld(PromptWrite, request: Int)
    /// The prompt's transaction ended (committed, rolled back): what became of it.
    case promptDone(String, request: Int)
    /// The prompt's transaction ended by itself (it waited too long): said, not awaited.
    case promptEnded(String)
    /// A row copied: to a file (said), or its text for the clipboard.
    case copied(String, clipboard: String?, request: Int)
}
