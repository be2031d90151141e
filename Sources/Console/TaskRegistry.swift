import Synchronization

/// The console's running database work, by request: a task is registered before it can
/// finish, so one that ends at once still removes itself (none is left behind).
final class TaskRegistry: Sendable {
    private let tasks = Mutex<[Int: Task<Void, Never>]>([:])

    /// Starts `operation` as request `request`'s task. (`afterCreating` runs between
    /// creating the task and registering it: tests widen that window with it.)
    func start(
        _ request: Int, afterCreating: () -> Void = {}, _ operation: @escaping @Sendable () async -> Void
    ) {
        // Created under the lock: the task's own removal waits until it is registered.
        tasks.withLock { tasks in
            let task = Task {
                await operation()
                _ = self.tasks.withLock { $0.removeValue(forKey: request) }
            }
            afterCreating()
            tasks[request] = task
        }
    }

    /// Cancels request `request`'s task, if it is still running.
    func cancel(_ request: Int) {
        tasks.withLock { $0.removeValue(forKey: request) }?.cancel()
    }

    func cancelAll() {
        for task in tasks.withLock({ Array($0.values) }) { task.cancel() }
    }

    /// Tasks still registered.
    var count: Int { tasks.withLock { $0.count } }
}
