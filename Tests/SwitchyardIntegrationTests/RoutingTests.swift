import Foundation
import LocalCluster
import PostgresClient
import Switchyard
import SwitchyardTestSupport
import Testing

extension TestCluster {
    /// A routed `Cluster` over this test cluster, started, with a fast monitor.
    func routed(
        selection: ReplicaSelection = .roundRobin, readYourWrites: Bool = true, pinWindowMs: Int = 0,
        intervalMs: Int = 250, routers: [any Router] = [], logFile: String? = nil, logCapacity: Int = 100_000, path: Path = .direct,
        telemetry: Telemetry? = nil
    ) async throws -> Cluster {
        var configuration = ClusterConfiguration(
            name: "test",
            nodes: try nodes.map { node in
                guard path == .pgbouncer else { return NodeEndpoint(name: node.name, conninfo: try conninfo(node.name)) }
                return NodeEndpoint(
                    name: node.name, conninfo: try conninfo(node.name, path: .pgbouncer), monitorConninfo: try conninfo(node.name),
                    poolMode: .transaction)
            })
        configuration.replicaSelection = selection
        configuration.readYourWrites = readYourWrites
        configuration.pinWindow = .milliseconds(pinWindowMs)
        configuration.monitorInterval = .milliseconds(intervalMs)
        configuration.queryLogFile = logFile
        configuration.queryLogCapacity = logCapacity
        if local.engine == .patroni { configuration.patroni = PatroniSettings(endpoints: try local.patroniEndpoints()) }
        let cluster = try Cluster(configuration: configuration, routers: routers, telemetry: telemetry)
        await cluster.start()
        return cluster
    }
}

/// Runs `body` with a started routed cluster and shuts it down afterwards.
func withRouted<T: Sendable>(
    selection: ReplicaSelection = .roundRobin, readYourWrites: Bool = true, routers: [any Router] = [],
    logFile: String? = nil, path: TestCluster.Path = .direct, telemetry: Telemetry? = nil,
    _ body: (Cluster, TestCluster) async throws -> T
) async throws -> T {
    let test = try TestCluster.shared()
    let cluster = try await test.routed(
        selection: selection, readYourWrites: readYourWrites, routers: routers, logFile: logFile, path: path, telemetry: telemetry)
    do {
        let value = try await body(cluster, test)
        await cluster.shutdown()
        return value
    } catch {
        await cluster.shutdown()
        throw error
    }
}

/// Sends reads hinted `primary: yes` to pg1.
struct ReadsOnPrimary: Router {
    func route(_ request: RouteRequest, topology: Topology) -> RouteDecision? {
        guard request.operation == .read, request.hints["primary"] == "yes" else { return nil }
        return RouteDecision(node: "pg1", reason: .custom(router: "test", note: "on the primary"))
    }
}

/// Sends reads of `audit` tables to pg3, and tries (wrongly) to send writes to pg2.
struct AuditRouter: Router {
    func route(_ request: RouteRequest, topology: Topology) -> RouteDecision? {
        if request.hints["misroute"] == "yes" { return RouteDecision(node: "pg2", reason: .custom(router: "audit", note: "bad")) }
        guard request.operation == .read, request.table == "audit" else { return nil }
        return RouteDecision(node: "pg3", reason: .custom(router: "audit", note: "audit reads"))
    }
}

extension ClusterTests {
    @Suite struct RoutingTests {
        static func makeTable(_ cluster: Cluster, _ test: TestCluster, rows: Int = 20) async throws -> String {
            let table = "rt_" + UUID().uuidString.prefix(8).lowercased()
            try await cluster.execute("create table \(table) (id int primary key, version int not null, note text)")
            try await cluster.execute("insert into \(table) select g, 0, 'row ' || g from generate_series(1, $1) g", [rows])
            // Wait until both replicas have the rows.
            for replica in ["pg2", "pg3"] {
                let ready = try await TestCluster.eventually {
                    try await test.withConnection(replica) { connection in
                        try await connection.query("select count(*) from pg_tables where tablename = $1", [table]).scalar(Int.self) == 1
                    }
                }
                #expect(ready)
            }
            _ = await TestCluster.eventually {
                let topology = await cluster.monitor.probeNow()
                return topology.nodes.allSatisfy { $0.lagBytes == 0 }
            }
            return table
        }

        @Test(arguments: TestCluster.Path.allCases)
        func adminContextKeepsEverythingOnThePrimary(path: TestCluster.Path) async throws {
            try await withRouted(path: path) { cluster, test in
                let table = try await Self.makeTable(cluster, test)
                cluster.log.clear()
                try await RoutingContext.admin.run {
                    for i in 1...50 {
                        if i % 3 == 0 {
                            try await cluster.execute("update \(table) set version = version + 1 where id = $1", [i % 20 + 1])
                        } else {
                            _ = try await cluster.query("select * from \(table) where id = $1", [i % 20 + 1])
                        }
                    }
                }
                let entries = cluster.log.entries
                #expect(entries.count == 50)
                #expect(entries.allSatisfy { $0.node == "pg1" && $0.context == "admin" })
                #expect(entries.contains { $0.reason == "admin → pg1" })
                #expect(entries.contains { $0.reason == "admin write → pg1" })
            }
        }

        @Test(arguments: TestCluster.Path.allCases)
        func publicReadsLandOnReplicasAndWritesOnThePrimary(path: TestCluster.Path) async throws {
            try await withRouted(path: path) { cluster, test in
                let table = try await Self.makeTable(cluster, test)
                cluster.log.clear()
                try await RoutingContext.public.run {
                    for i in 1...30 { _ = try await cluster.query("select * from \(table) where id = $1", [i % 20 + 1]) }
                }
                try await RoutingContext.public.run {
                    try await cluster.execute("update \(table) set note = $1 where id = 1", ["changed"])
                }
                let all = cluster.log.entries
                let reads = all.filter { $0.operation == .read }
                let writes = all.filter { $0.operation == .write }
                #expect(reads.count == 30)
                #expect(reads.allSatisfy { $0.node == "pg2" || $0.node == "pg3" })
                #expect(Set(reads.map(\.node)) == ["pg2", "pg3"], "round-robin should use both replicas")
                #expect(reads.allSatisfy { $0.reason.hasPrefix("public → pg") })
                #expect(writes.map(\.node) == ["pg1"])
            }
        }

        @Test func noContextGoesToThePrimary() async throws {
            try await withRouted { cluster, _ in
                cluster.log.clear()
                #expect(RoutingContext.current == nil)
                let routed = try await cluster.run(.read, "select 1")
                #expect(routed.node == "pg1")
                #expect(routed.reason == .noContext)
                #expect(cluster.log.entries.last?.reason == "no context → pg1 (primary)")
            }
        }

        @Test func customContextAndCustomRouter() async throws {
            try await withRouted(routers: [AuditRouter()]) { cluster, test in
                let table = try await Self.makeTable(cluster, test)
                let reports = RoutingContext(name: "reports", readsFromReplicas: true, maxReplicaLag: .milliseconds(60_000))
                try await reports.run {
                    #expect(RoutingContext.current == reports)
                    let routed = try await cluster.run(.read, "select count(*) from \(table)")
                    #expect(routed.node != "pg1")
                    #expect(cluster.log.entries.last?.context == "reports")
                    let audit = try await cluster.run(.read, "select 1", table: "audit")
                    #expect(audit.node == "pg3")
                    #expect(cluster.log.entries.last?.reason == "audit → pg3 (audit reads)")
                    // A router may not send a write to a replica.
                    let error = await #expect(throws: RoutingError.self) {
                        try await cluster.execute("update \(table) set version = 9 where id = 1", hints: ["misroute": "yes"])
                    }
                    #expect(error?.kind == .writeNotOnPrimary(node: "pg2"))
                }
                let untouched = try await test.withConnection("pg1") {
                    try await $0.query("select version from \(table) where id = 1").scalar(Int.self)
                }
                #expect(untouched == 0)
            }
        }

        @Test func contextPropagatesToChildTasksButNotDetachedTasks() async throws {
            try await withRouted { cluster, _ in
                try await RoutingContext.public.run {
                    async let child = RoutingContext.current
                    #expect(await child == .public)
                    let fromGroup = await withTaskGroup(of: RoutingContext?.self) { group in
                        for _ in 0..<4 { group.addTask { RoutingContext.current } }
                        return await group.reduce(into: []) { $0.append($1) }
                    }
                    #expect(fromGroup == [.public, .public, .public, .public])
                    async let childRead = cluster.run(.read, "select 1")
                    #expect(try await childRead.node != "pg1")
                    let detached = await Task.detached { RoutingContext.current }.value
                    #expect(detached == nil)
                    let detachedRead = try await Task.detached { try await cluster.run(.read, "select 1") }.value
                    #expect(detachedRead.node == "pg1")
                    #expect(detachedRead.reason == .noContext)
                }
            }
        }

        @Test func laggingReplicaIsExcludedThenUsedAgain() async throws {
            try await withRouted { cluster, test in
                let table = try await Self.makeTable(cluster, test)
                try await test.local.delay(node: "pg3", milliseconds: 1500)
                do {
                    // Keep writing so pg3 stays behind.
                    let writer = Task {
                        var i = 0
                        while !Task.isCancelled {
                            i += 1
                            _ = try? await cluster.execute("update \(table) set version = $1 where id = 1", [i])
                            try? await Task.sleep(for: .milliseconds(50))
                        }
                    }
                    defer { writer.cancel() }
                    let behind = await TestCluster.eventually(timeout: .seconds(10)) {
                        let pg3 = await cluster.monitor.probeNow().node("pg3")
                        return (pg3?.lagMilliseconds ?? 0) > 500
                    }
                    #expect(behind, "pg3 never showed lag above 500 ms")
                    cluster.log.clear()
                    try await RoutingContext.public.run {
                        for _ in 1...20 { _ = try await cluster.query("select count(*) from \(table)") }
                    }
                    let reads = cluster.log.entries.filter { $0.operation == .read }
                    #expect(reads.count == 20)
                    #expect(!reads.contains { $0.node == "pg3" }, "pg3 served a read while 1.5 s behind")
                    writer.cancel()
                    try await test.local.delay(node: "pg3", milliseconds: 0)
                    let caughtUp = await TestCluster.eventually(timeout: .seconds(10)) {
                        let pg3 = await cluster.monitor.probeNow().node("pg3")
                        return pg3?.lagBytes == 0
                    }
                    #expect(caughtUp)
                    cluster.log.clear()
                    try await RoutingContext.public.run {
                        for _ in 1...20 { _ = try await cluster.query("select count(*) from \(table)") }
                    }
                    #expect(cluster.log.entries.contains { $0.node == "pg3" }, "pg3 gets reads again once caught up")
                } catch {
                    try? await test.local.delay(node: "pg3", milliseconds: 0)
                    throw error
                }
            }
        }

        @Test(arguments: TestCluster.Path.allCases)
        func lsnTokenMakesReadBacksFreshWhileOtherReadsUseReplicas(path: TestCluster.Path) async throws {
            try await withRouted(selection: .random, path: path) { cluster, test in
                let table = try await Self.makeTable(cluster, test)
                try await test.local.delay(node: "pg3", milliseconds: 200)
                do {
                    cluster.log.clear()
                    var stale = 0
                    for i in 1...200 {
                        try await RoutingContext.public.run {
                            try await cluster.execute("update \(table) set version = $1 where id = $2", [i, i % 20 + 1])
                            #expect(Cluster.currentToken != nil)
                            let version = try await cluster.query("select version from \(table) where id = $1", [i % 20 + 1])
                                .scalar(Int.self)
                            if version != i { stale += 1 }
                        }
                    }
                    #expect(stale == 0, "\(stale) stale read-backs")
                    // Reads with no token still go to replicas.
                    cluster.log.clear()
                    try await RoutingContext.public.run {
                        for _ in 1...20 { _ = try await cluster.query("select count(*) from \(table)") }
                    }
                    #expect(cluster.log.entries.filter { $0.node != "pg1" }.count >= 18)
                } catch {
                    try? await test.local.delay(node: "pg3", milliseconds: 0)
                    throw error
                }
                try await test.local.delay(node: "pg3", milliseconds: 0)
            }
        }

        @Test func replayGuardRunsTheReadOnlyWhereTheTokenWasReplayed() async throws {
            try await withRouted(selection: .random) { cluster, test in
                let table = try await Self.makeTable(cluster, test)
                try await test.local.delay(node: "pg3", milliseconds: 1000)
                do {
                    let read = "select version from \(table) where id = $1"
                    // pg3 replays a second late (once its startup process has read the new
                    // setting): the guard stops the read before it runs.
                    var token = LSN(0)
                    var behind: PostgresConnection.GuardedResult = .behind(replayed: nil)
                    for attempt in 1...20 {
                        token = try await RoutingContext.public.run { () -> LSN in
                            try await cluster.execute("update \(table) set version = 77 where id = 3")
                            return try #require(Cluster.currentToken).lsn
                        }
                        behind = try await test.withConnection("pg3") { try await $0.query(read, [3], ifReplayed: token) }
                        if case .behind = behind { break }
                        #expect(attempt < 20, "pg3 never fell behind")
                        try await Task.sleep(for: .milliseconds(250))
                    }
                    guard case .behind(let replayed) = behind else { Issue.record("pg3 served \(behind)"); return }
                    #expect(replayed != nil && replayed! < token)
                    // The primary is no standby: never "replayed", so never served by a guard.
                    let primary = try await test.withConnection("pg1") { try await $0.query(read, [3], ifReplayed: token) }
                    guard case .behind(nil) = primary else { Issue.record("the primary passed the guard: \(primary)"); return }
                    // Once pg3 has replayed the write, the guarded read runs there and sees it.
                    let served = try await TestCluster.eventually(timeout: .seconds(10)) {
                        let outcome = try await test.withConnection("pg3") { try await $0.query(read, [3], ifReplayed: token) }
                        if case .served(let result, let replayed) = outcome {
                            return try result.scalar(Int.self) == 77 && replayed! >= token
                        }
                        return false
                    }
                    #expect(served)
                    // A read after an error in the guard's pipeline leaves the connection usable.
                    try await test.withConnection("pg3") { connection in
                        _ = try await connection.query(read, [3], ifReplayed: LSN("FFFFFFFF/FFFFFFFF")!)
                        #expect(try await connection.query("select 1").scalar(Int.self) == 1)
                    }
                } catch {
                    try? await test.local.delay(node: "pg3", milliseconds: 0)
                    throw error
                }
                try await test.local.delay(node: "pg3", milliseconds: 0)
            }
        }

        /// 4 visitors × 500: each saves its own row of `table` and at once reads it back in
        /// the same public request. Read-backs that showed an older version, and those a
        /// replica served.
        static func hammerReadBacks(_ cluster: Cluster, table: String) async throws -> (stale: Int, onReplicas: Int) {
            try await withThrowingTaskGroup(of: (stale: Int, onReplicas: Int).self) { group in
                for visitor in 1...4 {
                    group.addTask {
                        var stale = 0, onReplicas = 0
                        for i in 1...500 {
                            try await RoutingContext.public.run {
                                try await cluster.execute("update \(table) set version = $1 where id = $2", [i, visitor])
                                let routed = try await cluster.run(.read, "select version from \(table) where id = $1", [visitor])
                                if try routed.result.scalar(Int.self) != i { stale += 1 }
                                if routed.node != "pg1" { onReplicas += 1 }
                            }
                        }
                        return (stale, onReplicas)
                    }
                }
                return try await group.reduce(into: (stale: 0, onReplicas: 0)) { $0.stale += $1.stale; $0.onReplicas += $1.onReplicas }
            }
        }

        @Test(arguments: TestCluster.Path.allCases)
        func hammeredReadBacksAreNeverStaleAndReplicasServeSomeThroughTheGuard(path: TestCluster.Path) async throws {
            try await withRouted(selection: .random, path: path) { cluster, test in
                let table = try await Self.makeTable(cluster, test)
                try await test.local.delay(node: "pg3", milliseconds: 200)
                do {
                    cluster.log.clear()
                    let (stale, onReplicas) = try await Self.hammerReadBacks(cluster, table: table)
                    #expect(stale == 0, "\(stale) of 2000 read-backs were stale")
                    #expect(onReplicas > 0, "no read-back was served by a replica")
                    let guarded = cluster.log.entries.filter { $0.reason.contains("replay guard") }
                    #expect(!guarded.isEmpty, "no read went out with a replay guard")
                    // A guard that found its replica behind is logged as such, with the token.
                    let fellBack = cluster.log.entries.filter { $0.code == "guard-fb" }
                    #expect(!fellBack.isEmpty, "no guarded read fell back to the primary")
                    #expect(fellBack.allSatisfy { $0.node == "pg1" && $0.reason.contains("replay guard on pg") && $0.tokenBefore != nil },
                            "\(fellBack.prefix(3).map(\.reason))")
                    #expect(guarded.filter { $0.code == "guarded" }.allSatisfy { $0.node != "pg1" })
                } catch {
                    try? await test.local.delay(node: "pg3", milliseconds: 0)
                    throw error
                }
                try await test.local.delay(node: "pg3", milliseconds: 0)
            }
        }

        /// The guard passes on a replica that has replayed the position only in a session
        /// that reads committed (read uncommitted is the same in PostgreSQL), never under
        /// repeatable read, whose snapshot would predate its look at the replay position.
        @Test func theReplayGuardPassesOnlyWhereEachStatementHasItsOwnSnapshot() async throws {
            let test = try TestCluster.shared()
            for (isolation, passes) in [("read committed", true), ("read uncommitted", true), ("repeatable read", false)] {
                let outcome = try await test.withConnection("pg2") { connection in
                    _ = try await connection.query("select set_config('default_transaction_isolation', $1, false)", [isolation])
                    return try await connection.query("select 1", ifReplayed: LSN(0))
                }
                switch outcome {
                case .served: #expect(passes, "the guard passed under \(isolation)")
                case .behind: #expect(!passes, "the guard refused under \(isolation)")
                }
            }
        }

        /// With a stricter default isolation the guard's statement would take the
        /// transaction's snapshot before it looks at the replay position, and the read
        /// would share it: under repeatable read no read-back may be stale either.
        @Test func readBacksStayFreshUnderRepeatableReadByDefault() async throws {
            let test = try TestCluster.shared()
            var configuration = ClusterConfiguration(
                name: "rr",
                nodes: try test.nodes.map { node in
                    NodeEndpoint(
                        name: node.name,
                        conninfo: try test.conninfo(node.name) + " options='-c default_transaction_isolation=repeatable\\\\ read'")
                })
            configuration.replicaSelection = .random
            configuration.monitorInterval = .milliseconds(250)
            let cluster = try Cluster(configuration: configuration)
            await cluster.start()
            try await ensuring {
                let table = try await Self.makeTable(cluster, test)
                #expect(try await cluster.query("show transaction_isolation").scalar(String.self) == "repeatable read")
                let (stale, _) = try await Self.hammerReadBacks(cluster, table: table)
                #expect(stale == 0, "\(stale) of 2000 read-backs were stale under repeatable read")
            } finally: {
                await cluster.shutdown()
            }
        }

        /// A write whose transaction fails only at its commit (a deferred constraint) is an
        /// error, not a success with a token; a statement that cannot run inside a
        /// transaction block still runs, and still yields a token.
        @Test(arguments: TestCluster.Path.allCases)
        func writesFailingAtCommitFailAndTransactionlessStatementsRun(path: TestCluster.Path) async throws {
            try await withRouted(path: path) { cluster, test in
                let table = try await Self.makeTable(cluster, test, rows: 3)
                let child = table + "_child"
                try await cluster.execute(
                    "create table \(child) (id int primary key, parent int references \(table) (id) deferrable initially deferred)")
                try await RoutingContext.public.run {
                    await #expect(throws: PostgresError.self) {
                        try await cluster.execute("insert into \(child) values (1, 999)")
                    }
                    #expect(Cluster.currentToken == nil, "a failed write gave a token")
                    try await cluster.execute("insert into \(child) values (2, 1)")
                    let token = try #require(Cluster.currentToken)
                    try await cluster.execute("vacuum \(child)")
                    try await cluster.execute("create index concurrently on \(child) (parent)")
                    let after = try #require(Cluster.currentToken)
                    #expect(after.lsn > token.lsn)
                }
                // Without a context (on the primary, no token), first on its connection and again.
                for _ in 1...2 {
                    await #expect(throws: PostgresError.self) {
                        try await cluster.execute("insert into \(child) values (3, 998)")
                    }
                }
                let rows = try await cluster.query("select id from \(child) order by id").rows.map { try $0.decode(0, as: Int.self) }
                #expect(rows == [2])
                let indexes = try await cluster.query("select count(*) from pg_indexes where tablename = $1", [child]).scalar(Int.self)
                #expect(indexes == 2)
            }
        }

        @Test func tokenTravelsAsAString() async throws {
            try await withRouted(selection: .random) { cluster, test in
                let table = try await Self.makeTable(cluster, test)
                try await test.local.delay(node: "pg3", milliseconds: 1500)
                do {
                    let carried: String = try await RoutingContext.public.run {
                        try await cluster.execute("update \(table) set version = 42 where id = 5")
                        return try #require(Cluster.currentToken).description
                    }
                    #expect(carried.hasPrefix("sy1:"))
                    let token = try #require(ConsistencyToken(carried))
                    #expect(token.description == carried)
                    #expect(ConsistencyToken("garbage") == nil)
                    // "Another process": a fresh context that starts from the carried token.
                    for _ in 1...10 {
                        let (version, node, reason) = try await RoutingContext.public.run(token: token) {
                            let routed = try await cluster.run(.read, "select version from \(table) where id = 5")
                            return (try routed.result.scalar(Int.self), routed.node, routed.reason)
                        }
                        #expect(version == 42)
                        // pg3 (1.5 s behind) serves a read carrying the token only through a
                        // replay guard that found the token replayed.
                        if node == "pg3", case .guarded = reason {} else { #expect(node != "pg3", "pg3 served without a guard: \(reason)") }
                    }
                } catch {
                    try? await test.local.delay(node: "pg3", milliseconds: 0)
                    throw error
                }
                try await test.local.delay(node: "pg3", milliseconds: 0)
            }
        }

        @Test func aTokenAheadOfThePrimaryIsDroppedNotObeyedForever() async throws {
            try await withRouted(selection: .roundRobin) { cluster, test in
                let table = try await Self.makeTable(cluster, test)
                let forged = try #require(ConsistencyToken("sy1:FFFFFFFF/FFFFFFFF"))
                let nodes = try await RoutingContext.public.run(token: forged) { () -> [String] in
                    var nodes: [String] = []
                    for _ in 1...6 { nodes.append(try await cluster.run(.read, "select 1 from \(table) where id = 1").node) }
                    #expect(Cluster.currentToken == nil, "the forged token was kept")
                    return nodes
                }
                #expect(nodes.contains { $0 != "pg1" }, "reads stayed pinned to the primary: \(nodes)")
                // A real token from this cluster is kept.
                let real = try await RoutingContext.public.run { () -> ConsistencyToken in
                    try await cluster.execute("update \(table) set version = 7 where id = 1")
                    return try #require(Cluster.currentToken)
                }
                let kept = try await RoutingContext.public.run(token: real) { () -> ConsistencyToken? in
                    _ = try await cluster.run(.read, "select version from \(table) where id = 1")
                    return Cluster.currentToken
                }
                #expect(kept == real)
                // Writing first: the forged token must not outlive the write and hide its
                // position from the read-back.
                let afterWrite = try await RoutingContext.public.run(token: forged) { () -> ConsistencyToken? in
                    try await cluster.execute("update \(table) set version = 8 where id = 1")
                    return Cluster.currentToken
                }
                #expect(afterWrite != nil && afterWrite != forged, "after a write: \(String(describing: afterWrite))")
                #expect((afterWrite?.lsn ?? LSN(0)) >= real.lsn)
            }
        }

        @Test func copyIsRefusedInEveryContextAndNothingSpins() async throws {
            try await withRouted { cluster, test in
                let table = try await Self.makeTable(cluster, test)
                let clock = ContinuousClock()
                for context in [nil, RoutingContext.admin, RoutingContext.public] {
                    for write in [true, false] {
                        let started = clock.now
                        let statement = "copy \(table) to stdout"
                        let attempt: () async throws -> Void = {
                            if write { try await cluster.execute(statement) } else { _ = try await cluster.query(statement) }
                        }
                        let error = await #expect(throws: PostgresError.self) {
                            if let context { try await context.run { try await attempt() } } else { try await attempt() }
                        }
                        #expect(error?.message.contains("COPY is not supported") == true)
                        #expect(clock.now - started < .seconds(5), "COPY (\(context?.name ?? "no context"), write \(write)) hung")
                        // The pools still serve statements afterwards.
                        #expect(try await cluster.query("select count(*)::int from \(table)").scalar(Int.self) == 20)
                    }
                }
            }
        }

        @Test(arguments: TestCluster.Path.allCases)
        func aCancelledTransactionRollsBackAndLeavesThePoolClean(path: TestCluster.Path) async throws {
            try await withRouted(path: path) { cluster, test in
                let table = try await Self.makeTable(cluster, test)
                let locked = AsyncStream<Void>.makeStream()
                let holder = Task {
                    try await cluster.transaction { transaction in
                        try await transaction.execute("update \(table) set version = version + 1 where id = 1")
                        locked.continuation.yield()
                        try await Task.sleep(for: .seconds(30))
                    }
                }
                var iterator = locked.stream.makeAsyncIterator()
                _ = await iterator.next()
                holder.cancel()
                _ = await holder.result
                // The row lock is gone at once: another session can take it without waiting.
                let free = try await test.withConnection("pg1") { connection in
                    try await connection.query("select id from \(table) where id = 1 for update nowait").rowCount
                }
                #expect(free == 1)
                // The next 100 statements on the same pools commit.
                for index in 1...100 {
                    try await cluster.execute("update \(table) set note = $1 where id = 2", ["n\(index)"])
                }
                let note = try await test.withConnection("pg1") { try await $0.query("select note from \(table) where id = 2").scalar(String.self) }
                #expect(note == "n100")
                let version = try await test.withConnection("pg1") { try await $0.query("select version from \(table) where id = 1").scalar(Int.self) }
                #expect(version == 0, "the cancelled transaction's update was committed")
            }
        }

        @Test func aReadThePrimaryMayHaveRunIsNotRetried() async throws {
            try await withRouted { cluster, test in
                let sequence = "seq_" + UUID().uuidString.prefix(8).lowercased()
                try await cluster.execute("create sequence \(sequence)")
                let reader = Task {
                    try await RoutingContext.admin.run {
                        try await cluster.query("select pg_sleep(1.5), nextval('\(sequence)')")
                    }
                }
                // Kill the session while the statement runs: it was sent, and may have run.
                let killed = await TestCluster.eventually(timeout: .seconds(5)) {
                    let count = try? await test.withConnection("pg1") { connection in
                        try await connection.query(
                            "select count(pg_terminate_backend(pid))::int from pg_stat_activity where query like $1 and pid <> pg_backend_pid()",
                            ["select pg_sleep(1.5), nextval%"]).scalar(Int.self)
                    }
                    return (count ?? 0) > 0
                }
                #expect(killed)
                let error = await #expect(throws: PostgresError.self) { try await reader.value }
                #expect(error?.kind == .connectionLost)
                let calls = try await test.withConnection("pg1") {
                    try await $0.query("select last_value::int, is_called from \(sequence)").first.map { try $0.decode(0, as: Int.self) }
                }
                #expect(calls == 1, "nextval ran \(calls ?? 0) times: the read was retried")
            }
        }

        /// A public read a router placed on the primary, killed mid-statement: a replica could
        /// run it again (it is only volatile), yet it was sent once already — no retry.
        @Test func aPublicReadLostOnThePrimaryIsNotRunAgainOnAReplica() async throws {
            try await withRouted(routers: [ReadsOnPrimary()]) { cluster, test in
                let reader = Task {
                    try await RoutingContext.public.run {
                        try await cluster.run(.read, "select pg_sleep(1.5), clock_timestamp()", hints: ["primary": "yes"])
                    }
                }
                let killed = await TestCluster.eventually(timeout: .seconds(5)) {
                    let count = try? await test.withConnection("pg1") { connection in
                        try await connection.query(
                            "select count(pg_terminate_backend(pid))::int from pg_stat_activity where query like $1 and pid <> pg_backend_pid()",
                            ["select pg_sleep(1.5), clock_timestamp()%"]).scalar(Int.self)
                    }
                    return (count ?? 0) > 0
                }
                #expect(killed)
                let error = await #expect(throws: PostgresError.self, "the read was run again elsewhere") { try await reader.value }
                #expect(error?.kind == .connectionLost)
            }
        }

        @Test func terminatedPooledConnectionsAreReplacedWithoutMarkingThePrimaryDown() async throws {
            try await withRouted { cluster, test in
                let table = try await Self.makeTable(cluster, test)
                // Warm the primary's pool, then kill every pooled session behind its back.
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for index in 1...4 {
                        group.addTask { try await cluster.execute("update \(table) set note = $1 where id = $2", ["warm", index]) }
                    }
                    try await group.waitForAll()
                }
                let terminated = try await test.withConnection("pg1") { connection in
                    try await connection.query(
                        "select count(pg_terminate_backend(pid))::int from pg_stat_activity where application_name = 'switchyard' and pid <> pg_backend_pid()"
                    ).scalar(Int.self)
                }
                #expect((terminated ?? 0) > 0)
                try await Task.sleep(for: .milliseconds(100))
                // Writes and primary reads go on at once: the dead sessions are found before
                // anything is sent to them, replaced, and the primary is not marked down.
                for index in 1...20 {
                    try await cluster.execute("update \(table) set note = $1 where id = 3", ["after \(index)"])
                    let note = try await RoutingContext.admin.run {
                        try await cluster.query("select note from \(table) where id = 3").scalar(String.self)
                    }
                    #expect(note == "after \(index)")
                }
                #expect(cluster.monitor.topology.primary?.name == "pg1")
                #expect(!cluster.log.entries.contains { $0.error != nil }, "a statement failed")
            }
        }

        @Test func idleClusterReadsZeroLag() async throws {
            try await withRouted { cluster, _ in
                try await cluster.execute("select pg_switch_wal()")
                try await Task.sleep(for: .seconds(5))
                let topology = await cluster.monitor.probeNow()
                for node in topology.nodes {
                    #expect(node.reachable)
                    #expect(node.lagBytes == 0, "\(node.name) lag bytes \(String(describing: node.lagBytes))")
                    #expect(node.lagSeconds == 0, "\(node.name) lag seconds \(String(describing: node.lagSeconds))")
                }
                #expect(topology.primary?.name == "pg1")
                #expect(topology.node("pg2")?.walReceiverStatus == "streaming")
                #expect(topology.replication.map(\.applicationName).sorted() == ["pg2", "pg3"])
                #expect(cluster.monitor.history(of: "pg2").count >= 5)
            }
        }

        @Test func replicaStoppedMidTrafficCostsNoRead() async throws {
            try await withRouted(selection: .roundRobin) { cluster, test in
                let table = try await Self.makeTable(cluster, test)
                cluster.log.clear()
                let clock = ContinuousClock()
                let deadline = clock.now + .seconds(4)
                let readers = PublicReaders(cluster: cluster, sql: "select count(*) from \(table)", count: 4) { clock.now >= deadline }
                try await Task.sleep(for: .seconds(1))
                let stoppedAt = clock.now
                try await test.local.stop(node: "pg2", mode: .immediate)
                let markedDown = await TestCluster.eventually(timeout: .seconds(5)) {
                    cluster.monitor.topology.node("pg2")?.reachable == false
                }
                let detection = clock.now - stoppedAt
                #expect(markedDown)
                #expect(detection <= .milliseconds(250 + 1000), "pg2 marked down after \(detection)")
                let (ok, failed) = await readers.results()
                #expect(failed == 0, "\(failed) reads failed")
                #expect(ok > 100)
                let retries = cluster.log.entries.filter { $0.reason.hasPrefix("retry: pg2") }
                #expect(!retries.isEmpty, "the log shows no retry")
                #expect(retries.allSatisfy { $0.error == nil && $0.node != "pg2" })
                try await test.local.start(node: "pg2")
                try await test.waitForStreaming()
            }
        }

        @Test func parameterValuesNeverReachTheLog() async throws {
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("sy-log-\(UUID().uuidString).jsonl").path
            defer { try? FileManager.default.removeItem(atPath: file) }
            let secret = "card-4111-1111-1111-1111"
            try await withRouted(logFile: file) { cluster, test in
                let table = try await Self.makeTable(cluster, test)
                try await RoutingContext.admin.run {
                    try await cluster.execute("update \(table) set note = $1 where id = 1", [secret])
                    _ = try await cluster.query("select * from \(table) where note = $1", [secret])
                    _ = try? await cluster.query("select $1::int", [secret])
                }
                let entries = cluster.log.entries
                #expect(entries.count >= 3)
                #expect(entries.contains { $0.sql.contains("set note = $1") })
                for entry in entries {
                    #expect(!entry.sql.contains(secret) && !entry.reason.contains(secret) && !(entry.error ?? "").contains(secret))
                }
                cluster.log.close()
                let text = try String(contentsOfFile: file, encoding: .utf8)
                let lines = text.split(separator: "\n")
                #expect(lines.count == entries.count)
                #expect(!text.contains(secret))
                let decoder = JSONDecoder()
                decoder.dateDecodingStrategy = .iso8601
                let decoded = try lines.map { try decoder.decode(QueryLogEntry.self, from: Data($0.utf8)) }
                #expect(decoded.map(\.id) == entries.map(\.id))
                #expect(decoded.contains { $0.error?.contains("22P02") == true })
            }
        }

        /// A single statement that opens a transaction would leave its pooled connection
        /// inside it: refused on every path, with what to use. Behind a transaction pooler,
        /// statements that leave state on the server session are refused too; their
        /// transaction-scoped forms work.
        @Test(arguments: TestCluster.Path.allCases)
        func statementsThatNeedASessionAreRefusedWithTheReason(path: TestCluster.Path) async throws {
            try await withRouted(path: path) { cluster, test in
                let begin = await #expect(throws: RoutingError.self) { try await cluster.execute("begin") }
                #expect(begin?.kind == .refused)
                #expect(begin?.message.contains("Cluster.transaction") == true)
                for sql in ["set search_path = nowhere", "select set_config('search_path', 'nowhere', false)", "listen x",
                            "select pg_advisory_lock(7)", "prepare q as select 1"] {
                    if path == .pgbouncer {
                        let error = await #expect(throws: RoutingError.self, "\(sql)") { try await cluster.execute(sql) }
                        #expect(error?.message.contains("transaction pooler") == true, "\(error?.message ?? "")")
                    }
                }
                // Transaction-scoped settings work on both paths and end with the transaction.
                let seen = try await cluster.transaction { tx in
                    try await tx.execute("set local application_name = 'in-transaction'")
                    _ = try await tx.query("select set_config('switchyard.test', 'yes', true)")
                    return try await tx.query("select current_setting('application_name') || '/' || current_setting('switchyard.test')")
                        .scalar(String.self)
                }
                #expect(seen == "in-transaction/yes")
                if path == .pgbouncer {
                    await #expect(throws: RoutingError.self) {
                        try await cluster.transaction { tx in try await tx.execute("set search_path = nowhere") }
                    }
                }
                // Many more statements than pooled server sessions: every one goes unnamed,
                // so none finds a prepared statement missing on another session.
                let table = try await Self.makeTable(cluster, test)
                for i in 1...60 { _ = try await cluster.query("select note from \(table) where id = $1", [i % 20 + 1]) }
            }
        }

        @Test(arguments: TestCluster.Path.allCases)
        func transactionReadsHitThePrimaryAndThrowRollsBack(path: TestCluster.Path) async throws {
            try await withRouted(path: path) { cluster, test in
                let table = try await Self.makeTable(cluster, test)
                cluster.log.clear()
                struct Abort: Error {}
                try await RoutingContext.public.run {
                    await #expect(throws: Abort.self) {
                        try await cluster.transaction { tx in
                            try await tx.execute("update \(table) set version = 99 where id = 2")
                            let seen = try await tx.query("select version from \(table) where id = 2").scalar(Int.self)
                            #expect(seen == 99)
                            throw Abort()
                        }
                    }
                    let committed = try await cluster.transaction { tx -> Int? in
                        try await tx.execute("update \(table) set version = 7 where id = 3")
                        return try await tx.query("select version from \(table) where id = 3").scalar(Int.self)
                    }
                    #expect(committed == 7)
                    #expect(Cluster.currentToken != nil)
                }
                let entries = cluster.log.entries
                #expect(entries.allSatisfy { $0.node == "pg1" && $0.reason == "transaction → pg1" })
                #expect(entries.map(\.sql).contains("rollback"))
                let versions = try await test.withConnection("pg1") { connection in
                    try await connection.query("select id, version from \(table) where id in (2, 3) order by id").rows
                        .map { try $0.decode(1, as: Int.self) }
                }
                #expect(versions == [0, 7])
            }
        }
    }
}

extension ClusterTests.RoutingTests {
    @Test func killedReplicaPostmasterCostsNoReadAndIsUsedAgainAfterRestart() async throws {
        try await withRouted(selection: .roundRobin) { cluster, test in
            let table = try await Self.makeTable(cluster, test)
            let clock = ContinuousClock()
            let stopReaders = ManagedFlag()
            defer { stopReaders.set() }
            let readers = PublicReaders(cluster: cluster, sql: "select count(*) from \(table)", count: 4) { stopReaders.isSet }
            try await Task.sleep(for: .milliseconds(500))
            let dataDirectory = test.local.dataDirectory(try test.node("pg2"))
            let pidText = try String(contentsOf: dataDirectory.appendingPathComponent("postmaster.pid"), encoding: .utf8)
            let pid = try #require(pid_t(pidText.split(separator: "\n")[0]))
            let killedAt = clock.now
            kill(pid, SIGKILL)
            let skipped = await TestCluster.eventually(timeout: .seconds(5)) { cluster.monitor.topology.node("pg2")?.reachable == false }
            #expect(skipped)
            #expect(clock.now - killedAt <= .milliseconds(250 + 1000), "pg2 marked down after \(clock.now - killedAt)")
            try await Task.sleep(for: .milliseconds(500))
            // Restart once the killed postmaster is really gone, then wait for it to catch up.
            let gone = await TestCluster.eventually(timeout: .seconds(10)) {
                (try? await test.local.status())?.first { $0.node.name == "pg2" }?.running == false
            }
            #expect(gone)
            let restarted = await TestCluster.eventually(timeout: .seconds(20)) {
                (try? await test.local.start(node: "pg2")) != nil
            }
            #expect(restarted)
            try await test.waitForStreaming()
            let usedAgain = await TestCluster.eventually(timeout: .seconds(10)) {
                cluster.log.tail(50).contains { $0.node == "pg2" && $0.error == nil }
            }
            stopReaders.set()
            let (ok, failed) = await readers.results()
            #expect(failed == 0, "\(failed) reads failed")
            #expect(ok > 100)
            #expect(usedAgain, "pg2 serves reads again after restart")
        }
    }
}

/// A flag tasks can poll.
final class ManagedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}

/// Tasks reading in the public context until `done` says stop, counting failures.
struct PublicReaders {
    let tasks: [Task<(ok: Int, failed: Int), Never>]

    init(cluster: Cluster, sql: String, count: Int, until done: @escaping @Sendable () -> Bool) {
        tasks = (0..<count).map { _ in
            Task {
                var ok = 0, failed = 0
                await RoutingContext.public.run {
                    while !done() {
                        do {
                            _ = try await cluster.query(sql)
                            ok += 1
                        } catch {
                            failed += 1
                        }
                    }
                }
                return (ok, failed)
            }
        }
    }

    /// Waits for every reader; total successful and failed reads.
    func results() async -> (ok: Int, failed: Int) {
        var total = (ok: 0, failed: 0)
        for task in tasks {
            let result = await task.value
            total.ok += result.ok
            total.failed += result.failed
        }
        return total
    }
}
