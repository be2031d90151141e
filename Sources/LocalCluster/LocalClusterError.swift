/// Why a local-cluster operation failed, worded for the person at the terminal.
public struct LocalClusterError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        case binariesNotFound, portInUse, directoryNotUsable, unknownNode, notAReplica
        case noCluster, commandFailed, notRunning, invalidArgument
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
