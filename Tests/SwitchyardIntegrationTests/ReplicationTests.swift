import Foundation
import LocalCluster
import PostgresClient
import Switchyard
import SwitchyardTestSupport
import Testing

extension ClusterTests {
    @Suite struct ReplicationTests {
        /// Whether `node` shows the row `id` of `table`.
        static func has(_ node: String, _ table: String, id: Int) async throws -> Bool {
            try await TestCluster.shared().withConnection(node) { connection in
                try await connection.query("select 1 from \(table) where id = $1", [id]).rowCount == 1
            }
        }

        /// A table on the primary that both replicas already know.
        static func replicatedTable(_ schema: TestSchema) async throws -> String {
            let table = try await schema.table("events")
            _ = try await schema.primary.query("create table \(table) (id int primary key, note text)")
            let cluster = try TestCluster.shared()
            for replica in ["pg2", "pg3"] {
                let visible = try await TestCluster.eventually {
                    try await cluster.withConnection(replica) { connection in
                        try await connection.query("select to_regclass($1) is not null", [table]).scalar(Bool.self) == true
                    }
                }
                #expect(visible, "table not replicated to \(replica)")
            }
            return table
        }

        @Test func rowWrittenOnPrimaryAppearsOnBothReplicas() async throws {
            try await TestCluster.shared().withSchema { schema in
                let table = try await Self.replicatedTable(schema)
                _ = try await schema.primary.query("insert into \(table) values ($1, $2)", [1, "hello"])
                for replica in ["pg2", "pg3"] {
                    let arrived = try await TestCluster.eventually { try await Self.has(replica, table, id: 1) }
                    #expect(arrived, "row never reached \(replica)")
                }
            }
        }

        @Test func delayedReplicaLagsBehindTheOther() async throws {
            let cluster = try TestCluster.shared()
            try await cluster.withSchema { schema in
                let table = try await Self.replicatedTable(schema)
                try await cluster.local.delay(node: "pg3", milliseconds: 1500)
                do {
                    // The startup process rereads its settings on the reload signal.
                    let applied = try await TestCluster.eventually(timeout: .seconds(5)) {
                        try await cluster.withConnection("pg3") {
                            try await $0.query("show recovery_min_apply_delay").scalar(String.self) == "1500ms"
                        }
                    }
                    #expect(applied)
                    try await Task.sleep(for: .milliseconds(300))
                    let clock = ContinuousClock()
                    let written = clock.now
                    _ = try await schema.primary.query("insert into \(table) values ($1, $2)", [7, "delayed"])
                    let onPg2 = try await TestCluster.eventually(timeout: .seconds(5)) { try await Self.has("pg2", table, id: 7) }
                    #expect(onPg2, "pg2 should have the row shortly after the write")
                    let pg2Time = clock.now - written
                    #expect(try await !Self.has("pg3", table, id: 7), "pg3 should not have the row yet")
                    let onPg3 = try await TestCluster.eventually(timeout: .seconds(10)) { try await Self.has("pg3", table, id: 7) }
                    let pg3Time = clock.now - written
                    #expect(onPg3, "pg3 should have the row after the delay")
                    #expect(pg3Time >= .milliseconds(1200), "pg3 showed the row after \(pg3Time), before its delay")
                    #expect(pg2Time < .milliseconds(1200), "pg2 took \(pg2Time)")
                } catch {
                    try? await cluster.local.delay(node: "pg3", milliseconds: 0)
                    throw error
                }
                try await cluster.local.delay(node: "pg3", milliseconds: 0)
            }
        }

        @Test func statusReportsRoles() async throws {
            let statuses = try await TestCluster.shared().local.status()
            #expect(statuses.map(\.node.name) == ["pg1", "pg2", "pg3"])
            #expect(statuses.allSatisfy { $0.running })
            #expect(statuses.map(\.role) == [.primary, .replica, .replica])
            #expect(statuses.map(\.inRecovery) == [false, true, true])
            #expect(statuses.dropFirst().allSatisfy { $0.walReceiver == "streaming" })
            #expect(statuses.allSatisfy { $0.lsn != nil })
        }

        /// `--pgbouncer`: a bouncer per node in transaction mode, its admin console open to
        /// the cluster's superuser, stopped and started with its node, and a config whose
        /// nodes go through it with probes straight to the servers.
        @Test func bouncersFrontTheNodesAndFollowThemThroughStopAndStart() async throws {
            let cluster = try TestCluster.shared()
            let directory = cluster.local.directory.path
            let status = try await CommandLineTests.run(["cluster", "status", "--dir", directory])
            #expect(status.status == 0, "\(status.output)")
            #expect(status.output.contains("PGBOUNCER"))
            #expect(status.output.split(separator: "\n").filter { $0.hasPrefix("pg") && $0.contains(" running") }.count == 3, "\(status.output)")
            // The bouncer makes a pool for a database when a client first asks for it.
            #expect(try await cluster.connect("pg1", path: .pgbouncer).closing { try await $0.query("select 1").scalar(Int.self) } == 1)
            let admin = try await PostgresConnection.connect(
                try cluster.conninfo("pg1", database: "pgbouncer", path: .pgbouncer), label: "pgbouncer",
                options: ConnectOptions(connectTimeout: .seconds(5), statementCacheCapacity: 0))
            let pools = try await admin.closing { try await $0.execute(script: "show pools") }
            let modes = try pools.rows.compactMap { row -> String? in
                guard let column = pools.columns.firstIndex(where: { $0.name == "pool_mode" }) else { return nil }
                return try row.decode(column, as: String?.self)
            }
            #expect(modes.contains("transaction"), "\(modes)")

            try await cluster.local.stop(node: "pg3")
            do {
                let stopped = try await cluster.local.status().first { $0.node.name == "pg3" }
                #expect(stopped?.bouncerRunning == false)
                await #expect(throws: PostgresError.self) { _ = try await cluster.connect("pg3", path: .pgbouncer) }
            } catch {
                try? await cluster.local.start(node: "pg3")
                throw error
            }
            try await cluster.local.start(node: "pg3")
            #expect(try await cluster.local.status().first { $0.node.name == "pg3" }?.bouncerRunning == true)
            let through = try await cluster.connect("pg3", path: .pgbouncer).closing {
                try await $0.query("select pg_is_in_recovery()").scalar(Bool.self)
            }
            #expect(through == true)
            try await cluster.waitForStreaming()

            // `up --pgbouncer` on the running cluster: nothing to start, the config rewritten.
            let direct = try Data(contentsOf: cluster.local.configURL)
            try await ensuring {
                let up = try await CommandLineTests.run(["cluster", "up", "--dir", directory, "--pgbouncer"])
                #expect(up.status == 0, "\(up.output)")
                #expect(up.output.contains("PgBouncer console: psql"))
                let configuration = try ClusterConfiguration.load(path: cluster.local.configURL.path)
                for node in configuration.nodes {
                    #expect(node.poolMode == .transaction)
                    #expect(node.conninfo.contains("port=\(try cluster.node(node.name).bouncerPort!)"))
                    #expect(node.monitorConninfo.contains("port=\(try cluster.node(node.name).port)"))
                }
            } finally: {
                try? direct.write(to: cluster.local.configURL)
            }
        }

        @Test func stoppedReplicaCatchesUpAfterStart() async throws {
            let cluster = try TestCluster.shared()
            try await cluster.withSchema { schema in
                let table = try await Self.replicatedTable(schema)
                try await cluster.local.stop(node: "pg2")
                do {
                    let stopped = try await cluster.local.status().first { $0.node.name == "pg2" }
                    #expect(stopped?.running == false)
                    #expect(stopped?.role == .unknown)
                    await #expect(throws: PostgresError.self) { _ = try await cluster.connect("pg2") }
                    for id in 1...50 {
                        _ = try await schema.primary.query("insert into \(table) values ($1, 'while pg2 was down')", [id])
                    }
                } catch {
                    try? await cluster.local.start(node: "pg2")
                    throw error
                }
                try await cluster.local.start(node: "pg2")
                let caughtUp = try await TestCluster.eventually {
                    try await cluster.withConnection("pg2") { connection in
                        try await connection.query("select count(*) from \(table)").scalar(Int.self) == 50
                    }
                }
                #expect(caughtUp, "pg2 did not catch up after restart")
                try await cluster.waitForStreaming()
            }
        }
    }
}
