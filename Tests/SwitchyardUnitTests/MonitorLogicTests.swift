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
        var wal = WALTimeline()
        let topology = ClusterMonitor.assemble(
            names: ["pg1", "pg2"], samples: [primary(5000), replica(replay: 5000, age: 3600)], at: .now, wal: &wal)
        #expect(topology.node("pg2")?.lagBytes == 0)
        #expect(topology.node("pg2")?.lagSeconds == 0)
        #expect(topology.node("pg1")?.lagSeconds == 0)
        #expect(topology.primary?.name == "pg1")
    }

    /// A replica waiting at a heartbeat the primary committed a second ago, with the one
    /// before applied, is a second behind: an hour-old replay timestamp (nothing else
    /// written for an hour) does not count.
    @Test func lagIsTimedByTheHeartbeatsNotByTheLastReplayedTransaction() {
        var wal = WALTimeline()
        let start = 1_000_000.0
        for round in 0..<8 {
            var beat = primary(1000 + UInt64(round) * 100)
            beat.heartbeatLSN = LSN(1000 + UInt64(round) * 100 + 60)
            beat.observedAt = start + 0.25 * Double(round)
            var late = replica(replay: 1000 + 60, age: 3600)
            late.observedAt = start + 0.25 * Double(round) + 0.01
            let topology = ClusterMonitor.assemble(names: ["pg1", "pg2"], samples: [beat, late], at: .now, wal: &wal)
            guard round == 7 else { continue }
            // Round 7 at start+1.75: waiting at round 0's heartbeat, nothing applied before it
            // is known, so the delay is at least 1.76 s (shown as that, not as the hour).
            let seconds = topology.node("pg2")?.lagSeconds ?? -1
            #expect(abs(seconds - 1.76) < 1e-6, "\(seconds)")
            #expect(topology.node("pg2")?.lagIsUpperBound == false)
        }
        var beat = primary(1800)
        beat.heartbeatLSN = LSN(1860)
        beat.observedAt = start + 2
        var waiting = replica(replay: 1460, age: 3600)
        waiting.observedAt = start + 2
        let topology = ClusterMonitor.assemble(names: ["pg1", "pg2"], samples: [beat, waiting], at: .now, wal: &wal)
        let seconds = topology.node("pg2")?.lagSeconds ?? -1
        // Waiting at round 4's heartbeat (t = 1.0), round 3's (0.75) applied: 1.0 to 1.25 s
        // late; its oldest missing change is 1.0 s old.
        #expect(seconds == 1.0, "\(seconds)")
    }

    /// A replica behind everything this monitor saw written falls back to the age of its
    /// last replayed transaction, and says it is an upper bound.
    @Test func aReplicaBehindEveryMarkFallsBackToItsReplayAge() {
        var wal = WALTimeline()
        var first = primary(9000)
        first.observedAt = 100
        var behind = replica(replay: 5000, age: 7200)
        behind.observedAt = 100
        let topology = ClusterMonitor.assemble(names: ["pg1", "pg2"], samples: [first, behind], at: .now, wal: &wal)
        #expect(topology.node("pg2")?.lagSeconds == 7200)
        #expect(topology.node("pg2")?.lagIsUpperBound == true)
    }

    @Test func unreachableNodesAndSplitBrain() {
        var wal = WALTimeline()
        let down = ProbeSample(reachable: false, error: "connection refused")
        let topology = ClusterMonitor.assemble(
            names: ["pg1", "pg2", "pg3"], samples: [primary(100), down, primary(200)], at: .now, wal: &wal)
        #expect(topology.node("pg2")?.reachable == false)
        #expect(topology.node("pg2")?.role == .unknown)
        #expect(topology.node("pg2")?.error == "connection refused")
        #expect(topology.primaries.map(\.name) == ["pg1", "pg3"])
        #expect(topology.primary == nil)
    }

    @Test func withoutAPrimaryLagIsMeasuredAgainstWhatTheReplicaReceived() {
        var wal = WALTimeline()
        let topology = ClusterMonitor.assemble(
            names: ["pg1", "pg2"], samples: [ProbeSample(reachable: false), replica(replay: 100, receive: 400, age: 2)],
            at: .now, wal: &wal)
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
