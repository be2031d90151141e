import Foundation
import LocalCluster
import PostgresClient
import Switchyard
import SwitchyardTestSupport
import Testing

extension ClusterTests {
    /// A node that stops answering (postmaster and backends SIGSTOPped): nothing waits on it.
    @Suite struct HungNodeTests {
        /// Stops (or continues) the postmaster of `node` and every process it started.
        static func signal(_ number: Int32, node: String) async throws {
            let test = try TestCluster.shared()
            let pidFile = test.local.dataDirectory(try test.node(node)).appendingPathComponent("postmaster.pid").path
            let text = try String(contentsOfFile: pidFile, encoding: .utf8)
            let postmaster = try #require(text.split(separator: "\n").first.flatMap { pid_t($0) })
            let name = number == SIGSTOP ? "STOP" : "CONT"
            _ = try await ChildProcess.run(["/usr/bin/pkill", "-\(name)", "-P", String(postmaster)])
            kill(postmaster, number)
        }

        @Test func aCancelledStatementOnAHungServerLetsItsCallerGo() async throws {
            let test = try TestCluster.shared()
            let connection = try await test.connect("pg1")
            _ = try await connection.query("select 1")
            let clock = ContinuousClock()
            // A monitor already connected when the node hangs.
            let monitor = ClusterMonitor(
                nodes: try test.nodes.map { NodeEndpoint(name: $0.name, conninfo: try test.conninfo($0.name)) },
                settings: ClusterMonitor.Settings(interval: .milliseconds(250)))
            #expect(await monitor.probeNow().node("pg1")?.reachable == true)
            try await Self.signal(SIGSTOP, node: "pg1")
            try await ensuring {
                let statement = Task { try await connection.query("select 42") }
                try await Task.sleep(for: .milliseconds(200))
                let cancelled = clock.now
                statement.cancel()
                #expect(clock.now - cancelled < .milliseconds(100), "cancel blocked its caller")
                let error = await #expect(throws: PostgresError.self) { try await statement.value }
                #expect(error?.kind == .cancelled)
                #expect(clock.now - cancelled < PostgresConnection.cancelGrace + .seconds(1), "the caller waited for the hung server")
                #expect(!connection.isUsable, "a connection with a statement stuck on it must not be reused")

                // The monitor reports the node unresponsive within a second on its open
                // connection, and the other nodes keep being probed meanwhile.
                let probing = clock.now
                let topology = await monitor.probeNow()
                #expect(clock.now - probing < .milliseconds(1800), "the hung node held the round")
                #expect(topology.node("pg1")?.reachable == false)
                #expect(topology.node("pg2")?.reachable == true)
                await monitor.stop()
            } finally: {
                try? await Self.signal(SIGCONT, node: "pg1")
            }
            // Once it answers again, everything works.
            let fresh = try await test.connect("pg1")
            #expect(try await fresh.query("select 7").scalar(Int.self) == 7)
            await fresh.close()
        }

        @Test func theConsoleKeepsDrawingAndEscReturnsAtOnceWhenThePrimaryHangs() async throws {
            let fixture = try await ConsoleTerminalTests.fixture()
            let tmux = try await ConsoleTerminalTests.launch(fixture)
            defer { tmux.close() }
            try await tmux.waitFor(text: "alpha")
            try await tmux.waitFor(text: "ADMIN → primary pg1")
            try await Self.signal(SIGSTOP, node: "pg1")
            try await ensuring {
                // A refresh hangs on the stopped primary; Esc gives control back at once.
                try await tmux.send("r")
                try await tmux.waitFor(text: "(Esc cancels)")
                let clock = ContinuousClock()
                let pressed = clock.now
                try await tmux.send("Escape")
                try await tmux.waitFor("the spinner to go") { !$0.contains("(Esc cancels)") }
                #expect(clock.now - pressed < .seconds(2), "Esc waited for the hung primary")
                // The screen keeps redrawing: the pane shows the primary down.
                try await tmux.waitFor(text: "pg1 DOWN", timeout: .seconds(10))
                try await tmux.send("Down")
                try await tmux.waitFor("the cursor to move") { $0.contains("▶") }
            } finally: {
                try? await Self.signal(SIGCONT, node: "pg1")
            }
            try await tmux.waitFor(text: "ADMIN → primary pg1", timeout: .seconds(15))
            try await tmux.send("r")
            try await tmux.waitFor(text: "alpha")
        }

        @Test func aReloadWaitingOnASilentPrimaryEndsByItselfWithoutEsc() async throws {
            let fixture = try await ConsoleTerminalTests.fixture()
            let tmux = try await ConsoleTerminalTests.launch(fixture)
            defer { tmux.close() }
            try await tmux.waitFor(text: "alpha")
            try await tmux.waitFor(text: "ADMIN → primary pg1")
            try await Self.signal(SIGSTOP, node: "pg1")
            try await ensuring {
                try await tmux.send("r")
                try await tmux.waitFor(text: "(Esc cancels)")
                let clock = ContinuousClock()
                let pressed = clock.now
                // Nobody presses Esc: once the monitor finds pg1 silent the load is ended.
                let screen = try await tmux.waitFor("the load to end by itself", timeout: .seconds(10)) { !$0.contains("(Esc cancels)") }
                #expect(clock.now - pressed < .seconds(6), "the load waited on the silent primary")
                #expect(screen.contains("primary unavailable: pg1 stopped answering"), "\(screen)")
            } finally: {
                try? await Self.signal(SIGCONT, node: "pg1")
            }
            try await tmux.waitFor(text: "ADMIN → primary pg1", timeout: .seconds(15))
            try await tmux.send("r")
            try await tmux.waitFor(text: "alpha")
        }

        @Test func lagWatchKeepsRedrawingAndShowsTheHungPrimary() async throws {
            let test = try TestCluster.shared()
            let binary = try CommandLineTests.executable.path
            let tmux = try await TmuxSession.start(command: "\(binary) lag --watch --config \(test.local.configURL.path)", width: 160, height: 30)
            defer { tmux.close() }
            try await tmux.waitFor("pg1 primary") { $0.split(separator: "\n").contains { $0.hasPrefix("pg1") && $0.contains("primary") } }
            try await Self.signal(SIGSTOP, node: "pg1")
            try await ensuring {
                // Within two intervals (1 s by default) of the hang, plus the round in flight.
                try await tmux.waitFor("pg1 down", timeout: .seconds(4)) { screen in
                    screen.split(separator: "\n").contains { $0.hasPrefix("pg1") && $0.contains("DOWN") }
                }
                try await tmux.waitFor("pg2 still shown") { screen in
                    screen.split(separator: "\n").contains { $0.hasPrefix("pg2") && $0.contains("replica") }
                }
            } finally: {
                try? await Self.signal(SIGCONT, node: "pg1")
            }
            try await tmux.waitFor("pg1 back", timeout: .seconds(10)) {
                $0.split(separator: "\n").contains { $0.hasPrefix("pg1") && $0.contains("primary") }
            }
        }
    }
}
