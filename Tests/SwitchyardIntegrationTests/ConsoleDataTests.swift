import Console
import Foundation
import PostgresClient
import Switchyard
import SwitchyardTestSupport
import Testing

/// Opens `schema.table` through the console's data service, as `Enter` in the table list does.
func openShape(_ service: DataService, _ schema: TestSchema, _ table: String) async throws -> TableShape {
    let opened = await service.perform(.openTable(TableInfo(schema: schema.name, name: table, estimatedRows: 0), request: 1))
    guard case .tableOpened(let shape, _) = opened else { throw PostgresError(kind: .decoding, message: "not opened: \(String(describing: opened))") }
    return shape
}

extension ClusterTests {
    /// The console's data service against a real primary: what a save reports is what
    /// happened, and paging never skips a row.
    @Suite struct ConsoleDataTests {
        func shape(_ service: DataService, _ schema: TestSchema, _ table: String) async throws -> TableShape {
            try await openShape(service, schema, table)
        }

        @Test func filtersCompareInTheColumnsTypeUseTheIndexAndCountTheirMatches() async throws {
            try await TestCluster.shared().withSchema { schema in
                try await withRouted { cluster, _ in
                    _ = try await schema.primary.execute(script: """
                        create table \(schema.quoted).payments (id int primary key, amount numeric(10,2), note text);
                        insert into \(schema.quoted).payments select g, g * 0.5, 'n' || g from generate_series(1, 20000) g;
                        analyze \(schema.quoted).payments;
                        """)
                    let service = DataService(cluster: cluster)
                    let shape = try await shape(service, schema, "payments")
                    // 150.5 finds the row that holds 150.50: compared as numbers, not text.
                    let amount = await service.perform(.loadPage(
                        shape, .first, sort: nil, filter: Filter(column: 1, op: .equals, value: "150.5"), limit: 10, request: 2))
                    guard case .pageLoaded(let rows, _, _, _, _, let matching) = amount else { Issue.record("\(String(describing: amount))"); return }
                    #expect(rows.map { $0[0] } == ["301"])
                    #expect(matching == MatchCount(rows: 1, capped: false))
                    // Several conditions, all must hold; `in` reads its list in the column's type.
                    let several = Filter(conditions: [
                        FilterCondition(column: 0, op: .oneOf, value: "5, 6, 7, 19999"), FilterCondition(column: 1, op: .greaterOrEqual, value: "3"),
                        FilterCondition(column: 2, op: .startsWith, value: "n1"),
                    ])
                    let page = await service.perform(.loadPage(shape, .first, sort: nil, filter: several, limit: 10, request: 3))
                    guard case .pageLoaded(let found, _, _, _, _, let count) = page else { Issue.record("\(String(describing: page))"); return }
                    #expect(found.map { $0[0] } == ["19999"])
                    #expect(count?.rows == 1)
                    // The key's own index serves `=`.
                    let statement = SQLBuilder.page(shape, position: .first, sort: nil, filter: Filter(column: 0, op: .equals, value: "4242"), limit: 10)
                    let plan = try await schema.primary.query("explain " + statement.sql, statement.bindings).rows
                        .map { try $0.decode(0, as: String.self) }.joined(separator: "\n")
                    #expect(plan.contains("Index Scan") || plan.contains("Index Only Scan"), "\(plan)")
                }
            }
        }

        @Test func aKeyMatchingSeveralRowsWritesNothing() async throws {
            try await TestCluster.shared().withSchema { schema in
                try await withRouted { cluster, _ in
                    _ = try await schema.primary.execute(script: """
                        create table \(schema.quoted).parent (id int primary key, v text);
                        create table \(schema.quoted).child () inherits (\(schema.quoted).parent);
                        insert into \(schema.quoted).parent values (1, 'a');
                        insert into \(schema.quoted).child values (1, 'a');
                        """)
                    let service = DataService(cluster: cluster)
                    let shape = try await shape(service, schema, "parent")
                    let event = await service.perform(.update(shape, seen: ["1", "a"], changes: [1: "b"], request: 2))
                    guard case .failed(let message, _) = event else { Issue.record("not refused: \(String(describing: event))"); return }
                    #expect(message.contains("matched 2 rows"))
                    let values = try await schema.primary.query("select v from \(schema.quoted).parent").rows.map { try $0.decode(0, as: String.self) }
                    #expect(values == ["a", "a"], "the update was not rolled back")
                }
            }
        }

        @Test func aTriggerThatRefusesIsNotCalledSomeoneElsesChange() async throws {
            try await TestCluster.shared().withSchema { schema in
                try await withRouted { cluster, _ in
                    _ = try await schema.primary.execute(script: """
                        create table \(schema.quoted).guarded (id int primary key, v text);
                        insert into \(schema.quoted).guarded values (1, 'a');
                        create function \(schema.quoted).refuse() returns trigger language plpgsql as $$ begin return null; end $$;
                        create trigger refuse before update or delete on \(schema.quoted).guarded
                            for each row execute function \(schema.quoted).refuse();
                        """)
                    let service = DataService(cluster: cluster)
                    let shape = try await shape(service, schema, "guarded")
                    let update = await service.perform(.update(shape, seen: ["1", "a"], changes: [1: "b"], request: 2))
                    guard case .failed(let message, _) = update else { Issue.record("not reported: \(String(describing: update))"); return }
                    #expect(message.contains("a trigger or a row-level security policy refused it"))
                    let delete = await service.perform(.delete(shape, seen: ["1", "a"], request: 3))
                    guard case .failed = delete else { Issue.record("delete not reported: \(String(describing: delete))"); return }
                    // Someone else's change is still a conflict.
                    _ = try await schema.primary.query("alter table \(schema.quoted).guarded disable trigger refuse")
                    _ = try await schema.primary.query("update \(schema.quoted).guarded set v = 'theirs'")
                    let conflict = await service.perform(.update(shape, seen: ["1", "a"], changes: [1: "mine"], request: 4))
                    guard case .conflict(let current, _) = conflict else { Issue.record("no conflict: \(String(describing: conflict))"); return }
                    #expect(current == ["1", "theirs"])
                }
            }
        }

        @Test(arguments: TestCluster.Path.allCases)
        func aCancelledSaveSaysWhetherItWasInTime(path: TestCluster.Path) async throws {
            try await TestCluster.shared().withSchema { schema in
                try await withRouted(path: path) { cluster, test in
                    _ = try await schema.primary.execute(script: """
                        create table \(schema.quoted).items (id int primary key, v text);
                        insert into \(schema.quoted).items values (1, 'a');
                        """)
                    let service = DataService(cluster: cluster)
                    let shape = try await shape(service, schema, "items")
                    // Someone holds the row: the save waits on the lock until cancelled.
                    let locker = try await test.connect("pg1")
                    _ = try await locker.query("begin")
                    _ = try await locker.query("select * from \(schema.quoted).items where id = 1 for update")
                    let save = Task { await service.perform(.update(shape, seen: ["1", "a"], changes: [1: "b"], request: 2)) }
                    try await Task.sleep(for: .milliseconds(300))
                    save.cancel()
                    let event = await save.value
                    await locker.rollback()
                    await locker.close()
                    guard case .failed(let message, _) = event else { Issue.record("no outcome: \(String(describing: event))"); return }
                    #expect(message.hasPrefix("cancelled in time: nothing was written"))
                    #expect(try await schema.primary.query("select v from \(schema.quoted).items").scalar(String.self) == "a")
                }
            }
        }

        @Test func megabyteValuesAreShownCutYetSavedAndComparedWhole() async throws {
            try await TestCluster.shared().withSchema { schema in
                try await withRouted { cluster, _ in
                    _ = try await schema.primary.execute(script: """
                        create table \(schema.quoted).docs (id int primary key, title text, body text);
                        insert into \(schema.quoted).docs values (1, 'one', repeat('b', 1000000)), (2, 'two', 'short');
                        """)
                    let service = DataService(cluster: cluster)
                    let shape = try await shape(service, schema, "docs")
                    let event = await service.perform(.loadPage(shape, .first, sort: nil, filter: nil, limit: 10, request: 2))
                    guard case .pageLoaded(let rows, _, _, _, let long, _) = event else { Issue.record("\(String(describing: event))"); return }
                    #expect(rows[0][2]?.count == SQLBuilder.shownCharacters, "the page fetched the whole megabyte")
                    #expect(long[0][2]?.bytes == 1_000_000)
                    #expect(long[1].isEmpty && rows[1][2] == "short")
                    // Another column of that row saves, the cut value compared by digest.
                    let saved = await service.perform(.update(shape, seen: rows[0], changes: [1: "ONE"], long: long[0], request: 3))
                    guard case .saved(let returned, _) = saved else { Issue.record("\(String(describing: saved))"); return }
                    #expect(returned?[2]?.count == 1_000_000, "RETURNING gives the whole row")
                    // The cut value itself, fetched whole, then replaced.
                    let loaded = await service.perform(.loadValue(shape, row: rows[0], column: 2, request: 4))
                    guard case .valueLoaded(let whole, _) = loaded else { Issue.record("\(String(describing: loaded))"); return }
                    #expect(whole?.count == 1_000_000)
                    var seen = returned ?? rows[0]
                    seen[2] = whole
                    let replaced = await service.perform(.update(shape, seen: seen, changes: [2: "now short"], request: 5))
                    guard case .saved = replaced else { Issue.record("\(String(describing: replaced))"); return }
                    // Someone else changes a cut value: the digest no longer matches.
                    _ = try await schema.primary.query("update \(schema.quoted).docs set body = repeat('c', 500000) where id = 2")
                    let again = await service.perform(.loadPage(shape, .first, sort: nil, filter: nil, limit: 10, request: 6))
                    guard case .pageLoaded(let rowsNow, _, _, _, let longNow, _) = again else { return }
                    _ = try await schema.primary.query("update \(schema.quoted).docs set body = repeat('d', 500000) where id = 2")
                    let stale = await service.perform(.update(shape, seen: rowsNow[1], changes: [1: "TWO"], long: longNow[1], request: 7))
                    guard case .conflict = stale else { Issue.record("a changed cut value was overwritten: \(String(describing: stale))"); return }
                }
            }
        }

        @Test func pagingKeepsRowsThatTieInTheColumnsType() async throws {
            try await TestCluster.shared().withSchema { schema in
                try await withRouted { cluster, _ in
                    _ = try await schema.primary.execute(script: """
                        create table \(schema.quoted).amounts (id int primary key, amount numeric);
                        insert into \(schema.quoted).amounts values (1, 1.0), (2, 1.00), (3, 1.000), (4, 1), (5, 2.0), (6, 2.00), (7, 2);
                        """)
                    let service = DataService(cluster: cluster)
                    let shape = try await shape(service, schema, "amounts")
                    let sort = Sort(column: 1, descending: false)
                    var seen: [String] = []
                    var position = PagePosition.first
                    for request in 10..<30 {
                        let event = await service.perform(.loadPage(shape, position, sort: sort, filter: nil, limit: 2, request: request))
                        guard case .pageLoaded(let rows, let keys, _, _, _, _) = event else { Issue.record("\(String(describing: event))"); return }
                        seen += rows.compactMap { $0[0] }
                        guard rows.count == 2, let last = keys.last else { break }
                        position = .after(last)
                    }
                    #expect(seen.sorted() == ["1", "2", "3", "4", "5", "6", "7"], "rows were skipped or repeated: \(seen)")
                }
            }
        }
    }
}
