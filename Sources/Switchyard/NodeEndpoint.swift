/// A node as configured: a name and how to reach it.
public struct NodeEndpoint: Sendable, Equatable {
    /// How the server behind `conninfo` hands out its connections.
    public enum PoolMode: String, Sendable, Equatable, CaseIterable {
        /// A connection is one server session (straight to PostgreSQL, or a pooler in
        /// session mode): prepared statements and session settings work.
        case session
        /// A pooler in transaction mode (PgBouncer `pool_mode = transaction`): each
        /// transaction may run on another server session, so statements go unnamed and
        /// session state is refused.
        case transaction
    }

    public var name: String
    /// The path application traffic takes (through a pooler, if there is one).
    public var conninfo: String
    /// Straight to the server, for probes, failover checks and promotion (the same as
    /// `conninfo` unless configured).
    public var monitorConninfo: String
    public var poolMode: PoolMode

    public init(name: String, conninfo: String, monitorConninfo: String? = nil, poolMode: PoolMode = .session) {
        self.name = name
        self.conninfo = conninfo
        self.monitorConninfo = monitorConninfo ?? conninfo
        self.poolMode = poolMode
    }

    /// The node straight to its server (`monitor_conninfo` as the only path): what the
    /// monitor probes and what a comparison without the pooler uses.
    public var direct: NodeEndpoint { NodeEndpoint(name: name, conninfo: monitorConninfo) }
}
