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
        return ProcessRunner(serverUser: "postgres", workingDirectory: workingDirectory)
    }

    /// Runs `program` with `arguments` as the server user; returns its exit status and
    /// combined output. A server started by pg_ctl lives on long after pg_ctl exits and
    /// holds nothing of ours.
    func run(_ program: String, _ arguments: [String], environment extra: [String: String] = [:]) async throws -> Output {
        var environment = ProcessInfo.processInfo.environment.merging(extra) { _, new in new }
        environment["LC_ALL"] = "C.UTF-8"
        environment.removeValue(forKey: "PGDATA")
        if let serverUser, let home = getpwnam(serverUser).map({ String(cString: $0.pointee.pw_dir) }) {
            environment["HOME"] = home
            environment["USER"] = serverUser
            environment["LOGNAME"] = serverUser
        }
        let result = try await ChildProcess.run(
            [program] + arguments, workingDirectory: workingDirectory.path, environment: environment, user: serverUser)
        return Output(status: result.status, text: result.output)
    }

    /// Like ``run(_:_:)`` but throws, with the program's last output lines, on a non-zero exit.
    @discardableResult
    func check(_ program: String, _ arguments: [String], environment: [String: String] = [:], what: String) async throws -> Output {
        let output = try await run(program, arguments, environment: environment)
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
    func giveToServerUser(_ url: URL, recursive: Bool = false) throws {
        guard let serverUser, let entry = getpwnam(serverUser) else { return }
        let (uid, gid) = (entry.pointee.pw_uid, entry.pointee.pw_gid)
        var paths = [url.path]
        if recursive, let inside = FileManager.default.enumerator(atPath: url.path) {
            while let relative = inside.nextObject() as? String { paths.append(url.appendingPathComponent(relative).path) }
        }
        for path in paths where lchown(path, uid, gid) != 0 {
            throw LocalClusterError(
                .directoryNotUsable, "cannot give \(path) to the \(serverUser) user: \(String(cString: strerror(errno)))")
        }
    }
}
