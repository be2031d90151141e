import Synchronization

/// Hands every value to all current subscribers' async streams.
final class Broadcast<Element: Sendable>: Sendable {
    private struct State {
        var subscribers: [UInt64: AsyncStream<Element>.Continuation] = [:]
        var next: UInt64 = 0
    }

    private let state = Mutex(State())
    /// Subscribers now, readable without the lock on every sender's path.
    private let count = Atomic<Int>(0)

    func subscribe(bufferingNewest limit: Int) -> AsyncStream<Element> {
        let (stream, continuation) = AsyncStream<Element>.makeStream(bufferingPolicy: .bufferingNewest(limit))
        let id = state.withLock { state in
            state.next += 1
            state.subscribers[state.next] = continuation
            count.store(state.subscribers.count, ordering: .relaxed)
            return state.next
        }
        continuation.onTermination = { [weak self] _ in
            guard let self else { return }
            state.withLock { state in
                state.subscribers.removeValue(forKey: id)
                count.store(state.subscribers.count, ordering: .relaxed)
            }
        }
        return stream
    }

    /// Whether anyone listens (so a sender can skip building a value nobody reads).
    var hasSubscribers: Bool { count.load(ordering: .relaxed) > 0 }

    func send(_ value: Element) {
        let subscribers = state.withLock { $0.subscribers.isEmpty ? [] : Array($0.subscribers.values) }
        for subscriber in subscribers { subscriber.yield(value) }
    }

    /// Ends every subscription.
    func finish() {
        let subscribers = state.withLock { state in
            defer {
                state.subscribers.removeAll()
                count.store(0, ordering: .relaxed)
            }
            return Array(state.subscribers.values)
        }
        subscribers.forEach { $0.finish() }
    }
}
