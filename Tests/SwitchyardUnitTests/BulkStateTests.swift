@testable import Console
import PropertyBased
@testable import Switchyard
import Testing

extension ConsoleState {
    /// The sample grid, focused, with no message: ready for keys.
    static func focusedSample() -> ConsoleState {
        var state = ConsoleState.sample(width: 120, height: 40)
        state.focus = .grid
        state.message = nil
        return state
    }
}

/// Marking rows and the bulk actions' statements.
@Suite struct BulkStateTests {
    func grid() -> ConsoleState { .focusedSample() }

    @Test func vMarksAndUnmarksRowsAndDRunsTheDeleteHeld() {
        var state = grid()
        #expect(state.reduce(.key(.character("D"))).isEmpty)
        #expect(state.message?.contains("no rows marked") == true, "D without marks says why")
        _ = state.reduce(.key(.character("v")))  // row 3, cursor to row 4
        _ = state.reduce(.key(.character("v")))  // row 4
        _ = state.reduce(.key(.up))
        _ = state.reduce(.key(.character("v")))  // row 4 again: unmarked
        #expect(state.grid?.marks.keys == [["3"]])
        #expect(state.grid?.isMarked(2) == true && state.grid?.isMarked(3) == false)
        #expect(Renderer.render(state).text.contains("[1 marked]"))
        let effects = state.reduce(.key(.character("D")))
        guard case .runStatement(let statement, _, let request) = effects.first else { Issue.record("\(effects)"); return }
        #expect(statement.text == "delete from \"demo\".\"customers\" as r where r.\"id\" = any($1::integer[])")
        #expect(statement.parameters == ["{\"3\"}"] && statement.target?.reference == "r")
        let write = PromptWrite(statement: statement.text, summary: "DELETE 1", rows: 1, sample: [], columns: [], note: nil, expires: .now)
        _ = state.reduce(.promptHeld(write, request: request))
        guard case .promptCommand(.commit, let commit) = state.reduce(.key(.character("y"))).first else { Issue.record("no commit"); return }
        _ = state.reduce(.promptDone("committed: DELETE 1", request: commit))
        #expect(state.mode == .browse && state.grid?.marks.isEmpty == true, "spent marks are cleared, back to the grid")
    }

    @Test func vMarksEveryMatchingRowAndAFilterChangeUnmarksThem() {
        var state = grid()
        state.grid?.filter = Filter(column: 3, op: .equals, value: "DE")
        _ = state.reduce(.key(.character("V")))
        #expect(state.grid?.marks.matching?.filter == Filter(column: 3, op: .equals, value: "DE"))
        #expect(state.grid?.isMarked(0) == true)
        // = asks for a value, then runs the update held.
        _ = state.reduce(.key(.character("=")))
        guard case .bulkSet = state.mode else { Issue.record("no prompt: \(state.mode)"); return }
        for character in "FR" { _ = state.reduce(.key(.character(character))) }
        guard case .runStatement(let statement, _, _) = state.reduce(.key(.enter)).first else { Issue.record("not run"); return }
        #expect(statement.text == "update \"demo\".\"customers\" as r set \"name\" = $1 where (r.\"country\" = $2)")
        #expect(statement.parameters == ["FR", "DE"])
        var other = grid()
        other.grid?.filter = Filter(column: 3, op: .equals, value: "DE")
        _ = other.reduce(.key(.character("V")))
        _ = other.reduce(.key(.character("/")))
        for character in "x" { _ = other.reduce(.key(.character(character))) }
        _ = other.reduce(.key(.enter))
        #expect(other.grid?.marks.matching == nil && other.message?.contains("unmarked") == true)
    }

    @Test func markedKeysBecomeOneTypedArrayPerKeyColumn() async {
        let key = ColumnInfo(name: "a", type: "text", notNull: true, defaultExpression: nil, primaryKeyPosition: 1, quoted: "\"a\"")
        let second = ColumnInfo(name: "b", type: "integer", notNull: true, defaultExpression: nil, primaryKeyPosition: 2, quoted: "\"b\"")
        let shape = TableShape(table: TableInfo(schema: "s", name: "t", estimatedRows: 1), quotedName: "\"s\".\"t\"", columns: [key, second])
        await propertyCheck(count: 500, input: NastyText.string.array(of: 1...8)) { values in
            var marks = Marks()
            for (index, value) in values.enumerated() { marks.keys.insert([value, String(index)]) }
            let statement = SQLBuilder.bulkDelete(shape, marks)
            // The SQL is the same whatever the values: every one travels in an array parameter.
            #expect(statement.sql == "delete from \"s\".\"t\" as r where (r.\"a\", r.\"b\") in (select * from unnest($1::text[], $2::integer[]))")
            #expect(statement.parameters.count == 2)
            #expect(statement.parameters[0] == SQLBuilder.arrayLiteral(marks.keys.sorted { ($0.map { $0 ?? "" }).lexicographicallyPrecedes($1.map { $0 ?? "" }) }.map { $0[0] ?? "" }))
        }
    }
}

/// `--read-only` and `[cluster] protected` in the console's state machine.
@Suite struct GuardedConsoleTests {
    func grid() -> ConsoleState { .focusedSample() }

    @Test func aReadOnlyConsoleOffersNoKeyThatWrites() {
        var state = grid()
        state.readOnly = true
        for key: Key in [.enter, .character("e"), .character("a"), .character("d"), .character(" "), .character("E"), .character("v"), .character("D")] {
            #expect(state.reduce(.key(key)).isEmpty, "\(key) did something")
            #expect(state.message == Keymap.readOnlyReason && state.messageIsError, "\(key): \(state.message ?? "")")
        }
        #expect(!Keymap.hintLine(for: state).contains("Enter edit"))
        #expect(Renderer.render(state).text.contains("READ-ONLY"))
        // The SQL prompt still opens, and refuses what would change the session.
        _ = state.reduce(.key(.character(":")))
        for character in "set default_transaction_read_only = off" { _ = state.reduce(.key(.character(character))) }
        #expect(state.reduce(.key(.enter)).isEmpty)
        #expect(state.message?.contains("read-only") == true)
    }

    @Test func aProtectedClusterWritesOnlyAfterItsNameIsTyped() {
        var state = grid()
        state.protected = true
        _ = state.reduce(.key(.enter))  // edit the cell
        for character in "Zed" { _ = state.reduce(.key(.character(character))) }
        #expect(state.reduce(.key(.enter)).isEmpty, "saved without the name")
        guard case .confirmProtected(let write) = state.mode else { Issue.record("not asked: \(state.mode)"); return }
        #expect(write.summary.contains("update name") && state.busy == nil)
        #expect(Renderer.render(state).text.contains("demo is protected"))
        for character in "prod" { _ = state.reduce(.key(.character(character))) }
        #expect(state.reduce(.key(.enter)).isEmpty)
        #expect(state.messageIsError && state.message?.contains("is not demo") == true)
        // Esc: back to the editor, the text kept.
        _ = state.reduce(.key(.escape))
        guard case .editCell(let edit) = state.mode else { Issue.record("editor lost: \(state.mode)"); return }
        #expect(edit.field.value?.hasSuffix("Zed") == true)
        _ = state.reduce(.key(.enter))
        for character in "demo" { _ = state.reduce(.key(.character(character))) }
        let effects = state.reduce(.key(.enter))
        guard case .update(_, _, let changes, _, let request) = effects.first else { Issue.record("not written: \(effects)"); return }
        #expect(changes[1]??.hasSuffix("Zed") == true && state.pending == request && state.busy != nil)
        _ = state.reduce(.saved(row: nil, request: request))
        #expect(state.mode == .browse)
    }
}
