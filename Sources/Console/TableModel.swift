import Foundation
import PostgresClient

/// A table as the console lists it.
public struct TableInfo: Sendable, Equatable, Hashable {
    public var schema: String
    public var name: String
    /// `pg_class.reltuples`: an estimate, -1 when never analyzed.
    public var estimatedRows: Int64
    public var kind: Kind = .table

    public enum Kind: String, Sendable, Hashable {
        case table, view, materializedView
        /// How the table list marks it.
        public var mark: String {
            switch self {
            case .table: return ""
            case .view: return "view"
            case .materializedView: return "mview"
            }
        }
    }

    public init(schema: String, name: String, estimatedRows: Int64, kind: Kind = .table) {
        self.schema = schema
        self.name = name
        self.estimatedRows = estimatedRows
        self.kind = kind
    }

    public var qualifiedName: String { "\(schema).\(name)" }
}

/// A column with what the editor needs to know.
public struct ColumnInfo: Sendable, Equatable {
    public var name: String
    /// `format_type()`, e.g. `character varying(80)`.
    public var type: String
    public var notNull: Bool
    /// The default expression, if any (`nextval(…)`, `now()`).
    public var defaultExpression: String?
    /// 1-based position in the primary key, nil when not part of it.
    public var primaryKeyPosition: Int?
    /// Quoted by libpq, ready for SQL.
    public var quoted: String
    /// The values it may take: an enum's labels, or a `CHECK (col IN (…))` list (a pick list).
    public var choices: [String]?

    public init(
        name: String, type: String, notNull: Bool, defaultExpression: String?, primaryKeyPosition: Int?, quoted: String,
        choices: [String]? = nil
    ) {
        self.name = name
        self.type = type
        self.notNull = notNull
        self.defaultExpression = defaultExpression
        self.primaryKeyPosition = primaryKeyPosition
        self.quoted = quoted
        self.choices = choices
    }

    public var isBoolean: Bool { type == "boolean" }
    public var isDateTime: Bool { type.hasPrefix("timestamp") || type == "date" || type.hasPrefix("time") || type == "interval" }
}

/// An open table: its quoted name, columns and key.
public struct TableShape: Sendable, Equatable {
    public var table: TableInfo
    /// `"schema"."table"`, quoted by libpq.
    public var quotedName: String
    public var columns: [ColumnInfo]
    /// This table's foreign keys (what `f` follows).
    public var foreignKeys: [ForeignKey] = []
    /// Why rows cannot be written though it has a key (a view PostgreSQL cannot update).
    public var readOnlyReason: String?
    /// What the console's role may not do to this table (`has_table_privilege`): the keys
    /// that would need it say so before the server refuses.
    public var missingPrivileges: Set<TablePrivilege> = []
    /// The session's `TimeZone` and `DateStyle`, for the editor of dates and times.
    public var timeZone: String?
    public var dateStyle: String?

    public init(table: TableInfo, quotedName: String, columns: [ColumnInfo], foreignKeys: [ForeignKey] = []) {
        self.table = table
        self.quotedName = quotedName
        self.columns = columns
        self.foreignKeys = foreignKeys
    }

    /// The foreign key that column `index` belongs to (the first, if several).
    public func foreignKey(at index: Int) -> ForeignKey? { foreignKeys.first { $0.columns.contains(index) } }

    /// Indexes of the primary-key columns, in key order; empty without a key.
    public var keyIndexes: [Int] {
        columns.indices.filter { columns[$0].primaryKeyPosition != nil }
            .sorted { columns[$0].primaryKeyPosition! < columns[$1].primaryKeyPosition! }
    }

    public var hasPrimaryKey: Bool { !keyIndexes.isEmpty }
}

/// A foreign key of an open table: its columns (indexes into the table's columns) and
/// the table and columns they reference, in the same order.
public struct ForeignKey: Sendable, Equatable {
    public var name: String
    public var columns: [Int]
    public var target: TableInfo
    public var targetColumns: [String]

    public init(name: String, columns: [Int], target: TableInfo, targetColumns: [String]) {
        self.name = name
        self.columns = columns
        self.target = target
        self.targetColumns = targetColumns
    }
}

/// Rows of a table that reference one row elsewhere: `columns` (indexes) equal `values`.
/// The grid of a table opened from `R` keeps it as a second filter.
public struct ReferenceScope: Sendable, Equatable {
    public var columns: [Int]
    public var values: [String?]
    /// How the title names it, e.g. `customer_id = 42`.
    public var label: String

    public init(columns: [Int], values: [String?], label: String) {
        self.columns = columns
        self.values = values
        self.label = label
    }
}

/// A table that references the current row through one of its foreign keys, and how many
/// of its rows do (nil: not counted, because no index serves the count).
public struct Referencing: Sendable, Equatable {
    public var table: TableInfo
    public var constraint: String
    /// The referencing columns, by name, and the values they must have.
    public var columns: [String]
    public var values: [String?]
    public var count: Int?
    public var uncounted: String?

    public init(table: TableInfo, constraint: String, columns: [String], values: [String?], count: Int?, uncounted: String? = nil) {
        self.table = table
        self.constraint = constraint
        self.columns = columns
        self.values = values
        self.count = count
        self.uncounted = uncounted
    }
}

/// A value the page query did not fetch whole (longer than
/// ``SQLBuilder/shownCharacters``): its size and digest, so that a save still compares it
/// exactly, and the editor fetches it whole first.
public struct LongValue: Sendable, Equatable {
    public var bytes: Int
    public var md5: String

    public init(bytes: Int, md5: String) {
        self.bytes = bytes
        self.md5 = md5
    }

    /// Parses the page query's summary column, a text array with one element per column:
    /// `NULL`, or `bytes:md5` for a value that was cut.
    public static func parse(_ text: String?, columns: Int) -> [Int: LongValue] {
        guard let text, text.count > 2 else { return [:] }
        var result: [Int: LongValue] = [:]
        for (index, element) in text.dropFirst().dropLast().split(separator: ",", omittingEmptySubsequences: false).enumerated()
        where index < columns {
            let parts = element.split(separator: ":")
            guard parts.count == 2, let bytes = Int(parts[0]) else { continue }
            result[index] = LongValue(bytes: bytes, md5: String(parts[1]))
        }
        return result
    }
}

/// Comparison a filter applies.
/// How a filter condition compares. The comparisons and `in` compare in the column's
/// own type (the value is a parameter the server reads as that type, so an index on the
/// column serves them); `starts with` and `contains` look at the value as text.
public enum FilterOperator: String, Sendable, CaseIterable, Equatable {
    case equals = "="
    case contains = "contains"
    case startsWith = "starts with"
    case notEquals = "!="
    case less = "<"
    case lessOrEqual = "<="
    case greater = ">"
    case greaterOrEqual = ">="
    case oneOf = "in"
    case isNull = "is null"
    case isNotNull = "is not null"

    /// Whether the operator takes a value.
    public var takesValue: Bool { self != .isNull && self != .isNotNull }
    /// Whether the value is read as the column's type (and can be checked before sending).
    public var typed: Bool { takesValue && self != .startsWith && self != .contains }
}

/// One condition of a filter: a column, an operator, a value (ignored by `is null`).
public struct FilterCondition: Sendable, Equatable {
    public var column: Int
    public var op: FilterOperator
    public var value: String

    public init(column: Int, op: FilterOperator, value: String) {
        self.column = column
        self.op = op
        self.value = value
    }

    /// The values of an `in` list: `a, b, c` (parentheses optional), each trimmed.
    public var listValues: [String] {
        var text = Substring(value.trimmingCharacters(in: .whitespaces))
        if text.hasPrefix("("), text.hasSuffix(")") { text = text.dropFirst().dropLast() }
        return text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
    }
}

/// What the grid is filtered by: every condition must hold (AND).
public struct Filter: Sendable, Equatable {
    public var conditions: [FilterCondition]

    public init(conditions: [FilterCondition]) { self.conditions = conditions }

    /// A filter of one condition.
    public init(column: Int, op: FilterOperator, value: String) {
        conditions = [FilterCondition(column: column, op: op, value: value)]
    }

    /// The same filter with `condition` added (AND).
    public func and(_ condition: FilterCondition) -> Filter { Filter(conditions: conditions + [condition]) }
}

/// Checks a filter value against the column's type before anything is sent: a value the
/// type cannot hold is named, with the type, and the user's text is kept.
public enum FilterValidation {
    /// Why `value` cannot be compared with a column of `type`, or nil when it can (or
    /// when only the server can tell: dates, times, and types this does not know).
    public static func problem(_ condition: FilterCondition, type: String) -> String? {
        guard condition.op.typed else { return nil }
        let values = condition.op == .oneOf ? condition.listValues : [condition.value]
        if condition.op == .oneOf, values.contains(where: \.isEmpty) {
            return "a list for in is values separated by commas: 1, 2, 3"
        }
        for value in values {
            if let problem = problem(value, type: type) { return problem }
        }
        return nil
    }

    static func problem(_ value: String, type: String) -> String? {
        let base = baseType(type)
        let text = value.trimmingCharacters(in: .whitespaces)
        func not(_ what: String) -> String { "\"\(value.prefix(40))\" is not \(what) (\(type)): nothing was sent" }
        switch base {
        case "smallint": return Int16(text) == nil ? not("a whole number from -32768 to 32767") : nil
        case "integer": return Int32(text) == nil ? not("a whole number from -2147483648 to 2147483647") : nil
        case "bigint": return Int64(text) == nil ? not("a whole number that fits in 64 bits") : nil
        case "numeric", "real", "double precision":
            let special = ["nan", "infinity", "-infinity", "+infinity", "inf", "-inf", "+inf"]
            return isDecimal(text) || special.contains(text.lowercased()) ? nil : not("a number")
        case "boolean":
            let accepted = ["t", "f", "true", "false", "y", "n", "yes", "no", "on", "off", "1", "0"]
            return accepted.contains(text.lowercased()) ? nil : not("true or false")
        case "uuid":
            return UUID(uuidString: text) == nil && UUID(uuidString: text.replacingOccurrences(of: "{", with: "").replacingOccurrences(of: "}", with: "")) == nil
                ? not("a UUID") : nil
        default: return nil
        }
    }

    /// `numeric(10,2)` → `numeric`, `character varying(80)` → `character varying`,
    /// `timestamp(3) with time zone` → `timestamp with time zone`: the type without its
    /// modifier (a cast to `varchar(80)` would cut a longer value and match wrongly).
    public static func baseType(_ type: String) -> String {
        var result = ""
        var depth = 0
        for character in type {
            if character == "(" { depth += 1; continue }
            if character == ")" { depth = max(depth - 1, 0); continue }
            if depth == 0 { result.append(character) }
        }
        let base = result.split(separator: " ").joined(separator: " ")
        // Without its length, `character` is character(1) and `bit` is bit(1): a cast to
        // either would cut the value. Their unbounded forms compare the same.
        switch base {
        case "character": return "bpchar"
        case "character[]": return "bpchar[]"
        case "bit": return "bit varying"
        case "bit[]": return "bit varying[]"
        default: return base
        }
    }

    /// `-12`, `3.50`, `.5`, `1e3`: the forms `numeric` reads.
    static func isDecimal(_ text: String) -> Bool {
        var body = Substring(text)
        if body.first == "-" || body.first == "+" { body = body.dropFirst() }
        var mantissa = body
        if let e = body.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            mantissa = body[..<e]
            var exponent = body[body.index(after: e)...]
            if exponent.first == "-" || exponent.first == "+" { exponent = exponent.dropFirst() }
            guard !exponent.isEmpty, exponent.allSatisfy(\.isASCII), exponent.allSatisfy(\.isNumber) else { return false }
        }
        let parts = mantissa.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard !mantissa.isEmpty, parts.count <= 2, parts.contains(where: { !$0.isEmpty }) else { return false }
        return parts.allSatisfy { $0.allSatisfy { $0.isASCII && $0.isNumber } }
    }
}

public struct Sort: Sendable, Equatable {
    public var column: Int
    public var descending: Bool

    public init(column: Int, descending: Bool) {
        self.column = column
        self.descending = descending
    }
}

/// Which page to fetch, relative to the rows on screen.
public enum PagePosition: Sendable, Equatable {
    case first
    case last
    /// The page after the row with these sort-key values.
    case after([String?])
    /// The page before the row with these sort-key values.
    case before([String?])
    /// The page starting at this row (inclusive): a refresh.
    case from([String?])
}

/// What an export writes.
public enum ExportFormat: String, Sendable, Equatable, CaseIterable {
    case csv
    case jsonLines = "jsonl"

    public var label: String { self == .csv ? "CSV" : "JSON Lines" }
}

/// A table privilege the console's writes need.
public enum TablePrivilege: String, Sendable, Hashable, CaseIterable {
    case update, insert, delete
}
