@testable import Console
import Testing

@Suite struct SQLBuilderTests {
    let shape = ConsoleState.sample(width: 100, height: 30).grid!.shape

    @Test func firstAndLastPagesOrderByTheKey() {
        let first = SQLBuilder.page(shape, position: .first, sort: nil, filter: nil, limit: 20)
        #expect(first.sql.hasSuffix("from \"demo\".\"customers\" as r order by r.\"id\" asc nulls last limit 20"))
        #expect(first.parameters.isEmpty)
        let last = SQLBuilder.page(shape, position: .last, sort: nil, filter: nil, limit: 20)
        #expect(last.sql.hasSuffix("order by r.\"id\" desc nulls first limit 20"))
        #expect(!first.sql.lowercased().contains("offset"))
    }

    @Test func keysetAfterAndBeforeUseParameters() {
        let after = SQLBuilder.page(shape, position: .after(["40"]), sort: nil, filter: nil, limit: 20)
        #expect(after.sql.contains("where ((((r.\"id\") > $1 or (r.\"id\") is null)))"))
        #expect(after.parameters == ["40"])
        let before = SQLBuilder.page(shape, position: .before(["1"]), sort: nil, filter: nil, limit: 20)
        #expect(before.sql.contains("(r.\"id\") < $1"))
        #expect(before.sql.contains("order by r.\"id\" desc"))
    }

    @Test func sortingByANullableColumnKeepsEveryRowReachable() {
        let sort = Sort(column: 2, descending: false)
        let after = SQLBuilder.page(shape, position: .after(["b@x", "7"]), sort: sort, filter: nil, limit: 10)
        #expect(after.sql.contains("order by r.\"email\" asc nulls last, r.\"id\" asc nulls last"))
        #expect(after.parameters == ["b@x", "7"])
        // Anchor in the NULL group: only later keys within NULLs.
        let inNulls = SQLBuilder.page(shape, position: .after([nil, "7"]), sort: sort, filter: nil, limit: 10)
        // Ties compare in the column's type, not as text.
        #expect(inNulls.sql.contains("(r.\"email\") is not distinct from $1 and ((r.\"id\") > $2"))
    }

    @Test func updateAndDeleteMatchKeyAndSeenValues() {
        let seen: [String?] = ["3", "Zoë", nil, "JP", "false", ""]
        let update = SQLBuilder.update(shape, seen: seen, changes: [1: "Ada"])
        #expect(update.sql.hasPrefix("update \"demo\".\"customers\" set \"name\" = $1 where \"id\" = $2 and \"name\"::text is not distinct from $3"))
        #expect(update.parameters == ["Ada", "3", "Zoë", nil, "JP", "false", ""])
        let delete = SQLBuilder.delete(shape, seen: seen)
        #expect(delete.sql.hasPrefix("delete from \"demo\".\"customers\" where \"id\" = $1"))
        #expect(delete.parameters.count == 6)
    }

    @Test func insertLeavesUntouchedColumnsToDefaults() {
        let insert = SQLBuilder.insert(shape, values: [1: "Ada", 2: nil])
        #expect(insert.sql.hasPrefix("insert into \"demo\".\"customers\" (\"name\", \"email\") values ($1, $2) returning"))
        #expect(insert.parameters == ["Ada", nil])
        #expect(SQLBuilder.insert(shape, values: [:]).sql.hasPrefix("insert into \"demo\".\"customers\" default values"))
    }

    @Test func filtersNeverInlineValues() {
        let contains = SQLBuilder.page(shape, position: .first, sort: nil, filter: Filter(column: 1, op: .contains, value: "50%_off\\"), limit: 5)
        #expect(contains.sql.contains("r.\"name\"::text ilike $1"))
        #expect(contains.parameters == ["%50\\%\\_off\\\\%"])
        let isNull = SQLBuilder.page(shape, position: .first, sort: nil, filter: Filter(column: 2, op: .isNull, value: "ignored"), limit: 5)
        #expect(isNull.sql.contains("r.\"email\" is null"))
        #expect(isNull.parameters.isEmpty)
    }

    @Test func valuesAreFetchedCutAndCutValuesAreComparedByDigest() {
        let page = SQLBuilder.page(shape, position: .first, sort: nil, filter: nil, limit: 20)
        #expect(page.sql.hasPrefix("select left(r.\"id\"::text, \(SQLBuilder.shownCharacters)), left(r.\"name\"::text,"))
        #expect(page.sql.contains("md5(r.\"notes\"::text)"))
        let seen: [String?] = ["3", "Zoë", nil, "JP", "false", "xxxx"]
        let long = [5: LongValue(bytes: 1_000_000, md5: "0123abcd")]
        let update = SQLBuilder.update(shape, seen: seen, changes: [1: "Ada"], long: long)
        #expect(update.sql.contains("md5(\"notes\"::text) = $7"))
        #expect(update.parameters.last == "0123abcd", "the cut text itself is never compared")
        #expect(!update.parameters.contains("xxxx"))
        #expect(SQLBuilder.delete(shape, seen: seen, long: long).sql.contains("md5(\"notes\"::text) ="))
        #expect(LongValue.parse("{NULL,1000000:0123abcd,2001:ff}", columns: 3)
                == [1: LongValue(bytes: 1_000_000, md5: "0123abcd"), 2: LongValue(bytes: 2001, md5: "ff")])
        #expect(LongValue.parse("{}", columns: 0).isEmpty)
    }
}
