import Foundation
import PostgresClient
@testable import Switchyard
import Testing

@Suite struct QueryLogTests {
    func record(_ log: QueryLog, _ sql: String, node: String = "pg1", error: Error? = nil, parameters: [any PostgresEncodable] = []) {
        log.record(
            context: "admin", operation: .read, node: node, reason: .primaryContext(context: "admin", operation: .read),
            duration: .milliseconds(2), rows: 1, error: error, sql: sql, parameters: parameters)
    }

    @Test func ringBufferKeepsTheNewest() {
        let log = QueryLog(capacity: 3)
        for i in 1...5 { record(log, "select \(i)") }
        #expect(log.entries.map(\.sql) == ["select 3", "select 4", "select 5"])
        #expect(log.entries.map(\.id) == [3, 4, 5])
        #expect(log.tail(2).map(\.sql) == ["select 4", "select 5"])
        #expect(log.tail(10).map(\.sql) == ["select 3", "select 4", "select 5"])
        #expect(log.tail(0).isEmpty)
        #expect(log.entries.first?.reason == "admin → pg1")
        log.clear()
        #expect(log.entries.isEmpty)
    }

    @Test func subscribersSeeNewEntries() async {
        let log = QueryLog()
        let stream = log.subscribe()
        record(log, "select 1")
        record(log, "select 2")
        var iterator = stream.makeAsyncIterator()
        #expect(await iterator.next()?.sql == "select 1")
        #expect(await iterator.next()?.sql == "select 2")
        log.close()
        #expect(await iterator.next() == nil)
    }

    @Test func errorsKeepSQLStateButNotParameterValues() {
        let log = QueryLog()
        let error = PostgresError(
            kind: .server, message: "invalid input syntax for type integer: \"hunter2secret\"", sqlState: "22P02")
        record(log, "select $1::int", error: error, parameters: ["hunter2secret"])
        let entry = log.entries[0]
        #expect(entry.error == "invalid input syntax for type integer: \"…\" (SQLSTATE 22P02)")
    }

    @Test func jsonLinesSinkWritesOneObjectPerLine() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sy-\(UUID().uuidString).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try QueryLog(capacity: 10, jsonLinesPath: path)
        record(log, "select 1")
        record(log, "select 2", node: "pg2")
        log.close()
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2)
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let second = try decoder.decode(QueryLogEntry.self, from: Data(lines[1].utf8))
        #expect(second.node == "pg2")
        #expect(second.sql == "select 2")
        #expect(throws: (any Error).self) { _ = try QueryLog(jsonLinesPath: "/nonexistent-dir/x.jsonl") }
    }
}
