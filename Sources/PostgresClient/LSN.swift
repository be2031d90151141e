/// A PostgreSQL write-ahead-log position (`pg_lsn`), e.g. `0/3000148`.
///
/// Ordered, so "has this replica replayed up to that position" is `replay >= target`.
public struct LSN: Sendable, Hashable, Comparable, CustomStringConvertible, Codable {
    public var value: UInt64

    public init(_ value: UInt64) { self.value = value }

    /// Parses `XXXXXXXX/XXXXXXXX` (hex, as `pg_lsn` prints). Returns nil otherwise.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty, parts[0].count <= 8, parts[1].count <= 8,
            let high = UInt64(parts[0], radix: 16), let low = UInt64(parts[1], radix: 16)
        else { return nil }
        value = high << 32 | low
    }

    public var description: String {
        String(value >> 32, radix: 16, uppercase: true) + "/" + String(value & 0xFFFF_FFFF, radix: 16, uppercase: true)
    }

    public static func < (lhs: LSN, rhs: LSN) -> Bool { lhs.value < rhs.value }

    /// Bytes from `other` up to `self`; 0 when `other` is already past.
    public func bytes(after other: LSN) -> UInt64 { value > other.value ? value - other.value : 0 }

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let lsn = LSN(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not an LSN: \(text)"))
        }
        self = lsn
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

extension LSN: PostgresDecodable, PostgresEncodable {
    public init(postgresText text: String, typeOID: UInt32) throws {
        guard let lsn = LSN(text) else { throw decodingError(text, LSN.self, typeOID) }
        self = lsn
    }
    public var postgresBinding: PostgresBinding { .text(description) }
}
