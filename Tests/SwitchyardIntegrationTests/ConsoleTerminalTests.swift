import Foundation
import LocalCluster
import PostgresClient
import SwitchyardTestSupport
import Testing

/// A real terminal: tmux on a private server, driven with send-keys, read with capture-pane.
final class TmuxSession: Sendable {
    let socket: String
    let name: String
    /// The program in the pane and the tmux server: what ``close()`` kills.
    let panePid: pid_t
    let serverPid: pid_t

    private init(socket: String, name: String, panePid: pid_t, serverPid: pid_t) {
        self.socket = socket
        self.name = name
        self.panePid = panePid
        self.serverPid = serverPid
    }

    static func start(command: String, width: Int = 120, height: Int = 40) async throws -> TmuxSession {
        let socket = "sy-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let name = "t\(UInt32.random(in: 0...UInt32.max))"
        try await tmux(socket, ["new-session", "-d", "-s", name, "-x", String(width), "-y", String(height),
                                "-e", "LANG=C.UTF-8", "-e", "TERM=xterm-256color", command])
        _ = try? await tmux(socket, ["set-option", "-t", name, "remain-on-exit", "on"])
        let pids = try await tmux(socket, ["display-message", "-p", "-t", name, "#{pane_pid} #{pid}"])
            .split(separator: " ").compactMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        return TmuxSession(socket: socket, name: name, panePid: pids.first ?? 0, serverPid: pids.dropFirst().first ?? 0)
    }

    /// Runs tmux and waits for the client only (the server it may start lives on).
    @discardableResult
    static func tmux(_ socket: String, _ arguments: [String]) async throws -> String {
        let result = try await ChildProcess.run(["/usr/bin/tmux", "-L", socket] + arguments)
        guard result.status == 0 else {
            throw NSError(domain: "tmux", code: Int(result.status), userInfo: [NSLocalizedDescriptionKey: result.output])
        }
        return result.output
    }

    func capture() async -> String { (try? await Self.tmux(socket, ["capture-pane", "-p", "-t", name])) ?? "" }

    /// Types keys (tmux key names like Enter, Escape, C-u, Right) or, with `literal`, text.
    func send(_ keys: String..., literal: Bool = false) async throws {
        try await Self.tmux(socket, ["send-keys", "-t", name] + (literal ? ["-l"] : []) + keys)
    }

    func resize(width: Int, height: Int) async throws {
        try await Self.tmux(socket, ["resize-window", "-t", name, "-x", String(width), "-y", String(height)])
    }

    /// Polls the screen until `predicate` holds; returns the last capture.
    @discardableResult
    func waitFor(_ what: String, timeout: Duration = .seconds(15), _ predicate: (String) -> Bool) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        var screen = await capture()
        while !predicate(screen) {
            guard ContinuousClock.now < deadline else {
                Issue.record("timed out waiting for \(what); screen:\n\(screen)")
                return screen
            }
            try await Task.sleep(for: .milliseconds(100))
            screen = await capture()
        }
        return screen
    }

    static func commandLine(_ pid: pid_t) -> String {
        FileManager.default.contents(atPath: "/proc/\(pid)/cmdline").map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    /// Whether `child`'s parent is `parent` (the pane's program is the tmux server's child).
    static func isParent(_ parent: pid_t, of child: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return false }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 1 && pid_t(fields[1]) == parent
    }

    @discardableResult
    func waitFor(text: String, timeout: Duration = .seconds(15)) async throws -> String {
        try await waitFor("\"\(text)\"", timeout: timeout) { $0.contains(text) }
    }

    /// Kills what runs in the pane (it may ignore SIGHUP), then the tmux server — each only
    /// while it is still ours: a pane program that has exited left its pid to be reused
    /// (pids wrap at 32768 here), and a stray SIGKILL would hit another test's process.
    func close() {
        if panePid > 0, Self.isParent(serverPid, of: panePid) { kill(panePid, SIGKILL) }
        if serverPid > 0, Self.commandLine(serverPid).contains("tmux") { kill(serverPid, SIGTERM) }
        let folder = ProcessInfo.processInfo.environment["TMUX_TMPDIR"] ?? "/tmp"
        try? FileManager.default.removeItem(atPath: "\(folder)/tmux-\(getuid())/\(socket)")
    }
}

extension ClusterTests {
    /// The console in a real terminal against the real cluster.
    @Suite struct ConsoleTerminalTests {
        struct Fixture {
            let configPath: String
            let logPath: String
            let schema: String
        }

        /// A table `items` in a fresh schema, a config with a JSON Lines query log.
        static func fixture(path: TestCluster.Path = .direct) async throws -> Fixture {
            let cluster = try TestCluster.shared()
            let schema = "console_" + UUID().uuidString.prefix(6).lowercased()
            try await cluster.withConnection("pg1") { connection in
                _ = try await connection.execute(script: """
                    create schema \(schema);
                    create table \(schema).items (id int primary key, name text, qty integer not null default 0);
                    insert into \(schema).items select g, 'item ' || g, g from generate_series(1, 50) g;
                    update \(schema).items set name = 'alpha' where id = 1;
                    create table \(schema).victim (id int);
                    """)
            }
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sy-console-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let logPath = folder.appendingPathComponent("queries.jsonl").path
            let configPath = try cluster.writeConfig(in: folder, name: "console-test", queryLogFile: logPath, path: path)
            return Fixture(configPath: configPath, logPath: logPath, schema: schema)
        }

        static func launch(_ fixture: Fixture, width: Int = 120, height: Int = 40, after: String = "") async throws -> TmuxSession {
            let binary = try CommandLineTests.executable.path
            let command = "\(binary) console --config \(fixture.configPath) --table \(fixture.schema).items\(after)"
            return try await TmuxSession.start(command: command, width: width, height: height)
        }

        /// Waits for item 1 ("alpha") and renames it through the cell editor.
        static func renameFirstItem(_ tmux: TmuxSession, to name: String) async throws {
            try await tmux.waitFor(text: "alpha")
            try await tmux.send("Right", "Enter")
            try await tmux.waitFor(text: "Edit name")
            try await tmux.send("C-u")
            try await tmux.send(name, literal: true)
            try await tmux.send("Enter")
            try await tmux.waitFor(text: "saved name")
        }

        static func primaryValue(_ sql: String, _ parameters: [any PostgresEncodable] = []) async throws -> String? {
            try await TestCluster.shared().withConnection("pg1") { try await $0.query(sql, parameters).scalar(String.self) }
        }

        @Test func aFullDiskForTheQueryLogIsReportedAndEditingGoesOn() async throws {
            let cluster = try TestCluster.shared()
            let fixture = try await Self.fixture()
            // The same cluster, its query log on a device that is always full.
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sy-full-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let configPath = try cluster.writeConfig(in: folder, name: "full-disk", queryLogFile: "/dev/full")
            let tmux = try await Self.launch(Fixture(configPath: configPath, logPath: "/dev/full", schema: fixture.schema))
            defer { tmux.close() }
            try await tmux.waitFor(text: "alpha")
            try await tmux.waitFor(text: "cannot write the query log /dev/full")
            try await tmux.send("Right", "Enter")
            try await tmux.waitFor(text: "Edit name")
            try await tmux.send("C-u")
            try await tmux.send("still saved", literal: true)
            try await tmux.send("Enter")
            try await tmux.waitFor(text: "saved name")
            #expect(try await Self.primaryValue("select name from \(fixture.schema).items where id = 1") == "still saved")
        }

        @Test func theSQLPromptHoldsAWriteUntilYesAndPagesAQuery() async throws {
            let fixture = try await Self.fixture()
            let schema = fixture.schema
            let state = FileManager.default.temporaryDirectory.appendingPathComponent("sy-state-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: state) }
            let binary = try CommandLineTests.executable.path
            let tmux = try await TmuxSession.start(
                command: "XDG_STATE_HOME=\(state.path) \(binary) console --config \(fixture.configPath) --table \(schema).items", width: 120, height: 40)
            defer { tmux.close() }
            try await tmux.waitFor(text: "alpha")
            try await tmux.send(":")
            try await tmux.waitFor(text: "Enter run")
            try await tmux.send("update \(schema).items set qty = qty + 100 where id <= 2", literal: true)
            try await tmux.send("Enter")
            let held = try await tmux.waitFor(text: "TRANSACTION OPEN — NOT COMMITTED")
            #expect(held.contains("UPDATE 2") && held.contains("qty: 1 → 101") && held.contains("qty: 2 → 102"), "\(held)")
            #expect(try await Self.primaryValue("select qty::text from \(schema).items where id = 1") == "1", "committed before y")
            try await tmux.send("y")
            try await tmux.waitFor(text: "committed: UPDATE 2")
            #expect(try await Self.primaryValue("select qty::text from \(schema).items where id = 1") == "101")

            try await tmux.send("C-u")
            try await tmux.send("select id, name from \(schema).items order by id", literal: true)
            try await tmux.send("Enter")
            let rows = try await tmux.waitFor(text: "TRANSACTION OPEN (read)")
            #expect(rows.contains("rows 1–33 (more follow)") && rows.contains("item 2"), "\(rows)")
            try await tmux.send("PageDown")
            try await tmux.waitFor(text: "rows 34–50 of 50")
            try await tmux.send("Escape")
            try await tmux.waitFor(text: "rows closed: the transaction ended")
            // The history: ↑ brings back the newest statement, and it is kept in a private file.
            try await tmux.send("C-u", "Up")
            try await tmux.waitFor(text: "history 2 of 2")
            let file = state.appendingPathComponent("switchyard/sql_history").path
            let kept = try String(contentsOfFile: file, encoding: .utf8)
            #expect(kept.contains("select id, name from \(schema).items order by id") && kept.contains("qty + 100"))
            #expect((try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int) == 0o600)
            try await tmux.send("Escape")
            try await tmux.waitFor("the grid with the committed values") { $0.contains("101") && !$0.contains("Enter run") }
        }

        @Test func anEditShowsInTheRowAndTableHistory() async throws {
            let fixture = try await Self.fixture()
            let tmux = try await Self.launch(fixture)
            defer { tmux.close() }
            try await Self.renameFirstItem(tmux, to: "omega")
            try await tmux.send("H")
            try await tmux.waitFor(text: "History of \(fixture.schema).items #1")
            try await tmux.waitFor(text: "update  name: alpha → omega")
            try await tmux.send("Enter")
            let diff = try await tmux.waitFor(text: "│ after")
            #expect(diff.split(separator: "\n").contains { $0.contains("name") && $0.contains("alpha") && $0.contains("│ omega") }, "\(diff)")
            try await tmux.send("Escape")
            try await tmux.waitFor(text: "1 change, newest first")
            try await tmux.send("Escape")
            try await tmux.waitFor("the history to close") { !$0.contains("History of") }
            try await tmux.send("Down", "T")
            try await tmux.waitFor(text: "Recent changes to \(fixture.schema).items")
            try await tmux.waitFor(text: "update #1  name: alpha → omega")
            try await tmux.send("Escape")
            try await tmux.waitFor("the history to close") { !$0.contains("Recent changes") }
        }

        @Test func aChangeIsRevertedFromTheHistoryAfterItsSQLIsShown() async throws {
            let fixture = try await Self.fixture()
            let tmux = try await Self.launch(fixture)
            defer { tmux.close() }
            try await Self.renameFirstItem(tmux, to: "mistake")
            try await tmux.send("H")
            try await tmux.waitFor(text: "update  name: alpha → mistake")
            try await tmux.send("u")
            let asked = try await tmux.waitFor(text: "Revert change #")
            #expect(asked.contains("set \"name\" = $1") && asked.contains("$1 = 'alpha'"), "\(asked)")
            #expect(try await Self.primaryValue("select name from \(fixture.schema).items where id = 1") == "mistake", "written before y")
            try await tmux.send("y")
            try await tmux.waitFor(text: "reverted change #")
            let history = try await tmux.waitFor(text: "(reverts #")
            #expect(history.contains("name: mistake → alpha"), "\(history)")
            #expect(try await Self.primaryValue("select name from \(fixture.schema).items where id = 1") == "alpha")
            // Side by side: the revert's before and after.
            try await tmux.send("Enter")
            try await tmux.waitFor(text: "│ after")
            try await tmux.send("Escape", "Escape")
            try await tmux.waitFor("the grid with the reverted value") { $0.contains("alpha") && !$0.contains("History of") && !$0.contains("Esc cancels") }
        }

        @Test func aRowIsCopiedWholeToAFileAndTheClipboardAndShownTopToBottom() async throws {
            let fixture = try await Self.fixture()
            let long = String(repeating: "x", count: 3000) + "END"
            _ = try await TestCluster.shared().withConnection("pg1") { try await $0.query("update \(fixture.schema).items set name = $1 where id = 1", [long]) }
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sy-copy-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let tmux = try await Self.launch(fixture)
            defer { tmux.close() }
            _ = try? await TmuxSession.tmux(tmux.socket, ["set-option", "-g", "set-clipboard", "on"])
            try await tmux.waitFor("the rows") { $0.contains("▶ 1 ") && !$0.contains("Esc cancels") }
            // As an INSERT, into a file: the whole value, read again (the grid shows it cut).
            let file = folder.appendingPathComponent("row.sql").path
            try await tmux.send("c")
            try await tmux.waitFor(text: "Copy the row")
            try await tmux.send("Tab", "Tab")
            try await tmux.send(file, literal: true)
            try await tmux.send("Enter")
            try await tmux.waitFor(text: "copied the row as INSERT to")
            let written = try String(contentsOfFile: file, encoding: .utf8)
            #expect(written.hasPrefix("insert into") && written.contains(long), "\(written.prefix(200))")
            #expect((try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int) == 0o600)
            // As JSON, to the clipboard: tmux keeps what OSC 52 set.
            try await tmux.send("c")
            try await tmux.waitFor(text: "Copy the row")
            try await tmux.send("Tab", "Enter")
            try await tmux.waitFor(text: "copied the row as JSON to the clipboard")
            let deadline = ContinuousClock.now + .seconds(5)
            var buffer = ""
            while ContinuousClock.now < deadline {
                buffer = (try? await TmuxSession.tmux(tmux.socket, ["show-buffer"])) ?? ""
                if buffer.contains("END") { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(buffer.hasPrefix("{\"id\": \"1\"") && buffer.contains(long), "\(buffer.prefix(120))")
            // Top to bottom: the long value wrapped, every column named.
            try await tmux.send("o")
            let row = try await tmux.waitFor(text: "Row id = 1 of \(fixture.schema).items")
            #expect(row.contains("qty") && row.contains("xxxxxxxx"), "\(row)")
            try await tmux.send("Escape")
            try await tmux.waitFor("the row view to close") { !$0.contains("Row id = 1") }
        }

        @Test func switchingClustersKeepsEachOnesPlace() async throws {
            let fixture = try await Self.fixture()
            let cluster = try TestCluster.shared()
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sy-two-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            // Two names for the same servers: "staging", and "production" read-only in red.
            let second = try cluster.writeConfig(in: folder, name: "production")
            var text = try String(contentsOfFile: fixture.configPath, encoding: .utf8)
            text += "\n[[clusters]]\nname = \"production\"\nconfig = \"\(second)\"\ncolor = \"red\"\nread_only = true\n"
            let first = folder.appendingPathComponent("staging.toml").path
            try text.write(toFile: first, atomically: true, encoding: .utf8)
            let binary = try CommandLineTests.executable.path
            let tmux = try await TmuxSession.start(command: "\(binary) console --config \(first) --table \(fixture.schema).items", width: 120, height: 40)
            defer { tmux.close() }
            try await tmux.waitFor("the rows") { $0.contains("▶ 1 ") && !$0.contains("Esc cancels") }
            try await tmux.send("Down", "Down", "Down")
            try await tmux.waitFor("the cursor on item 4") { $0.contains("▶ 4 ") }
            try await tmux.send("C")
            try await tmux.waitFor(text: "(this one)")
            try await tmux.send("Down", "Enter")
            let production = try await tmux.waitFor("production") { $0.contains("│ production") && $0.contains("READ-ONLY") }
            #expect(!production.contains("▶ 4 "), "the other cluster starts on its own: \(production)")
            try await tmux.send("C")
            try await tmux.waitFor(text: "production  (this one)")
            try await tmux.send("Down", "Enter")
            let back = try await tmux.waitFor("back on the first cluster") { $0.contains("back on console-test") && $0.contains("▶ 4 ") && !$0.contains("Esc cancels") }
            #expect(!back.contains("READ-ONLY") && back.contains("\(fixture.schema).items"), "\(back)")
        }

        @Test func followingAReferenceAndBack() async throws {
            let fixture = try await Self.fixture()
            try await TestCluster.shared().withConnection("pg1") { connection in
                _ = try await connection.execute(script: """
                    create table \(fixture.schema).customers (id int primary key, name text);
                    create table \(fixture.schema).orders (id int primary key, customer_id int references \(fixture.schema).customers, total int);
                    create index on \(fixture.schema).orders (customer_id);
                    insert into \(fixture.schema).customers select g, 'customer ' || g from generate_series(1, 30) g;
                    update \(fixture.schema).customers set name = 'Ada Lovelace' where id = 12;
                    insert into \(fixture.schema).orders select g, 12, g * 10 from generate_series(1, 3) g;
                    insert into \(fixture.schema).orders select g, 1 + g % 10, g from generate_series(4, 40) g;
                    """)
            }
            let binary = try CommandLineTests.executable.path
            let tmux = try await TmuxSession.start(
                command: "\(binary) console --config \(fixture.configPath) --table \(fixture.schema).orders", width: 120, height: 40)
            defer { tmux.close() }
            try await tmux.waitFor("the orders") { $0.contains("▶ 1 ") && !$0.contains("Esc cancels") }
            try await tmux.send("Down", "Right")  // order 2, customer_id
            try await tmux.send("f")
            let landed = try await tmux.waitFor(text: "Ada Lovelace")
            #expect(landed.contains("orders › customers #12") && landed.contains("▶ 12"), "\(landed)")
            try await tmux.send("R")
            try await tmux.waitFor(text: "\(fixture.schema).orders (customer_id)  3 rows")
            try await tmux.send("Enter")
            let scoped = try await tmux.waitFor("the referencing orders") { $0.contains("where customer_id = 12") && !$0.contains("Esc cancels") }
            #expect(scoped.contains("orders › customers #12 › orders where customer_id = 12"), "\(scoped)")
            try await tmux.send("BSpace")
            try await tmux.waitFor("the customer again") { $0.contains("▶ 12       Ada Lovelace") && !$0.contains("where customer_id") }
            try await tmux.send("BSpace")
            let back = try await tmux.waitFor("the orders grid again") { !$0.contains("›") && $0.contains("customer_id") && !$0.contains("Esc cancels") }
            // The same row (order 2) under the cursor, in the same column.
            #expect(back.contains("▶ 2"), "\(back)")
        }

        @Test func pickListsAndBooleanTogglesSave() async throws {
            let fixture = try await Self.fixture()
            let schema = fixture.schema
            try await TestCluster.shared().withConnection("pg1") { connection in
                _ = try await connection.execute(script: """
                    create type \(schema).mood as enum ('calm', 'busy', 'on fire');
                    create table \(schema).tasks (id int primary key, done boolean not null default false, mood \(schema).mood not null,
                        status text not null check (status in ('new', 'paid', 'shipped')));
                    insert into \(schema).tasks values (1, false, 'calm', 'new');
                    """)
            }
            let binary = try CommandLineTests.executable.path
            let tmux = try await TmuxSession.start(command: "\(binary) console --config \(fixture.configPath) --table \(schema).tasks", width: 120, height: 40)
            defer { tmux.close() }
            try await tmux.waitFor("the tasks") { $0.contains("▶ 1 ") && !$0.contains("Esc cancels") }
            try await tmux.send("Right", "Space")
            try await tmux.waitFor(text: "saved done")
            #expect(try await Self.primaryValue("select done::text from \(schema).tasks") == "true")
            try await tmux.send("Right", "Enter")
            try await tmux.waitFor(text: "Choose mood")
            try await tmux.send("Down", "Down", "Enter")
            try await tmux.waitFor(text: "saved mood")
            #expect(try await Self.primaryValue("select mood::text from \(schema).tasks") == "on fire")
            try await tmux.send("Right", "Enter")
            let list = try await tmux.waitFor(text: "Choose status")
            #expect(list.contains("shipped") && !list.contains("NULL"), "not null: no NULL choice")
            try await tmux.send("Down", "Enter")
            try await tmux.waitFor(text: "saved status")
            #expect(try await Self.primaryValue("select status from \(schema).tasks") == "paid")
        }

        /// `Q` in a real terminal: the console's own statements with node and reason code,
        /// one shown whole, a search.
        @Test func theQueryLogViewShowsWhichNodeServedEachStatementAndWhy() async throws {
            let fixture = try await Self.fixture()
            let tmux = try await Self.launch(fixture)
            defer { tmux.close() }
            try await tmux.waitFor(text: "alpha")
            try await tmux.send("Q")
            let list = try await tmux.waitFor("the query log full screen") { $0.contains("Query log —") && $0.contains("REASON") }
            let rows = list.split(separator: "\n").filter { $0.contains(" pg1 ") && $0.contains(" primary ") && $0.contains("select") }
            #expect(!rows.isEmpty, "no admin read on pg1 with its reason code:\n\(list)")
            try await tmux.send("Enter")
            let whole = try await tmux.waitFor("one entry whole") { $0.contains("operation") && $0.contains("reason") && $0.contains("SQL") }
            #expect(whole.contains("admin → pg1") && whole.contains("[primary]"), "\(whole)")
            try await tmux.send("Escape", "/")
            try await tmux.send(String(fixture.schema.prefix(6)), literal: true)
            try await tmux.send("Enter")
            let found = try await tmux.waitFor("the search applied") { $0.contains("SQL contains") }
            #expect(found.contains(String(fixture.schema.prefix(6))))
            try await tmux.send("Escape")
            try await tmux.waitFor(text: "alpha")
        }

        @Test func theLagViewShowsAnInjectedDelay() async throws {
            let cluster = try TestCluster.shared()
            let fixture = try await Self.fixture()
            let tmux = try await Self.launch(fixture)
            defer { tmux.close() }
            try await tmux.waitFor(text: "alpha")
            try await tmux.send("L")
            try await tmux.waitFor(text: "Lag, last 10 minutes")
            try await ensuring {
                try await cluster.local.delay(node: "pg3", milliseconds: 1500)
                // Lag needs WAL: keep writing on the primary while the view is watched.
                let writer = Task {
                    while !Task.isCancelled {
                        _ = try? await cluster.withConnection("pg1") { try await $0.query("update \(fixture.schema).items set qty = qty + 1 where id = 2") }
                        try? await Task.sleep(for: .milliseconds(100))
                    }
                }
                defer { writer.cancel() }
                let started = ContinuousClock.now
                let screen = try await tmux.waitFor("pg3 at more than a second behind", timeout: .seconds(20)) { screen in
                    guard let line = screen.split(separator: "\n").first(where: { $0.contains(" pg3 ") && $0.contains("now ") }) else { return false }
                    return line.contains("now 1.") || line.contains("now 2.")
                }
                print("the lag view showed pg3 over 1 s behind \(ContinuousClock.now - started) after the delay was set")
                #expect(screen.contains("max 1.") || screen.contains("max 2."), "\(screen)")
            } finally: {
                try? await cluster.local.delay(node: "pg3", milliseconds: 0)
            }
            try await tmux.send("Escape")
            try await tmux.waitFor("the lag view to close") { !$0.contains("Lag, last 10 minutes") }
        }

        @Test func aTableWithNoColumnsOpensReadOnlyAndEveryKeyIsHarmless() async throws {
            let fixture = try await Self.fixture()
            try await TestCluster.shared().withConnection("pg1") { connection in
                _ = try await connection.execute(script: """
                    create table \(fixture.schema).zz ();
                    insert into \(fixture.schema).zz default values;
                    create table \(fixture.schema).dropped (a int, b text);
                    insert into \(fixture.schema).dropped values (1, 'x');
                    alter table \(fixture.schema).dropped drop column a, drop column b;
                    """)
            }
            let binary = try CommandLineTests.executable.path
            for table in ["zz", "dropped"] {
                let tmux = try await TmuxSession.start(command: "\(binary) console --config \(fixture.configPath) --table \(fixture.schema).\(table)")
                defer { tmux.close() }
                try await tmux.waitFor(text: "READ-ONLY (no columns)")
                for key in ["Down", "Up", "Right", "Left", "Enter", "e", "a", "d", "s", "/", "Escape", "r", "G", "g", "NPage", "PPage", "F1", "Escape"] {
                    try await tmux.send(key)
                }
                try await Task.sleep(for: .milliseconds(300))
                let screen = try await tmux.waitFor(text: "READ-ONLY (no columns)")
                #expect(!screen.contains("Illegal instruction") && !screen.contains("Fatal error"))
                try await tmux.send("q")
            }
        }

        @Test func aMegabyteCellBrowsesAndEditsLikeAShortOne() async throws {
            let fixture = try await Self.fixture()
            try await TestCluster.shared().withConnection("pg1") { connection in
                _ = try await connection.execute(script: """
                    create table \(fixture.schema).docs (id int primary key, body text);
                    insert into \(fixture.schema).docs values (1, repeat('b', 1000000));
                    """)
            }
            let binary = try CommandLineTests.executable.path
            // The page shows it cut; Enter fetches it whole and, being long, hands it to the
            // editor (here one that replaces the text).
            let tmux = try await TmuxSession.start(
                command: "env EDITOR='sed -i s/.*/short-now/' \(binary) console --config \(fixture.configPath) --table \(fixture.schema).docs")
            defer { tmux.close() }
            try await tmux.waitFor(text: "bbbbbbbb")
            try await tmux.send("Right", "Enter")
            try await tmux.waitFor(text: "edited in the external editor")
            try await tmux.waitFor(text: "9 characters")
            try await tmux.send("Enter")
            try await tmux.waitFor(text: "saved body")
            #expect(try await Self.primaryValue("select body from \(fixture.schema).docs where id = 1") == "short-now")
        }

        @Test func aLongValueOpensInTheExternalEditorAndIsSavedFromThere() async throws {
            let fixture = try await Self.fixture()
            try await TestCluster.shared().withConnection("pg1") { connection in
                _ = try await connection.execute(script: """
                    create table \(fixture.schema).notes (id int primary key, body text);
                    insert into \(fixture.schema).notes values (1, repeat('b', 20000));
                    """)
            }
            let before = Set((try? FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory())) ?? [])
                .filter { $0.hasPrefix("switchyard-value-") }
            let binary = try CommandLineTests.executable.path
            // A non-interactive "editor": it rewrites the file it is given.
            let tmux = try await TmuxSession.start(
                command: "env EDITOR='sed -i s/b/c/g' \(binary) console --config \(fixture.configPath) --table \(fixture.schema).notes")
            defer { tmux.close() }
            try await tmux.waitFor(text: "bbbbbbbb")
            try await tmux.send("Right", "Enter")
            try await tmux.waitFor(text: "edited in the external editor")
            try await tmux.send("Enter")
            try await tmux.waitFor(text: "saved body")
            #expect(try await Self.primaryValue("select body from \(fixture.schema).notes where id = 1") == String(repeating: "c", count: 20000))
            let after = Set((try? FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory())) ?? [])
                .filter { $0.hasPrefix("switchyard-value-") }
            #expect(after.subtracting(before).isEmpty, "the editor's file was left behind")
        }

        @Test(arguments: TestCluster.Path.allCases)
        func editingACellWritesOnThePrimaryAndEveryStatementIsLoggedThere(path: TestCluster.Path) async throws {
            let fixture = try await Self.fixture(path: path)
            let tmux = try await Self.launch(fixture)
            defer { tmux.close() }
            try await tmux.waitFor(text: "alpha")
            try await tmux.waitFor(text: "ADMIN → primary pg1")
            try await tmux.send("Right", "Enter")
            try await tmux.waitFor(text: "Edit name")
            try await tmux.send("C-u")
            try await tmux.send("edited ünïcode 🚂", literal: true)
            try await tmux.send("Enter")
            try await tmux.waitFor(text: "saved name")
            #expect(try await Self.primaryValue("select name from \(fixture.schema).items where id = 1") == "edited ünïcode 🚂")
            try await tmux.send("q")
            try await Task.sleep(for: .milliseconds(500))
            let lines = try String(contentsOfFile: fixture.logPath, encoding: .utf8).split(separator: "\n")
            #expect(lines.count >= 4)
            for line in lines {
                let entry = try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                #expect(entry["context"] as? String == "admin", "console statement outside the admin context: \(line)")
                #expect(entry["node"] as? String == "pg1", "console statement not on the primary: \(line)")
            }
            #expect(lines.contains { $0.contains("\"operation\":\"write\"") && $0.contains("update") })
        }

        @Test(arguments: TestCluster.Path.allCases)
        func aConcurrentChangeShowsAConflictAndOverwritesNothing(path: TestCluster.Path) async throws {
            let fixture = try await Self.fixture(path: path)
            let tmux = try await Self.launch(fixture)
            defer { tmux.close() }
            try await tmux.waitFor(text: "alpha")
            try await tmux.send("Right", "Enter")
            try await tmux.waitFor(text: "Edit name")
            _ = try await TestCluster.shared().withConnection("pg1") {
                try await $0.query("update \(fixture.schema).items set name = 'theirs' where id = 1")
            }
            try await tmux.send("C-u")
            try await tmux.send("mine", literal: true)
            try await tmux.send("Enter")
            // The whole box, not its title alone: a capture can land while the frame is drawn.
            let screen = try await tmux.waitFor("the conflict box") { $0.contains("Conflict") && $0.contains("yours mine") }
            #expect(screen.contains("now theirs"))
            #expect(screen.contains("yours mine"))
            #expect(try await Self.primaryValue("select name from \(fixture.schema).items where id = 1") == "theirs")
            // Back to the editor with the input kept.
            try await tmux.send("Enter")
            let editor = try await tmux.waitFor(text: "Edit name")
            #expect(editor.contains("mine"))
        }

        @Test func anInvalidIntegerShowsTheSQLStateAndKeepsTheText() async throws {
            let fixture = try await Self.fixture()
            let tmux = try await Self.launch(fixture)
            defer { tmux.close() }
            try await tmux.waitFor(text: "alpha")
            try await tmux.send("Right", "Right", "Enter")
            try await tmux.waitFor(text: "Edit qty")
            try await tmux.send("C-u")
            try await tmux.send("12x", literal: true)
            try await tmux.send("Enter")
            let screen = try await tmux.waitFor(text: "22P02")
            #expect(screen.contains("Edit qty"), "the editor stays open")
            #expect(screen.contains("12x"), "the typed text is kept")
            #expect(try await Self.primaryValue("select qty::text from \(fixture.schema).items where id = 1") == "1")
        }

        @Test func aFilterCannotBecomeSQL() async throws {
            let fixture = try await Self.fixture()
            let tmux = try await Self.launch(fixture, width: 220)
            defer { tmux.close() }
            try await tmux.waitFor(text: "alpha")
            try await tmux.send("Right", "/")
            try await tmux.waitFor(text: "filter")
            try await tmux.send("'; drop table \(fixture.schema).victim; --", literal: true)
            try await tmux.send("Enter")
            try await tmux.waitFor(text: "(no rows match the filter)")
            #expect(try await Self.primaryValue("select to_regclass($1)::text", ["\(fixture.schema).victim"]) != nil)
            // Enter on nothing clears the filter; then a real one finds its row, and a
            // second condition narrows it (AND).
            try await tmux.send("/", "Enter")
            try await tmux.waitFor(text: "filter cleared")
            try await tmux.send("/")
            try await tmux.send("alpha", literal: true)
            try await tmux.send("Enter")
            try await tmux.waitFor("one row") { $0.contains("alpha") && !$0.contains("item 2 ") && $0.contains("1 match") }
            try await tmux.send("Right", "/", "Tab", "Tab", "Tab")  // qty: = → contains → starts with → !=
            try await tmux.send("1", literal: true)
            try await tmux.send("Enter")
            try await tmux.waitFor(text: "name = 'alpha' and qty != '1'")
            try await tmux.waitFor(text: "(no rows match the filter)")
        }

        @Test func ctrlLRepaintsWhateverWasWrittenOverTheScreen() async throws {
            let fixture = try await Self.fixture()
            let tmux = try await Self.launch(fixture)
            defer { tmux.close() }
            try await tmux.waitFor(text: "alpha")
            // Another program writes over the console's screen (a wall message, a stray echo).
            let tty = try await TmuxSession.tmux(tmux.socket, ["display-message", "-p", "-t", tmux.name, "#{pane_tty}"])
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let handle = try #require(FileHandle(forWritingAtPath: tty))
            handle.write(Data("\u{1b}[H\u{1b}[2JSCRIBBLED 山田 OVER THE SCREEN".utf8))
            try handle.close()
            try await tmux.waitFor(text: "SCRIBBLED")
            try await tmux.send("C-l")
            let screen = try await tmux.waitFor("a clean repaint") { !$0.contains("SCRIBBLED") && $0.contains("alpha") }
            #expect(screen.contains("ADMIN → primary pg1"))
        }

        @Test func resizeRelayoutsAndTooSmallSaysSo() async throws {
            let fixture = try await Self.fixture()
            let tmux = try await Self.launch(fixture)
            defer { tmux.close() }
            try await tmux.waitFor(text: "alpha")
            try await tmux.resize(width: 100, height: 30)
            try await tmux.waitFor("100 columns") { screen in
                screen.split(separator: "\n").first.map { Int($0.count) <= 100 && $0.contains("ADMIN → primary pg1") } == true
            }
            try await tmux.resize(width: 70, height: 20)
            try await tmux.waitFor(text: "Terminal too small")
            try await tmux.resize(width: 120, height: 40)
            try await tmux.waitFor("normal layout") { $0.contains("alpha") && !$0.contains("Terminal too small") }
        }

        @Test func sigtermRestoresTheTerminal() async throws {
            let fixture = try await Self.fixture()
            let stty = FileManager.default.temporaryDirectory.appendingPathComponent("sy-stty-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: stty) }
            let tmux = try await Self.launch(fixture, after: "; stty -a > \(stty); sleep 5")
            defer { tmux.close() }
            try await tmux.waitFor(text: "alpha")
            // Anchored at the program path: the tmux server's command line names it too.
            let binary = try CommandLineTests.executable.path
            _ = try await ChildProcess.run(["/usr/bin/pkill", "-TERM", "-f", "^\(binary) console --config \(fixture.configPath)"])
            let restored = await TestCluster.eventually(timeout: .seconds(10)) {
                (try? String(contentsOfFile: stty, encoding: .utf8))?.contains("icanon") == true
            }
            #expect(restored, "the shell after the console never ran stty")
            let settings = (try? String(contentsOfFile: stty, encoding: .utf8)) ?? ""
            let words = settings.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == ";" })
            #expect(words.contains("icanon") && !words.contains("-icanon"))
            #expect(words.contains("echo") && !words.contains("-echo"))
        }

        @Test func aStoppedReplicaShowsDownInThePane() async throws {
            let fixture = try await Self.fixture()
            let tmux = try await Self.launch(fixture)
            defer { tmux.close() }
            try await tmux.waitFor(text: "alpha")
            try await tmux.waitFor(text: "pg3 replica")
            let cluster = try TestCluster.shared()
            try await cluster.local.stop(node: "pg3", mode: .immediate)
            do {
                try await tmux.waitFor(text: "pg3 DOWN")
                // The console still works with a replica down.
                try await tmux.send("j")
                try await tmux.waitFor(text: "item 2")
            } catch {
                try? await cluster.local.start(node: "pg3")
                throw error
            }
            try await cluster.local.start(node: "pg3")
            try await tmux.waitFor(text: "pg3 replica")
            try await cluster.waitForStreaming()
        }
    }
}

extension ClusterTests.ConsoleTerminalTests {
    @Test(arguments: TestCluster.Path.allCases)
    func escapeCancelsAWaitingQueryOnTheServer(path: TestCluster.Path) async throws {
        let fixture = try await Self.fixture(path: path)
        let tmux = try await Self.launch(fixture)
        defer { tmux.close() }
        try await tmux.waitFor(text: "alpha")
        // Another session holds the table, so the console's refresh waits on the lock.
        let locker = try await TestCluster.shared().connect("pg1")
        _ = try await locker.query("begin")
        _ = try await locker.query("lock table \(fixture.schema).items in access exclusive mode")
        do {
            try await tmux.send("r")
            try await tmux.waitFor(text: "(Esc cancels)")
            let waiting = await TestCluster.eventually(timeout: .seconds(5)) {
                (try? await Self.consoleQueriesWaiting(on: fixture.schema)) == 1
            }
            #expect(waiting, "the console's query should be waiting on the lock")
            try await tmux.send("Escape")
            try await tmux.waitFor(text: "cancelled")
            let gone = await TestCluster.eventually(timeout: .seconds(5)) {
                (try? await Self.consoleQueriesWaiting(on: fixture.schema)) == 0
            }
            #expect(gone, "the query was cancelled on the server, not just abandoned")
        } catch {
            _ = try? await locker.query("rollback")
            await locker.close()
            throw error
        }
        _ = try await locker.query("rollback")
        await locker.close()
        // The console works on after the cancel.
        try await tmux.send("r")
        try await tmux.waitFor("a refreshed page") { $0.contains("alpha") && !$0.contains("(Esc cancels)") }
    }

    /// Active console statements on the primary that read `schema`'s items table.
    static func consoleQueriesWaiting(on schema: String) async throws -> Int? {
        try await TestCluster.shared().withConnection("pg1") { connection in
            try await connection.query(
                """
                select count(*) from pg_stat_activity
                where application_name = 'switchyard' and state = 'active' and query like '%' || $1 || '%items%'
                  and pid <> pg_backend_pid()
                """, [schema]).scalar(Int.self)
        }
    }
}
