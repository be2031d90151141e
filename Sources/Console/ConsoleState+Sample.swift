import Foundation
import Switchyard

extension ConsoleState {
    /// A fixed, realistic state (an open table, three nodes with one down, a query log),
    /// for layout tests and the render benchmark.
    public static func sample(width: Int, height: Int) -> ConsoleState {
        var state = ConsoleState(width: width, height: height, clusterName: "demo")
        state.tables = [
            TableInfo(schema: "demo", name: "audit_log", estimatedRows: 1000),
            TableInfo(schema: "demo", name: "customers", estimatedRows: 20000),
            TableInfo(schema: "demo", name: "events", estimatedRows: 1_000_000),
            TableInfo(schema: "demo", name: "orders", estimatedRows: 30000),
            TableInfo(schema: "demo", name: "products", estimatedRows: 2000),
        ]
        state.tableCursor = 1
        let columns = [
            ColumnInfo(name: "id", type: "integer", notNull: true, defaultExpression: "nextval('demo.customers_id_seq'::regclass)", primaryKeyPosition: 1, quoted: "\"id\""),
            ColumnInfo(name: "name", type: "text", notNull: true, defaultExpression: nil, primaryKeyPosition: nil, quoted: "\"name\""),
            ColumnInfo(name: "email", type: "text", notNull: false, defaultExpression: nil, primaryKeyPosition: nil, quoted: "\"email\""),
            ColumnInfo(name: "country", type: "character(2)", notNull: false, defaultExpression: nil, primaryKeyPosition: nil, quoted: "\"country\""),
            ColumnInfo(name: "vip", type: "boolean", notNull: true, defaultExpression: "false", primaryKeyPosition: nil, quoted: "\"vip\""),
            ColumnInfo(name: "notes", type: "text", notNull: false, defaultExpression: nil, primaryKeyPosition: nil, quoted: "\"notes\""),
        ]
        let shape = TableShape(table: state.tables[1], quotedName: "\"demo\".\"customers\"", columns: columns)
        var grid = Grid(shape: shape)
        let names = ["Zoë Smith", "Ångström García", "山田 太郎", "Nguyễn Văn A", "Olu 🎉 Okafor", "Chloe\u{301} Dubois", "Søren Kierkegaard"]
        grid.rows = (1...40).map { id in
            [
                "\(id)", names[id % names.count], id % 5 == 0 ? nil : "customer\(id)@example.com",
                ["DE", "FR", "JP", "VN", "NG"][id % 5], id % 7 == 0 ? "true" : "false",
                id % 3 == 0 ? "" : id % 4 == 0 ? nil : "prefers e-mail; long note that does not fit in the column at all",
            ]
        }
        grid.keys = grid.rows.map { [$0[0]] }
        grid.cursorRow = 2
        grid.cursorColumn = 1
        grid.atStart = true
        grid.atEnd = false
        grid.loaded = true
        state.grid = grid
        state.focus = .grid

        var primary = NodeState(name: "pg1")
        primary.reachable = true
        primary.role = .primary
        primary.lagBytes = 0
        primary.lagSeconds = 0
        var replica = NodeState(name: "pg2")
        replica.reachable = true
        replica.role = .replica
        replica.walReceiverStatus = "streaming"
        replica.lagBytes = 2048
        replica.lagSeconds = 0.35
        var down = NodeState(name: "pg3")
        down.error = "connection refused"
        state.nodes = [
            NodeSummary(state: primary, lagHistory: Array(repeating: 0, count: 30)),
            NodeSummary(state: replica, lagHistory: (0..<30).map { Double($0 * 20) }),
            NodeSummary(state: down, lagHistory: Array(repeating: nil, count: 30)),
        ]
        state.primaryName = "pg1"
        let base = Date(timeIntervalSince1970: 1_764_201_600)
        let adminSQL = "select \"id\"::text, \"name\"::text from \"demo\".\"customers\" as r order by r.\"id\" limit 40"
        let publicSQL = "select id, name, price from demo.products where id = $1"
        state.log = (0..<40).map { (index: Int) -> QueryLogEntry in
            let admin = index % 4 == 0
            let node = admin ? "pg1" : (index % 2 == 0 ? "pg2" : "pg1")
            let operation: StatementKind = index % 9 == 0 ? .write : .read
            let code = admin ? (operation == .write ? "write" : "primary") : node == "pg2" ? "replica" : "guard-fb"
            let reason = admin ? "admin → \(node)" : node == "pg2" ? "public → pg2 (least-lag, 3 ms)"
                : "public → pg1 (replay guard on pg2: replayed 0/3000060 < token 0/3000100; the primary served it)"
            return QueryLogEntry(
                id: UInt64(index + 1), time: base.addingTimeInterval(Double(index) + 0.125), context: admin ? "admin" : "public",
                operation: operation, node: node, reason: reason, durationMs: 0.4 + Double(index % 5), rows: 1, error: nil,
                sql: admin ? adminSQL : publicSQL, source: index % 3 == 0 ? "storefront" : nil, code: code,
                tokenBefore: admin ? nil : "0/3000100", tokenAfter: admin ? nil : "0/3000100")
                .followed(from: index % 3 == 0 ? "/var/log/shop/storefront.jsonl" : nil)
        }
        state.message = "saved name"
        return state
    }
}

extension QueryLogEntry {
    /// The entry as read from `file` (nil: this console's own).
    func followed(from file: String?) -> QueryLogEntry {
        var entry = self
        entry.file = file
        if file != nil { entry.pid = 4242 }
        return entry
    }
}
