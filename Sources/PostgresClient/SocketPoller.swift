import CLibPQ
import Foundation

/// One thread for the whole process that sleeps in `epoll_wait` and wakes the task that
/// waits for a connection's socket.
///
/// A statement is sent from the calling task's own thread (libpq in non-blocking mode);
/// only the wait for the server's answer leaves it. When the socket turns ready this
/// thread resumes the task: one hand-off per round trip, and no thread per connection.
final class SocketPoller: @unchecked Sendable {
    static let shared = SocketPoller()

    enum Interest {
        case read, readOrWrite

        var events: UInt32 {
            switch self {
            case .read: return EPOLLIN.rawValue | EPOLLRDHUP.rawValue
            case .readOrWrite: return EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue
            }
        }
    }

    /// A socket known to the poller; one per connection.
    final class Registration: @unchecked Sendable {
        let id: UInt64
        let socket: Int32
        // Guarded by the poller's lock.
        fileprivate var continuation: CheckedContinuation<Void, Error>?
        fileprivate var abandoned: Error?

        fileprivate init(id: UInt64, socket: Int32) {
            self.id = id
            self.socket = socket
        }
    }

    private let epoll: Int32
    private let lock = NSLock()
    private var registrations: [UInt64: Registration] = [:]  // guarded by lock
    private var nextID: UInt64 = 1  // guarded by lock

    private init() {
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        precondition(epoll >= 0, "epoll_create1 failed: errno \(errno)")
        let thread = Thread { [self] in self.loop() }
        thread.name = "pg socket poller"
        thread.stackSize = 256 << 10
        thread.start()
    }

    /// Adds `socket`, not yet waited for.
    func register(_ socket: Int32) throws -> Registration {
        let registration: Registration = lock.withLock {
            defer { nextID += 1 }
            let registration = Registration(id: nextID, socket: socket)
            registrations[registration.id] = registration
            return registration
        }
        var event = epoll_event()
        event.events = EPOLLONESHOT.rawValue
        event.data.u64 = registration.id
        guard epoll_ctl(epoll, EPOLL_CTL_ADD, socket, &event) == 0 else {
            let code = errno
            _ = lock.withLock { registrations.removeValue(forKey: registration.id) }
            throw PostgresError(kind: .connectionFailed, message: "cannot watch the socket: \(String(cString: strerror(code)))")
        }
        return registration
    }

    /// Removes the socket; call before it is closed.
    func unregister(_ registration: Registration) {
        let waiting: CheckedContinuation<Void, Error>? = lock.withLock {
            registrations.removeValue(forKey: registration.id)
            defer { registration.continuation = nil }
            return registration.continuation
        }
        _ = epoll_ctl(epoll, EPOLL_CTL_DEL, registration.socket, nil)
        waiting?.resume(throwing: PostgresError.closed())
    }

    /// Clears an earlier abandonment before a new statement waits.
    func reset(_ registration: Registration) {
        lock.withLock { registration.abandoned = nil }
    }

    /// Waits until the socket is ready for `interest`. Throws the error given to
    /// ``abandon(_:with:)``, now or later in this statement.
    func wait(_ registration: Registration, for interest: Interest) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            let refused: Error? = lock.withLock {
                if let abandoned = registration.abandoned { return abandoned }
                guard registrations[registration.id] != nil else { return PostgresError.closed() }
                registration.continuation = continuation
                return nil
            }
            if let refused { return continuation.resume(throwing: refused) }
            var event = epoll_event()
            event.events = interest.events | EPOLLONESHOT.rawValue
            event.data.u64 = registration.id
            if epoll_ctl(epoll, EPOLL_CTL_MOD, registration.socket, &event) != 0 {
                let message = String(cString: strerror(errno))
                let taken = lock.withLock {
                    defer { registration.continuation = nil }
                    return registration.continuation
                }
                taken?.resume(throwing: PostgresError(kind: .connectionLost, message: "cannot watch the socket: \(message)"))
            }
        }
    }

    /// Ends the current wait on `registration` with `error`, and every later one until
    /// ``reset(_:)``: for a server that answers neither a statement nor its cancel.
    func abandon(_ registration: Registration, with error: Error) {
        let waiting: CheckedContinuation<Void, Error>? = lock.withLock {
            registration.abandoned = error
            defer { registration.continuation = nil }
            return registration.continuation
        }
        waiting?.resume(throwing: error)
    }

    private func loop() {
        let capacity = 64
        var events = [epoll_event](repeating: epoll_event(), count: capacity)
        while true {
            let count = epoll_wait(epoll, &events, Int32(capacity), -1)
            if count < 0 {
                if errno == EINTR { continue }
                fatalError("epoll_wait failed: errno \(errno)")
            }
            for index in 0..<Int(count) {
                let id = events[index].data.u64
                let waiting: CheckedContinuation<Void, Error>? = lock.withLock {
                    guard let registration = registrations[id] else { return nil }
                    defer { registration.continuation = nil }
                    return registration.continuation
                }
                waiting?.resume()
            }
        }
    }
}

/// A first-come, first-served lock for async code: statements on one connection queue.
final class AsyncSerialLock: @unchecked Sendable {
    private let lock = NSLock()
    private var held = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func acquire() async {
        if lock.withLock({ () -> Bool in
            if held { return false }
            held = true
            return true
        }) { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now: Bool = lock.withLock {
                if held {
                    waiters.append(continuation)
                    return false
                }
                held = true
                return true
            }
            if now { continuation.resume() }
        }
    }

    func release() {
        let next: CheckedContinuation<Void, Never>? = lock.withLock {
            if waiters.isEmpty {
                held = false
                return nil
            }
            return waiters.removeFirst()  // stays held: handed to the next in line
        }
        next?.resume()
    }
}
