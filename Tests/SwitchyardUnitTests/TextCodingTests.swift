import Foundation
import PostgresClient
import PropertyBased
import Switchyard
import Testing

/// Codable values over the text protocol (what Fluent's binds and rows go through), and
/// what spans say of a statement.
@Suite struct TextCodingTests {
    static let element = NastyText.string.optional

    @Test func arrayLiteralsReadBackAsTheyWereWritten() async {
        await propertyCheck(count: 3000, input: Self.element.array(of: 0...8)) { elements in
            let literal = PostgresTextCoding.arrayLiteral(elements)
            #expect(PostgresTextCoding.elements(ofArrayLiteral: literal) == elements, "\(literal)")
        }
        // As PostgreSQL prints them: bare words, NULL, quotes only where needed, a lower bound.
        #expect(PostgresTextCoding.elements(ofArrayLiteral: #"{a,NULL,"NULL","b c","x\"y",""}"#) == ["a", nil, "NULL", "b c", "x\"y", ""])
        #expect(PostgresTextCoding.elements(ofArrayLiteral: "[0:1]={1,2}") == ["1", "2"])
        #expect(PostgresTextCoding.elements(ofArrayLiteral: "{}") == [])
        #expect(PostgresTextCoding.elements(ofArrayLiteral: "{{1,2},{3,4}}") == nil)
        #expect(PostgresTextCoding.elements(ofArrayLiteral: #"{"open}"#) == nil)
    }

    enum Mood: String, Codable, Equatable { case calm, hurry = "in a hurry", quiet }

    struct Address: Codable, Equatable {
        var street: String
        var since: Date
        var codes: [Int]
    }

    struct Row: Codable, Equatable {
        var name: String
        var count: Int
        var ratio: Double?
        var flag: Bool
        var tags: [String]
        var mood: Mood
        var id: UUID
        var address: Address?
    }

    static let date = Gen.int(in: -2_000_000_000_000_000...4_000_000_000_000_000).map { Date(timeIntervalSince1970: Double($0) / 1_000_000) }
    static let row = zip(
        zip(NastyText.string, Gen.int(in: Int.min...Int.max), Gen.double(in: -1e12...1e12).optional, Gen.bool),
        zip(NastyText.string.array(of: 0...5), Gen.element(of: [Mood.calm, .quiet, .hurry]).map { $0! }, date, NastyText.string.optional)
    ).map { first, second in
        let (name, count, ratio, flag) = first
        let (tags, mood, since, street) = second
        return Row(
            name: name, count: count, ratio: ratio, flag: flag, tags: tags, mood: mood, id: UUID(),
            address: street.map { Address(street: $0, since: since, codes: [count % 1000, 7]) })
    }

    /// Each field as a parameter and back, as Fluent sends a column and reads it; the
    /// whole row as JSON (jsonb) and back.
    @Test func valuesComeBackAsTheyWereSent() async throws {
        func text(_ value: any Encodable) throws -> String? {
            switch try PostgresTextCoding.binding(for: value) {
            case .text(let text): return text
            case .null: return nil
            case .binary: Issue.record("\(value) went as binary"); return nil
            }
        }
        await propertyCheck(count: 2000, input: Self.row) { row in
            do {
                #expect(try PostgresTextCoding.decode(String.self, from: text(row.name)) == row.name)
                #expect(try PostgresTextCoding.decode(Int.self, from: text(row.count)) == row.count)
                #expect(try PostgresTextCoding.decode(Double?.self, from: text(row.ratio)) == row.ratio)
                #expect(try PostgresTextCoding.decode(Bool.self, from: text(row.flag)) == row.flag)
                #expect(try PostgresTextCoding.decode([String].self, from: text(row.tags), typeOID: 1009) == row.tags)
                #expect(try PostgresTextCoding.decode(Mood.self, from: text(row.mood)) == row.mood)
                #expect(try PostgresTextCoding.decode(UUID.self, from: text(row.id)) == row.id)
                #expect(try PostgresTextCoding.decode(Address?.self, from: text(row.address), typeOID: 3802) == row.address)
                #expect(try PostgresTextCoding.decode(Row.self, from: text(row), typeOID: 3802) == row)
            } catch {
                Issue.record("\(row): \(error)")
            }
        }
        // An array of non-scalars goes as JSON; NULL only into an optional.
        #expect(try text([["a"], ["b"]]) == #"[["a"],["b"]]"#)
        // An enum's raw value is a scalar whatever it looks like: still an array literal.
        #expect(try text([Mood.hurry, .calm, nil]) == #"{"in a hurry","calm",NULL}"#)
        #expect(try PostgresTextCoding.decode([Mood?].self, from: #"{"in a hurry",calm,NULL}"#, typeOID: 1009) == [.hurry, .calm, nil])
        #expect(throws: DecodingError.self) { try PostgresTextCoding.decode(Int.self, from: nil) }
        #expect(throws: PostgresError.self) { try PostgresTextCoding.decode(Int.self, from: "12x") }
        #expect(try PostgresTextCoding.decode(Date.self, from: "2026-12-05 10:00:00.5+01") == Date(timeIntervalSince1970: 1_796_461_200.5))
    }

    @Test func spansCarryTheStatementsShapeAndNoValue() async {
        let literal = NastyText.string.map { "'" + $0.replacingOccurrences(of: "'", with: "''") + "'" }
        await propertyCheck(count: 3000, input: literal, Gen.int(in: 0...Int.max), Gen.double(in: 0...1e9)) { quoted, number, real in
            let sql = "select t1.\"we\"\"ird\", $1 from t1 where a = \(quoted) and b=\(number) or c > \(real) -- a comment\n limit 5"
            #expect(
                StatementText.withoutValues(sql) == "select t1.\"we\"\"ird\", $1 from t1 where a = ? and b=? or c > ? \n limit ?",
                "\(sql)")
        }
        #expect(StatementText.withoutValues("select $$a 'b' 1$$, $tag$x$tag$, E'it\\'s', 1.5e-3, x'ff' /* 42 /* 7 */ */") == "select ?, ?, ?, ?, ?  ")
        #expect(StatementText.operationName("  with x as (select 1) select * from x") == "WITH")
        #expect(StatementText.operationName("/* c */ UPDATE t set a = 1") == "UPDATE")
        #expect(StatementText.operationName("") == "SQL")
    }

    @Test func rawSQLIsAReadOnlyWhenAReplicaCanServeIt() {
        for sql in ["select 1", "SELECT * FROM t WHERE a = 'update'", "with x as (select 1) select * from x", "values (1)", "table t", "show work_mem"] {
            #expect(SessionStatements.isRead(sql), "\(sql)")
        }
        for sql in [
            "insert into t values (1)", "with d as (delete from t returning *) select * from d", "select * from t for update",
            "select * from t for key share", "select nextval('s')", "select * into t2 from t", "update t set a = 1",
            "select pg_advisory_lock(1)", "lock table t", "call p()", "", "begin",
        ] {
            #expect(!SessionStatements.isRead(sql), "\(sql)")
        }
    }
}
