import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The query log's JSON Lines file: appended with `O_APPEND`, created 0600, rotated at a
/// size limit — safely when several processes share it.
///
/// Nothing on the statement path touches the file: ``append(_:)`` hands the line to a
/// bounded queue that one writer thread drains. A sink that stalls (a FIFO nobody reads, a
/// slow mount) fills the queue and further lines are dropped and counted (``dropped``), never
/// waited for; a sink that fails (a full disk, a closed pipe — SIGPIPE is blocked on the
/// writer thread, so a closed pipe is an error, not the end of the process) is reported
/// once (``problem`` and a warning) and lines are dropped until a write works again. A FIFO
/// with no reader yet is opened by the writer thread, so starting never blocks either.
///
/// Rotation with several writers: each writer measures the *file's* size (not its own
/// count), rotates holding an exclusive `flock` on it and only if the path still names the
/// file it holds; a writer that finds the path renamed under it reopens the new file.
public final class QueryLogFile: Sendable {
    public let path: String
    /// Rotate before the file would grow past this many bytes (0: never).
    public let maxBytes: Int
    /// Rotated files kept: `path.1` (newest) … `path.N`.
    public let keep: Int
    /// Bytes of lines waiting for the writer beyond which new lines are dropped.
    public let queueBytes: Int

    private let core: Core

    /// Opens (or creates, mode 0600) the file; throws when it cannot be opened at all.
    public init(path: String, maxBytes: Int = 64 << 20, keep: Int = 3, queueBytes: Int = 8 << 20) throws {
        self.path = path
        self.maxBytes = max(maxBytes, 0)
        self.keep = max(keep, 0)
        self.queueBytes = max(queueBytes, 1)
        let sink = try Sink(path: path, maxBytes: self.maxBytes, keep: self.keep)
        core = Core(sink: sink, queueBytes: self.queueBytes)
        let core = self.core
        let thread = Thread { core.run() }
        thread.name = "switchyard query log"
        thread.start()
    }

    deinit { core.close(waitingUpTo: .zero) }

    /// The first write problem since the last successful write, if any.
    public var problem: String? { core.locked { $0.problem } }

    /// Lines dropped because the writer was behind (the queue full) or the file closed.
    public var dropped: Int { core.locked { $0.dropped } }

    /// Queues `line` (a newline is added); returns false when it was dropped: the file is
    /// closed, or the queue is full. Never blocks on the file.
    @discardableResult
    public func append(_ line: Data) -> Bool {
        var data = line
        data.append(0x0A)
        return core.enqueue(data)
    }

    /// Waits until every line queued so far has been written or given up on, or `timeout`
    /// passed; returns whether the queue drained.
    @discardableResult
    public func flush(timeout: Duration = .seconds(5)) -> Bool { core.flush(timeout: timeout) }

    /// Writes what is queued (waiting up to a second for a stalled sink), then closes the
    /// file; later appends are dropped.
    public func close() { core.close(waitingUpTo: .seconds(1)) }
}

extension QueryLogFile {
    struct QueueState {
        var pending: [Data] = []
        var pendingBytes = 0
        /// Lines queued / finished (written or failed) in total: `flush` waits for equality.
        var queued = 0
        var finished = 0
        var dropped = 0
        var problem: String?
        var closed = false
        var writerDone = false
    }

    /// The queue, shared by the statement path and the writer thread.
    final class Core: @unchecked Sendable {
        private let condition = NSCondition()
        private var state = QueueState()
        private let sink: Sink
        private let queueBytes: Int

        init(sink: Sink, queueBytes: Int) {
            self.sink = sink
            self.queueBytes = queueBytes
        }

        func locked<T>(_ body: (inout QueueState) -> T) -> T {
            condition.lock()
            defer { condition.unlock() }
            return body(&state)
        }

        func enqueue(_ data: Data) -> Bool {
            condition.lock()
            defer { condition.unlock() }
            if state.closed {
                state.dropped += 1
                return false
            }
            if state.pendingBytes + data.count > queueBytes, !state.pending.isEmpty {
                state.dropped += 1
                report("the query log \(sink.path) is not keeping up; entries are dropped until it drains")
                return false
            }
            state.pending.append(data)
            state.pendingBytes += data.count
            state.queued += 1
            condition.broadcast()
            return true
        }

        func flush(timeout: Duration) -> Bool {
            let (seconds, attoseconds) = timeout.components
            let deadline = Date().addingTimeInterval(Double(seconds) + Double(attoseconds) / 1e18)
            condition.lock()
            defer { condition.unlock() }
            let target = state.queued
            while state.finished < target, !state.writerDone {
                if !condition.wait(until: deadline) { return state.finished >= target }
            }
            return state.finished >= target
        }

        func close(waitingUpTo timeout: Duration) {
            condition.lock()
            state.closed = true
            condition.broadcast()
            condition.unlock()
            if timeout > .zero { _ = flush(timeout: timeout) }
        }

        /// The writer thread: drains the queue until closed and empty.
        func run() {
            // A write to a pipe whose reader left fails with EPIPE instead of killing us.
            var blocked = sigset_t()
            sigemptyset(&blocked)
            sigaddset(&blocked, SIGPIPE)
            pthread_sigmask(SIG_BLOCK, &blocked, nil)
            while true {
                condition.lock()
                while state.pending.isEmpty, !state.closed { condition.wait() }
                let batch = state.pending
                state.pending.removeAll(keepingCapacity: true)
                state.pendingBytes = 0
                let closing = state.closed
                condition.unlock()
                if !batch.isEmpty {
                    let problem = sink.write(batch)
                    condition.lock()
                    state.finished += batch.count
                    if let problem { report(problem) } else { state.problem = nil }
                    condition.broadcast()
                    condition.unlock()
                }
                if closing, locked({ $0.pending.isEmpty }) { break }
            }
            sink.close()
            condition.lock()
            state.writerDone = true
            condition.broadcast()
            condition.unlock()
        }

        /// Called with the lock held.
        private func report(_ message: String) {
            guard state.problem == nil else { return }
            state.problem = message
            QueryLogFile.logger.warning("\(message)")
        }
    }

    static let logger = Logger(label: "switchyard.query-log")

    /// The file itself, touched only by the writer thread (and `init`).
    final class Sink: @unchecked Sendable {
        let path: String
        let maxBytes: Int
        let keep: Int
        /// -1 until opened (a FIFO with no reader is opened by the writer thread).
        private var descriptor: Int32 = -1
        private var rotates = false
        /// Largest write: a batch is cut into chunks so the size check stays close.
        private static let chunkBytes = 64 << 10

        init(path: String, maxBytes: Int, keep: Int) throws {
            self.path = path
            self.maxBytes = maxBytes
            self.keep = keep
            let descriptor = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0o600)
            if descriptor >= 0 {
                // Writes may block — on the writer thread only.
                _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) & ~O_NONBLOCK)
                adopt(descriptor)
            } else if errno != ENXIO {  // ENXIO: a FIFO without a reader yet
                throw ConfigurationError(file: path, message: "cannot open the query log file: \(String(cString: strerror(errno)))")
            }
        }

        private func adopt(_ descriptor: Int32) {
            self.descriptor = descriptor
            var info = stat()
            rotates = fstat(descriptor, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG
        }

        private func reopen() -> String? {
            let fresh = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
            guard fresh >= 0 else { return "cannot open the query log \(path): \(String(cString: strerror(errno)))" }
            if descriptor >= 0 { _ = Glibc.close(descriptor) }
            adopt(fresh)
            return nil
        }

        func close() {
            if descriptor >= 0 { _ = Glibc.close(descriptor) }
            descriptor = -1
        }

        /// Writes the lines; returns the problem if some could not be written.
        func write(_ lines: [Data]) -> String? {
            if descriptor < 0, let problem = reopen() { return problem }
            var chunk = Data()
            var size = currentSize()
            for line in lines {
                if rotates, maxBytes > 0, size + chunk.count > 0, size + chunk.count + line.count > maxBytes {
                    if let problem = writeAll(chunk) { return problem }
                    chunk.removeAll(keepingCapacity: true)
                    if let problem = rotate(needing: line.count) { return problem }
                    size = currentSize()
                }
                chunk.append(line)
                if chunk.count >= Self.chunkBytes {
                    if let problem = writeAll(chunk) { return problem }
                    chunk.removeAll(keepingCapacity: true)
                    size = currentSize()
                }
            }
            return writeAll(chunk)
        }

        private func writeAll(_ data: Data) -> String? {
            data.withUnsafeBytes { raw -> String? in
                var offset = 0
                while offset < raw.count {
                    let written = Glibc.write(descriptor, raw.baseAddress! + offset, raw.count - offset)
                    if written < 0 {
                        if errno == EINTR { continue }
                        return "cannot write the query log \(path): \(String(cString: strerror(errno))); entries are dropped until it works again"
                    }
                    offset += written
                }
                return nil
            }
        }

        /// Whether the path still names the file we hold.
        private func pathIsOurs() -> Bool {
            var held = stat()
            var named = stat()
            guard fstat(descriptor, &held) == 0, stat(path, &named) == 0 else { return false }
            return held.st_ino == named.st_ino && held.st_dev == named.st_dev
        }

        /// The file's size now; follows the path to a new file another writer rotated in.
        private func currentSize() -> Int {
            guard rotates else { return 0 }
            if !pathIsOurs() { _ = reopen() }
            var info = stat()
            return fstat(descriptor, &info) == 0 ? Int(info.st_size) : 0
        }

        /// `path` → `path.1` → … → `path.keep`; a new, empty `path` — unless another writer
        /// did it first.
        private func rotate(needing bytes: Int) -> String? {
            guard flock(descriptor, LOCK_EX) == 0 else { return nil }
            defer { _ = flock(descriptor, LOCK_UN) }
            var info = stat()
            guard pathIsOurs(), fstat(descriptor, &info) == 0, Int(info.st_size) + bytes > maxBytes else {
                return pathIsOurs() ? nil : reopen()
            }
            if keep == 0 {
                _ = ftruncate(descriptor, 0)
                return nil
            }
            unlink("\(path).\(keep)")
            if keep > 1 {
                for index in stride(from: keep - 1, through: 1, by: -1) { rename("\(path).\(index)", "\(path).\(index + 1)") }
            }
            guard rename(path, "\(path).1") == 0 else {
                return "cannot rotate the query log \(path): \(String(cString: strerror(errno)))"
            }
            let old = descriptor
            let fresh = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
            guard fresh >= 0 else { return "cannot open the query log \(path): \(String(cString: strerror(errno)))" }
            _ = flock(old, LOCK_UN)
            _ = Glibc.close(old)
            adopt(fresh)
            return nil
        }
    }
}
