import PostgresClient

/// The primary's WAL position over time, as the monitor saw it each round: what turns a
/// replica's replay position into how old its data is (pure; property-tested).
///
/// A replica's lag is how late it applies what the primary commits: the age of the
/// oldest change it has not applied. Its replay position says which changes it has; the
/// marks say when the primary wrote them: every commit the primary had finished when a
/// round read its position `P` at time `t` is applied once the replica has replayed `P`.
/// With the monitor's heartbeat (a tiny transaction the primary's probe commits right
/// after reading `P`), a replica that waits at a heartbeat's commit lacks a change written
/// at `t` and has the previous round's: its delay lies between the two rounds' ages.
/// Between two marks the WAL is interpolated (exact under steady writes). Times are the
/// servers' clocks (`clock_timestamp()`, a standby's report time), never this process's:
/// how late the monitor's task ran does not count, clock skew between servers does.
struct WALTimeline: Sendable {
    struct Mark: Sendable, Equatable {
        /// `pg_current_wal_lsn()` as the round read it.
        var position: LSN
        /// Where the heartbeat's message record ended (its commit follows), when the round
        /// wrote one.
        var heartbeat: LSN?
        /// When the primary was first and last seen at this position, by its own clock
        /// (seconds since 1970; the same instant for a heartbeat round; an idle primary
        /// without heartbeats stays at one position).
        var first: Double
        var last: Double
    }

    private(set) var marks: [Mark] = []
    private var owner: (name: String, timeline: Int?)?
    /// Marks kept: 2 400 rounds (10 minutes at 250 ms). A replica further behind than the
    /// oldest mark gets no figure from here (the caller falls back to its replay age).
    let capacity: Int

    init(capacity: Int = 2400) { self.capacity = max(capacity, 4) }

    /// Notes the primary's position at `instant` (and the heartbeat written right after).
    /// Another primary or timeline, or a position that went back, starts a new history.
    mutating func record(primary: String, timeline: Int?, position: LSN, heartbeat: LSN?, at instant: Double) {
        if owner?.name != primary || owner?.timeline != timeline {
            owner = (primary, timeline)
            marks.removeAll(keepingCapacity: true)
        }
        if let last = marks.last {
            if position < last.position || instant < last.last {
                marks.removeAll(keepingCapacity: true)
            } else if position == last.position, heartbeat == nil, last.heartbeat == nil {
                marks[marks.count - 1].last = instant
                return
            }
        }
        marks.append(Mark(position: position, heartbeat: heartbeat, first: instant, last: instant))
        if marks.count > capacity { marks.removeFirst(capacity / 4) }
    }

    /// What the marks say of a replica that had replayed up to `replay` at `instant`: the
    /// replica applies changes `delay` after they commit, with `delay` within
    /// `low...high` (seconds); `point` where the WAL between two marks gives a better
    /// figure (steady writes). Nil when it is behind every mark kept. `replayAge` (the age of its last replayed transaction,
    /// from a direct probe) is a further upper bound.
    func bracket(replay: LSN, at instant: Double, replayAge: Double? = nil) -> Bracket? {
        // The last mark at or before the replay position.
        var low = 0
        var high = marks.count
        while low < high {
            let middle = (low + high) / 2
            if marks[middle].position <= replay { low = middle + 1 } else { high = middle }
        }
        guard low > 0 else { return nil }
        let mark = marks[low - 1]
        var bracket: Bracket
        if let heartbeat = mark.heartbeat, replay <= heartbeat {
            // Waiting at the heartbeat's commit: it was written as the round read the mark
            // and is not applied; the previous round's heartbeat (before this mark) is.
            let since = Self.seconds(instant - mark.last)
            if low >= 2 {
                bracket = Bracket(low: since, high: Self.seconds(instant - marks[low - 2].last))
            } else {
                // The first mark has no round before it: at least this late, and no more than
                // its replay age says (when known).
                bracket = Bracket(low: since, high: max(replayAge ?? .infinity, since), point: since)
            }
        } else {
            // Past the newest mark: it has every change made before that round; one made
            // since may be missing.
            guard low < marks.count else { return Bracket(low: 0, high: Self.seconds(instant - mark.last)) }
            let next = marks[low]
            let start = mark.heartbeat ?? mark.position
            let span = Double(next.position.bytes(after: start))
            let fraction = span > 0 ? Double(replay.bytes(after: start)) / span : 0
            let written = mark.last + (next.first - mark.last) * min(max(fraction, 0), 1)
            bracket = Bracket(low: Self.seconds(instant - next.first), high: Self.seconds(instant - mark.last), point: Self.seconds(instant - written))
        }
        if let replayAge, replayAge >= bracket.low, replayAge < bracket.high { bracket.high = replayAge }
        return bracket
    }

    /// A range of apply delays (seconds) one observation allows.
    struct Bracket: Sendable, Equatable {
        var low: Double
        var high: Double
        var point: Double?

        /// The figure to show: the point if there is one, else the low end — the age of
        /// the oldest change known to be missing, which is what lag means. (A replica
        /// reports what it applied as new WAL arrives, before applying that WAL: one report
        /// cannot tell a replica 1 ms behind from one 200 ms behind, and the middle would
        /// show every healthy replica half a round late.)
        var estimate: Double { min(max(point ?? low, low), high) }
    }

    /// The last observations of each replica: a heartbeat every interval pins the delay to
    /// within one interval per observation, and observations at other phases (rounds are
    /// jittered) raise the low end towards it while the delay holds. One that no longer overlaps the
    /// rest (the delay changed) starts over.
    private var recent: [String: [(at: Double, bracket: Bracket)]] = [:]

    /// The delay shown for `node` after this observation (seconds), or nil (see
    /// ``bracket(replay:at:replayAge:)``).
    mutating func staleness(of node: String, replay: LSN, at instant: Double, replayAge: Double? = nil) -> Double? {
        guard let observed = bracket(replay: replay, at: instant, replayAge: replayAge) else {
            recent[node] = nil
            return nil
        }
        var kept = (recent[node] ?? []).filter { instant - $0.at < 3 }.suffix(7)
        var low = observed.low
        var high = observed.high
        for (_, bracket) in kept.reversed() {
            let narrowerLow = max(low, bracket.low)
            let narrowerHigh = min(high, bracket.high)
            guard narrowerLow <= narrowerHigh else { break }
            low = narrowerLow
            high = narrowerHigh
        }
        if observed.high == 0 { kept.removeAll() }
        kept.append((instant, observed))
        recent[node] = Array(kept)
        return Bracket(low: low, high: high, point: observed.point).estimate
    }

    /// Where the primary was at `instant` as far as the marks tell (its position at the last
    /// round read by then), for comparing a replica's position with the primary's at the
    /// same moment. Nil before the first mark.
    func position(at instant: Double) -> LSN? {
        marks.last { $0.first <= instant }?.position
    }

    /// Forgets a replica's observations (it is caught up, gone, or no replica).
    mutating func forget(_ node: String) { recent[node] = nil }

    private static func seconds(_ interval: Double) -> Double { max(interval, 0) }
}
