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
