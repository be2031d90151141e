import PostgresClient
import Synchronization

/// Who is asking: the Swift counterpart of "the current request, kept in a thread-local".
///
/// A context is a value with a name and a read policy. It is bound to a task with
/// ``run(_:)`` and is seen by every statement that task and its child tasks (`async let`,
/// task groups) send through a ``Cluster``; detached tasks do not inherit it. Code that
/// runs with no context at all (jobs, scripts, the CLI) is routed to the primary.
public struct RoutingContext: Sendable, Hashable, CustomStringConvertible {
    /// Shown in the query log, e.g. `admin`.
    public let name: String
    /// Whether reads may be served by replicas. Writes always go to the primary.
    public let readsFromReplicas: Bool
    /// Lag a replica may have and still serve this context's reads; nil uses the
    /// cluster's `max_replica_lag_ms`.
    public let maxReplicaLag: Duration?
    /// ``maxReplicaLag`` in milliseconds, for the routing hot path.
    let maxReplicaLagMs: Double?

    public init(name: String, readsFromReplicas: Bool, maxReplicaLag: Duration? = nil) {
        self.name = name
        self.readsFromReplicas = readsFromReplicas
        self.maxReplicaLag = maxReplicaLag
        self.maxReplicaLagMs = maxReplicaLag?.milliseconds
    }

    /// Staff traffic: every read and write on the primary, so what was just saved is
    /// what is shown.
    public static let admin = RoutingContext(name: "admin", readsFromReplicas: false)
    /// Site traffic: reads may go to healthy replicas.
    public static let `public` = RoutingContext(name: "public", readsFromReplicas: true)

    public var description: String { name }

    /// The context bound to the current task, if any.
    public static var current: RoutingContext? { RoutingScope.current?.context }

    /// Runs `body` in this context with a new consistency session (its own
    /// read-your-writes token), optionally starting from a token carried in from elsewhere
    /// (a cookie, a job payload).
    @discardableResult
    public func run<T>(
        token: ConsistencyToken? = nil, isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> T
    ) async rethrows -> T {
        try await run(tokens: token.map { [$0] } ?? [], isolation: isolation, body)
    }

    /// Runs `body` in this context starting from every token carried in (several cookies
    /// of one name, say): the first statement keeps the highest the primary has reached.
    @discardableResult
    public func run<T>(
        tokens: [ConsistencyToken], isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> T
    ) async rethrows -> T {
        let scope = RoutingScope(context: self, session: ConsistencySession(candidates: tokens))
        return try await RoutingScope.$current.withValue(scope, operation: body, isolation: isolation)
    }
}

/// The task-local binding: a context and the consistency session it writes into.
public final class RoutingScope: Sendable {
    @TaskLocal public static var current: RoutingScope?

    public let context: RoutingContext
    public let session: ConsistencySession
    /// Where a web request's statements ran, for `Server-Timing`; nil when not wanted.
    let trace: RequestTrace?

    init(context: RoutingContext, session: ConsistencySession, trace: RequestTrace? = nil) {
        self.context = context
        self.session = session
        self.trace = trace
    }
}

/// A position in the primary's WAL that a reader must see: issued after a write commits,
/// honoured by routing reads only to replicas that have replayed past it.
///
/// Its string form (`sy1:0/3000148`) can travel between processes in a cookie or a job.
public struct ConsistencyToken: Sendable, Hashable, CustomStringConvertible, Codable {
    public let lsn: LSN

    public init(lsn: LSN) { self.lsn = lsn }

    /// Parses the string form; nil for anything else.
    public init?(_ string: String) {
        guard string.hasPrefix("sy1:"), let lsn = LSN(String(string.dropFirst(4))) else { return nil }
        self.lsn = lsn
    }

    public var description: String { "sy1:\(lsn)" }
}

/// What one routing scope has written: the newest token, and when it last wrote.
///
/// A session may start from tokens carried in from outside (a cookie, a job payload).
/// Until one of them is checked against the primary's position they are *candidates*:
/// routing honours the highest, and the first statement settles them — the highest one
/// the primary has reached is kept, any ahead of it (forged, planted by a sibling
/// domain's cookie, or from before a failover that lost WAL) is dropped.
public final class ConsistencySession: Sendable {
    private struct State {
        var token: ConsistencyToken?
        var lastWrite: ContinuousClock.Instant?
        /// Carried-in tokens not yet checked against the primary, highest first; empty
        /// once settled. While any is here, ``token`` is the highest of them.
        var candidates: [ConsistencyToken]
        var pinnedUntil: ContinuousClock.Instant?
    }

    private let state: Mutex<State>

    public convenience init(token: ConsistencyToken? = nil) {
        self.init(candidates: token.map { [$0] } ?? [])
    }

    /// A session starting from every token a request carried (several cookies of one
    /// name, say): the highest one the primary has reached wins when settled.
    public init(candidates: [ConsistencyToken]) {
        let sorted = Array(Set(candidates)).sorted { $0.lsn > $1.lsn }
        state = Mutex(State(token: sorted.first, lastWrite: nil, candidates: sorted))
    }

    /// Everything routing reads, under one lock.
    struct Snapshot {
        var token: ConsistencyToken?
        var lastWrite: ContinuousClock.Instant?
        var pinnedUntil: ContinuousClock.Instant?
    }

    var snapshot: Snapshot {
        state.withLock {
            Snapshot(token: $0.token, lastWrite: $0.lastWrite, pinnedUntil: $0.pinnedUntil)
        }
    }

    /// The highest carried-in token that still needs checking, if any.
    var uncheckedToken: ConsistencyToken? { state.withLock { $0.candidates.first } }

    /// Settles the carried-in tokens against the primary's position `position`: the
    /// highest candidate at or below it becomes the token, the others are dropped.
    /// Returns the candidates dropped (ahead of the primary).
    @discardableResult
    func settle(primaryAt position: LSN) -> [ConsistencyToken] {
        state.withLock { state in
            guard !state.candidates.isEmpty else { return [] }
            let dropped = state.candidates.filter { $0.lsn > position }
            if state.token == state.candidates.first {
                state.token = state.candidates.first { $0.lsn <= position }
            }
            state.candidates = []
            return dropped
        }
    }

    /// The newest token of this session, to hand to another process.
    public var token: ConsistencyToken? { state.withLock { $0.token } }

    var lastWrite: ContinuousClock.Instant? { state.withLock { $0.lastWrite } }

    /// Until when reads must stay on the primary (a write whose position is unknown).
    var pinnedUntil: ContinuousClock.Instant? { state.withLock { $0.pinnedUntil } }

    /// Keeps reads on the primary until `instant`.
    func pin(until instant: ContinuousClock.Instant) {
        state.withLock { $0.pinnedUntil = max($0.pinnedUntil ?? instant, instant) }
    }

    /// Notes that a read saw data up to `lsn` (monotonic reads): later reads go only
    /// where that much is replayed.
    func observe(_ lsn: LSN) {
        state.withLock { state in
            if lsn > (state.token?.lsn ?? LSN(0)) { state.token = ConsistencyToken(lsn: lsn) }
        }
    }

    /// Records a committed write; tokens only move forward. The write's position is the
    /// primary's own: carried-in candidates not yet settled are settled by it (any ahead
    /// of it cannot be real, any below it is older than this write).
    func recordWrite(_ lsn: LSN?, at instant: ContinuousClock.Instant) {
        state.withLock { state in
            state.lastWrite = instant
            guard let lsn else { return }
            if !state.candidates.isEmpty {
                state.candidates = []
                state.token = ConsistencyToken(lsn: lsn)
            } else if lsn > (state.token?.lsn ?? LSN(0)) {
                state.token = ConsistencyToken(lsn: lsn)
            }
        }
    }
}
