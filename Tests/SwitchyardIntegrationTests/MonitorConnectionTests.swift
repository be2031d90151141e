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

        /// With nobody writing, a replica that applies 600 ms late reads 600 ms, not 0 and not
        /// the age of its last replayed transaction: the heartbeat the primary's probe commits
        /// is what it lags behind. A one-off report (`lag`, `check`) waits for it too; a
        /// healthy replica reads 0 bytes behind as of its last report.
        @Test func anIdleReplicaThatAppliesLateReadsItsDelayByTheHeartbeat() async throws {
            let test = try TestCluster.shared()
            let nodes = try test.nodes.map { NodeEndpoint(name: $0.name, conninfo: try test.conninfo($0.name)) }
            try await test.local.delay(node: "pg3", milliseconds: 600)
            let monitor = ClusterMonitor(nodes: nodes, settings: ClusterMonitor.Settings(interval: .milliseconds(250)))
            try await ensuring {
                let settled = await ClusterMonitor(nodes: nodes, settings: ClusterMonitor.Settings(interval: .milliseconds(250))).probeSettled()
                let once = settled.node("pg3")?.lagMilliseconds ?? -1
                #expect(abs(once - 600) <= 120, "a one-off report showed \(once) ms for pg3 delayed 600 ms")
                #expect(settled.heartbeatProblem == nil)
                monitor.start()
                try await Task.sleep(for: .milliseconds(2000))
                var samples: [Double] = []
                for _ in 0..<20 {
                    try await Task.sleep(for: .milliseconds(Int.random(in: 50...150)))
                    let topology = monitor.topology
                    if let ms = topology.node("pg3")?.lagMilliseconds { samples.append(ms) }
                    #expect(topology.node("pg2")?.lagMilliseconds.map { $0 < 100 } == true, "healthy pg2: \(String(describing: topology.node("pg2")))")
                }
                let mean = samples.reduce(0, +) / Double(max(samples.count, 1))
                #expect(samples.count == 20)
                #expect(abs(mean - 600) <= 150, "idle pg3 delayed 600 ms showed \(samples.map { Int($0) }) ms")
            } finally: {
                await monitor.stop()
                try? await test.local.delay(node: "pg3", milliseconds: 0)
            }
        }

        /// The primary-view strategy on the real cluster: a quiet cluster costs the
        /// replicas only their turns; a replica delayed under steady writes reads its delay
        /// from the primary's view within ±100 ms; the every-node strategy asks everyone.
        @Test func replicasAreReadFromThePrimarysViewYetLagStaysTrue() async throws {
            let test = try TestCluster.shared()
            let nodes = try test.nodes.map { NodeEndpoint(name: $0.name, conninfo: try test.conninfo($0.name)) }
            func quietRun(_ strategy: ClusterMonitor.Strategy) async throws -> [String: Int] {
                let monitor = ClusterMonitor(
                    nodes: nodes, settings: ClusterMonitor.Settings(interval: .milliseconds(250), strategy: strategy, replicaProbeInterval: .seconds(1)))
                monitor.start()
                try await Task.sleep(for: .seconds(3))
                await monitor.stop()
                return monitor.statementsSent
            }
            let view = try await quietRun(.primaryView)
            let every = try await quietRun(.everyNode)
            // 3 s at 250 ms: about 12 rounds. Replicas: the first round, then one every second in turn.
            #expect((10...14).contains(view["pg1"] ?? 0), "\(view)")
            #expect((view["pg2"] ?? 0) + (view["pg3"] ?? 0) <= 7, "\(view)")
            #expect(every.values.allSatisfy { (10...14).contains($0) }, "\(every)")

            try await test.withSchema { schema in
                _ = try await schema.primary.query("create table \(schema.quoted).beat (id int primary key, at timestamptz)")
                _ = try await schema.primary.query("insert into \(schema.quoted).beat values (1, now())")
                try await test.local.delay(node: "pg3", milliseconds: 300)
                let writer = Task {
                    while !Task.isCancelled {
                        _ = try await schema.primary.query("update \(schema.quoted).beat set at = now() where id = 1")
                        try await Task.sleep(for: .milliseconds(10))
                    }
                }
                let monitor = ClusterMonitor(nodes: nodes, settings: ClusterMonitor.Settings(interval: .milliseconds(250)))
                try await ensuring {
                    monitor.start()
                    try await Task.sleep(for: .milliseconds(1600))
                    var samples: [(ms: Double, view: Bool)] = []
                    let end = ContinuousClock.now + .seconds(3)
                    for await topology in monitor.updates() {
                        if let node = topology.node("pg3"), let ms = node.lagMilliseconds { samples.append((ms, node.source == .primaryView)) }
                        if ContinuousClock.now >= end { break }
                    }
                    let mean = samples.map(\.ms).reduce(0, +) / Double(max(samples.count, 1))
                    #expect(samples.count >= 8)
                    #expect(abs(mean - 300) <= 100, "pg3 delayed 300 ms showed \(samples.map { Int($0.ms) }) ms")
                    #expect(samples.filter(\.view).count * 2 >= samples.count, "most rounds should read pg3 from the primary's view")
                } finally: {
                    writer.cancel()
                    _ = await writer.result
                    await monitor.stop()
                    try? await test.local.delay(node: "pg3", milliseconds: 0)
                }
            }
        }
    }
}
