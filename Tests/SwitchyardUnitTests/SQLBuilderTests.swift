@testable import Console
import PropertyBased
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

    @Test func theExportsNullStringIsOneEscapedConstantWhateverItHolds() async {
        await propertyCheck(count: 2000, input: NastyText.string) { text in
            let literal = SQLBuilder.literal(text)
            #expect(literal.hasPrefix("E'") && literal.hasSuffix("'"))
            // Read back as the server reads an E'' constant: it ends only at the last quote.
            var scalars = Array(literal.unicodeScalars.dropFirst(2).dropLast())
            var read = String.UnicodeScalarView()
            while !scalars.isEmpty {
                let first = scalars.removeFirst()
                if first == "'" || first == "\\" {
                    #expect(scalars.first == first, "an unescaped \(first) in \(literal.debugDescription)")
                    scalars.removeFirst()
                }
                read.append(first)
            }
            #expect(String(read) == text.replacingOccurrences(of: "\0", with: ""))
        }
        let quoted = SQLBuilder.export(shape, sort: nil, filter: nil, scope: nil, format: .csv, null: "x') to program 'id").sql
        #expect(quoted.hasSuffix("null E'x'') to program ''id')"), "\(quoted)")
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

    @Test func comparisonsAreTypedAndUseTheColumnItselfSoAnIndexServesThem() {
        let equals = SQLBuilder.page(shape, position: .first, sort: nil, filter: Filter(column: 0, op: .equals, value: "42"), limit: 5)
        #expect(equals.sql.contains("where r.\"id\" = $1 "), "no ::text on the column: the server reads $1 as an integer")
        #expect(!equals.sql.contains("r.\"id\"::text ="))
        let several = Filter(conditions: [
            FilterCondition(column: 0, op: .greaterOrEqual, value: "10"), FilterCondition(column: 0, op: .notEquals, value: "12"),
            FilterCondition(column: 2, op: .isNotNull, value: ""), FilterCondition(column: 1, op: .startsWith, value: "A_b%"),
            FilterCondition(column: 0, op: .oneOf, value: "(1, 2,3)"),
        ])
        let page = SQLBuilder.page(shape, position: .first, sort: nil, filter: several, limit: 5)
        #expect(page.sql.contains(
            "where r.\"id\" >= $1 and r.\"id\" <> $2 and r.\"email\" is not null and r.\"name\"::text like $3 and r.\"id\" = any($4) "))
        #expect(page.parameters == ["10", "12", "A\\_b\\%%", "{\"1\",\"2\",\"3\"}"])
        let count = SQLBuilder.count(shape, filter: several, scope: nil, cap: 100)
        #expect(count.sql.hasPrefix("select count(*) from (select 1 from \"demo\".\"customers\" as r where r.\"id\" >= $1"))
        #expect(count.sql.hasSuffix("limit 101) as matching"))
    }

    @Test func exportsCastEachSettingToTheColumnsTypeWithoutItsModifier() {
        var columns = shape.columns
        columns[1].quoted = "\"price$1\""
        columns[1].type = "numeric(10,2)"
        var odd = shape
        odd.columns = columns
        let export = SQLBuilder.export(
            odd, sort: nil, filter: Filter(conditions: [FilterCondition(column: 1, op: .equals, value: "150.5"), FilterCondition(column: 0, op: .oneOf, value: "1,2")]),
            scope: nil, format: .csv, null: "")
        #expect(export.sql.contains("r.\"price$1\" = current_setting('switchyard.export_1')::numeric"), "\(export.sql)")
        #expect(export.sql.contains("r.\"id\" = any(current_setting('switchyard.export_2')::integer[])"))
        #expect(export.sql.contains("select r.\"id\", r.\"price$1\""), "a column named like a placeholder was rewritten")
        #expect(export.settings.map(\.1) == ["150.5", "{\"1\",\"2\"}"])
    }

    @Test func valuesATypeCannotHoldAreRefusedBeforeSending() {
        func problem(_ value: String, _ type: String, _ op: FilterOperator = .equals) -> String? {
            FilterValidation.problem(FilterCondition(column: 0, op: op, value: value), type: type)
        }
        #expect(problem("abc", "integer")?.contains("is not a whole number") == true)
        #expect(problem("2147483648", "integer") != nil && problem("2147483647", "integer") == nil)
        #expect(problem("150.5", "numeric(10,2)") == nil && problem("1e3", "numeric") == nil && problem("-.5", "numeric") == nil)
        #expect(problem("1.2.3", "numeric") != nil && problem("", "numeric") != nil && problem("e5", "numeric") != nil)
        #expect(problem("yes", "boolean") == nil && problem("maybe", "boolean") != nil)
        #expect(problem("6f1c0a52-4b0e-4a8e-9a51-1c2d3e4f5a6b", "uuid") == nil && problem("nope", "uuid") != nil)
        #expect(problem("1, x", "bigint", .oneOf) != nil && problem("1, 2", "bigint", .oneOf) == nil && problem("1,,2", "bigint", .oneOf) != nil)
        #expect(problem("anything", "text") == nil && problem("abc", "integer", .contains) == nil)
        #expect(FilterValidation.baseType("timestamp(3) with time zone") == "timestamp with time zone")
        #expect(FilterValidation.baseType("character varying(80)[]") == "character varying[]")
        // Bare `character` and `bit` mean a length of one: a cast there would cut 'JP' to 'J'.
        #expect(FilterValidation.baseType("character(2)") == "bpchar" && FilterValidation.baseType("bit(8)") == "bit varying")
        let country = SQLBuilder.export(
            shape, sort: nil, filter: Filter(column: 3, op: .equals, value: "JP"), scope: nil, format: .csv, null: "")
        #expect(country.sql.contains("r.\"country\" = current_setting('switchyard.export_1')::bpchar"), "\(country.sql)")
    }

    @Test func integerValidationAgreesWithSwiftsOwnParsingOnAnyText() async {
        await propertyCheck(count: 3000, input: Gen.int(in: -5_000_000_000...5_000_000_000), Gen.int(in: 0...3)) { number, shape in
            let text = [String(number), " \(number)", "\(number).0", "+\(number)"][shape]
            let accepted = FilterValidation.problem(text, type: "integer") == nil
            let expected = Int32(text.trimmingCharacters(in: .whitespaces)) != nil
            #expect(accepted == expected, "\(text)")
        }
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
