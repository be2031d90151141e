import Console
import Foundation
import PostgresClient
import Switchyard
import SwitchyardTestSupport
import Testing

extension ClusterTests {
    /// Marked rows deleted or set in one statement, one transaction, shown before y, with a
    /// history row for each row.
    @Suite struct BulkActionTests {
        func open(_ service: DataService, _ schema: TestSchema, _ table: String) async throws -> TableShape {
            try await openShape(service, schema, table)
        }

        func held(_ service: DataService, _ statement: Statement, request: Int) async -> PromptWrite? {
            let event = await service.perform(.runStatement(
                PromptStatement(statement.sql, parameters: statement.parameters, label: "bulk"), pageSize: 20, request: request))
            guard case .promptHeld(let write, _) = event else {
                Issue.record("not held: \(String(describing: event))")
                return nil
            }
            return write
        }

        func count(_ schema: TestSchema, _ sql: String) async throws -> Int {
            try await schema.primary.query(sql).scalar(Int.self) ?? -1
        }

        @Test func markedRowsAreDeletedInOneStatementWithAHistoryRowEach() async throws {
            try await TestCluster.shared().withSchema { schema in
                try await withRouted { cluster, _ in
                    _ = try await schema.primary.execute(script: """
                        create table \(schema.quoted).t (id int primary key, name text, qty int);
                        insert into \(schema.quoted).t select g, 'n' || g, g from generate_series(1, 2000) g;
                        """)
                    let service = DataService(cluster: cluster)
                    let shape = try await open(service, schema, "t")
                    var marks = Marks()
                    for id in stride(from: 2, through: 1000, by: 2) { marks.keys.insert([String(id)]) }
                    let before = cluster.log.entries(after: 0).last?.id ?? 0
                    guard let write = await held(service, SQLBuilder.bulkDelete(shape, marks), request: 2) else { return }
                    #expect(write.summary == "DELETE 500" && write.rows == 500 && write.sample.count == 50)
                    #expect(write.sample.allSatisfy { $0.action == .delete && $0.before?["name"] != nil })
                    #expect(try await count(schema, "select count(*)::int from \(schema.quoted).t") == 2000, "deleted before y")
                    guard case .promptDone(let message, _) = await service.perform(.promptCommand(.commit, request: 3)) else { Issue.record("not committed"); return }
                    #expect(message.hasPrefix("committed: DELETE 500"))
                    #expect(try await count(schema, "select count(*)::int from \(schema.quoted).t") == 1500)
                    #expect(try await count(schema, "select count(*)::int from \(schema.quoted).t where id % 2 = 0 and id <= 1000") == 0)
                    #expect(try await count(schema, "select count(*)::int from switchyard.changes where table_name = '\(schema.name).t' and action = 'delete'") == 500)
                    // A handful of statements for the whole action, however many rows.
                    let logged = cluster.log.entries(after: before)
                    let statements = logged.drop { $0.sql != "begin" }  // after the history table's one-off checks
                    #expect(statements.first?.sql == "begin" && statements.last?.sql == "commit")
                    #expect(statements.count <= 8, "\(statements.count) statements: \(statements.map(\.sql))")
                    #expect(statements.allSatisfy { $0.node == "pg1" && $0.context == "admin" })
                }
            }
        }

        @Test func aColumnIsSetOnEveryRowAFilterMatchesOrOnCompositeKeys() async throws {
            try await TestCluster.shared().withSchema { schema in
                try await withRouted { cluster, _ in
                    _ = try await schema.primary.execute(script: """
                        create table \(schema.quoted).t (id int primary key, name text, qty int);
                        insert into \(schema.quoted).t select g, 'n' || g, g from generate_series(1, 300) g;
                        create table \(schema.quoted).pair (a text, b int, v text, primary key (a, b));
                        insert into \(schema.quoted).pair select 'k' || (g % 3), g, 'x' from generate_series(1, 30) g;
                        """)
                    let service = DataService(cluster: cluster)
                    let shape = try await open(service, schema, "t")
                    var marks = Marks()
                    marks.matching = Marks.MatchingRows(filter: Filter(column: 2, op: .greater, value: "250"), scope: nil, counted: nil)
                    guard let write = await held(service, SQLBuilder.bulkSet(shape, marks, column: 1, value: "it's set"), request: 2) else { return }
                    #expect(write.summary == "UPDATE 50")
                    #expect(write.sample.first?.after == ["name": "it's set"] && write.sample.first?.before?["name"]??.hasPrefix("n") == true)
                    guard case .promptDone = await service.perform(.promptCommand(.rollback, request: 3)) else { Issue.record("not rolled back"); return }
                    #expect(try await count(schema, "select count(*)::int from \(schema.quoted).t where name = 'it''s set'") == 0)
                    _ = await held(service, SQLBuilder.bulkSet(shape, marks, column: 1, value: "it's set"), request: 4)
                    guard case .promptDone = await service.perform(.promptCommand(.commit, request: 5)) else { Issue.record("not committed"); return }
                    #expect(try await count(schema, "select count(*)::int from \(schema.quoted).t where name = 'it''s set'") == 50)
                    #expect(try await count(schema, "select count(*)::int from \(schema.quoted).t where name = 'it''s set' and qty <= 250") == 0)

                    // A two-column key: rows found by both values together.
                    let pair = try await open(service, schema, "pair")
                    var chosen = Marks()
                    chosen.keys = [["k1", "1"], ["k2", "2"], ["k1", "2"]]  // ("k1", 2) does not exist
                    guard let deleting = await held(service, SQLBuilder.bulkDelete(pair, chosen), request: 6) else { return }
                    #expect(deleting.rows == 2)
                    guard case .promptDone = await service.perform(.promptCommand(.commit, request: 7)) else { return }
                    #expect(try await count(schema, "select count(*)::int from \(schema.quoted).pair") == 28)
                }
            }
        }
    }
}
