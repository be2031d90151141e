import PostgresClient
@testable import Switchyard

/// Hand-built node states and topologies, shared by the routing, monitor and failover
/// rule tests.
enum Fixtures {
    /// A node: a primary at `replay` (its current LSN), or a replica that has replayed
    /// `replay`, streaming unless told otherwise. Unreachable nodes have no role.
    static func node(
        _ name: String, role: NodeRole, reachable: Bool = true, replay: UInt64 = 100, receive: UInt64? = nil,
        lagBytes: UInt64 = 0, lagSeconds: Double? = 0, status: String? = "streaming", upstream: String? = nil,
        timeline: Int? = nil, paused: Bool? = nil, error: String? = nil
    ) -> NodeState {
        var node = NodeState(name: name)
        node.reachable = reachable
        node.role = reachable ? role : .unknown
        node.timeline = timeline
        node.error = reachable ? nil : (error ?? "connection refused")
        guard reachable else { return node }
        if role == .primary {
            node.currentLSN = LSN(replay)
            node.lagBytes = 0
            node.lagSeconds = 0
        } else {
            node.replayLSN = LSN(replay)
            node.receiveLSN = receive.map(LSN.init)
            node.lagBytes = lagBytes
            node.lagSeconds = lagSeconds
            node.walReceiverStatus = status
            node.upstream = upstream
            node.replayPaused = paused
        }
        return node
    }

    /// pg1 primary, pg2 and pg3 streaming and caught up.
    static let healthy = Topology(nodes: [
        node("pg1", role: .primary, replay: 1000),
        node("pg2", role: .replica, replay: 1000),
        node("pg3", role: .replica, replay: 1000),
    ])
}
