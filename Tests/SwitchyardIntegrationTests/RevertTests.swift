import Console
import Foundation
import PostgresClient
import Switchyard
import SwitchyardTestSupport
import Testing

extension ClusterTests {
    /// `u` in the history: a change's inverse, written as an ordinary conflict-checked
    /// edit with a history row of its own — and nothing written when the row moved on.
    @Suite struct RevertTests {
        func open(_ service: DataService, _ schema: TestSchema, _ table: String) async throws -> TableShape {
            try await openShape(service, schema, table)
        }

        func newest(_ service: DataService, _ schema: TestSchema) async throws -> ChangeAudit.Entry {
            let loaded = await service.perform(.loadHistory(table: "\(schema.name).t", key: nil, request: 50))
            guard case .historyLoaded(let entries, _) = loaded, let first = entries.first else {
                throw PostgresError(kind: .decoding, message: "no history: \(String(describing: loaded))")
            }
            return first
        }

        func row(_ schema: TestSchema, _ id: Int) async throws -> [String?]? {
            try await schema.primary.query("select id::text, name, qty::text, at::text from \(schema.quoted).t where id = $1", [id]).first
                .map { row in (0..<4).map { row.raw($0) } }
        }

        func revert(_ service: DataService, _ entry: ChangeAudit.Entry) async -> ConsoleEvent? {
            let prepared = await service.perform(.prepareRevert(entry, request: 60))
            guard case .revertReady(let plan, _) = prepared else { return prepared }
            return await service.perform(.revert(plan, request: 61))
        }

        @Test func everyKindOfChangeIsRevertedAndTheRevertIsItselfRecorded() async throws {
            try await TestCluster.shared().withSchema { schema in
                try await withRouted { cluster, _ in
                    _ = try await schema.primary.execute(script: """
                        create table \(schema.quoted).t (id int primary key, name text, qty int, at timestamptz not null default '2026-01-02 03:04:05+00');
                        insert into \(schema.quoted).t (id, name, qty) values (1, 'a', 1), (2, 'b', 2), (3, 'c', 3);
                        """)
                    let service = DataService(cluster: cluster)
                    let shape = try await open(service, schema, "t")
                    let one = try await row(schema, 1)!

                    // An update, back to its before-image.
                    guard case .saved = await service.perform(.update(shape, seen: one, changes: [1: "changed"], request: 2)) else { Issue.record("no update"); return }
                    let update = try await newest(service, schema)
                    let prepared = await service.perform(.prepareRevert(update, request: 3))
                    guard case .revertReady(let plan, _) = prepared else { Issue.record("\(String(describing: prepared))"); return }
                    #expect(plan.sql.contains("update") && plan.sql.contains("'a'"), "\(plan.sql)")
                    let done = await service.perform(.revert(plan, request: 4))
                    guard case .reverted(let message, _) = done else { Issue.record("\(String(describing: done))"); return }
                    #expect(message.contains("reverted change #\(update.id)"))
                    #expect(try await row(schema, 1) == one)
                    let record = try await newest(service, schema)
                    #expect(record.reverts == update.id && record.before == ["name": "changed"] && record.after == ["name": "a"])

                    // A delete, by inserting the row again — every value, the timestamp too.
                    let three = try await row(schema, 3)!
                    guard case .saved = await service.perform(.delete(shape, seen: three, request: 5)) else { Issue.record("no delete"); return }
                    let delete = try await newest(service, schema)
                    guard case .reverted = await revert(service, delete) else { Issue.record("delete not reverted"); return }
                    #expect(try await row(schema, 3) == three)
                    #expect(try await newest(service, schema).action == .insert)

                    // An insert, by deleting the row.
                    guard case .saved = await service.perform(.insert(shape, values: [0: "9", 1: "new"], request: 6)) else { Issue.record("no insert"); return }
                    let insert = try await newest(service, schema)
                    guard case .reverted = await revert(service, insert) else { Issue.record("insert not reverted"); return }
                    #expect(try await row(schema, 9) == nil)

                    // A change made at the SQL prompt, with a timestamp: values compare as the console records them.
                    guard case .promptHeld = await service.perform(.runStatement(
                        PromptStatement("update \(schema.quoted).t set at = at + interval '1 day', qty = 20 where id = 2"), pageSize: 10, request: 7))
                    else { Issue.record("not held"); return }
                    guard case .promptDone = await service.perform(.promptCommand(.commit, request: 8)) else { Issue.record("not committed"); return }
                    let prompted = try await newest(service, schema)
                    #expect(prompted.statement != nil)
                    let reverted = await revert(service, prompted)
                    guard case .reverted = reverted else { Issue.record("prompt change not reverted: \(String(describing: reverted))"); return }
                    #expect(try await row(schema, 2) == ["2", "b", "2", try await row(schema, 1)![3]])
                }
            }
        }

        @Test func aRowThatMovedOnIsShownInThreeVersionsAndNothingIsWritten() async throws {
            try await TestCluster.shared().withSchema { schema in
                try await withRouted { cluster, _ in
                    _ = try await schema.primary.execute(script: """
                        create table \(schema.quoted).t (id int primary key, name text, qty int, at timestamptz);
                        insert into \(schema.quoted).t values (1, 'a', 1, null);
                        """)
                    let service = DataService(cluster: cluster)
                    let shape = try await open(service, schema, "t")
                    let one = try await row(schema, 1)!
                    guard case .saved = await service.perform(.update(shape, seen: one, changes: [1: "mine"], request: 2)) else { Issue.record("no update"); return }
                    let change = try await newest(service, schema)
                    // Someone else changes it afterwards.
                    _ = try await schema.primary.query("update \(schema.quoted).t set name = 'theirs' where id = 1")
                    let prepared = await service.perform(.prepareRevert(change, request: 3))
                    guard case .revertConflict(let conflict, _) = prepared else { Issue.record("\(String(describing: prepared))"); return }
                    #expect(conflict.versions == [.init(column: "name", before: "a", after: "mine", now: "theirs")])
                    #expect(conflict.reason.contains("name changed since change #\(change.id)"))
                    #expect(try await row(schema, 1)?[1] == "theirs")

                    // A plan confirmed after the row moved elsewhere: nothing written, asked again against the row now.
                    _ = try await schema.primary.query("update \(schema.quoted).t set name = 'mine' where id = 1")
                    guard case .revertReady(let plan, _) = await service.perform(.prepareRevert(change, request: 4)) else { Issue.record("no plan"); return }
                    _ = try await schema.primary.query("update \(schema.quoted).t set qty = 99 where id = 1")
                    let late = await service.perform(.revert(plan, request: 5))
                    guard case .revertReady(let again, _) = late, again.note != nil else { Issue.record("written over a newer row: \(String(describing: late))"); return }
                    #expect(try await row(schema, 1) == ["1", "mine", "99", nil])
                    // …and when the moved column is the change's own: the conflict, nothing written.
                    _ = try await schema.primary.query("update \(schema.quoted).t set name = 'other' where id = 1")
                    let refused = await service.perform(.revert(again, request: 6))
                    guard case .revertConflict = refused else { Issue.record("\(String(describing: refused))"); return }
                    #expect(try await row(schema, 1)?[1] == "other")
                }
            }
        }
    }
}
