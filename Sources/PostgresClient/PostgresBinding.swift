import Foundation

/// How one statement parameter travels to the server. Values are always sent apart from
/// the SQL text (`PQexecParams`), so no value can ever change the statement.
public enum PostgresBinding: Sendable, Equatable {
    /// Text representation; the server infers the type from the statement.
    case text(String)
    /// Raw bytes with an explicit type OID (bytea is 17).
    case binary([UInt8], oid: UInt32)
    /// SQL NULL.
    case null
}

extension PostgresBinding {
    /// The type sent with the parameter: 0 (the server infers it) for text and NULL.
    var typeOID: UInt32 {
        if case .binary(_, let oid) = self { return oid }
        return 0
    }
}

/// A Swift value that can be bound as a statement parameter.
public protocol PostgresEncodable: Sendable {
    var postgresBinding: PostgresBinding { get }
}

extension String: PostgresEncodable {
    public var postgresBinding: PostgresBinding { .text(self) }
}
extension Substring: PostgresEncodable {
    public var postgresBinding: PostgresBinding { .text(String(self)) }
}
extension Int: PostgresEncodable {
    public var postgresBinding: PostgresBinding { .text(String(self)) }
}
extension Int64: PostgresEncodable {
    public var postgresBinding: PostgresBinding { .text(String(self)) }
}
extension Int32: PostgresEncodable {
    public var postgresBinding: PostgresBinding { .text(String(self)) }
}
extension Int16: PostgresEncodable {
    public var postgresBinding: PostgresBinding { .text(String(self)) }
}
extension Double: PostgresEncodable {
    public var postgresBinding: PostgresBinding {
        if isNaN { return .text("NaN") }
        if isInfinite { return .text(self < 0 ? "-Infinity" : "Infinity") }
        return .text("\(self)")
    }
}
extension Bool: PostgresEncodable {
    public var postgresBinding: PostgresBinding { .text(self ? "t" : "f") }
}
extension Decimal: PostgresEncodable {
    public var postgresBinding: PostgresBinding { .text("\(self)") }
}
extension UUID: PostgresEncodable {
    public var postgresBinding: PostgresBinding { .text(uuidString.lowercased()) }
}
extension Date: PostgresEncodable {
    /// Sent as an ISO 8601 timestamp in UTC with microseconds.
    public var postgresBinding: PostgresBinding { .text(PostgresTimestamp.format(self)) }
}
extension Array: PostgresEncodable where Element == UInt8 {
    /// Sent as bytea, in binary.
    public var postgresBinding: PostgresBinding { .binary(self, oid: 17) }
}
extension Data: PostgresEncodable {
    public var postgresBinding: PostgresBinding { .binary([UInt8](self), oid: 17) }
}
extension Optional: PostgresEncodable where Wrapped: PostgresEncodable {
    public var postgresBinding: PostgresBinding {
        switch self {
        case .none: return .null
        case .some(let value): return value.postgresBinding
        }
    }
}

/// SQL NULL as a parameter, for places where `nil` has no type: `[PostgresNull()]`.
public struct PostgresNull: PostgresEncodable {
    public init() {}
    public var postgresBinding: PostgresBinding { .null }
}
extension PostgresBinding: PostgresEncodable {
    /// A binding made elsewhere (``PostgresTextCoding``) passes as it is.
    public var postgresBinding: PostgresBinding { self }
}
