import Foundation
import LocalCluster
import PostgresClient
@testable import Switchyard
import SwitchyardTestSupport
import Testing
import Verify

/// Sends every public read to pg3 while the monitor sees it reachable.
struct ReadsOnPG3: Router {
    func route(_ request: RouteRequest, topology: Topology) -> RouteDecision? {
        guard request.operation == .read, request.context != nil, topology.node("pg3")?.reachable == true else { return nil }
        return RouteDecision(node: "pg3", reason: .custom(router: "pg3", note: "test"))
    }
}

extension ClusterTests {
    /// The guarantees at the edges of faults: late cancels, statement bounds, silent
    /// replicas, planted and forged tokens, and a short verify run.
    @Suite struct FaultToleranceTests {
        @Test func aCancelArrivingAfterItsStatementEndedHitsNothingElse() async throws {
            let test = try TestCluster.shared()
            let connection = try await test.connect("pg1")
            for _ in 0..<5 {
                _ = try await connection.query("select 1")
                connection.cancel()  // the statement is over: nothing to cancel
                #expect(try await connection.query("select 7 from pg_sleep(0.2)").scalar(Int.self) == 7)
            }
            await connection.close()
        }

        @Test func aStatementPastItsBoundIsCancelledOnTheServerAndTheConnectionLives() async throws {
            let test = try TestCluster.shared()
            let connection = try await test.connect("pg2", options: ConnectOptions(connectTimeout: .seconds(5), statementBound: .milliseconds(300)))
            let clock = ContinuousClock()
            let started = clock.now
            let error = await #expect(throws: PostgresError.self) { try await connection.query("select pg_sleep(5)") }
            #expect(error?.kind == .timedOut)
            #expect(error?.message.contains("statement bound") == true)
            #expect(clock.now - started < .milliseconds(1500), "the bound was not kept")
            #expect(connection.isUsable)
            #expect(try await connection.query("select 3").scalar(Int.self) == 3)
            // A task may give its statements a bound of its own.
            let longer = try await PostgresConnection.withStatementBound(.seconds(5)) {
                try await connection.query("select 4 from pg_sleep(0.5)").scalar(Int.self)
            }
            #expect(longer == 4)
            await connection.close()
            // Through the routed cluster, per call.
            try await withRouted { cluster, _ in
                let routed = await #expect(throws: PostgresError.self) {
                    try await cluster.query("select pg_sleep(5)", timeout: .milliseconds(200))
                }
                #expect(routed?.kind == .timedOut)
            }
        }

        @Test func aReadInFlightOnAReplicaThatFallsSilentIsAnsweredByAnother() async throws {
            let test = try TestCluster.shared()
            let cluster = try await test.routed(intervalMs: 250, routers: [ReadsOnPG3()])
            try await ensuring {
                #expect(try await RoutingContext.public.run { try await cluster.run(.read, "select 1") }.node == "pg3")
                let clock = ContinuousClock()
                let read = Task { try await RoutingContext.public.run { try await cluster.run(.read, "select 5 from pg_sleep(0.3)") } }
                try await Task.sleep(for: .milliseconds(100))
                let silenced = clock.now
                try await HungNodeTests.signal(SIGSTOP, node: "pg3")
                let outcome = await withDeadline(.seconds(10)) { try await read.value }
                guard case .value(let routed) = outcome else {
                    Issue.record("the read on the silent replica did not answer: \(outcome)")
                    return
                }
                #expect(try routed.result.scalar(Int.self) == 5)
                #expect(routed.node != "pg3")
                #expect(routed.reason.description.hasPrefix("retry: pg3"))
                // Once the monitor finds pg3 silent — the read has waited longer than a probe
                // may (1 s), so the next round asks pg3 itself, which gets the same 1 s to
                // answer — not after TCP's minutes.
                #expect(clock.now - silenced < .seconds(4))
            } finally: {
                try? await HungNodeTests.signal(SIGCONT, node: "pg3")
                await cluster.shutdown()
            }
        }

        @Test func aPlantedTokenBesideTheRealOneNeitherHidesNorDropsIt() async throws {
            try await TestCluster.shared().withSchema { schema in
                let table = try await schema.table("t")
                _ = try await schema.primary.query("create table \(table) (id int primary key, v int)")
                _ = try await schema.primary.query("insert into \(table) values (1, 0)")
                let test = try TestCluster.shared()
                try await test.local.delay(node: "pg2", milliseconds: 400)
                try await test.local.delay(node: "pg3", milliseconds: 400)
                try await ensuring {
                    try await withRouted(selection: .leastLag) { cluster, _ in
                        var stale = 0
                        for round in 1...10 {
                            let real = try await RoutingContext.public.run { () -> ConsistencyToken? in
                                try await cluster.execute("update \(table) set v = $1 where id = 1", [round])
                                return Cluster.currentToken
                            }
                            let token = try #require(real)
                            for planted in [ConsistencyToken(lsn: LSN(UInt64.max)), ConsistencyToken(lsn: LSN(0))] {
                                let (seen, kept) = try await RoutingContext.public.run(tokens: [planted, token]) {
                                    (try await cluster.query("select v from \(table) where id = 1").scalar(Int.self), Cluster.currentToken)
                                }
                                if seen != round { stale += 1 }
                                #expect(kept == token, "the real token must survive a planted one")
                            }
                        }
                        #expect(stale == 0)
                    }
                } finally: {
                    try? await test.local.delay(node: "pg2", milliseconds: 0)
                    try? await test.local.delay(node: "pg3", milliseconds: 0)
                }
            }
        }

        @Test func transactionsAndExportsSettleAForgedTokenFirst() async throws {
            try await TestCluster.shared().withSchema { schema in
                let table = try await schema.table("t")
                _ = try await schema.primary.query("create table \(table) (id int)")
                try await withRouted { cluster, _ in
                    let forged = ConsistencyToken(lsn: LSN(UInt64.max))
                    let after = try await RoutingContext.public.run(token: forged) { () -> ConsistencyToken? in
                        try await cluster.transaction { tx in try await tx.execute("insert into \(table) values (1)") }
                        return Cluster.currentToken
                    }
                    let token = try #require(after, "the commit's token was lost")
                    #expect(token != forged, "the forged token hid the commit's position")
                    let exported = try await RoutingContext.public.run(token: forged) { () -> ConsistencyToken? in
                        _ = try await cluster.copyOut("copy (select 1) to stdout") { _ in }
                        return Cluster.currentToken
                    }
                    #expect(exported == nil, "an export obeyed a token ahead of the primary")
                }
            }
        }

        @Test func aRetriedReadKeepsTheReplayGuardOfItsSession() async throws {
            try await TestCluster.shared().withSchema { schema in
                let table = try await schema.table("t")
                _ = try await schema.primary.query("create table \(table) (id int)")
                let test = try TestCluster.shared()
                for node in ["pg2", "pg3"] { try await test.withConnection(node) { _ = try await $0.query("select pg_wal_replay_pause()") } }
                try await ensuring {
                    try await withRouted(selection: .leastLag) { cluster, _ in
                        try await RoutingContext.public.run {
                            try await cluster.execute("insert into \(table) values (1)")
                            let token = try #require(Cluster.currentToken)
                            let request = RouteRequest(operation: .read, context: .public, token: token)
                            let first = try cluster.route(request)
                            #expect(first.replayGuard == token.lsn, "both replicas behind: a guarded read")
                            let lost = PostgresError(kind: .connectionLost, message: "gone", node: first.node)
                            let retry = try cluster.retryRoute(request, after: first, failedWith: lost)
                            #expect(retry.decision.node != first.node)
                            if retry.decision.node != "pg1" { #expect(retry.decision.replayGuard == token.lsn, "the retry lost its guard") }
                        }
                    }
                } finally: {
                    for node in ["pg2", "pg3"] {
                        try? await test.withConnection(node) { _ = try await $0.query("select pg_wal_replay_resume()") }
                    }
                }
            }
        }

        @Test func aShortVerifyRunUnderTwoFaultsFindsNoViolation() async throws {
            let test = try TestCluster.shared()
            var options = VerifyOptions()
            options.seconds = 16
            options.clients = 4
            options.seed = 42
            options.faults = [.killReplica, .blackholeReplica]
            var configuration = try ClusterConfiguration.load(path: test.local.configURL.path)
            configuration.monitorInterval = .milliseconds(250)
            let report = try await VerifyRun(local: test.local, configuration: configuration, options: options).run()
            #expect(report.violations.isEmpty, "\(VerifyText.render(report))")
            #expect(report.lostWrites.isEmpty)
            #expect(report.operations > 1000)
            #expect(report.faultsInjected["kill-replica"] ?? 0 >= 1 && report.faultsInjected["blackhole-replica"] ?? 0 >= 1)
            #expect(report.figures.readsOnReplicas > report.figures.reads / 2)
            try await test.waitForStreaming()
        }

        @Test func throughTheBouncersAVerifyRunSurvivesABouncerRestartAndCookieTossing() async throws {
            let test = try TestCluster.shared()
            var options = VerifyOptions()
            options.seconds = 10
            options.clients = 4
            options.seed = 43
            options.faults = [.restartBouncer, .cookieToss]
            var configuration = try ClusterConfiguration.load(path: test.configPath(.pgbouncer))
            configuration.monitorInterval = .milliseconds(250)
            let report = try await VerifyRun(local: test.local, configuration: configuration, options: options).run()
            #expect(report.violations.isEmpty, "\(VerifyText.render(report))")
            #expect(report.lostWrites.isEmpty)
            #expect(report.faultsInjected["restart-bouncer"] == 1 && report.faultsInjected["cookie-toss"] == 1)
            #expect(report.operations > 500)
        }
    }
}
