import PostgresClient

/// A node's role as last seen by probing (`pg_is_in_recovery()`), never from config.
public enum NodeRole: String, Sendable, Codable {
    case primary, replica, unknown
}

/// What the monitor last learnt about one node.
public struct NodeState: Sendable, Codable, Equatable {
    public var name: String
    public var reachable: Bool
    public var role: NodeRole
    /// Primary: `pg_current_wal_lsn()`.
    public var currentLSN: LSN?
    /// Replica: `pg_last_wal_receive_lsn()` / `pg_last_wal_replay_lsn()`.
    public var receiveLSN: LSN?
    public var replayLSN: LSN?
    /// Bytes of WAL the replica has still to replay, against the primary's LSN at the time
    /// the replica's position was read (a report in the primary's view can be a round old).
    public var lagBytes: UInt64?
    /// How stale the replica's data is: the age of the oldest change committed on the
    /// primary that it has not applied (0 when it has them all). With the monitor's
    /// heartbeat this is also how long after a commit the replica shows it, with or
    /// without other writes (see ``Topology/heartbeatProblem``).
    public var lagSeconds: Double?
    /// The monitor has not yet seen when the changes this replica lacks were written (it is
    /// behind every position the monitor kept, or no single primary answered): lagSeconds
    /// is then the age of its last replayed transaction, an upper bound.
    public var lagIsUpperBound = false
    /// `pg_stat_wal_receiver.status` (`streaming` when healthy).
    public var walReceiverStatus: String?
    /// `host:port` the WAL receiver streams from.
    public var upstream: String?
    /// `host:port` of the replica's `primary_conninfo`: whom it follows, also while its
    /// WAL receiver is not running.
    public var configuredUpstream: String?
    public var timeline: Int?
    public var replayPaused: Bool?
    /// Why the last probe failed.
    public var error: String?
    /// Where this round's positions came from.
    public var source: Source = .direct

    public enum Source: String, Sendable, Codable {
        /// The monitor asked the node itself.
        case direct
        /// The primary's `pg_stat_replication` row for it (the rest from the node's last
        /// direct probe).
        case primaryView = "primary-view"
    }

    public init(name: String) {
        self.name = name
        reachable = false
        role = .unknown
    }

    /// Unreachable because it stopped answering (a probe got no answer in time, or a
    /// connection attempt timed out) — a partition or a hung host — rather than because it
    /// refused: statements still waiting on it will wait in vain.
    public var isSilent: Bool {
        guard !reachable, let error else { return false }
        return error.hasPrefix("no answer") || error.contains("timeout expired")
    }

    /// Lag in milliseconds for routing decisions (0 on a primary).
    public var lagMilliseconds: Double? { lagSeconds.map { $0 * 1000 } }
}

/// A replica as the primary sees it in `pg_stat_replication`.
public struct ReplicationPeer: Sendable, Codable, Equatable {
    public var applicationName: String
    public var clientAddress: String?
    public var state: String?
    public var sentLSN: LSN?
    /// What the standby last reported flushed and replayed: only as fresh as its last
    /// feedback message (on an idle standby, up to `wal_receiver_status_interval` old).
    public var flushLSN: LSN?
    public var replayLSN: LSN?
    /// `replay_lag`: measured when the standby reports replaying WAL the primary timed,
    /// so live under steady writes, stale or null when idle.
    public var replayLagSeconds: Double?
    public var syncState: String?
    /// When the standby sent the report these positions come from (its clock, seconds
    /// since 1970).
    public var replyTime: Double?

    public init(
        applicationName: String, clientAddress: String? = nil, state: String? = nil, sentLSN: LSN? = nil, flushLSN: LSN? = nil,
        replayLSN: LSN? = nil, replayLagSeconds: Double? = nil, syncState: String? = nil
    ) {
        self.applicationName = applicationName
        self.clientAddress = clientAddress
        self.state = state
        self.sentLSN = sentLSN
        self.flushLSN = flushLSN
        self.replayLSN = replayLSN
        self.replayLagSeconds = replayLagSeconds
        self.syncState = syncState
    }
}

/// The monitor's latest view of the whole cluster, as the router reads it.
public struct Topology: Sendable {
    /// In config order.
    public var nodes: [NodeState]
    /// When the round that produced this view finished (monotonic).
    public var sampledAt: ContinuousClock.Instant
    /// The primary's `pg_stat_replication` rows.
    public var replication: [ReplicationPeer]
    /// Patroni's view from the same round (nil without `[patroni]`).
    public var patroni: PatroniView?
    /// Primaries that get no writes, and why: Patroni, answering, names another leader.
    public var fenced: [String: String] = [:]
    /// Why the primary's probe commits no heartbeat (nil: it does, or no primary answered).
    /// Without it lag counts only other transactions' changes: a replica that applies late
    /// reads 0 while nothing is written.
    public var heartbeatProblem: String?

    /// Why a replica's WAL receiver state (and with it its upstream and timeline) can be
    /// unknown while the replica answers: the server hides `pg_stat_wal_receiver` from
    /// roles without monitoring rights.
    public static let monitoringRightsHint = "the monitoring role needs pg_monitor (or pg_read_all_stats) to see it"

    /// Reachable replicas whose WAL receiver state the monitoring role may not read, with
    /// the reason: what every screen that shows "unknown" says beside it.
    public var hiddenFromMonitor: [String: String] {
        var hidden: [String: String] = [:]
        for node in nodes where node.reachable && node.role == .replica && node.walReceiverStatus == "unknown" {
            hidden[node.name] = "WAL receiver state, upstream and timeline unknown: \(Self.monitoringRightsHint)"
        }
        return hidden
    }

    /// What a lag figure means, for every screen that shows one.
    public static let lagMeaning =
        "lag = age of the oldest change the replica has not applied (how stale its data is), timed by the monitor's heartbeat"

    public init(nodes: [NodeState], sampledAt: ContinuousClock.Instant = .now, replication: [ReplicationPeer] = []) {
        self.nodes = nodes
        self.sampledAt = sampledAt
        self.replication = replication
    }

    /// Reachable nodes out of recovery. More than one is split brain.
    public var primaries: [NodeState] { nodes.filter { $0.reachable && $0.role == .primary } }

    /// The one reachable primary, or nil when there is none, more than one, or the one
    /// there is is fenced (Patroni names another leader).
    public var primary: NodeState? { primaryIndex.map { nodes[$0] } }

    /// Where ``primary`` is in ``nodes``: one pass, no array, no node copied.
    var primaryIndex: Int? {
        var found: Int?
        for index in nodes.indices where nodes[index].reachable && nodes[index].role == .primary {
            if found != nil { return nil }
            found = index
        }
        guard let found else { return nil }
        if !fenced.isEmpty, fenced[nodes[found].name] != nil { return nil }
        return found
    }

    public func node(_ name: String) -> NodeState? { nodes.first { $0.name == name } }
}
