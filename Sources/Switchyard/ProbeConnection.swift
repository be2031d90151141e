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
}

/// The monitor's own connection to one node; reconnects when lost.
final class ProbeConnection: Sendable {
    let node: NodeEndpoint
    let connectTimeout: Duration
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

    init(node: NodeEndpoint, connectTimeout: Duration) {
        self.node = node
        self.connectTimeout = connectTimeout
    }

    /// One statement per probe. On a primary it also returns `pg_stat_replication` (as
    /// JSON: one statement, one round trip), which is what lets the monitor leave the
    /// replicas alone between changes.
    static let probeSQL = """
        select pg_is_in_recovery(),
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
                        'replayLagSeconds', extract(epoch from s.replay_lag)::float8, 'syncState', s.sync_state)
                        order by s.application_name)
                    from pg_stat_replication as s where s.application_name is not null)
               end
        from (select 1) as one left join pg_stat_wal_receiver as r on true
        """
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
        sent.withLock { $0 += 1 }
        guard let row = try await current.query(Self.probeSQL).first else {
            throw PostgresError(kind: .decoding, message: "probe returned no row", node: node.name)
        }
        var sample = ProbeSample(reachable: true)
        sample.inRecovery = try row.decode(0, as: Bool.self)
        sample.currentLSN = try row.decode(1, as: LSN?.self)
        sample.receiveLSN = try row.decode(2, as: LSN?.self)
        sample.replayLSN = try row.decode(3, as: LSN?.self)
        sample.replayPaused = try row.decode(4, as: Bool?.self)
        sample.replayAgeSeconds = try row.decode(5, as: Double?.self)
        sample.walReceiverStatus = try row.decode(6, as: String?.self)
        sample.upstream = try row.decode(7, as: String?.self)
        sample.timeline = try row.decode(8, as: Int?.self)
        let clusterName = try row.decode(10, as: String?.self).flatMap { $0.isEmpty ? nil : $0 }
        // Only host, port and application_name are kept: primary_conninfo may hold a password.
        if let raw = try row.decode(9, as: String?.self), !raw.isEmpty {
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
        if sample.inRecovery == false, let json = try row.decode(11, as: String?.self) {
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

    static func describe(_ error: Error) -> String {
        (error as? PostgresError)?.message ?? "\(error)"
    }
}

let monitorLogger = Logger(label: "switchyard.monitor")
