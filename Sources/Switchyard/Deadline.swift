import Foundation
import PostgresClient
import Synchronization

/// How an operation run under ``withDeadline(_:grace:_:)`` ended.
public enum DeadlineOutcome<T: Sendable>: Sendable {
    /// It finished with a value — in time, or after the deadline within its grace (a
    /// write that committed although the deadline passed: its effects are real).
    case value(T)
    /// It failed (before the deadline, or after it with an error that is not just the
    /// cancellation: a connection given up, say — a write's outcome then unknown).
    case failed(Error)
    /// The deadline passed, the operation was cancelled, and it ended without a value:
    /// cancelled in time (with no grace: not waited for at all).
    case timedOut
    /// The deadline passed and the operation had not ended within its grace: what it did
    /// is unknown.
    case unknown
}

/// Runs `operation` in its own task and returns its outcome; at `duration` the task is
/// cancelled, and given `grace` more to say how it ended (a statement cancelled on the
/// server answers within ``PostgresConnection/cancelGrace``). With no grace the caller
/// gets `.timedOut` at once and nothing waits for the operation (one stuck in a blocking
/// call cannot hold the caller). The operation's task inherits the caller's task-local
/// values (its routing context); the timer ends with the operation.
public func withDeadline<T: Sendable>(
    _ duration: Duration, grace: Duration = .zero, _ operation: @escaping @Sendable () async throws -> T
) async -> DeadlineOutcome<T> {
    let once = ResumeOnce<DeadlineOutcome<T>>()
    let timer = TimerSlot()
    let expired = ExpiredFlag()
    return await withCheckedContinuation { (continuation: CheckedContinuation<DeadlineOutcome<T>, Never>) in
        once.continuation.withLock { $0 = continuation }
        let work = Task {
            var outcome: DeadlineOutcome<T>
            do { outcome = .value(try await operation()) } catch { outcome = .failed(error) }
            timer.finish()
            if expired.isSet, case .failed(let error) = outcome, isCancellation(error) { outcome = .timedOut }
            once.take()?.resume(returning: outcome)
        }
        timer.start(Task {
            guard (try? await Task.sleep(for: duration)) != nil else { return }
            expired.set()
            work.cancel()
            if grace > .zero {
                guard (try? await Task.sleep(for: grace)) != nil else { return }
            }
            once.take()?.resume(returning: grace > .zero ? .unknown : .timedOut)
        })
    }
}

/// An error that says only that the operation was cancelled (nothing happened).
private func isCancellation(_ error: Error) -> Bool {
    if error is CancellationError { return true }
    if let error = error as? PostgresError { return error.kind == .cancelled || error.kind == .timedOut }
    return false
}

/// The deadline's timer, cancelled when the work ends first — also when the work ends
/// before the timer was stored.
final class TimerSlot: Sendable {
    private let state = Mutex<(task: Task<Void, Never>?, finished: Bool)>((nil, false))

    func start(_ task: Task<Void, Never>) {
        let cancelNow = state.withLock { state -> Bool in
            if state.finished { return true }
            state.task = task
            return false
        }
        if cancelNow { task.cancel() }
    }

    func finish() {
        let task = state.withLock { state -> Task<Void, Never>? in
            state.finished = true
            defer { state.task = nil }
            return state.task
        }
        task?.cancel()
    }
}

/// Set once the deadline passed.
final class ExpiredFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    var isSet: Bool { flag.load(ordering: .acquiring) }
    func set() { flag.store(true, ordering: .releasing) }
}

/// A continuation that the first of several racers resumes.
final class ResumeOnce<T: Sendable>: Sendable {
    let continuation = Mutex<CheckedContinuation<T, Never>?>(nil)
    func take() -> CheckedContinuation<T, Never>? { continuation.withLock { $0.take() } }
}
