import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// posix_spawn + waitpid, with stdin from /dev/null and stdout and stderr to a file.
/// The working directory is set with `env -C`, since glibc's chdir file action is not
/// visible to Swift.
enum Spawn {
    static func start(_ argv: [String], environment: [String: String], workingDirectory: String, outputPath: String) throws
        -> pid_t
    {
        closeOnExec()
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        let argv = ["/usr/bin/env", "-C", workingDirectory] + argv
        let cArguments = argv.map { strdup($0) } + [nil]
        let cEnvironment = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            cArguments.forEach { free($0) }
            cEnvironment.forEach { free($0) }
        }
        // The child starts with no blocked signals and default handlers: the calling
        // thread (a Swift or Dispatch worker) may block most of them, and a server that
        // inherits that mask never hears SIGCHLD or SIGTERM.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for number in [SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2] { sigaddset(&defaults, number) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let result = posix_spawn(&pid, argv[0], &actions, &attributes, cArguments, cEnvironment)
        guard result == 0 else {
            throw LocalClusterError(.commandFailed, "cannot run \(argv[0]): \(String(cString: strerror(result)))")
        }
        return pid
    }

    /// Marks every descriptor above stderr close-on-exec, so no server started through us
    /// inherits one: a parent waiting for EOF on a pipe it gave us must not wait for
    /// the lifetime of a postmaster.
    static func closeOnExec() {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return }
        for entry in entries {
            guard let fd = Int32(entry), fd > 2 else { continue }
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0 && flags & FD_CLOEXEC == 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
    }

    /// Blocks until `pid` exits; its exit status, or 128 + signal number.
    static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            if errno != EINTR { return -1 }
        }
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }
}

/// Runs a program to completion without Foundation's `Process`, whose wait never ends
/// when the program leaves a daemon behind (pg_ctl, tmux): this one waits for the
/// program itself only.
public enum ChildProcess {
    public struct Result: Sendable {
        public var status: Int32
        public var output: String
    }

    /// Runs `argv` (a full path first) in `workingDirectory`, with stdout and stderr
    /// captured together.
    public static func run(_ argv: [String], workingDirectory: String = FileManager.default.currentDirectoryPath,
                           environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Result {
        let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-\(UUID().uuidString).out").path
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        let pid = try Spawn.start(argv, environment: environment, workingDirectory: workingDirectory, outputPath: outputPath)
        let status = Spawn.wait(pid)
        return Result(status: status, output: (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "")
    }
}
