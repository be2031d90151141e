import Foundation
import LocalCluster
import PostgresClient
import SwitchyardTestSupport
import Testing

/// `switchyard demo` end to end, on a cluster of its own: sample data, the storefront as
/// its own process with HTTP traffic whose statements the console follows (public reads on
/// replicas, admin pages on the primary), console statements on the primary, quitting
/// stops the storefront, a second start reusing data.
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
        // The storefront's reads on replicas, from its own process; the console's own
        // statements (and the shop's admin pages) on the primary.
        // Pane lines lead with node and reason code: `pg2 replica P storefront 1.2 select …`.
        try await first.waitFor("storefront reads on a replica", timeout: .seconds(30)) { screen in
            screen.split(separator: "\n").contains { ($0.contains("│ pg2 ") || $0.contains("│ pg3 ")) && $0.contains(" P storefront ") }
        }
        try await first.waitFor("a visitor's write", timeout: .seconds(30)) { $0.contains("│ pg1 write P storefront ") }
        // The shop's traffic scrolls the console's own statements away: filter by source.
        try await first.send("Tab")
        try await first.send("S")
        try await first.waitFor(text: "[console]")
        let screen = try await first.waitFor(text: "│ pg1 primary A console ")
        #expect(!screen.contains(" P storefront"))
        #expect(!screen.split(separator: "\n").contains { ($0.contains("│ pg2 ") || $0.contains("│ pg3 ")) && $0.contains(" A console ") })
        #expect(screen.contains("Query log +1 followed"))
        try await first.send("S")  // next source: the storefront
        try await first.waitFor(text: "[storefront]")
        let storefrontLog = try String(contentsOfFile: "\(directory)/storefront.log", encoding: .utf8)
        let url = try #require(storefrontLog.split(separator: "\n").first { $0.hasPrefix("listening on ") }).dropFirst("listening on ".count)
        let health = try await ChildProcess.run(["/usr/bin/curl", "-s", "\(url)/health"])
        #expect(health.output.contains("ok"))
        try await first.send("q")
        try await first.waitFor(text: "keeps running")
        // Quitting the console stopped the storefront.
        let stopped = try await TestCluster.eventually(timeout: .seconds(15)) {
            let probe = try await ChildProcess.run(["/usr/bin/curl", "-s", "-o", "/dev/null", "\(url)/health"])
            return probe.status != 0
        }
        #expect(stopped, "the storefront still answers after the console quit")

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
