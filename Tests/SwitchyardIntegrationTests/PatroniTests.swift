import Foundation
import LocalCluster
import PatroniREST
import PostgresClient
import Switchyard
import SwitchyardTestSupport
import Synchronization
import Testing
import Verify

#if canImport(Glibc)
import Glibc
#endif

/// The Patroni cluster of the current scope (etcd + Patroni per node), shared by the
/// Patroni tests of one test process.
enum PatroniScope {
    @TaskLocal static var cluster: TestCluster?

    static func shared() throws -> TestCluster {
        guard let cluster else { throw LocalClusterError(.noCluster, "this test needs the Patroni cluster: put it inside a @Suite(.patroniCluster)") }
        return cluster
    }
}

/// Starts one Patroni cluster (1 leader + 2 replicas) around the suite and stops it
/// afterwards, also when tests fail. Without Patroni or etcd installed, it fails with the
/// install command.
struct PatroniClusterTrait: SuiteTrait, TestScoping {
    func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        let cluster = try await TestCluster.startPatroni(replicas: 2)
        try await ensuring {
            try await PatroniScope.$cluster.withValue(cluster) { try await function() }
        } finally: {
            await cluster.stop()
        }
    }
}

extension Trait where Self == PatroniClusterTrait {
    static var patroniCluster: Self { PatroniClusterTrait() }
}

extension TestCluster {
    var patroni: PatroniClient { PatroniClient(endpoints: (try? local.patroniEndpoints()) ?? []) }

    func patroniLeader() async throws -> String {
        try #require(try await patroni.cluster().leader?.name, "Patroni has no leader")
    }

    /// Application names streaming from `node` (its `pg_stat_replication`).
    func streaming(from node: String) async throws -> Set<String> {
        Set(try await withConnection(node) { connection in
            try await connection.query("select application_name from pg_stat_replication where state = 'streaming'")
                .rows.map { try $0.decode(0, as: String.self) }
        })
    }

    /// Back to one leader and every member streaming; a member left on a timeline of its
    /// own (pg_rewind can find nothing to undo) is cloned again by Patroni.
    func healPatroni() async throws {
        if (try? await patroni.cluster().paused) == true { try await patroni.setPaused(false) }
        do {
            try await local.waitUntilPatroniHealthy(timeout: .seconds(40))
        } catch {
            let leader = try await patroniLeader()
            let behind = try await local.nodes().filter { $0.name != leader }
            let streaming = try await streaming(from: leader)
            for node in behind where !streaming.contains(node.name) {
                print("reinitializing \(node.name): \(error)")
                try await patroni.reinitialize(at: try #require(node.restURL))
            }
            try await local.waitUntilPatroniHealthy(timeout: .seconds(90))
        }
    }
}

extension ClusterTests {
    /// A Patroni-managed cluster: its view beside the nodes', promotion through its API,
    /// a promotion behind its back, and a crashed leader under load. One cluster for all,
    /// in order; each test leaves it healthy (whoever leads).
    @Suite(.patroniCluster, .serialized) struct PatroniTests {
        @Test func checkShowsPatronisViewAndPromoteSwitchesOver() async throws {
            let test = try PatroniScope.shared()
            let config = test.local.configURL.path
            let view = try await test.patroni.cluster()
            #expect(view.leader?.name == "pg1")
            #expect(try await test.streaming(from: "pg1").isSuperset(of: ["pg2", "pg3"]))
            let status = try await CommandLineTests.run(["cluster", "status", "--dir", test.local.directory.path])
            #expect(status.output.contains("PATRONI") && status.output.contains("leader running"), "\(status.output)")

            let check = try await checkReport(["--config", config])
            #expect(check.status == 0, "\(check.output)")
            let lines = check.output.split(separator: "\n").filter { $0.contains("patroni") }
            #expect(lines.contains { $0.hasPrefix("PASS") && $0.contains("Patroni's leader pg1 is the primary") }, "\(check.output)")
            #expect(lines.filter { $0.hasPrefix("PASS") && $0.contains("| node: replica, WAL receiver streaming") }.count == 2, "\(check.output)")
            let lag = try await CommandLineTests.run(["lag", "--config", config])
            #expect(lag.output.contains("Patroni: leader pg1") && lag.output.contains("PATRONI"), "\(lag.output)")

            // A direct promotion is refused, --force included.
            let forced = try await CommandLineTests.run(["promote", "pg2", "--yes", "--force", "--config", config])
            #expect(forced.status == 1)
            #expect(forced.output.contains("managed by Patroni") && forced.output.contains("--force is refused"), "\(forced.output)")
            #expect(try await test.withConnection("pg2") { try await $0.query("select pg_is_in_recovery()").scalar(Bool.self) } == true)

            // The router follows the switchover.
            let cluster = try await test.routed(intervalMs: 250)
            // Patroni names its synchronous standbys a loop at a time: let it finish first.
            try await test.local.waitUntilPatroniHealthy(timeout: .seconds(60))
            try await ensuring {
                var timelineBefore = try #require(view.members.first { $0.name == "pg1" }?.timeline)
                var promote = try await CommandLineTests.run(["promote", "pg2", "--yes", "--config", config])
                var from = "pg1"
                if promote.status != 0, promote.output.contains("instead of") {
                    // Under load Patroni may hand over to another member than the one asked
                    // for (the candidate was slow to take the key): its call, and promote
                    // says so. Ask once more, from the member that leads now.
                    print("switchover went elsewhere, asking again: \(promote.output.split(separator: "\n").last ?? "")")
                    try await test.local.waitUntilPatroniHealthy(timeout: .seconds(60))
                    let now = try await test.patroni.cluster()
                    from = try #require(now.leader?.name)
                    timelineBefore = try #require(now.members.first { $0.name == from }?.timeline)
                    promote = try await CommandLineTests.run(["promote", "pg2", "--yes", "--config", config])
                }
                let promotedAt = ContinuousClock.now
                #expect(promote.status == 0, "\(promote.output)")
                #expect(promote.output.contains("Patroni switchover: \(from) → pg2"), "\(promote.output)")
                print("switchover: \(promote.output.split(separator: "\n").filter { $0.contains("after") }.joined(separator: " / "))")

                let history = try await test.patroni.history()
                #expect(history.last?.newLeader == "pg2" && history.last?.timeline == timelineBefore, "\(history)")
                #expect(try await test.patroniLeader() == "pg2")
                let pg1Follows = try await TestCluster.eventually(timeout: .seconds(30)) { try await test.streaming(from: "pg2").contains("pg1") }
                #expect(pg1Follows, "pg1 does not stream from pg2")

                var firstWrite: Duration?
                while ContinuousClock.now - promotedAt < .seconds(10) {
                    if let routed = try? await RoutingContext.admin.run({ try await cluster.run(.write, "select txid_current()") }) {
                        #expect(routed.node == "pg2")
                        firstWrite = ContinuousClock.now - promotedAt
                        break
                    }
                    try await Task.sleep(for: .milliseconds(20))
                }
                print("switchover → first routed write on pg2: \(firstWrite.map { "\($0)" } ?? "none")")
                #expect(firstWrite != nil && firstWrite! <= .milliseconds(2 * 250 + 250))
                // Once Patroni has named its synchronous standbys again and the restarted
                // members answer (on a loaded machine a standby Patroni calls running can
                // take a moment more to answer a probe within its second), all is well.
                try await test.local.waitUntilPatroniHealthy(timeout: .seconds(30))
                var after = try await checkReport(["--config", config])
                var checks = 1
                while after.status != 0, checks < 15 {
                    try await Task.sleep(for: .seconds(1))
                    after = try await checkReport(["--config", config])
                    checks += 1
                }
                if checks > 1 { print("check after the switchover passed on try \(checks)") }
                #expect(after.status == 0, "\(after.output)")
            } finally: {
                await cluster.shutdown()
            }
            try await test.healPatroni()
        }

        @Test func aPromotionBehindPatronisBackIsCriticalWithBothViews() async throws {
            let test = try PatroniScope.shared()
            let config = test.local.configURL.path
            let leader = try await test.patroniLeader()
            let victim = try #require(try test.local.nodes().map(\.name).first { $0 != leader })
            let cluster = try await test.routed(intervalMs: 250)
            try await ensuring {
                try await test.patroni.setPaused(true)
                #expect(try await TestCluster.eventually(timeout: .seconds(10)) { try await test.patroni.cluster().paused })
                let paused = try await checkReport(["--config", config])
                #expect(paused.status == 1, "\(paused.output)")
                #expect(paused.output.contains("WARN    patroni") && paused.output.contains("Patroni is paused"), "\(paused.output)")

                // (The checkpoint puts the new timeline in its control file, so Patroni's
                // pg_rewind sees the divergence when it demotes it after the pause.)
                let promotedAt = try await test.withConnection(victim) { connection in
                    _ = try await connection.query("select pg_promote(true, 30)")
                    let at = ContinuousClock.now
                    _ = try await connection.query("checkpoint")
                    return at
                }
                let configuration = try ClusterConfiguration.load(path: config)
                var seenAfter: Duration?
                while ContinuousClock.now - promotedAt < .seconds(5) {
                    let facts = FailoverFacts(round: cluster.monitor.topology, configuration: configuration)
                    let verdict = FailoverRules.evaluate(facts, FailoverThresholds(warnLag: .milliseconds(200), criticalLag: .seconds(1)))
                    if verdict.results.contains(where: { $0.check == "patroni" && $0.node == victim && $0.status == .fail }) {
                        seenAfter = ContinuousClock.now - promotedAt
                        break
                    }
                    try await Task.sleep(for: .milliseconds(10))
                }
                print("promotion behind Patroni's back reported after \(seenAfter.map { "\($0)" } ?? "never")")
                #expect(seenAfter != nil && seenAfter! <= .milliseconds(2 * 250 + 300))
                // Writes go nowhere: two primaries, and Patroni leads only one. The round that
                // saw the promotion may have asked Patroni before it (the two run side by
                // side): the next one fences it.
                let fenced = try await TestCluster.eventually(timeout: .seconds(3)) { cluster.monitor.topology.fenced[victim] != nil }
                #expect(fenced, "\(cluster.monitor.topology.fenced)")
                await #expect(throws: RoutingError.self) {
                    try await RoutingContext.admin.run { try await cluster.execute("select txid_current()") }
                }
                let critical = try await checkReport(["--config", config])
                #expect(critical.status == 2, "\(critical.output)")
                let line = critical.output.split(separator: "\n").first { $0.hasPrefix("FAIL") && $0.contains("patroni") && $0.contains(victim) }
                #expect(line?.contains("Patroni: replica running") == true || line?.contains("Patroni: sync_standby running") == true, "\(critical.output)")
                #expect(line?.contains("node: primary (out of recovery)") == true, "\(critical.output)")
            } finally: {
                await cluster.shutdown()
            }
            try await test.healPatroni()
            #expect(try await test.patroniLeader() == leader)
        }

        @Test func killingTheLeaderUnderLoadLosesNoReadsAndNoAcknowledgedWrite() async throws {
            let test = try PatroniScope.shared()
            let leader = try await test.patroniLeader()
            let survivors = try test.local.nodes().map(\.name).filter { $0 != leader }
            let cluster = try await test.routed(intervalMs: 250)
            try await ensuring {
                try await crash(leader, of: test, survivors: survivors, cluster: cluster)
            } finally: {
                await cluster.shutdown()
            }
            // The crashed node comes back and Patroni rejoins it.
            let restarted = ContinuousClock.now
            try await test.local.start(node: leader)
            try await test.healPatroni()
            print("\(leader) rejoined as a replica in \(ContinuousClock.now - restarted)")
        }

        @Test func theConsoleShowsPatroniAndPromotesThroughIt() async throws {
            let test = try PatroniScope.shared()
            let leader = try await test.patroniLeader()
            let target = try #require(try test.local.nodes().map(\.name).first { $0 != leader })
            _ = try await test.withConnection(leader) { connection in
                try await connection.execute(script: """
                    create table if not exists items (id int primary key, name text);
                    insert into items select g, 'item ' || g from generate_series(1, 5) g on conflict do nothing;
                    """)
            }
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sy-pat-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let configPath = try test.writeConfig(in: folder, name: "patroni")
            let binary = try CommandLineTests.executable.path
            let tmux = try await TmuxSession.start(command: "\(binary) console --config \(configPath) --table public.items", width: 140, height: 46)
            defer { tmux.close() }
            try await tmux.waitFor(text: "item 1")
            try await tmux.waitFor(text: "Patroni leader \(leader)")
            try await tmux.send("F")
            try await tmux.waitFor(text: "Patroni's leader \(leader) is the primary", timeout: .seconds(30))
            try await tmux.waitFor(text: "best candidate")
            let view = try await tmux.waitFor(text: "Candidates, best first")
            // Choose the target in the candidate list, then confirm with its name.
            if !view.contains("▶ 1. \(target)") { try await tmux.send("Down") }
            try await tmux.send("P")
            try await tmux.waitFor(text: "Patroni switches over to it")
            let chosen = try await tmux.capture()
            let candidate = chosen.contains("▶ 1. \(target)") || chosen.contains("▶ 2. \(target)") ? target : leader
            #expect(candidate == target, "\(chosen)")
            try await tmux.send(target, literal: true)
            try await tmux.send("Enter")
            try await tmux.waitFor(text: "\(target) promoted (Patroni switchover", timeout: .seconds(60))
            try await tmux.waitFor(text: "Patroni leader \(target)", timeout: .seconds(15))
            #expect(try await test.patroniLeader() == target)
            try await tmux.send("Escape")
            try await test.healPatroni()
        }

        /// Four readers and one writer run while the leader's Patroni and postmaster are
        /// killed; the writer stops 2 s after writes resumed on the new leader.
        func crash(_ leader: String, of test: TestCluster, survivors: [String], cluster: Cluster) async throws {
            let leaderNode = try test.node(leader)
        try await RoutingContext.admin.run { try await cluster.execute("create table if not exists ha_writes (id bigint primary key)") }
        let stop = Shared(false)
        let readFailures = Shared<[String]>([])
        let readsByNode = Shared<[String: Int]>([:])
        // Four readers in the public context.
        let readers = (0..<4).map { _ in
            Task {
                while !stop.value {
                    do {
                        let routed = try await RoutingContext.public.run { try await cluster.run(.read, "select count(*) from ha_writes") }
                        readsByNode.withLock { $0[routed.node, default: 0] += 1 }
                    } catch {
                        readFailures.withLock { $0.append("\(error)") }
                    }
                    try? await Task.sleep(for: .milliseconds(5))
                }
            }
        }
        // When a survivor first accepts writes, seen from the node itself.
        let acceptedAt = Shared<(String, ContinuousClock.Instant)?>(nil)
        let watcher = Task {
            var connections: [String: PostgresConnection] = [:]
            for name in survivors { connections[name] = try? await test.connect(name) }
            while !stop.value && acceptedAt.withLock({ $0 == nil }) {
                for (name, connection) in connections {
                    if (try? await connection.query("select pg_is_in_recovery()").scalar(Bool.self)) == false {
                        acceptedAt.withLock { $0 = $0 ?? (name, ContinuousClock.now) }
                    }
                }
                try? await Task.sleep(for: .milliseconds(10))
            }
            for connection in connections.values { await connection.close() }
        }
        // One writer in the admin context.
        var acknowledged: [Int] = []
        var failures: [(took: Duration, error: String)] = []
        var firstNewWrite: (node: String, at: ContinuousClock.Instant)?
        var killedAt: ContinuousClock.Instant?
        var id = 0
        let started = ContinuousClock.now
        while ContinuousClock.now - started < .seconds(90) {
            if killedAt == nil && ContinuousClock.now - started > .seconds(1) {
                // The crash: Patroni and the postmaster of the leader, kill -9.
                let patroniPid = try String(contentsOf: test.local.directory.appendingPathComponent("\(leader)/patroni.pid"), encoding: .utf8)
                let postmaster = try String(contentsOf: test.local.dataDirectory(leaderNode).appendingPathComponent("postmaster.pid"), encoding: .utf8)
                kill(try #require(pid_t(patroniPid.trimmingCharacters(in: .whitespacesAndNewlines))), SIGKILL)
                kill(try #require(pid_t(postmaster.split(separator: "\n").first ?? "")), SIGKILL)
                killedAt = ContinuousClock.now
            }
            id += 1
            let attempt = ContinuousClock.now
            do {
                let routed = try await RoutingContext.admin.run {
                    try await cluster.run(.write, "insert into ha_writes values ($1)", [id])
                }
                acknowledged.append(id)
                if killedAt != nil && routed.node != leader && firstNewWrite == nil { firstNewWrite = (routed.node, attempt) }
                if let first = firstNewWrite, ContinuousClock.now - first.at > .seconds(2) { break }
            } catch {
                failures.append((ContinuousClock.now - attempt, "\(error)"))
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        stop.set(true)
        for reader in readers { await reader.value }
        await watcher.value

        let newLeader = try #require(firstNewWrite, "writes never resumed on a new leader").node
        #expect(survivors.contains(newLeader))
        #expect(readFailures.withLock { $0 }.isEmpty, "failed reads: \(readFailures.withLock { $0.prefix(5) })")
        let slowest = failures.map(\.took).max() ?? .zero
        #expect(slowest < .seconds(3), "a write took \(slowest) to fail")
        let accepted = try #require(acceptedAt.withLock { $0 })
        #expect(accepted.0 == newLeader)
        let gap = firstNewWrite!.at - killedAt!
        let routedAfter = firstNewWrite!.at - accepted.1
        print("leader \(leader) killed: \(failures.count) writes failed fast (slowest \(slowest)); \(newLeader) accepted writes "
            + "\(accepted.1 - killedAt!) after the kill; first routed write \(routedAfter) later; gap in writes \(gap); "
            + "reads by node \(readsByNode.withLock { $0 })")
        #expect(routedAfter <= .milliseconds(2 * 250 + 250), "the router followed the new leader \(routedAfter) after it accepted writes")
        // Every acknowledged write is on the new leader.
        let stored = try await test.withConnection(newLeader) { connection -> Set<Int> in
            Set(try await connection.query("select id from ha_writes").rows.map { try $0.decode(0, as: Int.self) })
        }
        let lost = acknowledged.filter { !stored.contains($0) }
        #expect(lost.isEmpty, "\(lost.count) of \(acknowledged.count) acknowledged writes lost: \(lost.prefix(10))")
        }

        @Test func aVerifyRunThroughASwitchoverLosesNoAcknowledgedWrite() async throws {
            let test = try PatroniScope.shared()
            var options = VerifyOptions()
            options.seconds = 12
            options.clients = 4
            options.seed = 24
            options.faults = [.switchover]
            var configuration = try ClusterConfiguration.load(path: test.local.configURL.path)
            configuration.monitorInterval = .milliseconds(250)
            let report = try await ensuring {
                try await VerifyRun(local: test.local, configuration: configuration, options: options).run { print($0) }
            } finally: {
                try? await test.healPatroni()
            }
            print(VerifyText.render(report))
            #expect(report.faultsInjected["switchover"] == 1)
            #expect(report.violations.isEmpty, "\(VerifyText.render(report))")
            #expect(report.lostWrites.isEmpty)
            #expect(report.figures.writes > 100)
        }
    }
}

/// A value several tasks share.
final class Shared<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    var value: Value { mutex.withLock { $0 } }
    func set(_ value: Value) { mutex.withLock { $0 = value } }
    func withLock<T>(_ body: (inout Value) -> T) -> T { mutex.withLock { body(&$0) } }
}
