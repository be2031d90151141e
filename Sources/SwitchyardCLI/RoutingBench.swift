import Foundation
import LocalCluster
import PostgresClient
import Switchyard
import Synchronization

/// Routing overhead: the cost of one decision, and routed against raw `SELECT 1`.
struct RoutingBench {
    let configuration: ClusterConfiguration
    let seconds: Double
    let decisions: Int
    /// Where the routed cluster's metrics and spans go (`--telemetry`).
    var telemetry = Telemetry()

    struct Report: Encodable {
        var decisionMedianNs: Double
        /// What the telemetry adds around each routed statement (span, counter,
        /// histogram), measured apart from any I/O.
        var telemetryNsPerStatement: Double
        var decisionP99Ns: Double
        var rawSelectsPerSecond: Double
        var routedSelectsPerSecond: Double
        var ratio: Double
        /// Spread (standard deviation) across slices of each rate, and of routed/raw
        /// taken round by round.
        var rawSelectsPerSecondSpread: Double
        var routedSelectsPerSecondSpread: Double
        var pooledSelectsPerSecondSpread: Double
        var ratioSpread: Double
        var slices: Int
        /// This process's CPU time (user + system) per statement in each loop.
        var rawCPUMicrosecondsPerSelect: Double
        var routedCPUMicrosecondsPerSelect: Double
        /// The user-space part of the above.
        var rawUserMicrosecondsPerSelect: Double
        var routedUserMicrosecondsPerSelect: Double
        /// The middle layer: a pooled connection of the primary's pool (checkout, the
        /// statement, return), no routing — what routing adds is routed less pooled.
        var pooledSelectsPerSecond: Double
        var pooledCPUMicrosecondsPerSelect: Double
        var pooledUserMicrosecondsPerSelect: Double
        /// What the routed path adds, piece by piece (no statement sent): pool checkout
        /// and return (with its liveness poll), and one query-log record.
        var poolCheckoutNs: Double
        /// Waits handed to the poller per statement (0: the caller's thread waited itself).
        var rawHandOffsPerSelect: Double
        var routedHandOffsPerSelect: Double
        var logRecordNs: Double
        /// pgbench, 1 client, simple protocol, `select 1`, in the same rounds; nil when
        /// pgbench is not installed.
        var pgbenchSelectsPerSecond: Double?
        var rawVsPgbench: Double?
        /// Resident memory 200 open pooled connections add to the process.
        var pooledConnections: Int
        var pooledConnectionsRSSMegabytes: Double?
        var node: String
        /// With a pooler in the configured path: routed `SELECT 1` straight to the server
        /// (`monitor_conninfo`), in the same slices, and the pooled path's share of it.
        var directRoutedSelectsPerSecond: Double?
        var pooledVsDirect: Double?

        func table() -> String {
            var lines = [
                String(format: "routing decision: median %.0f ns, p99 %.0f ns (public read, batches of 1000)", decisionMedianNs, decisionP99Ns),
                String(format: "telemetry per routed statement (span + counter + histogram, no I/O): %.1f ns", telemetryNsPerStatement),
                String(format: "SELECT 1 on %@: raw PostgresClient %.0f ± %.0f/s, routed (admin context) %.0f ± %.0f/s, routed/raw %.3f ± %.3f (%d slices)",
                       node, rawSelectsPerSecond, rawSelectsPerSecondSpread, routedSelectsPerSecond, routedSelectsPerSecondSpread, ratio,
                       ratioSpread, slices),
                String(format: "CPU of this process per SELECT 1: raw %.1f µs (user %.1f), routed %.1f µs (user %.1f)",
                       rawCPUMicrosecondsPerSelect, rawUserMicrosecondsPerSelect, routedCPUMicrosecondsPerSelect,
                       routedUserMicrosecondsPerSelect),
                String(
                    format: "CPU per SELECT 1 by layer: raw %.1f µs, + pool %.1f µs (%.0f ± %.0f/s), + routing %.1f µs; user time: raw %.1f µs, + pool %.1f µs, + routing %.1f µs",
                    rawCPUMicrosecondsPerSelect, pooledCPUMicrosecondsPerSelect - rawCPUMicrosecondsPerSelect, pooledSelectsPerSecond,
                    pooledSelectsPerSecondSpread,
                    routedCPUMicrosecondsPerSelect - pooledCPUMicrosecondsPerSelect, rawUserMicrosecondsPerSelect,
                    pooledUserMicrosecondsPerSelect - rawUserMicrosecondsPerSelect, routedUserMicrosecondsPerSelect - pooledUserMicrosecondsPerSelect),
                String(format: "routed path pieces: pool checkout + return %.0f ns, query-log record %.0f ns", poolCheckoutNs, logRecordNs),
                String(format: "hand-offs per SELECT 1: raw %.3f, routed %.3f", rawHandOffsPerSelect, routedHandOffsPerSelect),
            ]
            if let pgbenchSelectsPerSecond, let rawVsPgbench {
                lines.append(String(format: "pgbench (1 client, simple protocol) %.0f/s, raw/pgbench %.3f", pgbenchSelectsPerSecond, rawVsPgbench))
            } else {
                lines.append("pgbench: not found (install postgresql-contrib or put pgbench on PATH)")
            }
            if let directRoutedSelectsPerSecond, let pooledVsDirect {
                lines.append(String(
                    format: "through the pooler vs straight to the server: routed %.0f/s vs %.0f/s, %.3f", routedSelectsPerSecond,
                    directRoutedSelectsPerSecond, pooledVsDirect))
            }
            if let pooledConnectionsRSSMegabytes {
                lines.append(String(format: "%d pooled connections: %.1f MB resident beyond the process baseline", pooledConnections, pooledConnectionsRSSMegabytes))
            }
            return lines.joined(separator: "\n")
        }

        func json() throws -> String {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            return String(decoding: try encoder.encode(self), as: UTF8.self)
        }
    }

    func run() async throws -> Report {
        var configuration = configuration
        configuration.queryLogCapacity = 1000
        configuration.queryLogFile = nil
        let cluster = try Cluster(configuration: configuration, telemetry: telemetry)
        await cluster.start()
        // With a pooler in the way, the same cluster straight to the servers, to compare.
        var direct: Cluster?
        if configuration.nodes.contains(where: { $0.conninfo != $0.monitorConninfo }) {
            var straight = configuration
            straight.nodes = configuration.nodes.map(\.direct)
            direct = try Cluster(configuration: straight)
            await direct?.start()
        }
        do {
            let report = try await measure(cluster, direct: direct)
            await cluster.shutdown()
            await direct?.shutdown()
            return report
        } catch {
            await cluster.shutdown()
            await direct?.shutdown()
            throw error
        }
    }

    private func measure(_ cluster: Cluster, direct: Cluster?) async throws -> Report {
        let topology = cluster.monitor.topology
        guard let primary = topology.primary, let endpoint = configuration.nodes.first(where: { $0.name == primary.name })
        else { throw RoutingError.noPrimary(topology) }

        // Decision time: the default router on a public read, timed in batches.
        let request = RouteRequest(operation: .read, context: .public)
        let clock = ContinuousClock()
        var perCall: [Double] = []
        let batch = 1000
        var sink = 0
        for _ in 0..<max(decisions / batch, 1) {
            let started = clock.now
            for _ in 0..<batch {
                if let decision = cluster.defaultRouter.route(request, topology: topology) { sink &+= decision.node.utf8.count }
            }
            perCall.append((clock.now - started).nanoseconds / Double(batch))
        }
        precondition(sink > 0)
        perCall.sort()

        // Throughput: one client, back to back, raw, pooled and routed alternating in
        // short slices so that drift on a busy machine hits them alike, all on the same
        // pooled connection (one client thread, one server process).
        let slices = max(Int(seconds / 0.25), 2)
        let slice = Duration.milliseconds(Int(seconds * 1000) / slices)
        let pgbench = await Self.pgbenchPath()
        let pool = cluster.pool(primary.name)!
        var rawArm = Arm(), routedArm = Arm(), pooledArm = Arm()
        var pgbenchCount = 0.0, directCount = 0.0
        try await RoutingContext.admin.run {
            for round in 0..<slices {
                // The three layers in a rotating order, so none always runs first.
                for step in 0..<3 {
                    switch (round + step) % 3 {
                    case 0:
                        // The pool's own connection, held for the slice: the three layers
                        // talk to one server process, so where the scheduler placed a
                        // server process cannot tell them apart.
                        try await pool.withConnection { connection in
                            try await rawArm.measure(for: slice / 2) { _ = try await connection.query("select 1") }
                        }
                    case 1: try await routedArm.measure(for: slice / 2) { _ = try await cluster.query("select 1") }
                    default: try await pooledArm.measure(for: slice / 2) { _ = try await pool.withConnection { try await $0.query("select 1") } }
                    }
                }
                if let direct { directCount += try await Self.loop(for: slice / 2) { _ = try await direct.query("select 1") } }
                if let pgbench {
                    pgbenchCount += try await Self.pgbench(
                        pgbench, conninfo: endpoint.conninfo, transactions: max(Int(rawArm.lastRate * (slice / 2).seconds), 100))
                }
            }
        }
        // The routed path's pieces, without a statement.
        let pieces = 20_000
        var started = clock.now
        for _ in 0..<pieces { try await pool.withConnection { _ in } }
        let poolNs = (clock.now - started).nanoseconds / Double(pieces)
        started = clock.now
        for _ in 0..<pieces {
            cluster.log.record(
                context: "admin", operation: .read, node: primary.name, reason: .primaryContext(context: "admin", operation: .read),
                duration: .microseconds(50), rows: 1, error: nil, sql: "select 1")
        }
        let logNs = (clock.now - started).nanoseconds / Double(pieces)
        let rawRate = rawArm.rates / Double(slices)
        let routed = routedArm.rates / Double(slices)
        let pgbenchRate = pgbench == nil ? nil : pgbenchCount / Double(slices)
        let pooled = 200
        let memory = try await Self.residentGrowth(opening: pooled, conninfo: endpoint.conninfo)
        return Report(
            decisionMedianNs: perCall[perCall.count / 2],
            telemetryNsPerStatement: telemetry.costPerStatement(node: endpoint).nanoseconds,
            decisionP99Ns: perCall[min(perCall.count - 1, perCall.count * 99 / 100)],
            rawSelectsPerSecond: rawRate, routedSelectsPerSecond: routed, ratio: routed / rawRate,
            rawSelectsPerSecondSpread: rawArm.samples.spread, routedSelectsPerSecondSpread: routedArm.samples.spread,
            pooledSelectsPerSecondSpread: pooledArm.samples.spread,
            ratioSpread: zip(routedArm.samples, rawArm.samples).map { $0 / Swift.max($1, 1) }.spread, slices: slices,
            rawCPUMicrosecondsPerSelect: rawArm.cpuMicrosecondsPerCall, routedCPUMicrosecondsPerSelect: routedArm.cpuMicrosecondsPerCall,
            rawUserMicrosecondsPerSelect: rawArm.userMicrosecondsPerCall, routedUserMicrosecondsPerSelect: routedArm.userMicrosecondsPerCall,
            pooledSelectsPerSecond: pooledArm.rates / Double(slices), pooledCPUMicrosecondsPerSelect: pooledArm.cpuMicrosecondsPerCall,
            pooledUserMicrosecondsPerSelect: pooledArm.userMicrosecondsPerCall,
            poolCheckoutNs: poolNs, rawHandOffsPerSelect: rawArm.handOffsPerCall,
            routedHandOffsPerSelect: routedArm.handOffsPerCall, logRecordNs: logNs,
            pgbenchSelectsPerSecond: pgbenchRate, rawVsPgbench: pgbenchRate.map { rawRate / $0 }, pooledConnections: pooled,
            pooledConnectionsRSSMegabytes: memory, node: primary.name,
            directRoutedSelectsPerSecond: direct == nil ? nil : directCount / Double(slices),
            pooledVsDirect: direct == nil ? nil : routed / max(directCount / Double(slices), 1))
    }

    /// pgbench on PATH, else beside the server's programs.
    static func pgbenchPath() async -> String? {
        if let onPath = executableOnPath("pgbench") { return onPath }
        guard let binaries = try? await PostgresBinaries.locate() else { return nil }
        let candidate = binaries.path("pgbench")
        return FileManager.default.isExecutableFile(atPath: candidate) ? candidate : nil
    }

    /// pgbench's `select 1` rate over `transactions`, 1 client, simple protocol, without
    /// its connection time.
    static func pgbench(_ path: String, conninfo: String, transactions: Int) async throws -> Double {
        // The script, and the conninfo as a service file, in a directory of our own (no
        // planted file runs in their place); pgbench's argument list, which `ps` shows to
        // everyone, names only the service.
        let directory = try PrivateFile.makeDirectory(prefix: "switchyard-pgbench")
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = directory.appendingPathComponent("select1.sql").path
        try PrivateFile.create(Data("select 1\n".utf8), at: script)
        guard let service = Conninfo.serviceFile(conninfo, name: "switchyard") else {
            throw UsageError("pgbench: the conninfo does not parse or holds a line break")
        }
        let serviceFile = directory.appendingPathComponent("pg_service.conf").path
        try PrivateFile.create(Data(service.utf8), at: serviceFile)
        var environment = ProcessInfo.processInfo.environment
        environment["PGSERVICEFILE"] = serviceFile
        let result = try await ChildProcess.run(
            [path, "-n", "-M", "simple", "-c", "1", "-t", String(transactions), "-f", script, "service=switchyard"], environment: environment)
        guard result.status == 0, let line = result.output.split(separator: "\n").first(where: { $0.hasPrefix("tps = ") }),
            let rate = Double(line.dropFirst(6).prefix { $0 != " " })
        else {
            throw UsageError("pgbench failed (status \(result.status)): \(Conninfo.scrub(String(result.output.suffix(300)), conninfo: conninfo))")
        }
        return rate
    }

    /// Resident memory (MB) the process gains while a pool holds `count` open connections.
    static func residentGrowth(opening count: Int, conninfo: String) async throws -> Double? {
        func resident() -> Double? {
            guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
            let fields = statm.split(separator: " ")
            guard fields.count > 1, let pages = Double(fields[1]) else { return nil }
            return pages * Double(sysconf(Int32(_SC_PAGESIZE))) / 1_048_576
        }
        guard let before = resident() else { return nil }
        let pool = ConnectionPool(node: "rss", conninfo: conninfo, maxConnections: count, checkoutTimeout: .seconds(30))
        final class Flags: Sendable {
            let opened = Atomic<Int>(0)
            let released = Atomic<Bool>(false)
        }
        let flags = Flags()
        let holders = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<count {
                    group.addTask {
                        try await pool.withConnection { _ in
                            flags.opened.add(1, ordering: .relaxed)
                            while !flags.released.load(ordering: .relaxed) { try await Task.sleep(for: .milliseconds(20)) }
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        let deadline = ContinuousClock.now + .seconds(60)
        while flags.opened.load(ordering: .relaxed) < count, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        let during = flags.opened.load(ordering: .relaxed) == count ? resident() : nil
        flags.released.store(true, ordering: .relaxed)
        try await holders.value
        await pool.close()
        return during.map { $0 - before }
    }

    /// One layer's loop over all slices: its rates, and this process's CPU and hand-offs
    /// while it ran.
    struct Arm {
        var rates = 0.0, lastRate = 0.0, calls = 0.0, cpu = 0.0, user = 0.0, handOffs = 0
        /// Each slice's rate.
        var samples: [Double] = []

        mutating func measure(for duration: Duration, _ body: () async throws -> Void) async throws {
            let (cpuBefore, userBefore, handOffsBefore) =
                (BenchCommand.Monitor.cpuSeconds(), BenchCommand.Monitor.userSeconds(), PostgresConnection.handOffs)
            lastRate = try await RoutingBench.loop(for: duration, body)
            cpu += BenchCommand.Monitor.cpuSeconds() - cpuBefore
            user += BenchCommand.Monitor.userSeconds() - userBefore
            handOffs += PostgresConnection.handOffs - handOffsBefore
            calls += lastRate * duration.seconds
            rates += lastRate
            samples.append(lastRate)
        }

        var cpuMicrosecondsPerCall: Double { 1e6 * cpu / max(calls, 1) }
        var userMicrosecondsPerCall: Double { 1e6 * user / max(calls, 1) }
        var handOffsPerCall: Double { Double(handOffs) / max(calls, 1) }
    }

    /// Runs `body` back to back for `duration`; calls per second.
    static func loop(for duration: Duration, _ body: () async throws -> Void) async throws -> Double {
        let clock = ContinuousClock()
        let started = clock.now
        var count = 0
        while clock.now - started < duration {
            try await body()
            count += 1
        }
        return Double(count) / (clock.now - started).seconds
    }
}


extension Duration {
    var nanoseconds: Double { milliseconds * 1e6 }
    var seconds: Double { milliseconds / 1000 }
}
