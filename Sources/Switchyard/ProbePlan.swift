import PostgresClient

extension ClusterMonitor {
    /// How a round learns the replicas' state.
    public enum Strategy: String, Sendable, CaseIterable {
        /// One statement on the primary each round (its `pg_stat_replication` gives every
        /// streaming replica's positions); a replica is probed itself only when that view
        /// cannot be trusted (absent, not streaming, behind without progress), when it was
        /// not a healthy replica last round, and in turn, one every
        /// `replica_probe_interval_ms`. Steady load: `1/interval + 1/replica_probe_interval`
        /// statements per second for the whole cluster, whatever its size.
        case primaryView = "primary-view"
        /// Every node probed every round: `nodes/interval` statements per second.
        case everyNode = "every-node"
    }
}

/// Which nodes a round probes itself, and what it takes from the primary's view for the
/// others (pure; property-tested).
struct ProbePlan {
    /// What the plan remembers between rounds.
    struct Memory: Sendable {
        /// Each replica's last direct probe: what the primary's view cannot say (timeline,
        /// upstream, paused, its name in `pg_stat_replication`) and a replay position it had
        /// certainly reached.
        var lastDirect: [String: ProbeSample] = [:]
        /// The replay position the primary's view gave for each replica last round.
        var viewReplay: [String: LSN] = [:]
        /// Replicas to probe directly next round whatever the view says: a statement has
        /// waited on one longer than a probe may take (is it still answering?).
        var suspects: Set<String> = []
        /// Round-robin position and time of the last turn.
        var turn = 0
        var lastTurn: ContinuousClock.Instant?
    }

    /// The nodes to probe first: every node without a single known primary (or with
    /// `everyNode`), else the primary and every node that was not a healthy replica with
    /// a direct probe on record.
    static func firstPhase(names: [String], previous: Topology, strategy: ClusterMonitor.Strategy, memory: Memory) -> [Int] {
        let all = Array(names.indices)
        guard strategy == .primaryView, previous.primaries.count == 1, let primary = names.firstIndex(of: previous.primaries[0].name)
        else { return all }
        return all.filter { index in
            if index == primary { return true }
            guard let node = previous.node(names[index]) else { return true }
            return !node.reachable || node.role != .replica || memory.lastDirect[names[index]] == nil
                || memory.suspects.contains(names[index])
        }
    }

    /// After the first phase: the nodes still to probe, and samples for the rest from the
    /// primary's view. Replay positions only move forward on a timeline, so a replica's
    /// position is the later of what the view says and what its last probe said — both
    /// lower bounds of where it truly is, so a token is never judged replayed early.
    static func secondPhase(
        names: [String], probed: [Int: ProbeSample], memory: inout Memory, at instant: ContinuousClock.Instant,
        replicaProbeInterval: Duration
    ) -> (probe: [Int], fromView: [Int: ProbeSample]) {
        let rest = names.indices.filter { probed[$0] == nil }
        let primaries = probed.filter { $0.value.reachable && $0.value.inRecovery == false }
        guard primaries.count == 1, let primary = primaries.first?.value, let current = primary.currentLSN else {
            return (rest, [:])
        }
        var probe: [Int] = []
        var fromView: [Int: ProbeSample] = [:]
        for index in rest {
            let name = names[index]
            guard let last = memory.lastDirect[name] else { probe.append(index); continue }
            let rows = primary.replication.filter { $0.applicationName == (last.senderName ?? name) }
            guard rows.count == 1, rows[0].state == "streaming", let viewReplay = rows[0].replayLSN else {
                memory.viewReplay[name] = nil
                probe.append(index)
                continue
            }
            let peer = rows[0]
            let previousView = memory.viewReplay[name]
            memory.viewReplay[name] = viewReplay
            let replay = max(viewReplay, last.replayLSN ?? LSN(0))
            // Behind, and the view shows no progress since last round: the standby's report
            // is stale (an idle standby reports replay only every status interval) or
            // replay is stuck (paused, delayed, conflicting). Either way, ask it.
            if replay < current, previousView.map({ viewReplay <= $0 }) ?? true {
                probe.append(index)
                continue
            }
            var sample = last
            sample.reachable = true
            sample.error = nil
            sample.source = .primaryView
            sample.walReceiverStatus = "streaming"
            sample.receiveLSN = max(peer.flushLSN ?? LSN(0), last.receiveLSN ?? LSN(0))
            sample.replayLSN = replay
            sample.replayAgeSeconds = replay >= current ? 0 : peer.replayLagSeconds
            sample.replication = []
            sample.heartbeatLSN = nil
            sample.heartbeatProblem = nil
            // The positions are as of the standby's last report, not of this round: that is
            // when the replay position was true.
            // When the position used was true: the standby's report, or the direct probe
            // when that had seen it further along.
            sample.observedAt = replay > viewReplay ? last.observedAt : peer.replyTime ?? primary.observedAt
            fromView[index] = sample
        }
        // In turn, one replica the view covered is asked itself: what the view cannot say
        // (timeline, upstream, paused) stays fresh.
        if memory.lastTurn.map({ instant - $0 >= replicaProbeInterval }) ?? true {
            memory.lastTurn = instant
            for step in 0..<names.count {
                let index = (memory.turn + step) % names.count
                guard fromView[index] != nil else { continue }
                fromView[index] = nil
                probe.append(index)
                memory.turn = index + 1
                break
            }
        }
        return (probe.sorted(), fromView)
    }

    /// Notes the direct samples of a round: healthy replicas' are kept, anything else is
    /// forgotten (next round probes it again).
    static func remember(names: [String], direct: [Int: ProbeSample], memory: inout Memory) {
        for (index, sample) in direct {
            let name = names[index]
            memory.suspects.remove(name)
            if sample.reachable, sample.inRecovery == true {
                memory.lastDirect[name] = sample
            } else {
                memory.lastDirect[name] = nil
                memory.viewReplay[name] = nil
            }
        }
    }
}
