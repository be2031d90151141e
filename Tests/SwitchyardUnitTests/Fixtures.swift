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

import PropertyBased

/// Generated text that tries to break parsers and printers: control characters, quotes,
/// backslashes, `=` and spaces, non-ASCII letters, emoji, bidi and zero-width characters.
enum NastyText {
    static let character = Gen<Character>.frequency(
        (4, Gen.character(in: "\u{01}"..."\u{7F}")),
        (1, Gen.element(of: ["\"", "\\", "'", "=", " ", "\n", "\t", "/", "@", ":", "\u{1B}"]).map { $0! }),
        (1, Gen.character(in: "\u{A0}"..."\u{2FF}")),
        (1, Gen.element(of: ["\u{202E}", "\u{200B}", "\u{2066}", "\u{85}", "\u{9B}", "é", "ß", "🚂", "中"]).map { $0! }))

    /// Strings of 0 to 24 such characters.
    static let string = character.string(of: 0...24)
    /// Strings of 1 to 20 such characters.
    static let name = character.string(of: 1...20)
}
