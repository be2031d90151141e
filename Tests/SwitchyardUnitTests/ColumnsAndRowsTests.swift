@testable import Console
import Foundation
import PropertyBased
@testable import Switchyard
import Testing

/// Columns hidden, widened and pinned; one row vertically; finding a table; a row copied.
@Suite struct ColumnsAndRowsTests {
    func grid() -> ConsoleState { .focusedSample() }

    @Test func hiddenColumnsAreSkippedAndWidthsKept() {
        var state = grid()
        state.grid?.cursorColumn = 2  // email
        _ = state.reduce(.key(.character("z")))
        #expect(state.grid?.hidden == [2] && state.grid?.cursorColumn == 3)
        _ = state.reduce(.key(.left))
        #expect(state.grid?.cursorColumn == 1, "the hidden column is stepped over")
        let shown = Renderer.visibleColumns(state.grid!, width: 200).map(\.0)
        #expect(!shown.contains(2) && shown.first == 0)
        #expect(!Renderer.render(state).text.contains("email"))
        _ = state.reduce(.key(.character(">")))
        _ = state.reduce(.key(.character(">")))
        let widened = Renderer.visibleColumns(state.grid!, width: 200).first { $0.0 == 1 }?.1
        #expect(widened == Renderer.naturalWidth(state.grid!, 1) + 8)
        _ = state.reduce(.key(.character("Z")))
        #expect(state.grid?.hidden.isEmpty == true)
        // The last column shown cannot be hidden.
        var one = grid()
        one.grid?.hidden = Set(1..<6)
        one.grid?.cursorColumn = 0
        #expect(one.reduce(.key(.character("z"))).isEmpty && one.grid?.hidden.count == 5 && one.messageIsError)
    }

    @Test func everyKeyColumnStaysPinnedWhileScrollingRight() {
        var state = grid()
        for index in [0, 1] { state.grid?.shape.columns[index].primaryKeyPosition = index + 1 }
        state.grid?.cursorColumn = 5
        let shown = Renderer.visibleColumns(state.grid!, width: 50).map(\.0)
        #expect(shown.prefix(2) == [0, 1] && shown.contains(5), "\(shown)")
    }

    @Test func aRowIsShownTopToBottomAndEditedFromThere() {
        var state = grid()
        _ = state.reduce(.key(.character("o")))
        guard case .rowView(let view) = state.mode else { Issue.record("no row view"); return }
        #expect(view.row == 2)
        let screen = Renderer.render(state).text
        #expect(screen.contains("Row id = 3 of demo.customers") && screen.contains("customer3@example.com") && screen.contains("▶ name"))
        _ = state.reduce(.key(.down))
        _ = state.reduce(.key(.enter))
        guard case .editCell(let edit) = state.mode else { Issue.record("not editing: \(state.mode)"); return }
        #expect(edit.column == 2 && edit.row == 2)
    }

    @Test func slashInTheTableListJumpsToTheFirstMatch() {
        var state = ConsoleState.sample(width: 120, height: 40)
        state.focus = .tables
        _ = state.reduce(.key(.character("/")))
        for character in "ORD" { _ = state.reduce(.key(.character(character))) }
        #expect(state.tables[state.tableCursor].name == "orders")
        for character in "zz" { _ = state.reduce(.key(.character(character))) }
        #expect(state.messageIsError && state.tables[state.tableCursor].name == "orders", "no match: the cursor stays")
        let effects = state.reduce(.key(.enter))
        guard case .openTable(let table, _) = effects.first else { Issue.record("not opened"); return }
        #expect(table.name == "orders")
    }

    @Test func copyingARowAsksFormatAndPlaceThenReadsItWhole() {
        var state = grid()
        _ = state.reduce(.key(.character("c")))
        _ = state.reduce(.key(.tab))
        let effects = state.reduce(.key(.enter))
        guard case .copyRow(_, let key, let format, let path, let request) = effects.first else { Issue.record("\(effects)"); return }
        #expect(key == ["3"] && format == .json && path == nil)
        #expect(state.reduce(.copied("copied", clipboard: "{}", request: request)) == [.setClipboard("{}")])
    }

    @Test func copiedTextReadsBackAsTheRow() async {
        let shape = ConsoleState.sample(width: 80, height: 24).grid!.shape
        let value = Gen<String?>.frequency((4, NastyText.string.map { $0 as String? }), (1, Gen.always(nil)))
        await propertyCheck(count: 500, input: value.array(of: 6...6)) { row in
            let json = RowCopy.text(.json, shape: shape, row: row)
            let object = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any]
            #expect(object != nil, "\(json)")
            for (index, column) in shape.columns.enumerated() {
                if let text = row[index] { #expect(object?[column.name] as? String == text) } else { #expect(object?[column.name] is NSNull) }
            }
            let insert = RowCopy.text(.insert, shape: shape, row: row)
            // Every literal closes: quotes outside the values come in pairs.
            #expect(insert.filter { $0 == "'" }.count % 2 == 0)
            let csv = RowCopy.text(.csv, shape: shape, row: row, null: "")
            #expect(csv.hasPrefix("id,name,email,country,vip,notes\r\n"))
        }
        #expect(RowCopy.text(.insert, shape: shape, row: ["1", "O'Brien", nil, "IE", "true", "a\\b"])
                == "insert into \"demo\".\"customers\" (\"id\", \"name\", \"email\", \"country\", \"vip\", \"notes\") values ('1', 'O''Brien', NULL, 'IE', 'true', 'a\\b');\n")
        #expect(RowCopy.text(.csv, shape: shape, row: ["1", "a, \"b\"", nil, " x", "t", "l1\nl2"])
                == "id,name,email,country,vip,notes\r\n1,\"a, \"\"b\"\"\",,\" x\",t,\"l1\nl2\"\r\n")
    }
}

/// `C`: switching clusters from the console.
@Suite struct ClusterSwitchStateTests {
    @Test func cListsTheClustersAndEnterEndsThisConsoleForTheOneChosen() {
        var state = ConsoleState.focusedSample()
        #expect(state.reduce(.key(.character("C"))).isEmpty && state.messageIsError, "one cluster: nothing to switch to")
        state.clusterNames = ["demo", "production"]
        state.clusterColor = .red
        #expect(Renderer.render(state).cells.contains { $0.role == .error && $0.character == "d" }, "the name in the cluster's colour")
        _ = state.reduce(.key(.character("C")))
        #expect(Renderer.render(state).text.contains("demo  (this one)"))
        _ = state.reduce(.key(.down))
        #expect(state.reduce(.key(.enter)) == [.quit])
        #expect(state.switchTo == "production" && state.quit)
    }
}
