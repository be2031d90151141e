import PostgresClient

/// Why a promotion was refused or failed.
public struct PromotionError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// Guarded promotion of a replica: `pg_promote()`, then wait until it is out of recovery.
public enum Promotion {
    /// Promotes `node`. Refuses when it is unknown, unreachable or already primary, and
    /// while another primary is reachable (split brain) unless `force`. Returns how long
    /// the node took to leave recovery.
    public static func promote(_ node: String, configuration: ClusterConfiguration, force: Bool = false) async throws -> Duration {
        guard let endpoint = configuration.nodes.first(where: { $0.name == node }) else {
            throw PromotionError(
                message: "no node named \"\(node)\" (nodes: \(configuration.nodes.map(\.name).joined(separator: ", ")))")
        }
        let monitor = ClusterMonitor(nodes: configuration.nodes)
        let topology = await monitor.probeNow()
        await monitor.stop()
        guard let target = topology.node(node), target.reachable else {
            throw PromotionError(message: "\(node) is not reachable: \(topology.node(node)?.error ?? "no answer")")
        }
        guard target.role == .replica else { throw PromotionError(message: "\(node) is already a primary") }
        let others = topology.primaries.filter { $0.name != node }
        if !others.isEmpty && !force {
            throw PromotionError(
                message: "\(others.map(\.name).joined(separator: ", ")) is still a reachable primary: promoting \(node) now would "
                    + "create split brain. Stop it first, or force it")
        }
        let connection = try await PostgresConnection.connect(
            endpoint.conninfo, label: node, options: ConnectOptions(connectTimeout: .seconds(5), fallbackApplicationName: "switchyard promote"))
        return try await connection.closing { connection in
            let started = ContinuousClock.now
            _ = try await connection.query("select pg_promote(true, 60)")
            while try await connection.query("select pg_is_in_recovery()").scalar(Bool.self) == true {
                guard ContinuousClock.now - started < .seconds(60) else {
                    throw PromotionError(message: "\(node) is still in recovery after 60 s")
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            return ContinuousClock.now - started
        }
    }
}
