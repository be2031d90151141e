import Foundation
import PostgresClient
import Synchronization

/// One statement as the cluster ran it. Parameter values are never kept: only the SQL.
public struct QueryLogEntry: Sendable, Codable, Equatable {
    public var id: UInt64
    public var time: Date
    /// Routing context name; nil when there was none.
    public var context: String?
    public var operation: StatementKind
    /// The node that served the statement (or was tried last, on error).
    public var node: String
    /// Why it went there, e.g. `public → pg2 (least-lag, 3 ms)`.
    public var reason: String
    public var durationMs: Double
    public var rows: Int?
    /// The error, with SQLSTATE, when the statement failed.
    public var error: String?
    public var sql: String

    public init(
        id: UInt64, time: Date, context: String?, operation: StatementKind, node: String, reason: String, durationMs: Double,
        rows: Int?, error: String?, sql: String
    ) {
        self.id = id
        self.time = time
        self.context = context
        self.operation = operation
        self.node = node
        self.reason = reason
        self.durationMs = durationMs
        self.rows = rows
        self.error = error
        self.sql = sql
    }
}

/// A bounded, in-memory record of every statement the cluster ran, with subscribers and
/// an optional JSON Lines file.
public final class QueryLog: Sendable {
    public let capacity: Int

    /// An entry as recorded: the reason stays structured until someone reads it, so a
    /// statement costs no string building.
    private struct Record {
        var id: UInt64
        var time: Date
        var context: String?
        var operation: StatementKind
        var node: String
        var reason: RouteReason
        var durationMs: Double
        var rows: Int?
        var error: String?
        var sql: String

        var entry: QueryLogEntry {
            QueryLogEntry(
                id: id, time: time, context: context, operation: operation, node: node, reason: reason.render(node: node),
                durationMs: durationMs, rows: rows, error: error, sql: sql)
        }
    }

    private struct State {
        var ring: [Record] = []
        var start = 0
        var nextID: UInt64 = 1
    }

    private let state: Mutex<State>
    private let broadcast = Broadcast<QueryLogEntry>()
    /// The JSON Lines file, if any.
    public let file: QueryLogFile?

    /// - Parameters:
    ///   - capacity: entries kept in memory (default 10 000); the oldest go first.
    ///   - file: when set, every entry is also appended to it, one JSON object a line.
    public init(capacity: Int = 10_000, file: QueryLogFile? = nil) {
        self.capacity = max(capacity, 1)
        self.file = file
        state = Mutex(State())
    }

    /// A log that also appends to the JSON Lines file at `jsonLinesPath` (see
    /// ``QueryLogFile``); throws when the file cannot be opened.
    public convenience init(capacity: Int = 10_000, jsonLinesPath: String, maxBytes: Int = 64 << 20, keep: Int = 3) throws {
        self.init(capacity: capacity, file: try QueryLogFile(path: jsonLinesPath, maxBytes: maxBytes, keep: keep))
    }

    public func record(
        context: String?, operation: StatementKind, node: String, reason: RouteReason, duration: Duration, rows: Int?,
        error: Error?, sql: String, parameters: [any PostgresEncodable] = []
    ) {
        let errorText = error.map { error -> String in
            let text: String
            if let error = error as? PostgresError {
                text = error.sqlState.map { "\(error.message) (SQLSTATE \($0))" } ?? error.message
            } else {
                text = "\(error)"
            }
            return Self.withoutValues(text, parameters)
        }
        let record = state.withLock { state -> Record in
            let record = Record(
                id: state.nextID, time: Date(), context: context, operation: operation, node: node, reason: reason,
                durationMs: duration.milliseconds, rows: rows, error: errorText, sql: sql)
            state.nextID += 1
            if state.ring.count < capacity {
                state.ring.append(record)
            } else {
                state.ring[state.start] = record
                state.start = (state.start + 1) % capacity
            }
            return record
        }
        guard file != nil || broadcast.hasSubscribers else { return }
        let entry = record.entry
        broadcast.send(entry)
        if let file, let line = try? JSONEncoder.queryLog.encode(entry) { file.append(line) }
    }

    /// `message` with the parameter values taken out: the server quotes bad input in its
    /// messages (`invalid input syntax for type integer: "…"`).
    static func withoutValues(_ message: String, _ parameters: [any PostgresEncodable]) -> String {
        var result = message
        for parameter in parameters {
            guard case .text(let value) = parameter.postgresBinding, !value.isEmpty else { continue }
            result = result.replacingOccurrences(of: "\"\(value)\"", with: "\"…\"")
            if value.count >= 4 { result = result.replacingOccurrences(of: value, with: "…") }
        }
        return result
    }

    /// Entries in order, oldest first.
    public var entries: [QueryLogEntry] {
        state.withLock { state in
            (Array(state.ring[state.start...]) + Array(state.ring[..<state.start])).map(\.entry)
        }
    }

    /// The newest `count` entries, oldest first.
    public func tail(_ count: Int) -> [QueryLogEntry] {
        state.withLock { state in
            let total = state.ring.count
            let wanted = min(max(count, 0), total)
            return (0..<wanted).map { offset in state.ring[(state.start + total - wanted + offset) % total].entry }
        }
    }

    /// Every entry recorded from now on.
    public func subscribe(bufferingNewest limit: Int = 1000) -> AsyncStream<QueryLogEntry> {
        broadcast.subscribe(bufferingNewest: limit)
    }

    public func clear() {
        state.withLock { state in
            state.ring.removeAll()
            state.start = 0
        }
    }

    /// Closes the file sink and ends every subscription.
    public func close() {
        broadcast.finish()
        file?.close()
    }
}

extension JSONEncoder {
    static let queryLog: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}
