/// The bookkeeping of one node's connection pool as a value: events in, actions out.
///
/// No I/O, no clock, no locks: ``ConnectionPool`` feeds it events (a checkout, a
/// connection coming back, a timer firing) and performs the actions it returns (hand this
/// connection to that waiter, open a new connection, fail a waiter, close a connection).
/// Connections and waiters are plain identifiers, so every edge case is a unit test.
public struct PoolState: Sendable, Equatable {
    public typealias ConnectionID = Int
    public typealias WaiterID = UInt64

    /// Why a checkout failed.
    public enum Failure: Sendable, Equatable {
        case closed
        case timeout
        case cancelled
    }

    /// What a connection is like when it comes back.
    public enum Health: Sendable, Equatable {
        /// Open, outside any transaction: ready for the next caller.
        case idle
        /// Open, but inside a transaction (open or aborted): never handed out again.
        case inTransaction
        /// Closed, or found broken.
        case broken
    }

    /// What the pool must do.
    public enum Action: Sendable, Equatable {
        /// Give this idle connection to the waiter.
        case lease(ConnectionID, to: WaiterID)
        /// Open a new connection for the waiter; its slot is already counted.
        case open(for: WaiterID)
        /// The waiter is queued: start its timeout now.
        case wait(WaiterID)
        case fail(WaiterID, Failure)
        /// Close the connection; its slot is already free.
        case close(ConnectionID)
    }

    public let maxConnections: Int
    /// Idle connections, most recently returned last (reused first).
    public private(set) var idle: [ConnectionID] = []
    public private(set) var leased: Set<ConnectionID> = []
    /// Connections being opened now.
    public private(set) var opening = 0
    /// Waiters in arrival order (first in, first served).
    public private(set) var waiters: [WaiterID] = []
    public private(set) var isClosed = false

    public init(maxConnections: Int) {
        self.maxConnections = max(maxConnections, 1)
    }

    /// Connections open or being opened.
    public var openCount: Int { idle.count + leased.count + opening }

    /// A caller wants a connection.
    /// `checkout` when the waiter would not have to wait (an idle connection, a free
    /// slot, or a closed pool); nil, changing nothing, when it would.
    public mutating func checkoutWithoutWaiting(_ waiter: WaiterID) -> Action? {
        if !isClosed, idle.isEmpty, openCount >= maxConnections { return nil }
        return checkoutAction(waiter)
    }

    public mutating func checkout(_ waiter: WaiterID) -> [Action] { [checkoutAction(waiter)] }

    /// A checkout always answers with exactly one action (no array on the hot path).
    private mutating func checkoutAction(_ waiter: WaiterID) -> Action {
        if isClosed { return .fail(waiter, .closed) }
        if let connection = idle.popLast() {
            leased.insert(connection)
            return .lease(connection, to: waiter)
        }
        if openCount < maxConnections {
            opening += 1
            return .open(for: waiter)
        }
        waiters.append(waiter)
        return .wait(waiter)
    }

    /// A connection opened for a waiter; it is the waiter's now.
    public mutating func connected(_ connection: ConnectionID, for waiter: WaiterID) -> [Action] {
        opening -= 1
        if isClosed { return [.close(connection), .fail(waiter, .closed)] }
        leased.insert(connection)
        return [.lease(connection, to: waiter)]
    }

    /// Opening a connection failed (the opener sees the error itself); the slot is free.
    public mutating func connectFailed() -> [Action] {
        opening -= 1
        return slotFreed()
    }

    /// A leased connection comes back.
    public mutating func release(_ connection: ConnectionID, health: Health) -> [Action] {
        guard leased.remove(connection) != nil else { return [] }
        guard health == .idle, !isClosed else { return [.close(connection)] + slotFreed() }
        if !waiters.isEmpty {
            leased.insert(connection)
            return [.lease(connection, to: waiters.removeFirst())]
        }
        idle.append(connection)
        return []
    }

    /// An idle connection was found dead before use (checked on lease): drop it.
    public mutating func discard(_ connection: ConnectionID) -> [Action] {
        if leased.remove(connection) != nil || idle.firstIndex(of: connection).map({ idle.remove(at: $0) }) != nil {
            return [.close(connection)] + slotFreed()
        }
        return []
    }

    /// A waiter's time is up. Nothing happens if it was served meanwhile.
    public mutating func timeout(_ waiter: WaiterID) -> [Action] {
        guard let index = waiters.firstIndex(of: waiter) else { return [] }
        waiters.remove(at: index)
        return [.fail(waiter, .timeout)]
    }

    /// A waiter's task was cancelled. Nothing happens if it was served meanwhile.
    public mutating func cancel(_ waiter: WaiterID) -> [Action] {
        guard let index = waiters.firstIndex(of: waiter) else { return [] }
        waiters.remove(at: index)
        return [.fail(waiter, .cancelled)]
    }

    /// Closes every idle connection (the node went away); leased ones close on return.
    public mutating func drainIdle() -> [Action] {
        let closing = idle
        idle.removeAll()
        return closing.map { .close($0) } + closing.flatMap { _ in slotFreed() }
    }

    /// Closes the pool: waiters fail, idle connections close, leased ones close on return.
    public mutating func close() -> [Action] {
        guard !isClosed else { return [] }
        isClosed = true
        let failed = waiters.map { Action.fail($0, .closed) }
        waiters.removeAll()
        let closing = idle.map { Action.close($0) }
        idle.removeAll()
        return failed + closing
    }

    /// A slot came free: the first waiter opens a connection in it.
    private mutating func slotFreed() -> [Action] {
        guard !isClosed, !waiters.isEmpty, openCount < maxConnections else { return [] }
        opening += 1
        return [.open(for: waiters.removeFirst())]
    }
}
