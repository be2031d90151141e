import PostgresClient
import Synchronization

/// A bounded set of connections to one node.
///
/// `withConnection` hands out an idle connection, opens one while under the limit, or
/// waits (up to `checkoutTimeout`) for one to come back. A connection that broke is
/// closed and not returned; its slot is free for a new one.
public final class ConnectionPool: Sendable {
    public let node: String
    public let maxConnections: Int
    public let checkoutTimeout: Duration
    private let conninfo: String
    private let options: ConnectOptions

    private typealias Waiter = CheckedContinuation<PostgresConnection?, Error>

    private struct State {
        var idle: [PostgresConnection] = []
        var open = 0
        var waiters: [(id: UInt64, continuation: Waiter)] = []
        var nextWaiter: UInt64 = 0
        var closed = false
    }

    private let state = Mutex(State())

    public init(node: String, conninfo: String, maxConnections: Int = 8, checkoutTimeout: Duration = .seconds(5),
                options: ConnectOptions = ConnectOptions(connectTimeout: 3)) {
        self.node = node
        self.conninfo = conninfo
        self.maxConnections = max(maxConnections, 1)
        self.checkoutTimeout = checkoutTimeout
        self.options = options
    }

    /// Runs `body` with a connection of this pool, and gives the connection back.
    public func withConnection<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        let connection = try await checkout()
        do {
            let value = try await body(connection)
            release(connection)
            return value
        } catch {
            release(connection)
            throw error
        }
    }

    /// Connections open now (idle and in use).
    public var openCount: Int { state.withLock { $0.open } }

    private enum Next {
        case use(PostgresConnection)
        case connect
        case wait
        case closed
    }

    func checkout() async throws -> PostgresConnection {
        let next: Next = state.withLock { state in
            if state.closed { return .closed }
            while let connection = state.idle.popLast() {
                if connection.isUsable { return .use(connection) }
                state.open -= 1
            }
            if state.open < maxConnections {
                state.open += 1
                return .connect
            }
            return .wait
        }
        switch next {
        case .use(let connection): return connection
        case .connect: return try await connect()
        case .closed: throw PostgresError(kind: .closed, message: "connection pool is closed", node: node)
        case .wait:
            let handed = try await waitForConnection()
            if let handed { return handed }
            return try await connect()
        }
    }

    /// Opens a connection into a slot already counted in `open`.
    private func connect() async throws -> PostgresConnection {
        do {
            return try await PostgresConnection.connect(conninfo, label: node, options: options)
        } catch {
            freeSlot()
            throw error
        }
    }

    private func waitForConnection() async throws -> PostgresConnection? {
        let id = state.withLock { state -> UInt64 in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        let timeout = checkoutTimeout
        let timer = Task { [weak self] in
            try await Task.sleep(for: timeout)
            self?.expire(id)
        }
        defer { timer.cancel() }
        return try await withCheckedThrowingContinuation { (continuation: Waiter) in
            let resumeNow: Next? = state.withLock { state in
                if state.closed { return .closed }
                if let connection = state.idle.popLast() { return .use(connection) }
                if state.open < maxConnections {
                    state.open += 1
                    return .connect
                }
                state.waiters.append((id, continuation))
                return nil
            }
            switch resumeNow {
            case .use(let connection): continuation.resume(returning: connection)
            case .connect: continuation.resume(returning: nil)
            case .closed:
                continuation.resume(throwing: PostgresError(kind: .closed, message: "connection pool is closed", node: node))
            case .wait, .none: break
            }
        }
    }

    private func expire(_ id: UInt64) {
        let waiter = state.withLock { state -> Waiter? in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: index).continuation
        }
        waiter?.resume(throwing: PostgresError(
            kind: .connectionFailed,
            message: "no connection to \(node) free within \(checkoutTimeout) (pool of \(maxConnections))", node: node))
    }

    func release(_ connection: PostgresConnection) {
        if connection.isUsable {
            let waiter = state.withLock { state -> Waiter? in
                if state.closed {
                    state.open -= 1
                    return nil
                }
                if !state.waiters.isEmpty { return state.waiters.removeFirst().continuation }
                state.idle.append(connection)
                return nil
            }
            if let waiter {
                waiter.resume(returning: connection)
            } else if state.withLock({ $0.closed }) {
                Task { await connection.close() }
            }
        } else {
            Task { await connection.close() }
            freeSlot()
        }
    }

    /// A slot freed by a failed or broken connection goes to the first waiter, who
    /// then opens its own.
    private func freeSlot() {
        let waiter = state.withLock { state -> Waiter? in
            if !state.closed, !state.waiters.isEmpty { return state.waiters.removeFirst().continuation }
            state.open -= 1
            return nil
        }
        waiter?.resume(returning: nil)
    }

    /// Closes idle connections (e.g. after the node went down); in-use ones close when
    /// they come back broken.
    public func drainIdle() async {
        let idle = state.withLock { state -> [PostgresConnection] in
            let idle = state.idle
            state.idle.removeAll()
            state.open -= idle.count
            return idle
        }
        for connection in idle { await connection.close() }
    }

    public func close() async {
        let (idle, waiters) = state.withLock { state in
            state.closed = true
            let result = (state.idle, state.waiters)
            state.open -= state.idle.count
            state.idle.removeAll()
            state.waiters.removeAll()
            return result
        }
        for waiter in waiters {
            waiter.continuation.resume(throwing: PostgresError(kind: .closed, message: "connection pool is closed", node: node))
        }
        for connection in idle { await connection.close() }
    }
}
