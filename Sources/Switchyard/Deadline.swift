import Foundation
import PostgresClient
import Synchronization

/// How an operation run under ``withDeadline(_:_:)`` ended.
public enum DeadlineOutcome<T: Sendable>: Sendable {
    case value(T)
    case failed(Error)
    case timedOut
}

/// Runs `operation` in its own task and returns its outcome, or `.timedOut` after
/// `duration` without waiting for it (an operation stuck in a blocking call cannot hold
/// the caller). The operation's task inherits the caller's task-local values (its
/// routing context); on time-out it is cancelled.
public func withDeadline<T: Sendable>(_ duration: Duration, _ operation: @escaping @Sendable () async throws -> T) async
    -> DeadlineOutcome<T>
{
    let once = ResumeOnce<DeadlineOutcome<T>>()
    return await withCheckedContinuation { (continuation: CheckedContinuation<DeadlineOutcome<T>, Never>) in
        once.continuation.withLock { $0 = continuation }
        let timer = TimerSlot()
        let work = Task {
            let outcome: DeadlineOutcome<T>
            do { outcome = .value(try await operation()) } catch { outcome = .failed(error) }
            if let pending = once.take() {
                // Done in time: the timer has nothing left to do.
                timer.task.withLock { $0 }?.cancel()
                pending.resume(returning: outcome)
            }
        }
        timer.task.withLock {
            $0 = Task {
                try? await Task.sleep(for: duration)
                if let pending = once.take() {
                    work.cancel()
                    pending.resume(returning: .timedOut)
                }
            }
        }
    }
}

/// The deadline's timer, cancelled when the work ends first.
final class TimerSlot: Sendable {
    let task = Mutex<Task<Void, Never>?>(nil)
}

/// A continuation that the first of several racers resumes.
final class ResumeOnce<T: Sendable>: Sendable {
    let continuation = Mutex<CheckedContinuation<T, Never>?>(nil)
    func take() -> CheckedContinuation<T, Never>? { continuation.withLock { $0.take() } }
}
