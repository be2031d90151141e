import Foundation

/// Typed editing helpers: pick lists from CHECK constraints, JSON checked, pretty-printed
/// and minified without reordering anything. Pure.
public enum TypedValues {
    /// The values a `CHECK (col IN (…))` — as PostgreSQL prints it, `CHECK ((col = ANY
    /// (ARRAY['a'::text, 'b'::text])))` — allows for `column`; nil when the constraint is
    /// of another shape or about another column.
    public static func checkChoices(_ definition: String, column: String) -> [String]? {
        let quoted = "\"" + column.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        let names = [column, quoted]
        guard let arrayStart = definition.range(of: "ARRAY[") else { return nil }
        let head = definition[..<arrayStart.lowerBound]
        // `(col)::text = ANY` or `col = ANY`, with the column alone on the left.
        guard head.hasSuffix("= ANY (") || head.hasSuffix("= ANY ((") else { return nil }
        var left = head.dropLast(head.hasSuffix("= ANY ((") ? "= ANY ((".count : "= ANY (".count).trimmingCharacters(in: .whitespaces)
        left = left.trimmingCharacters(in: CharacterSet(charactersIn: "("))
        if let cast = left.range(of: ")::") { left = String(left[..<cast.lowerBound]) }
        if let cast = left.range(of: "::") { left = String(left[..<cast.lowerBound]) }
        left = left.trimmingCharacters(in: CharacterSet(charactersIn: "() "))
        guard left.hasPrefix("CHECK") || names.contains(left) else { return nil }
        if left.hasPrefix("CHECK") {
            let rest = left.dropFirst("CHECK".count).trimmingCharacters(in: CharacterSet(charactersIn: "() "))
            guard names.contains(rest) else { return nil }
        }
        // The literals: '…' with '' for a quote, each followed by an optional cast.
        var values: [String] = []
        var index = arrayStart.upperBound
        let text = definition
        while index < text.endIndex {
            let character = text[index]
            if character == "]" { return values.isEmpty ? nil : values }
            if character == "'" {
                var value = ""
                var cursor = text.index(after: index)
                while cursor < text.endIndex {
                    if text[cursor] == "'" {
                        let next = text.index(after: cursor)
                        if next < text.endIndex && text[next] == "'" {
                            value.append("'")
                            cursor = text.index(after: next)
                            continue
                        }
                        break
                    }
                    value.append(text[cursor])
                    cursor = text.index(after: cursor)
                }
                guard cursor < text.endIndex else { return nil }
                values.append(value)
                index = text.index(after: cursor)
                continue
            }
            index = text.index(after: index)
        }
        return nil
    }

    public static func isJSON(_ type: String) -> Bool { type == "json" || type == "jsonb" }

    /// Why `text` is not JSON (nil when it is).
    /// Strict (RFC 8259, as the server reads it): `{"a":1,}` is refused here, not by the server.
    public static func jsonProblem(_ text: String) -> String? {
        StrictJSON.problem(text)
    }

    /// JSON without the whitespace between tokens (strings untouched, order kept).
    public static func minifiedJSON(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        var inString = false
        var escaped = false
        for character in text {
            if inString {
                out.append(character)
                if escaped { escaped = false } else if character == "\\" { escaped = true } else if character == "\"" { inString = false }
            } else if character == "\"" {
                inString = true
                out.append(character)
            } else if !character.isWhitespace {
                out.append(character)
            }
        }
        return out
    }

    /// JSON laid out one member per line, two spaces per level (order kept).
    public static func prettyJSON(_ text: String) -> String {
        let compact = minifiedJSON(text)
        var out = ""
        var depth = 0
        var inString = false
        var escaped = false
        var characters = Array(compact)
        var index = 0
        func newline() { out.append("\n" + String(repeating: "  ", count: depth)) }
        while index < characters.count {
            let character = characters[index]
            if inString {
                out.append(character)
                if escaped { escaped = false } else if character == "\\" { escaped = true } else if character == "\"" { inString = false }
            } else {
                switch character {
                case "\"":
                    inString = true
                    out.append(character)
                case "{", "[":
                    let next = index + 1 < characters.count ? characters[index + 1] : " "
                    if next == "}" || next == "]" {
                        out.append(character)
                        out.append(next)
                        index += 1
                    } else {
                        out.append(character)
                        depth += 1
                        newline()
                    }
                case "}", "]":
                    depth = max(depth - 1, 0)
                    newline()
                    out.append(character)
                case ",":
                    out.append(character)
                    newline()
                case ":":
                    out.append(": ")
                default:
                    out.append(character)
                }
            }
            index += 1
        }
        characters = []
        return out
    }
}
