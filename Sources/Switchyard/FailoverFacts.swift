import Foundation
import PatroniREST
import PostgresClient

/// What the failover probes found, for ``FailoverRules`` to judge. A section left nil
/// was not gathered (yet): the rules say nothing about it.
public struct FailoverFacts: Sendable, Equatable {
    public var cluster: String
    /// The host the checks ran from.
    public var testedFrom: String
    /// Every configured node: reachability, role, LSNs, upstream, timeline, paused replay, lag.
    public var nodes: [NodeState]
    /// `host:port` of each configured node, by name: how an upstream is matched to a node.
    public var endpoints: [String: String]
    /// How fast a marker row written on the primary showed on each replica.
    public var visibility: Visibility?
    /// The primary's replication slots and WAL senders.
    public var slots: Slots?
    /// Promotion- and rewind-relevant settings of each reachable node, by name.
    public var settings: [String: Settings]?
    /// `application_name`s connected to the primary's WAL senders.
    public var connectedStandbys: Set<String>
    /// The primary's `pg_stat_replication` rows, from the same round as `nodes`.
    public var replication: [ReplicationPeer] = []
    /// Patroni's view, when `[patroni]` is configured.
    public var patroni: PatroniView?
    /// Patroni's cluster-wide settings (`maximum_lag_on_failover`, `synchronous_mode`),
    /// when they could be read.
    public var patroniConfiguration: PatroniDynamicConfiguration?

    public init(cluster: String, testedFrom: String, nodes: [NodeState], endpoints: [String: String],
                visibility: Visibility? = nil, slots: Slots? = nil, settings: [String: Settings]? = nil,
                connectedStandbys: Set<String> = []) {
        self.cluster = cluster
        self.testedFrom = testedFrom
        self.nodes = nodes
        self.endpoints = endpoints
        self.visibility = visibility
        self.slots = slots
        self.settings = settings
        self.connectedStandbys = connectedStandbys
    }

    /// The facts one monitor round gives (no marker row, slots or settings): what the
    /// console's pane and tests judge continuously.
    public init(round topology: Topology, configuration: ClusterConfiguration, testedFrom: String = ProcessInfo.processInfo.hostName) {
        self.init(
            cluster: configuration.name, testedFrom: testedFrom, nodes: topology.nodes,
            endpoints: Dictionary(configuration.nodes.map { ($0.name, Conninfo.endpoint($0.monitorConninfo)) }, uniquingKeysWith: { a, _ in a }),
            connectedStandbys: Set(topology.replication.map(\.applicationName)))
        replication = topology.replication
        patroni = topology.patroni
    }

    public var topology: Topology {
        var topology = Topology(nodes: nodes, replication: replication)
        topology.patroni = patroni
        return topology
    }

    public enum Visibility: Sendable, Equatable {
        /// There was no single primary to write the marker row on.
        case noPrimary
        /// Writing the marker row failed.
        case notWritten(error: String)
        /// Per replica, by name.
        case observed([String: ReplicaVisibility])
    }

    public enum ReplicaVisibility: Sendable, Equatable {
        case visible(afterMs: Double)
        case notVisible(within: Duration)
        case unreadable(error: String)
    }

    public enum Slots: Sendable, Equatable {
        case read(slots: [Slot], maxWalSenders: Int, walSendersInUse: Int)
        case unreadable(error: String)
    }

    public struct Slot: Sendable, Equatable {
        public var name: String
        public var active: Bool
        public var retainedBytes: Int

        public init(name: String, active: Bool, retainedBytes: Int) {
            self.name = name
            self.active = active
            self.retainedBytes = retainedBytes
        }
    }

    public enum Settings: Sendable, Equatable {
        /// `wal_level`, `hot_standby`, `wal_log_hints`, `data_checksums`, `synchronous_standby_names`.
        case read([String: String])
        case unreadable(error: String)
    }
}

/// The thresholds the rules judge lag against.
public struct FailoverThresholds: Sendable, Equatable {
    public var warnLag: Duration
    public var criticalLag: Duration

    public init(warnLag: Duration, criticalLag: Duration) {
        self.warnLag = warnLag
        self.criticalLag = criticalLag
    }
}
