import Foundation
import Synchronization

/// Writes an export to its file as the rows stream in: a 256 KiB buffer, the file created
/// 0600 and never over an existing one, removed again when the export does not finish.
final class ExportWriter: Sendable {
    let path: String
    private struct State {
        var descriptor: Int32
        var buffer: [UInt8] = []
        var rows = 0
        var bytes = 0
        var lastReport = ContinuousClock.now
        var problem: String?
    }
    private let state: Mutex<State>
    private let report: @Sendable (_ rows: Int, _ bytes: Int) -> Void

    init(path: String, report: @escaping @Sendable (_ rows: Int, _ bytes: Int) -> Void) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            let reason = errno == EEXIST ? "it already exists (choose another name)" : String(cString: strerror(errno))
            throw DataService.WriteRefused("cannot create \(path): \(reason); nothing exported")
        }
        self.path = path
        self.report = report
        var initial = State(descriptor: descriptor)
        initial.buffer.reserveCapacity(Self.bufferSize)
        state = Mutex(initial)
    }

    static let bufferSize = 256 * 1024

    /// One row (COPY sends one per message).
    func write(_ bytes: UnsafeRawBufferPointer) throws {
        let progress: (Int, Int)? = try state.withLock { state in
            state.buffer.append(contentsOf: bytes)
            state.rows += 1
            state.bytes += bytes.count
            if state.buffer.count >= Self.bufferSize { try Self.drain(&state) }
            let now = ContinuousClock.now
            guard now - state.lastReport >= .milliseconds(100) else { return nil }
            state.lastReport = now
            return (state.rows, state.bytes)
        }
        if let progress { report(progress.0, progress.1) }
    }

    private static func drain(_ state: inout State) throws {
        var offset = 0
        let total = state.buffer.count
        let descriptor = state.descriptor
        try state.buffer.withUnsafeBytes { raw in
            while offset < total {
                let written = Foundation.write(descriptor, raw.baseAddress! + offset, total - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw DataService.WriteRefused("writing the export failed: \(String(cString: strerror(errno)))")
                }
                offset += written
            }
        }
        state.buffer.removeAll(keepingCapacity: true)
    }

    /// Flushes and closes; returns rows and bytes written.
    func finish() throws -> (rows: Int, bytes: Int) {
        try state.withLock { state in
            try Self.drain(&state)
            guard fsync(state.descriptor) == 0 || errno == EINVAL else {
                throw DataService.WriteRefused("writing the export failed: \(String(cString: strerror(errno)))")
            }
            close(state.descriptor)
            state.descriptor = -1
            return (state.rows, state.bytes)
        }
    }

    /// Closes and removes the partial file.
    func discard() {
        state.withLock { state in
            if state.descriptor >= 0 { close(state.descriptor) }
            state.descriptor = -1
        }
        unlink(path)
    }
}
