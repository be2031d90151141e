import Console
import LocalCluster
import Storefront
import Foundation
import PostgresClient
import Switchyard
import SwitchyardTestSupport
import Testing

extension ClusterTests {
    /// The change history on a real primary: one record per change in the same
    /// transaction, none without its change, and edits refused when it cannot be kept.
    @Suite struct ChangeAuditTests {
        func shape(_ service: DataService, schema: String, table: String) async throws -> TableShape {
            let opened = await service.perform(.openTable(TableInfo(schema: schema, name: table, estimatedRows: 0), request: 1))
            guard case .tableOpened(let shape, _) = opened else { throw PostgresError(kind: .decoding, message: "not opened: \(String(describing: opened))") }
            return shape
        }

        func records(_ primary: PostgresConnection, _ table: String) async throws -> [(action: String, key: String, before: String?, after: String?)] {
            try await primary.query(
                "select action, row_key::text, before::text, after::text from switchyard.changes where table_name = $1 order by id", [table]
            ).rows.map { (try $0.decode(0), try $0.decode(1), try $0.decode(2, as: String?.self), try $0.decode(3, as: String?.self)) }
        }

        @Test func everyChangeHasExactlyOneRecordWithBeforeAndAfter() async throws {
            try await TestCluster.shared().withSchema { schema in
                try await withRouted { cluster, _ in
                    _ = try await schema.primary.execute(script: """
                        create table \(schema.quoted).items (id int primary key, name text, qty int not null default 0);
                        insert into \(schema.quoted).items values (1, 'alpha', 5);
                        """)
                    let service = DataService(cluster: cluster)
                    let shape = try await shape(service, schema: schema.name, table: "items")
                    let table = "\(schema.name).items"
                    guard case .saved = await service.perform(.update(shape, seen: ["1", "alpha", "5"], changes: [1: "beta"], request: 2)) else {
                        Issue.record("update not saved"); return
                    }
                    guard case .saved = await service.perform(.insert(shape, values: [0: "2", 1: "new\u{7}line"], request: 3)) else {
                        Issue.record("insert not saved"); return
                    }
                    guard case .saved = await service.perform(.delete(shape, seen: ["2", "new\u{7}line", "0"], request: 4)) else {
                        Issue.record("delete not saved"); return
                    }
                    let rows = try await records(schema.primary, table)
                    #expect(rows.map(\.action) == ["update", "insert", "delete"])
                    #expect(rows[0].key == #"{"id": "1"}"# && rows[0].before == #"{"name": "alpha"}"# && rows[0].after == #"{"name": "beta"}"#)
                    #expect(rows[1].before == nil && rows[1].after == #"{"id": "2", "qty": "0", "name": "new\u0007line"}"#, "\(rows[1])")
                    #expect(rows[2].after == nil && rows[2].before?.contains(#""qty": "0""#) == true)
                    let who = try await schema.primary.query(
                        "select db_role, os_user is not null, client_host is not null from switchyard.changes where table_name = $1 limit 1", [table]).first
                    #expect(try who?.decode(0, as: String.self) == "postgres")
                    #expect(try who?.decode(1, as: Bool.self) == true && who?.decode(2, as: Bool.self) == true)

                    // H: the row's history, newest first.
                    let history = await service.perform(.loadHistory(table: table, key: ["id": "1"], request: 5))
                    guard case .historyLoaded(let entries, _) = history else { Issue.record("no history: \(String(describing: history))"); return }
                    #expect(entries.map(\.action) == [.update])
                    #expect(entries.first?.changes().first.map { "\($0.column): \($0.before ?? "NULL") → \($0.after ?? "NULL")" } == "name: alpha → beta")

                    // The command line prints the same.
                    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sy-audit-\(UUID().uuidString)")
                    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                    defer { try? FileManager.default.removeItem(at: folder) }
                    let config = try TestCluster.shared().writeConfig(in: folder, name: "audit")
                    let printed = try await CommandLineTests.run(["audit", "--table", table, "--json", "--config", config])
                    #expect(printed.status == 0, "\(printed.output)")
                    let lines = printed.output.split(separator: "\n").filter { $0.hasPrefix("{") }
                    #expect(lines.count == 3 && lines[0].contains(#""action":"delete""#), "\(printed.output)")
                    // Typed by the columns: the key and qty are numbers, not "1" and "0".
                    #expect(lines[0].contains(#""key":{"id":2}"#) && lines[0].contains(#""qty":0"#), "\(lines[0])")
                    #expect(lines[2].contains(#""before":{"name":"alpha"}"#), "\(lines[2])")
                    let text = try await CommandLineTests.run(["audit", "--table", table, "--config", config])
                    #expect(text.output.contains("name: alpha → beta"), "\(text.output)")
                    // An insert lists what it wrote, a delete what was there (not `NULL → NULL`, `x → NULL`).
                    #expect(text.output.contains("id = 2; name = new·line; qty = 0"), "\(text.output)")
                    #expect(text.output.contains("was id = 2; name = new·line; qty = 0"), "\(text.output)")
                    #expect(!text.output.contains("→ NULL") && !text.output.contains("NULL →"), "\(text.output)")
                    // A table that does not exist and was never changed is an error.
                    let missing = try await CommandLineTests.run(["audit", "--table", "no_such.table", "--config", config])
                    #expect(missing.status != 0 && missing.output.contains("no table no_such.table"), "\(missing.output)")
                }
            }
        }

        @Test func freshAndColumnlessTablesSayHowManyRowsTheyHold() async throws {
            try await TestCluster.shared().withSchema { schema in
                try await withRouted { cluster, _ in
                    let q = schema.quoted
                    _ = try await schema.primary.execute(script: """
                        create table \(q).fresh (id int primary key);
                        insert into \(q).fresh select generate_series(1, 5);
                        create table \(q).bare ();
                        insert into \(q).bare default values; insert into \(q).bare default values;
                        """)
                    let service = DataService(cluster: cluster)
                    guard case .tablesLoaded(let tables, _) = await service.perform(.loadTables(request: 1)) else { Issue.record("no tables"); return }
                    let fresh = try #require(tables.first { $0.schema == schema.name && $0.name == "fresh" })
                    #expect(fresh.estimatedRows < 0, "analyzed already: the test proves nothing")
                    // Before: "~? rows" for a never-analyzed table.
                    guard case .tableOpened(let shape, _) = await service.perform(.openTable(fresh, request: 2)) else { Issue.record("fresh"); return }
                    #expect(shape.table.estimatedRows == 5)
                    let bare = try #require(tables.first { $0.schema == schema.name && $0.name == "bare" })
                    guard case .tableOpened(let columnless, _) = await service.perform(.openTable(bare, request: 3)) else { Issue.record("bare"); return }
                    #expect(columnless.columns.isEmpty && columnless.table.estimatedRows == 2)
                    var state = ConsoleState(width: 100, height: 30, clusterName: "t")
                    state.pending = 7
                    _ = state.reduce(.tableOpened(columnless, request: 7))
                    let text = Renderer.render(state).text
                    #expect(text.contains("(no columns: 2 rows, nothing else to show)"), "\(text)")
                    #expect(!text.contains("▶"), "a row cursor over nothing")
                }
            }
        }

        @Test func withThePrimaryDownAStartingConsoleDoesNotTalkOfInput() async throws {
            let configuration = ClusterConfiguration(
                name: "down", nodes: [NodeEndpoint(name: "pg1", conninfo: "host=127.0.0.1 port=1 dbname=app connect_timeout=2")])
            let cluster = try Cluster(configuration: configuration)
            await cluster.start()
            let failed = await DataService(cluster: cluster).perform(.loadTables(request: 1))
            await cluster.shutdown()
            guard case .failed(let message, _) = failed else { Issue.record("\(String(describing: failed))"); return }
            #expect(!message.contains("input"), "\(message)")
        }

        @Test func aChangeKilledBeforeItsCommitLeavesNeitherChangeNorRecord() async throws {
            try await TestCluster.shared().withSchema { schema in
                try await withRouted { cluster, _ in
                    let table = "\(schema.name).items"
                    _ = try await schema.primary.execute(script: """
                        create table \(schema.quoted).items (id int primary key, name text);
                        insert into \(schema.quoted).items values (1, 'alpha');
                        create schema if not exists switchyard;
                        """)
                    let service = DataService(cluster: cluster)
                    let shape = try await shape(service, schema: schema.name, table: "items")
                    // Make sure the history table exists, then hold this table's records
                    // in a trigger long enough to kill the session after the update ran.
                    guard case .saved = await service.perform(.update(shape, seen: ["1", "alpha"], changes: [1: "warm-up"], request: 2)) else {
                        Issue.record("warm-up not saved"); return
                    }
                    _ = try await schema.primary.execute(script: """
                        create function \(schema.quoted).hold() returns trigger language plpgsql as $$ begin perform pg_sleep(30); return new; end $$;
                        create trigger hold before insert on switchyard.changes for each row
                            when (new.table_name = '\(table)') execute function \(schema.quoted).hold();
                        """)
                    let save = Task { await service.perform(.update(shape, seen: ["1", "warm-up"], changes: [1: "never"], request: 3)) }
                    let killed = try await TestCluster.eventually(timeout: .seconds(10)) {
                        try await schema.primary.query(
                            """
                            select pg_terminate_backend(pid) from pg_stat_activity
                            where state = 'active' and query like 'insert into switchyard.changes%' and pid <> pg_backend_pid()
                            """).rowCount > 0
                    }
                    #expect(killed)
                    let outcome = await save.value
                    _ = try await schema.primary.query("drop trigger hold on switchyard.changes")
                    guard case .failed(let message, _) = outcome else { Issue.record("not failed: \(String(describing: outcome))"); return }
                    #expect(message.contains("your input is kept") || message.contains("terminat"), "\(message)")
                    #expect(try await schema.primary.query("select name from \(schema.quoted).items").scalar(String.self) == "warm-up")
                    #expect(try await records(schema.primary, table).count == 1, "only the warm-up has a record")
                }
            }
        }

        @Test func withoutAHistoryTableThatCanBeMadeOrWrittenEditsAreRefused() async throws {
            let test = try TestCluster.shared()
            let suffix = UUID().uuidString.prefix(8).lowercased()
            let database = "audit_\(suffix)", role = "clerk_\(suffix)", password = UUID().uuidString
            _ = try await test.withConnection("pg1") { connection in
                _ = try await connection.query("create database \(database)")
                _ = try await connection.query("create role \(role) login password '\(password)'")
            }
            try await ensuring {
                let admin = try await PostgresConnection.connect(try test.conninfo("pg1", database: database), label: "pg1")
                _ = try await admin.execute(script: """
                    create schema shop;
                    create table shop.items (id int primary key, name text);
                    insert into shop.items values (1, 'alpha');
                    grant usage on schema shop to \(role);
                    grant select, insert, update, delete on shop.items to \(role);
                    """)
                let nodes = try test.nodes.map { node in
                    NodeEndpoint(name: node.name, conninfo: "host=127.0.0.1 port=\(node.port) dbname=\(database) user=\(role) password=\(password)")
                }
                var configuration = ClusterConfiguration(name: "clerk", nodes: nodes)
                configuration.monitorInterval = .milliseconds(250)
                let cluster = try Cluster(configuration: configuration)
                await cluster.start()
                try await ensuring {
                    let service = DataService(cluster: cluster)
                    let shape = try await shape(service, schema: "shop", table: "items")
                    // No switchyard schema, and no right to create one.
                    let refused = await service.perform(.update(shape, seen: ["1", "alpha"], changes: [1: "beta"], request: 2))
                    guard case .failed(let message, _) = refused else { Issue.record("not refused: \(String(describing: refused))"); return }
                    #expect(message.contains("no change history table switchyard.changes and it cannot be created"), "\(message)")
                    #expect(message.contains("switchyard audit init") && message.contains("audit = \"off\""))
                    #expect(!message.contains(password))
                    // The table exists (made by an owner) but the clerk may not write it.
                    _ = try await admin.execute(script: ChangeAudit.setupSQL.joined(separator: ";\n") + ";\ngrant usage on schema switchyard to \(role);")
                    let unwritable = await service.perform(.update(shape, seen: ["1", "alpha"], changes: [1: "beta"], request: 3))
                    guard case .failed(let second, _) = unwritable else { Issue.record("not refused: \(String(describing: unwritable))"); return }
                    #expect(second.contains("cannot be written") && second.contains("nothing was saved"), "\(second)")
                    #expect(try await admin.query("select name from shop.items").scalar(String.self) == "alpha")
                    #expect(try await admin.query("select count(*) from switchyard.changes").scalar(Int.self) == 0)
                    // audit = "off": edits go through without a history.
                    let off = DataService(cluster: cluster, audit: false)
                    guard case .saved = await off.perform(.update(shape, seen: ["1", "alpha"], changes: [1: "beta"], request: 4)) else {
                        Issue.record("audit off did not save"); return
                    }
                } finally: {
                    await cluster.shutdown()
                    await admin.close()
                }
            } finally: {
                _ = try? await test.withConnection("pg1") { connection in
                    _ = try await connection.query("drop database if exists \(database) with (force)")
                    _ = try await connection.query("drop role if exists \(role)")
                }
            }
        }
    }
}

extension ClusterTests {
    /// Following references against a real primary: foreign keys read from the catalog,
    /// the referenced row found by its key, referencing rows counted only through an index.
    @Suite struct ReferenceTests {
        @Test func followReferencesAndCountsThroughIndexesOnly() async throws {
            try await TestCluster.shared().withSchema { schema in
                try await withRouted { cluster, _ in
                    let q = schema.quoted
                    _ = try await schema.primary.execute(script: """
                        create table \(q).customers (id int primary key, name text);
                        create table \(q).orders (id int primary key, customer_id int not null references \(q).customers, note text);
                        create index on \(q).orders (customer_id);
                        create table \(q).order_lines (order_id int, line int, primary key (order_id, line));
                        create table \(q).returns (id int primary key, order_id int, line int,
                                                   foreign key (order_id, line) references \(q).order_lines);
                        create table \(q).clicks (id bigint primary key, customer_id int references \(q).customers);
                        insert into \(q).customers select g, 'customer ' || g from generate_series(1, 50) g;
                        insert into \(q).orders select g, 1 + g % 50, 'order ' || g from generate_series(1, 200) g;
                        insert into \(q).order_lines values (7, 1), (7, 2);
                        insert into \(q).returns values (1, 7, 2);
                        insert into \(q).clicks select g, 1 + g % 50 from generate_series(1, 60000) g;
                        analyze \(q).clicks;
                        """)
                    let service = DataService(cluster: cluster)
                    func open(_ table: String) async throws -> TableShape {
                        let opened = await service.perform(.openTable(TableInfo(schema: schema.name, name: table, estimatedRows: 0), request: 1))
                        guard case .tableOpened(let shape, _) = opened else { throw PostgresError(kind: .decoding, message: "\(String(describing: opened))") }
                        return shape
                    }
                    let orders = try await open("orders")
                    let key = try #require(orders.foreignKey(at: 1))
                    #expect(key.target.name == "customers" && key.targetColumns == ["id"])
                    let followed = await service.perform(.follow(orders, key, values: ["42"], request: 2))
                    guard case .followed(let customers, let anchor, let label, _) = followed else { Issue.record("\(String(describing: followed))"); return }
                    #expect(customers.table.name == "customers" && anchor == ["42"] && label == "#42")

                    // Composite: a return points at its order line.
                    let returns = try await open("returns")
                    let composite = try #require(returns.foreignKey(at: 2))
                    #expect(composite.columns == [1, 2] && composite.targetColumns == ["order_id", "line"])
                    let line = await service.perform(.follow(returns, composite, values: ["7", "2"], request: 3))
                    guard case .followed(_, let lineAnchor, let lineLabel, _) = line else { Issue.record("\(String(describing: line))"); return }
                    #expect(lineAnchor == ["7", "2"] && lineLabel == "#(7, 2)")
                    let missing = await service.perform(.follow(returns, composite, values: ["7", "9"], request: 4))
                    guard case .failed(let message, _) = missing else { Issue.record("\(String(describing: missing))"); return }
                    #expect(message.contains("is not in \(schema.name).order_lines"))

                    // R on customer 42: 4 orders (counted through the index); clicks has
                    // no index on customer_id and 60 000 rows: not counted.
                    let found = await service.perform(.loadReferences(customers, row: ["42", "customer 42"], request: 5))
                    guard case .referencesLoaded(let items, _) = found else { Issue.record("\(String(describing: found))"); return }
                    let byTable = Dictionary(uniqueKeysWithValues: items.map { ($0.table.name, $0) })
                    #expect(byTable["orders"]?.count == 4)
                    #expect(byTable["clicks"]?.count == nil && byTable["clicks"]?.uncounted?.contains("no index on clicks") == true)
                    let scoped = await service.perform(.openReferencing(try #require(byTable["orders"]), request: 6))
                    guard case .referencingOpened(let shape, let scope, _) = scoped else { Issue.record("\(String(describing: scoped))"); return }
                    let page = await service.perform(.loadPage(shape, .first, sort: nil, filter: nil, limit: 10, request: 7, scope: scope))
                    guard case .pageLoaded(let rows, _, _, _, _, _) = page else { Issue.record("\(String(describing: page))"); return }
                    #expect(rows.map { $0[1] } == ["42", "42", "42", "42"])
                }
            }
        }
    }
}

extension ClusterTests {
    /// Views and materialized views: listed with their kind, read-only unless PostgreSQL
    /// can update them, keyed by their table's primary key, refreshed on request.
    @Suite struct ViewTests {
        @Test func aTriggerThatReturnsNoRowCannotCommitAChangeWithoutItsHistory() async throws {
            try await TestCluster.shared().withSchema { schema in
                try await withRouted { cluster, _ in
                    let q = schema.quoted
                    // An updatable view whose INSTEAD OF triggers write the table and return NULL.
                    _ = try await schema.primary.execute(script: """
                        create table \(q).items (id int primary key, name text);
                        insert into \(q).items values (1, 'alpha');
                        create view \(q).shown as select id, name from \(q).items;
                        create function \(q).shown_write() returns trigger language plpgsql as $$
                        begin
                          if tg_op = 'INSERT' then insert into \(q).items values (new.id, new.name);
                          else update \(q).items set name = new.name where id = old.id; end if;
                          return null;
                        end $$;
                        create trigger shown_write instead of insert or update on \(q).shown
                          for each row execute function \(q).shown_write();
                        """)
                    let service = DataService(cluster: cluster)
                    guard case .tablesLoaded(let tables, _) = await service.perform(.loadTables(request: 1)) else { Issue.record("no tables"); return }
                    let shown = try #require(tables.first { $0.schema == schema.name && $0.name == "shown" })
                    let opened = await service.perform(.openTable(shown, request: 1))
                    guard case .tableOpened(let shape, _) = opened else { Issue.record("not opened: \(String(describing: opened))"); return }
                    #expect(shape.readOnlyReason == nil && shape.keyIndexes == [0])
                    // Before: the insert committed with no history row.
                    let inserted = await service.perform(.insert(shape, values: [0: "2", 1: "beta"], request: 2))
                    guard case .failed(let message, _) = inserted else { Issue.record("insert: \(String(describing: inserted))"); return }
                    #expect(message.contains("returned no row") && message.contains("nothing was written"), "\(message)")
                    // Before: "conflict" was reported while the trigger's update committed.
                    let updated = await service.perform(.update(shape, seen: ["1", "alpha"], changes: [1: "gamma"], request: 3))
                    guard case .failed(let refusal, _) = updated else { Issue.record("update: \(String(describing: updated))"); return }
                    #expect(refusal.contains("nothing was written"), "\(refusal)")
                    let rows = try await schema.primary.query("select id::text || '=' || name from \(q).items order by id").rows
                        .map { try $0.decode(0, as: String.self) }
                    #expect(rows == ["1=alpha"], "a change without its history committed: \(rows)")
                    let recorded = try await schema.primary.query(
                        "select count(*) from switchyard.changes where table_name = $1", ["\(schema.name).shown"]).scalar(Int.self)
                    #expect(recorded == 0)
                }
            }
        }

        @Test func viewsOpenReadOnlyUnlessUpdatableAndMaterializedViewsRefresh() async throws {
            try await TestCluster.shared().withSchema { schema in
                try await withRouted { cluster, _ in
                    let q = schema.quoted
                    _ = try await schema.primary.execute(script: """
                        create table \(q).items (id int primary key, name text, qty int);
                        insert into \(q).items select g, 'item ' || g, g from generate_series(1, 5) g;
                        create view \(q).item_names as select id, name from \(q).items;
                        create view \(q).names_only as select name from \(q).items;
                        create view \(q).totals as select count(*) as n, sum(qty) as total from \(q).items;
                        create materialized view \(q).snapshot as select id, qty from \(q).items;
                        """)
                    let service = DataService(cluster: cluster)
                    guard case .tablesLoaded(let tables, _) = await service.perform(.loadTables(request: 1)) else { Issue.record("no tables"); return }
                    let mine = Dictionary(uniqueKeysWithValues: tables.filter { $0.schema == schema.name }.map { ($0.name, $0) })
                    #expect(mine["item_names"]?.kind == .view && mine["snapshot"]?.kind == .materializedView && mine["items"]?.kind == .table)
                    func open(_ name: String) async throws -> TableShape {
                        guard case .tableOpened(let shape, _) = await service.perform(.openTable(try #require(mine[name]), request: 2)) else {
                            throw PostgresError(kind: .decoding, message: "\(name) did not open")
                        }
                        return shape
                    }
                    // Updatable, keyed by items.id: saves.
                    let names = try await open("item_names")
                    #expect(names.readOnlyReason == nil && names.keyIndexes == [0])
                    guard case .saved(let row, _) = await service.perform(.update(names, seen: ["2", "item 2"], changes: [1: "renamed"], request: 3)) else {
                        Issue.record("the updatable view did not save"); return
                    }
                    #expect(row == ["2", "renamed"])
                    #expect(try await schema.primary.query("select name from \(q).items where id = 2").scalar(String.self) == "renamed")
                    // Updatable but without the key: read-only, and it still pages.
                    let nameOnly = try await open("names_only")
                    #expect(nameOnly.readOnlyReason?.contains("primary key") == true)
                    guard case .pageLoaded(let rows, _, _, _, _, _) = await service.perform(.loadPage(nameOnly, .first, sort: nil, filter: nil, limit: 3, request: 4)) else {
                        Issue.record("a view without a key did not page"); return
                    }
                    #expect(rows.count == 3)
                    // Not updatable: read-only.
                    #expect(try await open("totals").readOnlyReason?.contains("cannot update this view") == true)
                    // A materialized view: read-only, refreshed on request.
                    let snapshot = try await open("snapshot")
                    #expect(snapshot.readOnlyReason?.contains("materialized view") == true)
                    _ = try await schema.primary.query("update \(q).items set qty = 100 where id = 1")
                    guard case .viewRefreshed = await service.perform(.refreshView(try #require(mine["snapshot"]), request: 5)) else {
                        Issue.record("not refreshed"); return
                    }
                    #expect(try await schema.primary.query("select qty from \(q).snapshot where id = 1").scalar(Int.self) == 100)
                }
            }
        }
    }
}

extension ClusterTests {
    /// Exports streamed with COPY: the same bytes as psql's \copy, filters as settings,
    /// from the primary or a replica, and cancellable with the partial file removed.
    @Suite struct ExportTests {
        @Test func exportsMatchPsqlByteForByteAndCancelCleanly() async throws {
            let test = try TestCluster.shared()
            let schema = "export_" + UUID().uuidString.prefix(6).lowercased()
            try await test.withConnection("pg1") { connection in
                try await SampleShop.load(on: connection, schema: schema, events: 50_000) { _ in }
                _ = try await connection.query("analyze \(schema).events")
            }
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sy-export-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            try await withRouted { cluster, _ in
                let service = DataService(cluster: cluster)
                guard case .tablesLoaded(let tables, _) = await service.perform(.loadTables(request: 1)) else { Issue.record("no tables"); return }
                let events = try #require(tables.first { $0.schema == schema && $0.name == "events" })
                guard case .tableOpened(let shape, _) = await service.perform(.openTable(events, request: 2)) else { Issue.record("not opened"); return }
                for format in ExportFormat.allCases {
                    let path = folder.appendingPathComponent("events.\(format.rawValue)").path
                    let job = ExportJob(shape: shape, sort: nil, filter: nil, scope: nil, format: format, fromReplica: format == .jsonLines, path: path)
                    let outcome = await service.perform(.export(job, request: 3))
                    guard case .exported(_, let rows, _, let node, _, _) = outcome else { Issue.record("\(String(describing: outcome))"); return }
                    #expect(rows == 50_000)
                    #expect(format == .jsonLines ? node != "pg1" : node == "pg1", "read from \(node)")
                    // psql's \copy of the same query writes the same bytes.
                    let (sql, _) = SQLBuilder.export(shape, sort: nil, filter: nil, scope: nil, format: format, null: "")
                    let reference = folder.appendingPathComponent("psql.\(format.rawValue)").path
                    let command = "\\" + sql.replacingOccurrences(of: "to stdout", with: "to '\(reference)'")
                    let psql = try await ChildProcess.run(
                        ["/usr/bin/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", try test.conninfo("pg1"), "-c", command],
                        environment: ["PATH": "/usr/bin:/bin", "HOME": NSTemporaryDirectory()])
                    #expect(psql.status == 0, "\(psql.output)")
                    let mine = try Data(contentsOf: URL(fileURLWithPath: path)), theirs = try Data(contentsOf: URL(fileURLWithPath: reference))
                    #expect(mine == theirs, "\(format): \(mine.count) bytes vs psql's \(theirs.count)")
                    let attributes = try FileManager.default.attributesOfItem(atPath: path)
                    #expect((attributes[.posixPermissions] as? Int) == 0o600)
                }
                // Values a text-format COPY would escape: the JSON Lines file is psql's
                // `select row_to_json(…)` output, byte for byte (and CSV its \copy's).
                _ = try await test.withConnection("pg1") {
                    try await $0.execute(script: #"""
                        create table \#(schema).odd (id int primary key, note text);
                        insert into \#(schema).odd values (1, 'back\slash'), (2, e'tab\there\nnewline'), (3, 'quote " and '' apostrophe'),
                          (4, e'\\\\server\\share'), (5, null), (6, 'ünï ✓ 中');
                        """#)
                }
                guard case .tablesLoaded(let again, _) = await service.perform(.loadTables(request: 7)) else { Issue.record("no tables"); return }
                let odd = try #require(again.first { $0.schema == schema && $0.name == "odd" })
                guard case .tableOpened(let oddShape, _) = await service.perform(.openTable(odd, request: 8)) else { Issue.record("not opened"); return }
                let oddPath = folder.appendingPathComponent("odd.jsonl").path
                let oddJob = ExportJob(shape: oddShape, sort: nil, filter: nil, scope: nil, format: .jsonLines, fromReplica: false, path: oddPath)
                guard case .exported(_, 6, _, _, _, _) = await service.perform(.export(oddJob, request: 9)) else { Issue.record("odd export"); return }
                let printed = try await ChildProcess.run(
                    ["/usr/bin/psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", try test.conninfo("pg1"), "-c",
                     "select row_to_json(x) from (select r.id, r.note from \(schema).odd as r order by r.id) as x"],
                    environment: ["PATH": "/usr/bin:/bin", "HOME": NSTemporaryDirectory()])
                let exported = try String(contentsOfFile: oddPath, encoding: .utf8)
                #expect(exported == printed.output, "JSON Lines differ from psql's row_to_json output")
                #expect(exported.contains(#"{"id":1,"note":"back\\slash"}"#), "\(exported)")
                for line in exported.split(separator: "\n") {
                    #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) != nil, "not JSON: \(line)")
                }

                // A filter travels as a setting: the quote in the value cannot end the query.
                var filtered = ExportJob(shape: shape, sort: nil, filter: Filter(column: 2, op: .equals, value: "view'); drop table x; --"),
                                         scope: nil, format: .csv, fromReplica: false, path: folder.appendingPathComponent("none.csv").path)
                guard case .exported(_, let none, _, _, _, _) = await service.perform(.export(filtered, request: 4)) else { Issue.record("filtered"); return }
                #expect(none == 0)
                filtered.filter = Filter(column: 0, op: .less, value: "101")
                filtered.path = folder.appendingPathComponent("first.csv").path
                guard case .exported(_, let hundred, _, _, _, _) = await service.perform(.export(filtered, request: 5)) else { Issue.record("less"); return }
                #expect(hundred == 100)
                // An existing file is never overwritten.
                guard case .failed(let exists, _) = await service.perform(.export(filtered, request: 6)) else { Issue.record("overwrote"); return }
                #expect(exists.contains("already exists"))

                // Cancelled half-way (a slow view): the task ends, the partial file is gone.
                _ = try await test.withConnection("pg1") {
                    try await $0.execute(script: """
                        create table \(schema).ticks (id int primary key);
                        insert into \(schema).ticks select generate_series(1, 20000);
                        create view \(schema).slow as select id, pg_sleep(0.002)::text as nap from \(schema).ticks;
                        """)
                }
                let slowShape = TableShape(
                    table: TableInfo(schema: schema, name: "slow", estimatedRows: 20000, kind: .view), quotedName: "\(schema).slow",
                    columns: [ColumnInfo(name: "id", type: "integer", notNull: false, defaultExpression: nil, primaryKeyPosition: 1, quoted: "id"),
                              ColumnInfo(name: "nap", type: "text", notNull: false, defaultExpression: nil, primaryKeyPosition: nil, quoted: "nap")])
                let partial = folder.appendingPathComponent("slow.csv").path
                let running = Task {
                    await service.perform(.export(ExportJob(shape: slowShape, sort: nil, filter: nil, scope: nil, format: .csv, fromReplica: false, path: partial), request: 7))
                }
                // The file exists as soon as the export starts; the slow rows take 40 s.
                #expect(await TestCluster.eventually(timeout: .seconds(10)) { FileManager.default.fileExists(atPath: partial) })
                try await Task.sleep(for: .milliseconds(500))
                let cancelledAt = ContinuousClock.now
                running.cancel()
                _ = await running.value
                #expect(ContinuousClock.now - cancelledAt < .seconds(3))
                #expect(!FileManager.default.fileExists(atPath: partial), "the partial file is removed")
            }
            _ = try await test.withConnection("pg1") { try await $0.query("drop schema \(schema) cascade") }
        }
    }
}
