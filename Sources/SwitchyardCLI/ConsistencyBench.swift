import Foundation
import PostgresClient
import Switchyard

/// The stale-read benchmark: the same workload through each consistency policy.
///
/// Policies are measured in short slices that alternate, in a rotating order, over the
/// whole run: every policy sees the same machine noise, so their ratios hold from one
/// run to the next.
struct ConsistencyBench {
    enum Policy: String, CaseIterable, Encodable {
        case naive = "naive-random"
        case admin = "admin-context"
        case pinWindow = "pin-window-2s"
        /// Before a read carrying a token, ask the chosen replica its replay position in
        /// a round trip of its own; the primary serves the read if behind.
        case perReadCheck = "per-read-lsn-check"
        case lsn = "lsn-read-your-writes"
    }

    /// How the bench's clients reach the nodes: the configured `conninfo` (through a
    /// pooler, when the config has one), or straight to the servers (`monitor_conninfo`).
    enum Path: String, Encodable {
        case configured, direct
    }

    struct Report: Encodable {
        var policy: Policy
        var path: Path
        var clients: Int
        var seconds: Double
        var slices: Int
        var operations: Int
        var reads: Int
        var readsOnReplicas: Int
        var readBacks: Int
        var readBacksOnReplicas: Int
        var staleReadBacks: Int
        var writes: Int
        var errors: Int
        var p50Ms: Double
        var p99Ms: Double

        var opsPerSecond: Double
        /// Standard deviation of the per-slice throughput.
        var opsPerSecondSpread: Double
        var replicaSharePercent: Double
        var readBackReplicaSharePercent: Double
        /// Reads and read-backs together: the share of all reads the replicas served.
        var allReadsReplicaSharePercent: Double
    }
    let base: ClusterConfiguration
    /// The most clients any run uses (each has a row of its own).
    let clients: Int
    let rows: Int
    let seconds: Double
    static let table = "switchyard_bench.items"

    /// Creates `switchyard_bench.items` with one row per client and `rows` others.
    func prepare() async throws {
        let cluster = try Cluster(configuration: base)
        await cluster.start()
        do {
            try await cluster.execute("create schema if not exists switchyard_bench")
            try await cluster.execute(
                "create table if not exists \(Self.table) (id int primary key, version int not null default 0, payload text)")
            try await cluster.execute(
                """
                insert into \(Self.table) (id, payload)
                select g, md5(g::text) from generate_series(1, $1) g on conflict (id) do nothing
                """, [clients + rows])
            // Let every replica have the rows before measuring.
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline {
                let topology = await cluster.monitor.probeNow()
                if topology.nodes.allSatisfy({ !$0.reachable || $0.role == .primary || ($0.replayLSN ?? LSN(0)) >= (topology.primary?.currentLSN ?? LSN(0)) }) { break }
                try await Task.sleep(for: .milliseconds(100))
            }
        } catch {
            await cluster.shutdown()
            throw error
        }
        await cluster.shutdown()
    }

    /// Whether the configured path differs from the direct one (a pooler in between).
    var hasPooler: Bool { base.nodes.contains { $0.conninfo != $0.monitorConninfo || $0.poolMode == .transaction } }

    func configuration(for policy: Policy, path: Path = .configured) -> ClusterConfiguration {
        var configuration = base
        if path == .direct {
            configuration.nodes = base.nodes.map(\.direct)
        }
        configuration.replicaSelection = .random
        configuration.queryLogCapacity = 1000
        configuration.queryLogFile = nil
        switch policy {
        case .naive:
            configuration.readYourWrites = false
            configuration.maxReplicaLag = .seconds(86_400 * 365)
        case .admin, .lsn:
            configuration.readYourWrites = true
            configuration.replayGuard = true
            configuration.pinWindow = .zero
        case .perReadCheck:
            // Tokens are issued as under LSN; read-backs are placed by the check below.
            configuration.readYourWrites = true
            configuration.pinWindow = .zero
        case .pinWindow:
            configuration.readYourWrites = true
            configuration.pinWindow = .seconds(2)
        }
        return configuration
    }

    struct ClientResult {
        var operations = 0, reads = 0, readsOnReplicas = 0, readBacks = 0, readBacksOnReplicas = 0
        var stale = 0, writes = 0, errors = 0
        var latencies: [Double] = []

        mutating func add(_ other: ClientResult) {
            operations += other.operations
            reads += other.reads
            readsOnReplicas += other.readsOnReplicas
            readBacks += other.readBacks
            readBacksOnReplicas += other.readBacksOnReplicas
            stale += other.stale
            writes += other.writes
            errors += other.errors
            latencies += other.latencies
        }
    }

    /// Every policy with `clients` clients, interleaved in slices of `slice`, until each
    /// has had `seconds`; with `compareDirect`, each policy also straight to the servers,
    /// in the same rotation.
    func run(
        clients: Int, slice: Duration = .milliseconds(100), policies: [Policy] = Policy.allCases, compareDirect: Bool = false
    ) async throws -> [Report] {
        let variants = policies.map { ($0, Path.configured) } + (compareDirect ? policies.map { ($0, Path.direct) } : [])
        var clusters: [Cluster] = []
        do {
            for (policy, path) in variants {
                let cluster = try Cluster(configuration: configuration(for: policy, path: path))
                await cluster.start()
                clusters.append(cluster)
            }
        } catch {
            for cluster in clusters { await cluster.shutdown() }
            throw error
        }
        // Warm-up: open each variant's connections before anything counts.
        for (index, variant) in variants.enumerated() {
            _ = await self.slice(variant.0, cluster: clusters[index], clients: clients, for: slice)
        }
        let rounds = max(Int((seconds / slice.seconds).rounded()), 3)
        var totals = [ClientResult](repeating: ClientResult(), count: variants.count)
        var elapsed = [Double](repeating: 0, count: variants.count)
        var rates = [[Double]](repeating: [], count: variants.count)
        for round in 0..<rounds {
            for step in 0..<variants.count {
                let index = (round + step) % variants.count
                let (result, took) = await self.slice(variants[index].0, cluster: clusters[index], clients: clients, for: slice)
                totals[index].add(result)
                elapsed[index] += took
                rates[index].append(Double(result.operations) / took)
            }
        }
        for cluster in clusters { await cluster.shutdown() }
        return variants.indices.map { index in
            Self.report(
                variants[index].0, path: variants[index].1, clients: clients, total: totals[index], seconds: elapsed[index], rates: rates[index])
        }
    }

    static func report(_ policy: Policy, path: Path, clients: Int, total: ClientResult, seconds: Double, rates: [Double]) -> Report {
        let latencies = total.latencies.sorted()
        func percentile(_ p: Double) -> Double {
            latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]
        }
        func percent(_ part: Int, _ whole: Int) -> Double { whole == 0 ? 0 : 100 * Double(part) / Double(whole) }
        return Report(
            policy: policy, path: path, clients: clients, seconds: seconds, slices: rates.count, operations: total.operations,
            reads: total.reads, readsOnReplicas: total.readsOnReplicas, readBacks: total.readBacks,
            readBacksOnReplicas: total.readBacksOnReplicas, staleReadBacks: total.stale, writes: total.writes, errors: total.errors,
            p50Ms: percentile(0.5), p99Ms: percentile(0.99), opsPerSecond: Double(total.operations) / max(seconds, 1e-9),
            opsPerSecondSpread: rates.spread, replicaSharePercent: percent(total.readsOnReplicas, total.reads),
            readBackReplicaSharePercent: percent(total.readBacksOnReplicas, total.readBacks),
            allReadsReplicaSharePercent: percent(total.readsOnReplicas + total.readBacksOnReplicas, total.reads + total.readBacks))
    }

    /// `clients` clients on `cluster` for `duration`; their results and the time taken
    /// (until the last finished its operation in progress).
    private func slice(_ policy: Policy, cluster: Cluster, clients: Int, for duration: Duration) async -> (ClientResult, Double) {
        let context: RoutingContext = policy == .admin ? .admin : .public
        let primary = cluster.monitor.topology.primary?.name
        let clock = ContinuousClock()
        let started = clock.now
        let result = await withTaskGroup(of: ClientResult.self) { group in
            for client in 1...clients {
                group.addTask {
                    await self.client(client, clients: clients, policy: policy, cluster: cluster, context: context, primary: primary, until: started + duration)
                }
            }
            return await group.reduce(into: ClientResult()) { $0.add($1) }
        }
        return (result, (clock.now - started).seconds)
    }

    private func client(
        _ id: Int, clients: Int, policy: Policy, cluster: Cluster, context: RoutingContext, primary: String?,
        until end: ContinuousClock.Instant
    ) async -> ClientResult {
        var result = ClientResult()
        var generator = SystemRandomNumberGenerator()
        let clock = ContinuousClock()
        while clock.now < end {
            let started = clock.now
            do {
                if Double.random(in: 0..<1, using: &generator) < 0.2 {
                    // A visitor's request: save my row, then show it.
                    let (written, shown, node) = try await context.run { () -> (Int, Int?, String) in
                        let update = try await cluster.execute(
                            "update \(Self.table) set version = version + 1 where id = $1 returning version", [id])
                        let written = try update.scalar(Int.self) ?? -1
                        let sql = "select version from \(Self.table) where id = $1"
                        let readBack: RoutedResult
                        if policy == .perReadCheck {
                            readBack = try await Self.checkedRead(cluster, sql, [id])
                        } else {
                            readBack = try await cluster.run(.read, sql, [id])
                        }
                        return (written, try readBack.result.scalar(Int.self), readBack.node)
                    }
                    result.writes += 1
                    result.readBacks += 1
                    if node != primary { result.readBacksOnReplicas += 1 }
                    if (shown ?? -1) < written { result.stale += 1 }
                } else {
                    // Another visitor's request: read someone else's row.
                    let other = Int.random(in: (clients + 1)...(clients + rows), using: &generator)
                    let routed = try await context.run {
                        try await cluster.run(.read, "select id, version, payload from \(Self.table) where id = $1", [other])
                    }
                    result.reads += 1
                    if routed.node != primary { result.readsOnReplicas += 1 }
                }
                result.operations += 1
                result.latencies.append((clock.now - started).milliseconds)
            } catch {
                result.errors += 1
            }
        }
        return result
    }

    /// The `per-read-lsn-check` read-back: the replica a token-free public read would get
    /// is asked `pg_last_wal_replay_lsn()` first, in its own round trip; it serves the read
    /// if it has replayed the token, else the primary does.
    static func checkedRead(_ cluster: Cluster, _ sql: String, _ parameters: [any PostgresEncodable]) async throws -> RoutedResult {
        let topology = cluster.monitor.topology
        guard let token = Cluster.currentToken, let primary = topology.primary?.name,
            let chosen = cluster.defaultRouter.route(RouteRequest(operation: .read, context: .public), topology: topology),
            chosen.node != primary, let pool = cluster.pool(chosen.node)
        else { return try await cluster.run(.read, sql, parameters) }
        let served = try await pool.withConnection { connection -> PostgresResult? in
            let replayed = try await connection.query("select pg_catalog.pg_last_wal_replay_lsn()").scalar(LSN.self)
            guard let replayed, replayed >= token.lsn else { return nil }
            return try await connection.query(sql, parameters)
        }
        if let served { return RoutedResult(result: served, node: chosen.node, reason: chosen.reason) }
        return try await RoutingContext.admin.run { try await cluster.run(.read, sql, parameters) }
    }

    static func table(_ reports: [Report]) -> String {
        let paths = Set(reports.map(\.path)).count > 1
        let header = ["CLIENTS", "POLICY"] + (paths ? ["PATH"] : []) + ["READS", "READ-BACKS", "STALE", "ALL READS ON REPLICAS",
                      "READ-BACKS ON REPLICAS", "OPS/S", "± (SLICES)", "P50 MS", "P99 MS", "ERRORS"]
        let rows = reports.map { report -> [String] in
            [String(report.clients), report.policy.rawValue] + (paths ? [report.path.rawValue] : []) + [
                String(report.reads), String(report.readBacks),
                String(report.staleReadBacks),
                String(format: "%.1f %%", report.allReadsReplicaSharePercent),
                String(format: "%.1f %%", report.readBackReplicaSharePercent),
                String(format: "%.0f", report.opsPerSecond),
                String(format: "%.0f (%d)", report.opsPerSecondSpread, report.slices),
                String(format: "%.2f", report.p50Ms), String(format: "%.2f", report.p99Ms), String(report.errors),
            ]
        }
        var lines = [TextTable.render(header: header, rows: rows)]
        for clients in Set(reports.map(\.clients)).sorted() {
            let group = reports.filter { $0.clients == clients && $0.path == .configured }
            guard let naive = group.first(where: { $0.policy == .naive }) else { continue }
            for other in [Policy.lsn, .perReadCheck] {
                guard let report = group.first(where: { $0.policy == other }) else { continue }
                lines.append(String(
                    format: "%d clients, %@ vs naive: throughput %.1f %%, all-reads replica share %.1f %% vs %.1f %%",
                    clients, other.rawValue, 100 * report.opsPerSecond / max(naive.opsPerSecond, 1),
                    report.allReadsReplicaSharePercent, naive.allReadsReplicaSharePercent))
            }
            for report in group {
                guard let direct = reports.first(where: { $0.clients == clients && $0.path == .direct && $0.policy == report.policy }) else {
                    continue
                }
                lines.append(String(
                    format: "%d clients, %@ through the configured path vs direct: throughput %.1f %%, p50 %.2f vs %.2f ms",
                    clients, report.policy.rawValue, 100 * report.opsPerSecond / max(direct.opsPerSecond, 1), report.p50Ms, direct.p50Ms))
            }
        }
        return lines.joined(separator: "\n")
    }

    static func json(_ reports: [Report]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(reports), as: UTF8.self)
    }
}
