import PostgresClient

/// One SQL statement with its parameters kept apart.
public struct Statement: Sendable, Equatable {
    public var sql: String
    public var parameters: [String?]

    public var bindings: [any PostgresEncodable] { parameters.map { $0 } }
}

/// Builds the console's SQL. Identifiers come quoted by libpq (in ``TableShape``); every
/// value the user typed or saw is a parameter. Pure, so it is unit-tested directly.
public enum SQLBuilder {
    /// Characters of each value the page query fetches; longer values come cut, with
    /// their size and digest (``LongValue``).
    public static let shownCharacters = 2000

    /// The sort keys: the chosen column (if any), then the primary key (or ctid for a
    /// table without one, read-only), so every row has one place in the order.
    static func sortKeys(_ shape: TableShape, sort: Sort?) -> [(expression: String, descending: Bool, nullable: Bool)] {
        let key = shape.keyIndexes
        let sortsByWholeKey = key.count == 1 && sort?.column == key[0]
        var keys: [(expression: String, descending: Bool, nullable: Bool)] = []
        if let sort, !sortsByWholeKey {
            let column = shape.columns[sort.column]
            keys.append(("r.\(column.quoted)", sort.descending, !column.notNull))
        }
        if key.isEmpty {
            // Views have no ctid: the whole row's text orders them.
            keys.append((shape.table.kind == .view ? "r::text" : "r.ctid", false, false))
        } else {
            for index in key {
                keys.append(("r.\(shape.columns[index].quoted)", sortsByWholeKey ? sort!.descending : false, false))
            }
        }
        return keys
    }

    /// The select list: every column as text, then the sort keys as text.
    public static func page(
        _ shape: TableShape, position: PagePosition, sort: Sort?, filter: Filter?, scope: ReferenceScope? = nil, limit: Int
    ) -> Statement {
        let keys = sortKeys(shape, sort: sort)
        var parameters: [String?] = []
        var conditions: [String] = []
        if let filter { conditions += filterConditions(shape, filter, &parameters) }
        if let scope { conditions += scopeConditions(shape, scope, &parameters) }
        var backwards = false
        switch position {
        case .first: break
        case .last: backwards = true
        case .after(let anchor): conditions.append(keysetCondition(keys, anchor, after: true, inclusive: false, &parameters))
        case .before(let anchor):
            backwards = true
            conditions.append(keysetCondition(keys, anchor, after: false, inclusive: false, &parameters))
        case .from(let anchor): conditions.append(keysetCondition(keys, anchor, after: true, inclusive: true, &parameters))
        }
        // The table is aliased `r` so ORDER BY and WHERE name its columns, never the
        // text output columns of the same names.
        // Each value cut to what can be shown, then one summary of the cut ones, then the
        // sort keys: a megabyte-long value costs the network and the console no more than
        // a short one.
        let shown = shownCharacters
        let summary = shape.columns.isEmpty ? "'{}'::text" : "array[" + shape.columns.map { column in
            "case when char_length(r.\(column.quoted)::text) > \(shown) "
                + "then octet_length(r.\(column.quoted)::text)::text || ':' || md5(r.\(column.quoted)::text) end"
        }.joined(separator: ", ") + "]::text"
        let columns = shape.columns.map { "left(r.\($0.quoted)::text, \(shown))" } + [summary] + keys.map { "(\($0.expression))::text" }
        let order = keys.map { key -> String in
            let descending = key.descending != backwards
            return "\(key.expression) \(descending ? "desc" : "asc") nulls \(backwards ? "first" : "last")"
        }
        var sql = "select \(columns.joined(separator: ", ")) from \(shape.quotedName) as r"
        if !conditions.isEmpty { sql += " where " + conditions.joined(separator: " and ") }
        sql += " order by " + order.joined(separator: ", ") + " limit \(max(limit, 1))"
        return Statement(sql: sql, parameters: parameters)
    }

    /// Rows counted for a filter at most: past it the title says "≥ 100k match".
    public static let countCap = 100_000

    /// How many rows `filter` (and `scope`) match, counting at most `cap` + 1: a filter
    /// on a huge table scans a bounded number of rows.
    public static func count(_ shape: TableShape, filter: Filter, scope: ReferenceScope?, cap: Int) -> Statement {
        var parameters: [String?] = []
        var conditions = filterConditions(shape, filter, &parameters)
        if let scope { conditions += scopeConditions(shape, scope, &parameters) }
        var inner = "select 1 from \(shape.quotedName) as r"
        if !conditions.isEmpty { inner += " where " + conditions.joined(separator: " and ") }
        return Statement(sql: "select count(*) from (\(inner) limit \(cap + 1)) as matching", parameters: parameters)
    }

    /// The export of what the grid shows — its filter, reference scope and sort, whole
    /// values — as `COPY (…) TO STDOUT`: CSV (RFC 4180, a header, NULL as `nullText`) or
    /// JSON Lines (one `row_to_json` object per line, byte for byte). COPY takes no
    /// parameters, so the filter's values travel as session settings (`set_config` with
    /// parameters) that the query reads with `current_setting`; nothing a user typed
    /// becomes SQL text, except `nullText`, quoted as a literal by `literal`.
    public static func export(
        _ shape: TableShape, sort: Sort?, filter: Filter?, scope: ReferenceScope?, format: ExportFormat, null: String
    ) -> (sql: String, settings: [(String, String)]) {
        var parameters: [String?] = []
        var conditions: [String] = []
        // Each value is a session setting, read back as text and cast to the type the
        // comparison needs: built in place, never by rewriting `$n` in finished SQL (a
        // quoted column name may contain `$1`).
        let setting: Placeholder = { number, type in
            "current_setting('switchyard.export_\(number)')" + (type.map { "::\($0)" } ?? "")
        }
        if let filter { conditions += filterConditions(shape, filter, &parameters, placeholder: setting) }
        if let scope {
            conditions += zip(scope.columns, scope.values).map { column, value in
                parameters.append(value)
                return shape.columns.indices.contains(column)
                    ? "r.\(shape.columns[column].quoted)::text = \(setting(parameters.count, nil))" : "false"
            }
        }
        let whereClause = conditions.joined(separator: " and ")
        let order = sortKeys(shape, sort: sort).map { "\($0.expression) \($0.descending ? "desc" : "asc") nulls last" }.joined(separator: ", ")
        let columns = shape.columns.map { "r.\($0.quoted)" }.joined(separator: ", ")
        var select = "select \(columns.isEmpty ? "" : columns) from \(shape.quotedName) as r"
        if !whereClause.isEmpty { select += " where " + whereClause }
        if !order.isEmpty { select += " order by " + order }
        let sql: String
        switch format {
        case .csv:
            sql = "copy (\(select)) to stdout with (format csv, header true, null \(literal(null)))"
        case .jsonLines:
            // CSV with a quote and delimiter JSON never contains raw: each object as is.
            sql = "copy (select row_to_json(x) from (\(select)) as x) to stdout with (format csv, quote e'\\x01', delimiter e'\\x02')"
        }
        let settings = parameters.enumerated().map { ("switchyard.export_\($0.offset + 1)", $0.element ?? "") }
        return (sql, settings)
    }

    /// `text` as a string constant whatever `standard_conforming_strings` says (COPY's
    /// options take no parameters). A NUL, which no PostgreSQL text can hold, is dropped.
    static func literal(_ text: String) -> String {
        var escaped = ""
        for scalar in text.unicodeScalars where scalar != "\0" {
            switch scalar {
            case "'": escaped += "''"
            case "\\": escaped += "\\\\"
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return "E'" + escaped + "'"
    }

    /// `col = $n` for each column of a reference scope (a NULL never matches: no reference).
    static func scopeConditions(_ shape: TableShape, _ scope: ReferenceScope, _ parameters: inout [String?]) -> [String] {
        zip(scope.columns, scope.values).map { column, value in
            guard shape.columns.indices.contains(column) else { return "false" }
            parameters.append(value)
            return "r.\(shape.columns[column].quoted) = $\(parameters.count)"
        }
    }

    /// Rows strictly after (or before) `anchor` in the order of `keys`, NULLs last.
    static func keysetCondition(
        _ keys: [(expression: String, descending: Bool, nullable: Bool)], _ anchor: [String?], after: Bool, inclusive: Bool,
        _ parameters: inout [String?]
    ) -> String {
        var alternatives: [String] = []
        var equalSoFar: [String] = []
        for (index, key) in keys.enumerated() {
            let value = index < anchor.count ? anchor[index] : nil
            parameters.append(value)
            let placeholder = "$\(parameters.count)"
            let column = "(\(key.expression))"
            // Compare as the column's type: the parameter is cast by the server from text.
            let greater = key.descending ? "<" : ">"
            let less = key.descending ? ">" : "<"
            var beyond: String?
            if after {
                if value == nil {
                    beyond = nil  // nothing sorts after NULL in this key (NULLs last)
                } else {
                    beyond = "(\(column) \(greater) \(castTo(column, placeholder)) or \(column) is null)"
                }
            } else {
                if value == nil {
                    beyond = "\(column) is not null"
                } else {
                    beyond = "\(column) \(less) \(castTo(column, placeholder))"
                }
            }
            if let beyond { alternatives.append((equalSoFar + [beyond]).joined(separator: " and ")) }
            // Ties compare in the column's type too (citext 'a' = 'A', numeric 1.0 = 1.00):
            // compared as text, such rows would fall between two pages.
            equalSoFar.append("\(column) is not distinct from \(castTo(column, placeholder))")
        }
        if inclusive { alternatives.append(equalSoFar.joined(separator: " and ")) }
        return alternatives.isEmpty ? "false" : "(" + alternatives.map { "(\($0))" }.joined(separator: " or ") + ")"
    }

    /// `$n` typed like `column`, so comparisons use the column's ordering.
    static func castTo(_ column: String, _ placeholder: String) -> String {
        column == "(r.ctid)" ? "\(placeholder)::tid" : "\(placeholder)"
    }

    /// How a value's place in the SQL is written: its number, and the type it must be read
    /// as when the place itself carries no type (an export's session setting); nil: text.
    typealias Placeholder = @Sendable (_ number: Int, _ type: String?) -> String

    /// A parameter the server types from its context: compared with a column, it is read
    /// as the column's type, so the comparison is typed and an index on the column serves it.
    static let parameter: Placeholder = { number, _ in "$\(number)" }

    /// One SQL condition per filter condition; every value a parameter.
    static func filterConditions(
        _ shape: TableShape, _ filter: Filter, _ parameters: inout [String?], placeholder: Placeholder = parameter
    ) -> [String] {
        filter.conditions.map { condition in
            guard shape.columns.indices.contains(condition.column) else { return "false" }
            let info = shape.columns[condition.column]
            let column = "r.\(info.quoted)"
            let type = FilterValidation.baseType(info.type)
            func value(_ text: String, as type: String?) -> String {
                parameters.append(text)
                return placeholder(parameters.count, type)
            }
            switch condition.op {
            case .isNull: return "\(column) is null"
            case .isNotNull: return "\(column) is not null"
            case .equals: return "\(column) = \(value(condition.value, as: type))"
            case .notEquals: return "\(column) <> \(value(condition.value, as: type))"
            case .less: return "\(column) < \(value(condition.value, as: type))"
            case .lessOrEqual: return "\(column) <= \(value(condition.value, as: type))"
            case .greater: return "\(column) > \(value(condition.value, as: type))"
            case .greaterOrEqual: return "\(column) >= \(value(condition.value, as: type))"
            case .oneOf:
                // One array parameter, read as an array of the column's type.
                return "\(column) = any(\(value(arrayLiteral(condition.listValues), as: type + "[]")))"
            case .startsWith:
                return "\(column)::text like \(value(likeEscaped(condition.value) + "%", as: nil))"
            case .contains:
                return "\(column)::text ilike \(value("%" + likeEscaped(condition.value) + "%", as: nil))"
            }
        }
    }

    /// `50%_off\` as a LIKE pattern that matches it literally.
    static func likeEscaped(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(of: "_", with: "\\_")
    }

    /// `{"a","b \"c\""}`: PostgreSQL's array input, every element quoted.
    static func arrayLiteral(_ values: [String]) -> String { PostgresTextCoding.arrayLiteral(values) }

    /// `WHERE` naming the primary key and every value the user saw, so a row changed in
    /// the meantime matches nothing (no lost update).
    /// Values shown cut (`long`) are compared by their digest.
    static func rowMatch(_ shape: TableShape, seen: [String?], long: [Int: LongValue] = [:], _ parameters: inout [String?]) -> String {
        let keys = shape.keyIndexes
        let order = keys + shape.columns.indices.filter { !keys.contains($0) }
        return order.map { index -> String in
            let column = shape.columns[index].quoted
            if let value = long[index] {
                parameters.append(value.md5)
                return "md5(\(column)::text) = $\(parameters.count)"
            }
            parameters.append(seen[index])
            return keys.contains(index) ? "\(column) = $\(parameters.count)" : "\(column)::text is not distinct from $\(parameters.count)"
        }.joined(separator: " and ")
    }

    /// Sets `changes` (column index → new text, nil for NULL) on the row the user saw.
    public static func update(_ shape: TableShape, seen: [String?], changes: [Int: String?], long: [Int: LongValue] = [:]) -> Statement {
        var parameters: [String?] = []
        let assignments = changes.keys.sorted().map { index -> String in
            parameters.append(changes[index]!)
            return "\(shape.columns[index].quoted) = $\(parameters.count)"
        }
        let match = rowMatch(shape, seen: seen, long: long, &parameters)
        let returning = shape.columns.map { "\($0.quoted)::text" }.joined(separator: ", ")
        return Statement(
            sql: "update \(shape.quotedName) set \(assignments.joined(separator: ", ")) where \(match) returning \(returning)",
            parameters: parameters)
    }

    /// Inserts the given values (column index → text or nil for NULL); columns left out
    /// take their defaults.
    public static func insert(_ shape: TableShape, values: [Int: String?]) -> Statement {
        let returning = shape.columns.map { "\($0.quoted)::text" }.joined(separator: ", ")
        guard !values.isEmpty else {
            return Statement(sql: "insert into \(shape.quotedName) default values returning \(returning)", parameters: [])
        }
        let indexes = values.keys.sorted()
        let columns = indexes.map { shape.columns[$0].quoted }.joined(separator: ", ")
        let placeholders = indexes.indices.map { "$\($0 + 1)" }.joined(separator: ", ")
        return Statement(
            sql: "insert into \(shape.quotedName) (\(columns)) values (\(placeholders)) returning \(returning)",
            parameters: indexes.map { values[$0]! })
    }

    /// Deletes the row the user saw, only if it is unchanged.
    public static func delete(_ shape: TableShape, seen: [String?], long: [Int: LongValue] = [:]) -> Statement {
        var parameters: [String?] = []
        let match = rowMatch(shape, seen: seen, long: long, &parameters)
        return Statement(sql: "delete from \(shape.quotedName) where \(match)", parameters: parameters)
    }

    /// The condition on `r` that selects the marked rows; values are parameters (appended).
    /// Rows marked one by one are matched by key through arrays typed as the key columns,
    /// so the primary key's index finds them.
    static func marked(_ shape: TableShape, _ marks: Marks, _ parameters: inout [String?]) -> String {
        var parts: [String] = []
        if !marks.keys.isEmpty {
            let keys = marks.keys.sorted { ($0.map { $0 ?? "" }).lexicographicallyPrecedes($1.map { $0 ?? "" }) }
            let columns = shape.keyIndexes.map { shape.columns[$0] }
            let arrays = columns.indices.map { position -> String in
                parameters.append(arrayLiteral(keys.map { $0.indices.contains(position) ? ($0[position] ?? "") : "" }))
                return "$\(parameters.count)::\(columns[position].type)[]"
            }
            if columns.count == 1 {
                parts.append("r.\(columns[0].quoted) = any(\(arrays[0]))")
            } else {
                let names = columns.map { "r.\($0.quoted)" }.joined(separator: ", ")
                parts.append("(\(names)) in (select * from unnest(\(arrays.joined(separator: ", "))))")
            }
        }
        if let matching = marks.matching {
            var conditions = matching.filter.map { filterConditions(shape, $0, &parameters) } ?? []
            if let scope = matching.scope { conditions += scopeConditions(shape, scope, &parameters) }
            parts.append(conditions.isEmpty ? "true" : "(" + conditions.joined(separator: " and ") + ")")
        }
        return parts.isEmpty ? "false" : parts.joined(separator: " or ")
    }

    /// Deletes the marked rows: one statement.
    public static func bulkDelete(_ shape: TableShape, _ marks: Marks) -> Statement {
        var parameters: [String?] = []
        let condition = marked(shape, marks, &parameters)
        return Statement(sql: "delete from \(shape.quotedName) as r where \(condition)", parameters: parameters)
    }

    /// Sets one column of the marked rows to `value`: one statement.
    public static func bulkSet(_ shape: TableShape, _ marks: Marks, column: Int, value: String?) -> Statement {
        var parameters: [String?] = [value]
        let condition = marked(shape, marks, &parameters)
        return Statement(sql: "update \(shape.quotedName) as r set \(shape.columns[column].quoted) = $1 where \(condition)", parameters: parameters)
    }

    /// The current row with this key, to show in a conflict.
    public static func current(_ shape: TableShape, key: [String?]) -> Statement {
        select(shape.columns.map { "\($0.quoted)::text" }.joined(separator: ", "), of: shape, key: key)
    }

    /// One whole value of the row with this key.
    public static func value(_ shape: TableShape, key: [String?], column: Int) -> Statement {
        select("\(shape.columns[column].quoted)::text", of: shape, key: key)
    }

    /// `select LIST from TABLE where KEY = …`, the key values as parameters.
    static func select(_ list: String, of shape: TableShape, key: [String?]) -> Statement {
        var parameters: [String?] = []
        let conditions = shape.keyIndexes.enumerated().map { position, index -> String in
            parameters.append(key[position])
            return "\(shape.columns[index].quoted) = $\(parameters.count)"
        }
        return Statement(
            sql: "select \(list) from \(shape.quotedName) where \(conditions.joined(separator: " and "))", parameters: parameters)
    }

    /// A short, human version of a key for messages: `id = 42`.
    public static func describeKey(_ shape: TableShape, row: [String?]) -> String {
        shape.keyIndexes.map { "\(shape.columns[$0].name) = \(row[$0] ?? "NULL")" }.joined(separator: ", ")
    }
}
