import Foundation

/// JSON exactly as RFC 8259 (and PostgreSQL's `json`/`jsonb` input) reads it: no trailing
/// commas, no comments, no single quotes, no `NaN`. Foundation's parser is lenient about
/// some of these, so a value it accepts could still fail on the server.
enum StrictJSON {
    /// Why `text` is not JSON, with the offset where reading stopped; nil when it is.
    static func problem(_ text: String) -> String? {
        var reader = Reader(bytes: Array(text.utf8))
        do {
            reader.skipSpace()
            try reader.value(depth: 0)
            reader.skipSpace()
            guard reader.index == reader.bytes.count else { throw reader.failure("unexpected text after the value") }
            return nil
        } catch let failure as Failure {
            return failure.message
        } catch {
            return "not valid JSON"
        }
    }

    struct Failure: Error { let message: String }

    struct Reader {
        let bytes: [UInt8]
        var index = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        func failure(_ what: String) -> Failure { Failure(message: "\(what) at character \(index + 1)") }

        var current: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipSpace() {
            while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { index += 1 }
        }

        mutating func expect(_ literal: String) throws {
            for byte in literal.utf8 {
                guard current == byte else { throw failure("expected \(literal)") }
                index += 1
            }
        }

        mutating func value(depth: Int) throws {
            guard depth < 1000 else { throw failure("nested too deeply") }
            guard let current else { throw failure("the value ends early") }
            switch current {
            case UInt8(ascii: "{"): try object(depth: depth)
            case UInt8(ascii: "["): try array(depth: depth)
            case UInt8(ascii: "\""): try string()
            case UInt8(ascii: "t"): try expect("true")
            case UInt8(ascii: "f"): try expect("false")
            case UInt8(ascii: "n"): try expect("null")
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try number()
            default: throw failure("unexpected character")
            }
        }

        mutating func object(depth: Int) throws {
            index += 1
            skipSpace()
            if current == UInt8(ascii: "}") {
                index += 1
                return
            }
            while true {
                skipSpace()
                guard current == UInt8(ascii: "\"") else {
                    throw failure(current == UInt8(ascii: "}") ? "a comma before }" : "expected a member name in double quotes")
                }
                try string()
                skipSpace()
                guard current == UInt8(ascii: ":") else { throw failure("expected :") }
                index += 1
                skipSpace()
                try value(depth: depth + 1)
                skipSpace()
                if current == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                guard current == UInt8(ascii: "}") else { throw failure("expected , or }") }
                index += 1
                return
            }
        }

        mutating func array(depth: Int) throws {
            index += 1
            skipSpace()
            if current == UInt8(ascii: "]") {
                index += 1
                return
            }
            while true {
                skipSpace()
                if current == UInt8(ascii: "]") { throw failure("a comma before ]") }
                try value(depth: depth + 1)
                skipSpace()
                if current == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                guard current == UInt8(ascii: "]") else { throw failure("expected , or ]") }
                index += 1
                return
            }
        }

        mutating func string() throws {
            index += 1
            while let byte = current {
                switch byte {
                case UInt8(ascii: "\""):
                    index += 1
                    return
                case UInt8(ascii: "\\"):
                    index += 1
                    guard let escape = current else { throw failure("the string ends early") }
                    if escape == UInt8(ascii: "u") {
                        for _ in 0..<4 {
                            index += 1
                            guard let hex = current, (0x30...0x39).contains(hex) || (0x41...0x46).contains(hex) || (0x61...0x66).contains(hex) else {
                                throw failure("\\u takes four hex digits")
                            }
                        }
                    } else if !"\"\\/bfnrt".utf8.contains(escape) {
                        throw failure("unknown escape")
                    }
                    index += 1
                case 0x00..<0x20:
                    throw failure("a control character in a string (escape it)")
                default:
                    index += 1
                }
            }
            throw failure("the string is not closed")
        }

        mutating func number() throws {
            if current == UInt8(ascii: "-") { index += 1 }
            guard let first = current, (0x30...0x39).contains(first) else { throw failure("expected a digit") }
            if first == UInt8(ascii: "0") {
                index += 1
            } else {
                while let byte = current, (0x30...0x39).contains(byte) { index += 1 }
            }
            if current == UInt8(ascii: ".") {
                index += 1
                guard let byte = current, (0x30...0x39).contains(byte) else { throw failure("expected a digit after .") }
                while let byte = current, (0x30...0x39).contains(byte) { index += 1 }
            }
            if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
                index += 1
                if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
                guard let byte = current, (0x30...0x39).contains(byte) else { throw failure("expected a digit in the exponent") }
                while let byte = current, (0x30...0x39).contains(byte) { index += 1 }
            }
        }
    }
}
