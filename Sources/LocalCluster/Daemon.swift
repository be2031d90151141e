import Foundation

/// A long-running program (etcd, Patroni) started in a session of its own, so it outlives
/// the command that started it, with its output in a log file and its pid in a file.
enum Daemon {
    /// Starts `argv` detached (new session, standard input from /dev/null, output
    /// appended to `log`) and returns its pid. As root with `user`, it runs as that user.
    static func start(
        _ argv: [String], log: URL, pidFile: URL, user: String?, environment: [String: String], workingDirectory: URL
    ) async throws -> pid_t {
        var command = argv
        if let user {
            command = [ChildProcess.setpriv, "--reuid=\(user)", "--regid=\(user)", "--init-groups", "--"] + command
        }
        // The shell exits at once; setsid (not a group leader here) execs the program, so
        // the pid printed is the program's.
        let script = "setsid \(command.map(shellQuoted).joined(separator: " ")) </dev/null >>\(shellQuoted(log.path)) 2>&1 & echo $!"
        let result = try await ChildProcess.run(
            ["/bin/sh", "-c", script], workingDirectory: workingDirectory.path, environment: environment)
        guard result.status == 0, let pid = pid_t(result.output.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw LocalClusterError(.commandFailed, "cannot start \(argv[0]): \(ProcessRunner.tail(result.output))")
        }
        try Data("\(pid)\n".utf8).write(to: pidFile)
        return pid
    }

    /// The pid in `pidFile` if that process is alive and its command line mentions
    /// `program` (a reused pid is not ours).
    static func running(_ pidFile: URL, program: String) -> pid_t? {
        guard let text = try? String(contentsOf: pidFile, encoding: .utf8),
            let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0
        else { return nil }
        return isAlive(pid, program: program) ? pid : nil
    }

    /// Alive and not a zombie (a reaper-less container leaves those behind).
    static func isAlive(_ pid: pid_t, program: String? = nil) -> Bool {
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        {
            let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
            if state == "Z" || state == "X" { return false }
        }
        // While a process execs (setsid → setpriv → the program), its command line can
        // read empty for an instant: that says nothing about whose process it is.
        if let program, let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), !cmdline.isEmpty {
            return String(decoding: cmdline.map { $0 == 0 ? 32 : $0 }, as: UTF8.self).contains(program)
        }
        return true
    }

    /// Sends `signal` and waits up to `timeout` for the process to end; true when it did.
    @discardableResult
    static func stop(_ pid: pid_t, signal: Int32 = SIGTERM, timeout: Duration, program: String? = nil) async -> Bool {
        // Only while it is still the program we mean: pids are reused.
        guard isAlive(pid, program: program) else { return true }
        kill(pid, signal)
        let deadline = ContinuousClock.now + timeout
        while isAlive(pid, program: program), ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
        return !isAlive(pid, program: program)
    }

    static func shellQuoted(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// The first of `candidates` that is an executable file, else a search of PATH for `name`.
    static func locate(_ name: String, candidates: [String] = []) -> String? {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map { "\($0)/\(name)" }
        return (candidates + path + ["/usr/bin/\(name)", "/usr/local/bin/\(name)"]).first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}
