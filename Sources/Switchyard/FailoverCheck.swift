import Foundation
import PostgresClient

/// The outcome of one check, Nagios-style.
public enum CheckStatus: String, Sendable, Codable, Comparable {
    case pass = "PASS", warn = "WARN", fail = "FAIL", unknown = "UNKNOWN"

    var severity: Int {
        switch self {
        case .pass: return 0
        case .warn: return 1
        case .unknown: return 2
        case .fail: return 3
        }
    }

    public static func < (lhs: CheckStatus, rhs: CheckStatus) -> Bool { lhs.severity < rhs.severity }
}

/// One check's verdict with a one-line explanation and the figures behind it.
public struct CheckResult: Sendable, Codable, Equatable {
    public var check: String
    public var node: String?
    public var status: CheckStatus
    public var summary: String
    public var figures: [String: String]

    public init(check: String, node: String? = nil, status: CheckStatus, summary: String, figures: [String: String] = [:]) {
        self.check = check
        self.node = node
        self.status = status
        self.summary = summary
        self.figures = figures
    }
}

/// A replica as a promotion candidate: how much it would lose if promoted now.
public struct Candidate: Sendable, Codable, Equatable {
    public var node: String
    public var reachable: Bool
    public var receiveLSN: LSN?
    public var replayLSN: LSN?
    /// WAL the primary had that this replica has not received (nil: primary unknown).
    public var missingBytes: UInt64?
    public var lagSeconds: Double?
}

/// Everything `switchyard check` reports.
public struct FailoverReport: Sendable, Codable {
    public var cluster: String
    public var primary: String?
    public var testedFrom: String
    public var durationMs: Double
    public var results: [CheckResult]
    /// Best first.
    public var candidates: [Candidate]

    /// The worst status of all results.
    public var status: CheckStatus { results.map(\.status).max() ?? .unknown }

    /// Nagios exit code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    public var exitCode: Int32 {
        switch status {
        case .pass: return 0
        case .warn: return 1
        case .fail: return 2
        case .unknown: return 3
        }
    }

    /// The first line monitoring systems read.
    public var summaryLine: String {
        let word = ["OK", "WARNING", "CRITICAL", "UNKNOWN"][Int(exitCode)]
        let problems = results.filter { $0.status != .pass }.sorted { $0.status > $1.status }
        let text = problems.isEmpty
            ? "\(results.count) checks passed, primary \(primary ?? "none")"
            : problems.prefix(3).map { ($0.node.map { "\($0): " } ?? "") + $0.summary }.joined(separator: "; ")
                + (problems.count > 3 ? "; +\(problems.count - 3) more" : "")
        let best = candidates.first.map { ", best candidate \($0.node)" } ?? ""
        return "SWITCHYARD \(word) - \(text)\(best)"
    }
}

/// Is the cluster ready to lose its primary, and which replica should take over?
///
/// Checks reachability, the single primary, each replica's stream (state, upstream,
/// timeline, paused replay), lag, end-to-end visibility of a marker row, replication
/// slots and the settings promotion and pg_rewind need, then ranks the candidates.
public struct FailoverChecker: Sendable {
    public let configuration: ClusterConfiguration
    public var warnLagMs: Int
    public var criticalLagMs: Int

    public init(configuration: ClusterConfiguration, warnLagMs: Int? = nil, criticalLagMs: Int? = nil) {
        self.configuration = configuration
        self.warnLagMs = warnLagMs ?? configuration.warnLagMs
        self.criticalLagMs = criticalLagMs ?? configuration.criticalLagMs
    }

    /// Runs every check; `progress` sees each result as it is known.
    public func run(progress: @Sendable (CheckResult) -> Void = { _ in }) async -> FailoverReport {
        let clock = ContinuousClock()
        let started = clock.now
        var results: [CheckResult] = []
        func add(_ result: CheckResult) {
            results.append(result)
            progress(result)
        }
        let monitor = ClusterMonitor(
            nodes: configuration.nodes, settings: ClusterMonitor.Settings(interval: .milliseconds(configuration.monitorIntervalMs)))
        let topology = await monitor.probeNow()
        await monitor.stop()
        let host = ProcessInfo.processInfo.hostName

        // Reachability.
        for node in topology.nodes {
            add(node.reachable
                ? CheckResult(check: "reachable", node: node.name, status: .pass, summary: "reachable from \(host)")
                : CheckResult(check: "reachable", node: node.name, status: .fail,
                              summary: "unreachable from \(host): \(node.error ?? "no answer")"))
        }
        let candidates = Self.rank(topology)

        // Exactly one primary.
        let primaries = topology.primaries
        switch primaries.count {
        case 1:
            add(CheckResult(check: "primary", node: primaries[0].name, status: .pass, summary: "\(primaries[0].name) is the only primary"))
        case 0:
            let best = candidates.first.map { "; best candidate \($0.node)" } ?? "; no candidate reachable"
            add(CheckResult(check: "primary", status: .fail, summary: "no reachable primary\(best)"))
        default:
            add(CheckResult(check: "primary", status: .fail,
                            summary: "split brain: \(primaries.map(\.name).joined(separator: " and ")) are all primaries"))
        }
        let primary = topology.primary
        let primaryEndpoint = primary.flatMap { p in configuration.nodes.first { $0.name == p.name } }.map { Conninfo.endpoint($0.conninfo) }

        // Each replica's stream and lag.
        for node in topology.nodes where node.reachable && node.role == .replica {
            var problems: [String] = []
            var status = CheckStatus.pass
            let follows = node.upstream ?? node.configuredUpstream
            let followsName = follows.flatMap { endpoint in
                configuration.nodes.first { Conninfo.endpoint($0.conninfo) == endpoint }?.name
            }
            let followed = followsName.map { "\($0) (\(follows!))" } ?? follows ?? "nobody"
            if let follows, follows != primaryEndpoint {
                let state = followsName.flatMap { topology.node($0) }.map { $0.reachable ? "not the primary" : "down" } ?? "not the primary"
                problems.append("follows \(followed), which is \(state)")
                status = .fail
            }
            if node.walReceiverStatus != "streaming" {
                problems.append("WAL receiver \(node.walReceiverStatus ?? "not running")")
                status = .fail
            }
            if let timeline = node.timeline, let primaryTimeline = primary?.timeline, timeline != primaryTimeline {
                problems.append("on timeline \(timeline), primary on \(primaryTimeline)")
                status = .fail
            }
            if node.replayPaused == true {
                problems.append("replay paused")
                status = .fail
            }
            add(CheckResult(
                check: "replication", node: node.name, status: status,
                summary: problems.isEmpty ? "streaming from \(node.upstream ?? "?") on timeline \(node.timeline.map(String.init) ?? "?")"
                    : problems.joined(separator: "; "),
                figures: ["upstream": node.upstream ?? "", "timeline": node.timeline.map(String.init) ?? ""]))

            let lagMs = node.lagMilliseconds
            let lagStatus: CheckStatus
            if let lagMs {
                lagStatus = lagMs >= Double(criticalLagMs) ? .fail : lagMs >= Double(warnLagMs) ? .warn : .pass
            } else {
                lagStatus = (node.lagBytes ?? 0) > 0 ? .warn : .unknown
            }
            add(CheckResult(
                check: "lag", node: node.name, status: lagStatus,
                summary: "lag \(node.lagBytes.map { "\($0) bytes" } ?? "? bytes"), \(lagMs.map { formatMilliseconds($0) } ?? "unknown time")"
                    + " (warn \(warnLagMs) ms, critical \(criticalLagMs) ms)",
                figures: ["lag_bytes": node.lagBytes.map(String.init) ?? "", "lag_ms": lagMs.map { String(format: "%.1f", $0) } ?? ""]))
        }

        if let primary {
            for result in await visibility(primary: primary, replicas: topology.nodes.filter { $0.reachable && $0.role == .replica }) {
                add(result)
            }
            for result in await slotsAndSettings(primary: primary, topology: topology) { add(result) }
        } else {
            add(CheckResult(check: "visibility", status: .unknown, summary: "no primary to write the marker row on"))
        }

        if candidates.isEmpty {
            add(CheckResult(check: "candidates", status: .fail, summary: "no reachable replica could take over"))
        } else {
            let best = candidates[0]
            add(CheckResult(
                check: "candidates", node: best.node, status: best.reachable ? .pass : .fail,
                summary: "best candidate \(best.node)"
                    + (best.missingBytes.map { " (\($0) bytes behind)" } ?? ""),
                figures: ["ranking": candidates.map(\.node).joined(separator: ",")]))
        }
        return FailoverReport(
            cluster: configuration.name, primary: primary?.name, testedFrom: host,
            durationMs: (clock.now - started).milliseconds, results: results, candidates: candidates)
    }

    /// Replicas ordered by how little they would lose if promoted now.
    static func rank(_ topology: Topology) -> [Candidate] {
        let primaryLSN = topology.primary?.currentLSN
        let replicas = topology.nodes.filter { $0.reachable && $0.role == .replica }
        return replicas.map { node in
            Candidate(
                node: node.name, reachable: node.reachable, receiveLSN: node.receiveLSN, replayLSN: node.replayLSN,
                missingBytes: primaryLSN.map { $0.bytes(after: node.receiveLSN ?? node.replayLSN ?? LSN(0)) },
                lagSeconds: node.lagSeconds)
        }.sorted { a, b in
            let aReceived = a.receiveLSN ?? a.replayLSN ?? LSN(0), bReceived = b.receiveLSN ?? b.replayLSN ?? LSN(0)
            if aReceived != bReceived { return aReceived > bReceived }
            let aReplayed = a.replayLSN ?? LSN(0), bReplayed = b.replayLSN ?? LSN(0)
            if aReplayed != bReplayed { return aReplayed > bReplayed }
            return a.node < b.node
        }
    }

    private func connect(_ name: String) async throws -> PostgresConnection {
        guard let node = configuration.nodes.first(where: { $0.name == name }) else {
            throw PostgresError(kind: .invalidArgument, message: "unknown node \(name)")
        }
        return try await PostgresConnection.connect(
            node.conninfo, label: name, options: ConnectOptions(connectTimeout: 3, statementTimeoutMs: 5000, fallbackApplicationName: "switchyard check"))
    }

    /// Writes a marker row on the primary and times its arrival on every replica.
    func visibility(primary: NodeState, replicas: [NodeState]) async -> [CheckResult] {
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
            return [CheckResult(check: "visibility", node: primary.name, status: .unknown,
                                summary: "cannot write the marker row: \((error as? PostgresError)?.message ?? "\(error)")")]
        }
        let limit = Duration.milliseconds(criticalLagMs)
        return await withTaskGroup(of: CheckResult.self) { group in
            for replica in replicas {
                group.addTask {
                    do {
                        let connection = try await connect(replica.name)
                        return try await connection.closing { connection in
                            while ContinuousClock.now - written < limit {
                                let seen: Bool
                                do {
                                    seen = try await connection.query(
                                        "select 1 from switchyard.failover_probe where id = 1 and marker = $1", [marker]).rowCount == 1
                                } catch let error as PostgresError where error.sqlState == "42P01" {
                                    seen = false  // the probe table itself has not arrived yet
                                }
                                if seen {
                                    let ms = (ContinuousClock.now - written).milliseconds
                                    return CheckResult(
                                        check: "visibility", node: replica.name, status: ms >= Double(warnLagMs) ? .warn : .pass,
                                        summary: "marker row visible after \(formatMilliseconds(ms))", figures: ["visible_ms": String(format: "%.1f", ms)])
                                }
                                try await Task.sleep(for: .milliseconds(10))
                            }
                            return CheckResult(
                                check: "visibility", node: replica.name, status: .fail,
                                summary: "marker row not visible within \(criticalLagMs) ms")
                        }
                    } catch {
                        return CheckResult(check: "visibility", node: replica.name, status: .unknown,
                                           summary: "cannot read the marker row: \((error as? PostgresError)?.message ?? "\(error)")")
                    }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }.sorted { ($0.node ?? "") < ($1.node ?? "") }
        }
    }

    /// Replication slots that hold WAL, and the settings promotion and rejoining need.
    func slotsAndSettings(primary: NodeState, topology: Topology) async -> [CheckResult] {
        var results: [CheckResult] = []
        do {
            let connection = try await connect(primary.name)
            try await connection.closing { connection in
                let slots = try await connection.query(
                    """
                    select slot_name, active, coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint
                    from pg_replication_slots order by slot_name
                    """)
                let idle = try slots.rows.filter { try !$0.decode(1, as: Bool.self) }
                if idle.isEmpty {
                    results.append(CheckResult(check: "slots", node: primary.name, status: .pass,
                                               summary: slots.rowCount == 0 ? "no replication slots" : "\(slots.rowCount) slots, all active"))
                } else {
                    let described = try idle.map { "\(try $0.decode(0, as: String.self)) retains \(try $0.decode(2, as: Int.self)) bytes" }
                    results.append(CheckResult(check: "slots", node: primary.name, status: .warn,
                                               summary: "inactive slots: " + described.joined(separator: ", ")))
                }
                let senders = try await connection.query(
                    "select current_setting('max_wal_senders')::int, (select count(*) from pg_stat_replication)::int").first
                let maxSenders = try senders?.decode(0, as: Int.self) ?? 0
                let used = try senders?.decode(1, as: Int.self) ?? 0
                results.append(CheckResult(
                    check: "wal_senders", node: primary.name, status: maxSenders - used > 0 ? .pass : .warn,
                    summary: "\(used) of \(maxSenders) WAL senders in use", figures: ["max_wal_senders": String(maxSenders), "in_use": String(used)]))
            }
        } catch {
            results.append(CheckResult(check: "slots", node: primary.name, status: .unknown,
                                       summary: "cannot read slots: \((error as? PostgresError)?.message ?? "\(error)")"))
        }
        let standbyNames = Set(topology.replication.map(\.applicationName))
        for node in topology.nodes where node.reachable {
            do {
                let connection = try await connect(node.name)
                let settings = try await connection.closing { connection -> [String: String] in
                    let rows = try await connection.query(
                        """
                        select name, setting from pg_settings
                        where name in ('wal_level', 'hot_standby', 'wal_log_hints', 'data_checksums', 'synchronous_standby_names')
                        """).rows
                    return Dictionary(uniqueKeysWithValues: try rows.map { (try $0.decode(0, as: String.self), try $0.decode(1, as: String.self)) })
                }
                var problems: [String] = []
                var status = CheckStatus.pass
                if !["replica", "logical"].contains(settings["wal_level"] ?? "") {
                    problems.append("wal_level is \(settings["wal_level"] ?? "?"), needs replica")
                    status = .fail
                }
                if node.role == .replica && settings["hot_standby"] != "on" {
                    problems.append("hot_standby is off")
                    status = max(status, .warn)
                }
                if settings["wal_log_hints"] != "on" && settings["data_checksums"] != "on" {
                    problems.append("neither wal_log_hints nor data checksums: pg_rewind cannot rejoin the old primary")
                    status = max(status, .warn)
                }
                if node.role == .primary, let names = settings["synchronous_standby_names"], !names.isEmpty {
                    let listed = names.split(whereSeparator: { ",() ".contains($0) }).map(String.init)
                        .filter { !$0.isEmpty && Int($0) == nil && !["FIRST", "ANY", "first", "any", "*"].contains($0) }
                    let missing = listed.filter { !standbyNames.contains($0) }
                    if !missing.isEmpty {
                        problems.append("synchronous_standby_names lists \(missing.joined(separator: ", ")), not connected: commits may hang")
                        status = max(status, .warn)
                    }
                }
                results.append(CheckResult(
                    check: "settings", node: node.name, status: status,
                    summary: problems.isEmpty ? "wal_level \(settings["wal_level"] ?? "?"), wal_log_hints \(settings["wal_log_hints"] ?? "?")"
                        : problems.joined(separator: "; "),
                    figures: settings))
            } catch {
                results.append(CheckResult(check: "settings", node: node.name, status: .unknown,
                                           summary: "cannot read settings: \((error as? PostgresError)?.message ?? "\(error)")"))
            }
        }
        return results
    }
}
