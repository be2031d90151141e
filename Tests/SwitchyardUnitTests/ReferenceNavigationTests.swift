@testable import Console
import Foundation
import Switchyard
import Testing

/// Following references in the console's state machine: `f`, `R`, Backspace, the trail.
@Suite struct ReferenceNavigationTests {
    static let customers = TableInfo(schema: "demo", name: "customers", estimatedRows: 20000)
    static let orders = TableInfo(schema: "demo", name: "orders", estimatedRows: 30000)

    static func column(_ name: String, key: Int? = nil) -> ColumnInfo {
        ColumnInfo(name: name, type: "integer", notNull: true, defaultExpression: nil, primaryKeyPosition: key, quoted: "\"\(name)\"")
    }

    static let ordersShape = TableShape(
        table: orders, quotedName: "\"demo\".\"orders\"", columns: [column("id", key: 1), column("customer_id"), column("total")],
        foreignKeys: [ForeignKey(name: "orders_customer_id_fkey", columns: [1], target: customers, targetColumns: ["id"])])

    /// The sample state with `demo.orders` open, cursor on order 7's customer_id.
    static func onOrders(width: Int = 120, height: Int = 40) -> ConsoleState {
        var state = ConsoleState.sample(width: width, height: height)
        var grid = Grid(shape: ordersShape)
        grid.rows = (1...10).map { ["\($0)", "\(40 + $0 % 3)", "\($0 * 10)"] }
        grid.keys = grid.rows.map { [$0[0]] }
        grid.cursorRow = 6
        grid.cursorColumn = 1
        grid.loaded = true
        state.grid = grid
        state.tableCursor = 3
        return state
    }

    @Test func followOpensTheReferencedRowAndBackspaceReturns() throws {
        var state = Self.onOrders()
        let effects = state.reduce(.key(.character("f")))
        guard case .follow(_, let key, let values, let request) = effects.first else { Issue.record("no follow: \(effects)"); return }
        #expect(key.target == Self.customers && values == ["41"])
        let customers = ConsoleState.sample(width: 120, height: 40).grid!.shape
        let loads = state.reduce(.followed(customers, anchor: ["41"], label: "#41", request: request))
        guard case .loadPage(let shape, .from(["41"]), _, _, _, let pageRequest, nil) = loads.first else { Issue.record("no load: \(loads)"); return }
        #expect(shape == customers)
        _ = state.reduce(.pageLoaded(rows: [["41", "Ada", nil, "SE", "false", nil]], keys: [["41"]], position: .from(["41"]), request: pageRequest))
        #expect(state.grid?.selectedRow?.first == "41")
        #expect(state.trail.map(\.label) == ["orders"] && state.trail[0].anchor == ["7"] && state.gridLabel == "customers #41")
        let screen = Renderer.render(state, clock: { _ in "00:00:00" }).text
        #expect(screen.contains("orders › customers #41  (demo.customers)"), "\(screen)")

        let back = state.reduce(.key(.backspace))
        guard case .loadPage(let restored, .from(["7"]), _, _, _, let backRequest, _) = back.first else { Issue.record("no way back: \(back)"); return }
        #expect(restored == Self.ordersShape && state.grid?.cursorColumn == 1 && state.trail.isEmpty)
        _ = state.reduce(.pageLoaded(rows: [["7", "41", "70"]], keys: [["7"]], position: .from(["7"]), request: backRequest))
        #expect(state.grid?.selectedRow == ["7", "41", "70"])
        // Nothing left to go back to; f elsewhere than a foreign key says why.
        _ = state.reduce(.key(.backspace))
        #expect(state.message?.contains("nothing to go back to") == true)
        state.grid?.cursorColumn = 2
        #expect(state.reduce(.key(.character("f"))).isEmpty)
        #expect(state.message == "total is not a foreign key: nothing to follow")
    }

    @Test func referencingRowsOpenFilteredAndTheScopeIsAParameter() throws {
        var state = ConsoleState.sample(width: 120, height: 40)
        let effects = state.reduce(.key(.character("R")))
        guard case .loadReferences(_, let row, let request) = effects.first else { Issue.record("no references: \(effects)"); return }
        #expect(row.first == "3")
        let item = Referencing(table: Self.orders, constraint: "orders_customer_id_fkey", columns: ["customer_id"], values: ["3"], count: 4)
        _ = state.reduce(.referencesLoaded([item], request: request))
        guard case .references(let view) = state.mode else { Issue.record("no list"); return }
        #expect(view.items == [item])
        let open = state.reduce(.key(.enter))
        guard case .openReferencing(let chosen, let openRequest) = open.first else { Issue.record("no open: \(open)"); return }
        #expect(chosen == item)
        let scope = ReferenceScope(columns: [1], values: ["3"], label: "customer_id = 3")
        let loads = state.reduce(.referencingOpened(Self.ordersShape, scope: scope, request: openRequest))
        guard case .loadPage(let shape, .first, _, _, _, _, let sent?) = loads.first else { Issue.record("no scoped load: \(loads)"); return }
        #expect(shape == Self.ordersShape && sent == scope)
        let statement = SQLBuilder.page(shape, position: .first, sort: nil, filter: nil, scope: sent, limit: 10)
        #expect(statement.sql.contains("where r.\"customer_id\" = $1"))
        #expect(statement.parameters == ["3"])
    }

    @Test func referencesViewGoldens() throws {
        for (width, height) in [(80, 24), (200, 60)] {
            var state = ConsoleState.sample(width: width, height: height)
            guard case .loadReferences(_, _, let request) = state.reduce(.key(.character("R"))).first else { Issue.record("no request"); return }
            _ = state.reduce(.referencesLoaded([
                Referencing(table: Self.orders, constraint: "orders_customer_id_fkey", columns: ["customer_id"], values: ["3"], count: 4),
                Referencing(table: TableInfo(schema: "demo", name: "events", estimatedRows: 1_000_000), constraint: "events_customer_fkey",
                            columns: ["customer_id"], values: ["3"], count: nil,
                            uncounted: "no index on events (customer_id) — a count would scan ~1000000 rows"),
            ], request: request))
            try RenderTests().check(Renderer.render(state, clock: RenderTests.clock), "references-\(width)x\(height)")
        }
    }

    @Test func materializedViewsRefreshAfterShowingTheStatement() throws {
        var state = ConsoleState.sample(width: 80, height: 24)
        #expect(state.reduce(.key(.character("M"))).isEmpty)
        #expect(state.message == "demo.customers is not a materialized view")
        let view = TableInfo(schema: "demo", name: "daily \"totals\"", estimatedRows: 10, kind: .materializedView)
        state.tables.append(view)
        state.tableCursor = state.tables.count - 1
        state.focus = .tables
        _ = state.reduce(.key(.character("M")))
        guard case .confirmRefresh(let table, let sql) = state.mode else { Issue.record("no confirmation: \(state.mode)"); return }
        #expect(table == view && sql == #"refresh materialized view "demo"."daily ""totals""""#)
        for (width, height) in [(80, 24), (200, 60)] {
            var sized = state
            _ = sized.reduce(.resize(width: width, height: height))
            try RenderTests().check(Renderer.render(sized, clock: RenderTests.clock), "refresh-\(width)x\(height)")
        }
        let effects = state.reduce(.key(.enter))
        guard case .refreshView(let refreshed, _) = effects.first else { Issue.record("no refresh: \(effects)"); return }
        #expect(refreshed == view)
        // Any other key cancels.
        _ = state.reduce(.viewRefreshed(view, took: 12, request: state.pending ?? 0))
        _ = state.reduce(.key(.character("M")))
        #expect(state.reduce(.key(.character("x"))).isEmpty && state.mode == .browse && state.message == "refresh cancelled")
    }
}
