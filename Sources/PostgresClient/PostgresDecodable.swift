import Foundation

/// A Swift type that a result value (PostgreSQL's text output format) decodes to.
public protocol PostgresDecodable: Sendable {
    /// Decodes the server's text representation of a value of type `typeOID`.
    init(postgresText text: String, typeOID: UInt32) throws
}

func decodingError(_ text: String, _ type: Any.Type, _ typeOID: UInt32) -> PostgresError {
    let shown = text.count > 40 ? String(text.prefix(40)) + "…" : text
    return PostgresError(kind: .decoding, message: "cannot decode \"\(shown)\" (type OID \(typeOID)) as \(type)")
}

extension String: PostgresDecodable {
    public init(postgresText text: String, typeOID: UInt32) throws { self = text }
}

extension Int: PostgresDecodable {
    public init(postgresText text: String, typeOID: UInt32) throws {
        guard let value = Int(text) else { throw decodingError(text, Int.self, typeOID) }
        self = value
    }
}
extension Int64: PostgresDecodable {
    public init(postgresText text: String, typeOID: UInt32) throws {
        guard let value = Int64(text) else { throw decodingError(text, Int64.self, typeOID) }
        self = value
    }
}
extension Int32: PostgresDecodable {
    public init(postgresText text: String, typeOID: UInt32) throws {
        guard let value = Int32(text) else { throw decodingError(text, Int32.self, typeOID) }
        self = value
    }
}
extension Int16: PostgresDecodable {
    public init(postgresText text: String, typeOID: UInt32) throws {
        guard let value = Int16(text) else { throw decodingError(text, Int16.self, typeOID) }
        self = value
    }
}
extension UInt64: PostgresDecodable {
    /// Accepts plain integers and `pg_lsn` text (`16/B374D848`).
    public init(postgresText text: String, typeOID: UInt32) throws {
        if let value = UInt64(text) {
            self = value
        } else if let lsn = LSN(text) {
            self = lsn.value
        } else {
            throw decodingError(text, UInt64.self, typeOID)
        }
    }
}

extension Double: PostgresDecodable {
    public init(postgresText text: String, typeOID: UInt32) throws {
        guard let value = Double(text) else { throw decodingError(text, Double.self, typeOID) }
        self = value
    }
}

extension Decimal: PostgresDecodable {
    public init(postgresText text: String, typeOID: UInt32) throws {
        guard let value = Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")) else {
            throw decodingError(text, Decimal.self, typeOID)
        }
        self = value
    }
}

extension Bool: PostgresDecodable {
    public init(postgresText text: String, typeOID: UInt32) throws {
        switch text {
        case "t", "true", "on", "1": self = true
        case "f", "false", "off", "0": self = false
        default: throw decodingError(text, Bool.self, typeOID)
        }
    }
}

extension UUID: PostgresDecodable {
    public init(postgresText text: String, typeOID: UInt32) throws {
        guard let value = UUID(uuidString: text) else { throw decodingError(text, UUID.self, typeOID) }
        self = value
    }
}

extension Date: PostgresDecodable {
    /// Decodes `date`, `timestamp` (read as UTC) and `timestamptz` in the ISO DateStyle.
    public init(postgresText text: String, typeOID: UInt32) throws {
        guard let value = PostgresTimestamp.parse(text) else { throw decodingError(text, Date.self, typeOID) }
        self = value
    }
}

extension Array: PostgresDecodable where Element == UInt8 {
    /// Decodes bytea in the `hex` output format (`\x…`, PostgreSQL's default) or `escape`.
    public init(postgresText text: String, typeOID: UInt32) throws {
        guard let bytes = Bytea.decode(text) else { throw decodingError(text, [UInt8].self, typeOID) }
        self = bytes
    }
}

extension Data: PostgresDecodable {
    public init(postgresText text: String, typeOID: UInt32) throws {
        guard let bytes = Bytea.decode(text) else { throw decodingError(text, Data.self, typeOID) }
        self = Data(bytes)
    }
}

enum Bytea {
    static func decode(_ text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        if utf8.count >= 2, utf8[0] == UInt8(ascii: "\\"), utf8[1] == UInt8(ascii: "x") {
            guard utf8.count % 2 == 0 else { return nil }
            var bytes: [UInt8] = []
            bytes.reserveCapacity((utf8.count - 2) / 2)
            var index = 2
            while index < utf8.count {
                guard let high = hexValue(utf8[index]), let low = hexValue(utf8[index + 1]) else { return nil }
                bytes.append(high << 4 | low)
                index += 2
            }
            return bytes
        }
        // escape format: backslash-octal and doubled backslash.
        var bytes: [UInt8] = []
        var index = 0
        while index < utf8.count {
            let byte = utf8[index]
            if byte != UInt8(ascii: "\\") {
                bytes.append(byte)
                index += 1
            } else if index + 1 < utf8.count, utf8[index + 1] == UInt8(ascii: "\\") {
                bytes.append(byte)
                index += 2
            } else if index + 3 < utf8.count,
                let a = octalValue(utf8[index + 1]), let b = octalValue(utf8[index + 2]), let c = octalValue(utf8[index + 3])
            {
                bytes.append(a << 6 | b << 3 | c)
                index += 4
            } else {
                return nil
            }
        }
        return bytes
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    private static func octalValue(_ c: UInt8) -> UInt8? {
        (UInt8(ascii: "0")...UInt8(ascii: "7")).contains(c) ? c - UInt8(ascii: "0") : nil
    }
}
