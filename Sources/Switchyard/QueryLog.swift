import Foundation
import PostgresClient
import Synchronization

/// One statement as the cluster ran it. Parameter values are never kept: only the SQL.
///
/// In a query-log file (JSON Lines, see the README) each entry is one object with a
/// format version `"v": 1`; readers skip lines of other versions.
public struct QueryLogEntry: Sendable, Codable, Equatable {
    /// The format version this code writes.
    public static let formatVersion = 1

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
    /// The process that ran it (`[query_log] source`, e.g. an app's name); nil for this process.
    public var source: String?
    /// Its process id, when read from a file.
    public var pid: Int32?
    /// The reason's short code (``RouteReason/code``), for narrow screens; nil in lines
    /// written before it existed.
    public var code: String?
    /// The routing context's read-your-writes token before and after the statement (a
    /// write moves it to its commit position; a read with monotonic reads, to what the
    /// replica had replayed). Nil without a token.
    public var tokenBefore: String?
    public var tokenAfter: String?
    /// The followed file it was read from (set by the reader, never written).
    public var file: String?

    public init(
        id: UInt64, time: Date, context: String?, operation: StatementKind, node: String, reason: String, durationMs: Double,
        rows: Int?, error: String?, sql: String, source: String? = nil, pid: Int32? = nil, code: String? = nil,
        tokenBefore: String? = nil, tokenAfter: String? = nil
    ) {
        self.code = code
        self.tokenBefore = tokenBefore
        self.tokenAfter = tokenAfter
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
        self.source = source
        self.pid = pid
    }

    private enum CodingKeys: String, CodingKey {
        case v, id, time, context, operation, node, reason, durationMs, rows, error, sql, source, pid, code, tokenBefore, tokenAfter
    }

    public struct UnsupportedVersion: Error, CustomStringConvertible {
        public var version: Int
        public var description: String { "query-log format version \(version) (this program reads \(QueryLogEntry.formatVersion))" }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let version = try container.decodeIfPresent(Int.self, forKey: .v) ?? 1
        guard version == Self.formatVersion else { throw UnsupportedVersion(version: version) }
        id = try container.decode(UInt64.self, forKey: .id)
        let time = try container.decode(String.self, forKey: .time)
        guard let date = Self.parseTime(time) else {
            throw DecodingError.dataCorruptedError(forKey: .time, in: container, debugDescription: "not an ISO 8601 time: \(time)")
        }
        self.time = date
        context = try container.decodeIfPresent(String.self, forKey: .context)
        operation = try container.decode(StatementKind.self, forKey: .operation)
        node = try container.decode(String.self, forKey: .node)
        reason = try container.decodeIfPresent(String.self, forKey: .reason) ?? ""
        durationMs = try container.decode(Double.self, forKey: .durationMs)
        rows = try container.decodeIfPresent(Int.self, forKey: .rows)
        error = try container.decodeIfPresent(String.self, forKey: .error)
        sql = try container.decode(String.self, forKey: .sql)
        source = try container.decodeIfPresent(String.self, forKey: .source)
        pid = try container.decodeIfPresent(Int32.self, forKey: .pid)
        code = try container.decodeIfPresent(String.self, forKey: .code)
        tokenBefore = try container.decodeIfPresent(String.self, forKey: .tokenBefore)
        tokenAfter = try container.decodeIfPresent(String.self, forKey: .tokenAfter)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(Self.formatVersion, forKey: .v)
        try container.encode(id, forKey: .id)
        try container.encode(time.formatted(Self.timeStyle), forKey: .time)
        try container.encodeIfPresent(context, forKey: .context)
        try container.encode(operation, forKey: .operation)
        try container.encode(node, forKey: .node)
        try container.encode(reason, forKey: .reason)
        try container.encode(durationMs, forKey: .durationMs)
        try container.encodeIfPresent(rows, forKey: .rows)
        try container.encodeIfPresent(error, forKey: .error)
        try container.encode(sql, forKey: .sql)
        try container.encodeIfPresent(source, forKey: .source)
        try container.encodeIfPresent(pid, forKey: .pid)
        try container.encodeIfPresent(code, forKey: .code)
        try container.encodeIfPresent(tokenBefore, forKey: .tokenBefore)
        try container.encodeIfPresent(tokenAfter, forKey: .tokenAfter)
    }

    /// UTC with milliseconds: `2026-11-27T18:20:16.123Z`.
    static let timeStyle = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    static func parseTime(_ text: String) -> Date? {
        (try? timeStyle.parse(text)) ?? (try? Date.ISO8601FormatStyle().parse(text))
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
        var tokenBefore: LSN?
        var tokenAfter: LSN?

        var entry: QueryLogEntry {
            QueryLogEntry(
                id: id, time: time, context: context, operation: operation, node: node, reason: reason.render(node: node),
                durationMs: durationMs, rows: rows, error: error, sql: sql, code: reason.code,
                tokenBefore: tokenBefore?.description, tokenAfter: tokenAfter?.description)
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
    /// Written into each line of the file (`[query_log] source`).
    public let source: String?
    private static let pid = getpid()

    /// - Parameters:
    ///   - capacity: entries kept in memory (default 10 000); the oldest go first.
    ///   - file: when set, every entry is also appended to it, one JSON object a line.
    public init(capacity: Int = 10_000, file: QueryLogFile? = nil, source: String? = nil) {
        self.capacity = max(capacity, 1)
        self.file = file
        self.source = source
        state = Mutex(State())
    }

    /// A log that also appends to the JSON Lines file at `jsonLinesPath` (see
    /// ``QueryLogFile``); throws when the file cannot be opened.
    public convenience init(capacity: Int = 10_000, jsonLinesPath: String, maxBytes: Int = 64 << 20, keep: Int = 3) throws {
        self.init(capacity: capacity, file: try QueryLogFile(path: jsonLinesPath, maxBytes: maxBytes, keep: keep))
    }

    public func record(
        context: String?, operation: StatementKind, node: String, reason: RouteReason, duration: Duration, rows: Int?,
        error: Error?, sql: String, parameters: [any PostgresEncodable] = [], tokenBefore: LSN? = nil, tokenAfter: LSN? = nil
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
        // The record is copied out only for a reader: a file or a subscriber.
        let wanted = file != nil || broadcast.hasSubscribers
        let record = state.withLock { state -> Record? in
            let record = Record(
                id: state.nextID, time: Date(), context: context, operation: operation, node: node, reason: reason,
                durationMs: duration.milliseconds, rows: rows, error: errorText, sql: sql, tokenBefore: tokenBefore,
                tokenAfter: tokenAfter)
            state.nextID += 1
            if state.ring.count < capacity {
                state.ring.append(record)
            } else {
                state.ring[state.start] = record
                state.start = state.start + 1 == capacity ? 0 : state.start + 1
            }
            return wanted ? record : nil
        }
        guard let record else { return }
        var entry = record.entry
        broadcast.send(entry)
        if let file {
            entry.source = source
            entry.pid = Self.pid
            if let line = try? JSONEncoder.queryLog.encode(entry) { file.append(line) }
        }
    }

    /// `message` with the parameter values taken out: the server quotes bad input in its
    /// messages (`invalid input syntax for type integer: "…"`).
    static func withoutValues(_ message: String, _ parameters: [any PostgresEncodable]) -> String {
        var result = message
        for parameter in parameters {
            guard case .text(let value) = parameter.postgresBinding, !value.isEmpty else { continue }
            result = result.replacingBytes(of: "\"\(value)\"", with: "\"…\"")
            if value.count >= 4 { result = result.replacingBytes(of: value, with: "…") }
        }
        return result
    }

    /// Entries in order, oldest first.
    public var entries: [QueryLogEntry] {
        state.withLock { state in
            (Array(state.ring[state.start...]) + Array(state.ring[..<state.start])).map(\.entry)
        }
    }

    /// The entries recorded after the one with `id`, oldest first (all of them for 0): what a
    /// reader that keeps its own copy fetches each time.
    public func entries(after id: UInt64) -> [QueryLogEntry] {
        state.withLock { state in
            let total = state.ring.count
            guard total > 0 else { return [] }
            let newest = state.ring[(state.start + total - 1) % total].id
            let wanted = Int(min(newest - min(id, newest), UInt64(total)))
            return (0..<wanted).map { offset in state.ring[(state.start + total - wanted + offset) % total].entry }
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
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}
