import Foundation
import PostgresClient
import Switchyard

/// The stale-read benchmark: the same workload through each consistency policy.
struct ConsistencyBench {
    enum Policy: String, CaseIterable, Encodable {
        case naive = "naive-random"
        case admin = "admin-context"
        case pinWindow = "pin-window-2s"
        case lsn = "lsn-read-your-writes"
    }

    struct Report: Encodable {
        var policy: Policy
        var seconds: Double
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
        var replicaSharePercent: Double
        var readBackReplicaSharePercent: Double

        init(
            policy: Policy, seconds: Double, operations: Int, reads: Int, readsOnReplicas: Int, readBacks: Int,
            readBacksOnReplicas: Int, staleReadBacks: Int, writes: Int, errors: Int, p50Ms: Double, p99Ms: Double
        ) {
            self.policy = policy
            self.seconds = seconds
            self.operations = operations
            self.reads = reads
            self.readsOnReplicas = readsOnReplicas
            self.readBacks = readBacks
            self.readBacksOnReplicas = readBacksOnReplicas
            self.staleReadBacks = staleReadBacks
            self.writes = writes
            self.errors = errors
            self.p50Ms = p50Ms
            self.p99Ms = p99Ms
            opsPerSecond = Double(operations) / seconds
            replicaSharePercent = reads == 0 ? 0 : 100 * Double(readsOnReplicas) / Double(reads)
            readBackReplicaSharePercent = readBacks == 0 ? 0 : 100 * Double(readBacksOnReplicas) / Double(readBacks)
        }
    }

    let base: ClusterConfiguration
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

    func configuration(for policy: Policy) -> ClusterConfiguration {
        var configuration = base
        configuration.replicaSelection = .random
        configuration.queryLogCapacity = 1000
        configuration.queryLogFile = nil
        configuration.poolMaxConnections = max(configuration.poolMaxConnections, clients)
        switch policy {
        case .naive:
            configuration.readYourWrites = false
            configuration.maxReplicaLag = .seconds(86_400 * 365)
        case .admin, .lsn:
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
    }

    func run(_ policy: Policy) async throws -> Report {
        let cluster = try Cluster(configuration: configuration(for: policy))
        await cluster.start()
        let context: RoutingContext = policy == .admin ? .admin : .public
        let primaryName = cluster.monitor.topology.primary?.name
        let duration = Duration.milliseconds(Int(seconds * 1000))
        let results = await withTaskGroup(of: ClientResult.self) { group in
            for client in 1...clients {
                group.addTask {
                    await self.client(client, cluster: cluster, context: context, primary: primaryName, for: duration)
                }
            }
            return await group.reduce(into: [ClientResult]()) { $0.append($1) }
        }
        await cluster.shutdown()
        var latencies = results.flatMap(\.latencies)
        latencies.sort()
        func percentile(_ p: Double) -> Double {
            latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]
        }
        return Report(
            policy: policy, seconds: seconds, operations: results.map(\.operations).reduce(0, +),
            reads: results.map(\.reads).reduce(0, +), readsOnReplicas: results.map(\.readsOnReplicas).reduce(0, +),
            readBacks: results.map(\.readBacks).reduce(0, +), readBacksOnReplicas: results.map(\.readBacksOnReplicas).reduce(0, +),
            staleReadBacks: results.map(\.stale).reduce(0, +), writes: results.map(\.writes).reduce(0, +),
            errors: results.map(\.errors).reduce(0, +), p50Ms: percentile(0.5), p99Ms: percentile(0.99))
    }

    private func client(_ id: Int, cluster: Cluster, context: RoutingContext, primary: String?, for duration: Duration) async
        -> ClientResult
    {
        var result = ClientResult()
        var generator = SystemRandomNumberGenerator()
        let clock = ContinuousClock()
        let end = clock.now + duration
        while clock.now < end {
            let started = clock.now
            do {
                if Double.random(in: 0..<1, using: &generator) < 0.2 {
                    // A visitor's request: save my row, then show it.
                    let (written, shown, node) = try await context.run { () -> (Int, Int?, String) in
                        let update = try await cluster.execute(
                            "update \(Self.table) set version = version + 1 where id = $1 returning version", [id])
                        let written = try update.scalar(Int.self) ?? -1
                        let readBack = try await cluster.run(.read, "select version from \(Self.table) where id = $1", [id])
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

    static func table(_ reports: [Report]) -> String {
        let header = ["POLICY", "READS", "READ-BACKS", "STALE", "STALE %", "READS ON REPLICAS", "READ-BACKS ON REPLICAS",
                      "OPS/S", "P50 MS", "P99 MS", "ERRORS"]
        let rows = reports.map { report -> [String] in
            [
                report.policy.rawValue, String(report.reads), String(report.readBacks), String(report.staleReadBacks),
                String(format: "%.1f", report.readBacks == 0 ? 0 : 100 * Double(report.staleReadBacks) / Double(report.readBacks)),
                String(format: "%.1f %%", report.replicaSharePercent),
                String(format: "%.1f %%", report.readBackReplicaSharePercent),
                String(format: "%.0f", report.opsPerSecond), String(format: "%.2f", report.p50Ms),
                String(format: "%.2f", report.p99Ms), String(report.errors),
            ]
        }
        var lines = [TextTable.render(header: header, rows: rows)]
        if let naive = reports.first(where: { $0.policy == .naive }), let lsn = reports.first(where: { $0.policy == .lsn }) {
            lines.append(String(
                format: "lsn vs naive: replica share %+.1f points, throughput %.1f %%",
                lsn.replicaSharePercent - naive.replicaSharePercent, 100 * lsn.opsPerSecond / max(naive.opsPerSecond, 1)))
        }
        return lines.joined(separator: "\n")
    }

    static func json(_ reports: [Report]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(reports), as: UTF8.self)
    }
}
