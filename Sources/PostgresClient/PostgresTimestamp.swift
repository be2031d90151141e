import Foundation

/// Conversion between `Date` and PostgreSQL's ISO text format, without a formatter:
/// plain calendar arithmetic (days from the civil date), so it is exact and fast.
public enum PostgresTimestamp {
    /// Parses `YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS[.ffffff]` and that with `±HH[:MM[:SS]]`;
    /// a timestamp without a zone is read as UTC. `infinity`/`-infinity` map to
    /// `Date.distantFuture`/`distantPast`. BC dates are not supported (nil).
    public static func parse(_ text: String) -> Date? {
        if text == "infinity" { return .distantFuture }
        if text == "-infinity" { return .distantPast }
        var scanner = ByteScanner(Array(text.utf8))
        guard let year = scanner.number(digits: 4...7), scanner.take("-"),
            let month = scanner.number(digits: 2...2), scanner.take("-"),
            let day = scanner.number(digits: 2...2),
            (1...12).contains(month), (1...31).contains(day)
        else { return nil }
        var seconds = Double(daysFromCivil(year: year, month: month, day: day)) * 86_400
        if scanner.atEnd { return Date(timeIntervalSince1970: seconds) }
        guard scanner.take(" ") || scanner.take("T"),
            let hour = scanner.number(digits: 2...2), scanner.take(":"),
            let minute = scanner.number(digits: 2...2), scanner.take(":"),
            let second = scanner.number(digits: 2...2),
            hour <= 24, minute < 60, second <= 60
        else { return nil }
        seconds += Double(hour * 3600 + minute * 60 + second)
        if scanner.take(".") {
            let start = scanner.position
            guard let fraction = scanner.number(digits: 1...9) else { return nil }
            seconds += Double(fraction) / pow(10, Double(scanner.position - start))
        }
        if scanner.atEnd { return Date(timeIntervalSince1970: seconds) }
        if scanner.take("Z") { return scanner.atEnd ? Date(timeIntervalSince1970: seconds) : nil }
        let sign: Int
        if scanner.take("+") { sign = 1 } else if scanner.take("-") { sign = -1 } else { return nil }
        guard let offsetHours = scanner.number(digits: 2...2) else { return nil }
        var offset = offsetHours * 3600
        if scanner.take(":") {
            guard let offsetMinutes = scanner.number(digits: 2...2) else { return nil }
            offset += offsetMinutes * 60
            if scanner.take(":") {
                guard let offsetSeconds = scanner.number(digits: 2...2) else { return nil }
                offset += offsetSeconds
            }
        }
        guard scanner.atEnd else { return nil }
        return Date(timeIntervalSince1970: seconds - Double(sign * offset))
    }

    /// `YYYY-MM-DD HH:MM:SS.ffffff+00`, in UTC, rounded to the microsecond.
    public static func format(_ date: Date) -> String {
        let totalMicros = Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
        var days = totalMicros / 86_400_000_000
        var micros = totalMicros % 86_400_000_000
        if micros < 0 {
            micros += 86_400_000_000
            days -= 1
        }
        let (year, month, day) = civilFromDays(Int(days))
        let secondsOfDay = Int(micros / 1_000_000)
        let fraction = Int(micros % 1_000_000)
        func pad(_ value: Int, _ width: Int) -> String {
            let digits = String(value)
            return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2)) \(pad(secondsOfDay / 3600, 2)):"
            + "\(pad(secondsOfDay / 60 % 60, 2)):\(pad(secondsOfDay % 60, 2)).\(pad(fraction, 6))+00"
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date.
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    static func civilFromDays(_ days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}

struct ByteScanner {
    let bytes: [UInt8]
    var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var atEnd: Bool { position == bytes.count }

    mutating func take(_ character: Character) -> Bool {
        guard let ascii = character.asciiValue, position < bytes.count, bytes[position] == ascii else { return false }
        position += 1
        return true
    }

    mutating func number(digits allowed: ClosedRange<Int>) -> Int? {
        let start = position
        var value = 0
        while position < bytes.count, position - start < allowed.upperBound,
            bytes[position] >= UInt8(ascii: "0"), bytes[position] <= UInt8(ascii: "9")
        {
            value = value * 10 + Int(bytes[position] - UInt8(ascii: "0"))
            position += 1
        }
        guard allowed.contains(position - start) else {
            position = start
            return nil
        }
        return value
    }
}
