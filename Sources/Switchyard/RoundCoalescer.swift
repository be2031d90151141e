import Foundation
import PostgresClient
import Synchronization

/// Runs one probe round at a time; callers arriving during a round share its result.
actor RoundCoalescer {
    private var running: Task<Topology, Never>?

    func run(_ body: @escaping @Sendable () async -> Topology) async -> Topology {
        if let running { return await running.value }
        let task = Task { await body() }
        running = task
        let result = await task.value
        running = nil
        return result
    }
}
