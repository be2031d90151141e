import Foundation
import PostgresClient
import Switchyard
import SwitchyardTestSupport
import Testing

extension ClusterTests {
    /// The monitor's own connections: one closed by the server is not a node down.
    @Suite struct MonitorConnectionTests {
        @Test func aTerminatedProbeConnectionIsReplacedNotReportedDown() async throws {
            let test = try TestCluster.shared()
            let monitor = ClusterMonitor(
                nodes: try test.nodes.map { NodeEndpoint(name: $0.name, conninfo: try test.conninfo($0.name)) },
                settings: ClusterMonitor.Settings(interval: .milliseconds(250)))
            #expect(await monitor.probeNow().node("pg1")?.reachable == true)
            let killed = try await test.withConnection("pg1") { connection in
                try await connection.query(
                    "select count(pg_terminate_backend(pid))::int from pg_stat_activity where application_name = 'switchyard monitor' and pid <> pg_backend_pid()"
                ).scalar(Int.self)
            }
            #expect((killed ?? 0) > 0)
            try await Task.sleep(for: .milliseconds(100))
            let after = await monitor.probeNow().node("pg1")
            await monitor.stop()
            #expect(after?.reachable == true, "one closed probe connection made pg1 look down: \(after?.error ?? "")")
        }
    }
}
