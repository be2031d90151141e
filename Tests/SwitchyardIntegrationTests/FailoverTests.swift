import Foundation
import LocalCluster
import PostgresClient
import Switchyard
import SwitchyardTestSupport
import Testing

func checkReport(_ arguments: [String]) async throws -> (status: Int32, firstLine: String, output: String) {
    let run = try await CommandLineTests.run(["check"] + arguments)
    return (run.status, String(run.output.split(separator: "\n").first ?? ""), run.output)
}

extension ClusterTests {
    /// `switchyard check` on the shared cluster, healthy and degraded.
    @Suite struct CheckCommandTests {
        @Test func healthyClusterIsOKAndJSONMatchesTheTable() async throws {
            let config = try TestCluster.shared().local.configURL.path
            let text = try await checkReport(["--config", config])
            #expect(text.status == 0, "\(text.output)")
            #expect(text.firstLine.hasPrefix("SWITCHYARD OK - "))
            #expect(text.firstLine.contains("primary pg1"))
            let json = try await CommandLineTests.run(["check", "--config", config, "--json"])
            #expect(json.status == 0)
            let report = try #require(JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any])
            let results = try #require(report["results"] as? [[String: Any]])
            let tableRows = text.output.split(separator: "\n").filter { $0.hasPrefix("PASS ") || $0.hasPrefix("WARN ") || $0.hasPrefix("FAIL ") || $0.hasPrefix("UNKNOWN ") }
            #expect(results.count == tableRows.count)
            #expect(results.allSatisfy { $0["status"] as? String == "PASS" })
            #expect(Set(results.compactMap { $0["check"] as? String }) == ["reachable", "primary", "replication", "lag", "visibility", "slots", "wal_senders", "settings", "candidates"])
            #expect(report["primary"] as? String == "pg1")
            #expect((report["candidates"] as? [[String: Any]])?.count == 2)
        }

        @Test func delayedStoppedAndPausedReplicasAreNamed() async throws {
            let cluster = try TestCluster.shared()
            let config = cluster.local.configURL.path
            try await cluster.local.delay(node: "pg3", milliseconds: 2000)
            do {
                try await Task.sleep(for: .milliseconds(300))
                _ = try await cluster.withConnection("pg1") { try await $0.query("select pg_switch_wal(), txid_current()") }
                let delayed = try await checkReport(["--config", config])
                #expect(delayed.status == 1 || delayed.status == 2, "\(delayed.output)")
                #expect(delayed.firstLine.contains("pg3"))
            } catch {
                try? await cluster.local.delay(node: "pg3", milliseconds: 0)
                throw error
            }
            try await cluster.local.delay(node: "pg3", milliseconds: 0)

            try await cluster.local.stop(node: "pg3", mode: .immediate)
            let stopped = try await checkReport(["--config", config])
            try await cluster.local.start(node: "pg3")
            #expect(stopped.status == 2)
            #expect(stopped.firstLine.hasPrefix("SWITCHYARD CRITICAL - pg3: unreachable"))
            try await cluster.waitForStreaming()

            _ = try await cluster.withConnection("pg2") { try await $0.query("select pg_wal_replay_pause()") }
            let paused = try await checkReport(["--config", config])
            _ = try await cluster.withConnection("pg2") { try await $0.query("select pg_wal_replay_resume()") }
            #expect(paused.status == 2)
            let pg2 = paused.output.split(separator: "\n").first { $0.hasPrefix("FAIL") && $0.contains("replication") && $0.contains("pg2") }
            #expect(pg2?.contains("replay paused") == true, "\(paused.output)")
        }
    }
}

/// Losing the primary, promoting a replica, and a primary coming back: on a cluster of
/// its own, since promotion cannot be undone.
@Suite struct FailoverTests {
    @Test func promotionIsFollowedBySplitBrainRefusal() async throws {
        let test = try await TestCluster.start(replicas: 2)
        let config = test.local.configURL.path
        let cluster = try await test.routed(intervalMs: 250)
        do {
            try await scenario(test, cluster, config)
        } catch {
            await cluster.shutdown()
            await test.stop()
            throw error
        }
        await cluster.shutdown()
        await test.stop()
    }

    func scenario(_ test: TestCluster, _ cluster: Cluster, _ config: String) async throws {
        try await cluster.execute("create table failover_t (id int primary key, note text)")
        // Refusals first: no --yes; a reachable primary.
        let noYes = try await CommandLineTests.run(["promote", "pg2", "--config", config])
        #expect(noYes.status == 1)
        #expect(noYes.output.contains("--yes"))
        let notAlone = try await CommandLineTests.run(["promote", "pg2", "--yes", "--config", config])
        #expect(notAlone.status == 1)
        #expect(notAlone.output.contains("pg1 is still a reachable primary"))

        try await test.local.stop(node: "pg1", mode: .immediate)
        let down = try await checkReport(["--config", config])
        #expect(down.status == 2)
        #expect(down.firstLine.contains("no reachable primary; best candidate pg"))
        _ = await TestCluster.eventually(timeout: .seconds(3)) { cluster.monitor.topology.primary == nil }
        let refused = await #expect(throws: RoutingError.self) {
            try await RoutingContext.admin.run { try await cluster.execute("insert into failover_t values (1, 'lost')") }
        }
        #expect(refused?.kind == .noPrimary)
        #expect(refused?.message.hasPrefix("primary unavailable") == true)

        let promote = try await CommandLineTests.run(["promote", "pg2", "--yes", "--config", config])
        #expect(promote.status == 0, "\(promote.output)")
        let promotedAt = ContinuousClock.now
        var firstWrite: Duration?
        while ContinuousClock.now - promotedAt < .seconds(10) {
            do {
                let routed = try await RoutingContext.admin.run {
                    try await cluster.run(.write, "insert into failover_t values (2, 'after promotion') on conflict do nothing")
                }
                #expect(routed.node == "pg2")
                firstWrite = ContinuousClock.now - promotedAt
                break
            } catch {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        let elapsed = try #require(firstWrite, "no write reached the new primary")
        #expect(elapsed <= .milliseconds(2 * 250 + 500), "first write on the new primary after \(elapsed)")
        print("promotion → first routed write on pg2: \(elapsed)")

        // The other replica was repointed: it streams from pg2 now.
        #expect(promote.output.contains("pg3 streams from pg2"), "\(promote.output)")
        let after = try await checkReport(["--config", config])
        #expect(after.status == 2)
        #expect(after.output.contains("pg1") && after.output.contains("unreachable"))
        let pg3 = after.output.split(separator: "\n").first { $0.contains("replication") && $0.contains("pg3") }
        #expect(pg3?.hasPrefix("PASS") == true, "\(after.output)")
        let pg3Upstream = try await test.withConnection("pg3") {
            try await $0.query("select sender_port from pg_stat_wal_receiver where status = 'streaming'").scalar(Int.self)
        }
        #expect(pg3Upstream == (try test.node("pg2")).port)

        // The old primary comes back as a second primary: split brain, writes refused.
        try await test.local.start(node: "pg1")
        _ = await TestCluster.eventually(timeout: .seconds(5)) { cluster.monitor.topology.primaries.count == 2 }
        let split = await #expect(throws: RoutingError.self) {
            try await RoutingContext.admin.run { try await cluster.execute("insert into failover_t values (3, 'split')") }
        }
        #expect(split?.kind == .splitBrain(["pg1", "pg2"]))
        for node in ["pg1", "pg2"] {
            let count = try await test.withConnection(node) {
                try await $0.query("select count(*) from failover_t where id = 3").scalar(Int.self)
            }
            #expect(count == 0, "\(node) got the row written during split brain")
        }
        let splitCheck = try await checkReport(["--config", config])
        #expect(splitCheck.firstLine.contains("split brain: pg1 and pg2"))

        // rejoin: pg1 is rewound (its split-brain write undone) and streams from pg2.
        _ = try await test.withConnection("pg1") { try await $0.query("insert into failover_t values (5, 'diverged on pg1')") }
        _ = try await test.withConnection("pg2") { try await $0.query("insert into failover_t values (4, 'on pg2 before the rejoin')") }
        let rejoin = try await CommandLineTests.run(["cluster", "rejoin", "pg1", "--dir", test.local.directory.path])
        #expect(rejoin.status == 0, "\(rejoin.output)")
        let rows = try await test.withConnection("pg1") { connection -> [Int] in
            try await connection.query("select id from failover_t order by id").rows.map { try $0.decode(0, as: Int.self) }
        }
        #expect(rows == [2, 4], "pg1 after the rejoin has \(rows)")
        let healed = try await checkReport(["--config", config])
        #expect(healed.status == 0, "\(healed.output)")
        let again = try await CommandLineTests.run(["cluster", "rejoin", "pg1", "--dir", test.local.directory.path])
        #expect(again.status != 0 && again.output.contains("already a streaming replica"), "\(again.output)")
    }
}

/// The console through a failover, on a cluster of its own: the primary dies, edits fail
/// clearly and keep the input, the failover view promotes a replica, the header follows.
@Suite struct ConsoleFailoverTests {
    @Test func consoleSurvivesLosingThePrimaryAndPromotes() async throws {
        let test = try await TestCluster.start(replicas: 2)
        do {
            try await scenario(test)
        } catch {
            await test.stop()
            throw error
        }
        await test.stop()
    }

    func scenario(_ test: TestCluster) async throws {
        _ = try await test.withConnection("pg1") { connection in
            try await connection.execute(script: """
                create table items (id int primary key, name text);
                insert into items select g, 'item ' || g from generate_series(1, 20) g;
                """)
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sy-fo-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let configPath = try test.writeConfig(in: folder, name: "failover")

        let binary = try CommandLineTests.executable.path
        let tmux = try await TmuxSession.start(command: "\(binary) console --config \(configPath) --table public.items", width: 130, height: 44)
        defer { tmux.close() }
        try await tmux.waitFor(text: "item 1")
        try await tmux.waitFor(text: "ADMIN → primary pg1")

        try await test.local.stop(node: "pg1", mode: .immediate)
        try await tmux.waitFor(text: "pg1 DOWN")
        try await tmux.waitFor(text: "ADMIN → primary unavailable")
        try await tmux.send("Right", "Enter")
        try await tmux.waitFor(text: "Edit name")
        try await tmux.send("C-u")
        try await tmux.send("kept text", literal: true)
        try await tmux.send("Enter")
        let failed = try await tmux.waitFor(text: "primary unavailable: no reachable node is out of recovery")
        #expect(failed.contains("Edit name") && failed.contains("kept text"), "the editor keeps the input")
        try await tmux.send("Escape")

        try await tmux.send("F")
        try await tmux.waitFor(text: "SWITCHYARD CRITICAL")
        let view = try await tmux.waitFor(text: "best candidate pg")
        #expect(view.contains("no reachable primary"))
        try await tmux.send("P")
        try await tmux.waitFor(text: "to confirm")
        let candidate = view.contains("▶ 1. pg2") ? "pg2" : "pg3"
        try await tmux.send("wrong", literal: true)
        try await tmux.send("Enter")
        try await tmux.waitFor(text: "does not match")
        try await tmux.send("P")
        try await tmux.send(candidate, literal: true)
        try await tmux.send("Enter")
        try await tmux.waitFor(text: "\(candidate) promoted", timeout: .seconds(30))
        try await tmux.waitFor(text: "ADMIN → primary \(candidate)")
        // The view re-runs its checks after a promotion; the old primary is still down.
        let rerun = try await tmux.waitFor(text: "SWITCHYARD CRITICAL", timeout: .seconds(30))
        #expect(rerun.contains("primary \(candidate)") || rerun.contains("pg1"))
        try await tmux.send("Escape")
        try await tmux.waitFor("the failover view to close") { !$0.contains("Failover readiness") }
        // Edits work again, on the new primary.
        try await tmux.send("Enter")
        try await tmux.waitFor(text: "Edit name")
        try await tmux.send("C-u")
        try await tmux.send("after failover", literal: true)
        try await tmux.send("Enter")
        try await tmux.waitFor(text: "saved name")
        let saved = try await test.withConnection(candidate) {
            try await $0.query("select name from items where id = 1").scalar(String.self)
        }
        #expect(saved == "after failover")
    }
}
