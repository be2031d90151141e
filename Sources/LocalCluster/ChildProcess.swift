import Foundation
import Subprocess

#if canImport(System)
import System
#else
import SystemPackage
#endif

/// The one way Switchyard runs another program: swift-subprocess, which starts the child
/// with posix_spawn, a clean signal mask and default handlers, and closes every
/// descriptor it was not given. The wait is asynchronous and for the program itself only:
/// a daemon it leaves behind (pg_ctl's postmaster, a tmux server) neither blocks the wait
/// nor keeps a pipe of ours open, since output goes to a file.
public enum ChildProcess {
    static let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/usr/bin/setpriv"

    /// Runs `argv` on this terminal (standard input, output and error shared with ours)
    /// and returns its exit status: for interactive programs such as a text editor.
    public static func runAttached(_ argv: [String], environment: [String: String]? = nil) async throws -> Int32 {
        guard let program = argv.first else { throw LocalClusterError(.commandFailed, "no program to run") }
        let environmentValue: Subprocess.Environment = environment.map { values in
            .custom(Dictionary(uniqueKeysWithValues: values.map { (Subprocess.Environment.Key(stringLiteral: $0.key), $0.value) }))
        } ?? .inherit
        do {
            let status = try await Subprocess.run(
                .path(FilePath(program)), arguments: Arguments(Array(argv.dropFirst())), environment: environmentValue,
                input: .fileDescriptor(.standardInput, closeAfterSpawningProcess: false),
                output: .currentStandardOutput, error: .currentStandardError).terminationStatus
            switch status {
            case .exited(let code): return Int32(code)
            case .signaled(let signal): return 128 + Int32(signal)
            }
        } catch {
            throw LocalClusterError(.commandFailed, "cannot run \(program): \(error)")
        }
    }

    public struct Result: Sendable {
        /// The exit status, or 128 + the signal number that ended the program.
        public var status: Int32
        /// Standard output and standard error, interleaved as written.
        public var output: String
    }

    /// Runs `argv` (a full path first) to completion.
    ///
    /// - Parameters:
    ///   - workingDirectory: the child's current directory (default: ours).
    ///   - environment: the child's whole environment (default: ours).
    ///   - user: a system user to run as (needs root), with its groups, through `setpriv`.
    public static func run(
        _ argv: [String], workingDirectory: String? = nil, environment: [String: String]? = nil, user: String? = nil
    ) async throws -> Result {
        guard let program = argv.first else { throw LocalClusterError(.commandFailed, "no program to run") }
        var argv = argv
        if let user {
            // setpriv execs the program as `user`. swift-subprocess can switch user itself,
            // but only through fork(), whose child can hang on a lock another thread held
            // at fork time; posix_spawn of setpriv cannot.
            guard getpwnam(user) != nil else {
                throw LocalClusterError(.commandFailed, "cannot run \(program) as \(user): no such user")
            }
            argv = [Self.setpriv, "--reuid=\(user)", "--regid=\(user)", "--init-groups", "--"] + argv
        }
        let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-\(UUID().uuidString).out").path
        defer { unlink(outputPath) }
        let descriptor = open(outputPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw LocalClusterError(.commandFailed, "cannot run \(program): cannot create \(outputPath): \(String(cString: strerror(errno)))")
        }
        let environmentValue: Subprocess.Environment = environment.map { values in
            .custom(Dictionary(uniqueKeysWithValues: values.map { (Subprocess.Environment.Key(stringLiteral: $0.key), $0.value) }))
        } ?? .inherit
        let terminationStatus: TerminationStatus
        do {
            terminationStatus = try await Subprocess.run(
                .path(FilePath(argv[0])), arguments: Arguments(Array(argv.dropFirst())), environment: environmentValue,
                workingDirectory: workingDirectory.map { FilePath($0) },
                input: .none, output: .fileDescriptor(FileDescriptor(rawValue: descriptor), closeAfterSpawningProcess: true),
                error: .combinedWithOutput).terminationStatus
        } catch {
            throw LocalClusterError(.commandFailed, "cannot run \(program): \(error)")
        }
        let status: Int32
        switch terminationStatus {
        case .exited(let code): status = Int32(code)
        case .signaled(let signal): status = 128 + Int32(signal)
        }
        let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        return Result(status: status, output: output)
    }
}
