@testable import Console
import PropertyBased
@testable import PostgresClient
@testable import Switchyard
import Testing

/// Random key sequences through the console's reducer and renderer, on random table
/// shapes: no crash, and the invariants hold after every event.
@Suite struct ConsoleFuzzTests {
    enum Shape: CaseIterable {
        case noColumns, oneKeyColumn, wide, compositeKey, noKey
    }

    static func shape(_ kind: Shape) -> TableShape {
        func column(_ name: String, key: Int? = nil, notNull: Bool = false) -> ColumnInfo {
            ColumnInfo(name: name, type: "text", notNull: notNull, defaultExpression: nil, primaryKeyPosition: key, quoted: "\"\(name)\"")
        }
        let columns: [ColumnInfo]
        switch kind {
        case .noColumns: columns = []
        case .oneKeyColumn: columns = [column("id", key: 1, notNull: true)]
        case .wide: columns = [column("id", key: 1, notNull: true)] + (1..<300).map { column("c\($0)") }
        case .compositeKey: columns = [column("a", key: 1), column("b", key: 2), column("v")]
        case .noKey: columns = [column("x"), column("y")]
        }
        return TableShape(table: TableInfo(schema: "s", name: "t\(kind)", estimatedRows: 10), quotedName: "\"s\".\"t\"", columns: columns)
    }

    /// Rows for `shape`: empty, short, huge, NULL and hostile values.
    static func rows(_ shape: TableShape, count: Int) -> [[String?]] {
        let values: [String?] = ["", nil, "plain", String(repeating: "x", count: 5_000), "\u{1B}[2J\u{9B}31m", "\u{202E}gnp.exe", "中文🚂"]
        return (0..<count).map { row in shape.columns.indices.map { column in column == 0 ? "\(row)" : values[(row + column) % values.count] } }
    }

    static let keys: [Key] = [
        .up, .down, .left, .right, .pageUp, .pageDown, .home, .end, .enter, .escape, .tab, .backTab, .backspace, .delete,
        .character("e"), .character("a"), .character("d"), .character("y"), .character("s"), .character("/"), .character("r"),
        .character("F"), .character("P"), .character("?"), .character("q"), .character("g"), .character("G"), .character("x"),
        .control("n"), .control("u"), .control("s"), .control("c"), .function(1), .function(2),
    ]

    enum Step {
        case key(Key)
        case paste(Int)
        case resize(Int, Int)
    }

    static let step = Gen<Int>.int(in: 0..<(keys.count + 6)).map { index -> Step in
        if index < keys.count { return .key(keys[index]) }
        if index < keys.count + 3 { return .paste(index * 5) }
        return .resize(40 + index * 13 % 200, 10 + index * 7 % 60)
    }

    @Test func randomKeysNeverCrashAndKeepInvariants() async {
        await propertyCheck(
            count: 1000, input: Gen.element(of: Shape.allCases).map { $0! }, Gen.int(in: 0...12), Self.step.array(of: 1...40)
        ) { kind, rowCount, steps in
            let shape = Self.shape(kind)
            var state = ConsoleState(width: 120, height: 40, clusterName: "fuzz")
            state.tables = [shape.table]
            var grid = Grid(shape: shape)
            grid.rows = Self.rows(shape, count: rowCount)
            grid.keys = grid.rows.map { [$0.first ?? nil] }
            grid.loaded = true
            state.grid = grid
            state.focus = .grid
            let readOnly = !shape.hasPrimaryKey
            for step in steps {
                var effects: [ConsoleEffect]
                switch step {
                case .key(let key): effects = state.reduce(.key(key))
                case .paste(let length): effects = (0..<length).flatMap { _ in state.reduce(.key(.character("p"))) }
                case .resize(let width, let height): effects = state.reduce(.resize(width: width, height: height))
                }
                // Answer what the console asked for, as the data service would.
                for effect in effects {
                    if readOnly {
                        switch effect {
                        case .update, .insert, .delete: Issue.record("a write on a read-only table: \(effect)")
                        default: break
                        }
                    }
                    switch effect {
                    case .loadPage(_, let position, _, _, _, let request, _):
                        _ = state.reduce(.pageLoaded(rows: grid.rows, keys: grid.keys, position: position, request: request))
                    case .update(_, _, _, _, let request), .insert(_, _, let request), .delete(_, _, _, let request):
                        _ = state.reduce(.saved(row: nil, request: request))
                    case .runChecks(let request):
                        _ = state.reduce(.failed(message: "no cluster", request: request))
                    case .loadTables(let request):
                        _ = state.reduce(.tablesLoaded([shape.table], request: request))
                    case .openTable(let table, let request):
                        _ = state.reduce(.tableOpened(TableShape(table: table, quotedName: shape.quotedName, columns: shape.columns), request: request))
                    default: break
                    }
                }
                if state.quit { break }
                if let current = state.grid {
                    #expect(current.rows.isEmpty ? current.cursorRow == 0 : current.rows.indices.contains(current.cursorRow),
                            "cursor row \(current.cursorRow) outside \(current.rows.count) rows")
                    #expect(current.shape.columns.isEmpty ? current.cursorColumn == 0 : current.shape.columns.indices.contains(current.cursorColumn))
                }
                let screen = Renderer.render(state)
                #expect(screen.cells.count == max(state.width, 0) * max(state.height, 0))
            }
        }
    }

    @Test func aTableWithNoColumnsOpensAsAnEmptyReadOnlyGrid() {
        var state = ConsoleState(width: 120, height: 40, clusterName: "c")
        let shape = Self.shape(.noColumns)
        state.grid = Grid(shape: shape)
        state.grid!.rows = [[], []]
        state.grid!.keys = [["(0,1)"], ["(0,2)"]]
        state.grid!.loaded = true
        state.focus = .grid
        let text = Renderer.render(state).text
        #expect(text.contains("READ-ONLY (no columns)"))
        for key in Self.keys where key != .character("q") && key != .control("c") {
            let effects = state.reduce(.key(key))
            #expect(!effects.contains { if case .update = $0 { true } else if case .insert = $0 { true } else if case .delete = $0 { true } else { false } })
            _ = Renderer.render(state)
            if case .help = state.mode { _ = state.reduce(.key(.escape)) }
            if case .failover = state.mode { _ = state.reduce(.key(.escape)) }
            if let pending = state.pending { _ = state.reduce(.failed(message: "x", request: pending)) }
        }
        #expect(SQLBuilder.page(shape, position: .first, sort: nil, filter: nil, limit: 10).sql.contains("r.ctid"))
    }

    @Test func controlBidiAndZeroWidthCharactersAreShownNotObeyed() {
        for hostile in ["\u{1B}[2J", "\u{9B}31m", "a\u{202E}cba", "x\u{2066}y", "zero\u{200B}width", "bom\u{FEFF}", "nul\u{0}"] {
            let shown = Screen.fit(hostile, to: 40)
            #expect(!shown.unicodeScalars.contains { TerminalText.isHidden($0) }, "\(hostile.debugDescription) → \(shown.debugDescription)")
            #expect(shown.contains("·"))
            #expect(TerminalText.sanitized(hostile) == shown)
        }
        #expect(Screen.fit("👨‍👩‍👧 family", to: 40) == "👨‍👩‍👧 family", "a joiner inside an emoji stays")
        // A huge value is cut without reading all of it.
        let huge = String(repeating: "y", count: 1_000_000)
        #expect(Screen.fit(huge, to: 10) == "yyyyyyyyy…")
    }
}
