import Foundation

/// `Codable` values as statement parameters and text result values as `Decodable` ones,
/// for layers that speak Codable (Fluent, SQLKit) over this client's text protocol.
///
/// A value goes as what it is to PostgreSQL: a scalar (also one wrapped in a
/// `RawRepresentable` enum or a single-value struct) as its text, an array of scalars as
/// an array literal (`{"a","b"}`, for `text[]`, `uuid[]` …), anything with keys or
/// nesting as JSON (for `jsonb`). Dates inside JSON are written as `JSONEncoder` writes
/// them (seconds since 2001, as FluentPostgresDriver does) and read back from that, from
/// PostgreSQL timestamps or from ISO 8601.
public enum PostgresTextCoding {
    /// The parameter `value` is sent as.
    public static func binding(for value: any Encodable) throws -> PostgresBinding {
        if let value = value as? any PostgresEncodable { return value.postgresBinding }
        if let optional = value as? any OptionalEncodable {
            guard let wrapped = optional.wrappedEncodable else { return .null }
            return try binding(for: wrapped)
        }
        let scalar = ScalarEncoder()
        try value.encode(to: scalar)
        if !scalar.complex { return scalar.binding ?? .null }
        if let array = value as? any ArrayLiteralEncodable, let literal = try array.arrayLiteral() { return .text(literal) }
        let data = try jsonEncoder.encode(value)
        return .text(String(decoding: data, as: UTF8.self))
    }

    /// `text` (nil for SQL NULL) of a column of type `typeOID`, decoded as `T`.
    public static func decode<T: Decodable>(_ type: T.Type, from text: String?, typeOID: UInt32 = 0) throws -> T {
        guard let text else {
            if let optional = T.self as? any OptionalDecodable.Type { return optional.nullValue as! T }
            throw DecodingError.valueNotFound(
                T.self, DecodingError.Context(codingPath: [], debugDescription: "NULL where a \(T.self) was expected"))
        }
        return try decode(T.self, text: text, typeOID: typeOID)
    }

    static func decode<T: Decodable>(_ type: T.Type, text: String, typeOID: UInt32) throws -> T {
        if let optional = T.self as? any OptionalDecodable.Type {
            return try optional.decodeWrapped(text: text, typeOID: typeOID) as! T
        }
        if let decodable = T.self as? any PostgresDecodable.Type {
            return try decodable.init(postgresText: text, typeOID: typeOID) as! T
        }
        if !jsonTypes.contains(typeOID), text.hasPrefix("{"), let array = T.self as? any ArrayLiteralDecodable.Type {
            return try array.decode(arrayLiteral: text) as! T
        }
        if !jsonTypes.contains(typeOID) {
            do {
                return try T(from: ScalarDecoder(text: text, typeOID: typeOID))
            } catch is NeedsContainer {
                // Keys or elements: JSON (jsonb, json, or a JSON text).
            }
        }
        do {
            return try jsonDecoder.decode(T.self, from: Data(text.utf8))
        } catch {
            let shown = text.count > 40 ? String(text.prefix(40)) + "…" : text
            throw PostgresError(kind: .decoding, message: "cannot decode \"\(shown)\" (type OID \(typeOID)) as \(T.self): \(error)")
        }
    }

    /// `json` and `jsonb`.
    static let jsonTypes: Set<UInt32> = [114, 3802]

    /// Dates inside JSON as `JSONEncoder` writes them by default (seconds since 2001), as
    /// FluentPostgresDriver does: rows either driver wrote, the other reads.
    static let jsonEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    static let jsonDecoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            if let seconds = try? container.decode(Double.self) { return Date(timeIntervalSinceReferenceDate: seconds) }
            let text = try container.decode(String.self)
            guard let date = PostgresTimestamp.parse(text) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "\"\(text)\" is not a timestamp")
            }
            return date
        }
        return decoder
    }()

    // MARK: Array literals

    /// `{"a","b",NULL}`: every element quoted, `\` and `"` escaped.
    public static func arrayLiteral(_ elements: [String?]) -> String {
        var literal = "{"
        for (index, element) in elements.enumerated() {
            if index > 0 { literal += "," }
            guard let element else {
                literal += "NULL"
                continue
            }
            literal += "\""
            for scalar in element.unicodeScalars {
                if scalar == "\\" || scalar == "\"" { literal += "\\" }
                literal.unicodeScalars.append(scalar)
            }
            literal += "\""
        }
        return literal + "}"
    }

    /// The elements of a one-dimensional array literal as PostgreSQL prints it; nil for
    /// text that is not one (a nested array among them).
    public static func elements(ofArrayLiteral text: String) -> [String?]? {
        var scalars = Substring(text).unicodeScalars[...]
        // An explicit lower bound (`[0:2]={…}`) is skipped.
        if scalars.first == "[", let equals = scalars.firstIndex(of: "=") { scalars = scalars[scalars.index(after: equals)...] }
        guard scalars.first == "{", scalars.last == "}" else { return nil }
        scalars = scalars.dropFirst().dropLast()
        var elements: [String?] = []
        if scalars.isEmpty { return elements }
        var iterator = scalars.makeIterator()
        var current = String.UnicodeScalarView()
        var quoted = false, wasQuoted = false, escaped = false
        while let scalar = iterator.next() {
            if escaped {
                current.append(scalar)
                escaped = false
            } else if scalar == "\\" {
                escaped = true
            } else if quoted {
                if scalar == "\"" { quoted = false } else { current.append(scalar) }
            } else if scalar == "\"" {
                quoted = true
                wasQuoted = true
            } else if scalar == "{" {
                return nil
            } else if scalar == "," {
                let text = String(current)
                elements.append(!wasQuoted && text.uppercased() == "NULL" ? nil : wasQuoted ? text : text.trimmingCharacters(in: .whitespaces))
                current = String.UnicodeScalarView()
                wasQuoted = false
            } else {
                current.append(scalar)
            }
        }
        guard !quoted, !escaped else { return nil }
        let text = String(current)
        elements.append(!wasQuoted && text.uppercased() == "NULL" ? nil : wasQuoted ? text : text.trimmingCharacters(in: .whitespaces))
        return elements
    }
}

// MARK: Optionals and arrays, seen through `Any`

protocol OptionalEncodable {
    var wrappedEncodable: (any Encodable)? { get }
}
extension Optional: OptionalEncodable where Wrapped: Encodable {
    var wrappedEncodable: (any Encodable)? { self.map { $0 as any Encodable } }
}

protocol OptionalDecodable {
    static var nullValue: Self { get }
    static func decodeWrapped(text: String, typeOID: UInt32) throws -> Self
}
extension Optional: OptionalDecodable where Wrapped: Decodable {
    static var nullValue: Self { nil }
    static func decodeWrapped(text: String, typeOID: UInt32) throws -> Self {
        try PostgresTextCoding.decode(Wrapped.self, text: text, typeOID: typeOID)
    }
}

protocol ArrayLiteralEncodable {
    /// The array literal, or nil when an element is not a scalar (then it goes as JSON).
    func arrayLiteral() throws -> String?
}
extension Array: ArrayLiteralEncodable where Element: Encodable {
    func arrayLiteral() throws -> String? {
        var texts: [String?] = []
        texts.reserveCapacity(count)
        for element in self {
            // Only scalars: one that encodes itself as keys or elements makes the whole
            // array JSON.
            let binding: PostgresBinding?
            if let scalar = element as? any PostgresEncodable {
                binding = scalar.postgresBinding
            } else {
                let encoder = ScalarEncoder()
                try element.encode(to: encoder)
                binding = encoder.complex ? nil : encoder.binding ?? .null
            }
            switch binding {
            case .null?: texts.append(nil)
            case .text(let text)?: texts.append(text)
            case .binary?, nil: return nil  // bytea elements or nested values: JSON
            }
        }
        return PostgresTextCoding.arrayLiteral(texts)
    }
}

protocol ArrayLiteralDecodable {
    static func decode(arrayLiteral text: String) throws -> Self
}
extension Array: ArrayLiteralDecodable where Element: Decodable {
    static func decode(arrayLiteral text: String) throws -> Self {
        guard let elements = PostgresTextCoding.elements(ofArrayLiteral: text) else {
            let shown = text.count > 40 ? String(text.prefix(40)) + "…" : text
            throw PostgresError(kind: .decoding, message: "cannot decode \"\(shown)\" as a one-dimensional array of \(Element.self)")
        }
        return try elements.map { try PostgresTextCoding.decode(Element.self, from: $0) }
    }
}

// MARK: One scalar through Codable

/// Thrown by ``ScalarDecoder`` when the type asks for keys or elements.
struct NeedsContainer: Error {}

/// Captures a value that encodes itself as one scalar (an enum's raw value, a wrapper);
/// notes when it asks for keys or elements instead.
final class ScalarEncoder: Encoder, SingleValueEncodingContainer {
    var binding: PostgresBinding?
    var complex = false
    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        complex = true
        return KeyedEncodingContainer(DiscardingKeyed<Key>())
    }
    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        complex = true
        return DiscardingUnkeyed()
    }
    func singleValueContainer() -> any SingleValueEncodingContainer { self }

    func encodeNil() throws { binding = .null }
    func encode(_ value: Bool) throws { binding = value.postgresBinding }
    func encode(_ value: String) throws { binding = value.postgresBinding }
    func encode(_ value: Double) throws { binding = value.postgresBinding }
    func encode(_ value: Float) throws { binding = Double(value).postgresBinding }
    func encode(_ value: Int) throws { binding = .text(String(value)) }
    func encode(_ value: Int8) throws { binding = .text(String(value)) }
    func encode(_ value: Int16) throws { binding = .text(String(value)) }
    func encode(_ value: Int32) throws { binding = .text(String(value)) }
    func encode(_ value: Int64) throws { binding = .text(String(value)) }
    func encode(_ value: UInt) throws { binding = .text(String(value)) }
    func encode(_ value: UInt8) throws { binding = .text(String(value)) }
    func encode(_ value: UInt16) throws { binding = .text(String(value)) }
    func encode(_ value: UInt32) throws { binding = .text(String(value)) }
    func encode(_ value: UInt64) throws { binding = .text(String(value)) }
    func encode<T: Encodable>(_ value: T) throws {
        if let value = value as? any PostgresEncodable {
            binding = value.postgresBinding
        } else {
            try value.encode(to: self)
        }
    }
}

private struct DiscardingKeyed<Key: CodingKey>: KeyedEncodingContainerProtocol {
    var codingPath: [any CodingKey] { [] }
    mutating func encodeNil(forKey key: Key) throws {}
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {}
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        KeyedEncodingContainer(DiscardingKeyed<NestedKey>())
    }
    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer { DiscardingUnkeyed() }
    mutating func superEncoder() -> any Encoder { ScalarEncoder() }
    mutating func superEncoder(forKey key: Key) -> any Encoder { ScalarEncoder() }
}

private struct DiscardingUnkeyed: UnkeyedEncodingContainer {
    var codingPath: [any CodingKey] { [] }
    var count = 0
    mutating func encodeNil() throws { count += 1 }
    mutating func encode<T: Encodable>(_ value: T) throws { count += 1 }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        KeyedEncodingContainer(DiscardingKeyed<NestedKey>())
    }
    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer { DiscardingUnkeyed() }
    mutating func superEncoder() -> any Encoder { ScalarEncoder() }
}

/// Decodes a type that reads itself from one value (an enum's raw value, a wrapper).
struct ScalarDecoder: Decoder, SingleValueDecodingContainer {
    let text: String
    let typeOID: UInt32
    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> { throw NeedsContainer() }
    func unkeyedContainer() throws -> any UnkeyedDecodingContainer { throw NeedsContainer() }
    func singleValueContainer() throws -> any SingleValueDecodingContainer { self }

    func decodeNil() -> Bool { false }
    private func parse<T: PostgresDecodable>(_ type: T.Type) throws -> T { try T(postgresText: text, typeOID: typeOID) }
    private func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        guard let value = T(text) else { throw decodingError(text, T.self, typeOID) }
        return value
    }
    func decode(_ type: Bool.Type) throws -> Bool { try parse(Bool.self) }
    func decode(_ type: String.Type) throws -> String { text }
    func decode(_ type: Double.Type) throws -> Double { try parse(Double.self) }
    func decode(_ type: Float.Type) throws -> Float { Float(try parse(Double.self)) }
    func decode(_ type: Int.Type) throws -> Int { try integer(Int.self) }
    func decode(_ type: Int8.Type) throws -> Int8 { try integer(Int8.self) }
    func decode(_ type: Int16.Type) throws -> Int16 { try integer(Int16.self) }
    func decode(_ type: Int32.Type) throws -> Int32 { try integer(Int32.self) }
    func decode(_ type: Int64.Type) throws -> Int64 { try integer(Int64.self) }
    func decode(_ type: UInt.Type) throws -> UInt { try integer(UInt.self) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try integer(UInt8.self) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try integer(UInt16.self) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try integer(UInt32.self) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try integer(UInt64.self) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try PostgresTextCoding.decode(T.self, text: text, typeOID: typeOID) }
}
