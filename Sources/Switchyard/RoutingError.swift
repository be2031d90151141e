/// Why the cluster could not place a statement.
public struct RoutingError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        /// No reachable node is out of recovery.
        case noPrimary
        /// More than one reachable node is out of recovery: writes are refused.
        case splitBrain([String])
        /// A router named a node the cluster does not have.
        case unknownNode(String)
        /// A router sent a write somewhere other than the primary.
        case writeNotOnPrimary(node: String)
        /// The statement cannot run as asked: transaction control outside
        /// `Cluster.transaction`, or session state through a transaction pooler.
        case refused
    }

    public var kind: Kind
    public var message: String

    public var description: String { message }

    /// The error for a topology with no single primary: split brain or none at all.
    public static func noPrimary(_ topology: Topology) -> RoutingError {
        let primaries = topology.primaries
        if primaries.count > 1 {
            let names = primaries.map(\.name)
            return RoutingError(
                kind: .splitBrain(names),
                message: "split brain: \(names.joined(separator: " and ")) are both primaries; writes are refused "
                    + "until only one remains")
        }
        if let (name, why) = topology.fenced.sorted(by: { $0.key < $1.key }).first {
            return RoutingError(
                kind: .noPrimary, message: "primary unavailable: \(name) is out of recovery but gets no writes: \(why)")
        }
        let down = topology.nodes.filter { !$0.reachable }.map(\.name)
        let detail = down.isEmpty ? "" : " (unreachable: \(down.joined(separator: ", ")))"
        return RoutingError(kind: .noPrimary, message: "primary unavailable: no reachable node is out of recovery\(detail)")
    }
}
