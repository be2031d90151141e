import Foundation
import LocalCluster
import PostgresClient
import Switchyard

/// `bench monitor`: what one process's monitor costs the cluster (statements per second,
/// counted by the servers), its CPU, how close its lag is to an injected delay under
/// steady writes, and how soon it sees a promotion — for each strategy, same run.
struct MonitorBench {
    let configuration: ClusterConfiguration
    let interval: Duration
    let replicaProbeInterval: Duration
    let seconds: Double
    /// A replica to delay, and by how much, for the lag-accuracy figure.
    let lag: (node: String, milliseconds: Int)?
    /// A local cluster's replica to promote (and rejoin afterwards), for the detection figure.
    let promote: (node: String, cluster: LocalCluster)?

    /// How the application writes while lag is measured.
    enum Traffic: String, CaseIterable, Encodable {
        /// A commit every 100 ms.
        case steady
        /// A commit every 2.5 s.
        case sporadic
        /// None: only the monitor's own heartbeat.
        case none

        var period: Duration? {
            switch self {
            case .steady: .milliseconds(100)
            case .sporadic: .milliseconds(2500)
            case .none: nil
            }
        }
    }

    /// The lag shown against the truth: the replica applies every change `injectedMs`
    /// after it commits (`recovery_min_apply_delay`), so its data is that old. Samples are
    /// read from the monitor's picture at random instants, as a screen would.
    struct LagAccuracy: Encodable {
        var traffic: Traffic
        var node: String
        var injectedMs: Int
        var samples: Int
        var meanMs: Double
        var meanAbsErrorMs: Double
        var p95AbsErrorMs: Double
        var maxAbsErrorMs: Double
        /// Samples within max(100 ms, 10 %) of the truth.
        var withinTargetPercent: Double
        /// Rounds in which the node's positions came from the primary's view.
        var fromPrimaryViewPercent: Double
    }

    struct Report: Encodable {
        var strategy: String
        var nodes: Int
        var intervalMs: Int
        var replicaProbeIntervalMs: Int
        var seconds: Double
        var rounds: Int
        /// Statements the servers counted (`pg_stat_database` commits and rollbacks in the
        /// probes' database, less the measuring connections' own), per second.
        var serverStatementsPerSecond: Double
        var serverStatementsPerSecondByNode: [String: Double]
        /// Statements the monitor sent, by its own count, per second.
        var sentStatementsPerSecond: Double
        var cpuMsPerRound: Double
        var percentOfOneCore: Double
        var lagAccuracy: [LagAccuracy] = []
        var promotionDetectedMs: Double?
        /// Whether the cluster was quiet before the count (else other work is in it).
        var quiet = true
    }

    func run(strategies: [ClusterMonitor.Strategy], progress: (String) -> Void) async throws -> [Report] {
        var reports: [Report] = []
        for strategy in strategies {
            progress("\(strategy.rawValue): statements and CPU over \(seconds) s on the quiet cluster…")
            var report = try await measureLoad(strategy)
            if let lag {
                for traffic in Traffic.allCases {
                    progress("\(strategy.rawValue): lag of \(lag.node) delayed \(lag.milliseconds) ms, \(traffic.rawValue) writes…")
                    report.lagAccuracy.append(try await measureLag(strategy, node: lag.node, delay: lag.milliseconds, traffic: traffic))
                }
            }
            if let promote {
                progress("\(strategy.rawValue): promoting \(promote.node), then rejoining it…")
                report.promotionDetectedMs = try await measurePromotion(strategy, node: promote.node, cluster: promote.cluster)
            }
            reports.append(report)
        }
        return reports
    }

    func monitor(_ strategy: ClusterMonitor.Strategy) -> ClusterMonitor {
        ClusterMonitor(
            nodes: configuration.nodes,
            settings: ClusterMonitor.Settings(
                interval: interval, patroni: configuration.patroni, strategy: strategy, replicaProbeInterval: replicaProbeInterval))
    }

    // MARK: Load

    func measureLoad(_ strategy: ClusterMonitor.Strategy) async throws -> Report {
        // Backends flush their statistics for sure only as they exit, so the count runs
        // from before the monitor starts to after it stopped, less what does not belong to
        // the steady state: each measuring read's own commits, and each probe
        // connection's start (its statement_timeout setting), taken once here.
        let quiet = try await waitForQuiet()
        // A measuring read's own cost, taken twice: statistics that other sessions flush
        // as they exit can land in one of them, never both (the smaller is the cost).
        let zeroth = try await committed()
        let first = try await committed()
        let second = try await committed()
        for node in configuration.nodes {
            let monitorConnection = try await PostgresConnection.connect(
                node.monitorConninfo, label: node.name, options: ConnectOptions(connectTimeout: .seconds(5), statementTimeout: .seconds(2)))
            await monitorConnection.close()
        }
        try await Task.sleep(for: .milliseconds(300))
        let third = try await committed()
        var readCost: [String: Int] = [:]
        var connectionCost: [String: Int] = [:]
        for node in configuration.nodes {
            let read = max(min((second[node.name] ?? 0) - (first[node.name] ?? 0), (first[node.name] ?? 0) - (zeroth[node.name] ?? 0)), 0)
            readCost[node.name] = read
            connectionCost[node.name] = max((third[node.name] ?? 0) - (second[node.name] ?? 0) - read, 0)
        }

        let monitor = monitor(strategy)
        let before = try await committed()
        // The opening round asks every node and opens the connections: not the steady
        // state. Its statements are taken off the servers' count below.
        await monitor.probeNow()
        let opening = monitor.statementsSent
        let cpuBefore = BenchCommand.Monitor.cpuSeconds()
        let roundsBefore = monitor.roundCount
        let clock = ContinuousClock()
        let started = clock.now
        monitor.start()
        try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
        let cpu = BenchCommand.Monitor.cpuSeconds() - cpuBefore
        let rounds = max(monitor.roundCount - roundsBefore, 1)
        let sentByNode = monitor.statementsSent.merging(opening) { all, first in all - first }
        let opened = monitor.connectionsOpened
        await monitor.stop()
        let wall = (clock.now - started).seconds
        let sent = sentByNode.values.reduce(0, +)
        try await Task.sleep(for: .milliseconds(300))
        let after = try await committed()
        var byNode: [String: Double] = [:]
        for node in configuration.nodes {
            let delta = (after[node.name] ?? 0) - (before[node.name] ?? 0) - (readCost[node.name] ?? 0)
                - (opened[node.name] ?? 0) * (connectionCost[node.name] ?? 0) - (opening[node.name] ?? 0)
            byNode[node.name] = Double(max(delta, 0)) / wall
        }
        return Report(
            strategy: strategy.rawValue, nodes: configuration.nodes.count, intervalMs: Int(interval.milliseconds),
            replicaProbeIntervalMs: Int(replicaProbeInterval.milliseconds), seconds: wall, rounds: rounds,
            serverStatementsPerSecond: byNode.values.reduce(0, +), serverStatementsPerSecondByNode: byNode,
            sentStatementsPerSecond: Double(sent) / wall, cpuMsPerRound: 1000 * cpu / Double(rounds), percentOfOneCore: 100 * cpu / wall,
            quiet: quiet)
    }

    /// Waits (up to 20 s) until no node counts more than a few transactions a second:
    /// idle backends of earlier work flush their statistics up to 10 s late, and would be
    /// counted as the monitor's. False when the cluster never quieted.
    func waitForQuiet() async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(20)
        var previous = try await committed()
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: .seconds(1))
            let next = try await committed()
            defer { previous = next }
            if next.allSatisfy({ $0.value - (previous[$0.key] ?? 0) <= 3 }) { return true }
        }
        return false
    }

    /// Transactions committed or rolled back so far in each node's probe database.
    func committed() async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for node in configuration.nodes {
            counts[node.name] = try await direct(node.name) { connection in
                try await connection.query(
                    "select (xact_commit + xact_rollback)::int8 from pg_stat_database where datname = current_database()"
                ).scalar(Int.self) ?? 0
            }
        }
        return counts
    }

    func direct<T: Sendable>(_ name: String, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        guard let node = configuration.nodes.first(where: { $0.name == name }) else {
            throw BenchError(message: "no node \(name) in the configuration")
        }
        let connection = try await PostgresConnection.connect(
            node.monitorConninfo, label: name,
            options: ConnectOptions(connectTimeout: .seconds(5), statementTimeout: .seconds(30), fallbackApplicationName: "switchyard bench"))
        return try await connection.closing(body)
    }

    // MARK: Lag accuracy

    func measureLag(_ strategy: ClusterMonitor.Strategy, node: String, delay: Int, traffic: Traffic) async throws -> LagAccuracy {
        let monitor = monitor(strategy)
        let topology = await monitor.probeNow()
        guard let primary = topology.primary?.name else { throw BenchError(message: "no primary to write to") }
        guard topology.node(node)?.role == .replica else { throw BenchError(message: "\(node) is not a replica") }
        let table = "switchyard_bench_monitor_\(getpid())"
        try await direct(primary) { _ = try await $0.query("create table if not exists \(table) (id int primary key, at timestamptz)") }
        try await direct(primary) { _ = try await $0.query("insert into \(table) values (1, now()) on conflict do nothing") }
        try await setDelay(node, milliseconds: delay)
        let writer = Task {
            guard let period = traffic.period else { return }
            let connection = try await PostgresConnection.connect(
                configuration.nodes.first { $0.name == primary }!.monitorConninfo, label: primary,
                options: ConnectOptions(connectTimeout: .seconds(5), fallbackApplicationName: "switchyard bench"))
            do {
                while !Task.isCancelled {
                    _ = try await connection.query("update \(table) set at = now() where id = 1")
                    try await Task.sleep(for: period)
                }
            } catch is CancellationError {
            } catch {
                await connection.close()
                throw error
            }
            await connection.close()
        }
        var samples: [(ms: Double, view: Bool)] = []
        do {
            monitor.start()
            // Let the delay settle in before measuring.
            try await Task.sleep(for: .milliseconds(2 * delay + 1000))
            let end = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
            var generator = SystemRandomNumberGenerator()
            while ContinuousClock.now < end {
                try await Task.sleep(for: .milliseconds(Int.random(in: 20...120, using: &generator)))
                if let state = monitor.topology.node(node), let ms = state.lagMilliseconds {
                    samples.append((ms, state.source == .primaryView))
                }
            }
        } catch {
            await cleanUpLag(monitor, writer, node: node, primary: primary, table: table)
            throw error
        }
        await cleanUpLag(monitor, writer, node: node, primary: primary, table: table)
        guard !samples.isEmpty else { throw BenchError(message: "the monitor gave no lag for \(node)") }
        let errors = samples.map { abs($0.ms - Double(delay)) }.sorted()
        let target = max(100, 0.1 * Double(delay))
        return LagAccuracy(
            traffic: traffic, node: node, injectedMs: delay, samples: samples.count,
            meanMs: samples.map(\.ms).reduce(0, +) / Double(samples.count),
            meanAbsErrorMs: errors.reduce(0, +) / Double(errors.count), p95AbsErrorMs: errors[min(errors.count - 1, errors.count * 95 / 100)],
            maxAbsErrorMs: errors.last!, withinTargetPercent: 100 * Double(errors.filter { $0 <= target }.count) / Double(errors.count),
            fromPrimaryViewPercent: 100 * Double(samples.filter(\.view).count) / Double(samples.count))
    }

    private func cleanUpLag(_ monitor: ClusterMonitor, _ writer: Task<Void, Error>, node: String, primary: String, table: String) async {
        writer.cancel()
        _ = await writer.result
        await monitor.stop()
        try? await setDelay(node, milliseconds: 0)
        _ = try? await direct(primary) { try await $0.query("drop table if exists \(table)") }
    }

    /// `recovery_min_apply_delay` on `node` (0 resets it), applied with a reload.
    func setDelay(_ node: String, milliseconds: Int) async throws {
        try await direct(node) { connection in
            if milliseconds == 0 {
                _ = try await connection.query("alter system reset recovery_min_apply_delay")
            } else {
                _ = try await connection.query("alter system set recovery_min_apply_delay = '\(milliseconds)ms'")
            }
            _ = try await connection.query("select pg_reload_conf()")
            let expected = milliseconds == 0 ? "0" : "\(milliseconds)ms"
            let deadline = ContinuousClock.now + .seconds(5)
            while try await connection.query("show recovery_min_apply_delay").scalar(String.self) != expected, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    // MARK: Promotion

    /// Promotes `node` (split brain on purpose: the old primary keeps running), times how
    /// long until the monitor sees it as a primary, then rejoins it to the old primary.
    func measurePromotion(_ strategy: ClusterMonitor.Strategy, node: String, cluster: LocalCluster) async throws -> Double {
        let monitor = monitor(strategy)
        let topology = await monitor.probeNow()
        guard topology.node(node)?.role == .replica else { throw BenchError(message: "\(node) is not a replica") }
        monitor.start()
        // A few rounds of steady state first.
        try await Task.sleep(for: interval * 4)
        let clock = ContinuousClock()
        var detected: Duration?
        do {
            try await direct(node) { _ = try await $0.query("select pg_promote(true, 60)") }
            let promoted = clock.now
            let deadline = promoted + .seconds(30)
            while clock.now < deadline {
                if monitor.topology.node(node)?.role == .primary {
                    detected = clock.now - promoted
                    break
                }
                try await Task.sleep(for: .milliseconds(5))
            }
        } catch {
            await monitor.stop()
            try? await cluster.rejoin(node: node)
            throw error
        }
        await monitor.stop()
        try await cluster.rejoin(node: node)
        guard let detected else { throw BenchError(message: "the monitor did not see \(node)'s promotion within 30 s") }
        return detected.milliseconds
    }

    // MARK: Output

    static func table(_ reports: [Report]) -> String {
        let header = ["STRATEGY", "NODES", "INTERVAL", "STMTS/S (SERVERS)", "SENT/S", "CPU MS/ROUND", "% CORE", "PROMOTION SEEN"]
        let rows = reports.map { report -> [String] in
            [
                report.strategy, String(report.nodes), "\(report.intervalMs) ms",
                String(format: "%.1f", report.serverStatementsPerSecond), String(format: "%.1f", report.sentStatementsPerSecond),
                String(format: "%.3f", report.cpuMsPerRound), String(format: "%.2f", report.percentOfOneCore),
                report.promotionDetectedMs.map { String(format: "%.0f ms", $0) } ?? "-",
            ]
        }
        var lines = [TextTable.render(header: header, rows: rows)]
        let lagRows = reports.flatMap { report in
            report.lagAccuracy.map { lag -> [String] in
                [
                    report.strategy, lag.traffic.rawValue, "\(lag.node) +\(lag.injectedMs) ms", String(lag.samples),
                    String(format: "%.0f ms", lag.meanMs),
                    String(format: "%.0f/%.0f/%.0f ms", lag.meanAbsErrorMs, lag.p95AbsErrorMs, lag.maxAbsErrorMs),
                    String(format: "%.1f %%", lag.withinTargetPercent), String(format: "%.0f %%", lag.fromPrimaryViewPercent),
                ]
            }
        }
        if !lagRows.isEmpty {
            lines.append("")
            lines.append(TextTable.render(
                header: ["STRATEGY", "WRITES", "REPLICA", "SAMPLES", "LAG MEAN", "|ERR| MEAN/P95/MAX", "WITHIN max(100ms,10%)", "FROM VIEW"],
                rows: lagRows))
        }
        for report in reports {
            let nodes = report.serverStatementsPerSecondByNode.sorted { $0.key < $1.key }
                .map { String(format: "%@ %.1f", $0.key, $0.value) }.joined(separator: ", ")
            lines.append("\(report.strategy) statements/s by node: \(nodes)")
            if !report.quiet { lines.append("\(report.strategy): the cluster was busy before the count; its figures include other work") }
        }
        return lines.joined(separator: "\n")
    }
}

struct BenchError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
