@testable import Console
import Foundation
import PostgresClient
import Switchyard
import SwitchyardTestSupport
import Testing

extension ClusterTests {
    /// `--read-only` and a role's own privileges, on the real primary.
    @Suite struct ReadOnlyConsoleTests {
        /// A cluster as the console would open it: from a config, read-only, as `user`.
        static func cluster(readOnly: Bool, user: String? = nil) async throws -> Cluster {
            let test = try TestCluster.shared()
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sy-ro-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let path = try test.writeConfig(in: folder, name: "ro")
            var configuration = try ClusterConfiguration.load(path: path)
            configuration.readOnly = readOnly
            if let user {
                for index in configuration.nodes.indices {
                    configuration.nodes[index].conninfo = configuration.nodes[index].conninfo
                        .replacingOccurrences(of: "user=postgres", with: "user=\(user) password=read-only")
                }
            }
            let cluster = try Cluster(configuration: configuration)
            await cluster.start()
            return cluster
        }

        @Test func aReadOnlyConsoleWritesNothingAndItsPromptCannotUndoThat() async throws {
            try await TestCluster.shared().withSchema { schema in
                _ = try await schema.primary.execute(script: "create table \(schema.quoted).t (id int primary key, v text); insert into \(schema.quoted).t values (1, 'a');")
                let cluster = try await Self.cluster(readOnly: true)
                defer { Task { await cluster.shutdown() } }
                let service = DataService(cluster: cluster, readOnly: true)
                await #expect(throws: PostgresError.self) { try await cluster.execute("update \(schema.quoted).t set v = 'b'") }
                func run(_ sql: String) async -> ConsoleEvent? {
                    await service.perform(.runStatement(PromptStatement(sql), pageSize: 10, request: 1))
                }
                for (sql, expected) in [
                    ("update \(schema.quoted).t set v = 'b'", "25006"),
                    ("set default_transaction_read_only = off", "read-only"),
                    ("select set_config('transaction_read_only', 'off', true)", "SQLSTATE"),
                    ("delete from \(schema.quoted).t", "25006"),
                ] {
                    let event = await run(sql)
                    guard case .failed(let message, _) = event else { Issue.record("\(sql) ran: \(String(describing: event))"); continue }
                    #expect(message.contains(expected), "\(sql): \(message)")
                }
                // Reads work.
                guard case .promptRows(let rows, _) = await run("select v from \(schema.quoted).t") else { Issue.record("no rows"); return }
                #expect(rows.rows == [["a"]])
                _ = await service.perform(.promptCommand(.rollback, request: 2))
                #expect(try await schema.primary.query("select v from \(schema.quoted).t").scalar(String.self) == "a")
                await cluster.shutdown()
            }
        }

        @Test func aTheRoleMayNotWriteIsKnownBeforeTheServerRefuses() async throws {
            try await TestCluster.shared().withSchema { schema in
                _ = try await schema.primary.execute(script: """
                    create table \(schema.quoted).t (id int primary key, v text);
                    do $$ begin
                      if not exists (select from pg_roles where rolname = 'sy_reader') then create role sy_reader login password 'read-only'; end if;
                    end $$;
                    grant usage on schema \(schema.quoted) to sy_reader;
                    grant select, update on \(schema.quoted).t to sy_reader;
                    """)
                let test = try TestCluster.shared()
                try await test.waitForStreaming()
                let cluster = try await Self.cluster(readOnly: false, user: "sy_reader")
                let service = DataService(cluster: cluster)
                let opened = await service.perform(.openTable(TableInfo(schema: schema.name, name: "t", estimatedRows: 0), request: 1))
                await cluster.shutdown()
                guard case .tableOpened(let shape, _) = opened else { Issue.record("\(String(describing: opened))"); return }
                #expect(shape.missingPrivileges == [.insert, .delete])
                var state = ConsoleState(width: 120, height: 40, clusterName: "ro")
                state.grid = Grid(shape: shape)
                state.grid?.rows = [["1", "a"]]
                state.focus = .grid
                #expect(Keymap.binding(for: .character("d"), in: state.scopes)?.disabledReason?(state)?.contains("may not DELETE") == true)
                #expect(Keymap.binding(for: .character("a"), in: state.scopes)?.disabledReason?(state)?.contains("may not INSERT") == true)
                #expect(Keymap.binding(for: .enter, in: state.scopes)?.disabledReason?(state) == nil, "update is granted")
            }
        }
    }
}
