import ArgumentParser
import Foundation
import Logging

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// `--log-level` and `--log-file`: where the library's operational messages go (a probe
/// backing off, a pool replacing a connection, a read retried, a token dropped).
///
/// Default: warnings and errors on standard error. The console never logs onto its own
/// screen: it logs only to `--log-file`, and without one not at all.
struct LoggingOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Least severe messages logged: trace, debug, info, notice, warning, error, critical.", valueName: "LEVEL"))
    var logLevel: Logger.Level = .warning

    @Option(help: ArgumentHelp("Append log messages to this file instead of standard error.", valueName: "FILE"))
    var logFile: String?

    /// Sets up logging for this process; `fullScreen` keeps standard error untouched.
    func bootstrap(fullScreen: Bool = false) throws {
        let level = logLevel
        if let logFile {
            let handle = try FileLogHandler.open(logFile)
            LoggingSystem.bootstrap { label in
                var handler = FileLogHandler(label: label, file: handle)
                handler.logLevel = level
                return handler
            }
        } else if fullScreen {
            LoggingSystem.bootstrap { _ in SwiftLogNoOpLogHandler() }
        } else {
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        }
    }
}

/// One line per message, appended to a file shared by every logger of the process.
struct FileLogHandler: LogHandler {
    final class File: @unchecked Sendable {
        let descriptor: Int32
        let lock = NSLock()
        init(descriptor: Int32) { self.descriptor = descriptor }
    }

    let label: String
    let file: File
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    init(label: String, file: File) {
        self.label = label
        self.file = file
    }

    static func open(_ path: String) throws -> File {
        let descriptor = Foundation.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw UsageError("cannot open the log file \(path): \(String(cString: strerror(errno)))") }
        return File(descriptor: descriptor)
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { _, new in new }
        let details = all.isEmpty ? "" : " " + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let line = "\(ISO8601DateFormatter().string(from: Date())) \(event.level) \(label): \(event.message)\(details)\n"
        file.lock.withLock {
            _ = line.utf8CString.withUnsafeBufferPointer { buffer in write(file.descriptor, buffer.baseAddress, buffer.count - 1) }
        }
    }
}
