import Foundation
import Testing

@testable import Verify

/// The verify checker on hand-made histories: each guarantee broken once, and a clean
/// history that passes. A checker that cannot fail proves nothing.
@Suite struct HistoryCheckerTests {
    var next = 0
    func op(
        _ client: Int, _ kind: VerifyOperation.Kind, key: Int, value: Int? = nil, observed: Int? = nil, at start: Double,
        outcome: VerifyOperation.Outcome = .ok, errorClass: VerifyOperation.ErrorClass? = nil, node: String = "pg2"
    ) -> VerifyOperation {
        VerifyOperation(
            id: Int(start * 100), client: client, kind: kind, key: key, value: value, observed: observed, node: node, start: start,
            end: start + 0.005, outcome: outcome, errorClass: errorClass, error: outcome == .ok ? nil : "boom")
    }

    let checker = HistoryChecker()

    @Test func aCleanHistoryPasses() {
        let history = [
            op(0, .write, key: 1, value: 1, at: 0.1, node: "pg1"), op(0, .read, key: 1, observed: 1, at: 0.2),
            op(1, .readOther, key: 1, observed: nil, at: 0.15), op(1, .readOther, key: 1, observed: 1, at: 0.3),
            op(0, .transaction, key: 1, value: 2, observed: 2, at: 0.4, node: "pg1"), op(0, .read, key: 1, observed: 2, at: 0.5),
        ]
        let report = checker.check(history, faults: [], final: [KeyValue(key: 1, value: 1), KeyValue(key: 1, value: 2)])
        #expect(report.violations.isEmpty)
        #expect(report.lostWrites.isEmpty)
    }

    @Test func aStaleReadBackBreaksReadYourWrites() throws {
        let history = [
            op(0, .write, key: 1, value: 1, at: 0.1, node: "pg1"), op(0, .write, key: 1, value: 2, at: 0.2, node: "pg1"),
            op(0, .read, key: 1, observed: 1, at: 0.3, node: "pg3"),
        ]
        let report = checker.check(history, faults: [FaultWindow(fault: "delay-replica", target: "pg3", start: 0, end: 1)],
                                   final: [KeyValue(key: 1, value: 1), KeyValue(key: 1, value: 2)])
        let violation = try #require(report.violations.first)
        #expect(report.violations.count == 1)
        #expect(violation.kind == .readYourWrites && violation.operation == 30)
        #expect(violation.message.contains("after writing 2") && violation.faults == ["delay-replica pg3"])
        #expect(violation.around == [10, 20, 30])
    }

    @Test func goingBackInTimeBreaksMonotonicReadsUnlessNotPromised() {
        let history = [
            op(1, .readOther, key: 5, observed: 7, at: 0.1, node: "pg2"), op(1, .readOther, key: 5, observed: 6, at: 0.2, node: "pg3"),
            op(1, .readOther, key: 5, observed: nil, at: 0.3, node: "pg3"),
        ]
        let report = checker.check(history, faults: [], final: [])
        #expect(report.violations.map(\.kind) == [.monotonicReads, .monotonicReads])
        #expect(HistoryChecker(monotonicReads: false).check(history, faults: [], final: []).violations.isEmpty)
    }

    @Test func anAcknowledgedWriteMissingFromThePrimaryIsLost() {
        let history = [
            op(0, .write, key: 1, value: 1, at: 0.1, node: "pg1"), op(0, .write, key: 1, value: 2, at: 2.0, node: "pg1"),
            op(0, .write, key: 1, value: 3, at: 9.0, outcome: .unknown, errorClass: .connection, node: "pg1"),
        ]
        // Value 2 is gone: a violation outside a fault that may lose writes …
        let plain = checker.check(history, faults: [FaultWindow(fault: "kill-replica", target: "pg2", start: 1.5, end: 3)],
                                  final: [KeyValue(key: 1, value: 1)])
        #expect(plain.violations.map(\.kind) == [.lostWrite])
        #expect(plain.lostWrites == [LostWrite(operation: 200, client: 0, key: 1, value: 2, fault: "kill-replica")])
        // … counted, and explained, inside one; a write of unknown outcome is never lost.
        let explained = checker.check(
            history, faults: [FaultWindow(fault: "kill-leader", target: "pg1", start: 1.5, end: 3, mayLoseWrites: true)],
            final: [KeyValue(key: 1, value: 1)])
        #expect(explained.violations.isEmpty && explained.lostWrites.count == 1)
    }

    @Test func aWriteLostInASplitBrainIsCountedOnceNotAsStaleReadsToo() {
        let promote = FaultWindow(fault: "promote-replica", target: "pg2", start: 1, end: 4, mayLoseWrites: true)
        let history = [
            op(0, .write, key: 1, value: 1, at: 0.5, node: "pg1"),
            op(0, .write, key: 1, value: 2, at: 1.2, node: "pg1"),  // acknowledged by the old primary, then rewound
            op(0, .read, key: 1, observed: 2, at: 1.3, node: "pg1"),
            op(0, .read, key: 1, observed: 1, at: 5.0, node: "pg3"),  // the loss, seen again
            op(0, .read, key: 1, at: 2.0, outcome: .failed, errorClass: .connection, node: "pg3"),  // nowhere safe to go
        ]
        let report = checker.check(history, faults: [promote], final: [KeyValue(key: 1, value: 1)])
        #expect(report.violations.isEmpty, "\(report.violations)")
        #expect(report.lostWrites.map(\.value) == [2] && report.lostWrites.first?.fault == "promote-replica")
        // Registers (over HTTP) keep the last value only: an older acknowledged value is not lost.
        let registers = HistoryChecker(registers: true).check(history.prefix(2).map { $0 }, faults: [], final: [KeyValue(key: 1, value: 2)])
        #expect(registers.lostWrites.isEmpty)
    }

    @Test func anAnswerPastTheDeadlineIsAViolationWhenOneIsSet() {
        var late = op(0, .read, key: 1, observed: nil, at: 0.1)
        late.end = 7
        #expect(HistoryChecker(deadline: 5.5).check([late], faults: [], final: []).violations.map(\.kind) == [.lateAnswer])
        #expect(checker.check([late], faults: [], final: []).violations.isEmpty)
    }

    @Test func aReadThatFailedOnAConnectionErrorIsAViolationARoutingRefusalIsNot() {
        let history = [
            op(0, .read, key: 1, at: 0.1, outcome: .failed, errorClass: .connection, node: "pg3"),
            op(0, .read, key: 1, at: 0.2, outcome: .failed, errorClass: .routing),
        ]
        #expect(checker.check(history, faults: [], final: []).violations.map(\.kind) == [.readError])
    }

    @Test func aTransactionThatDoesNotSeeItsOwnWriteIsCaught() {
        let history = [op(0, .transaction, key: 1, value: 4, observed: 3, at: 0.1, node: "pg1")]
        #expect(checker.check(history, faults: [], final: [KeyValue(key: 1, value: 4)]).violations.map(\.kind) == [.transactionReadBack])
    }

    @Test func faultNamesParseAndUnknownOnesAreNamed() throws {
        #expect(try Fault.parse("kill-replica, blackhole-replica,kill-replica") == [.killReplica, .blackholeReplica])
        #expect(throws: VerifyError.self) { try Fault.parse("kill-replica,unplug") }
        #expect((try? Fault.parse("unplug")) == nil)
    }
}
