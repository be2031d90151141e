@testable import Console
@testable import Switchyard
import Testing

/// The console's state machine: keys and results in, state and effects out.
@Suite struct ConsoleStateTests {
    /// A state with the sample table open and idle.
    func opened() -> ConsoleState {
        var state = ConsoleState.sample(width: 120, height: 40)
        state.message = nil
        return state
    }

    func shape(_ state: ConsoleState) -> TableShape { state.grid!.shape }

    @Test func openingATableLoadsItsFirstPage() {
        var state = ConsoleState(width: 100, height: 30, clusterName: "c")
        let start = state.reduce(.start)
        guard case .loadTables(let request) = start.first else { Issue.record("no loadTables"); return }
        _ = state.reduce(.tablesLoaded([TableInfo(schema: "s", name: "t", estimatedRows: 5)], request: request))
        let open = state.reduce(.key(.enter))
        guard case .openTable(let table, let openRequest) = open.first else { Issue.record("no openTable"); return }
        #expect(table.qualifiedName == "s.t")
        #expect(state.busy == "opening t")
        let sample = ConsoleState.sample(width: 100, height: 30).grid!.shape
        let shape = TableShape(table: table, quotedName: "\"s\".\"t\"", columns: sample.columns)
        let load = state.reduce(.tableOpened(shape, request: openRequest))
        guard case .loadPage(_, .first, nil, nil, let limit, _, _) = load.first else { Issue.record("no loadPage"); return }
        #expect(limit == state.pageSize)
        #expect(state.focus == .grid)
    }

    @Test func tableNamedOnTheCommandLineOpensWhenTheListArrives() {
        var state = ConsoleState(width: 100, height: 30, clusterName: "c")
        state.openOnLoad = "s.b"
        guard case .loadTables(let request) = state.reduce(.start).first else { Issue.record("no loadTables"); return }
        let tables = [TableInfo(schema: "s", name: "a", estimatedRows: 1), TableInfo(schema: "s", name: "b", estimatedRows: 1)]
        let effects = state.reduce(.tablesLoaded(tables, request: request))
        guard case .openTable(let table, _) = effects.first else { Issue.record("did not open"); return }
        #expect(table.name == "b")
        #expect(state.tableCursor == 1)
        #expect(state.openOnLoad == nil)
        var missing = ConsoleState(width: 100, height: 30, clusterName: "c")
        missing.openOnLoad = "s.zzz"
        guard case .loadTables(let second) = missing.reduce(.start).first else { return }
        #expect(missing.reduce(.tablesLoaded(tables, request: second)).isEmpty)
        #expect(missing.message == "no table s.zzz")
        #expect(missing.messageIsError)
    }

    @Test func staleResultsAreIgnored() {
        var state = opened()
        let effects = state.reduce(.key(.character("r")))
        guard case .loadPage(_, _, _, _, _, let request, _) = effects.first else { Issue.record("no loadPage"); return }
        _ = state.reduce(.key(.escape))  // cancel
        #expect(state.busy == nil)
        let before = state.grid
        _ = state.reduce(.pageLoaded(rows: [], keys: [], position: .first, request: request))
        #expect(state.grid == before)
    }

    @Test func escapeCancelsRunningWork() {
        var state = opened()
        let effects = state.reduce(.key(.character("G")))
        guard case .loadPage(_, .last, _, _, _, let request, _) = effects.first else { Issue.record("no loadPage"); return }
        #expect(state.busy != nil)
        #expect(state.reduce(.key(.character("j"))).isEmpty, "keys wait while busy")
        #expect(state.reduce(.key(.escape)) == [.cancel(request: request)])
        #expect(state.message == "cancelled")
    }

    @Test func pagingUsesKeysNeverOffsets() {
        var state = opened()
        state.grid!.cursorRow = state.grid!.rows.count - 1
        let next = state.reduce(.key(.down))
        #expect(next.first.map { if case .loadPage(_, .after(["40"]), _, _, _, _, _) = $0 { true } else { false } } == true)
        var top = opened()
        top.grid!.atStart = false
        top.grid!.cursorRow = 0
        let previous = top.reduce(.key(.up))
        #expect(previous.first.map { if case .loadPage(_, .before(["1"]), _, _, _, _, _) = $0 { true } else { false } } == true)
    }

    @Test func editCancelKeepsTheRow() {
        var state = opened()
        _ = state.reduce(.key(.enter))
        guard case .editCell(let edit) = state.mode else { Issue.record("not editing"); return }
        #expect(edit.column == 1)
        #expect(edit.field.value == state.grid!.rows[2][1])
        _ = state.reduce(.key(.character("!")))
        _ = state.reduce(.key(.escape))
        #expect(state.mode == .browse)
        #expect(state.grid!.rows[2][1] == ConsoleState.sample(width: 120, height: 40).grid!.rows[2][1])
    }

    @Test func saveSendsOneUpdateWithTheSeenRowAndKeepsTextOnError() {
        var state = opened()
        let seen = state.grid!.rows[2]
        _ = state.reduce(.key(.enter))
        _ = state.reduce(.key(.control("u")))
        for character in "Ada" { _ = state.reduce(.key(.character(character))) }
        let effects = state.reduce(.key(.enter))
        guard case .update(_, let sentSeen, let changes, _, let request) = effects.first else { Issue.record("no update"); return }
        #expect(sentSeen == seen)
        #expect(changes == [1: "Ada"])
        _ = state.reduce(.failed(message: "invalid input syntax for type integer: \"Ada\" (SQLSTATE 22P02)", request: request))
        #expect(state.messageIsError)
        #expect(state.message?.contains("22P02") == true)
        guard case .editCell(let edit) = state.mode else { Issue.record("editor closed on error"); return }
        #expect(edit.field.value == "Ada", "the typed text is kept")
    }

    @Test func ctrlNSetsNullDistinctFromEmpty() {
        var field = TextField("abc")
        _ = field.handle(.control("n"))
        #expect(field.value == nil)
        _ = field.handle(.character("x"))
        #expect(field.value == "x")
        _ = field.handle(.control("u"))
        #expect(field.value == "")
        var cursor = TextField("añb")
        _ = cursor.handle(.home)
        _ = cursor.handle(.right)
        _ = cursor.handle(.delete)
        #expect(cursor.value == "ab")
        _ = cursor.handle(.end)
        _ = cursor.handle(.backspace)
        #expect(cursor.value == "a")
    }

    @Test func conflictKeepsTheUsersInputAndShowsCurrentValues() {
        var state = opened()
        _ = state.reduce(.key(.enter))
        _ = state.reduce(.key(.control("u")))
        for character in "Mine" { _ = state.reduce(.key(.character(character))) }
        guard case .update(_, _, _, _, let request) = state.reduce(.key(.enter)).first else { Issue.record("no update"); return }
        var current = state.grid!.rows[2]
        current[1] = "Theirs"
        _ = state.reduce(.conflict(current: current, request: request))
        guard case .conflict(let conflict) = state.mode else { Issue.record("no conflict view"); return }
        #expect(conflict.mine == [1: "Mine"])
        #expect(conflict.current?[1] == "Theirs")
        #expect(state.messageIsError)
        // Back to the editor: input kept, now against the current row.
        _ = state.reduce(.key(.enter))
        guard case .editCell(let edit) = state.mode else { Issue.record("not back in the editor"); return }
        #expect(edit.field.value == "Mine")
        #expect(edit.seen[1] == "Theirs")
        #expect(state.grid!.rows[2][1] == "Theirs")
    }

    @Test func aFilterValueTheColumnCannotHoldIsRefusedAndConditionsAddUp() {
        var state = opened()
        state.grid!.cursorColumn = 0  // id, an integer
        _ = state.reduce(.key(.character("/")))
        for character in "abc" { _ = state.reduce(.key(.character(character))) }
        #expect(state.reduce(.key(.enter)).isEmpty, "nothing is sent for a value the type cannot hold")
        guard case .filter(let prompt) = state.mode else { Issue.record("the prompt closed"); return }
        #expect(prompt.field.value == "abc", "the text is kept")
        #expect(state.messageIsError && state.message?.contains("not a whole number") == true)
        _ = state.reduce(.key(.control("u")))
        for character in "7" { _ = state.reduce(.key(.character(character))) }
        guard case .loadPage(_, .first, _, let first?, _, let request, _) = state.reduce(.key(.enter)).first else { Issue.record("no load"); return }
        #expect(first == Filter(column: 0, op: .equals, value: "7"))
        _ = state.reduce(.pageLoaded(rows: [], keys: [], position: .first, request: request, matching: MatchCount(rows: 0, capped: false)))
        // A second condition joins the first (AND), on the column under the cursor.
        state.grid!.cursorColumn = 2
        _ = state.reduce(.key(.character("/")))
        for _ in 0..<10 { _ = state.reduce(.key(.tab)) }  // → is not null
        guard case .loadPage(_, .first, _, let both?, _, _, _) = state.reduce(.key(.enter)).first else { Issue.record("no load"); return }
        #expect(both.conditions == [FilterCondition(column: 0, op: .equals, value: "7"), FilterCondition(column: 2, op: .isNotNull, value: "")])
    }

    @Test func hidingTheSidePartsGivesTheGridTheWholeWidth() {
        var state = ConsoleState.sample(width: 80, height: 24)
        state.message = nil
        #expect(state.layout.grid.width == 35, "80×24 leaves the grid 35 columns")
        state.focus = .pane
        _ = state.reduce(.key(.character("]")))
        #expect(!state.showPane && state.focus == .grid, "focus left the hidden pane")
        _ = state.reduce(.key(.character("[")))
        #expect(state.layout.grid.width == 80)
        let screen = Renderer.render(state).text
        #expect(!screen.contains("Nodes") && !screen.contains("Tables"), "\(screen)")
        #expect(screen.contains("customers"))
        // Tab moves only through what is shown.
        _ = state.reduce(.key(.tab))
        #expect(state.focus == .grid)
        _ = state.reduce(.key(.character("]")))
        _ = state.reduce(.key(.tab))
        #expect(state.focus == .pane)
    }

    @Test func keysTypedWhileAReadRunsAreAppliedInOrder() {
        var state = opened()
        state.grid!.cursorColumn = 1
        // `s s` typed quickly: the second press waits for the first sort, then sorts descending.
        guard case .loadPage(_, _, let first?, _, _, let request, _) = state.reduce(.key(.character("s"))).first else {
            Issue.record("no sorted load"); return
        }
        #expect(first == Sort(column: 1, descending: false))
        #expect(state.reduce(.key(.character("s"))).isEmpty)
        let rows: [[String?]] = (1...5).map { ["\($0)", "n\($0)", nil, nil, "false", nil] }
        let keys: [[String?]] = rows.map { [$0[1], $0[0]] }
        let next = state.reduce(.pageLoaded(rows: rows, keys: keys, position: .first, request: request))
        guard case .loadPage(_, _, let second?, _, _, let again, _) = next.first else { Issue.record("the second s was lost: \(next)"); return }
        #expect(second == Sort(column: 1, descending: true))
        // Cursor keys typed meanwhile move from where the load leaves the cursor, each one.
        for _ in 0..<3 { _ = state.reduce(.key(.character("j"))) }
        _ = state.reduce(.key(.character("k")))
        _ = state.reduce(.pageLoaded(rows: rows, keys: keys, position: .first, request: again))
        #expect(state.grid?.cursorRow == 2)
        #expect(state.queuedKeys.isEmpty)
        // Esc cancels the read and what was typed behind it.
        _ = state.reduce(.key(.character("r")))
        _ = state.reduce(.key(.character("j")))
        _ = state.reduce(.key(.escape))
        #expect(state.queuedKeys.isEmpty && state.busy == nil)
    }

    @Test func theRowFormOpensOnTheCursorColumnAndAsksBeforeDroppingWork() {
        var state = opened()
        state.grid!.cursorColumn = 2
        _ = state.reduce(.key(.character("e")))
        guard case .form(let form) = state.mode else { Issue.record("no form"); return }
        #expect(form.cursor == 2)
        for character in "x@y" { _ = state.reduce(.key(.character(character))) }
        _ = state.reduce(.key(.escape))
        guard case .form(let kept) = state.mode else { Issue.record("one Esc dropped the typed fields"); return }
        #expect(kept.discardArmed && state.messageIsError && state.message?.contains("Esc again discards") == true)
        _ = state.reduce(.key(.character("!")))  // any other key: back to editing, disarmed
        _ = state.reduce(.key(.escape))
        guard case .form = state.mode else { Issue.record("the warning was not given again"); return }
        _ = state.reduce(.key(.escape))
        guard case .browse = state.mode else { Issue.record("two Escs did not discard"); return }
        // An untouched form closes at once.
        _ = state.reduce(.key(.character("e")))
        _ = state.reduce(.key(.escape))
        guard case .browse = state.mode else { Issue.record("an untouched form asked"); return }
    }

    @Test func aCancelledSortOrFilterLeavesTheTitleAsTheRowsAre() {
        var state = opened()
        state.grid!.cursorColumn = 1
        guard case .loadPage = state.reduce(.key(.character("s"))).first else { Issue.record("no sorted load"); return }
        #expect(state.grid?.sort != nil)
        _ = state.reduce(.key(.escape))
        #expect(state.grid?.sort == nil, "the title would say sorted over unsorted rows")
        _ = state.reduce(.key(.character("/")))
        for character in "x" { _ = state.reduce(.key(.character(character))) }
        guard case .loadPage(_, _, _, _, _, let request, _) = state.reduce(.key(.enter)).first else { Issue.record("no load"); return }
        _ = state.reduce(.failed(message: "boom", request: request))
        #expect(state.grid?.filter == nil)
    }

    @Test func filterIsAParameterAndClears() {
        var state = opened()
        _ = state.reduce(.key(.character("/")))
        guard case .filter = state.mode else { Issue.record("no filter prompt"); return }
        _ = state.reduce(.key(.tab))  // = → contains
        for character in "'; drop table x; --" { _ = state.reduce(.key(.character(character))) }
        let effects = state.reduce(.key(.enter))
        guard case .loadPage(let shape, .first, _, let filter?, let limit, _, _) = effects.first else { Issue.record("no filtered load"); return }
        #expect(filter == Filter(column: 1, op: .contains, value: "'; drop table x; --"))
        let statement = SQLBuilder.page(shape, position: .first, sort: nil, filter: filter, limit: limit)
        #expect(!statement.sql.contains("drop table"))
        #expect(statement.parameters == ["%'; drop table x; --%"])
        // An empty value clears the filter.
        _ = state.reduce(.pageLoaded(rows: [], keys: [], position: .first, request: state.pending!))
        _ = state.reduce(.key(.character("/")))
        _ = state.reduce(.key(.control("u")))
        _ = state.reduce(.key(.enter))
        #expect(state.grid?.filter == nil)
    }

    @Test func deleteAsksFirstAndShowsTheSQL() {
        var state = opened()
        #expect(state.reduce(.key(.character("d"))).isEmpty)
        guard case .confirmDelete(let confirmation) = state.mode else { Issue.record("no confirmation"); return }
        #expect(confirmation.key == "id = 3")
        #expect(confirmation.sql.hasPrefix("delete from \"demo\".\"customers\" where \"id\" = $1"))
        let effects = state.reduce(.key(.character("y")))
        guard case .delete(_, let seen, _, _) = effects.first else { Issue.record("no delete"); return }
        #expect(seen[0] == "3")
        var declined = opened()
        _ = declined.reduce(.key(.character("d")))
        #expect(declined.reduce(.key(.character("n"))).isEmpty)
        #expect(declined.mode == .browse)
    }

    @Test func addFormSendsOnlyTouchedFields() {
        var state = opened()
        state.grid!.cursorColumn = 0  // the form opens on the column under the cursor
        _ = state.reduce(.key(.character("a")))
        guard case .form(let form) = state.mode else { Issue.record("no form"); return }
        #expect(form.kind == .add)
        _ = state.reduce(.key(.tab))
        for character in "New person" { _ = state.reduce(.key(.character(character))) }
        _ = state.reduce(.key(.tab))
        _ = state.reduce(.key(.control("n")))  // email NULL on purpose
        let effects = state.reduce(.key(.control("s")))
        guard case .insert(_, let values, _) = effects.first else { Issue.record("no insert"); return }
        #expect(values == [1: "New person", 2: nil])
    }

    @Test func tablesWithoutKeyAreReadOnly() {
        var state = opened()
        var columns = state.grid!.shape.columns
        for index in columns.indices { columns[index].primaryKeyPosition = nil }
        state.grid!.shape.columns = columns
        #expect(state.reduce(.key(.enter)).isEmpty)
        #expect(state.mode == .browse)
        #expect(state.message?.contains("read-only") == true)
    }

    @Test func quittingWithAnUnsavedEditAsks() {
        var state = opened()
        _ = state.reduce(.key(.enter))
        #expect(state.reduce(.key(.control("c"))).isEmpty)
        guard case .confirmQuit = state.mode else { Issue.record("did not ask"); return }
        _ = state.reduce(.key(.character("n")))
        guard case .editCell = state.mode else { Issue.record("edit lost"); return }
        _ = state.reduce(.key(.control("c")))
        #expect(state.reduce(.key(.character("y"))) == [.quit])
        var browsing = opened()
        #expect(browsing.reduce(.key(.character("q"))) == [.quit])
    }

    @Test func sortCyclesAscendingDescendingOff() {
        var state = opened()
        _ = state.reduce(.key(.character("s")))
        #expect(state.grid?.sort == Sort(column: 1, descending: false))
        _ = state.reduce(.pageLoaded(rows: [], keys: [], position: .first, request: state.pending!))
        _ = state.reduce(.key(.character("s")))
        #expect(state.grid?.sort == Sort(column: 1, descending: true))
        _ = state.reduce(.pageLoaded(rows: [], keys: [], position: .first, request: state.pending!))
        _ = state.reduce(.key(.character("s")))
        #expect(state.grid?.sort == nil)
    }

    @Test func escapeDuringASaveWaitsForWhatReallyHappened() {
        var state = opened()
        _ = state.reduce(.key(.enter))
        _ = state.reduce(.key(.character("!")))
        guard case .update(_, _, _, _, let request) = state.reduce(.key(.enter)).first else { Issue.record("no update"); return }
        #expect(state.reduce(.key(.escape)) == [.cancel(request: request)])
        #expect(state.busy == "cancelling", "a write is not forgotten on Esc")
        #expect(state.reduce(.key(.enter)).isEmpty, "nothing can be saved twice meanwhile")
        #expect(state.reduce(.key(.escape)).isEmpty)
        // The commit won the race: the user is told, and the row shows the saved value.
        var committed = state
        var row = committed.grid!.rows[committed.grid!.cursorRow]
        row[1] = "saved value"
        _ = committed.reduce(.saved(row: row, request: request))
        #expect(committed.busy == nil)
        #expect(committed.message?.hasPrefix("committed before the cancel arrived") == true)
        #expect(committed.grid!.rows[committed.grid!.cursorRow][1] == "saved value")
        #expect(committed.mode == .browse)
        // The cancel won: the editor is still open with the user's text.
        var rolledBack = state
        _ = rolledBack.reduce(.failed(message: "cancelled in time: nothing was written; your input is kept", request: request))
        #expect(rolledBack.message?.contains("nothing was written") == true)
        guard case .editCell(let edit) = rolledBack.mode else { Issue.record("the editor closed"); return }
        #expect(edit.field.value?.hasSuffix("!") == true)
    }

    @Test func aCancelledPromotionShowsTheClusterBeforeAnythingElseIsPromoted() {
        var state = opened()
        let candidates = [Candidate(node: "pg2", reachable: true, receiveLSN: nil, replayLSN: nil, missingBytes: 0, lagSeconds: 0)]
        state.mode = .failover(FailoverView(candidates: candidates))
        _ = state.reduce(.key(.character("P")))
        for character in "pg2" { _ = state.reduce(.key(.character(character))) }
        guard case .promote(let node, let request) = state.reduce(.key(.enter)).first else { Issue.record("no promote"); return }
        #expect(node == "pg2")
        #expect(state.reduce(.key(.escape)) == [.cancel(request: request)])
        #expect(state.reduce(.key(.character("P"))).isEmpty, "no second promotion while the first is under way")
        let after = state.reduce(.failed(message: "promotion cancelled; the candidate may still be leaving recovery — checks re-run", request: request))
        guard case .runChecks = after.first else { Issue.record("checks not re-run: \(after)"); return }
    }

    @Test func aCutValueIsFetchedWholeBeforeItCanBeEditedAndTheFormLeavesItAlone() {
        var state = opened()
        let row = state.grid!.cursorRow
        state.grid!.long = state.grid!.rows.map { _ in [:] }
        state.grid!.long[row] = [1: LongValue(bytes: 3_000_000, md5: "abc")]
        state.grid!.cursorColumn = 1
        guard case .loadValue(_, let seenRow, let column, let request) = state.reduce(.key(.enter)).first else {
            Issue.record("the cut value was not fetched"); return
        }
        #expect(column == 1 && seenRow == state.grid!.rows[row])
        #expect(state.busy?.hasPrefix("loading the whole value") == true)
        let whole = String(repeating: "w", count: 5000)
        _ = state.reduce(.valueLoaded(whole, request: request))
        guard case .editCell(let edit) = state.mode else { Issue.record("no editor"); return }
        #expect(edit.field.value == whole && edit.seen[1] == whole && edit.long.isEmpty)
        // The row form shows the cut value but does not let it be typed over.
        var form = opened()
        form.grid!.long = form.grid!.rows.map { _ in [:] }
        form.grid!.long[form.grid!.cursorRow] = [1: LongValue(bytes: 3_000_000, md5: "abc")]
        _ = form.reduce(.key(.character("e")))
        _ = form.reduce(.key(.down))
        for character in "typed" { _ = form.reduce(.key(.character(character))) }
        guard case .form(let opened) = form.mode else { Issue.record("no form"); return }
        #expect(!opened.touched.contains(1) && opened.long[1] != nil)
        #expect(Renderer.render(form).text.contains("Enter on the cell edits it"))
        guard case .update(_, _, let changes, let long, _) = form.reduce(.key(.control("s"))).first else {
            #expect(form.message == "nothing changed"); return
        }
        #expect(changes[1] == nil && long[1] != nil)
    }

    @Test func f4AndLongValuesGoToTheExternalEditorAndComeBackIntoTheField() {
        var state = opened()
        _ = state.reduce(.key(.enter))
        #expect(state.reduce(.key(.function(4))).first == .editExternally(state.grid!.rows[state.grid!.cursorRow][1]))
        _ = state.reduce(.externallyEdited("from the editor", problem: nil))
        guard case .editCell(let edit) = state.mode else { Issue.record("the editor closed"); return }
        #expect(edit.field.value == "from the editor")
        _ = state.reduce(.externallyEdited(nil, problem: "the editor vi exited with status 1: value unchanged"))
        guard case .editCell(let kept) = state.mode else { Issue.record("the editor closed"); return }
        #expect(kept.field.value == "from the editor" && state.messageIsError)
        var long = opened()
        long.grid!.rows[long.grid!.cursorRow][1] = String(repeating: "x", count: CellEdit.externalEditorCharacters + 1)
        #expect(long.reduce(.key(.enter)).first.map { if case .editExternally = $0 { true } else { false } } == true)
    }

    @Test func theQueryLogPaneFiltersByContextAndSource() {
        var state = opened()
        func entry(_ id: UInt64, _ context: String, _ source: String?) -> QueryLogEntry {
            QueryLogEntry(
                id: id, time: .init(timeIntervalSince1970: Double(id)), context: context, operation: .read, node: "pg1", reason: "",
                durationMs: 1, rows: 1, error: nil, sql: "select \(id)", source: source)
        }
        _ = state.reduce(.log([entry(1, "admin", nil), entry(2, "public", "shop"), entry(3, "admin", "shop"), entry(4, "public", "jobs")]))
        state.focus = .pane
        _ = state.reduce(.key(.character("A")))
        #expect(state.visibleLog.map(\.id) == [1, 3])
        _ = state.reduce(.key(.character("P")))
        #expect(state.visibleLog.map(\.id) == [2, 4])
        _ = state.reduce(.key(.character("P")))
        #expect(state.visibleLog.map(\.id) == [1, 2, 3, 4])
        #expect(state.logSources == ["console", "shop", "jobs"])
        _ = state.reduce(.key(.character("S")))
        #expect(state.visibleLog.map(\.id) == [1])
        _ = state.reduce(.key(.character("S")))
        #expect(state.visibleLog.map(\.id) == [2, 3])
        _ = state.reduce(.key(.character("A")))
        #expect(state.visibleLog.map(\.id) == [3])
        _ = state.reduce(.key(.character("S")))
        _ = state.reduce(.key(.character("S")))
        #expect(state.logSourceFilter == nil)
        _ = state.reduce(.followedFiles(2))
        let screen = Renderer.render(state).text
        #expect(screen.contains("Query log +2 followed [admin]"))
        #expect(screen.contains("pg1 - A shop "), "node and reason code lead the line")
        // A followed file is another process's text: escapes in it never reach the terminal.
        _ = state.reduce(.log([entry(9, "admin", "\u{1B}]0;pwned\u{7}"), entry(10, "admin", "ok")]))
        var hostile = state.log
        hostile[1].sql = "select 1 \u{1B}[2J\u{202E}"
        _ = state.reduce(.log(hostile))
        let shown = Renderer.render(state).text
        #expect(!shown.unicodeScalars.contains { $0 == "\u{1B}" || $0 == "\u{7}" || $0 == "\u{202E}" })
    }
}

/// The query log view's filters, search, selection and detail, on the sample log.
@Suite struct QueryLogViewTests {
    func open() -> ConsoleState {
        var state = ConsoleState.sample(width: 120, height: 30)
        _ = state.reduce(.key(.character("Q")))
        return state
    }

    func view(_ state: ConsoleState) -> QueryLogView? {
        if case .queryLog(let view) = state.mode { return view }
        return nil
    }

    @Test func filtersNarrowAndCycleBackToAll() throws {
        var state = open()
        let all = try #require(view(state)).entries(state.log)
        #expect(all.count == 40 && all.first?.id == 40, "newest first")
        _ = state.reduce(.key(.character("A")))
        #expect(try #require(view(state)).entries(state.log).allSatisfy { $0.context == "admin" })
        _ = state.reduce(.key(.character("A")))
        _ = state.reduce(.key(.character("S")))
        #expect(view(state)?.source == ConsoleState.localLogSource, "first press: this console only")
        #expect(try #require(view(state)).entries(state.log).allSatisfy { $0.source == nil })
        _ = state.reduce(.key(.character("S")))
        #expect(view(state)?.source == "storefront")
        _ = state.reduce(.key(.character("S")))
        #expect(view(state)?.source == nil, "then all")
        _ = state.reduce(.key(.character("N")))
        let node = try #require(view(state)?.node)
        #expect(try #require(view(state)).entries(state.log).allSatisfy { $0.node == node })
    }

    @Test func searchIsTypedThenAppliedAndEscKeepsTheOldOne() throws {
        var state = open()
        _ = state.reduce(.key(.character("/")))
        #expect(state.scopes.first == .logSearch)
        for character in "Customers" { _ = state.reduce(.key(.character(character))) }
        #expect(view(state)?.search == "", "not applied while typing")
        _ = state.reduce(.key(.enter))
        let found = try #require(view(state)).entries(state.log)
        #expect(!found.isEmpty && found.allSatisfy { $0.sql.contains("customers") })
        _ = state.reduce(.key(.character("/")))
        _ = state.reduce(.key(.control("u")))
        _ = state.reduce(.key(.escape))
        #expect(view(state)?.search == "Customers", "Esc while typing keeps the search")
        #expect(state.mode != .browse)
    }

    @Test func theSelectionStaysOnItsEntryWhenNewOnesArrive() throws {
        var state = open()
        _ = state.reduce(.key(.down))
        _ = state.reduce(.key(.down))
        let chosen = try #require(view(state)?.selected)
        #expect(chosen.id == 38)
        var log = state.log
        var newer = log.last!
        newer.id = 41
        newer.source = nil
        newer.time = newer.time.addingTimeInterval(1)
        log.append(newer)
        _ = state.reduce(.log(log))
        let entries = try #require(view(state)).entries(state.log)
        #expect(entries[try #require(view(state)).selectedIndex(entries)].id == 38)
        _ = state.reduce(.key(.enter))
        #expect(view(state)?.detail == true)
        _ = state.reduce(.key(.escape))
        #expect(view(state)?.detail == false)
        _ = state.reduce(.key(.character("G")))
        #expect(try #require(view(state)).selectedIndex(entries) == entries.count - 1)
        _ = state.reduce(.key(.escape))
        #expect(state.mode == .browse)
    }
}
