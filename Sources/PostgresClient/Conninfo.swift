import CLibPQ
import Foundation

/// Helpers for libpq connection strings (`key=value` pairs or `postgresql://` URIs).
///
/// Switchyard passes conninfo to libpq untouched; these helpers exist only so that a
/// connection string can be *shown* without its password.
public enum Conninfo {
    /// The mask shown in place of a password.
    public static let mask = "********"

    /// The parameters libpq reads from `conninfo`, in libpq's order, only those that are set.
    /// Returns nil when libpq cannot parse the string.
    public static func parse(_ conninfo: String) -> [(key: String, value: String)]? {
        var errorMessage: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(conninfo, &errorMessage) else {
            if let errorMessage { PQfreemem(errorMessage) }
            return nil
        }
        defer { PQconninfoFree(options) }
        var pairs: [(key: String, value: String)] = []
        var option = options
        while let keyword = option.pointee.keyword {
            if let value = option.pointee.val {
                pairs.append((String(cString: keyword), String(cString: value)))
            }
            option += 1
        }
        return pairs
    }

    /// `conninfo` as a libpq service file section (`pg_service.conf`): what another
    /// program (pgbench) is handed through a private file instead of its argument list,
    /// which anyone on the machine can read in `ps`. A `dbname` that is itself a connection
    /// string is expanded, as libpq would. Nil when libpq cannot parse it or a value holds
    /// a line break (a service file cannot carry it).
    public static func serviceFile(_ conninfo: String, name: String) -> String? {
        guard var pairs = parse(conninfo) else { return nil }
        if let index = pairs.firstIndex(where: { $0.key == "dbname" && isConnectionString($0.value) }) {
            guard let inner = parse(pairs[index].value) else { return nil }
            pairs.remove(at: index)
            pairs = pairs.filter { pair in !inner.contains { $0.key == pair.key } } + inner
        }
        guard pairs.allSatisfy({ !$0.value.contains(where: \.isNewline) && !$0.key.contains(where: \.isNewline) }) else { return nil }
        return (["[\(name)]"] + pairs.map { "\($0.key)=\($0.value)" }).joined(separator: "\n") + "\n"
    }

    /// Parameters whose values are secrets.
    static let secretKeys: Set<String> = ["password", "sslpassword"]

    /// A description of `conninfo` that is safe to print: every parameter it sets, with
    /// secrets masked — also inside a `dbname` that is itself a connection string, and
    /// wherever a mistyped URI made libpq read part of a password as another value (a
    /// password with `/` ends up in `port` and `dbname`). An unparseable string is never
    /// echoed. A `dbname` is expanded one level, as libpq does (a connection string inside
    /// that one is a plain value, masked), so the output grows linearly with the input.
    public static func redacted(_ conninfo: String) -> String {
        redacted(conninfo, expandingDbname: true)
    }

    static func redacted(_ conninfo: String, expandingDbname: Bool) -> String {
        if tooTangled(conninfo) { return tangled }
        guard let pairs = parse(conninfo) else { return "(invalid connection string)" }
        if pairs.isEmpty { return "(libpq defaults)" }
        let secrets = self.secrets(in: conninfo)
        return pairs.map { key, value in
            if secretKeys.contains(key) { return "\(key)=\(mask)" }
            if key == "dbname", isConnectionString(value) {
                // libpq passes a connection string inside the expanded one to the server as
                // a database name: it is not shown at all.
                return expandingDbname ? "dbname=\(quoted(redacted(value, expandingDbname: false)))" : "dbname=(a connection string, not shown)"
            }
            return "\(key)=\(quoted(mask(value, secrets)))"
        }.joined(separator: " ")
    }

    /// `message` with every secret that `conninfo` carries replaced by the mask. Works
    /// also when libpq cannot parse `conninfo` (its error text may quote a fragment).
    public static func scrub(_ message: String, conninfo: String) -> String {
        if tooTangled(conninfo) { return "(not shown: \(tangled))" }
        return mask(message, secrets(in: conninfo))
    }

    /// More URIs than this in one connection string (nested in `dbname`, or mistyped) is
    /// not a real one; finding every secret in it costs time quadratic in their number, so
    /// neither it nor a message about it is shown.
    static let mostURIs = 8
    static let tangled = "a connection string with more than 8 URIs in it is not shown"

    static func tooTangled(_ conninfo: String) -> Bool {
        var count = 0
        var previous: (UInt8, UInt8) = (0, 0)
        for byte in conninfo.utf8 {
            if previous == (UInt8(ascii: ":"), UInt8(ascii: "/")) && byte == UInt8(ascii: "/") {
                count += 1
                if count > mostURIs { return true }
            }
            previous = (previous.1, byte)
        }
        return false
    }

    static func mask(_ text: String, _ secrets: [String]) -> String {
        var result = text
        for secret in secrets { result = result.replacingBytes(of: secret, with: mask) }
        return result
    }

    /// Every secret in `conninfo` and the pieces libpq may quote separately, longest first.
    /// Connection strings nested in `dbname` are searched `depth` levels down (libpq
    /// expands one; a message may quote the next as a database name); text scanning
    /// finds URI and `password=` secrets deeper still.
    static func secrets(in conninfo: String, depth: Int = 2) -> [String] {
        var found = Set<String>()
        /// The percent-decoded form, when there is one (decoding only what holds a `%`).
        func decoded(_ text: String) -> String? {
            guard text.utf8.contains(UInt8(ascii: "%")), let decoded = text.removingPercentEncoding, decoded != text else { return nil }
            return decoded
        }
        func add(_ secret: String) {
            guard !secret.isEmpty, found.insert(secret).inserted else { return }
            if let decoded = decoded(secret) { found.insert(decoded) }
            // A URI password with `/`, `@`, `:`, `?`, `#` is cut there by the URI parser;
            // its pieces land in other values and messages. (Split by scalars: these
            // separators are ASCII, and grapheme breaking costs time on hostile text.)
            for piece in secret.unicodeScalars.split(whereSeparator: { "/@:?#& ".unicodeScalars.contains($0) }) where piece.count >= 3 {
                let text = String(String.UnicodeScalarView(piece))
                found.insert(text)
                if let decoded = decoded(text) { found.insert(decoded) }
            }
        }
        if let pairs = parse(conninfo) {
            for (key, value) in pairs {
                if secretKeys.contains(key) { add(value) }
                if depth > 0, key == "dbname", isConnectionString(value), value != conninfo { secrets(in: value, depth: depth - 1).forEach(add) }
            }
        }
        rawPasswordCandidates(conninfo).forEach(add)
        // Longest first (by bytes: String.count walks the whole string on every comparison).
        let measured: [(text: String, bytes: Int)] = found.map { ($0, $0.utf8.count) }
        let sorted = measured.sorted { (a: (text: String, bytes: Int), b: (text: String, bytes: Int)) -> Bool in
            a.bytes != b.bytes ? a.bytes > b.bytes : a.text < b.text
        }
        return sorted.map(\.text)
    }

    /// Whether libpq would expand `value` (given as `dbname`) as a connection string.
    static func isConnectionString(_ value: String) -> Bool {
        value.contains("=") || value.hasPrefix("postgresql://") || value.hasPrefix("postgres://")
    }

    /// Password-looking fragments found by plain text scanning, for strings libpq cannot
    /// parse or parses wrongly: `password=…` and `sslpassword=…` values (quoted or not), and
    /// the password of every `user:password@` in a URI — taken up to the last `@` before
    /// the query, since passwords with `/` are common and break URI parsing.
    static func rawPasswordCandidates(_ conninfo: String) -> [String] {
        var found: [String] = []
        var rest = Substring(conninfo)
        while let range = rest.range(of: "password=") {
            var value = rest[range.upperBound...]
            if value.first == "'" {
                // A quoted value: up to the closing quote that is not escaped.
                var secret = ""
                var escaped = false
                for character in value.dropFirst() {
                    if escaped { secret.append(character); escaped = false; continue }
                    if character == "\\" { escaped = true; continue }
                    if character == "'" { break }
                    secret.append(character)
                }
                found.append(secret)
            } else {
                if let end = value.firstIndex(where: { $0 == " " || $0 == "&" || $0 == "\t" || $0 == "\n" }) { value = value[..<end] }
                found.append(String(value))
            }
            rest = rest[range.upperBound...]
        }
        var search = Substring(conninfo)
        while let scheme = search.range(of: "://") {
            let afterScheme = search[scheme.upperBound...]
            // The user info ends at the last `@` before the query, or — when the password
            // holds a `?` — at the last `@` at all: both are taken.
            let queryStart = afterScheme.firstIndex(of: "?") ?? afterScheme.endIndex
            for at in [afterScheme[..<queryStart].lastIndex(of: "@"), afterScheme.lastIndex(of: "@")].compactMap({ $0 }) {
                let userinfo = afterScheme[..<at]
                if let colon = userinfo.firstIndex(of: ":") { found.append(String(userinfo[userinfo.index(after: colon)...])) }
            }
            search = afterScheme
        }
        return found
    }

    /// Quotes a conninfo value when it needs it (`'…'` with `\'` and `\\` escapes).
    public static func quoted(_ value: String) -> String {
        let plain = !value.isEmpty && !value.contains(where: { $0 == " " || $0 == "'" || $0 == "\\" || $0 == "\t" })
        if plain { return value }
        let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'")
        return "'\(escaped)'"
    }
}

extension StringProtocol {
    func trimming(_ set: Set<Character>) -> Substring {
        var slice = Substring(self)
        while let first = slice.first, set.contains(first) { slice = slice.dropFirst() }
        while let last = slice.last, set.contains(last) { slice = slice.dropLast() }
        return slice
    }
}

extension Conninfo {
    /// `host:port` (or `hostaddr`, or the libpq defaults) for naming a node in messages.
    public static func endpoint(_ conninfo: String) -> String {
        let pairs = parse(conninfo) ?? []
        let value = { (key: String) in pairs.first { $0.key == key }?.value }
        let host = value("host") ?? value("hostaddr") ?? "localhost"
        let port = value("port") ?? "5432"
        return scrub("\(host):\(port)", conninfo: conninfo)
    }
}
