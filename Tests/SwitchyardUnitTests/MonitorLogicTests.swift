import PostgresClient
@testable import Switchyard
import LocalCluster
import PropertyBased
import Testing

/// The monitor's lag arithmetic on raw samples.
@Suite struct MonitorLogicTests {
    func primary(_ lsn: UInt64) -> ProbeSample {
        var sample = ProbeSample(reachable: true)
        sample.inRecovery = false
        sample.currentLSN = LSN(lsn)
        return sample
    }

    func replica(replay: UInt64, receive: UInt64? = nil, age: Double?) -> ProbeSample {
        var sample = ProbeSample(reachable: true)
        sample.inRecovery = true
        sample.replayLSN = LSN(replay)
        sample.receiveLSN = LSN(receive ?? replay)
        sample.replayAgeSeconds = age
        sample.walReceiverStatus = "streaming"
        return sample
    }

    @Test func idleCaughtUpReplicaReadsZeroEvenWithAnOldReplayTimestamp() {
        var behind: [String: ContinuousClock.Instant] = [:]
        let topology = ClusterMonitor.assemble(
            names: ["pg1", "pg2"], samples: [primary(5000), replica(replay: 5000, age: 3600)], at: .now,
            caughtUpAt: &behind)
        #expect(topology.node("pg2")?.lagBytes == 0)
        #expect(topology.node("pg2")?.lagSeconds == 0)
        #expect(topology.node("pg1")?.lagSeconds == 0)
        #expect(topology.primary?.name == "pg1")
    }

    @Test func lagSecondsAreBoundedByTheLastCaughtUpRound() {
        var caughtUp: [String: ContinuousClock.Instant] = [:]
        let now = ContinuousClock.now
        _ = ClusterMonitor.assemble(
            names: ["pg1", "pg2"], samples: [primary(5000), replica(replay: 5000, age: 3599)], at: now - .seconds(1),
            caughtUpAt: &caughtUp)
        // After an idle hour a write arrives: the replay timestamp is an hour old, but the
        // replica was caught up one second ago, so it is at most a second behind.
        let first = ClusterMonitor.assemble(
            names: ["pg1", "pg2"], samples: [primary(6000), replica(replay: 5000, age: 3600)], at: now,
            caughtUpAt: &caughtUp)
        let seconds = first.node("pg2")?.lagSeconds ?? -1
        #expect(first.node("pg2")?.lagBytes == 1000)
        #expect(seconds > 0.9 && seconds <= 1.0)
        // Still behind three seconds later: the bound grows from the same start.
        let later = ClusterMonitor.assemble(
            names: ["pg1", "pg2"], samples: [primary(9000), replica(replay: 5500, age: 3600)], at: now + .seconds(3),
            caughtUpAt: &caughtUp)
        let laterSeconds = later.node("pg2")?.lagSeconds ?? -1
        #expect(laterSeconds > 3.9 && laterSeconds <= 4.0)
        // A small replay age wins over the bound.
        let fresh = ClusterMonitor.assemble(
            names: ["pg1", "pg2"], samples: [primary(9100), replica(replay: 9000, age: 0.2)], at: now + .seconds(4),
            caughtUpAt: &caughtUp)
        #expect(fresh.node("pg2")?.lagSeconds == 0.2)
    }

    /// A replica already behind when the monitor starts has no bound until a round sees it
    /// caught up: its lag is the replay age, however many rounds it stays behind (a
    /// bound taken from the first round would hide a replica that is hours behind).
    @Test func aReplicaBehindFromTheFirstRoundIsNotBoundedByThatRound() {
        var caughtUp: [String: ContinuousClock.Instant] = [:]
        let now = ContinuousClock.now
        for round in 0..<5 {
            let topology = ClusterMonitor.assemble(
                names: ["pg1", "pg2"], samples: [primary(9000 + UInt64(round)), replica(replay: 5000, age: 7200 + Double(round))],
                at: now + .milliseconds(250 * round), caughtUpAt: &caughtUp)
            #expect(topology.node("pg2")?.lagSeconds == 7200 + Double(round))
        }
    }

    /// On any run of rounds (replica behind, caught up or unreachable, replay ages
    /// anywhere): lag in seconds is 0 exactly when no bytes are behind, never more than the
    /// replay age, and never more than the time since a round last saw the replica
    /// caught up.
    @Test func lagSecondsNeverExceedEitherBoundOnAnyRunOfRounds() async {
        // Per round: 0 caught up, 1-3 behind, 4 unreachable; the replay age; ms since the last round.
        let round = zip(Gen.int(in: 0...4), Gen.double(in: 0...7200), Gen.int(in: 1...2000))
        await propertyCheck(count: 2000, input: round.array(of: 1...30)) { rounds in
            var caughtUp: [String: ContinuousClock.Instant] = [:]
            var lastCaughtUp: ContinuousClock.Instant?
            var at = ContinuousClock.now
            var lsn: UInt64 = 1000
            for (state, age, step) in rounds {
                at += .milliseconds(step)
                lsn += 100
                let sample = state == 4 ? ProbeSample(reachable: false) : replica(replay: state == 0 ? lsn : lsn - UInt64(state) * 10, age: age)
                let node = ClusterMonitor.assemble(names: ["pg1", "pg2"], samples: [primary(lsn), sample], at: at, caughtUpAt: &caughtUp).node("pg2")!
                guard state != 4 else { #expect(node.lagSeconds == nil); continue }
                let seconds = node.lagSeconds ?? -1
                #expect((seconds == 0) == (state == 0) || (state != 0 && age == 0))
                #expect(seconds >= 0 && seconds <= age)
                if state != 0, let lastCaughtUp { #expect(seconds <= (at - lastCaughtUp).milliseconds / 1000 + 1e-9) }
                if state == 0 { lastCaughtUp = at }
            }
        }
    }

    @Test func unreachableNodesAndSplitBrain() {
        var behind: [String: ContinuousClock.Instant] = [:]
        let down = ProbeSample(reachable: false, error: "connection refused")
        let topology = ClusterMonitor.assemble(
            names: ["pg1", "pg2", "pg3"], samples: [primary(100), down, primary(200)], at: .now, caughtUpAt: &behind)
        #expect(topology.node("pg2")?.reachable == false)
        #expect(topology.node("pg2")?.role == .unknown)
        #expect(topology.node("pg2")?.error == "connection refused")
        #expect(topology.primaries.map(\.name) == ["pg1", "pg3"])
        #expect(topology.primary == nil)
    }

    @Test func withoutAPrimaryLagIsMeasuredAgainstWhatTheReplicaReceived() {
        var behind: [String: ContinuousClock.Instant] = [:]
        let topology = ClusterMonitor.assemble(
            names: ["pg1", "pg2"], samples: [ProbeSample(reachable: false), replica(replay: 100, receive: 400, age: 2)],
            at: .now, caughtUpAt: &behind)
        #expect(topology.node("pg2")?.lagBytes == 300)
        #expect(topology.node("pg2")?.lagSeconds == 2)
    }
}

/// Reconnect backoff against a port nobody listens on (no server involved).
@Suite struct ProbeBackoffTests {
    @Test func aDeadNodeIsRetriedLessAndLessOften() async throws {
        let port = try #require(PortCheck.freeRange(count: 1))
        let probe = ProbeConnection(
            node: NodeEndpoint(name: "gone", conninfo: "host=127.0.0.1 port=\(port) dbname=x user=x"), connectTimeout: .seconds(2))
        let interval = Duration.milliseconds(200)
        let first = await probe.probe(deadline: .seconds(3), interval: interval)
        #expect(!first.reachable)
        #expect(first.error?.contains("refused") == true)
        _ = await probe.probe(deadline: .seconds(3), interval: interval)
        #expect(probe.attempts == 2, "the first failure is retried at once")
        let skipped = await probe.probe(deadline: .seconds(3), interval: interval)
        #expect(probe.attempts == 2, "within the backoff no connection is attempted")
        #expect(skipped.error == first.error, "the last error is still reported")
        try await Task.sleep(for: interval * 2)
        _ = await probe.probe(deadline: .seconds(3), interval: interval)
        #expect(probe.attempts == 3, "after the backoff it tries again")
    }
}

/// Which nodes a primary-view round asks itself, on generated pictures.
@Suite struct ProbePlanTests {
    static let names = ["pg1", "pg2", "pg3", "pg4"]

    static func replicaSample(replay: UInt64, name: String) -> ProbeSample {
        var sample = ProbeSample(reachable: true)
        sample.inRecovery = true
        sample.replayLSN = LSN(replay)
        sample.receiveLSN = LSN(replay)
        sample.timeline = 1
        sample.senderName = name
        sample.walReceiverStatus = "streaming"
        return sample
    }

    /// Whatever the primary's view says (stale, missing, not streaming) and whatever was
    /// remembered: every node is either probed or filled in from the view, and a filled-in
    /// replay position is never ahead of where the replica truly is.
    @Test func aPositionFromTheViewIsNeverAheadOfTheTruth() async {
        // Per replica: true replay behind the primary (0-300), how stale the view is, how
        // stale the last direct probe was, and the row's fate (0 streaming, 1 missing, 2 catchup, 3 renamed).
        let replica = zip(Gen.int(in: 0...300), Gen.int(in: 0...300), Gen.int(in: 0...300), Gen.int(in: 0...3), Gen.int(in: 0...300))
        await propertyCheck(count: 3000, input: replica.array(of: 3...3), Gen.int(in: 0...3)) { replicas, primaryFate in
            let current: UInt64 = 10_000
            var memory = ProbePlan.Memory()
            memory.lastTurn = .now
            var primary = ProbeSample(reachable: primaryFate != 3)
            primary.inRecovery = primaryFate == 2
            primary.currentLSN = LSN(current)
            var truth: [String: UInt64] = [:]
            for (offset, (behind, viewStale, directStale, fate, previousStale)) in replicas.enumerated() {
                let name = Self.names[offset + 1]
                let trueReplay = current - UInt64(behind)
                truth[name] = trueReplay
                memory.lastDirect[name] = Self.replicaSample(replay: trueReplay - min(UInt64(directStale), trueReplay), name: name)
                let viewReplay = trueReplay - min(UInt64(viewStale), trueReplay)
                memory.viewReplay[name] = LSN(viewReplay - min(UInt64(previousStale), viewReplay))
                if fate != 1 {
                    primary.replication.append(ReplicationPeer(
                        applicationName: fate == 3 ? "other\(offset)" : name, state: fate == 2 ? "catchup" : "streaming",
                        flushLSN: LSN(current), replayLSN: LSN(viewReplay), replayLagSeconds: 0.01))
                }
            }
            let (probe, fromView) = ProbePlan.secondPhase(
                names: Self.names, probed: [0: primary], memory: &memory, at: .now, replicaProbeInterval: .seconds(1))
            #expect(Set(probe).isDisjoint(with: fromView.keys))
            #expect(Set(probe).union(fromView.keys) == [1, 2, 3])
            if primaryFate >= 2 { #expect(fromView.isEmpty) }
            for (index, sample) in fromView {
                let name = Self.names[index]
                #expect(sample.replayLSN!.value <= truth[name]!, "\(name): \(sample.replayLSN!) past \(truth[name]!)")
                #expect(sample.source == .primaryView)
                let fate = replicas[index - 1].3
                #expect(fate == 0, "\(name) filled in from a row that is \(fate)")
            }
        }
    }

    @Test func aQuietClusterCostsTheCallerOneStatementPerRound() {
        var memory = ProbePlan.Memory()
        var previous = Topology(nodes: Self.names.map { name in
            var node = NodeState(name: name)
            node.reachable = true
            node.role = name == "pg1" ? .primary : .replica
            return node
        })
        #expect(ProbePlan.firstPhase(names: Self.names, previous: previous, strategy: .primaryView, memory: memory) == [0, 1, 2, 3])
        for name in Self.names.dropFirst() { memory.lastDirect[name] = Self.replicaSample(replay: 500, name: name) }
        #expect(ProbePlan.firstPhase(names: Self.names, previous: previous, strategy: .primaryView, memory: memory) == [0])
        #expect(ProbePlan.firstPhase(names: Self.names, previous: previous, strategy: .everyNode, memory: memory) == [0, 1, 2, 3])
        var primary = ProbeSample(reachable: true)
        primary.inRecovery = false
        primary.currentLSN = LSN(500)
        primary.replication = Self.names.dropFirst().map { ReplicationPeer(applicationName: $0, state: "streaming", replayLSN: LSN(400)) }
        let start = ContinuousClock.now
        var probed: [[Int]] = []
        for round in 0..<8 {
            let (probe, fromView) = ProbePlan.secondPhase(
                names: Self.names, probed: [0: primary], memory: &memory, at: start + .milliseconds(250 * round),
                replicaProbeInterval: .seconds(1))
            probed.append(probe)
            // Caught up by the last direct probe, though the view still says 400.
            for sample in fromView.values { #expect(sample.replayLSN == LSN(500)) }
        }
        // One replica in turn each second, none in between.
        #expect(probed == [[1], [], [], [], [2], [], [], []])
        // A replica that leaves the primary's list is asked at once.
        primary.replication.removeFirst()
        let (probe, _) = ProbePlan.secondPhase(
            names: Self.names, probed: [0: primary], memory: &memory, at: start + .milliseconds(2100), replicaProbeInterval: .seconds(1))
        #expect(probe.contains(1))
        previous.nodes[2].reachable = false
        #expect(ProbePlan.firstPhase(names: Self.names, previous: previous, strategy: .primaryView, memory: memory) == [0, 2])
        // A replica a statement has waited on too long is asked itself next round, once.
        previous.nodes[2].reachable = true
        memory.suspects.insert("pg4")
        #expect(ProbePlan.firstPhase(names: Self.names, previous: previous, strategy: .primaryView, memory: memory) == [0, 3])
        ProbePlan.remember(names: Self.names, direct: [3: Self.replicaSample(replay: 500, name: "pg4")], memory: &memory)
        #expect(memory.suspects.isEmpty)
        #expect(ProbePlan.firstPhase(names: Self.names, previous: previous, strategy: .primaryView, memory: memory) == [0])
    }
}
