/// One column of a result: its name and PostgreSQL type OID.
public struct PostgresColumn: Sendable, Equatable {
    public var name: String
    public var typeOID: UInt32
}

/// The complete result of one statement, copied out of libpq.
///
/// Values are kept in PostgreSQL's text output format and decoded on access, so a
/// `NULL` (nil) is always distinct from an empty string.
public struct PostgresResult: Sendable {
    public let columns: [PostgresColumn]
    /// Row-major: `values[row * columns.count + column]`.
    let values: [String?]
    /// The command tag, e.g. `INSERT 0 1` or `SELECT 3`.
    public let commandTag: String
    /// Rows affected by INSERT/UPDATE/DELETE/…, or returned by SELECT.
    public let affectedRows: Int

    init(columns: [PostgresColumn], values: [String?], commandTag: String, affectedRows: Int) {
        self.columns = columns
        self.values = values
        self.commandTag = commandTag
        self.affectedRows = affectedRows
    }

    public var rowCount: Int { columns.isEmpty ? 0 : values.count / columns.count }

    public var rows: [PostgresRow] { (0..<rowCount).map { PostgresRow(result: self, index: $0) } }

    public var first: PostgresRow? { rowCount > 0 ? PostgresRow(result: self, index: 0) : nil }

    /// The raw text of the value at `row`, `column`; nil is SQL NULL.
    public func raw(row: Int, column: Int) -> String? { values[row * columns.count + column] }

    /// Index of the first column called `name`.
    public func columnIndex(_ name: String) -> Int? { columns.firstIndex { $0.name == name } }

    /// The value of the first column of the first row, decoded; nil when there is no row
    /// or the value is NULL.
    public func scalar<T: PostgresDecodable>(_ type: T.Type = T.self) throws -> T? {
        guard let row = first, !columns.isEmpty else { return nil }
        return try row.decode(0, as: T?.self)
    }
}

/// One row of a ``PostgresResult``.
public struct PostgresRow: Sendable {
    public let result: PostgresResult
    public let index: Int

    public var columns: [PostgresColumn] { result.columns }

    /// The raw text of a value; nil is SQL NULL.
    public func raw(_ column: Int) -> String? {
        result.values[index * result.columns.count + column]
    }

    public func isNull(_ column: Int) -> Bool { raw(column) == nil }

    /// Decodes a non-NULL value; a NULL throws a decoding error.
    public func decode<T: PostgresDecodable>(_ column: Int, as type: T.Type = T.self) throws -> T {
        guard column >= 0, column < result.columns.count else {
            throw PostgresError(kind: .decoding, message: "no column \(column) (result has \(result.columns.count))")
        }
        guard let text = raw(column) else {
            throw PostgresError(kind: .decoding, message: "column \"\(result.columns[column].name)\" is NULL; decode as \(T.self)? instead")
        }
        return try T(postgresText: text, typeOID: result.columns[column].typeOID)
    }

    /// Decodes a value that may be NULL.
    public func decode<T: PostgresDecodable>(_ column: Int, as type: T?.Type) throws -> T? {
        guard column >= 0, column < result.columns.count else {
            throw PostgresError(kind: .decoding, message: "no column \(column) (result has \(result.columns.count))")
        }
        guard let text = raw(column) else { return nil }
        return try T(postgresText: text, typeOID: result.columns[column].typeOID)
    }

    public func decode<T: PostgresDecodable>(_ name: String, as type: T.Type = T.self) throws -> T {
        try decode(try columnIndex(name), as: type)
    }

    public func decode<T: PostgresDecodable>(_ name: String, as type: T?.Type) throws -> T? {
        try decode(try columnIndex(name), as: type)
    }

    private func columnIndex(_ name: String) throws -> Int {
        guard let index = result.columnIndex(name) else {
            throw PostgresError(kind: .decoding, message: "no column named \"\(name)\"")
        }
        return index
    }
}
