import Foundation

/// One row as text to paste elsewhere: CSV (a header and the row, RFC 4180), a JSON object
/// (columns in table order, NULL as null), or an `INSERT` statement. Pure.
public enum RowCopy {
    public enum Format: String, Sendable, Equatable, CaseIterable {
        case csv, json, insert

        public var label: String {
            switch self {
            case .csv: return "CSV"
            case .json: return "JSON"
            case .insert: return "INSERT"
            }
        }

        var next: Format { Format.allCases[(Format.allCases.firstIndex(of: self)! + 1) % Format.allCases.count] }
    }

    public static func text(_ format: Format, shape: TableShape, row: [String?], null: String = "") -> String {
        let names = shape.columns.map(\.name)
        switch format {
        case .csv:
            func field(_ value: String) -> String {
                let needsQuotes = value.contains { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" } || value.first == " " || value.last == " "
                return needsQuotes ? "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : value
            }
            return names.map(field).joined(separator: ",") + "\r\n" + row.map { field($0 ?? null) }.joined(separator: ",") + "\r\n"
        case .json:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.withoutEscapingSlashes]
            func json(_ text: String) -> String { String(decoding: (try? encoder.encode(text)) ?? Data("\"\"".utf8), as: UTF8.self) }
            return "{" + zip(names, row).map { "\(json($0)): \($1.map(json) ?? "null")" }.joined(separator: ", ") + "}\n"
        case .insert:
            // Literals with quotes doubled (standard_conforming_strings, PostgreSQL's default
            // since 9.1: a backslash is itself); NULL as NULL.
            let values = row.map { value in value.map { "'" + $0.replacingOccurrences(of: "'", with: "''") + "'" } ?? "NULL" }
            return "insert into \(shape.quotedName) (\(shape.columns.map(\.quoted).joined(separator: ", "))) values (\(values.joined(separator: ", ")));\n"
        }
    }
}

/// `c` on a row: the format, and the file to write (empty: the terminal's clipboard).
public struct CopyPrompt: Sendable, Equatable {
    public var format: RowCopy.Format = .csv
    public var path = TextField("")
}
