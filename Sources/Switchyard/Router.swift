import PostgresClient
import Synchronization

/// Read or write, as the caller declares it (`Cluster.query` reads, `Cluster.execute`
/// writes).
public enum StatementKind: String, Sendable, Codable {
    case read, write
}

/// Everything a router may look at to place one statement.
public struct RouteRequest: Sendable {
    public var operation: StatementKind
    /// The table the statement is about, when the caller says so.
    public var table: String?
    /// Free-form hints from the caller, e.g. `["node": "pg2"]`.
    public var hints: [String: String]
    /// The task's routing context; nil when there is none.
    public var context: RoutingContext?
    /// The context's read-your-writes token.
    public var token: ConsistencyToken?
    /// When the context last wrote (for pin-window consistency).
    public var lastWrite: ContinuousClock.Instant?
    /// Until when the context must read from the primary whatever the policy: it wrote
    /// and the write's WAL position could not be read, so no token can prove a replica
    /// has it.
    public var pinnedUntil: ContinuousClock.Instant?

    public init(
        operation: StatementKind, table: String? = nil, hints: [String: String] = [:], context: RoutingContext? = nil,
        token: ConsistencyToken? = nil, lastWrite: ContinuousClock.Instant? = nil, pinnedUntil: ContinuousClock.Instant? = nil
    ) {
        self.pinnedUntil = pinnedUntil
        self.operation = operation
        self.table = table
        self.hints = hints
        self.context = context
        self.token = token
        self.lastWrite = lastWrite
    }
}

/// Why a node was passed over.
public struct SkippedNode: Sendable, Equatable, CustomStringConvertible {
    public enum Why: Sendable, Equatable {
        case down, notStreaming(String?), lagging(ms: Double, limitMs: Int), behindToken(LSN?, LSN), paused, excluded
    }

    public var node: String
    public var why: Why

    public var description: String {
        switch why {
        case .down: return "\(node) down"
        case .notStreaming(let status): return "\(node) skipped: not streaming (\(status ?? "no WAL receiver"))"
        case .lagging(let ms, let limit): return "\(node) skipped: lag \(formatMilliseconds(ms)) > \(limit) ms"
        case .behindToken(let replay, let token):
            return "\(node) skipped: replayed \(replay?.description ?? "?") < token \(token)"
        case .paused: return "\(node) skipped: replay paused"
        case .excluded: return "\(node) skipped: failed this statement"
        }
    }
}

/// Why a statement went where it went. Kept structured, not as text, so routing stays
/// allocation-light; the query log renders it for every entry.
public enum RouteReason: Sendable, Equatable, CustomStringConvertible {
    /// A write, or a context that reads from the primary (`admin → pg1`).
    case primaryContext(context: String, operation: StatementKind)
    /// No routing context: the safe default.
    case noContext
    /// A replica chosen by the selection policy.
    case replica(context: String, selection: ReplicaSelection, lagMs: Double?)
    /// No replica qualified; the primary serves the read.
    case fallback(context: String, skipped: [SkippedNode])
    /// Pinned to the primary by a recent write (pin-window policy).
    case pinned(context: String, sinceWriteMs: Double)
    /// Inside `Cluster.transaction`.
    case transaction
    /// Decided by a custom router.
    case custom(router: String, note: String)
    /// A replica not yet known to have replayed the context's token: the read went out
    /// with a replay guard, and ran only because the replica had caught up.
    case guarded(context: String, selection: ReplicaSelection, token: LSN)
    /// The first node failed with a connection error; retried here.
    indirect case retry(failed: String, error: String, then: RouteReason)
    /// A guarded read's replay guard found `replica` behind the context's token (it had
    /// replayed only `replayed`): the primary served the read instead.
    case guardFellBack(context: String, replica: String, replayed: LSN?, token: LSN)

    public var description: String { render(node: nil) }

    /// The reason with the serving node named, as the query log shows it.
    public func render(node: String?) -> String {
        let arrow = node.map { " → \($0)" } ?? ""
        switch self {
        case .primaryContext(let context, let operation):
            return operation == .write ? "\(context) write\(arrow)" : "\(context)\(arrow)"
        case .noContext:
            return "no context\(arrow) (primary)"
        case .replica(let context, let selection, let lagMs):
            let lag = lagMs.map { " \(formatMilliseconds($0))" } ?? ""
            return "\(context)\(arrow) (\(selection.rawValue)\(lag.isEmpty ? "" : ",")\(lag))"
        case .fallback(let context, let skipped):
            let why = skipped.isEmpty ? "no replicas" : skipped.map(\.description).joined(separator: "; ")
            return "\(context)\(arrow) (primary: \(why))"
        case .pinned(let context, let since):
            return "\(context)\(arrow) (pinned: wrote \(formatMilliseconds(since)) ago)"
        case .guarded(let context, let selection, let token):
            return "\(context)\(arrow) (\(selection.rawValue), replay guard: replayed ≥ token \(token))"
        case .transaction:
            return "transaction\(arrow)"
        case .custom(let router, let note):
            return "\(router)\(arrow)\(note.isEmpty ? "" : " (\(note))")"
        case .retry(let failed, let error, let then):
            return "retry: \(failed) \(error)\(arrow); first: \(then.render(node: failed))"
        case .guardFellBack(let context, let replica, let replayed, let token):
            return "\(context)\(arrow) (replay guard on \(replica): replayed \(replayed?.description ?? "?") < token \(token); the primary served it)"
        }
    }

    /// A short code for narrow screens: `write`, `primary` (the context reads from the
    /// primary), `no-ctx`, `replica`, `fallback` (no replica qualified), `pinned`, `txn`,
    /// `router` (a custom router), `guarded` (a replica passed the replay guard),
    /// `guard-fb` (the guard found it behind; the primary served), `retry`.
    public var code: String {
        switch self {
        case .primaryContext(_, let operation): return operation == .write ? "write" : "primary"
        case .noContext: return "no-ctx"
        case .replica: return "replica"
        case .fallback: return "fallback"
        case .pinned: return "pinned"
        case .transaction: return "txn"
        case .custom: return "router"
        case .guarded: return "guarded"
        case .guardFellBack: return "guard-fb"
        case .retry: return "retry"
        }
    }
}

/// Where a statement goes, and why.
public struct RouteDecision: Sendable, Equatable {
    public var node: String
    public var reason: RouteReason
    /// When set, the read may run on `node` only if it has replayed up to here; it is
    /// sent with a replay guard in the same round trip and goes to the primary when the
    /// guard finds the node behind.
    public var replayGuard: LSN?

    public init(node: String, reason: RouteReason, replayGuard: LSN? = nil) {
        self.node = node
        self.reason = reason
        self.replayGuard = replayGuard
    }
}

/// Places statements on nodes. Routers chain: the first that returns a decision wins;
/// return nil to pass to the next. The ``DefaultRouter`` ends every chain.
///
/// Routers are called for every statement: keep them fast and free of I/O.
public protocol Router: Sendable {
    func route(_ request: RouteRequest, topology: Topology) -> RouteDecision?
}

/// How a replica is picked among those that qualify.
public enum ReplicaSelection: String, Sendable, Codable, CaseIterable {
    /// Uniformly at random: the naive baseline.
    case random
    /// In turn.
    case roundRobin = "round-robin"
    /// The one with the least lag (bytes, then seconds).
    case leastLag = "least-lag"
}

/// How reads that follow a write are kept from seeing the past.
public enum ConsistencyPolicy: Sendable, Equatable {
    /// Nothing: reads may be stale.
    case none
    /// Reads carrying a token go only to replicas that replayed past it, else the primary.
    case lsn
    /// A context that wrote reads from the primary for this long.
    case pinWindow(Duration)
}

/// The built-in policy: writes, `admin`-like contexts and context-free code go to the
/// primary; contexts that read from replicas get a healthy, recent-enough replica.
public struct DefaultRouter: Router {
    public var selection: ReplicaSelection
    /// Replicas further behind than this serve no reads; nil disables the check.
    public var maxReplicaLag: Duration? { didSet { maxReplicaLagMs = maxReplicaLag?.milliseconds } }
    private var maxReplicaLagMs: Double?
    public var consistency: ConsistencyPolicy
    /// Under ``ConsistencyPolicy/lsn``, when no replica is known to have replayed a read's
    /// token, send the read to the replica furthest ahead with a replay guard (same round
    /// trip; the primary serves it if the guard fails) instead of straight to the primary.
    public var replayGuard: Bool
    private let counter = Counter()

    public init(
        selection: ReplicaSelection = .leastLag, maxReplicaLag: Duration? = .milliseconds(500), consistency: ConsistencyPolicy = .lsn,
        replayGuard: Bool = true
    ) {
        self.selection = selection
        self.maxReplicaLag = maxReplicaLag
        self.maxReplicaLagMs = maxReplicaLag?.milliseconds
        self.consistency = consistency
        self.replayGuard = replayGuard
    }

    public func route(_ request: RouteRequest, topology: Topology) -> RouteDecision? {
        route(request, topology: topology, excluding: [])
    }

    private func primaryReachable(_ topology: Topology) -> Bool {
        topology.nodes.contains { $0.reachable && $0.role == .primary }
    }

    /// Why `request` goes to the primary whatever the replicas' state — no context, a
    /// write, or a context that reads from the primary — or nil when replicas may serve it.
    static func primaryOnly(_ operation: StatementKind, context: RoutingContext?) -> RouteReason? {
        guard let context else { return .noContext }
        guard operation == .read, context.readsFromReplicas else {
            return .primaryContext(context: context.name, operation: operation)
        }
        return nil
    }

    /// Routes, treating the nodes in `excluded` as unusable (retries).
    public func route(_ request: RouteRequest, topology: Topology, excluding excluded: [String]) -> RouteDecision? {
        // Without exactly one reachable primary, only replica reads can be placed; the
        // cluster turns a nil into a clear error (no primary, or split brain).
        let primary = topology.primaryIndex.map { topology.nodes[$0].name }
        if let reason = Self.primaryOnly(request.operation, context: request.context) { return primary.map { RouteDecision(node: $0, reason: reason) } }
        guard let context = request.context else { return nil }
        if let pinnedUntil = request.pinnedUntil, ContinuousClock.now < pinnedUntil, let lastWrite = request.lastWrite {
            return primary.map {
                RouteDecision(node: $0, reason: .pinned(context: context.name, sinceWriteMs: (ContinuousClock.now - lastWrite).milliseconds))
            }
        }
        if case .pinWindow(let window) = consistency, let lastWrite = request.lastWrite {
            let since = ContinuousClock.now - lastWrite
            if since < window {
                return primary.map {
                    RouteDecision(node: $0, reason: .pinned(context: context.name, sinceWriteMs: since.milliseconds))
                }
            }
        }
        let lagLimit = context.maxReplicaLagMs ?? maxReplicaLagMs
        let token = consistency == .lsn ? request.token : nil
        var skipped: [SkippedNode] = []
        var eligible: [NodeState] = []
        eligible.reserveCapacity(topology.nodes.count)
        var furthestBehindToken: NodeState?
        for node in topology.nodes where node.role != .primary || !node.reachable {
            if excluded.contains(node.name) {
                skipped.append(SkippedNode(node: node.name, why: .excluded))
            } else if !node.reachable {
                skipped.append(SkippedNode(node: node.name, why: .down))
            } else if node.role != .replica {
                continue
            } else if node.walReceiverStatus != "streaming" && node.walReceiverStatus != "unknown" && primaryReachable(topology) {
                // "unknown": the monitor's role may not see the receiver's state; lag (from
                // LSNs, which every role can read) still decides. Without any reachable
                // primary (a failover under way) nobody streams, and a replica that replayed
                // all it received is as recent as anything reachable: lag decides then too.
                skipped.append(SkippedNode(node: node.name, why: .notStreaming(node.walReceiverStatus)))
            } else if let limit = lagLimit, (node.lagBytes ?? 0) > 0, (node.lagMilliseconds ?? .infinity) > limit {
                // Behind by an unknown time counts as too far behind.
                skipped.append(SkippedNode(node: node.name, why: .lagging(ms: node.lagMilliseconds ?? .infinity, limitMs: Int(limit))))
            } else if let token, (node.replayLSN ?? LSN(0)) < token.lsn {
                skipped.append(SkippedNode(node: node.name, why: .behindToken(node.replayLSN, token.lsn)))
                if (node.replayLSN ?? LSN(0)) > (furthestBehindToken?.replayLSN ?? LSN(0)) || furthestBehindToken == nil {
                    furthestBehindToken = node
                }
            } else {
                eligible.append(node)
            }
        }
        guard !eligible.isEmpty else {
            // The last sample predates the write; the replica may well have replayed it by
            // now. Ask it with the read itself; the primary serves the read if not.
            if replayGuard, let token, let candidate = furthestBehindToken, primary != nil {
                return RouteDecision(
                    node: candidate.name, reason: .guarded(context: context.name, selection: selection, token: token.lsn),
                    replayGuard: token.lsn)
            }
            return primary.map { RouteDecision(node: $0, reason: .fallback(context: context.name, skipped: skipped)) }
        }
        let chosen: NodeState
        switch selection {
        case .random:
            chosen = eligible[Int(counter.random() % UInt64(eligible.count))]
        case .roundRobin:
            chosen = eligible[Int(counter.next() % UInt64(eligible.count))]
        case .leastLag:
            // Ties (an idle cluster: every replica at 0) take turns.
            func lag(_ node: NodeState) -> (UInt64, Double) { (node.lagBytes ?? .max, node.lagSeconds ?? .infinity) }
            var least = lag(eligible[0])
            var ties = 0
            for node in eligible {
                let value = lag(node)
                if value.0 < least.0 || (value.0 == least.0 && value.1 < least.1) {
                    least = value
                    ties = 1
                } else if value == least {
                    ties += 1
                }
            }
            var pick = ties > 1 ? Int(counter.next() % UInt64(ties)) : 0
            var found = eligible[0]
            for node in eligible where lag(node) == least {
                if pick == 0 {
                    found = node
                    break
                }
                pick -= 1
            }
            chosen = found
        }
        return RouteDecision(
            node: chosen.name, reason: .replica(context: context.name, selection: selection, lagMs: chosen.lagMilliseconds))
    }

    /// A lock-free counter and a fast pseudo-random source (splitmix64), shared by copies.
    final class Counter: Sendable {
        private let value = Atomic<UInt64>(0)
        private let seed = UInt64.random(in: 0...UInt64.max)

        func next() -> UInt64 { value.add(1, ordering: .relaxed).newValue }

        func random() -> UInt64 {
            var z = next() &* 0x9E37_79B9_7F4A_7C15 &+ seed
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }
}


