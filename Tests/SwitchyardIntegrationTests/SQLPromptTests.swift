import Console
import Foundation
import PostgresClient
import Switchyard
import SwitchyardTestSupport
import Synchronization
import Testing

extension ClusterTests {
    /// The console's SQL prompt against the real primary: rows come from a server-side
    /// cursor, a write is held open until y, and nothing commits without it.
    @Suite struct SQLPromptTests {
        /// Events the prompt posts on its own (a transaction that ended by itself).
        final class Posted: Sendable {
            let events = Mutex<[ConsoleEvent]>([])
            var post: @Sendable (ConsoleEvent) -> Void { { event in self.events.withLock { $0.append(event) } } }
            func messages() -> [String] {
                events.withLock { $0.compactMap { if case .promptEnded(let text) = $0 { return text } else { return nil } } }
            }
        }

        static func items(_ schema: TestSchema) async throws -> String {
            let table = try await schema.table("items")
            _ = try await schema.primary.execute(script: """
                create table \(table) (id int primary key, name text, qty int not null default 0);
                insert into \(table) select g, 'item ' || g, g from generate_series(1, 5) g;
                """)
            return table
        }

        func run(_ service: DataService, _ sql: String, request: Int = 1, pageSize: Int = 20, posted: Posted = Posted()) async -> ConsoleEvent? {
            await service.perform(.runStatement(PromptStatement(sql), pageSize: pageSize, request: request), progress: posted.post)
        }

        /// Prompt transactions still open on the server (idle in transaction, from this test's cursor or write).
        func openTransactions(_ schema: TestSchema, holding text: String) async throws -> Int {
            try await schema.primary.query(
                "select count(*)::int from pg_stat_activity where state like 'idle in transaction%' and query like $1 and pid <> pg_backend_pid()",
                ["%\(text)%"]).scalar(Int.self) ?? -1
        }

        @Test func aQueryIsReadPageByPageFromAServerSideCursor() async throws {
            try await TestCluster.shared().withSchema { schema in
                try await withRouted { cluster, _ in
                    let service = DataService(cluster: cluster)
                    let first = await run(service, "select g, 'row ' || g as label from generate_series(1, 1000) g order by g", pageSize: 20)
                    guard case .promptRows(let page, _) = first else { Issue.record("no rows: \(String(describing: first))"); return }
                    #expect(page.columns == ["g", "label"])
                    #expect(page.rows.count == 20 && page.rows.first?[0] == "1" && !page.atEnd && page.offset == 0)
                    let last = await service.perform(.promptCommand(.page(offset: 980, count: 20), request: 2))
                    guard case .promptRows(let end, let request) = last else { Issue.record("no last page: \(String(describing: last))"); return }
                    #expect(request == 2, "the answer is for the command that asked")
                    #expect(end.rows.map { $0[0] } == (981...1000).map { String($0) } && end.atEnd)
                    let middle = await service.perform(.promptCommand(.page(offset: 500, count: 3), request: 3))
                    guard case .promptRows(let some, _) = middle else { Issue.record("no page: \(String(describing: middle))"); return }
                    #expect(some.rows.map { $0[1] } == ["row 501", "row 502", "row 503"])
                    // While the rows are open, so is the transaction; leaving ends it.
                    let open = try await openTransactions(schema, holding: "sy_prompt_rows")
                    #expect(open == 1)
                    let closed = await service.perform(.promptCommand(.rollback, request: 4))
                    guard case .promptDone = closed else { Issue.record("not closed: \(String(describing: closed))"); return }
                    let left = try await openTransactions(schema, holding: "sy_prompt_rows")
                    #expect(left == 0)
                    // A result that fits on one screen ends its transaction at once.
                    guard case .promptRows(let small, _) = await run(service, "select 'sy_prompt_small' from generate_series(1, 5)", request: 5) else {
                        Issue.record("no rows"); return
                    }
                    #expect(small.rows.count == 5 && small.atEnd)
                    var idle = -1
                    for _ in 0..<50 {
                        idle = try await openTransactions(schema, holding: "sy_prompt")
                        if idle == 0 { break }
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    #expect(idle == 0, "a transaction stayed open for a complete result")
                    // Every statement of the prompt is in the query log, in the admin context on the primary.
                    let logged = cluster.log.entries(after: 0).filter { $0.sql.contains("sy_prompt_rows") }
                    #expect(!logged.isEmpty && logged.allSatisfy { $0.context == "admin" && $0.node == "pg1" })
                }
            }
        }

        @Test func aWriteIsShownBeforeAndAfterAndCommitsOnlyOnYes() async throws {
            try await TestCluster.shared().withSchema { schema in
                try await withRouted { cluster, _ in
                    let table = try await Self.items(schema)
                    let service = DataService(cluster: cluster)
                    let statement = "update \(table) set qty = qty + 10 where id <= 2"
                    let held = await run(service, statement)
                    guard case .promptHeld(let write, _) = held else { Issue.record("not held: \(String(describing: held))"); return }
                    #expect(write.summary == "UPDATE 2" && write.rows == 2)
                    let sample = write.sample.sorted { $0.keyLabel < $1.keyLabel }
                    #expect(sample.map(\.keyLabel) == ["#1", "#2"])
                    #expect(sample.first?.before == ["qty": "1"] && sample.first?.after == ["qty": "11"], "\(sample)")
                    // Not committed: nobody else sees it.
                    #expect(try await schema.primary.query("select qty from \(table) where id = 1").scalar(Int.self) == 1)
                    let done = await service.perform(.promptCommand(.commit, request: 2))
                    guard case .promptDone(let message, _) = done else { Issue.record("not committed: \(String(describing: done))"); return }
                    #expect(message.hasPrefix("committed: UPDATE 2"), "\(message)")
                    #expect(try await schema.primary.query("select qty from \(table) where id = 1").scalar(Int.self) == 11)
                    // One history row per row written, naming the statement.
                    let history = try await schema.primary.query(
                        "select row_key->>'id', before->>'qty', after->>'qty', statement from switchyard.changes where table_name = $1 order by id",
                        ["\(schema.name).items"]).rows.map { [try $0.decode(0, as: String?.self), try $0.decode(1, as: String?.self), try $0.decode(2, as: String?.self), try $0.decode(3, as: String?.self)] }
                    #expect(history == [["1", "1", "11", statement], ["2", "2", "12", statement]] || history == [["2", "2", "12", statement], ["1", "1", "11", statement]], "\(history)")

                    // n: rolled back, nothing written, no history.
                    let delete = await run(service, "delete from \(table) where id = 5", request: 3)
                    guard case .promptHeld(let deleting, _) = delete else { Issue.record("not held: \(String(describing: delete))"); return }
                    #expect(deleting.sample.first?.before?["name"] == "item 5")
                    let rolledBack = await service.perform(.promptCommand(.rollback, request: 4))
                    guard case .promptDone(let text, _) = rolledBack else { Issue.record("\(String(describing: rolledBack))"); return }
                    #expect(text.hasPrefix("rolled back"))
                    #expect(try await schema.primary.query("select count(*)::int from \(table)").scalar(Int.self) == 5)
                    #expect(try await schema.primary.query(
                        "select count(*)::int from switchyard.changes where table_name = $1 and action = 'delete'", ["\(schema.name).items"]).scalar(Int.self) == 0)
                }
            }
        }

        @Test func aHeldWriteRollsBackByItselfAndReleasesItsLocks() async throws {
            try await TestCluster.shared().withSchema { schema in
                try await withRouted { cluster, _ in
                    let table = try await Self.items(schema)
                    let service = DataService(cluster: cluster, promptHold: .seconds(1))
                    let posted = Posted()
                    let held = await run(service, "update \(table) set name = 'held' where id = 3", posted: posted)
                    guard case .promptHeld = held else { Issue.record("not held: \(String(describing: held))"); return }
                    let deadline = ContinuousClock.now + .seconds(15)
                    while posted.messages().isEmpty, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
                    #expect(posted.messages().first?.hasPrefix("rolled back by itself") == true, "\(posted.messages())")
                    // The row is as it was, and nobody waits for its lock.
                    _ = try await schema.primary.query("begin")
                    let name = try await schema.primary.query("select name from \(table) where id = 3 for update nowait").scalar(String.self)
                    _ = try await schema.primary.query("rollback")
                    #expect(name == "item 3")
                    let late = await service.perform(.promptCommand(.commit, request: 2))
                    guard case .promptDone(let message, _) = late else { Issue.record("\(String(describing: late))"); return }
                    #expect(message.contains("nothing was committed"))
                }
            }
        }

        @Test func explainAnalyzeAndDDLAreShownAndLeaveOnlyWhatWasCommitted() async throws {
            try await TestCluster.shared().withSchema { schema in
                try await withRouted { cluster, _ in
                    let table = try await Self.items(schema)
                    let service = DataService(cluster: cluster)
                    let explained = await run(service, "explain analyze delete from \(table)")
                    guard case .promptText(let title, let lines, _) = explained else { Issue.record("\(String(describing: explained))"); return }
                    #expect(title.contains("rolled back") && lines.contains { $0.contains("Delete on") })
                    #expect(try await schema.primary.query("select count(*)::int from \(table)").scalar(Int.self) == 5)
                    let open = try await openTransactions(schema, holding: "explain")
                    #expect(open == 0)

                    // A statement with no rows of its own: one history row names it.
                    let made = try await schema.table("made")
                    let create = await run(service, "create table \(made) (id int)", request: 2)
                    guard case .promptHeld(let write, _) = create else { Issue.record("\(String(describing: create))"); return }
                    #expect(write.summary == "CREATE TABLE")
                    let committed = await service.perform(.promptCommand(.commit, request: 3))
                    guard case .promptDone(let message, _) = committed, message.hasPrefix("committed") else { Issue.record("\(String(describing: committed))"); return }
                    #expect(try await schema.primary.query("select to_regclass($1) is not null", ["\(schema.name).made"]).scalar(Bool.self) == true)
                    #expect(try await schema.primary.query(
                        "select count(*)::int from switchyard.changes where action = 'statement' and statement = $1", ["create table \(made) (id int)"]).scalar(Int.self) == 1)
                }
            }
        }

        @Test func badStatementsAreRefusedOrFailWithTheReasonAndHoldNothing() async throws {
            try await TestCluster.shared().withSchema { schema in
                try await withRouted { cluster, _ in
                    let table = try await Self.items(schema)
                    let service = DataService(cluster: cluster)
                    for (sql, expected) in [
                        ("update \(schema.quoted).nope set x = 1", "42P01"), ("select 1; delete from \(table)", "one statement at a time"),
                        ("begin", "holds the transaction itself"), ("select 1/0", "22012"),
                    ] {
                        let event = await run(service, sql)
                        guard case .failed(let message, _) = event else { Issue.record("\(sql): \(String(describing: event))"); continue }
                        #expect(message.contains(expected), "\(sql): \(message)")
                    }
                    #expect(try await schema.primary.query("select count(*)::int from \(table)").scalar(Int.self) == 5)
                    let after = await service.perform(.promptCommand(.commit, request: 9))
                    guard case .promptDone(let message, _) = after else { Issue.record("\(String(describing: after))"); return }
                    #expect(message.contains("nothing was committed"))
                }
            }
        }

        @Test func cancellingALongStatementStopsItOnTheServer() async throws {
            try await TestCluster.shared().withSchema { schema in
                try await withRouted { cluster, _ in
                    let service = DataService(cluster: cluster)
                    let started = ContinuousClock.now
                    let task = Task { await run(service, "select pg_sleep(60), 'sy_prompt_sleeper'") }
                    try await Task.sleep(for: .milliseconds(800))
                    task.cancel()
                    let outcome = await task.value
                    #expect(ContinuousClock.now - started < .seconds(20))
                    if case .promptRows = outcome { Issue.record("rows after a cancel") }
                    let deadline = ContinuousClock.now + .seconds(10)
                    var running = -1
                    while ContinuousClock.now < deadline {
                        running = try await schema.primary.query(
                            "select count(*)::int from pg_stat_activity where query like '%sy_prompt_sleeper%' and state <> 'idle' and pid <> pg_backend_pid()")
                            .scalar(Int.self) ?? -1
                        if running == 0 { break }
                        try await Task.sleep(for: .milliseconds(100))
                    }
                    #expect(running == 0, "the statement still runs on the server")
                }
            }
        }
    }
}
