import Foundation
import LocalCluster
import PostgresClient
import SwitchyardTestSupport
import Testing

/// The `switchyard` executable, run as a user would, on a cluster of its own.
@Suite struct CommandLineTests {
    struct Run {
        var status: Int32
        var output: String
    }

    static var executable: URL {
        get throws {
            let testBinary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            var folder = testBinary.deletingLastPathComponent()
            for _ in 0..<4 {
                let candidate = folder.appendingPathComponent("switchyard")
                if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
                folder.deleteLastPathComponent()
            }
            throw LocalClusterError(.binariesNotFound, "switchyard executable not found next to \(testBinary.path)")
        }
    }

    static func run(_ arguments: [String]) async throws -> Run {
        let result = try await ChildProcess.run([try executable.path] + arguments)
        return Run(status: result.status, output: result.output)
    }

    /// `cluster up` with one replica in a new folder under the tests' root, on free ports.
    static func clusterUp(_ prefix: String) async throws -> (directory: URL, port: Int, run: Run) {
        let directory = URL(fileURLWithPath: "/tmp/switchyard-tests/\(prefix)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        let port = try #require(PortCheck.freeRange(count: 2))
        let up = try await run(["cluster", "up", "--dir", directory.path, "--port", String(port), "--replicas", "1"])
        #expect(up.status == 0, "\(up.output)")
        return (directory, port, up)
    }

    @Test func versionAndHelp() async throws {
        let version = try await Self.run(["--version"])
        #expect(version.status == 0)
        #expect(version.output.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ".").count == 3)
        for command in [["--help"], ["cluster", "--help"], ["cluster", "up", "--help"], ["cluster", "delay", "--help"]] {
            let help = try await Self.run(command)
            #expect(help.status == 0)
            #expect(help.output.contains("USAGE"))
        }
    }

    @Test func valuesThatWouldTrapAreRefusedBeforeAnythingRuns() async throws {
        let cases: [([String], String)] = [
            (["bench", "consistency", "--seconds", "inf"], "--seconds must be a number above 0 and at most 86400, not inf"),
            (["bench", "consistency", "--clients", "0"], "--clients must be numbers between 1 and 256"),
            (["bench", "consistency", "--clients", "4,x"], "--clients must be numbers between 1 and 256"),
            (["bench", "routing", "--seconds", "nan"], "--seconds must be a number above 0"),
            (["check", "--warn-lag-ms=-5"], "--warn-lag-ms must be between 0 and 86400000 milliseconds, not -5"),
            (["cluster", "delay", "pg3", "--", "-1"], "the delay must be between 0 and 86400000 milliseconds"),
            (["bench", "render", "--frames", "0"], "--frames must be between 1 and 10000000"),
        ]
        for (arguments, expected) in cases {
            let run = try await Self.run(arguments)
            #expect(run.status != 0, "\(arguments) succeeded")
            #expect(run.output.contains(expected), "\(arguments): \(run.output)")
            #expect(!run.output.contains("Fatal error"), "\(arguments) trapped")
        }
    }

    @Test func clusterUpStatusDelayDown() async throws {
        let (directory, port, up) = try await Self.clusterUp("cli")
        defer {
            TestCluster.killServers(in: directory)
            try? FileManager.default.removeItem(at: directory)
        }
        #expect(up.output.contains("cluster ready"))
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("switchyard.toml").path))

        let replica = try await PostgresConnection.connect(
            "host=127.0.0.1 port=\(port + 1) dbname=app user=postgres passfile=\(directory.path)/pgpass")
        #expect(try await replica.serverInfo().inRecovery)
        await replica.close()
        // A password is required, kept in a private passfile that the config names.
        let anonymous = await #expect(throws: PostgresError.self) {
            try await PostgresConnection.connect("host=127.0.0.1 port=\(port) dbname=app user=postgres connect_timeout=3")
        }
        #expect(anonymous?.message.contains("password") == true)
        let mode = try FileManager.default.attributesOfItem(atPath: directory.appendingPathComponent("pgpass").path)[.posixPermissions] as? Int
        #expect(mode.map { $0 & 0o777 } == 0o600)
        #expect(try String(contentsOf: directory.appendingPathComponent("switchyard.toml"), encoding: .utf8).contains("passfile="))

        let status = try await Self.run(["cluster", "status", "--dir", directory.path])
        #expect(status.status == 0)
        let lines = status.output.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true) }
        #expect(lines.contains { $0.first == "pg1" && $0.contains("primary") && $0.contains("yes") })
        #expect(lines.contains { $0.first == "pg2" && $0.contains("replica") && $0.contains("streaming") })

        let delayPrimary = try await Self.run(["cluster", "delay", "pg1", "100", "--dir", directory.path])
        #expect(delayPrimary.status == 1)
        #expect(delayPrimary.output.contains("pg1 is a primary"))
        let unknown = try await Self.run(["cluster", "stop", "pg7", "--dir", directory.path])
        #expect(unknown.status == 1)
        #expect(unknown.output.contains("no node named \"pg7\""))
        let busy = try await Self.run(["cluster", "up", "--dir", directory.path + "-other", "--port", String(port + 1)])
        #expect(busy.status == 1)
        #expect(busy.output.contains("port \(port + 1)"))
        #expect(busy.output.contains("already in use"))

        let down = try await Self.run(["cluster", "down", "--dir", directory.path])
        #expect(down.status == 0)
        #expect(PortCheck.isFree(port) && PortCheck.isFree(port + 1), "servers still listening after down")
        let after = try await Self.run(["cluster", "status", "--dir", directory.path])
        #expect(after.output.split(separator: "\n").dropFirst().allSatisfy { $0.contains(" no ") })

        // `up` on the existing folder starts the same nodes again.
        let again = try await Self.run(["cluster", "up", "--dir", directory.path])
        #expect(again.status == 0, "\(again.output)")
        #expect(!PortCheck.isFree(port))
    }

    @Test func aClusterMadeWithTrustGetsAPasswordOnUp() async throws {
        let (directory, port, up) = try await Self.clusterUp("trust")
        defer {
            TestCluster.killServers(in: directory)
            try? FileManager.default.removeItem(at: directory)
        }
        // Make it look like a folder from before passwords: trust, no passfile.
        let passfile = directory.appendingPathComponent("pgpass").path
        for node in ["pg1", "pg2"] {
            let hba = directory.appendingPathComponent("\(node)/data/pg_hba.conf")
            let text = try String(contentsOf: hba, encoding: .utf8)
            try text.replacingOccurrences(of: "scram-sha-256", with: "trust").write(to: hba, atomically: false, encoding: .utf8)
            let connection = try await PostgresConnection.connect(
                "host=127.0.0.1 port=\(node == "pg1" ? port : port + 1) dbname=app user=postgres passfile=\(passfile)")
            _ = try await connection.query("select pg_reload_conf()")
            await connection.close()
        }
        try FileManager.default.removeItem(atPath: passfile)
        // Every statement logged: the password must still not reach the server's log.
        let open = try await PostgresConnection.connect("host=127.0.0.1 port=\(port) dbname=app user=postgres")
        _ = try await open.query("alter system set log_statement = 'all'")
        _ = try await open.query("select pg_reload_conf()")
        await open.close()

        let again = try await Self.run(["cluster", "up", "--dir", directory.path])
        #expect(again.status == 0, "\(again.output)")
        #expect(FileManager.default.fileExists(atPath: passfile))
        await #expect(throws: PostgresError.self) {
            try await PostgresConnection.connect("host=127.0.0.1 port=\(port) dbname=app user=postgres connect_timeout=3")
        }
        let secured = try await PostgresConnection.connect("host=127.0.0.1 port=\(port) dbname=app user=postgres passfile=\(passfile)")
        #expect(try await secured.query("select rolpassword like 'SCRAM-SHA-256$%' from pg_authid where rolname = 'postgres'").scalar(Bool.self) == true)
        _ = try await secured.query("alter system reset log_statement")
        _ = try await secured.query("select pg_reload_conf()")
        await secured.close()
        let password = try #require(try String(contentsOfFile: passfile, encoding: .utf8).split(separator: "\n").first?.split(separator: ":").last)
        let serverLog = try String(contentsOf: directory.appendingPathComponent("pg1/postgres.log"), encoding: .utf8)
        #expect(serverLog.contains("alter role"), "log_statement = all did not log the upgrade")
        #expect(!serverLog.contains(password), "the new password is in the server's log")
        // The replica streams with the new password after a restart.
        #expect(try await Self.run(["cluster", "stop", "pg2", "--dir", directory.path]).status == 0)
        #expect(try await Self.run(["cluster", "start", "pg2", "--dir", directory.path]).status == 0)
        let streaming = await TestCluster.eventually(timeout: .seconds(20)) {
            (try? await Self.run(["cluster", "status", "--dir", directory.path]))?.output
                .split(separator: "\n").contains { $0.hasPrefix("pg2") && $0.contains("streaming") } == true
        }
        #expect(streaming)
        #expect(try String(contentsOf: directory.appendingPathComponent("switchyard.toml"), encoding: .utf8).contains("passfile="))
    }
}
