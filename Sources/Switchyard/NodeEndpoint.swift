/// A node as configured: a name and a libpq connection string.
public struct NodeEndpoint: Sendable, Equatable {
    public var name: String
    public var conninfo: String

    public init(name: String, conninfo: String) {
        self.name = name
        self.conninfo = conninfo
    }
}
