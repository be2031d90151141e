import Foundation
import LocalCluster
import PostgresClient
import SwitchyardTestSupport
import Testing

/// `switchyard demo` end to end, on a cluster of its own: sample data, public traffic on
/// replicas in the pane, console statements on the primary, a second start reusing data.
@Suite struct DemoCommandTests {
    @Test func demoLoadsDataOnceShowsTrafficAndLeavesTheClusterRunning() async throws {
        let directory = "/tmp/switchyard-tests/demo-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let port = try #require(PortCheck.freeRange(count: 3))
        let binary = try CommandLineTests.executable.path
        defer {
            TestCluster.killServers(in: URL(fileURLWithPath: directory))
            try? FileManager.default.removeItem(atPath: directory)
        }
        let command = "\(binary) demo --dir \(directory) --port \(port) --table demo.customers"
        let first = try await TmuxSession.start(command: command + "; sleep 5", width: 140, height: 40)
        defer { first.close() }
        try await first.waitFor(text: "ADMIN → primary pg1", timeout: .seconds(120))
        try await first.waitFor(text: "demo.customers  ~20k rows")
        // Site traffic reads on replicas; the console's own statements are on the primary.
        try await first.waitFor("public reads on a replica") { $0.contains(" P pg2 ") || $0.contains(" P pg3 ") }
        let screen = try await first.waitFor(text: " A pg1 ")
        #expect(!screen.contains(" A pg2 ") && !screen.contains(" A pg3 "))
        try await first.send("q")
        try await first.waitFor(text: "keeps running")

        let primary = try await PostgresConnection.connect("host=127.0.0.1 port=\(port) dbname=app user=postgres passfile=\(directory)/pgpass")
        let events = try await primary.query("select count(*) from demo.events").scalar(Int.self)
        let noKey = try await primary.query(
            "select count(*) from pg_index i join pg_class c on c.oid = i.indrelid where c.relname = 'audit_log' and i.indisprimary"
        ).scalar(Int.self)
        await primary.close()
        #expect(events == 1_000_000)
        #expect(noKey == 0, "audit_log is the table without a primary key")

        // A second start reuses the data and opens the read-only table.
        let second = try await TmuxSession.start(command: "\(binary) demo --dir \(directory) --port \(port) --no-traffic --table demo.audit_log; sleep 5",
                                     width: 140, height: 40)
        defer { second.close() }
        let reopened = try await second.waitFor(text: "READ-ONLY (no primary key)", timeout: .seconds(60))
        #expect(!reopened.contains("loading sample data"))
        try await second.send("q")
        try await second.waitFor(text: "keeps running")
    }

    @Test func aBadThemeFailsBeforeTheScreenIsTouched() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sy-theme-\(UUID().uuidString).toml").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "name = \"x\"\n[styles]\nheader = { fg = \"chartreuse\" }\n".write(toFile: path, atomically: true, encoding: .utf8)
        let run = try await CommandLineTests.run(["demo", "--theme", path, "--dir", "/nonexistent/never-created"])
        #expect(run.status == 1)
        #expect(run.output.contains("\(path):3: header.fg: unknown colour"))
        #expect(!FileManager.default.fileExists(atPath: "/nonexistent/never-created"))
    }
}
