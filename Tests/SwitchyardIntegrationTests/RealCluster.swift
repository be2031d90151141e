import SwitchyardTestSupport
import Testing

/// Starts one real cluster (primary + 2 replicas) around every test of the suite it is
/// applied to, and stops it afterwards, also when tests fail.
struct RealClusterTrait: SuiteTrait, TestScoping {
    func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        let cluster = try await TestCluster.start(replicas: 2, pgbouncer: true)
        do {
            try await TestCluster.$current.withValue(cluster) { try await function() }
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }
}

extension Trait where Self == RealClusterTrait {
    static var realCluster: Self { RealClusterTrait() }
}

/// Every test that needs PostgreSQL lives in an extension of this suite. They run one
/// at a time: some of them delay, stop and start nodes of the shared cluster.
@Suite(.realCluster, .serialized)
struct ClusterTests {}
