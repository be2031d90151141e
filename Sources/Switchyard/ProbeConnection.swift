import Foundation
import PostgresClient
import Logging
import Synchronization

/// The raw result of probing one node once.
struct ProbeSample: Sendable {
    var reachable = false
    var error: String?
    var inRecovery: Bool?
    var currentLSN: LSN?
    var receiveLSN: LSN?
    var replayLSN: LSN?
    var replayPaused: Bool?
    var replayAgeSeconds: Double?
    var walReceiverStatus: String?
    var upstream: String?
    var configuredUpstream: String?
    var timeline: Int?
    /// The name this replica's WAL receiver gives the primary (`application_name` in
    /// `primary_conninfo`, else `cluster_name`): its row in `pg_stat_replication`.
    var senderName: String?
    var replication: [ReplicationPeer] = []
    /// From a probe of the node itself, or filled in from the primary's view of it.
    var source: NodeState.Source = .direct
    /// When the positions were true, by the server's clock (seconds since 1970): the
    /// node's `clock_timestamp()` in the probe, or the replica's last report for a sample
    /// taken from the primary's view.
    var observedAt: Double?
    /// The node's clock at the end of the probe statement: on a primary, just before the
    /// heartbeat commits.
    var finishedAt: Double?
    /// On a primary with the heartbeat on: where the heartbeat's message record ended (its
    /// commit follows).
    var heartbeatLSN: LSN?
    /// Why this node's probe writes no heartbeat (nil: it does, or it is no primary).
    var heartbeatProblem: String?
}

/// The monitor's own connection to one node; reconnects when lost.
final class ProbeConnection: Sendable {
    let node: NodeEndpoint
    let connectTimeout: Duration
    /// Whether a primary's probe also commits the heartbeat.
    let heartbeat: Bool
    /// Why the heartbeat was given up on this node (the role may not run it).
    private let heartbeatRefused = Mutex<String?>(nil)
    private let connection = Mutex<PostgresConnection?>(nil)
    /// Set when the round's deadline ended the probe in progress.
    private let abandonedByRound = Mutex(false)
    /// The last `primary_conninfo` seen, its host:port and application_name: it rarely
    /// changes, and parsing it (to keep no password) is most of a probe's CPU.
    private let upstreamCache = Mutex<(raw: String, endpoint: String, name: String?)?>(nil)
    /// Probe statements sent to this node and connections opened to it (for `bench monitor`).
    private let sent = Mutex(0)
    private let opened = Mutex(0)
    var statementsSent: Int { sent.withLock { $0 } }
    var connectionsOpened: Int { opened.withLock { $0 } }

    init(node: NodeEndpoint, connectTimeout: Duration, heartbeat: Bool = true) {
        self.node = node
        self.connectTimeout = connectTimeout
        self.heartbeat = heartbeat
    }

    /// One statement per probe. On a primary it also returns `pg_stat_replication` (as
    /// JSON: one statement, one round trip), which is what lets the monitor leave the
    /// replicas alone between changes.
    static let probeSQL = probeSQL(heartbeat: false)
    static let heartbeatProbeSQL = probeSQL(heartbeat: true)

    /// With `heartbeat`, a primary's probe also commits a transactional logical message
    /// (`pg_logical_emit_message`: no table, no schema, executable by any role by default),
    /// after reading its position (columns are evaluated in order), without waiting for
    /// synchronous standbys: the monitor's lag clock. A replica skips it (`case`).
    static func probeSQL(heartbeat: Bool) -> String {
        let heartbeatColumn = heartbeat
            ? "case when not pg_is_in_recovery() then pg_logical_emit_message(true, 'switchyard.heartbeat', "
                + "set_config('synchronous_commit', 'local', true)) end"
            : "null::pg_lsn"
        return """
        select extract(epoch from clock_timestamp())::float8,
               pg_is_in_recovery(),
               case when not pg_is_in_recovery() then pg_current_wal_lsn() end,
               pg_last_wal_receive_lsn(),
               pg_last_wal_replay_lsn(),
               case when pg_is_in_recovery() then pg_is_wal_replay_paused() end,
               extract(epoch from (clock_timestamp() - pg_last_xact_replay_timestamp()))::float8,
               case when r.pid is not null and r.status is null then 'unknown' else r.status end,
               r.sender_host || ':' || r.sender_port,
               case when pg_is_in_recovery() then r.received_tli
                    else ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int end,
               case when pg_is_in_recovery() then (select setting from pg_settings where name = 'primary_conninfo') end,
               current_setting('cluster_name'),
               case when not pg_is_in_recovery() then
                   (select json_agg(json_build_object(
                        'applicationName', s.application_name, 'clientAddress', s.client_addr::text, 'state', s.state,
                        'sentLSN', s.sent_lsn::text, 'flushLSN', s.flush_lsn::text, 'replayLSN', s.replay_lsn::text,
                        'replayLagSeconds', extract(epoch from s.replay_lag)::float8, 'syncState', s.sync_state,
                        'replyTime', extract(epoch from s.reply_time)::float8)
                        order by s.application_name)
                    from pg_stat_replication as s where s.application_name is not null)
               end,
               \(heartbeatColumn),
               extract(epoch from clock_timestamp())::float8
        from (select 1) as one left join pg_stat_wal_receiver as r on true
        """
    }
    // Least privilege: without pg_read_all_stats the WAL receiver's row shows only its
    // pid (state "unknown") and pg_stat_replication rows only their name (positions
    // null: the monitor then probes those replicas itself); without pg_read_all_settings
    // primary_conninfo is simply absent from pg_settings (upstream unknown). Neither
    // makes the node look down.

    private struct Backoff {
        var attempts = 0
        var failures = 0
        var nextAttempt: ContinuousClock.Instant?
        var lastError = ""
    }

    private let backoff = Mutex(Backoff())

    /// Connection attempts made so far (probes skipped while backing off do not count).
    var attempts: Int { backoff.withLock { $0.attempts } }

    /// Probes once; a probe that takes longer than `deadline` (a hung node) counts as a
    /// failure and its connection is abandoned. After failures, reconnecting backs off
    /// (one interval, then doubling, at most eight): a dead node costs little, and a
    /// restarted one is found within the cap.
    /// The least time an open connection is given to answer a probe.
    static let answerTime: Duration = .seconds(1)

    /// How long an open connection is given to answer a probe.
    static func answerLimit(deadline: Duration, interval: Duration) -> Duration { min(deadline, max(interval, answerTime)) }

    static func noAnswer(_ limit: Duration) -> String { "no answer within \(formatDuration(limit))" }

    /// Ends a probe still waiting on an open connection (the round's deadline passed).
    func abandon(limit: Duration) {
        abandonedByRound.withLock { $0 = true }
        connection.withLock { $0 }?.abandonStatement(Self.noAnswer(limit))
    }

    func probe(deadline: Duration, interval: Duration) async -> ProbeSample {
        let now = ContinuousClock.now
        if let waiting = backoff.withLock({ state -> String? in
            guard let next = state.nextAttempt, now < next else { return nil }
            return state.lastError
        }) {
            return ProbeSample(reachable: false, error: waiting)
        }
        backoff.withLock { $0.attempts += 1 }
        // On an open connection the probe is a few milliseconds of work: a node that does
        // not answer it within an interval (at least a second) is unresponsive, so a hung
        // node shows within two intervals. A new connection gets the connect timeout too.
        let existing = connection.withLock { $0 }
        let outcome: DeadlineOutcome<ProbeSample>
        let limit: Duration
        if let existing, existing.looksAlive() {
            // The usual case. The round keeps the deadline for all nodes with one timer and
            // calls `abandon` on a probe still waiting then: no timer per probe.
            limit = Self.answerLimit(deadline: deadline, interval: interval)
            abandonedByRound.withLock { $0 = false }
            do {
                outcome = .value(try await probe(on: existing))
            } catch {
                outcome = abandonedByRound.withLock { $0 } ? .timedOut : .failed(error)
            }
        } else {
            limit = deadline
            outcome = await withDeadline(limit) { try await self.probeOnce() }
        }
        let error: String
        switch outcome {
        case .value(let sample):
            backoff.withLock { $0 = Backoff(attempts: $0.attempts) }
            return sample
        case .failed(let failure):
            await dropConnection()
            error = Self.describe(failure)
        case .timedOut, .unknown:
            connection.withLock { $0 = nil }
            error = "no answer within \(formatDuration(limit))"
        }
        let pause = backoff.withLock { state -> Duration? in
            state.failures += 1
            let steps = min(state.failures - 1, 3)
            let pause = state.failures > 1 ? interval * (1 << steps) : nil
            state.nextAttempt = pause.map { ContinuousClock.now + $0 - .milliseconds(50) }
            state.lastError = error
            return pause
        }
        monitorLogger.info(
            "probe failed", metadata: ["node": "\(node.name)", "error": "\(error)", "next_attempt_in": "\(pause.map(formatDuration) ?? "next round")"])
        return ProbeSample(reachable: false, error: error)
    }

    private func probeOnce() async throws -> ProbeSample {
        let current: PostgresConnection
        // A connection the server closed meanwhile is replaced, not reported as a dead node.
        let existing = connection.withLock { $0 }
        if let existing, existing.looksAlive() {
            current = existing
        } else {
            if let existing { await existing.close() }
            current = try await PostgresConnection.connect(
                node.conninfo, label: node.name,
                options: ConnectOptions(connectTimeout: connectTimeout, statementTimeout: .seconds(2),
                                        fallbackApplicationName: "switchyard monitor"))
            connection.withLock { $0 = current }
            opened.withLock { $0 += 1 }
        }
        return try await probe(on: current)
    }

    /// The probe statement on an open connection.
    private func probe(on current: PostgresConnection) async throws -> ProbeSample {
        let refused = heartbeatRefused.withLock { $0 }
        let beat = heartbeat && refused == nil
        sent.withLock { $0 += 1 }
        let result: PostgresResult
        do {
            result = try await current.query(beat ? Self.heartbeatProbeSQL : Self.probeSQL)
        } catch let error as PostgresError where beat && Self.refusesHeartbeat(error) {
            // The role may not write (read-only by default, no EXECUTE on the function):
            // the monitor goes on without its heartbeat, and says so.
            heartbeatRefused.withLock { $0 = "the heartbeat was refused: \(error.message)" }
            monitorLogger.warning("heartbeat refused", metadata: ["node": "\(node.name)", "error": "\(error.message)"])
            return try await probe(on: current)
        }
        guard let row = result.first else {
            throw PostgresError(kind: .decoding, message: "probe returned no row", node: node.name)
        }
        var sample = ProbeSample(reachable: true)
        // The node's clock before it read its positions (a replica's were true no earlier),
        // and after the heartbeat, just before it commits (the primary's mark).
        sample.observedAt = try row.decode(0, as: Double?.self)
        sample.finishedAt = try row.decode(14, as: Double?.self)
        sample.heartbeatLSN = try row.decode(13, as: LSN?.self)
        sample.heartbeatProblem = heartbeat ? refused : "the heartbeat is off (monitor.heartbeat = false)"
        sample.inRecovery = try row.decode(1, as: Bool.self)
        sample.currentLSN = try row.decode(2, as: LSN?.self)
        sample.receiveLSN = try row.decode(3, as: LSN?.self)
        sample.replayLSN = try row.decode(4, as: LSN?.self)
        sample.replayPaused = try row.decode(5, as: Bool?.self)
        sample.replayAgeSeconds = try row.decode(6, as: Double?.self)
        sample.walReceiverStatus = try row.decode(7, as: String?.self)
        sample.upstream = try row.decode(8, as: String?.self)
        sample.timeline = try row.decode(9, as: Int?.self)
        let clusterName = try row.decode(11, as: String?.self).flatMap { $0.isEmpty ? nil : $0 }
        // Only host, port and application_name are kept: primary_conninfo may hold a password.
        if let raw = try row.decode(10, as: String?.self), !raw.isEmpty {
            let parsed: (raw: String, endpoint: String, name: String?)
            if let cached = upstreamCache.withLock({ $0 }), cached.raw == raw {
                parsed = cached
            } else {
                parsed = (raw, Conninfo.endpoint(raw), Conninfo.parse(raw)?.last { $0.key == "application_name" }?.value)
                upstreamCache.withLock { $0 = parsed }
            }
            sample.configuredUpstream = parsed.endpoint
            sample.senderName = parsed.name ?? clusterName ?? "walreceiver"
        } else if sample.inRecovery == true {
            sample.senderName = clusterName ?? "walreceiver"
        }
        if sample.inRecovery == false, let json = try row.decode(12, as: String?.self) {
            do {
                sample.replication = try JSONDecoder().decode([ReplicationPeer].self, from: Data(json.utf8))
            } catch {
                throw PostgresError(kind: .decoding, message: "pg_stat_replication: \(error)", node: node.name)
            }
        }
        return sample
    }

    private func dropConnection() async {
        let old = connection.withLock { connection -> PostgresConnection? in
            defer { connection = nil }
            return connection
        }
        await old?.close()
    }

    func close() async { await dropConnection() }

    /// A refusal of the heartbeat itself (privilege, read-only session, no such function),
    /// as opposed to the node failing the probe.
    static func refusesHeartbeat(_ error: PostgresError) -> Bool {
        guard error.kind == .server, let state = error.sqlState else { return false }
        return ["42501", "25006", "42883", "0A000"].contains(state)
    }

    static func describe(_ error: Error) -> String {
        (error as? PostgresError)?.message ?? "\(error)"
    }
}

let monitorLogger = Logger(label: "switchyard.monitor")
