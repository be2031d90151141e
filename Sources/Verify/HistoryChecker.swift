import Foundation

/// Checks a finished history offline: pure, history in and violations out.
///
/// Rules, per client (a client runs one operation at a time, so its operations are in
/// order of invocation):
/// - **read-your-writes**: a read of the client's own key returns at least the last
///   value the client wrote and had acknowledged before the read began;
/// - **monotonic reads**: a read returns at least the highest value of that key the
///   client already saw (read, or wrote and had acknowledged);
/// - **transactions** read back what they wrote;
/// - **no error for a read that could safely be retried**: a read that failed on a
///   connection error (lost, refused, timed out) although nothing had reached the server
///   or it ran on a replica (a read the primary may have run is not repeated);
/// - **no acknowledged write lost**: every acknowledged write is on the final primary;
///   one that is not counts as lost, and as a violation unless it fell in the window of a
///   fault that may lose writes.
public struct HistoryChecker: Sendable {
    /// Whether monotonic reads are checked (the routing policy promises them).
    public var monotonicReads: Bool
    /// How far around a fault's window an operation still counts as "in" it (seconds):
    /// the fault's effects outlast the command that ended it by a little.
    public var faultSlack: Double

    /// Keys are registers (each write overwrites): an acknowledged write is lost when the
    /// key's final value is below it. Otherwise keys keep every value written (append).
    public var registers: Bool
    /// When set, an operation that took longer than this (seconds) to answer is a violation.
    public var deadline: Double?

    public init(monotonicReads: Bool = true, faultSlack: Double = 2, registers: Bool = false, deadline: Double? = nil) {
        self.monotonicReads = monotonicReads
        self.faultSlack = faultSlack
        self.registers = registers
        self.deadline = deadline
    }

    public struct Report: Sendable, Equatable {
        public var violations: [Violation]
        public var lostWrites: [LostWrite]
    }

    /// `final`: every (key, value) on the final primary.
    public func check(_ operations: [VerifyOperation], faults: [FaultWindow], final: Set<KeyValue>) -> Report {
        var violations: [Violation] = []
        var lost: [LostWrite] = []
        var finalMax: [Int: Int] = [:]
        if registers { for row in final { finalMax[row.key] = max(finalMax[row.key] ?? Int.min, row.value) } }
        func isKept(_ operation: VerifyOperation, _ value: Int) -> Bool {
            registers ? (finalMax[operation.key] ?? Int.min) >= value : final.contains(KeyValue(key: operation.key, value: value))
        }
        // Writes lost in the window of a fault that may lose them: counted once, as lost;
        // reads that saw them, or miss them afterwards, are that same loss, not more.
        var explained = Set<KeyValue>()
        for operation in operations where operation.writes && operation.outcome == .ok {
            guard let value = operation.value, !isKept(operation, value),
                faults.first(where: { $0.contains(operation.end, slack: faultSlack) })?.mayLoseWrites == true
            else { continue }
            explained.insert(KeyValue(key: operation.key, value: value))
        }
        let byClient = Dictionary(grouping: operations, by: \.client)
        for client in byClient.keys.sorted() {
            let history = byClient[client]!.sorted { ($0.start, $0.id) < ($1.start, $1.id) }
            var written: [Int: Int] = [:]  // own key → last acknowledged value
            var seen: [Int: Int] = [:]  // any key → highest value seen or written
            func violation(_ kind: Violation.Kind, _ index: Int, _ message: String) {
                let operation = history[index]
                let around = history[max(0, index - 3)..<min(history.count, index + 2)].map(\.id)
                let windows = faults.filter { $0.contains(operation.start, slack: faultSlack) || $0.contains(operation.end, slack: faultSlack) }
                violations.append(Violation(
                    kind: kind, operation: operation.id, client: client, message: message, around: around,
                    faults: windows.map { "\($0.fault) \($0.target)" }))
            }
            for (index, operation) in history.enumerated() {
                if let deadline, operation.end - operation.start > deadline {
                    violation(.lateAnswer, index, String(format: "answered after %.1f s, past the %.1f s deadline", operation.end - operation.start, deadline))
                }
                switch (operation.kind, operation.outcome) {
                case (.write, .ok):
                    if let value = operation.value, !explained.contains(KeyValue(key: operation.key, value: value)) {
                        written[operation.key] = max(written[operation.key] ?? Int.min, value)
                        seen[operation.key] = max(seen[operation.key] ?? Int.min, value)
                    }
                case (.transaction, .ok):
                    if let value = operation.value, !explained.contains(KeyValue(key: operation.key, value: value)) {
                        if operation.observed != value {
                            violation(.transactionReadBack, index, "transaction wrote \(value) and read back \(describe(operation.observed))")
                        }
                        written[operation.key] = max(written[operation.key] ?? Int.min, value)
                        seen[operation.key] = max(seen[operation.key] ?? Int.min, value)
                    }
                case (.read, .ok), (.readOther, .ok):
                    let got = operation.observed ?? Int.min
                    if operation.kind == .read, let mine = written[operation.key], got < mine {
                        violation(
                            .readYourWrites, index,
                            "read \(describe(operation.observed)) of key \(operation.key) on \(operation.node ?? "?") after writing \(mine)")
                    } else if monotonicReads, let before = seen[operation.key], got < before {
                        violation(
                            .monotonicReads, index,
                            "read \(describe(operation.observed)) of key \(operation.key) on \(operation.node ?? "?") after seeing \(before)")
                    }
                    if let observed = operation.observed, !explained.contains(KeyValue(key: operation.key, value: observed)) {
                        seen[operation.key] = max(seen[operation.key] ?? Int.min, observed)
                    }
                case (.read, .failed), (.readOther, .failed):
                    // In a split brain (a fault that may lose writes) the router refuses to
                    // pick a primary: a read no replica could take has nowhere safe to go.
                    let splitBrain = faults.contains { $0.mayLoseWrites && ($0.contains(operation.start, slack: faultSlack)) }
                    if operation.errorClass == .connection && operation.retryable != false && !splitBrain {
                        violation(.readError, index, "read failed on \(operation.node ?? "?"): \(operation.error ?? "?")")
                    }
                default:
                    break
                }
            }
        }
        for operation in operations where operation.writes && operation.outcome == .ok {
            guard let value = operation.value, !isKept(operation, value) else { continue }
            let window = faults.first { $0.contains(operation.end, slack: faultSlack) }
            lost.append(LostWrite(operation: operation.id, client: operation.client, key: operation.key, value: value, fault: window?.fault))
            if window?.mayLoseWrites != true {
                let mine = operations.filter { $0.client == operation.client }.sorted { ($0.start, $0.id) < ($1.start, $1.id) }
                let position = mine.firstIndex { $0.id == operation.id }!
                violations.append(Violation(
                    kind: .lostWrite, operation: operation.id, client: operation.client,
                    message: "acknowledged write \(value) of key \(operation.key) is not on the final primary",
                    around: mine[max(0, position - 3)..<min(mine.count, position + 2)].map(\.id),
                    faults: window.map { ["\($0.fault) \($0.target)"] } ?? []))
            }
        }
        violations.sort { ($0.operation, $0.kind.rawValue) < ($1.operation, $1.kind.rawValue) }
        return Report(violations: violations, lostWrites: lost)
    }

    private func describe(_ value: Int?) -> String { value.map(String.init) ?? "nothing" }
}

/// One row of the final state: a value a key holds on the final primary.
public struct KeyValue: Hashable, Sendable, Codable {
    public var key: Int
    public var value: Int
    public init(key: Int, value: Int) {
        self.key = key
        self.value = value
    }
}
