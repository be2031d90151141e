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
    var replication: [ReplicationPeer] = []
}

/// The monitor's own connection to one node; reconnects when lost.
final class ProbeConnection: Sendable {
    let node: NodeEndpoint
    let connectTimeout: Duration
    private let connection = Mutex<PostgresConnection?>(nil)
    /// The last `primary_conninfo` seen and its host:port: it rarely changes, and parsing
    /// it (to keep no password) is most of a probe's CPU.
    /// Set when the round's deadline ended the probe in progress.
    private let abandonedByRound = Mutex(false)
    private let upstreamCache = Mutex<(raw: String, endpoint: String)?>(nil)

    init(node: NodeEndpoint, connectTimeout: Duration) {
        self.node = node
        self.connectTimeout = connectTimeout
    }

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
               case when pg_is_in_recovery() then (select setting from pg_settings where name = 'primary_conninfo') end
        from (select 1) as one left join pg_stat_wal_receiver as r on true
        """
    // Least privilege: without pg_read_all_stats the WAL receiver's row shows only its
    // pid (state "unknown"); without pg_read_all_settings primary_conninfo is simply
    // absent from pg_settings (upstream unknown). Neither makes the node look down.

    static let replicationSQL = """
        select application_name, client_addr::text, state, sent_lsn, replay_lsn, sync_state
        from pg_stat_replication order by application_name
        """

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
        case .timedOut:
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
        }
        return try await probe(on: current)
    }

    /// The probe statements on an open connection.
    private func probe(on current: PostgresConnection) async throws -> ProbeSample {
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
        // Only host and port are kept: primary_conninfo may hold a password.
        sample.configuredUpstream = try row.decode(9, as: String?.self).flatMap { raw in
            guard !raw.isEmpty else { return nil }
            if let cached = upstreamCache.withLock({ $0 }), cached.raw == raw { return cached.endpoint }
            let endpoint = Conninfo.endpoint(raw)
            upstreamCache.withLock { $0 = (raw, endpoint) }
            return endpoint
        }
        if sample.inRecovery == false {
            // Rows a role without pg_read_all_stats cannot see into are left out.
            sample.replication = try await current.query(Self.replicationSQL).rows.compactMap { row in
                guard let name = try row.decode(0, as: String?.self) else { return nil }
                return ReplicationPeer(
                    applicationName: name, clientAddress: try row.decode(1, as: String?.self),
                    state: try row.decode(2, as: String?.self), sentLSN: try row.decode(3, as: LSN?.self),
                    replayLSN: try row.decode(4, as: LSN?.self), syncState: try row.decode(5, as: String?.self))
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
