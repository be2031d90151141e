import Foundation
import PropertyBased
import Testing

@testable import Switchyard

/// Following other processes' query logs: the line splitter, and `tail -F` on real files.
@Suite struct QueryLogFollowerTests {
    @Test func linesSurviveAnyChunkingAndOverlongLinesAreSkippedWhole() async {
        let line = Gen<Character>.frequency((8, Gen.character(in: "a"..."z")), (1, Gen.always("é"))).string(of: 0...40)
        await propertyCheck(count: 2000, input: line.array(of: 0...20), Gen.int(in: 1...17)) { lines, chunk in
            let limit = 24
            var assembler = LineAssembler(maxLineBytes: limit)
            let bytes = Array(lines.map { $0 + "\n" }.joined().utf8)
            var output: [String] = []
            var index = 0
            while index < bytes.count {
                let end = min(index + chunk, bytes.count)
                output += assembler.feed(bytes[index..<end]).map { String(decoding: $0, as: UTF8.self) }
                #expect(assembler.pendingBytes <= limit)
                index = end
            }
            let kept = lines.filter { !$0.isEmpty && $0.utf8.count <= limit }
            #expect(output == kept)
            #expect(assembler.takeSkipped() == lines.filter { $0.utf8.count > limit }.count)
        }
    }

    static func entry(_ id: UInt64, source: String? = "app", sql: String = "select 1") -> QueryLogEntry {
        QueryLogEntry(
            id: id, time: Date(timeIntervalSince1970: 1_800_000_000 + Double(id) / 4), context: "public", operation: .read, node: "pg2",
            reason: "public → pg2 (least-lag)", durationMs: 0.25, rows: 1, error: nil, sql: sql, source: source, pid: 42)
    }

    static func line(_ entry: QueryLogEntry) throws -> String {
        String(decoding: try JSONEncoder().encode(entry), as: UTF8.self) + "\n"
    }

    @Test func theFormatRoundTripsWithItsVersionAndSkipsOtherVersions() throws {
        let entry = Self.entry(7)
        let text = try Self.line(entry)
        #expect(text.contains(#""v":1"#))
        #expect(text.contains(#""time":"2027-01-15T08:00:01.750Z""#))
        #expect(try JSONDecoder().decode(QueryLogEntry.self, from: Data(text.utf8)) == entry)
        let future = text.replacingOccurrences(of: #""v":1"#, with: #""v":2"#)
        #expect(throws: QueryLogEntry.UnsupportedVersion.self) { try JSONDecoder().decode(QueryLogEntry.self, from: Data(future.utf8)) }
    }

    @Test func followsAppendsRotationTruncationAndNewFilesLikeTailF() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sy-follow-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("shop.jsonl").path
        func append(_ text: String, to file: String = path) throws {
            if !FileManager.default.fileExists(atPath: file) { FileManager.default.createFile(atPath: file, contents: nil) }
            let handle = try #require(FileHandle(forWritingAtPath: file))
            handle.seekToEndOfFile()
            handle.write(Data(text.utf8))
            handle.closeFile()
        }
        try append(try Self.line(Self.entry(1)))  // before following: not shown
        let follower = QueryLogFollower(patterns: [folder.path + "/*.jsonl"])
        #expect(follower.poll().isEmpty)
        #expect(follower.status.files == [path])

        // Appends, a line written in two parts, junk and another version skipped.
        let second = try Self.line(Self.entry(2))
        try append(String(second.prefix(30)))
        #expect(follower.poll().isEmpty)
        try append(String(second.dropFirst(30)) + "not json\n" + (try Self.line(Self.entry(3))).replacingOccurrences(of: #""v":1"#, with: #""v":9"#))
        #expect(follower.poll().map(\.entry.id) == [2])
        #expect(follower.status.skippedLines == 2)

        // Rotation: the writer's last line in the old file is still read, then the new file from its start.
        try append(try Self.line(Self.entry(4)))
        try FileManager.default.moveItem(atPath: path, toPath: path + ".1")
        try append(try Self.line(Self.entry(5)))
        #expect(follower.poll().map(\.entry.id) == [4, 5])

        // Truncation: read again from the start.
        try Data().write(to: URL(fileURLWithPath: path))
        #expect(follower.poll().isEmpty)
        try append(try Self.line(Self.entry(6)))
        #expect(follower.poll().map(\.entry.id) == [6])

        // A file that appears later matches the glob and is read from its start; its
        // entries without a source are labelled by the file's name.
        let other = folder.appendingPathComponent("jobs.jsonl").path
        try append(try Self.line(Self.entry(8, source: nil)), to: other)
        let followed = follower.poll()
        #expect(followed.map(\.entry.id) == [8])
        #expect(followed.first?.source == "jobs")
        #expect(follower.status.files.count == 2)

        // Vanishing files do not stop the others.
        try FileManager.default.removeItem(atPath: other)
        try append(try Self.line(Self.entry(9)))
        #expect(follower.poll().map(\.entry.id) == [9])
    }

    @Test func aHugeLineDoesNotGrowMemoryAndTheNextLineIsRead() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sy-follow-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("big.jsonl").path
        FileManager.default.createFile(atPath: path, contents: nil)
        let follower = QueryLogFollower(patterns: [path], maxLineBytes: 4096)
        _ = follower.poll()
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.write(Data(String(repeating: "x", count: 100_000).utf8))
        #expect(follower.poll().isEmpty)
        handle.write(Data(("\n" + (try Self.line(Self.entry(11)))).utf8))
        handle.closeFile()
        #expect(follower.poll().map(\.entry.id) == [11])
        #expect(follower.status.skippedLines == 1)
    }
}

extension QueryLogFollowerTests {
    @Test func aBroadGlobReadsARotatedFileOnceAndLabelsLinesByTheirFile() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sy-follow-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("shop.jsonl").path
        // The real writer, rotating every few lines, under a glob that matches its old files.
        let writer = try QueryLogFile(path: path, maxBytes: 700, keep: 20)
        let follower = QueryLogFollower(patterns: [folder.path + "/*"])
        #expect(follower.poll().isEmpty)
        var seen: [UInt64] = []
        for id in 1...60 {
            writer.append(Data((try Self.line(Self.entry(UInt64(id), source: id == 30 ? "console" : "shop"))).dropLast().utf8))
            if id % 5 == 0 {
                writer.flush()
                seen += follower.poll().map(\.entry.id)
            }
        }
        writer.close()
        seen += follower.poll().map(\.entry.id)
        // Before: each rotated file (`shop.jsonl.1`, …) was a new match read from its start.
        // (Within one poll the files come in name order; readers merge by time.)
        #expect(seen.sorted() == Array(1...60), "duplicated or lost: \(seen)")
        #expect(FileManager.default.fileExists(atPath: path + ".3"), "the writer did not rotate")

        // A line that calls itself the console is shown with the file it came from.
        let other = folder.appendingPathComponent("jobs.jsonl").path
        try Self.line(Self.entry(61, source: "console")).write(toFile: other, atomically: false, encoding: .utf8)
        try (Self.line(Self.entry(62, source: "jobs")) + Self.line(Self.entry(63, source: "\u{1b}[2Jx"))).appendLine(to: other)
        #expect(follower.poll().map(\.source) == ["jobs/console", "jobs", "jobs/·[2Jx"])
    }

    @Test func aProblemIsClearedOnceTheFileCanBeRead() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sy-follow-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("locked.jsonl").path
        try Self.line(Self.entry(1)).write(toFile: path, atomically: false, encoding: .utf8)
        chmod(path, 0)
        let follower = QueryLogFollower(patterns: [path])
        // As root, the test reads with another filesystem identity (this thread only),
        // which drops the capability to read a mode-0 file.
        let previous = setfsuid(65534)
        _ = follower.poll()
        _ = setfsuid(previous)
        #expect(follower.status.problem?.contains("locked.jsonl") == true)
        chmod(path, 0o600)
        _ = follower.poll()
        #expect(follower.status.problem == nil, "a problem that went away is still shown")
        #expect(follower.status.files == [path])
    }
}

@_silgen_name("setfsuid") func setfsuid(_ uid: UInt32) -> UInt32

extension String {
    func appendLine(to path: String) throws {
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data(utf8))
        try handle.close()
    }
}
