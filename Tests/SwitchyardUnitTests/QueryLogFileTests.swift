import Foundation
@testable import Switchyard
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The query log's file: append-only, private, rotated, and never fatal.
@Suite struct QueryLogFileTests {
    func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("sy-log-\(UUID().uuidString).jsonl").path
    }

    func line(_ text: String) -> Data { Data("{\"sql\":\"\(text)\"}".utf8) }

    @Test func aFullDiskWarnsOnceAndNothingCrashes() throws {
        let file = try QueryLogFile(path: "/dev/full")
        #expect(file.problem == nil)
        file.append(line("select 1"))
        file.flush()
        let problem = try #require(file.problem)
        #expect(problem.contains("/dev/full") && problem.contains("No space left on device"))
        for _ in 0..<100 { file.append(line("select 2")) }
        file.flush()
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

    /// Runs `body` on a thread of its own; false when it had not returned within `seconds`
    /// (the thread is left behind: the caller unblocks it).
    func returnsWithin(_ seconds: Double, _ body: @escaping @Sendable () -> Void) -> Bool {
        let done = DispatchSemaphore(value: 0)
        Thread {
            body()
            done.signal()
        }.start()
        return done.wait(timeout: .now() + seconds) == .success
    }

    @Test func aFIFOWithNoReaderNeitherBlocksTheStartNorAStatement() throws {
        let path = temporaryPath()
        defer { unlink(path) }
        #expect(mkfifo(path, 0o600) == 0)
        let opened = Mutex<QueryLogFile?>(nil)
        let started = returnsWithin(5) { opened.withLock { $0 = try? QueryLogFile(path: path, queueBytes: 1 << 20) } }
        // Unblocks a writer stuck opening (the old code) so the test ends either way.
        let reader = open(path, O_RDONLY | O_NONBLOCK)
        defer { close(reader) }
        #expect(started, "opening a FIFO with no reader blocked")
        let file = try #require(opened.withLock { $0 })
        // The reader never reads: a pipe holds 64 KiB, the queue 1 MiB; 100 000 lines of
        // ~1 KiB go nowhere and every append still returns at once.
        let payload = String(repeating: "x", count: 1000)
        let appended = returnsWithin(20) { for index in 0..<100_000 { file.append(self.line("\(index) \(payload)")) } }
        #expect(appended, "an append blocked on a stalled reader")
        #expect(file.dropped > 90_000)
        #expect(file.problem?.contains("not keeping up") == true)
        // Draining the reader lets the writer finish, and the lines it wrote are whole.
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var text = Data()
        let drained = Date().addingTimeInterval(10)
        while Date() < drained, !file.flush(timeout: .milliseconds(10)) {
            let count = read(reader, &buffer, buffer.count)
            if count > 0 { text.append(contentsOf: buffer[..<count]) }
        }
        file.close()
        while case let count = read(reader, &buffer, buffer.count), count > 0 { text.append(contentsOf: buffer[..<count]) }
        let lines = String(decoding: text, as: UTF8.self).split(separator: "\n")
        #expect(lines.count > 60 && lines.allSatisfy { $0.hasPrefix("{\"sql\":\"") && $0.hasSuffix("\"}") })
    }

    @Test func aPipeWhoseReaderLeftIsAProblemNotTheEndOfTheProcess() throws {
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        defer { close(ends[1]) }
        close(ends[0])
        // As `--query-log /dev/stdout | head -c 1` does once head exits.
        let file = try QueryLogFile(path: "/proc/self/fd/\(ends[1])")
        file.append(line("select 1"))
        file.flush()
        #expect(file.problem?.contains("Broken pipe") == true)
        file.close()
    }

    @Test func severalWritersRotateOneSequenceOfFiles() throws {
        let path = temporaryPath()
        let keep = 200
        defer { for index in 0...keep { unlink(index == 0 ? path : "\(path).\(index)") } }
        let limit = 2000
        let writers = try (0..<3).map { _ in try QueryLogFile(path: path, maxBytes: limit, keep: keep) }
        for index in 0..<300 {
            for (number, writer) in writers.enumerated() {
                writer.append(line(String(format: "w%d %05d", number, index)))
                if index % 7 == number { writer.flush() }
            }
        }
        writers.forEach { $0.close() }
        // Oldest file first: every writer's lines are all there, in the order written.
        var seen: [String: [Int]] = [:]
        for index in stride(from: keep, through: 0, by: -1) {
            let name = index == 0 ? path : "\(path).\(index)"
            guard let text = try? String(contentsOfFile: name, encoding: .utf8) else { continue }
            #expect(text.utf8.count <= limit + 64 * 1024, "\(name) has \(text.utf8.count) bytes")
            for entry in text.split(separator: "\n") {
                let fields = entry.dropFirst(8).dropLast(2).split(separator: " ")
                seen[String(fields[0]), default: []].append(Int(fields[1])!)
            }
        }
        for number in 0..<3 {
            #expect(seen["w\(number)"] == Array(0..<300), "writer \(number)'s lines are lost or out of order")
        }
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
