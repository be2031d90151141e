import Foundation
import Logging
import PostgresClient
import Synchronization
import Tracing

/// A statement's result with where it ran and why.
public struct RoutedResult: Sendable {
    public var result: PostgresResult
    public var node: String
    public var reason: RouteReason

    public init(result: PostgresResult, node: String, reason: RouteReason) {
        self.result = result
        self.node = node
        self.reason = reason
    }
}

/// The routed database: one pool per node, a monitor, routers and a query log.
///
/// ```swift
/// let cluster = try Cluster(configuration: .load(path: "switchyard.toml"))
/// await cluster.start()
/// try await RoutingContext.public.run {
///     try await cluster.execute("update items set name = $1 where id = $2", ["Lamp", 7])
///     let item = try await cluster.query("select name from items where id = $1", [7])  // sees "Lamp"
/// }
/// ```
///
/// `query` reads and `execute` writes; each statement is routed on its own by the task's
/// ``RoutingContext``. Writes go only to the node the monitor knows as primary.
public final class Cluster: Sendable {
    public let configuration: ClusterConfiguration
    public let monitor: ClusterMonitor
    public let log: QueryLog
    /// Consulted in order before ``defaultRouter``.
    public let routers: [any Router]
    public let defaultRouter: DefaultRouter
    private let pools: [String: ConnectionPool]
    /// The same pools in config order, the order of the monitor's nodes.
    private let poolsInOrder: [ConnectionPool]
    /// Nodes reached through a pooler in transaction mode.
    private let transactionPooled: Set<String>
    /// Ends statements waiting on nodes the monitor finds silent.
    private let silenceWatcher = Mutex<Task<Void, Never>?>(nil)
    /// Metric handles and the tracer (see ``Telemetry``).
    let instruments: Instruments

    /// `telemetry`: where metrics and spans go; by default the process's bootstrapped
    /// backends as they are now (bootstrap them before making the cluster).
    public init(
        configuration: ClusterConfiguration, routers: [any Router] = [], log: QueryLog? = nil, telemetry: Telemetry? = nil
    ) throws {
        self.configuration = configuration
        self.routers = routers
        let telemetry = telemetry ?? Telemetry()
        instruments = Instruments(telemetry, nodes: configuration.nodes)
        self.log = try log ?? QueryLog(
            capacity: configuration.queryLogCapacity,
            file: configuration.queryLogFile.map {
                try QueryLogFile(path: $0, maxBytes: configuration.queryLogMaxBytes, keep: configuration.queryLogKeep)
            }, source: configuration.queryLogSource)
        defaultRouter = DefaultRouter(
            selection: configuration.replicaSelection, maxReplicaLag: configuration.maxReplicaLag,
            consistency: configuration.consistency, replayGuard: configuration.replayGuard)
        monitor = ClusterMonitor(
            nodes: configuration.nodes,
            settings: ClusterMonitor.Settings(configuration), metrics: telemetry.recordsMetrics ? telemetry.metrics : nil)
        var pools: [String: ConnectionPool] = [:]
        for node in configuration.nodes {
            pools[node.name] = ConnectionPool(
                node: node.name, conninfo: node.conninfo, maxConnections: configuration.poolMaxConnections,
                checkoutTimeout: configuration.poolCheckoutTimeout, metrics: telemetry.recordsMetrics ? telemetry.metrics : nil,
                // Behind a transaction pooler, a prepared statement would live on whichever
                // server session ran it: every statement goes unnamed.
                options: {
                    var options = ConnectOptions(
                        connectTimeout: configuration.connectTimeout,
                        statementCacheCapacity: node.poolMode == .transaction ? 0 : configuration.statementCache,
                        statementBound: configuration.statementBound, tcpUserTimeout: configuration.tcpUserTimeout)
                    // Behind a transaction pooler a session setting would land on whichever
                    // server session ran it; read-only is then kept per transaction by the console.
                    if configuration.readOnly && node.poolMode != .transaction {
                        options.sessionSettings["default_transaction_read_only"] = "on"
                    }
                    return options
                }())
        }
        self.pools = pools
        poolsInOrder = configuration.nodes.map { pools[$0.name]! }
        transactionPooled = Set(configuration.nodes.filter { $0.poolMode == .transaction }.map(\.name))
    }

    /// Starts the monitor and waits for its first round, so routing knows the roles.
    ///
    /// From then on, when a round finds a node silent (no answer: a partition, a hung
    /// host), the statements still waiting on it are ended at once: reads on a replica
    /// are retried elsewhere, a write says its outcome is unknown. None waits on TCP.
    public func start() async {
        await monitor.probeNow()
        let updates = monitor.updates()
        let watcher = Task { [weak self] in
            for await topology in updates {
                guard let self else { return }
                let now = ContinuousClock.now
                let patience = self.monitor.answerLimit
                for node in topology.nodes {
                    if node.isSilent {
                        self.pools[node.name]?.abandonRunning("\(node.name) stopped answering (\(node.error ?? "no answer")); connection given up")
                    } else if node.reachable, node.role == .replica, node.source == .primaryView,
                        let waiting = self.pools[node.name]?.longestRunning(at: now), waiting > patience
                    {
                        // Known only through the primary's view, which still lists a standby
                        // that went silent: have it answer a probe itself.
                        self.monitor.probeDirectly(node.name)
                    }
                }
            }
        }
        silenceWatcher.withLock { $0?.cancel(); $0 = watcher }
        monitor.start()
    }

    /// Stops the monitor and closes every connection.
    public func shutdown() async {
        silenceWatcher.withLock { $0?.cancel(); $0 = nil }
        await monitor.stop()
        for pool in pools.values { await pool.close() }
        log.close()
    }

    /// The pool of `node`, for tools that must talk to one node on purpose.
    public func pool(_ node: String) -> ConnectionPool? { pools[node] }

    /// The current task's read-your-writes token, to carry to another process.
    public static var currentToken: ConsistencyToken? { RoutingScope.current?.session.token }

    // MARK: Statements

    /// Runs a read, routed by the task's context.
    public func query(
        _ sql: String, _ parameters: [any PostgresEncodable] = [], table: String? = nil, hints: [String: String] = [:],
        timeout: Duration? = nil
    ) async throws -> PostgresResult {
        try await run(.read, sql, parameters, table: table, hints: hints, timeout: timeout).result
    }

    /// Runs a write on the primary. In a context with read-your-writes, the commit's WAL
    /// position becomes the context's token.
    @discardableResult
    public func execute(
        _ sql: String, _ parameters: [any PostgresEncodable] = [], table: String? = nil, hints: [String: String] = [:],
        timeout: Duration? = nil
    ) async throws -> PostgresResult {
        try await run(.write, sql, parameters, table: table, hints: hints, timeout: timeout).result
    }

    /// Like `query`/`execute`, also telling where the statement ran and why. `timeout`
    /// overrides `[pool] statement_timeout_ms` for this statement (`.zero`: no bound).
    public func run(
        _ operation: StatementKind, _ sql: String, _ parameters: [any PostgresEncodable] = [], table: String? = nil,
        hints: [String: String] = [:], timeout: Duration? = nil
    ) async throws -> RoutedResult {
        do {
            guard let timeout else { return try await routed(operation, sql, parameters, table: table, hints: hints) }
            return try await PostgresConnection.withStatementBound(timeout) {
                try await routed(operation, sql, parameters, table: table, hints: hints)
            }
        } catch let error as RoutingError {
            instruments.count("switchyard_refusals_total", [
                ("context", RoutingScope.current?.context.name ?? "none"), ("operation", operation.rawValue),
                ("kind", Instruments.label(of: error.kind)),
            ])
            throw error
        }
    }

    private func routed(
        _ operation: StatementKind, _ sql: String, _ parameters: [any PostgresEncodable], table: String?, hints: [String: String]
    ) async throws -> RoutedResult {
        if SessionStatements.controlsTransaction(sql) {
            throw RoutingError(
                kind: .refused,
                message: "\(sql.prefix(40)): each statement may run on another pooled connection; use Cluster.transaction { … } for a transaction")
        }
        let scope = RoutingScope.current
        await settle(scope)
        // One reference to the monitor's picture, not a copy of it.
        let shared = monitor.sharedTopology
        // A statement bound for the primary whatever the session holds needs nothing of it.
        let session = primaryBound(operation, scope?.context) ? nil : scope?.session.snapshot
        let request = RouteRequest(
            operation: operation, table: table, hints: hints, context: scope?.context, token: session?.token,
            lastWrite: session?.lastWrite, pinnedUntil: session?.pinnedUntil)
        let (decision, pool) = try route(request, in: shared)
        try refuseSessionState(sql, on: decision.node)
        do {
            return try await perform(request, decision, pool: pool, sql, parameters, scope: scope)
        } catch let error as PostgresError
            where operation == .read && error.isConnectionError
            && (error.nothingSent || shared.topology.node(decision.node)?.role == .replica)
        {
            // One retry elsewhere, only where it is safe: the read never reached the server,
            // or it ran on a replica, which cannot change anything (a standby refuses
            // nextval() and every write). A read the primary may have run (a volatile
            // function, nextval()) is not repeated behind the caller's back.
            var next = try? retryRoute(request, after: decision, failedWith: error)
            if next == nil, error.nothingSent {
                // Nowhere else in this picture, and the node refused the connection (a primary
                // shutting down for a switchover): the picture may be a round old. Ask the
                // monitor again, twice at most, before giving up; nothing was sent.
                for _ in 0..<2 where next == nil {
                    await monitor.probeNow()
                    next = try? retryRoute(request, after: decision, failedWith: error)
                    if next == nil { try? await Task.sleep(for: .milliseconds(100)) }
                }
            }
            guard let (retry, retryPool) = next else { throw error }
            instruments.count("switchyard_read_retries_total", [
                ("node", decision.node), ("context", request.context?.name ?? "none"), ("operation", operation.rawValue),
            ])
            routingLogger.notice(
                "read retried on another node", metadata: ["failed": "\(decision.node)", "retry": "\(retry.node)", "error": "\(error.message)"])
            return try await perform(request, retry, pool: retryPool, sql, parameters, scope: scope)
        } catch let error as PostgresError where operation == .write && error.sqlState == "25006" && !configuration.readOnly {
            // Read-only: the node was demoted since the last round. Later writes fail fast.
            // (Not when this process opens its sessions read-only itself: then it is expected.)
            monitor.reportReadOnly(decision.node)
            throw error
        }
    }


    /// Where a read goes after it failed on `failed.node` with a connection error: the
    /// same router chain (custom routers first) over the monitor's current picture with
    /// that node marked down, so the retry keeps everything a decision carries — a replay
    /// guard above all: a session holding a token must not be retried unguarded on a
    /// replica the monitor last saw behind it. Throws `error` when no other node can take it.
    func retryRoute(
        _ request: RouteRequest, after failed: RouteDecision, failedWith error: PostgresError
    ) throws -> (decision: RouteDecision, pool: ConnectionPool) {
        var topology = monitor.topology
        if let index = topology.nodes.firstIndex(where: { $0.name == failed.node }) {
            topology.nodes[index].reachable = false
            topology.nodes[index].error = "failed this statement"
        }
        guard let found = try? route(request, in: topology), found.decision.node != failed.node else { throw error }
        var retry = found.decision
        retry.reason = .retry(
            failed: failed.node, error: error.kind == .connectionLost ? "connection lost" : "unreachable",
            then: failed.reason)
        return (retry, found.pool)
    }

    /// Refuses, for a node behind a transaction pooler, a statement that would leave state
    /// on a server session the pooler lends to others.
    func refuseSessionState(_ sql: String, on node: String) throws {
        guard !transactionPooled.isEmpty, transactionPooled.contains(node), let why = SessionStatements.poolerRefusal(sql) else { return }
        throw RoutingError(kind: .refused, message: "\(node) is reached through a transaction pooler: \(why)")
    }

    /// The step every statement path (`run`, `transaction`, `copyOut`) takes first: a
    /// token carried in from outside may be ahead of anything the primary wrote — forged,
    /// planted beside the real one, from another cluster, or from a primary that failed
    /// over before its replicas got that far. Such a token would send every read to the
    /// primary forever, or hide a real one; so the carried-in candidates are settled
    /// against the primary's position before the scope's first statement: the highest one
    /// the primary has reached is kept, the others are dropped (and logged). A write
    /// moves the token only forward, so this runs before writes too.
    func settle(_ scope: RoutingScope?) async {
        guard let scope, let highest = scope.session.uncheckedToken else { return }
        guard let primary = monitor.topology.primary, var position = primary.currentLSN else { return }  // decide later
        if highest.lsn > position {
            // The sample may predate the write that made the token: ask the primary itself.
            let asked = try? await pools[primary.name]?.withConnection { connection in
                try await connection.query("select pg_catalog.pg_current_wal_insert_lsn()::text").scalar(String.self)
            }
            guard let current = asked.flatMap({ $0 }).flatMap(LSN.init) else { return }
            position = current
        }
        let dropped = scope.session.settle(primaryAt: position)
        if !dropped.isEmpty {
            routingLogger.warning(
                "dropped consistency tokens ahead of the primary",
                metadata: ["tokens": "\(dropped.map(\.description).joined(separator: ","))", "primary_lsn": "\(position)"])
        }
    }

    /// Where `request` would go now. Throws when no node can take it.
    public func route(_ request: RouteRequest, topology: Topology? = nil) throws -> RouteDecision {
        if let topology { return try route(request, in: topology).decision }
        return try route(request, in: monitor.sharedTopology).decision
    }

    /// Whether a statement goes to the primary whatever the replicas' state and the
    /// session's token: no custom router, and the default policy's answer is the primary.
    private func primaryBound(_ operation: StatementKind, _ context: RoutingContext?) -> Bool {
        routers.isEmpty && DefaultRouter.primaryOnly(operation, context: context) != nil
    }

    /// Where `request` goes in the monitor's `shared` picture, and that node's pool.
    func route(_ request: RouteRequest, in shared: SharedTopology) throws -> (decision: RouteDecision, pool: ConnectionPool) {
        if routers.isEmpty, let reason = DefaultRouter.primaryOnly(request.operation, context: request.context) {
            return try primaryRoute(reason, in: shared)
        }
        return try route(request, in: shared.topology)
    }

    /// The primary the monitor's round found, and its pool by position (the monitor keeps
    /// the nodes in config order; by name should that ever differ): no pass over the
    /// nodes, no hash lookup.
    private func primaryRoute(_ reason: RouteReason, in shared: SharedTopology) throws -> (decision: RouteDecision, pool: ConnectionPool) {
        guard let index = shared.primaryIndex, let name = shared.primaryName,
            let pool = index < poolsInOrder.count && poolsInOrder[index].node == name ? poolsInOrder[index] : pools[name]
        else { throw RoutingError.noPrimary(shared.topology) }
        return (RouteDecision(node: name, reason: reason), pool)
    }

    /// Where `request` goes in `topology`, and that node's pool.
    func route(_ request: RouteRequest, in topology: Topology) throws -> (decision: RouteDecision, pool: ConnectionPool) {
        var decision: RouteDecision?
        var routerName = "DefaultRouter"
        for router in routers {
            if let answer = router.route(request, topology: topology) {
                decision = answer
                routerName = String(describing: type(of: router))
                break
            }
        }
        if decision == nil { decision = defaultRouter.route(request, topology: topology) }
        guard let decision else { throw RoutingError.noPrimary(topology) }
        guard let pool = pools[decision.node] else {
            throw RoutingError(kind: .unknownNode(decision.node), message: "\(routerName) chose unknown node \"\(decision.node)\"")
        }
        if request.operation == .write {
            guard let primary = topology.primary else { throw RoutingError.noPrimary(topology) }
            guard primary.name == decision.node else {
                throw RoutingError(
                    kind: .writeNotOnPrimary(node: decision.node),
                    message: "\(routerName) sent a write to \(decision.node), which is not the primary (\(primary.name))")
            }
        }
        return (decision, pool)
    }

    private func perform(
        _ request: RouteRequest, _ decision: RouteDecision, pool: ConnectionPool, _ sql: String, _ parameters: [any PostgresEncodable],
        scope: RoutingScope?
    ) async throws -> RoutedResult {
        let started = ContinuousClock.now
        let tokenBefore = scope?.session.token?.lsn
        if request.operation == .read {
            let monotonic = monotonicReads(request, on: decision.node, scope: scope)
            if decision.replayGuard != nil || monotonic {
                return try await guardedRead(
                    request, decision, pool: pool, position: decision.replayGuard, reportingReplay: monotonic, sql, parameters, scope: scope)
            }
        }
        let span = instruments.tracingOn ? instruments.span(request, decision, sql: sql) : nil
        do {
            let result = try await Self.againIfNothingSent { try await pool.withConnection { connection -> PostgresResult in
                if request.operation == .write, let scope {
                    if configuration.consistency == .lsn {
                        let (result, lsn) = try await connection.queryReturningCommitLSN(sql, parameters)
                        recordWrite(lsn, in: scope.session, node: decision.node)
                        return result
                    }
                    let result = try await connection.query(sql, parameters)
                    scope.session.recordWrite(nil, at: .now)
                    return result
                }
                if let scope, monotonicSession(request, scope) {
                    // Read on the primary: it saw everything up to the primary's position.
                    let (result, lsn) = try await connection.queryReturningCommitLSN(sql, parameters)
                    if let lsn {
                        scope.session.observe(lsn)
                    } else {
                        // What it saw cannot be placed: no replica read may be older, so the
                        // session reads from the primary while any replica could be.
                        scope.session.pin(until: .now + configuration.maxReplicaLag + configuration.monitorInterval)
                    }
                    return result
                }
                return try await connection.query(sql, parameters)
            } }
            return served(request, decision, result, sql, since: started, scope: scope, tokenBefore: tokenBefore, span: span)
        } catch {
            throw failed(request, decision, error, sql, parameters, since: started, scope: scope, tokenBefore: tokenBefore, span: span)
        }
    }

    /// Logs a statement `decision.node` served, and returns its routed result.
    private func served(
        _ request: RouteRequest, _ decision: RouteDecision, _ result: PostgresResult, _ sql: String,
        since started: ContinuousClock.Instant, scope: RoutingScope?, tokenBefore: LSN?, span: (any Span)?
    ) -> RoutedResult {
        let duration = ContinuousClock.now - started
        log.record(
            context: request.context?.name, operation: request.operation, node: decision.node, reason: decision.reason,
            duration: duration, rows: result.affectedRows, error: nil, sql: sql, tokenBefore: tokenBefore,
            tokenAfter: scope?.session.token?.lsn)
        scope?.trace?.add(decision.node, duration)
        if instruments.metricsOn {
            instruments.statement(node: decision.node, context: request.context?.name, operation: request.operation, duration: duration, error: nil)
            if case .fallback(let context, let skipped) = decision.reason {
                for skip in skipped {
                    if case .lagging = skip.why { instruments.count("switchyard_lag_exclusions_total", [("node", skip.node), ("context", context)]) }
                }
            }
        }
        instruments.end(span)
        return RoutedResult(result: result, node: decision.node, reason: decision.reason)
    }

    /// Logs a statement that failed on `decision.node`, and returns the error to throw.
    private func failed(
        _ request: RouteRequest, _ decision: RouteDecision, _ error: Error, _ sql: String, _ parameters: [any PostgresEncodable],
        since started: ContinuousClock.Instant, scope: RoutingScope?, tokenBefore: LSN?, span: (any Span)?
    ) -> Error {
        let duration = ContinuousClock.now - started
        log.record(
            context: request.context?.name, operation: request.operation, node: decision.node, reason: decision.reason,
            duration: duration, rows: nil, error: error, sql: sql, parameters: parameters, tokenBefore: tokenBefore,
            tokenAfter: scope?.session.token?.lsn)
        scope?.trace?.add(decision.node, duration)
        instruments.statement(node: decision.node, context: request.context?.name, operation: request.operation, duration: duration, error: error)
        instruments.end(span, error: error)
        // Only a node that cannot be connected to at all is marked down here; one lost
        // pooled connection is the pool's business, node health the monitor's.
        if let error = error as? PostgresError, error.kind == .connectionFailed {
            monitor.reportUnreachable(decision.node, error: error.message)
        }
        if request.operation == .write, var error = error as? PostgresError, error.outcomeUnknown {
            // Sent, and no answer came: the caller must not take it as "not written".
            error.message += "; the write's outcome is unknown (it may have committed)"
            return error
        }
        return error
    }

    /// Whether a read on `node` must report the replica's replay position for the
    /// session (`monotonic_reads`): a session's read on a replica.
    private func monotonicReads(_ request: RouteRequest, on node: String, scope: RoutingScope?) -> Bool {
        monotonicSession(request, scope) && node != monitor.sharedTopology.primaryName
    }

    /// A session under `monotonic_reads` whose reads may go to replicas: its reads on the
    /// primary too carry the position they saw on (a later replica read must not be older).
    private func monotonicSession(_ request: RouteRequest, _ scope: RoutingScope?) -> Bool {
        configuration.monotonicReads && configuration.consistency == .lsn && scope != nil
            && request.operation == .read && request.context?.readsFromReplicas == true
    }

    /// A read on a replica that may not have replayed the token yet (`position`): sent
    /// with a replay guard; served there when the guard passes, by the primary when it
    /// does not. With `reportingReplay`, the replica also says how far it had replayed
    /// after the read, and the session's token moves up to that (monotonic reads).
    private func guardedRead(
        _ request: RouteRequest, _ decision: RouteDecision, pool: ConnectionPool, position: LSN?, reportingReplay: Bool,
        _ sql: String, _ parameters: [any PostgresEncodable], scope: RoutingScope?
    ) async throws -> RoutedResult {
        let started = ContinuousClock.now
        let tokenBefore = scope?.session.token?.lsn
        let span = instruments.tracingOn ? instruments.span(request, decision, sql: sql) : nil
        let outcome: PostgresConnection.GuardedResult
        do {
            outcome = try await Self.againIfNothingSent {
                try await pool.withConnection { connection in
                    if reportingReplay { return try await connection.queryReportingReplay(sql, parameters, ifReplayed: position) }
                    return try await connection.query(sql, parameters, ifReplayed: position!)
                }
            }
        } catch {
            throw failed(request, decision, error, sql, parameters, since: started, scope: scope, tokenBefore: tokenBefore, span: span)
        }
        switch outcome {
        case .served(let result, let replayed):
            if let replayed {
                monitor.observeReplay(decision.node, at: replayed)
                if reportingReplay { scope?.session.observe(replayed) }
            }
            return served(request, decision, result, sql, since: started, scope: scope, tokenBefore: tokenBefore, span: span)
        case .behind(let replayed):
            let position = position ?? LSN(0)
            if let replayed { monitor.observeReplay(decision.node, at: replayed) }
            instruments.count("switchyard_guard_fallbacks_total", [("node", decision.node), ("context", request.context?.name ?? "none")])
            instruments.end(span, note: "replica behind the session's token (replayed \(replayed.map { "\($0)" } ?? "?"), needs \(position)): read again on the primary")
            let topology = monitor.topology
            guard let primary = topology.primary else { throw RoutingError.noPrimary(topology) }
            let fallback = RouteDecision(
                node: primary.name,
                reason: .guardFellBack(context: request.context?.name ?? "-", replica: decision.node, replayed: replayed, token: position))
            return try await perform(request, fallback, pool: pools[primary.name]!, sql, parameters, scope: scope)
        }
    }

    /// Notes a committed write. Without its WAL position no token can prove a replica has
    /// it, so read-your-writes would be silently lost: the session reads from the primary
    /// instead, for as long as a replica within the lag limit might still lack the write.
    private func recordWrite(_ lsn: LSN?, in session: ConsistencySession, node: String) {
        session.recordWrite(lsn, at: .now)
        guard lsn == nil, configuration.consistency == .lsn else { return }
        session.pin(until: .now + configuration.maxReplicaLag + configuration.monitorInterval)
        routingLogger.warning(
            "the WAL position after a write could not be read; this session reads from the primary for a while",
            metadata: ["node": "\(node)"])
    }

    /// Runs `body` once more when it failed on a pooled connection the server had closed
    /// before anything was sent: the pool has dropped that connection, the next try gets a
    /// fresh one. Nothing can run twice.
    static func againIfNothingSent<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as PostgresError where error.nothingSent && error.kind == .connectionLost {
            routingLogger.info("replaced a connection the server had closed", metadata: ["node": "\(error.node ?? "?")"])
            return try await body()
        }
    }

    /// Streams a `COPY … TO STDOUT` to `sink`, from the node a read in the current context
    /// goes to — with `leastLag`, the least-lagging replica within `max_replica_lag_ms`
    /// (the primary when none qualifies). `settings` are set for the COPY's transaction
    /// (`set_config(…, true)`, values as parameters) for the query to read with
    /// `current_setting`: COPY itself takes no parameters. Transaction-local, they never
    /// outlive the export, also through a transaction pooler. Logged like any statement;
    /// returns node and rows.
    public func copyOut(
        _ sql: String, settings: [(String, String)] = [], table: String? = nil, leastLag: Bool = false,
        sink: @escaping @Sendable (UnsafeRawBufferPointer) throws -> Void
    ) async throws -> (node: String, rows: Int) {
        let scope = RoutingScope.current
        await settle(scope)
        let request = RouteRequest(operation: .read, table: table, context: scope?.context)
        let topology = monitor.topology
        let decision: RouteDecision
        if leastLag, let chosen = DefaultRouter(selection: .leastLag, maxReplicaLag: configuration.maxReplicaLag, consistency: .none)
            .route(request, topology: topology)
        {
            decision = chosen
        } else {
            decision = try route(request, topology: topology)
        }
        let started = ContinuousClock.now
        let span = instruments.tracingOn ? instruments.span(request, decision, sql: sql) : nil
        do {
            let rows = try await pools[decision.node]!.withConnection { connection -> Int in
                guard !settings.isEmpty else { return try await connection.copyOut(sql, sink) }
                _ = try await connection.query("begin read only")
                do {
                    for (name, value) in settings { _ = try await connection.query("select set_config($1, $2, true)", [name, value]) }
                    let rows = try await connection.copyOut(sql, sink)
                    _ = try await connection.query("commit")
                    return rows
                } catch {
                    await connection.rollback()
                    throw error
                }
            }
            let duration = ContinuousClock.now - started
            log.record(
                context: request.context?.name, operation: .read, node: decision.node, reason: decision.reason,
                duration: duration, rows: rows, error: nil, sql: sql)
            instruments.statement(node: decision.node, context: request.context?.name, operation: .read, duration: duration, error: nil)
            instruments.end(span)
            return (decision.node, rows)
        } catch {
            let duration = ContinuousClock.now - started
            log.record(
                context: request.context?.name, operation: .read, node: decision.node, reason: decision.reason,
                duration: duration, rows: nil, error: error, sql: sql)
            instruments.statement(node: decision.node, context: request.context?.name, operation: .read, duration: duration, error: error)
            instruments.end(span, error: error)
            throw error
        }
    }

    /// `identifier` quoted for SQL by libpq, on a connection of the primary (or of any
    /// reachable node when there is no primary).
    public func quoteIdentifier(_ identifier: String) async throws -> String {
        try await quoteIdentifiers([identifier])[0]
    }

    /// Several identifiers quoted by libpq, on one pooled connection.
    public func quoteIdentifiers(_ identifiers: [String]) async throws -> [String] {
        let topology = monitor.topology
        let node = topology.primary?.name ?? topology.nodes.first(where: \.reachable)?.name ?? configuration.nodes[0].name
        return try await pools[node]!.withConnection { connection in
            var quoted: [String] = []
            for identifier in identifiers { quoted.append(try await connection.quoteIdentifier(identifier)) }
            return quoted
        }
    }

    // MARK: Transactions

    /// Runs `body` in a transaction on the primary (its reads too): committed when `body`
    /// returns, rolled back when it throws.
    public func transaction<T: Sendable>(_ body: (Transaction) async throws -> T) async throws -> T {
        let scope = RoutingScope.current
        await settle(scope)
        let shared = monitor.sharedTopology
        guard let primary = shared.topology.primary else { throw RoutingError.noPrimary(shared.topology) }
        let pool = pools[primary.name]!
        return try await pool.withConnection { connection in
            let transaction = Transaction(
                cluster: self, connection: connection, node: primary.name, context: scope?.context, trace: scope?.trace)
            _ = try await transaction.record(.write, "begin") { try await connection.query("begin") }
            do {
                let value = try await body(transaction)
                let (_, lsn) = try await transaction.record(.write, "commit") {
                    try await connection.queryReturningCommitLSN("commit")
                }
                if let scope { recordWrite(lsn, in: scope.session, node: primary.name) }
                return value
            } catch {
                // Also when the task was cancelled: the rollback itself is not cancellable.
                _ = try? await transaction.record(.write, "rollback") { await connection.rollback() }
                throw error
            }
        }
    }

    /// A transaction in progress on the primary.
    public struct Transaction: Sendable {
        let cluster: Cluster
        let connection: PostgresConnection
        public let node: String
        let context: RoutingContext?
        let trace: RequestTrace?

        public func query(_ sql: String, _ parameters: [any PostgresEncodable] = []) async throws -> PostgresResult {
            try cluster.refuseSessionState(sql, on: node)
            return try await record(.read, sql, parameters) { try await connection.query(sql, parameters) }
        }

        @discardableResult
        public func execute(_ sql: String, _ parameters: [any PostgresEncodable] = []) async throws -> PostgresResult {
            try cluster.refuseSessionState(sql, on: node)
            return try await record(.write, sql, parameters) { try await connection.query(sql, parameters) }
        }

        func record<R: Sendable>(
            _ operation: StatementKind, _ sql: String, _ parameters: [any PostgresEncodable] = [], _ body: () async throws -> R
        ) async throws -> R {
            let clock = ContinuousClock()
            let started = clock.now
            let span =
                cluster.instruments.tracingOn
                ? cluster.instruments.span(
                    RouteRequest(operation: operation, context: context), RouteDecision(node: node, reason: .transaction), sql: sql) : nil
            do {
                let value = try await body()
                let rows = (value as? PostgresResult)?.affectedRows ?? (value as? (PostgresResult, LSN?))?.0.affectedRows
                let duration = clock.now - started
                cluster.log.record(
                    context: context?.name, operation: operation, node: node, reason: .transaction,
                    duration: duration, rows: rows, error: nil, sql: sql)
                trace?.add(node, duration)
                cluster.instruments.statement(node: node, context: context?.name, operation: operation, duration: duration, error: nil)
                cluster.instruments.end(span)
                return value
            } catch {
                let duration = clock.now - started
                cluster.log.record(
                    context: context?.name, operation: operation, node: node, reason: .transaction,
                    duration: duration, rows: nil, error: error, sql: sql, parameters: parameters)
                trace?.add(node, duration)
                cluster.instruments.statement(node: node, context: context?.name, operation: operation, duration: duration, error: error)
                cluster.instruments.end(span, error: error)
                throw error
            }
        }
    }
}

let routingLogger = Logger(label: "switchyard.routing")
