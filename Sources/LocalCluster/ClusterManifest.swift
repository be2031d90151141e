import Foundation

/// One node of a local cluster: its name, TCP port and folders inside the cluster folder.
public struct LocalNode: Codable, Sendable, Equatable {
    public var name: String
    public var port: Int

    public init(name: String, port: Int) {
        self.name = name
        self.port = port
    }
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
}
