import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The query log's JSON Lines file: appended with `O_APPEND` (several processes may share
/// it), created 0600, rotated at a size limit. A write that fails — a full disk, a file
/// made read-only, a closed sink — never crashes or blocks the program: the first failure
/// is reported once (``problem``, and a warning log), later lines are dropped until a
/// write succeeds again.
public final class QueryLogFile: Sendable {
    public let path: String
    /// Rotate before the file would grow past this many bytes (0: never).
    public let maxBytes: Int
    /// Rotated files kept: `path.1` (newest) … `path.N`.
    public let keep: Int

    private struct State {
        var descriptor: Int32
        var size: Int
        var rotates: Bool
        var problem: String?
        var closed = false
    }

    private let state: Mutex<State>
    private static let logger = Logger(label: "switchyard.query-log")

    /// Opens (or creates, mode 0600) the file; throws when it cannot be opened at all.
    public init(path: String, maxBytes: Int = 64 << 20, keep: Int = 3) throws {
        self.path = path
        self.maxBytes = max(maxBytes, 0)
        self.keep = max(keep, 0)
        let descriptor = try Self.open(path)
        var info = stat()
        let regular = fstat(descriptor, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG
        state = Mutex(State(descriptor: descriptor, size: regular ? Int(info.st_size) : 0, rotates: regular))
    }

    deinit { close() }

    /// The first write problem since the last successful write, if any.
    public var problem: String? { state.withLock { $0.problem } }

    /// Appends `line` (a newline is added); returns false when it was not written.
    @discardableResult
    public func append(_ line: Data) -> Bool {
        var data = line
        data.append(0x0A)
        return state.withLock { state -> Bool in
            guard !state.closed else { return false }
            if state.rotates, maxBytes > 0, state.size > 0, state.size + data.count > maxBytes {
                rotate(&state)
            }
            let failure = data.withUnsafeBytes { raw -> Int32? in
                var offset = 0
                while offset < raw.count {
                    let written = Glibc.write(state.descriptor, raw.baseAddress! + offset, raw.count - offset)
                    if written < 0 {
                        if errno == EINTR { continue }
                        return errno
                    }
                    offset += written
                }
                return nil
            }
            if let failure {
                report("cannot write the query log \(path): \(String(cString: strerror(failure))); entries are dropped until it works again",
                       &state)
                return false
            }
            state.size += data.count
            state.problem = nil
            return true
        }
    }

    /// Closes the file; later appends are dropped.
    public func close() {
        state.withLock { state in
            guard !state.closed else { return }
            state.closed = true
            _ = Glibc.close(state.descriptor)
        }
    }

    private static func open(_ path: String) throws -> Int32 {
        let descriptor = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw ConfigurationError(file: path, message: "cannot open the query log file: \(String(cString: strerror(errno)))")
        }
        return descriptor
    }

    /// `path` → `path.1` → … → `path.keep`; a new, empty `path`.
    private func rotate(_ state: inout State) {
        if keep == 0 {
            if ftruncate(state.descriptor, 0) == 0 { state.size = 0 }
            return
        }
        unlink("\(path).\(keep)")
        if keep > 1 {
            for index in stride(from: keep - 1, through: 1, by: -1) { rename("\(path).\(index)", "\(path).\(index + 1)") }
        }
        guard rename(path, "\(path).1") == 0, let fresh = try? Self.open(path) else {
            report("cannot rotate the query log \(path): \(String(cString: strerror(errno)))", &state)
            return
        }
        _ = Glibc.close(state.descriptor)
        state.descriptor = fresh
        state.size = 0
    }

    private func report(_ message: String, _ state: inout State) {
        guard state.problem == nil else { return }
        state.problem = message
        Self.logger.warning("\(message)")
    }
}
