import Foundation
import LocalCluster
import Testing

/// The one helper that runs other programs.
@Suite struct ChildProcessTests {
    @Test func statusOutputDirectoryAndEnvironment() async throws {
        let ok = try await ChildProcess.run(["/bin/sh", "-c", "pwd; echo \"$GREETING\"; echo oops >&2"],
                                            workingDirectory: "/tmp", environment: ["GREETING": "hello"])
        #expect(ok.status == 0)
        #expect(ok.output == "/tmp\nhello\noops\n")
        let failed = try await ChildProcess.run(["/bin/sh", "-c", "exit 7"])
        #expect(failed.status == 7)
        let killed = try await ChildProcess.run(["/bin/sh", "-c", "kill -TERM $$"])
        #expect(killed.status == 128 + SIGTERM)
        await #expect(throws: LocalClusterError.self) { try await ChildProcess.run(["/nonexistent/program"]) }
    }

    @Test func aDaemonLeftBehindDoesNotHoldTheWait() async throws {
        let clock = ContinuousClock()
        let started = clock.now
        let result = try await ChildProcess.run(["/bin/sh", "-c", "sleep 30 & echo started"])
        #expect(result.output == "started\n")
        // Well under the 30 s the background child lives, with room for a loaded machine.
        #expect(clock.now - started < .seconds(25), "the wait followed the background child")
        _ = try await ChildProcess.run(["/usr/bin/pkill", "-f", "^sleep 30$"])
    }

    @Test func theChildGetsACleanSignalMaskAndNoStrayDescriptors() async throws {
        // A descriptor of ours that is not close-on-exec must not reach the child.
        let fd = open("/dev/null", O_RDONLY)
        defer { close(fd) }
        let result = try await ChildProcess.run(["/bin/sh", "-c", "ls /proc/self/fd; grep SigBlk /proc/self/status"])
        let descriptors = result.output.split(separator: "\n").compactMap { Int($0) }
        #expect(!descriptors.contains(Int(fd)), "descriptor \(fd) leaked into the child: \(descriptors)")
        #expect(result.output.contains("SigBlk:\t0000000000000000"))
    }

    @Test(.enabled(if: geteuid() == 0 && getpwnam("postgres") != nil, "switching user needs root and a postgres user"))
    func runsAsAnotherUser() async throws {
        let result = try await ChildProcess.run(["/usr/bin/id", "-un"], workingDirectory: "/", user: "postgres")
        #expect(result.output == "postgres\n")
        await #expect(throws: LocalClusterError.self) { try await ChildProcess.run(["/usr/bin/id"], user: "no-such-user-here") }
    }
}
