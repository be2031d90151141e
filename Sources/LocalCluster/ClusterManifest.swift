import Foundation

/// One node of a local cluster: its name, TCP port and folders inside the cluster folder.
public struct LocalNode: Codable, Sendable, Equatable {
    public var name: String
    public var port: Int
    /// Patroni's REST API port (clusters made with `--ha patroni`).
    public var restPort: Int?
    /// The port of the PgBouncer in front of the node (`--pgbouncer`).
    public var bouncerPort: Int?

    public init(name: String, port: Int, restPort: Int? = nil, bouncerPort: Int? = nil) {
        self.name = name
        self.port = port
        self.restPort = restPort
        self.bouncerPort = bouncerPort
    }

    /// `http://127.0.0.1:R` of the node's Patroni, if it has one.
    public var restURL: URL? { restPort.map { URL(string: "http://127.0.0.1:\($0)")! } }
}

/// The HA engine of a cluster made with `cluster up --ha patroni`: a single-node etcd and
/// one Patroni per node.
struct PatroniManifest: Codable, Sendable, Equatable {
    /// Patroni's `scope`: the cluster's name in etcd.
    var scope: String
    var etcdClientPort: Int
    var etcdPeerPort: Int
}

/// `D/cluster.json`: what `cluster up` created, so later commands know the nodes.
/// Roles are not recorded: they are read from the servers, so they stay true after a
/// promotion.
struct ClusterManifest: Codable, Sendable, Equatable {
    var formatVersion = 1
    var database: String
    var user: String
    var host: String
    var nodes: [LocalNode]
    /// Set when Patroni manages the nodes.
    var patroni: PatroniManifest?
}
