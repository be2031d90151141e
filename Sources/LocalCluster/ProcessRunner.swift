import Foundation

/// Runs the PostgreSQL programs, as the `postgres` system user when we are root
/// (initdb, pg_ctl and postgres refuse to run as root).
struct ProcessRunner: Sendable {
    struct Output: Sendable {
        var status: Int32
        var text: String
    }

    /// The user the servers run as; nil means "the current user".
    let serverUser: String?
    /// Working directory for every command: a folder the server user can read.
    let workingDirectory: URL

    static var isRoot: Bool { geteuid() == 0 }

    static func forCurrentUser(workingDirectory: URL) throws -> ProcessRunner {
        guard isRoot else { return ProcessRunner(serverUser: nil, workingDirectory: workingDirectory) }
        guard getpwnam("postgres") != nil else {
            throw LocalClusterError(
                .directoryNotUsable,
                "running as root needs the 'postgres' system user to own the servers; "
                    + "`apt-get install postgresql` creates it, or run as an ordinary user")
        }
        guard runuserPath != nil else {
            throw LocalClusterError(.commandFailed, "running as root needs runuser (util-linux) to start servers as 'postgres'")
        }
        return ProcessRunner(serverUser: "postgres", workingDirectory: workingDirectory)
    }

    static var runuserPath: String? {
        ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Runs `program` with `arguments` as the server user; returns its exit status and
    /// combined output. Output goes through a file, not a pipe, and the child inherits no
    /// other descriptor: a server started by pg_ctl lives on long after pg_ctl exits.
    func run(_ program: String, _ arguments: [String]) async throws -> Output {
        var argv: [String]
        if let serverUser, let runuser = Self.runuserPath {
            argv = [runuser, "-u", serverUser, "--", program] + arguments
        } else {
            argv = [program] + arguments
        }
        var environment = ProcessInfo.processInfo.environment
        environment["LC_ALL"] = "C.UTF-8"
        environment.removeValue(forKey: "PGDATA")
        let outputPath = FileManager.default.temporaryDirectory
            .appendingPathComponent("switchyard-\(UUID().uuidString).out").path
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        let workingDirectory = self.workingDirectory.path
        let finalArgv = argv
        let finalEnvironment = environment
        let status = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int32, Error>) in
            let thread = Thread {
                do {
                    let pid = try Spawn.start(
                        finalArgv, environment: finalEnvironment, workingDirectory: workingDirectory, outputPath: outputPath)
                    continuation.resume(returning: Spawn.wait(pid))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
            thread.start()
        }
        let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        return Output(status: status, text: text)
    }

    /// Like ``run(_:_:)`` but throws, with the program's last output lines, on a non-zero exit.
    @discardableResult
    func check(_ program: String, _ arguments: [String], what: String) async throws -> Output {
        let output = try await run(program, arguments)
        guard output.status == 0 else {
            throw LocalClusterError(.commandFailed, "\(what) failed: \(Self.tail(output.text))")
        }
        return output
    }

    static func tail(_ text: String, lines: Int = 6) -> String {
        let kept = text.split(separator: "\n").suffix(lines).map { $0.trimmingCharacters(in: .whitespaces) }
        return kept.isEmpty ? "(no output)" : kept.joined(separator: " | ")
    }

    /// Gives `url` (and what is inside, when `recursive`) to the server user.
    func giveToServerUser(_ url: URL, recursive: Bool = false) async throws {
        guard let serverUser else { return }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/chown")
        process.arguments = (recursive ? ["-R"] : []) + ["\(serverUser):\(serverUser)", url.path]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw LocalClusterError(.directoryNotUsable, "cannot give \(url.path) to the \(serverUser) user (chown failed)")
        }
    }
}
