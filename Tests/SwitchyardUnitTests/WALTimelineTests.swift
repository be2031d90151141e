import PostgresClient
import PropertyBased
@testable import Switchyard
import Testing

/// The monitor's lag clock on simulated WAL: a primary whose rounds commit a heartbeat at
/// jittered times while the application commits at random ones, and a replica that applies
/// every commit exactly `delay` after it was made (as `recovery_min_apply_delay` does).
@Suite struct WALTimelineTests {
    /// One record of simulated WAL: its end position and, for a commit, when it was made.
    struct Record {
        var end: UInt64
        var commitTime: Double?
    }

    struct Simulation {
        var records: [Record] = []
        var position: UInt64 = 1000
        var wal = WALTimeline()

        mutating func append(size: UInt64, commitTime: Double?) {
            position += size
            records.append(Record(end: position, commitTime: commitTime))
        }

        /// A round at `time`: the probe reads the position, then commits its heartbeat.
        mutating func round(at time: Double) {
            let read = position
            append(size: 80, commitTime: nil)
            let message = position
            append(size: 40, commitTime: time)
            wal.record(primary: "pg1", timeline: 1, position: LSN(read), heartbeat: LSN(message), at: time)
        }

        /// Where a replica that applies commits `delay` late has replayed to at `time`
        /// (waiting before the first commit made after `time - delay`), and the time of the
        /// last commit it applied.
        func replica(at time: Double, delay: Double) -> (replay: UInt64, lastApplied: Double?, behind: Bool) {
            var replay: UInt64 = 1000
            var lastApplied: Double?
            for record in records {
                if let commit = record.commitTime {
                    if commit > time - delay { return (replay, lastApplied, true) }
                    lastApplied = commit
                }
                replay = record.end
            }
            return (replay, lastApplied, false)
        }
    }

    /// Whatever the rounds' spacing and the application's commits: every observation's
    /// bracket holds the true delay, and the figure shown is never further from it than
    /// that observation's bracket is wide.
    @Test func everyBracketHoldsTheTrueDelay() async {
        // Round gaps (ms), application commits per round gap (0-3, at random offsets), the
        // delay (ms) and where in the next gap the replica is observed.
        let input = zip(Gen.int(in: 150...350).array(of: 12...40), Gen.int(in: 0...3).array(of: 40...40), Gen.int(in: 0...2000),
                        Gen.double(in: 0...1))
        await propertyCheck(count: 1500, input: input) { gaps, appCommits, delayMs, phase in
            var simulation = Simulation()
            let delay = Double(delayMs) / 1000
            var time = 10_000.0
            for (index, gap) in gaps.enumerated() {
                simulation.round(at: time)
                let next = time + Double(gap) / 1000
                let count = appCommits[index % appCommits.count]
                let commits = (0..<count).map { time + (next - time) * Double($0 + 1) / Double(count + 1) }
                // Observe the replica somewhere before the next round, with the application's
                // commits made by then in the WAL (the rest after).
                let observedAt = time + (next - time) * phase * 0.99
                for at in commits where at <= observedAt {
                    simulation.append(size: 100, commitTime: nil)
                    simulation.append(size: 40, commitTime: at)
                }
                defer {
                    for at in commits where at > observedAt {
                        simulation.append(size: 100, commitTime: nil)
                        simulation.append(size: 40, commitTime: at)
                    }
                }
                let replica = simulation.replica(at: observedAt, delay: delay)
                if replica.behind, let bracket = simulation.wal.bracket(
                    replay: LSN(replica.replay), at: observedAt, replayAge: replica.lastApplied.map { observedAt - $0 })
                {
                    #expect(bracket.low <= delay + 1e-9 && delay <= bracket.high + 1e-9, "delay \(delay) outside \(bracket)")
                    let shown = simulation.wal.staleness(of: "pg2", replay: LSN(replica.replay), at: observedAt,
                                                         replayAge: replica.lastApplied.map { observedAt - $0 })
                    #expect(shown.map { abs($0 - delay) <= bracket.high - bracket.low + 1e-9 } == true, "shown \(String(describing: shown)) for \(delay)")
                }
                time = next
            }
        }
    }

    /// A steady delay seen at many phases is pinned far tighter than one round: with the
    /// rounds jittered, ten observations put it within 60 ms (one round is 250 ms).
    @Test func observationsAtVaryingPhasesNarrowASteadyDelay() {
        var simulation = Simulation()
        let delay = 1.5
        var time = 10_000.0
        var shown: Double?
        for round in 0..<40 {
            simulation.round(at: time)
            // Gaps of 200–300 ms in a fixed, irregular order (37 and 100 share no factor).
            let gap = 0.2 + 0.1 * Double(round * 37 % 100) / 100
            let observedAt = time + 0.002
            let replica = simulation.replica(at: observedAt, delay: delay)
            if replica.behind {
                shown = simulation.wal.staleness(of: "pg2", replay: LSN(replica.replay), at: observedAt)
            }
            time += gap
        }
        let figure = try? #require(shown)
        #expect(figure.map { abs($0 - delay) < 0.06 } == true, "\(String(describing: figure))")
    }

    /// A new primary or timeline, or a position that goes back, starts over.
    @Test func anotherPrimaryStartsANewHistory() {
        var wal = WALTimeline()
        wal.record(primary: "pg1", timeline: 1, position: LSN(100), heartbeat: LSN(150), at: 1)
        wal.record(primary: "pg1", timeline: 1, position: LSN(200), heartbeat: LSN(250), at: 2)
        #expect(wal.marks.count == 2)
        wal.record(primary: "pg2", timeline: 2, position: LSN(300), heartbeat: nil, at: 3)
        #expect(wal.marks.count == 1)
        wal.record(primary: "pg2", timeline: 2, position: LSN(300), heartbeat: nil, at: 4)
        #expect(wal.marks.count == 1, "an idle primary without heartbeats keeps one mark")
        #expect(wal.marks.last?.first == 3 && wal.marks.last?.last == 4)
        wal.record(primary: "pg2", timeline: 2, position: LSN(10), heartbeat: nil, at: 5)
        #expect(wal.marks.count == 1 && wal.marks[0].position == LSN(10))
        #expect(wal.bracket(replay: LSN(5), at: 6) == nil, "behind every mark: no figure")
    }
}
