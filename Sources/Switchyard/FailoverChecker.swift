import Foundation
import PostgresClient

/// Is the cluster ready to lose its primary, and which replica should take over?
///
/// Probes gather ``FailoverFacts`` — reachability, roles and stream state of every node,
/// end-to-end visibility of a marker row, replication slots, and the settings promotion
/// and pg_rewind need — and ``FailoverRules`` judges them.
public struct FailoverChecker: Sendable {
    public let configuration: ClusterConfiguration
    public var thresholds: FailoverThresholds

    public init(configuration: ClusterConfiguration, warnLag: Duration? = nil, criticalLag: Duration? = nil) {
        self.configuration = configuration
        self.thresholds = FailoverThresholds(
            warnLag: warnLag ?? configuration.warnLag, criticalLag: criticalLag ?? configuration.criticalLag)
    }

    /// Gathers the facts and judges them; `progress` sees each result as soon as the facts
    /// behind it are in.
    public func run(progress: @Sendable (CheckResult) -> Void = { _ in }) async -> FailoverReport {
        let clock = ContinuousClock()
        let started = clock.now
        var reported = 0
        func judge(_ facts: FailoverFacts) -> (results: [CheckResult], candidates: [Candidate]) {
            let verdict = FailoverRules.evaluate(facts, thresholds)
            for result in verdict.results.dropFirst(reported) { progress(result) }
            reported = max(reported, verdict.results.count)
            return verdict
        }

        var facts = await probeNodes()
        _ = judge(facts)
        let topology = facts.topology
        let replicas = facts.nodes.filter { $0.reachable && $0.role == .replica }
        if let primary = topology.primary {
            facts.visibility = await visibility(primary: primary, replicas: replicas)
            _ = judge(facts)
            (facts.slots, facts.connectedStandbys) = await slots(primary: primary)
            _ = judge(facts)
        } else {
            facts.visibility = .noPrimary
            _ = judge(facts)
        }
        facts.settings = await settings(of: facts.nodes.filter(\.reachable))
        let verdict = judge(facts)
        return FailoverReport(
            cluster: configuration.name, primary: topology.primary?.name, testedFrom: facts.testedFrom,
            durationMs: (clock.now - started).milliseconds, results: verdict.results, candidates: verdict.candidates)
    }

    // MARK: Probes

    /// One monitor round over every node.
    func probeNodes() async -> FailoverFacts {
        let monitor = ClusterMonitor(
            nodes: configuration.nodes, settings: ClusterMonitor.Settings(configuration))
        async let patroniConfiguration = configuration.patroni == nil ? nil : try? await configuration.patroni!.client.dynamicConfiguration()
        let topology = await monitor.probeSettled()
        await monitor.stop()
        var facts = FailoverFacts(round: topology, configuration: configuration)
        facts.patroniConfiguration = await patroniConfiguration
        return facts
    }

    private func connect(_ name: String) async throws -> PostgresConnection {
        guard let node = configuration.nodes.first(where: { $0.name == name }) else {
            throw PostgresError(kind: .invalidArgument, message: "unknown node \(name)")
        }
        return try await PostgresConnection.connect(
            node.monitorConninfo, label: name, options: ConnectOptions(connectTimeout: .seconds(3), statementTimeout: .seconds(5), fallbackApplicationName: "switchyard check"))
    }

    private static func describe(_ error: Error) -> String { (error as? PostgresError)?.message ?? "\(error)" }

    /// Writes a marker row on the primary and times its arrival on every replica, for up
    /// to the critical lag.
    func visibility(primary: NodeState, replicas: [NodeState]) async -> FailoverFacts.Visibility {
        let marker = UUID().uuidString
        let written: ContinuousClock.Instant
        do {
            let connection = try await connect(primary.name)
            written = try await connection.closing { connection in
                _ = try await connection.query("create schema if not exists switchyard")
                _ = try await connection.query(
                    "create table if not exists switchyard.failover_probe (id int primary key, marker text not null, written_at timestamptz not null)")
                _ = try await connection.query(
                    """
                    insert into switchyard.failover_probe values (1, $1, now())
                    on conflict (id) do update set marker = excluded.marker, written_at = excluded.written_at
                    """, [marker])
                return ContinuousClock.now
            }
        } catch {
            return .notWritten(error: Self.describe(error))
        }
        let limit = thresholds.criticalLag
        let observed = await withTaskGroup(of: (String, FailoverFacts.ReplicaVisibility).self) { group in
            for replica in replicas {
                group.addTask {
                    do {
                        let connection = try await connect(replica.name)
                        return (replica.name, try await connection.closing { connection in
                            while ContinuousClock.now - written < limit {
                                let seen: Bool
                                do {
                                    seen = try await connection.query(
                                        "select 1 from switchyard.failover_probe where id = 1 and marker = $1", [marker]).rowCount == 1
                                } catch let error as PostgresError where error.sqlState == "42P01" {
                                    seen = false  // the probe table itself has not arrived yet
                                }
                                if seen { return .visible(afterMs: (ContinuousClock.now - written).milliseconds) }
                                try await Task.sleep(for: .milliseconds(10))
                            }
                            return .notVisible(within: limit)
                        })
                    } catch {
                        return (replica.name, .unreadable(error: Self.describe(error)))
                    }
                }
            }
            return await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
        return .observed(observed)
    }

    /// The primary's replication slots and WAL senders, and who is connected to them.
    func slots(primary: NodeState) async -> (FailoverFacts.Slots, Set<String>) {
        do {
            let connection = try await connect(primary.name)
            return try await connection.closing { connection in
                let rows = try await connection.query(
                    """
                    select slot_name, active, coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint
                    from pg_replication_slots order by slot_name
                    """).rows
                let slots = try rows.map {
                    FailoverFacts.Slot(name: try $0.decode(0, as: String.self), active: try $0.decode(1, as: Bool.self),
                                       retainedBytes: try $0.decode(2, as: Int.self))
                }
                let senders = try await connection.query(
                    "select current_setting('max_wal_senders')::int, (select count(*) from pg_stat_replication)::int").first
                let standbys = try await connection.query("select coalesce(application_name, '') from pg_stat_replication")
                    .rows.map { try $0.decode(0, as: String.self) }
                return (.read(slots: slots, maxWalSenders: try senders?.decode(0, as: Int.self) ?? 0,
                              walSendersInUse: try senders?.decode(1, as: Int.self) ?? 0), Set(standbys))
            }
        } catch {
            return (.unreadable(error: Self.describe(error)), [])
        }
    }

    /// The settings promotion and rejoining need, per node.
    func settings(of nodes: [NodeState]) async -> [String: FailoverFacts.Settings] {
        var all: [String: FailoverFacts.Settings] = [:]
        for node in nodes {
            do {
                let connection = try await connect(node.name)
                all[node.name] = .read(try await connection.closing { connection -> [String: String] in
                    let rows = try await connection.query(
                        """
                        select name, setting from pg_settings
                        where name in ('wal_level', 'hot_standby', 'wal_log_hints', 'data_checksums', 'synchronous_standby_names')
                        """).rows
                    return Dictionary(uniqueKeysWithValues: try rows.map { (try $0.decode(0, as: String.self), try $0.decode(1, as: String.self)) })
                })
            } catch {
                all[node.name] = .unreadable(error: Self.describe(error))
            }
        }
        return all
    }
}
