@testable import Console
import Foundation
import Switchyard
import Testing

/// The lag history behind `L`: samples and events from monitor rounds, bounded, drawn.
@Suite struct LagHistoryTests {
    static let start = Date(timeIntervalSince1970: 1_764_201_600)

    static func topology(_ second: Int) -> Topology {
        var primary = Fixtures.node("pg1", role: .primary, timeline: 1)
        var pg2 = Fixtures.node("pg2", role: .replica, lagBytes: UInt64(second % 60) * 1000, lagSeconds: Double(second % 60) / 40, timeline: 1)
        let pg3 = second >= 200 && second < 320 ? Fixtures.node("pg3", role: .replica, reachable: false)
            : Fixtures.node("pg3", role: .replica, lagBytes: 0, lagSeconds: 0, timeline: 1)
        if second >= 500 {
            // pg2 promoted on a new timeline, pg1 gone.
            primary = Fixtures.node("pg1", role: .primary, reachable: false)
            pg2 = Fixtures.node("pg2", role: .primary, timeline: 2)
        }
        return Topology(nodes: [primary, pg2, pg3])
    }

    static func filled() -> LagHistory {
        var history = LagHistory()
        for second in stride(from: 0, to: 900, by: 2) { history.record(topology(second), at: start.addingTimeInterval(Double(second))) }
        return history
    }

    @Test func eventsAreNoticedAndTheWindowIsBounded() {
        let history = Self.filled()
        // 900 s recorded, 600 s kept.
        let kept = history.samples["pg2"] ?? []
        #expect(kept.count == 301)
        #expect(kept.first?.at == Self.start.addingTimeInterval(298))
        let kinds = history.events.map { "\($0.node) \($0.kind.rawValue)" }
        #expect(kinds == ["pg3 up", "pg1 down", "pg2 promoted", "pg2 timeline"], "\(kinds)")
        // pg3 went down at 200 s: outside the window now.
        var early = LagHistory()
        for second in stride(from: 0, to: 330, by: 2) { early.record(Self.topology(second), at: Self.start.addingTimeInterval(Double(second))) }
        #expect(early.events.map { "\($0.node) \($0.kind.rawValue)" } == ["pg3 down", "pg3 up"])
        let buckets = early.buckets("pg3", columns: 60, end: Self.start.addingTimeInterval(330))
        #expect(buckets.contains { $0.down } && buckets.filter(\.down).count >= 10)
    }

    @Test func lagViewGoldens() throws {
        for (width, height) in [(80, 24), (200, 60)] {
            var state = ConsoleState.sample(width: width, height: height)
            for second in stride(from: 0, to: 900, by: 2) {
                _ = state.reduce(.topology(Self.topology(second), history: [:], at: Self.start.addingTimeInterval(Double(second))))
            }
            _ = state.reduce(.key(.character("L")))
            #expect(state.mode == .lagView)
            try RenderTests().check(Renderer.render(state, clock: RenderTests.clock), "lag-\(width)x\(height)")
            _ = state.reduce(.key(.escape))
            #expect(state.mode == .browse)
        }
    }
}
