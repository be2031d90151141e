@testable import Console
import Foundation
import PropertyBased
import Switchyard
import Testing

/// Typed editing: pick lists from CHECK constraints, JSON checked and laid out, boolean
/// toggles and pick lists in the state machine.
@Suite struct TypedEditingTests {
    @Test func checkConstraintsAsPostgreSQLPrintsThemGivePickLists() {
        #expect(TypedValues.checkChoices("CHECK ((status = ANY (ARRAY['new'::text, 'paid'::text, 'it''s'::text])))", column: "status")
            == ["new", "paid", "it's"])
        #expect(TypedValues.checkChoices(
            "CHECK (((size)::text = ANY ((ARRAY['S'::character varying, 'M'::character varying])::text[])))", column: "size") == ["S", "M"])
        #expect(TypedValues.checkChoices("CHECK ((\"Status\" = ANY (ARRAY['a'::text, 'b, c'::text])))", column: "Status") == ["a", "b, c"])
        #expect(TypedValues.checkChoices("CHECK ((status = ANY (ARRAY['new'::text])))", column: "other") == nil)
        #expect(TypedValues.checkChoices("CHECK ((qty > 0))", column: "qty") == nil)
        #expect(TypedValues.checkChoices("CHECK ((status = ANY (ARRAY['unterminated", column: "status") == nil)
    }

    /// Any list of values survives PostgreSQL's printing and our parsing.
    @Test func choicesRoundTrip() async {
        let value = Gen.element(of: ["a", "'", "''", "b, c", "ARRAY[", "]", "::text", "é", " ", "\""]).map { $0! }.array(of: 1...4).map { $0.joined() }
        await propertyCheck(count: 2000, input: value.array(of: 1...6)) { values in
            let literals = values.map { "'" + $0.replacingOccurrences(of: "'", with: "''") + "'::text" }.joined(separator: ", ")
            #expect(TypedValues.checkChoices("CHECK ((kind = ANY (ARRAY[\(literals)])))", column: "kind") == values)
        }
    }

    /// Pretty-printing and minifying keep every token and its order; validity is judged
    /// before any round trip.
    @Test func jsonLayoutKeepsTheDocument() async {
        let scalar = Gen.element(of: ["1", "-2.5e3", "true", "null", "\"a b\"", "\"x\\\"y\"", "\"{[,:]}\"", "\"\""]).map { $0! }
        func document(_ values: [String], _ shape: Int) -> String {
            switch shape {
            case 0: return "[" + values.joined(separator: " , ") + "]"
            case 1: return "{" + values.enumerated().map { "\"k\($0.offset)\" :\n \($0.element)" }.joined(separator: ",") + "}"
            default: return "{\"outer\": [" + values.joined(separator: ",") + "], \"empty\": {}, \"none\": []}"
            }
        }
        await propertyCheck(count: 2000, input: scalar.array(of: 0...4), Gen.int(in: 0...2)) { values, shape in
            let text = document(values, shape)
            #expect(TypedValues.jsonProblem(text) == nil, "\(text)")
            let pretty = TypedValues.prettyJSON(text)
            #expect(TypedValues.jsonProblem(pretty) == nil, "\(pretty)")
            #expect(TypedValues.minifiedJSON(pretty) == TypedValues.minifiedJSON(text))
        }
        #expect(TypedValues.prettyJSON(#"{"a":[1,{"b":"x, y"}],"c":{}}"#) == "{\n  \"a\": [\n    1,\n    {\n      \"b\": \"x, y\"\n    }\n  ],\n  \"c\": {}\n}")
        #expect(TypedValues.jsonProblem("{\"a\": }") != nil)
        #expect(TypedValues.jsonProblem("") != nil)
    }

    /// What the server refuses is refused before sending: trailing commas, comments, single
    /// quotes, NaN, bare words, leading zeros, raw control characters.
    @Test func jsonIsCheckedAsStrictlyAsTheServerReadsIt() async {
        for bad in [
            #"{"a":1,}"#, "[1,2,]", "[,]", "{,}", #"{'a':1}"#, "[NaN]", "[01]", "[1.]", "[.5]", "[+1]", "// c\n1", "[1 2]", #"{"a" 1}"#,
            "\"tab\there\"", #""\x""#, "[", "{\"a\":1}}", "tru",
        ] {
            #expect(TypedValues.jsonProblem(bad) != nil, "\(bad.debugDescription) passed the check")
        }
        #expect(TypedValues.jsonProblem(#"{"a":1,}"#)?.contains("a comma before }") == true)
        for good in [#"{"a":[1,-0.5e-3,true,null,"\u00e9\n"],"b":{}}"#, "0", "-0", "[]", " \"x\" ", "1E+2"] {
            #expect(TypedValues.jsonProblem(good) == nil, "\(good.debugDescription) refused")
        }
        // Whatever Foundation writes, the check accepts; with a comma before a closer, never.
        let scalar = Gen.element(of: [1, -2.5, 0, 1e20] as [Double]).map { $0! }
        await propertyCheck(count: 2000, input: scalar.array(of: 1...5), Gen.int(in: 0...1)) { values, shape in
            let object: Any = shape == 0 ? values : Dictionary(uniqueKeysWithValues: values.enumerated().map { ("k\($0.offset)", $0.element) })
            guard let data = try? JSONSerialization.data(withJSONObject: object), let text = String(data: data, encoding: .utf8) else { return }
            #expect(TypedValues.jsonProblem(text) == nil, "\(text)")
            var trailing = text
            trailing.insert(",", at: trailing.index(before: trailing.endIndex))
            #expect(TypedValues.jsonProblem(trailing) != nil, "\(trailing)")
        }
    }

    static func state(columns: [ColumnInfo], row: [String?], column: Int) -> ConsoleState {
        var state = ConsoleState.sample(width: 120, height: 40)
        var grid = Grid(shape: TableShape(table: TableInfo(schema: "demo", name: "orders", estimatedRows: 1), quotedName: "\"demo\".\"orders\"", columns: columns))
        grid.rows = [row]
        grid.keys = [[row[0]]]
        grid.cursorColumn = column
        grid.loaded = true
        state.grid = grid
        return state
    }

    static let columns = [
        ColumnInfo(name: "id", type: "integer", notNull: true, defaultExpression: nil, primaryKeyPosition: 1, quoted: "\"id\""),
        ColumnInfo(name: "vip", type: "boolean", notNull: false, defaultExpression: nil, primaryKeyPosition: nil, quoted: "\"vip\""),
        ColumnInfo(name: "status", type: "text", notNull: false, defaultExpression: nil, primaryKeyPosition: nil, quoted: "\"status\"",
                   choices: ["new", "paid", "shipped"]),
        ColumnInfo(name: "payload", type: "jsonb", notNull: false, defaultExpression: nil, primaryKeyPosition: nil, quoted: "\"payload\""),
    ]

    @Test func spaceTogglesBooleansAndSavesLikeAnEdit() {
        var state = Self.state(columns: Self.columns, row: ["1", "false", "new", nil], column: 1)
        let effects = state.reduce(.key(.character(" ")))
        guard case .update(_, let seen, let changes, _, let request) = effects.first else { Issue.record("no save: \(effects)"); return }
        #expect(seen == ["1", "false", "new", nil] && changes == [1: "true"])
        _ = state.reduce(.saved(row: ["1", "true", "new", nil], request: request))
        #expect(state.grid?.rows[0][1] == "true" && state.message == "saved vip")
        state.grid?.cursorColumn = 2
        #expect(state.reduce(.key(.character(" "))).isEmpty)
        #expect(state.message == "status is text, not boolean: Space toggles booleans only")
    }

    @Test func choicesOpenAPickListThatSaves() {
        var state = Self.state(columns: Self.columns, row: ["1", "false", "new", nil], column: 2)
        _ = state.reduce(.key(.enter))
        guard case .pick(let pick) = state.mode else { Issue.record("no pick list: \(state.mode)"); return }
        #expect(pick.choices == ["new", "paid", "shipped", nil] && pick.selected == 0)
        for (width, height) in [(80, 24), (200, 60)] {
            var sized = state
            _ = sized.reduce(.resize(width: width, height: height))
            try? RenderTests().check(Renderer.render(sized, clock: RenderTests.clock), "pick-\(width)x\(height)")
        }
        _ = state.reduce(.key(.down))
        _ = state.reduce(.key(.down))
        let effects = state.reduce(.key(.enter))
        guard case .update(_, _, let changes, _, _) = effects.first else { Issue.record("no save: \(effects)"); return }
        #expect(changes == [2: "shipped"])
    }

    @Test func badJSONIsCaughtBeforeTheRoundTripAndGoodJSONIsSavedMinified() {
        var state = Self.state(columns: Self.columns, row: ["1", "false", "new", "{\"a\":1}"], column: 3)
        _ = state.reduce(.key(.enter))
        _ = state.reduce(.key(.control("u")))
        for character in "{\"a\": " { _ = state.reduce(.key(.character(character))) }
        #expect(state.reduce(.key(.enter)).isEmpty)
        #expect(state.message?.hasPrefix("not valid JSON") == true && state.message?.hasSuffix("your text is kept") == true)
        guard case .editCell(let edit) = state.mode else { Issue.record("the editor closed"); return }
        #expect(edit.field.value == "{\"a\": ")
        for character in "[1, 2] }" { _ = state.reduce(.key(.character(character))) }
        guard case .update(_, _, let changes, _, _) = state.reduce(.key(.enter)).first else { Issue.record("not saved"); return }
        #expect(changes == [3: "{\"a\":[1,2]}"])

        var external = Self.state(columns: Self.columns, row: ["1", "false", "new", "{\"a\":[1,2]}"], column: 3)
        #expect(external.reduce(.key(.character("E"))) == [.editExternally("{\n  \"a\": [\n    1,\n    2\n  ]\n}")])
    }
}
