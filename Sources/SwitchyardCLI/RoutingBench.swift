import Foundation
import PostgresClient
import Switchyard

/// Routing overhead: the cost of one decision, and routed against raw `SELECT 1`.
struct RoutingBench {
    let configuration: ClusterConfiguration
    let seconds: Double
    let decisions: Int

    struct Report: Encodable {
        var decisionMedianNs: Double
        var decisionP99Ns: Double
        var rawSelectsPerSecond: Double
        var routedSelectsPerSecond: Double
        var ratio: Double
        var node: String

        func table() -> String {
            [
                String(format: "routing decision: median %.0f ns, p99 %.0f ns (public read, batches of 1000)", decisionMedianNs, decisionP99Ns),
                String(format: "SELECT 1 on %@: raw PostgresClient %.0f/s, routed (admin context) %.0f/s, ratio %.3f",
                       node, rawSelectsPerSecond, routedSelectsPerSecond, ratio),
            ].joined(separator: "\n")
        }

        func json() throws -> String {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            return String(decoding: try encoder.encode(self), as: UTF8.self)
        }
    }

    func run() async throws -> Report {
        var configuration = configuration
        configuration.queryLogCapacity = 1000
        configuration.queryLogFile = nil
        let cluster = try Cluster(configuration: configuration)
        await cluster.start()
        do {
            let report = try await measure(cluster)
            await cluster.shutdown()
            return report
        } catch {
            await cluster.shutdown()
            throw error
        }
    }

    private func measure(_ cluster: Cluster) async throws -> Report {
        let topology = cluster.monitor.topology
        guard let primary = topology.primary, let endpoint = configuration.nodes.first(where: { $0.name == primary.name })
        else { throw RoutingError.noPrimary(topology) }

        // Decision time: the default router on a public read, timed in batches.
        let request = RouteRequest(operation: .read, context: .public)
        let clock = ContinuousClock()
        var perCall: [Double] = []
        let batch = 1000
        var sink = 0
        for _ in 0..<max(decisions / batch, 1) {
            let started = clock.now
            for _ in 0..<batch {
                if let decision = cluster.defaultRouter.route(request, topology: topology) { sink &+= decision.node.utf8.count }
            }
            perCall.append((clock.now - started).nanoseconds / Double(batch))
        }
        precondition(sink > 0)
        perCall.sort()

        // Throughput: one client, back to back, raw and routed alternating in short
        // slices so that drift on a busy machine hits both alike.
        let slices = max(Int(seconds / 0.25), 2)
        let slice = Duration.milliseconds(Int(seconds * 1000) / slices)
        let raw = try await PostgresConnection.connect(endpoint.conninfo, label: endpoint.name)
        var rawCount = 0.0, routedCount = 0.0
        try await RoutingContext.admin.run {
            for _ in 0..<slices {
                rawCount += try await Self.loop(for: slice / 2) { _ = try await raw.query("select 1") }
                routedCount += try await Self.loop(for: slice / 2) { _ = try await cluster.query("select 1") }
            }
        }
        await raw.close()
        let rawRate = rawCount / Double(slices)
        let routed = routedCount / Double(slices)
        return Report(
            decisionMedianNs: perCall[perCall.count / 2], decisionP99Ns: perCall[min(perCall.count - 1, perCall.count * 99 / 100)],
            rawSelectsPerSecond: rawRate, routedSelectsPerSecond: routed, ratio: routed / rawRate, node: primary.name)
    }

    /// Runs `body` back to back for `duration`; calls per second.
    static func loop(for duration: Duration, _ body: () async throws -> Void) async throws -> Double {
        let clock = ContinuousClock()
        let started = clock.now
        var count = 0
        while clock.now - started < duration {
            try await body()
            count += 1
        }
        return Double(count) / (clock.now - started).seconds
    }
}


extension Duration {
    var nanoseconds: Double { milliseconds * 1e6 }
    var seconds: Double { milliseconds / 1000 }
}
