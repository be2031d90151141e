import Foundation
import PostgresClient
import Switchyard
import SwitchyardTestSupport
import Testing

extension ClusterTests {
    /// The monitor as a role with only pg_monitor, and as a role with no rights at all.
    @Suite struct LeastPrivilegeTests {
        static func monitor(as role: String) throws -> ClusterMonitor {
            let test = try TestCluster.shared()
            let nodes = try test.nodes.map { node in
                NodeEndpoint(
                    name: node.name,
                    conninfo: try test.conninfo(node.name).replacingOccurrences(of: "user=postgres", with: "user=\(role) password=watch-only"))
            }
            return ClusterMonitor(nodes: nodes, settings: ClusterMonitor.Settings(interval: .milliseconds(250)))
        }

        @Test func replicasShowAsReplicasWithLagForMonitoringAndBareRoles() async throws {
            let test = try TestCluster.shared()
            try await test.withConnection("pg1") { connection in
                _ = try await connection.execute(script: """
                    do $$ begin
                      if not exists (select from pg_roles where rolname = 'sy_watch') then
                        create role sy_watch login password 'watch-only' in role pg_monitor;
                      end if;
                      if not exists (select from pg_roles where rolname = 'sy_bare') then create role sy_bare login password 'watch-only'; end if;
                    end $$;
                    """)
            }
            try await test.waitForStreaming()
            _ = await TestCluster.eventually { (try? await test.withConnection("pg2") { try await $0.query("select 1 from pg_roles where rolname = 'sy_bare'").rowCount }) == 1 }

            let watch = try Self.monitor(as: "sy_watch")
            let watched = await watch.probeNow()
            await watch.stop()
            #expect(watched.primary?.name == "pg1")
            for name in ["pg2", "pg3"] {
                let node = try #require(watched.node(name))
                #expect(node.reachable && node.role == .replica, "\(name): \(node)")
                #expect(node.walReceiverStatus == "streaming")
                #expect(node.lagBytes != nil)
                #expect(node.configuredUpstream != nil)
            }

            let bare = try Self.monitor(as: "sy_bare")
            let seen = await bare.probeNow()
            await bare.stop()
            #expect(seen.primary?.name == "pg1", "\(seen.nodes)")
            for name in ["pg2", "pg3"] {
                let node = try #require(seen.node(name))
                #expect(node.reachable, "\(name) shown down to a role without monitoring rights: \(node.error ?? "")")
                #expect(node.role == .replica)
                #expect(node.walReceiverStatus == "unknown")
                #expect(node.configuredUpstream == nil)
                #expect(node.lagBytes != nil, "lag comes from LSNs every role can read")
            }
            #expect(seen.hiddenFromMonitor.keys.sorted() == ["pg2", "pg3"])

            // `lag` and `lag --json` say why the cells are unknown (before: "unknown", "-",
            // "-" with no reason; only `check` explained it).
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sy-bare-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let config = try test.writeConfig(in: folder, name: "bare")
            let text = try String(contentsOfFile: config, encoding: .utf8)
                .replacingOccurrences(of: "user=postgres", with: "user=sy_bare password=watch-only")
            try text.write(toFile: config, atomically: false, encoding: .utf8)
            let table = try await CommandLineTests.run(["lag", "--config", config])
            #expect(table.output.contains("pg2, pg3: WAL receiver state, upstream and timeline unknown: the monitoring role needs pg_monitor"),
                    "\(table.output)")
            let json = try await CommandLineTests.run(["lag", "--json", "--config", config])
            let document = try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any]
            let problems = document?["monitoringProblems"] as? [String: String]
            #expect(problems?.keys.sorted() == ["pg2", "pg3"] && problems?["pg2"]?.contains("pg_monitor") == true, "\(json.output)")

            // Routing still uses the replicas, on lag alone.
            let decision = DefaultRouter(selection: .roundRobin).route(RouteRequest(operation: .read, context: .public), topology: seen)
            #expect(decision?.node != "pg1")
        }
    }
}
