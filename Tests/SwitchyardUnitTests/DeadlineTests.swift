import Foundation
import Testing

@testable import Switchyard

/// `withDeadline`: what the caller hears when the work outlives the deadline.
@Suite struct DeadlineTests {
    /// Work that ignores cancellation and ends after `delay` (a commit on its way).
    func stubborn(_ delay: Duration, _ value: Int) async -> Int {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().asyncAfter(deadline: .now() + Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18) {
                continuation.resume(returning: value)
            }
        }
    }

    @Test func workThatFinishesWithinItsGraceIsReportedDoneNotTimedOut() async {
        let outcome = await withDeadline(.milliseconds(50), grace: .milliseconds(1000)) { await stubborn(.milliseconds(200), 7) }
        guard case .value(let value) = outcome else {
            Issue.record("a write that committed after the deadline was reported as \(outcome)")
            return
        }
        #expect(value == 7)
    }

    @Test func workThatHonoursTheCancelIsTimedOutAndWorkThatNeverEndsIsUnknown() async {
        let cancelled = await withDeadline(.milliseconds(50), grace: .milliseconds(500)) { try await Task.sleep(for: .seconds(30)) }
        guard case .timedOut = cancelled else {
            Issue.record("cancelled work: \(cancelled)")
            return
        }
        let clock = ContinuousClock()
        let started = clock.now
        let stuck = await withDeadline(.milliseconds(50), grace: .milliseconds(200)) { await stubborn(.seconds(3), 1) }
        guard case .unknown = stuck else {
            Issue.record("work that never answered: \(stuck)")
            return
        }
        #expect(clock.now - started < .seconds(1), "the caller waited past deadline and grace")
        // Without a grace nothing is waited for.
        let impatient = await withDeadline(.milliseconds(50)) { await stubborn(.seconds(1), 1) }
        guard case .timedOut = impatient else {
            Issue.record("no grace: \(impatient)")
            return
        }
    }

    @Test func aFailureAfterTheDeadlineThatIsNotTheCancelIsPassedOn() async {
        struct Lost: Error {}
        let outcome = await withDeadline(.milliseconds(50), grace: .milliseconds(1000)) { () async throws -> Int in
            _ = await stubborn(.milliseconds(150), 0)
            throw Lost()
        }
        guard case .failed(let error) = outcome, error is Lost else {
            Issue.record("\(outcome)")
            return
        }
    }

    @Test func theTimerEndsWithTheWork() async {
        // Many quick operations under a long deadline leave no timers sleeping behind them.
        for _ in 0..<2000 {
            guard case .value = await withDeadline(.seconds(60), { 1 }) else {
                Issue.record("a quick operation timed out")
                return
            }
        }
        let slot = TimerSlot()
        slot.finish()
        let late = Task<Void, Never> { try? await Task.sleep(for: .seconds(60)) }
        slot.start(late)  // stored after the work ended: cancelled at once
        #expect(late.isCancelled)
    }
}
