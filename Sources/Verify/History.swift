import Foundation

/// One operation of a verify run, as a client saw it: what it asked, what came back,
/// where it ran, and when it was invoked and completed (seconds since the run began).
///
/// Every client owns a set of keys and writes only those, each write a value higher
/// than the last (its own sequence): so "older" is a plain comparison of values.
public struct VerifyOperation: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        /// Appends `value` to the client's own `key`.
        case write
        /// Reads the newest value of the client's own key.
        case read
        /// Reads the newest value of another client's key.
        case readOther = "read-other"
        /// Inside one transaction: writes `value`, then reads the key back (`observed`).
        case transaction
    }

    public enum Outcome: String, Codable, Sendable {
        /// Acknowledged (a write: committed).
        case ok
        /// Refused, or failed in a way that guarantees it did nothing.
        case failed
        /// The answer never came: a write may or may not have committed.
        case unknown
    }

    /// Why a failed operation failed, for the checker.
    public enum ErrorClass: String, Codable, Sendable {
        /// The connection failed or was lost, or the statement timed out.
        case connection
        /// No node could take it (no primary, every replica down): not retryable here.
        case routing
        /// The server refused it.
        case server
        /// Anything else.
        case other
    }

    public var id: Int
    public var client: Int
    public var kind: Kind
    public var key: Int
    /// The value written (write, transaction).
    public var value: Int?
    /// The value read (read, read-other, transaction's read-back); nil when the key had none.
    public var observed: Int?
    public var node: String?
    public var reason: String?
    public var tokenBefore: String?
    public var tokenAfter: String?
    public var start: Double
    public var end: Double
    public var outcome: Outcome
    public var errorClass: ErrorClass?
    public var error: String?
    /// The unit of work this operation belongs to: operations of one unit share a session.
    public var unit: Int
    /// For a failed read: whether running it again elsewhere was safe (nothing reached the
    /// server, or it ran on a replica); nil when unknown (over HTTP).
    public var retryable: Bool?

    public init(
        id: Int, client: Int, kind: Kind, key: Int, value: Int? = nil, observed: Int? = nil, node: String? = nil,
        reason: String? = nil, tokenBefore: String? = nil, tokenAfter: String? = nil, start: Double, end: Double,
        outcome: Outcome, errorClass: ErrorClass? = nil, error: String? = nil, unit: Int = 0
    ) {
        self.id = id
        self.client = client
        self.kind = kind
        self.key = key
        self.value = value
        self.observed = observed
        self.node = node
        self.reason = reason
        self.tokenBefore = tokenBefore
        self.tokenAfter = tokenAfter
        self.start = start
        self.end = end
        self.outcome = outcome
        self.errorClass = errorClass
        self.error = error
        self.unit = unit
    }

    var isRead: Bool { kind == .read || kind == .readOther }
    var writes: Bool { kind == .write || kind == .transaction }
}

/// A fault injected during the run: its name, target and window (seconds since start).
public struct FaultWindow: Codable, Sendable, Equatable {
    public var fault: String
    public var target: String
    public var start: Double
    /// When it was healed; nil while still active at the end (never, in a finished run).
    public var end: Double?
    /// Whether acknowledged writes may be lost while it lasts (a failover without
    /// synchronous replication, a rogue promotion): such losses are counted, not violations.
    public var mayLoseWrites: Bool

    public init(fault: String, target: String, start: Double, end: Double? = nil, mayLoseWrites: Bool = false) {
        self.fault = fault
        self.target = target
        self.start = start
        self.end = end
        self.mayLoseWrites = mayLoseWrites
    }

    func contains(_ time: Double, slack: Double = 0) -> Bool { time >= start - slack && time <= (end ?? .infinity) + slack }
}

/// A broken guarantee, with the operations around it.
public struct Violation: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        /// A read in a session that carried the client's token returned an older value than
        /// the client's own acknowledged write.
        case readYourWrites = "read-your-writes"
        /// A read returned an older value than one the client had already seen or written.
        case monotonicReads = "monotonic-reads"
        /// An acknowledged write is not on the final primary (outside a fault that may lose writes).
        case lostWrite = "lost-write"
        /// A read failed with an error a retry on another node would have avoided.
        case readError = "read-error"
        /// A transaction read back something other than what it had just written.
        case transactionReadBack = "transaction-read-back"
        /// An answer came after the deadline it was promised within.
        case lateAnswer = "late-answer"
    }

    public var kind: Kind
    public var operation: Int
    public var client: Int
    public var message: String
    /// Ids of the client's operations just before and after, for context.
    public var around: [Int]
    /// Faults whose window the operation fell in.
    public var faults: [String]
}

/// A lost write and the fault window it fell in (if any).
public struct LostWrite: Codable, Sendable, Equatable {
    public var operation: Int
    public var client: Int
    public var key: Int
    public var value: Int
    public var fault: String?
}
