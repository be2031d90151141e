import PostgresClient
@testable import Switchyard
import Testing

/// Routing decisions on hand-built topologies: no server needed.
@Suite struct RouterTests {
    static func node(
        _ name: String, role: NodeRole, reachable: Bool = true, replay: UInt64 = 100, lagBytes: UInt64 = 0,
        lagSeconds: Double? = 0, status: String? = "streaming"
    ) -> NodeState {
        Fixtures.node(name, role: role, reachable: reachable, replay: replay, lagBytes: lagBytes, lagSeconds: lagSeconds, status: status)
    }

    static let healthy = Fixtures.healthy

    @Test func writesAdminAndNoContextGoToThePrimary() {
        let router = DefaultRouter()
        #expect(router.route(RouteRequest(operation: .read), topology: Self.healthy) == RouteDecision(node: "pg1", reason: .noContext))
        let admin = router.route(RouteRequest(operation: .read, context: .admin), topology: Self.healthy)
        #expect(admin?.node == "pg1")
        #expect(admin?.reason.render(node: "pg1") == "admin → pg1")
        let write = router.route(RouteRequest(operation: .write, context: .public), topology: Self.healthy)
        #expect(write?.node == "pg1")
        #expect(write?.reason.render(node: "pg1") == "public write → pg1")
    }

    @Test func publicReadsUseReplicasByPolicy() {
        let roundRobin = DefaultRouter(selection: .roundRobin)
        let nodes = (0..<10).compactMap { _ in roundRobin.route(RouteRequest(operation: .read, context: .public), topology: Self.healthy)?.node }
        #expect(nodes.filter { $0 == "pg2" }.count == 5)
        #expect(nodes.filter { $0 == "pg3" }.count == 5)
        let random = DefaultRouter(selection: .random)
        let picks = (0..<400).compactMap { _ in random.route(RouteRequest(operation: .read, context: .public), topology: Self.healthy)?.node }
        #expect(Set(picks) == ["pg2", "pg3"])
        #expect(picks.filter { $0 == "pg2" }.count > 120)
        let leastLag = DefaultRouter(selection: .leastLag)
        let topology = Topology(nodes: [
            Self.node("pg1", role: .primary, replay: 1000),
            Self.node("pg2", role: .replica, replay: 900, lagBytes: 100, lagSeconds: 0.05),
            Self.node("pg3", role: .replica, replay: 990, lagBytes: 10, lagSeconds: 0.01),
        ])
        let decision = leastLag.route(RouteRequest(operation: .read, context: .public), topology: topology)
        #expect(decision?.node == "pg3")
        #expect(decision?.reason.render(node: "pg3") == "public → pg3 (least-lag, 10 ms)")
    }

    @Test func laggingDownAndNotStreamingReplicasAreSkippedWithReasons() {
        let topology = Topology(nodes: [
            Self.node("pg1", role: .primary, replay: 5000),
            Self.node("pg2", role: .replica, reachable: false),
            Self.node("pg3", role: .replica, replay: 1000, lagBytes: 4000, lagSeconds: 2.1),
            Self.node("pg4", role: .replica, replay: 5000, status: "catchup"),
        ])
        let decision = DefaultRouter(maxReplicaLag: .milliseconds(500)).route(RouteRequest(operation: .read, context: .public), topology: topology)
        #expect(decision?.node == "pg1")
        #expect(decision?.reason.render(node: "pg1")
            == "public → pg1 (primary: pg2 down; pg3 skipped: lag 2.1 s > 500 ms; pg4 skipped: not streaming (catchup))")
        // A context may allow more lag.
        let reports = RoutingContext(name: "reports", readsFromReplicas: true, maxReplicaLag: .milliseconds(5000))
        #expect(DefaultRouter(maxReplicaLag: .milliseconds(500)).route(RouteRequest(operation: .read, context: reports), topology: topology)?.node == "pg3")
        // Behind by an unknown time counts as too far.
        let unknown = Topology(nodes: [
            Self.node("pg1", role: .primary, replay: 5000),
            Self.node("pg2", role: .replica, replay: 1000, lagBytes: 4000, lagSeconds: nil),
        ])
        #expect(DefaultRouter().route(RouteRequest(operation: .read, context: .public), topology: unknown)?.node == "pg1")
    }

    @Test func tokensKeepReadsOffReplicasThatHaveNotReplayedThem() {
        let topology = Topology(nodes: [
            Self.node("pg1", role: .primary, replay: 2000),
            Self.node("pg2", role: .replica, replay: 2000),
            Self.node("pg3", role: .replica, replay: 1500, lagBytes: 500, lagSeconds: 0.2),
        ])
        let router = DefaultRouter(selection: .roundRobin, consistency: .lsn)
        let token = ConsistencyToken(lsn: LSN(1800))
        for _ in 0..<6 {
            #expect(router.route(RouteRequest(operation: .read, context: .public, token: token), topology: topology)?.node == "pg2")
        }
        let ahead = ConsistencyToken(lsn: LSN(2500))
        // No replica known to have it: the one furthest ahead gets the read with a guard.
        let guarded = router.route(RouteRequest(operation: .read, context: .public, token: ahead), topology: topology)
        #expect(guarded?.node == "pg2")
        #expect(guarded?.replayGuard == LSN(2500))
        #expect(guarded?.reason.render(node: "pg2") == "public → pg2 (round-robin, replay guard: replayed ≥ token 0/9C4)")
        // Replicas known to have the token need no guard.
        #expect(router.route(RouteRequest(operation: .read, context: .public, token: token), topology: topology)?.replayGuard == nil)
        // Without the guard, straight to the primary, saying why.
        let unguarded = DefaultRouter(selection: .roundRobin, consistency: .lsn, replayGuard: false)
        let fallback = unguarded.route(RouteRequest(operation: .read, context: .public, token: ahead), topology: topology)
        #expect(fallback?.node == "pg1")
        #expect(fallback?.replayGuard == nil)
        #expect(fallback?.reason.render(node: "pg1").contains("pg2 skipped: replayed 0/7D0 < token 0/9C4") == true)
        // With read-your-writes off, tokens are ignored.
        let off = DefaultRouter(selection: .roundRobin, consistency: .none)
        let nodes = (0..<4).compactMap { _ in off.route(RouteRequest(operation: .read, context: .public, token: ahead), topology: topology)?.node }
        #expect(!nodes.contains("pg1"))
    }

    @Test func pinWindowPinsAfterAWrite() {
        let router = DefaultRouter(consistency: .pinWindow(.seconds(2)))
        let recent = RouteRequest(operation: .read, context: .public, lastWrite: .now - .milliseconds(300))
        let decision = router.route(recent, topology: Self.healthy)
        #expect(decision?.node == "pg1")
        #expect(decision?.reason.render(node: "pg1").hasPrefix("public → pg1 (pinned: wrote") == true)
        let old = RouteRequest(operation: .read, context: .public, lastWrite: .now - .seconds(3))
        #expect(router.route(old, topology: Self.healthy)?.node != "pg1")
    }

    @Test func noPrimaryOrTwoPrimariesRefuseWritesButReplicaReadsContinue() {
        let noPrimary = Topology(nodes: [
            Self.node("pg1", role: .primary, reachable: false),
            Self.node("pg2", role: .replica, replay: 1000),
        ])
        #expect(DefaultRouter().route(RouteRequest(operation: .write, context: .admin), topology: noPrimary) == nil)
        #expect(DefaultRouter().route(RouteRequest(operation: .read, context: .public), topology: noPrimary)?.node == "pg2")
        #expect(RoutingError.noPrimary(noPrimary).kind == .noPrimary)
        #expect(RoutingError.noPrimary(noPrimary).message.contains("unreachable: pg1"))
        // A failover under way: the WAL receiver lost its primary, nothing newer exists
        // anywhere reachable, so a caught-up replica keeps serving; with a primary back it
        // is skipped again until it streams.
        let orphaned = Topology(nodes: [
            Self.node("pg1", role: .primary, reachable: false),
            Self.node("pg2", role: .replica, replay: 1000, status: "waiting"),
            Self.node("pg3", role: .replica, replay: 1000, lagBytes: 5000, lagSeconds: nil, status: nil),
        ])
        #expect(DefaultRouter().route(RouteRequest(operation: .read, context: .public), topology: orphaned)?.node == "pg2")
        var back = orphaned
        back.nodes[0] = Self.node("pg1", role: .primary, replay: 1000)
        #expect(DefaultRouter().route(RouteRequest(operation: .read, context: .public), topology: back)?.node == "pg1")
        let split = Topology(nodes: [
            Self.node("pg1", role: .primary, replay: 1000),
            Self.node("pg2", role: .primary, replay: 1000),
        ])
        #expect(split.primary == nil)
        #expect(DefaultRouter().route(RouteRequest(operation: .write, context: .admin), topology: split) == nil)
        #expect(RoutingError.noPrimary(split).kind == .splitBrain(["pg1", "pg2"]))
    }

    @Test func excludedNodesAreNotRetried() {
        let router = DefaultRouter(selection: .roundRobin)
        for _ in 0..<4 {
            let decision = router.route(RouteRequest(operation: .read, context: .public), topology: Self.healthy, excluding: ["pg2"])
            #expect(decision?.node == "pg3")
        }
    }

    @Test func tokensRoundTripAsStrings() throws {
        let token = ConsistencyToken(lsn: LSN(0x1_0000_0010))
        #expect(token.description == "sy1:1/10")
        #expect(ConsistencyToken("sy1:1/10") == token)
        #expect(ConsistencyToken("1/10") == nil)
        #expect(ConsistencyToken("sy1:zz") == nil)
        let session = ConsistencySession(token: token)
        session.settle(primaryAt: LSN(0x1_0000_0020))
        session.recordWrite(LSN(5), at: .now)
        #expect(session.token == token, "settled tokens never move backwards")
        session.recordWrite(LSN(0x2_0000_0000), at: .now)
        #expect(session.token?.lsn == LSN(0x2_0000_0000))
    }

    @Test func retryReasonNamesBothNodes() {
        let reason = RouteReason.retry(
            failed: "pg3", error: "connection lost",
            then: .replica(context: "public", selection: .roundRobin, lagMs: 0))
        #expect(reason.render(node: "pg2") == "retry: pg3 connection lost → pg2; first: public → pg3 (round-robin, 0 ms)")
    }

    /// A write whose WAL position could not be read pins its session to the primary:
    /// read-your-writes is kept, not silently lost.
    @Test func aWriteWithoutAPositionPinsTheSessionToThePrimary() {
        let session = ConsistencySession()
        session.recordWrite(nil, at: .now)
        session.pin(until: .now + .seconds(60))
        let router = DefaultRouter(selection: .roundRobin, consistency: .lsn)
        let pinned = RouteRequest(operation: .read, context: .public, token: session.token, lastWrite: session.lastWrite,
                                  pinnedUntil: session.pinnedUntil)
        for _ in 0..<4 {
            let decision = router.route(pinned, topology: Self.healthy)
            #expect(decision?.node == "pg1")
            if case .pinned = decision?.reason {} else { Issue.record("not pinned: \(String(describing: decision?.reason))") }
        }
        // Once the pin expires, replicas serve reads again.
        let expired = RouteRequest(operation: .read, context: .public, lastWrite: session.lastWrite, pinnedUntil: .now - .seconds(1))
        #expect(router.route(expired, topology: Self.healthy)?.node != "pg1")
    }
}
