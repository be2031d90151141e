import Foundation
import Switchyard

/// Every node's lag over the last ten minutes, with what happened to the nodes, for the
/// `L` view. Fed by each monitor round; bounded in time and in samples. Pure.
public struct LagHistory: Sendable, Equatable {
    public static let window: TimeInterval = 600
    public static let maxSamples = 4000

    public struct Sample: Sendable, Equatable {
        public var at: Date
        /// nil: unknown, or the node was down.
        public var lagMs: Double?
        public var lagBytes: UInt64?
        public var reachable: Bool
    }

    public struct Event: Sendable, Equatable {
        public enum Kind: String, Sendable { case down, up, promoted, demoted, timeline }
        public var at: Date
        public var node: String
        public var kind: Kind
        public var detail: String
    }

    /// Nodes in config order.
    public private(set) var nodes: [String] = []
    public private(set) var samples: [String: [Sample]] = [:]
    public private(set) var events: [Event] = []
    private var previous: [String: (reachable: Bool, role: NodeRole, timeline: Int?)] = [:]

    public init() {}

    public static func == (lhs: LagHistory, rhs: LagHistory) -> Bool {
        lhs.nodes == rhs.nodes && lhs.samples == rhs.samples && lhs.events == rhs.events
    }

    public mutating func record(_ topology: Topology, at now: Date) {
        for node in topology.nodes {
            if !nodes.contains(node.name) { nodes.append(node.name) }
            samples[node.name, default: []].append(
                Sample(at: now, lagMs: node.reachable ? node.lagMilliseconds : nil, lagBytes: node.reachable ? node.lagBytes : nil,
                       reachable: node.reachable))
            if let before = previous[node.name] {
                if before.reachable && !node.reachable {
                    events.append(Event(at: now, node: node.name, kind: .down, detail: node.error ?? "unreachable"))
                } else if !before.reachable && node.reachable {
                    events.append(Event(at: now, node: node.name, kind: .up, detail: node.role.rawValue))
                }
                if node.reachable && before.reachable {
                    if before.role == .replica && node.role == .primary {
                        events.append(Event(at: now, node: node.name, kind: .promoted, detail: "now primary"))
                    } else if before.role == .primary && node.role == .replica {
                        events.append(Event(at: now, node: node.name, kind: .demoted, detail: "now a replica"))
                    }
                    if let old = before.timeline, let new = node.timeline, old != new {
                        events.append(Event(at: now, node: node.name, kind: .timeline, detail: "timeline \(old) → \(new)"))
                    }
                }
            }
            // An unreachable node keeps what it was, so coming back is compared with that.
            let last = previous[node.name]
            previous[node.name] = node.reachable
                ? (true, node.role, node.timeline ?? last?.timeline)
                : (false, last?.role ?? node.role, last?.timeline)
        }
        let cutoff = now.addingTimeInterval(-Self.window)
        for name in samples.keys {
            var kept = samples[name]!
            if let first = kept.firstIndex(where: { $0.at >= cutoff }), first > 0 { kept.removeFirst(first) }
            if kept.count > Self.maxSamples { kept.removeFirst(kept.count - Self.maxSamples) }
            samples[name] = kept
        }
        events.removeAll { $0.at < cutoff }
        if events.count > 200 { events.removeFirst(events.count - 200) }
    }

    /// The largest lag in each of `columns` equal slices of the window ending at `end`
    /// (nil where nothing was known; `down` where the node was down throughout).
    public func buckets(_ node: String, columns: Int, end: Date) -> [(lagMs: Double?, down: Bool)] {
        guard columns > 0 else { return [] }
        var result = [(lagMs: Double?, down: Bool)](repeating: (nil, false), count: columns)
        var seenUp = [Bool](repeating: false, count: columns)
        var seenDown = [Bool](repeating: false, count: columns)
        let start = end.addingTimeInterval(-Self.window)
        for sample in samples[node] ?? [] where sample.at >= start && sample.at <= end {
            let column = min(Int(sample.at.timeIntervalSince(start) / Self.window * Double(columns)), columns - 1)
            if sample.reachable {
                seenUp[column] = true
                if let lag = sample.lagMs { result[column].lagMs = max(result[column].lagMs ?? 0, lag) }
            } else {
                seenDown[column] = true
            }
        }
        for column in 0..<columns { result[column].down = seenDown[column] && !seenUp[column] }
        return result
    }
}
