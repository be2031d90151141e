import Foundation
import Console
import PropertyBased
import PostgresClient
import Testing

@Suite struct ValueTests {
    @Test func lsnParsesOrdersAndPrints() throws {
        let a = try #require(LSN("0/3000148"))
        let b = try #require(LSN("16/B374D848"))
        #expect(a < b)
        #expect(b.description == "16/B374D848")
        #expect(a.value == 0x3000148)
        #expect(b.bytes(after: a) == b.value - a.value)
        #expect(a.bytes(after: b) == 0)
        #expect(LSN("nonsense") == nil)
        #expect(LSN("1/") == nil)
        #expect(LSN("123456789/0") == nil)
        let json = try JSONEncoder().encode(b)
        #expect(try JSONDecoder().decode(LSN.self, from: json) == b)
    }

    @Test func timestampsParseWithAndWithoutZones() throws {
        let utc = try #require(PostgresTimestamp.parse("2025-11-26 23:23:28.5+00"))
        #expect(utc.timeIntervalSince1970 == 1_764_199_408.5)
        let offset = try #require(PostgresTimestamp.parse("2025-11-27 04:53:28.5+05:30"))
        #expect(offset == utc)
        let negative = try #require(PostgresTimestamp.parse("2025-11-26 18:23:28.5-05"))
        #expect(negative == utc)
        let naive = try #require(PostgresTimestamp.parse("2025-11-26 23:23:28.5"))
        #expect(naive == utc)
        #expect(PostgresTimestamp.parse("2025-11-26")?.timeIntervalSince1970 == 1_764_115_200)
        #expect(PostgresTimestamp.parse("1969-12-31 23:59:59+00")?.timeIntervalSince1970 == -1)
        #expect(PostgresTimestamp.parse("infinity") == .distantFuture)
        #expect(PostgresTimestamp.parse("2026-13-01") == nil)
        #expect(PostgresTimestamp.parse("2025-11-26 23:23") == nil)
        #expect(PostgresTimestamp.parse("0044-03-15 00:00:00 BC") == nil)
    }

    @Test func timestampsFormatInUTCToTheMicrosecond() throws {
        let date = Date(timeIntervalSince1970: 1_764_199_408.123456)
        #expect(PostgresTimestamp.format(date) == "2025-11-26 23:23:28.123456+00")
        #expect(PostgresTimestamp.format(Date(timeIntervalSince1970: -0.5)) == "1969-12-31 23:59:59.500000+00")
        let back = try #require(PostgresTimestamp.parse(PostgresTimestamp.format(date)))
        #expect(abs(back.timeIntervalSince(date)) < 0.000_001)
    }

    @Test func byteaDecodesHexAndEscapeFormats() throws {
        #expect(try [UInt8](postgresText: "\\x00ff10", typeOID: 17) == [0, 255, 16])
        #expect(try [UInt8](postgresText: "\\x", typeOID: 17) == [])
        #expect(try [UInt8](postgresText: "a\\\\b\\001", typeOID: 17) == [97, 92, 98, 1])
        #expect(throws: PostgresError.self) { try [UInt8](postgresText: "\\x0", typeOID: 17) }
        #expect(throws: PostgresError.self) { try [UInt8](postgresText: "\\xzz", typeOID: 17) }
    }

    @Test func scalarsDecodeAndRejectGarbage() throws {
        #expect(try Bool(postgresText: "t", typeOID: 16))
        #expect(try !Bool(postgresText: "f", typeOID: 16))
        #expect(try Int(postgresText: "-42", typeOID: 23) == -42)
        #expect(try Double(postgresText: "NaN", typeOID: 701).isNaN)
        #expect(try Double(postgresText: "-Infinity", typeOID: 701) == -.infinity)
        #expect(try UInt64(postgresText: "0/10", typeOID: 3220) == 16)
        #expect(throws: PostgresError.self) { try Int(postgresText: "4.5", typeOID: 23) }
        #expect(throws: PostgresError.self) { try Bool(postgresText: "maybe", typeOID: 16) }
    }

    @Test func bindingsSendValuesApartFromSQL() {
        #expect("x'; drop".postgresBinding == .text("x'; drop"))
        #expect(Int?.none.postgresBinding == .null)
        #expect(PostgresNull().postgresBinding == .null)
        #expect(true.postgresBinding == .text("t"))
        #expect(Double.infinity.postgresBinding == .text("Infinity"))
        #expect([UInt8]([1, 2]).postgresBinding == .binary([1, 2], oid: 17))
    }
}

@Suite struct AuditJSONTests {
    @Test func valuesAreTypedByTheirColumnAndNeverLoseDigitsOrFail() async {
        #expect(ChangeAudit.typedValue("42", type: "int4") as? NSNumber == 42)
        #expect(ChangeAudit.typedValue("t", type: "bool") as? Bool == true)
        #expect((ChangeAudit.typedValue(#"{"a":[1,null]}"#, type: "jsonb") as? [String: Any])?["a"] != nil)
        #expect(ChangeAudit.typedValue("NaN", type: "numeric") as? String == "NaN")
        #expect(ChangeAudit.typedValue("Infinity", type: "float8") as? String == "Infinity")
        #expect(ChangeAudit.typedValue(nil, type: "int4") is NSNull)
        #expect(ChangeAudit.typedValue("007", type: "text") as? String == "007")
        // Any text at all, for any type: a JSON value that serializes, never a crash.
        let types = Gen.element(of: ["int2", "int4", "int8", "numeric", "float8", "bool", "json", "jsonb", "text", "oid"]).map { $0! }
        await propertyCheck(count: 2000, input: NastyText.string, types) { text, type in
            let value = ChangeAudit.typedValue(text, type: type)
            #expect((try? JSONSerialization.data(withJSONObject: ["v": value], options: [.fragmentsAllowed])) != nil, "\(text.debugDescription) as \(type)")
        }
        // Decimal digits are kept as written.
        let data = try? JSONSerialization.data(withJSONObject: ["v": ChangeAudit.typedValue("12345678901234567890.125", type: "numeric")])
        #expect(data.map { String(decoding: $0, as: UTF8.self) } == #"{"v":12345678901234567890.125}"#)
    }
}
