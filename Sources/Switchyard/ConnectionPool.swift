import CoreMetrics
import Logging
import PostgresClient
import Synchronization

/// A bounded set of connections to one node.
///
/// `withConnection` hands out an idle connection, opens one while under the limit, or
/// waits (up to `checkoutTimeout`, first come first served) for one to come back. The
/// rules live in ``PoolState``; this class only performs its actions: it opens and
/// closes connections, resumes waiters and runs their timers. A connection that comes
/// back broken, or inside a transaction, is closed and never handed out again.
public final class ConnectionPool: Sendable {
    public let node: String
    public let maxConnections: Int
    public let checkoutTimeout: Duration
    private let conninfo: String
    private let options: ConnectOptions

    /// What a waiter is given.
    private enum Grant {
        case connection(PostgresConnection, PoolState.ConnectionID)
        /// Open a new connection; its slot is counted for this waiter.
        case open(PoolState.WaiterID)
    }

    private struct Shell {
        var machine: PoolState
        var connections: [PoolState.ConnectionID: PostgresConnection] = [:]
        var continuations: [PoolState.WaiterID: CheckedContinuation<Grant, Error>] = [:]
        var timers: [PoolState.WaiterID: Task<Void, Never>] = [:]
        /// Waiters whose task was cancelled before they were registered.
        var cancelledEarly: Set<PoolState.WaiterID> = []
        var nextWaiter: PoolState.WaiterID = 0
        var nextConnection: PoolState.ConnectionID = 0
    }

    private let shell: Mutex<Shell>

    /// Waits for a connection, and checkouts that gave up (with `metrics`).
    private let waitTimer: CoreMetrics.Timer?
    private let timeouts: Counter?

    public init(node: String, conninfo: String, maxConnections: Int = 8, checkoutTimeout: Duration = .seconds(5),
                metrics: (any MetricsFactory)? = nil, options: ConnectOptions = ConnectOptions(connectTimeout: .seconds(3))) {
        self.node = node
        waitTimer = metrics.map { CoreMetrics.Timer(label: "switchyard_pool_wait_seconds", dimensions: [("node", node)], factory: $0) }
        timeouts = metrics.map { Counter(label: "switchyard_pool_timeouts_total", dimensions: [("node", node)], factory: $0) }
        self.conninfo = conninfo
        self.maxConnections = max(maxConnections, 1)
        self.checkoutTimeout = checkoutTimeout
        self.options = options
        self.shell = Mutex(Shell(machine: PoolState(maxConnections: maxConnections)))
    }

    /// Runs `body` with a connection of this pool, and gives the connection back.
    public func withConnection<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        let (connection, id) = try await checkout()
        do {
            let value = try await body(connection)
            release(connection, id: id)
            return value
        } catch {
            release(connection, id: id)
            throw error
        }
    }

    /// Connections open now (idle, in use, and being opened).
    public var openCount: Int { shell.withLock { $0.machine.openCount } }

    /// A usable connection: an idle one (dead ones are dropped on the way), a new one, or
    /// the next one to come back.
    func checkout() async throws -> (PostgresConnection, PoolState.ConnectionID) {
        while true {
            switch try await acquire() {
            case .connection(let connection, let id):
                if connection.transactionState == .idle && connection.looksAlive() { return (connection, id) }
                poolLogger.debug("dropping a dead idle connection", metadata: ["node": "\(node)"])
                perform { $0.machine.discard(id) }
            case .open(let waiter):
                return try await open(for: waiter)
            }
        }
    }

    private func acquire() async throws -> Grant {
        try Task.checkCancellation()
        // Most checkouts find an idle connection or a free slot: no suspension, no timer.
        let (id, now) = shell.withLock { shell -> (PoolState.WaiterID, Result<Grant, Error>?) in
            shell.nextWaiter += 1
            let id = shell.nextWaiter
            switch shell.machine.checkoutWithoutWaiting(id) {
            case .lease(let connection, _)?: return (id, .success(.connection(shell.connections[connection]!, connection)))
            case .open?: return (id, .success(.open(id)))
            case .fail(_, let failure)?: return (id, .failure(error(for: failure)))
            default: return (id, nil)
            }
        }
        switch now {
        case .success(let grant)?: return grant
        case .failure(let failure)?: throw failure
        case nil: break
        }
        defer { _ = shell.withLock { $0.cancelledEarly.remove(id) } }
        // Only a checkout that has to wait is timed: the fast path above costs nothing more.
        let waitStarted = ContinuousClock.now
        defer { waitTimer?.recordNanoseconds((ContinuousClock.now - waitStarted).nanosecondsClamped) }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Grant, Error>) in
                // Registering the waiter, asking the machine and starting its timer happen in
                // this order, so no event for this waiter can come before it is known.
                perform { shell in
                    shell.continuations[id] = continuation
                    if shell.cancelledEarly.contains(id) { return [.fail(id, .cancelled)] }
                    return shell.machine.checkout(id)
                }
            }
        } onCancel: {
            perform { shell in
                guard shell.continuations[id] != nil else {
                    shell.cancelledEarly.insert(id)
                    return []
                }
                return shell.machine.cancel(id)
            }
        }
    }

    /// Opens a connection into a slot the machine already counted.
    private func open(for waiter: PoolState.WaiterID) async throws -> (PostgresConnection, PoolState.ConnectionID) {
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(conninfo, label: node, options: options)
        } catch {
            perform { $0.machine.connectFailed() }
            throw error
        }
        let id = shell.withLock { shell -> PoolState.ConnectionID in
            shell.nextConnection += 1
            shell.connections[shell.nextConnection] = connection
            return shell.nextConnection
        }
        // The machine answers with a lease to the opener (or a close if the pool closed).
        let actions = shell.withLock { $0.machine.connected(id, for: waiter) }
        if actions.contains(.fail(waiter, .closed)) {
            perform { _ in actions.filter { if case .close = $0 { return true } else { return false } } }
            throw PostgresError(kind: .closed, message: "connection pool is closed", node: node)
        }
        return (connection, id)
    }

    func release(_ connection: PostgresConnection, id: PoolState.ConnectionID) {
        let health: PoolState.Health
        if !connection.isUsable {
            health = .broken
            poolLogger.info("replacing a broken connection", metadata: ["node": "\(node)"])
        } else if connection.transactionState != .idle {
            health = .inTransaction
            poolLogger.warning("discarding a connection returned inside a transaction", metadata: ["node": "\(node)"])
        } else {
            health = .idle
        }
        perform { $0.machine.release(id, health: health) }
    }

    /// Ends every statement waiting on this pool's connections now: their callers get a
    /// `connectionLost` error with `message` (a read on a replica is then retried
    /// elsewhere; a write's outcome is unknown) and the connections are given up. For a
    /// node that stopped answering, whose statements would otherwise wait on TCP.
    public func abandonRunning(_ message: String) {
        let connections = shell.withLock { Array($0.connections.values) }
        for connection in connections { connection.abandonStatement(message) }
    }

    /// How long the longest-running statement on this pool's connections has been running.
    public func longestRunning(at now: ContinuousClock.Instant = .now) -> Duration? {
        let connections = shell.withLock { Array($0.connections.values) }
        return connections.compactMap { $0.runningFor(at: now) }.max()
    }

    /// Closes idle connections (e.g. after the node went down); in-use ones close when
    /// they come back broken.
    public func drainIdle() async {
        await performAndWait { $0.machine.drainIdle() }
    }

    public func close() async {
        await performAndWait { $0.machine.close() }
    }

    // MARK: Performing the machine's actions

    private struct Work {
        var resume: [(CheckedContinuation<Grant, Error>, Result<Grant, Error>)] = []
        var close: [PostgresConnection] = []
        var timers: [PoolState.WaiterID] = []
    }

    /// Runs `body` under the lock, turns the actions it returns into work, and does the
    /// work outside the lock. Closing connections happens in the background.
    private func perform(_ body: (inout Shell) -> [PoolState.Action]) {
        let work = collect(body)
        run(work)
        if !work.close.isEmpty {
            let closing = work.close
            Task { for connection in closing { await connection.close() } }
        }
    }

    private func performAndWait(_ body: (inout Shell) -> [PoolState.Action]) async {
        let work = collect(body)
        run(work)
        for connection in work.close { await connection.close() }
    }

    private func collect(_ body: (inout Shell) -> [PoolState.Action]) -> Work {
        shell.withLock { shell in
            var work = Work()
            for action in body(&shell) {
                switch action {
                case .lease(let id, let waiter):
                    guard let continuation = take(waiter, &shell), let connection = shell.connections[id] else { continue }
                    work.resume.append((continuation, .success(.connection(connection, id))))
                case .open(let waiter):
                    guard let continuation = take(waiter, &shell) else { continue }
                    work.resume.append((continuation, .success(.open(waiter))))
                case .wait(let waiter):
                    work.timers.append(waiter)
                case .fail(let waiter, let failure):
                    guard let continuation = take(waiter, &shell) else { continue }
                    work.resume.append((continuation, .failure(error(for: failure))))
                case .close(let id):
                    if let connection = shell.connections.removeValue(forKey: id) { work.close.append(connection) }
                }
            }
            for waiter in work.timers {
                let timeout = checkoutTimeout
                shell.timers[waiter] = Task { [weak self] in
                    guard (try? await Task.sleep(for: timeout)) != nil else { return }
                    self?.perform { $0.machine.timeout(waiter) }
                }
            }
            return work
        }
    }

    private func run(_ work: Work) {
        for (continuation, result) in work.resume { continuation.resume(with: result) }
    }

    private func take(_ waiter: PoolState.WaiterID, _ shell: inout Shell) -> CheckedContinuation<Grant, Error>? {
        shell.timers.removeValue(forKey: waiter)?.cancel()
        return shell.continuations.removeValue(forKey: waiter)
    }

    private func error(for failure: PoolState.Failure) -> Error {
        switch failure {
        case .closed:
            return PostgresError(kind: .closed, message: "connection pool is closed", node: node)
        case .timeout:
            timeouts?.increment()
            return PostgresError(
                kind: .connectionFailed,
                message: "no connection to \(node) free within \(formatDuration(checkoutTimeout)) (pool of \(maxConnections))", node: node)
        case .cancelled:
            return CancellationError()
        }
    }
}

let poolLogger = Logger(label: "switchyard.pool")
