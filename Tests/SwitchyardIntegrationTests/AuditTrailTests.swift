import Console
import Foundation
import PostgresClient
import Switchyard
import SwitchyardTestSupport
import Testing

extension ClusterTests {
    /// A history staff can trust (append-only, hash-chained) and one that sees every change
    /// to a tracked table, whoever made it.
    @Suite struct AuditTrailTests {
        func open(_ service: DataService, _ schema: TestSchema, _ table: String) async throws -> TableShape {
            try await openShape(service, schema, table)
        }

        func history(_ service: DataService, _ table: String) async -> [ChangeAudit.Entry] {
            guard case .historyLoaded(let entries, _) = await service.perform(.loadHistory(table: table, key: nil, request: 90)) else { return [] }
            return entries
        }

        @Test func theHistoryIsAppendOnlyAndVerifyNamesTheFirstAlteredRow() async throws {
            try await TestCluster.shared().withSchema { schema in
                try await withRouted { cluster, test in
                    _ = try await schema.primary.execute(script: "create table \(schema.quoted).t (id int primary key, name text); insert into \(schema.quoted).t values (1, 'a');")
                    let service = DataService(cluster: cluster)
                    let shape = try await open(service, schema, "t")
                    for (index, name) in ["b", "c", "d"].enumerated() {
                        let seen: [String?] = ["1", index == 0 ? "a" : ["b", "c"][index - 1]]
                        guard case .saved = await service.perform(.update(shape, seen: seen, changes: [1: name], request: 2 + index)) else { Issue.record("no edit"); return }
                    }
                    let changes = await history(service, "\(schema.name).t")
                    #expect(changes.count == 3)
                    // Even the owner cannot edit, delete or truncate it.
                    for statement in ["update switchyard.changes set after = '{}' where id = \(changes[1].id)",
                                      "delete from switchyard.changes where id = \(changes[1].id)", "truncate switchyard.changes"] {
                        await #expect(throws: PostgresError.self, "\(statement) was allowed") { try await schema.primary.query(statement) }
                    }
                    #expect(try await ChangeAudit.verify(cluster).problem == nil)
                    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sy-audit-\(UUID().uuidString)")
                    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                    defer { try? FileManager.default.removeItem(at: folder) }
                    let config = try test.writeConfig(in: folder, name: "audit")
                    let intact = try await CommandLineTests.run(["audit", "verify", "--config", config])
                    #expect(intact.status == 0 && intact.output.contains("intact"), "\(intact.output)")

                    // Someone who can switch the guard off alters the middle change: found.
                    let middle = changes[1]
                    let original = try await schema.primary.query("select after::text from switchyard.changes where id = $1", [middle.id]).scalar(String.self)!
                    func altered(_ after: String) async throws {
                        _ = try await schema.primary.execute(script: """
                            alter table switchyard.changes disable trigger append_only;
                            update switchyard.changes set after = '\(after)' where id = \(middle.id);
                            alter table switchyard.changes enable trigger append_only;
                            """)
                    }
                    try await altered(#"{"name": "forged"}"#)
                    let report = try await ChangeAudit.verify(cluster)
                    #expect(report.brokenAt == middle.id && report.problem?.contains("does not match its hash") == true, "\(report)")
                    let broken = try await CommandLineTests.run(["audit", "verify", "--config", config])
                    #expect(broken.status == 1 && broken.output.contains("BROKEN at change #\(middle.id)"), "\(broken.output)")
                    try await altered(original)
                    #expect(try await ChangeAudit.verify(cluster).problem == nil, "restored content matches its hash again")
                }
            }
        }

        @Test func aTrackedTableRecordsEveryClientOnceAndTheConsoleItsOwnOnly() async throws {
            try await TestCluster.shared().withSchema { schema in
                try await withRouted { cluster, _ in
                    _ = try await schema.primary.execute(script: """
                        create table \(schema.quoted).t (id int primary key, name text, at timestamptz default '2026-01-01 00:00:00+00');
                        """)
                    let service = DataService(cluster: cluster)
                    _ = try await ChangeAudit.initialize(cluster)
                    _ = try await schema.primary.query("select switchyard.track($1::regclass)", ["\(schema.quoted).t"])
                    // An app writes, under its own name.
                    _ = try await schema.primary.execute(script: """
                        set application_name = 'shop';
                        insert into \(schema.quoted).t (id, name) values (1, 'a'), (2, 'x');
                        update \(schema.quoted).t set name = 'b' where id = 1;
                        update \(schema.quoted).t set name = name where id = 1;
                        delete from \(schema.quoted).t where id = 2;
                        reset application_name;
                        """)
                    let tracked = await history(service, "\(schema.name).t")
                    #expect(tracked.map(\.action) == [.delete, .update, .insert, .insert], "\(tracked.map(\.action))")
                    #expect(tracked.allSatisfy { $0.fromTrigger && $0.application == "shop" && $0.role == "postgres" })
                    let update = tracked[1]
                    #expect(update.before == ["name": "a"] && update.after == ["name": "b"] && update.key == ["id": "1"])
                    #expect(tracked[0].before?["at"] == "2026-01-01 00:00:00+00", "values as ::text, as the console records them")

                    // A change an app made can be reverted like any other (its values compare).
                    let prepared = await service.perform(.prepareRevert(update, request: 6))
                    guard case .revertReady(let plan, _) = prepared else { Issue.record("the app's update is not revertible: \(String(describing: prepared))"); return }
                    #expect(plan.sql.contains("'a'"))

                    // The console's own edit of a tracked row: one history row, the console's.
                    let shape = try await open(service, schema, "t")
                    let row = try await schema.primary.query("select id::text, name, at::text from \(schema.quoted).t where id = 1").first!
                    let seen = (0..<3).map { row.raw($0) }
                    guard case .saved = await service.perform(.update(shape, seen: seen, changes: [1: "c"], request: 5)) else { Issue.record("no edit"); return }
                    let after = await history(service, "\(schema.name).t")
                    #expect(after.count == tracked.count + 1)
                    #expect(after.first?.fromTrigger == false && after.first?.osUser != nil)

                    #expect(try await ChangeAudit.verify(cluster).problem == nil)
                }
            }
        }

        @Test func aHistoryMadeByAnOlderVersionIsBroughtUpToDateBeforeTheFirstEdit() async throws {
            // A database of its own: the shared one's history stays as it is.
            let test = try TestCluster.shared()
            let database = "sy_upgrade_" + UUID().uuidString.prefix(8).lowercased()
            _ = try await test.withConnection("pg1") { try await $0.query("create database \(database)") }
            defer { Task { _ = try? await test.withConnection("pg1") { try await $0.query("drop database if exists \(database) with (force)") } } }
            let primary = try await PostgresConnection.connect(try test.conninfo("pg1", database: database))
            _ = try await primary.execute(script: """
                create schema switchyard;
                create table switchyard.changes (
                    id bigint generated always as identity primary key, changed_at timestamptz not null default now(),
                    db_role text not null default current_user, os_user text, client_host text, client_addr inet default inet_client_addr(),
                    application_name text default current_setting('application_name'), table_name text not null, row_key jsonb not null,
                    action text not null check (action in ('insert', 'update', 'delete')), before jsonb, after jsonb);
                insert into switchyard.changes (table_name, row_key, action) values ('old.t', '{"id": "1"}', 'delete');
                create table public.t (id int primary key, v text);
                insert into public.t values (1, 'a');
                """)
            var configuration = try ClusterConfiguration(name: "upgrade", nodes: test.nodes.map { node in
                NodeEndpoint(name: node.name, conninfo: try test.conninfo(node.name, database: database))
            })
            configuration.monitorInterval = .milliseconds(250)
            let cluster = try Cluster(configuration: configuration)
            await cluster.start()
            let service = DataService(cluster: cluster)
            let opened = await service.perform(.openTable(TableInfo(schema: "public", name: "t", estimatedRows: 0), request: 1))
            guard case .tableOpened(let shape, _) = opened else { Issue.record("\(String(describing: opened))"); await cluster.shutdown(); return }
            let saved = await service.perform(.update(shape, seen: ["1", "a"], changes: [1: "b"], request: 2))
            let report = try? await RoutingContext.admin.run { try await ChangeAudit.verify(cluster) }
            await cluster.shutdown()
            guard case .saved = saved else { Issue.record("\(String(describing: saved))"); return }
            let columns = try await primary.query(
                "select count(*)::int from pg_attribute where attrelid = 'switchyard.changes'::regclass and attname in ('seq', 'hash', 'statement')")
                .scalar(Int.self)
            #expect(columns == 3)
            await #expect(throws: PostgresError.self) { try await primary.query("delete from switchyard.changes") }
            #expect(report?.problem == nil && report?.rows == 1, "the first new row starts the chain: \(String(describing: report))")
            await primary.close()
        }

        @Test func aStaffRoleMayAddAndReadButNotRewriteTheHistory() async throws {
            try await TestCluster.shared().withSchema { schema in
                try await withRouted { cluster, _ in
                    _ = try await ChangeAudit.initialize(cluster)
                    _ = try await schema.primary.execute(script: """
                        do $$ begin
                          if not exists (select from pg_roles where rolname = 'sy_staff') then create role sy_staff; end if;
                        end $$;
                        """)
                    for statement in ChangeAudit.grantSQL(role: "sy_staff") { _ = try await schema.primary.query(statement) }
                    _ = try await schema.primary.execute(script: """
                        set role sy_staff;
                        insert into switchyard.changes (table_name, row_key, action, after) values ('x.y', '{"id": "1"}', 'insert', '{"id": "1"}');
                        """)
                    await #expect(throws: PostgresError.self) {
                        try await schema.primary.query("update switchyard.changes set table_name = 'z' where table_name = 'x.y'")
                    }
                    _ = try await schema.primary.query("reset role")
                    #expect(try await ChangeAudit.verify(cluster).problem == nil, "a staff role's row is chained like any")
                }
            }
        }
    }
}
