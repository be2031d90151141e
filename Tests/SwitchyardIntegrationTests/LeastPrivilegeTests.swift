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
            // Routing still uses the replicas, on lag alone.
            let decision = DefaultRouter(selection: .roundRobin).route(RouteRequest(operation: .read, context: .public), topology: seen)
            #expect(decision?.node != "pg1")
        }
    }
}
