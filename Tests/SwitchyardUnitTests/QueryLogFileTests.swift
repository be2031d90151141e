import Foundation
@testable import Switchyard
import Testing

/// The query log's file: append-only, private, rotated, and never fatal.
@Suite struct QueryLogFileTests {
    func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("sy-log-\(UUID().uuidString).jsonl").path
    }

    func line(_ text: String) -> Data { Data("{\"sql\":\"\(text)\"}".utf8) }

    @Test func aFullDiskWarnsOnceAndNothingCrashes() throws {
        let file = try QueryLogFile(path: "/dev/full")
        #expect(file.problem == nil)
        #expect(!file.append(line("select 1")))
        let problem = try #require(file.problem)
        #expect(problem.contains("/dev/full") && problem.contains("No space left on device"))
        for _ in 0..<100 { #expect(!file.append(line("select 2"))) }
        #expect(file.problem == problem)
        // The in-memory log keeps working with a failing sink.
        let log = QueryLog(capacity: 10, file: file)
        log.record(context: "admin", operation: .read, node: "pg1", reason: .noContext, duration: .zero, rows: 0, error: nil, sql: "select 3")
        #expect(log.entries.map(\.sql) == ["select 3"])
        log.close()
    }

    @Test func anUnopenablePathNamesTheFile() {
        let error = #expect(throws: ConfigurationError.self) { try QueryLogFile(path: "/nonexistent-dir/queries.jsonl") }
        #expect(error?.description.contains("/nonexistent-dir/queries.jsonl") == true)
    }

    @Test func writesRacingCloseNeverCrash() async throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let file = try QueryLogFile(path: path)
        await withTaskGroup(of: Void.self) { group in
            for writer in 0..<4 {
                group.addTask { for index in 0..<500 { file.append(self.line("w\(writer) \(index)")) } }
            }
            group.addTask { file.close() }
        }
        #expect(!file.append(line("after close")))
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.allSatisfy { $0.hasPrefix("{\"sql\":\"w") && $0.hasSuffix("\"}") }, "a line was torn")
    }

    @Test func createdPrivateAndAppendedBySeveralWriters() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let first = try QueryLogFile(path: path)
        let second = try QueryLogFile(path: path)
        let mode = try #require(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
        #expect(mode & 0o777 == 0o600)
        for index in 0..<50 {
            first.append(line("a\(index)"))
            second.append(line("b\(index)"))
        }
        first.close()
        second.close()
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 100, "O_APPEND: no writer overwrote the other")
    }

    @Test func rotatesAtTheLimitKeepingNFiles() throws {
        let path = temporaryPath()
        defer { for suffix in ["", ".1", ".2", ".3"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let file = try QueryLogFile(path: path, maxBytes: 200, keep: 2)
        for index in 0..<100 { #expect(file.append(line(String(format: "select %03d", index)))) }
        file.close()
        for name in [path, path + ".1", path + ".2"] {
            let text = try String(contentsOfFile: name, encoding: .utf8)
            #expect(text.utf8.count <= 200, "\(name) grew past the limit")
            #expect(text.split(separator: "\n").allSatisfy { $0.hasPrefix("{\"sql\":\"select") })
        }
        #expect(!FileManager.default.fileExists(atPath: path + ".3"))
        // The newest lines are in the live file; older ones moved to .1.
        #expect(try String(contentsOfFile: path, encoding: .utf8).contains("select 099"))
    }
}
