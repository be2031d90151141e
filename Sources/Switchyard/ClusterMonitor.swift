public import CoreMetrics
import Foundation
import PostgresClient
import Synchronization

/// Probes every node on its own connection each interval and keeps the cluster's
/// picture: who is primary, how far each replica is behind, recent history.
///
/// One source of truth for lag: the router, `switchyard lag`, the console's side pane and
/// the failover checks all read it. Roles come from probing, never from config order, so
/// a promotion is picked up by the next round.
public final class ClusterMonitor: Sendable {
    public struct Settings: Sendable {
        /// Time between rounds (config `monitor.interval_ms`, default 1 s).
        public var interval: Duration
        /// libpq connect timeout for probe connections (whole seconds, at least 2).
        public var connectTimeout: Duration
        /// Samples kept per node (default 120).
        public var historyLength: Int
        /// Patroni's REST API, read every round beside the probes.
        public var patroni: PatroniSettings?
        /// Who is probed each round (config `monitor.strategy`, default primary-view).
        public var strategy: Strategy
        /// With primary-view: one replica is probed itself, in turn, this often (config
        /// `monitor.replica_probe_interval_ms`, default 2 s).
        public var replicaProbeInterval: Duration
        /// The primary's probe also commits a heartbeat, the clock lag is measured by
        /// (config `monitor.heartbeat`, default on).
        public var heartbeat: Bool

        public init(
            interval: Duration = .seconds(1), connectTimeout: Duration = .seconds(2), historyLength: Int = 120, patroni: PatroniSettings? = nil,
            strategy: Strategy = .primaryView, replicaProbeInterval: Duration = .seconds(2), heartbeat: Bool = true
        ) {
            self.heartbeat = heartbeat
            self.interval = interval
            self.connectTimeout = connectTimeout
            self.historyLength = historyLength
            self.patroni = patroni
            self.strategy = strategy
            self.replicaProbeInterval = replicaProbeInterval
        }

        /// The monitor settings of a config file.
        public init(_ configuration: ClusterConfiguration) {
            self.init(
                interval: configuration.monitorInterval, patroni: configuration.patroni, strategy: configuration.monitorStrategy,
                replicaProbeInterval: configuration.replicaProbeInterval, heartbeat: configuration.heartbeat)
        }

        /// How long one node's probe may take before it counts as unreachable.
        var probeDeadline: Duration { max(interval, connectTimeout) + .milliseconds(500) }
    }

    public let nodes: [NodeEndpoint]
    public let settings: Settings
    private let gauges: MonitorGauges?

    private struct State {
        var topology: Topology {
            didSet { shared = SharedTopology(topology) }
        }
        /// The same picture behind one reference: a statement takes that reference
        /// instead of copying every field (and every node) of the picture.
        private(set) var shared: SharedTopology
        var history: [String: [NodeState]] = [:]
        var rounds = 0
        /// The primary's positions over time, for each replica's lag in seconds.
        var wal = WALTimeline()
        var plan = ProbePlan.Memory()

        init(topology: Topology) {
            self.topology = topology
            shared = SharedTopology(topology)
        }
    }

    private let state: Mutex<State>
    private let connections: [String: ProbeConnection]
    private let loop = Mutex<Task<Void, Never>?>(nil)
    private let rounds = RoundCoalescer()
    private let broadcast = Broadcast<Topology>()

    /// `metrics`: where the lag gauges and round times go (none when nil).
    public init(nodes: [NodeEndpoint], settings: Settings = Settings(), metrics: (any MetricsFactory)? = nil) {
        self.nodes = nodes
        self.settings = settings
        gauges = metrics.map { MonitorGauges(nodes: nodes.map(\.name), factory: $0) }
        state = Mutex(State(topology: Topology(nodes: nodes.map { NodeState(name: $0.name) }, sampledAt: .now)))
        var connections: [String: ProbeConnection] = [:]
        for node in nodes { connections[node.name] = ProbeConnection(node: node.direct, connectTimeout: settings.connectTimeout, heartbeat: settings.heartbeat) }
        self.connections = connections
    }

    /// The latest picture.
    public var topology: Topology { state.withLock { $0.topology } }

    /// The latest picture, shared rather than copied: what each statement's routing reads.
    var sharedTopology: SharedTopology { state.withLock { $0.shared } }

    /// Rounds completed since start.
    public var roundCount: Int { state.withLock { $0.rounds } }

    /// Probe statements sent to each node since start.
    public var statementsSent: [String: Int] { connections.mapValues(\.statementsSent) }

    /// Probe connections opened to each node since start.
    public var connectionsOpened: [String: Int] { connections.mapValues(\.connectionsOpened) }

    /// The last samples of `node`, oldest first (at most `historyLength`).
    public func history(of node: String) -> [NodeState] { state.withLock { $0.history[node] ?? [] } }

    /// Starts probing every interval (the first round runs at once).
    public func start() {
        loop.withLock { task in
            guard task == nil else { return }
            task = Task { [weak self] in
                while !Task.isCancelled {
                    guard let self else { return }
                    let started = ContinuousClock.now
                    let topology = await self.probeNow()
                    // Patroni's leader key as a hint: while the member holding it is not yet
                    // seen out of recovery (a promotion under way), look again soon.
                    let promoting = topology.patroni?.leaderNode.map { topology.node($0)?.role != .primary } ?? false
                    // Rounds are a fifth of an interval early or late at random (the same
                    // rate on average): heartbeats then fall at varying phases against the
                    // replicas' reports, which is what narrows each replica's lag figure.
                    let interval = self.settings.interval * Double.random(in: 0.8...1.2)
                    let next = started + (promoting ? min(self.settings.interval, .milliseconds(100)) : interval)
                    try? await Task.sleep(until: next, clock: .continuous)
                }
            }
        }
    }

    /// Stops probing and closes the probe connections.
    public func stop() async {
        let task = loop.withLock { task -> Task<Void, Never>? in
            defer { task = nil }
            return task
        }
        task?.cancel()
        await task?.value
        for connection in connections.values { await connection.close() }
        broadcast.finish()
    }

    /// Runs a probe round now (joining one already running) and returns its picture.
    @discardableResult
    public func probeNow() async -> Topology {
        await rounds.run { await self.round() }
    }

    /// A picture for a one-off report (`check`, `lag`): a replica behind in the first
    /// round lacks changes written before the monitor started, so when they were written
    /// is unknown (its lag would be the age of its last replayed transaction: an hour after
    /// an idle hour), and a replica caught up with an idle primary says nothing of how late
    /// it applies. Rounds follow every `pause` until each replica has applied the first
    /// heartbeat this monitor wrote (or, without heartbeats, anything the monitor saw
    /// written), for at most `limit`: a replica that applies 1.5 s late takes about 1.5 s
    /// to report exactly; a healthy one, one pause.
    public func probeSettled(pause: Duration = .milliseconds(100), limit: Duration = .seconds(3)) async -> Topology {
        let deadline = ContinuousClock.now + limit
        var topology = await probeNow()
        while ContinuousClock.now + pause < deadline {
            let firstHeartbeat = state.withLock { $0.wal.marks.first { $0.heartbeat != nil }?.heartbeat }
            let unsettled = topology.nodes.contains { node in
                guard node.reachable, node.role == .replica else { return false }
                if node.lagIsUpperBound { return true }
                guard let firstHeartbeat, let replay = node.replayLSN else { return false }
                return replay <= firstHeartbeat
            }
            guard unsettled else { break }
            try? await Task.sleep(for: pause)
            topology = await probeNow()
        }
        return topology
    }

    /// Every new picture, after each round.
    public func updates() -> AsyncStream<Topology> { broadcast.subscribe(bufferingNewest: 1) }

    /// Notes that `node` has replayed at least up to `lsn` (a replay guard said so), so
    /// reads carrying older tokens need not ask again until the next round.
    public func observeReplay(_ node: String, at lsn: LSN) {
        state.withLock { state in
            guard let index = state.topology.nodes.firstIndex(where: { $0.name == node }),
                state.topology.nodes[index].role == .replica,
                lsn > (state.topology.nodes[index].replayLSN ?? LSN(0))
            else { return }
            state.topology.nodes[index].replayLSN = lsn
        }
    }

    /// A write found `node` read-only (SQLSTATE 25006): it is no primary any more — an HA
    /// engine demoted it between two rounds. It gets no writes until a probe says it leads.
    public func reportReadOnly(_ node: String) {
        state.withLock { state in
            guard state.topology.nodes.contains(where: { $0.name == node && $0.role == .primary }) else { return }
            state.topology.fenced[node] = "it refused a write as read-only (demoted?)"
        }
    }

    /// Asks for a direct probe of `node` in the next round, whatever the primary's view
    /// says of it: a statement has been waiting on it longer than a probe may take. A node
    /// that stopped answering is then found silent within one round and its answer limit.
    public func probeDirectly(_ node: String) {
        state.withLock { _ = $0.plan.suspects.insert(node) }
    }

    /// How long a probe on an open connection may wait for its answer.
    var answerLimit: Duration { ProbeConnection.answerLimit(deadline: settings.probeDeadline, interval: settings.interval) }

    /// Marks `node` unreachable at once (a statement lost its connection); the next
    /// successful probe brings it back.
    public func reportUnreachable(_ node: String, error: String) {
        state.withLock { state in
            guard let index = state.topology.nodes.firstIndex(where: { $0.name == node }) else { return }
            state.topology.nodes[index].reachable = false
            state.topology.nodes[index].error = error
        }
    }

    private func round() async -> Topology {
        let started = ContinuousClock.now
        async let patroniView = patroniRound()
        let names = nodes.map(\.name)
        let first = state.withLock { state in
            ProbePlan.firstPhase(names: names, previous: state.topology, strategy: settings.strategy, memory: state.plan)
        }
        var direct = await probe(first)
        let (more, fromView) = state.withLock { state in
            ProbePlan.secondPhase(
                names: names, probed: direct, memory: &state.plan, at: .now, replicaProbeInterval: settings.replicaProbeInterval)
        }
        if !more.isEmpty { direct.merge(await probe(more)) { $1 } }
        state.withLock { ProbePlan.remember(names: names, direct: direct, memory: &$0.plan) }
        let samples = names.indices.map { direct[$0] ?? fromView[$0]! }
        let view = await patroniView
        let topology = state.withLock { state -> Topology in
            let now = ContinuousClock.now
            var topology = Self.assemble(names: nodes.map(\.name), samples: samples, at: now, wal: &state.wal)
            if let view {
                topology.patroni = view
                topology.fenced = view.fenced(topology.nodes)
            }
            state.topology = topology
            state.rounds += 1
            for node in topology.nodes {
                // In place: copying the array out and back would copy every kept sample.
                state.history[node.name, default: []].append(node)
                let excess = state.history[node.name]!.count - settings.historyLength
                if excess > 0 { state.history[node.name]!.removeFirst(excess) }
            }
            return topology
        }
        gauges?.publish(topology, round: ContinuousClock.now - started)
        broadcast.send(topology)
        return topology
    }

    /// Probes the nodes at `indices` at once, under one deadline for the lot.
    private func probe(_ indices: [Int]) async -> [Int: ProbeSample] {
        guard !indices.isEmpty else { return [:] }
        let deadline = settings.probeDeadline
        let interval = settings.interval
        let limit = ProbeConnection.answerLimit(deadline: deadline, interval: interval)
        return await withTaskGroup(of: (Int, ProbeSample)?.self) { group in
            for index in indices {
                let connection = connections[nodes[index].name]!
                group.addTask { (index, await connection.probe(deadline: deadline, interval: interval)) }
            }
            // One timer for the round: probes on open connections still waiting when it
            // fires are ended (a hung node); new connections keep their own deadline.
            group.addTask {
                try? await Task.sleep(for: limit)
                return nil
            }
            var samples: [Int: ProbeSample] = [:]
            while samples.count < indices.count, let next = await group.next() {
                guard let (index, sample) = next else {
                    for index in indices where samples[index] == nil { connections[nodes[index].name]!.abandon(limit: limit) }
                    continue
                }
                samples[index] = sample
            }
            group.cancelAll()
            return samples
        }
    }

    private func patroniRound() async -> PatroniView? {
        guard let patroni = settings.patroni else { return nil }
        return await patroni.client.view(endpoints: nodes.map { ($0.name, Conninfo.endpoint($0.monitorConninfo)) })
    }

    /// Turns one round of raw samples into node states with lag (pure; unit-tested).
    ///
    /// Lag in bytes is the primary's LSN when the replica's position was true (its
    /// current one for a direct probe) minus the replica's replay LSN (the replica's own
    /// receive LSN when no single primary answered). Lag in seconds is 0
    /// while no bytes are behind; otherwise the age of the oldest change the replica has
    /// not applied, read off the primary's positions over time (``WALTimeline``) as of
    /// when the replica's position was true. A replica behind every position kept, or
    /// without a single primary, falls back to the age of its last replayed transaction
    /// (an upper bound).
    static func assemble(
        names: [String], samples: [ProbeSample], at instant: ContinuousClock.Instant, wal: inout WALTimeline
    ) -> Topology {
        var states: [NodeState] = []
        let primaries = samples.indices.filter { samples[$0].reachable && samples[$0].inRecovery == false }
        let primaryLSN = primaries.count == 1 ? samples[primaries[0]].currentLSN : nil
        var heartbeatProblem: String?
        if primaries.count == 1, let position = primaryLSN {
            let primary = samples[primaries[0]]
            wal.record(
                primary: names[primaries[0]], timeline: primary.timeline, position: position, heartbeat: primary.heartbeatLSN,
                at: primary.finishedAt ?? primary.observedAt ?? Date().timeIntervalSince1970)
            heartbeatProblem = primary.heartbeatProblem
        }
        var replication: [ReplicationPeer] = []
        for (name, sample) in zip(names, samples) {
            var node = NodeState(name: name)
            node.reachable = sample.reachable
            node.error = sample.error
            guard sample.reachable, let inRecovery = sample.inRecovery else {
                states.append(node)
                continue
            }
            node.role = inRecovery ? .replica : .primary
            node.currentLSN = sample.currentLSN
            node.receiveLSN = sample.receiveLSN
            node.replayLSN = sample.replayLSN
            node.walReceiverStatus = sample.walReceiverStatus
            node.source = sample.source
            node.upstream = sample.upstream
            node.configuredUpstream = sample.configuredUpstream
            node.timeline = sample.timeline
            node.replayPaused = sample.replayPaused
            guard inRecovery else {
                node.lagBytes = 0
                node.lagSeconds = 0
                replication = sample.replication
                states.append(node)
                continue
            }
            // Against the primary's position when the replica's was true (a report from the
            // primary's view is up to a round old; the WAL written since is not its lag).
            let reference = primaryLSN.map { current in
                sample.observedAt.flatMap { wal.position(at: $0) }.map { min($0, current) } ?? current
            }
            if let reference = reference ?? sample.receiveLSN {
                let bytes = reference.bytes(after: sample.replayLSN ?? LSN(0))
                node.lagBytes = bytes
                if bytes == 0 {
                    node.lagSeconds = 0
                    wal.forget(name)
                } else if primaryLSN != nil, let replay = sample.replayLSN,
                    let seconds = wal.staleness(
                        of: name, replay: replay, at: sample.observedAt ?? Date().timeIntervalSince1970,
                        replayAge: sample.source == .direct ? sample.replayAgeSeconds : nil)
                {
                    node.lagSeconds = seconds
                } else {
                    node.lagSeconds = sample.replayAgeSeconds.map { max($0, 0) }
                    node.lagIsUpperBound = node.lagSeconds != nil
                }
            }
            states.append(node)
        }
        var topology = Topology(nodes: states, sampledAt: instant, replication: replication)
        topology.heartbeatProblem = heartbeatProblem
        return topology
    }
}

/// A ``Topology`` that no one changes, behind one reference.
final class SharedTopology: Sendable {
    let topology: Topology
    /// The primary's place in `topology.nodes` and its name, found once per round rather
    /// than on every statement.
    let primaryIndex: Int?
    let primaryName: String?

    init(_ topology: Topology) {
        self.topology = topology
        primaryIndex = topology.primaryIndex
        primaryName = primaryIndex.map { topology.nodes[$0].name }
    }
}
