import Foundation
import Synchronization
import PostgresClient

#if canImport(Glibc)
import Glibc
#endif

/// Tails other processes' query-log files (JSON Lines, ``QueryLogEntry``) the way
/// `tail -F` does: files present at the start are read from their end; files that appear
/// later (a new match of a glob, or a file recreated by rotation) from their start; a
/// rotated file is drained to its end before the new one is opened; a truncated file is
/// read again from its start. A file is one file whatever its name: one that a broad glob
/// also matches after rotation (`queries.jsonl.1`) is followed on under its new name, never
/// read again from its start. Entries are labelled by the file they were read from: a line
/// cannot pass for another process by the `source` it writes (a different claim is shown
/// beside the file's name). Memory stays bounded: at most ``maxLineBytes`` of a partial
/// line per file (a longer line is skipped), and at most ``readBudget`` bytes per file per
/// poll.
public final class QueryLogFollower: Sendable {
    public let patterns: [String]
    public let maxLineBytes: Int
    public let readBudget: Int

    /// One followed entry, with the label of where it came from.
    public struct Followed: Sendable, Equatable {
        public var entry: QueryLogEntry
        /// The file's name without its extension; when the line's own `source` says
        /// otherwise, `file/source`.
        public var source: String
        public var path: String
    }

    /// What happened to the followed files, for a status line.
    public struct Status: Sendable, Equatable {
        public var files: [String] = []
        /// Lines that were not entries (not JSON, another format version, too long).
        public var skippedLines = 0
        /// Why a matched file cannot be read, as of the last poll (cleared once it can).
        public var problem: String?
    }

    private struct Identity: Hashable {
        var device: UInt64
        var inode: UInt64
    }

    private static func identity(_ path: String) -> Identity? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Identity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }

    private struct File {
        var descriptor: Int32
        var identity: Identity
        var offset: Int64
        var lines: LineAssembler
        var label: String
    }

    private struct State {
        var files: [String: File] = [:]
        var started = false
        var status = Status()
    }

    private let state = Mutex(State())

    public init(patterns: [String], maxLineBytes: Int = 1 << 20, readBudget: Int = 4 << 20) {
        self.patterns = patterns
        self.maxLineBytes = max(maxLineBytes, 256)
        self.readBudget = max(readBudget, 4096)
    }

    deinit {
        state.withLock { state in
            for file in state.files.values { Glibc.close(file.descriptor) }
            state.files.removeAll()
        }
    }

    public var status: Status { state.withLock { $0.status } }

    /// Reads what was appended since the last call, in file order per file.
    public func poll() -> [Followed] {
        state.withLock { state -> [Followed] in
            let paths = Self.expand(patterns)
            var identities: [String: Identity] = [:]
            for path in paths { identities[path] = Self.identity(path) }
            var output: [Followed] = []
            var reader = Reader()
            let firstPoll = !state.started
            state.started = true
            state.status.problem = nil
            // Files that vanished or were renamed: drain what the writer put there before
            // the rename; follow one on under a new name the patterns match (a rotated
            // file), let the others go (a replacement is picked up below, from its start).
            var moved: [File] = []
            for (path, file) in state.files where Self.identity(path) != file.identity {
                var drained = file
                read(&drained, path: path, with: &reader, into: &output, status: &state.status)
                state.files[path] = nil
                moved.append(drained)
            }
            // Only now: several files may have moved one name along (`.1` → `.2`, … ).
            for file in moved {
                if let renamed = paths.first(where: { identities[$0] == file.identity && state.files[$0] == nil }) {
                    state.files[renamed] = file
                } else {
                    Glibc.close(file.descriptor)
                }
            }
            var followed = Set(state.files.values.map(\.identity))
            for path in paths {
                if state.files[path] == nil {
                    // Already followed under another name (two patterns, a link): once only.
                    if let identity = identities[path], followed.contains(identity) { continue }
                    guard let file = open(path, atEnd: firstPoll, status: &state.status) else { continue }
                    state.files[path] = file
                    followed.insert(file.identity)
                }
                read(&state.files[path]!, path: path, with: &reader, into: &output, status: &state.status)
            }
            state.status.files = state.files.keys.sorted()
            return output
        }
    }

    /// Polls every `interval` until the task is cancelled.
    public func entries(every interval: Duration = .milliseconds(200)) -> AsyncStream<[Followed]> {
        AsyncStream(bufferingPolicy: .bufferingNewest(16)) { continuation in
            let task = Task {
                while !Task.isCancelled {
                    let batch = self.poll()
                    if !batch.isEmpty { continuation.yield(batch) }
                    try? await Task.sleep(for: interval)
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// Paths the patterns match now (globs expanded; a plain path counts when it exists).
    static func expand(_ patterns: [String]) -> [String] {
        var paths: [String] = []
        for pattern in patterns {
            var result = glob_t()
            defer { globfree(&result) }
            guard glob(pattern, 0, nil, &result) == 0 else { continue }
            for index in 0..<Int(result.gl_pathc) {
                guard let pointer = result.gl_pathv[index] else { continue }
                let path = String(cString: pointer)
                var info = stat()
                guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, !paths.contains(path) else { continue }
                paths.append(path)
            }
        }
        return paths
    }

    private func open(_ path: String, atEnd: Bool, status: inout Status) -> File? {
        let descriptor = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard descriptor >= 0 else {
            status.problem = "cannot open \(path): \(String(cString: strerror(errno)))"
            return nil
        }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            Glibc.close(descriptor)
            return nil
        }
        let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        return File(
            descriptor: descriptor, identity: Identity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino)), offset: atEnd ? Int64(info.st_size) : 0,
            lines: LineAssembler(maxLineBytes: maxLineBytes), label: name)
    }

    /// One poll's read buffer and decoder, shared by its files.
    private struct Reader {
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        let decoder = JSONDecoder()
    }

    private func read(_ file: inout File, path: String, with reader: inout Reader, into output: inout [Followed], status: inout Status) {
        var info = stat()
        if fstat(file.descriptor, &info) == 0, Int64(info.st_size) < file.offset {
            // Truncated (`> file`, copytruncate): start over, forget the partial line.
            file.offset = 0
            file.lines = LineAssembler(maxLineBytes: maxLineBytes)
        }
        var budget = readBudget
        while budget > 0 {
            let count = reader.buffer.withUnsafeMutableBytes { raw in
                pread(file.descriptor, raw.baseAddress, min(raw.count, budget), off_t(file.offset))
            }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            file.offset += Int64(count)
            budget -= count
            for line in file.lines.feed(reader.buffer[..<count]) {
                guard let entry = try? reader.decoder.decode(QueryLogEntry.self, from: line) else {
                    status.skippedLines += 1
                    continue
                }
                let claimed = entry.source.map { TerminalText.sanitized($0) }.flatMap { $0.isEmpty || $0 == file.label ? nil : $0 }
                output.append(Followed(entry: entry, source: claimed.map { "\(file.label)/\($0)" } ?? file.label, path: path))
            }
        }
        status.skippedLines += file.lines.takeSkipped()
    }
}

/// Splits a byte stream into lines, keeping at most `maxLineBytes` of a line that has not
/// ended yet: a longer line is skipped whole (counted in ``skipped``), and the next line
/// starts clean after its newline.
public struct LineAssembler: Sendable, Equatable {
    public let maxLineBytes: Int
    private var partial: [UInt8] = []
    /// Inside a line that grew too long: drop bytes up to the next newline.
    private var discarding = false
    public private(set) var skipped = 0

    public init(maxLineBytes: Int) { self.maxLineBytes = max(maxLineBytes, 1) }

    /// The complete lines in `bytes` (without their newline; empty lines left out).
    public mutating func feed(_ bytes: some Collection<UInt8>) -> [Data] {
        var lines: [Data] = []
        var rest = bytes[...]
        while !rest.isEmpty {
            guard let newline = rest.firstIndex(of: 0x0A) else {
                if !discarding {
                    if partial.count + rest.count > maxLineBytes {
                        discarding = true
                        partial.removeAll()
                    } else {
                        partial.append(contentsOf: rest)
                    }
                }
                break
            }
            let piece = rest[..<newline]
            if discarding {
                discarding = false
                skipped += 1
            } else if partial.count + piece.count > maxLineBytes {
                skipped += 1
                partial.removeAll()
            } else {
                partial.append(contentsOf: piece)
                if !partial.isEmpty { lines.append(Data(partial)) }
                partial.removeAll(keepingCapacity: true)
            }
            rest = rest[rest.index(after: newline)...]
        }
        return lines
    }

    /// Bytes held for the line not yet ended.
    public var pendingBytes: Int { partial.count }

    /// The skipped count since the last call.
    public mutating func takeSkipped() -> Int {
        defer { skipped = 0 }
        return skipped
    }
}
