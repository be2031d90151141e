@testable import Console
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The console's running work: nothing finished stays registered.
@Suite struct TaskRegistryTests {
    @Test func workThatEndsAtOnceLeavesNoHandleBehind() async {
        let registry = TaskRegistry()
        // Registering after starting (the old order) left these behind: a task that ended
        // before it was registered removed nothing and was then stored for good. The pause
        // lets every task end before its registration.
        for request in 0..<20 { registry.start(request, afterCreating: { usleep(20_000) }) {} }
        for request in 20..<2000 { registry.start(request) {} }
        for _ in 0..<500 where registry.count > 0 { try? await Task.sleep(for: .milliseconds(10)) }
        #expect(registry.count == 0)
    }

    @Test func cancelEndsTheRunningTaskAndForgetsIt() async {
        let registry = TaskRegistry()
        let cancelled = AsyncStream<Bool>.makeStream()
        registry.start(1) {
            try? await Task.sleep(for: .seconds(60))
            cancelled.continuation.yield(Task.isCancelled)
        }
        #expect(registry.count == 1)
        registry.cancel(1)
        var iterator = cancelled.stream.makeAsyncIterator()
        #expect(await iterator.next() == true)
        #expect(registry.count == 0)
    }
}
