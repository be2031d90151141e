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

    /// A description of `conninfo` that is safe to print: every parameter it sets, with
    /// the password masked. An unparseable string is never echoed.
    public static func redacted(_ conninfo: String) -> String {
        guard let pairs = parse(conninfo) else { return "(invalid connection string)" }
        if pairs.isEmpty { return "(libpq defaults)" }
        return pairs.map { key, value in
            key == "password" ? "password=\(mask)" : "\(key)=\(quoted(value))"
        }.joined(separator: " ")
    }

    /// `message` with every secret that `conninfo` carries replaced by the mask. Works
    /// also when libpq cannot parse `conninfo` (its error text may quote a fragment).
    public static func scrub(_ message: String, conninfo: String) -> String {
        var secrets = Set<String>()
        if let pairs = parse(conninfo) {
            for (key, value) in pairs where key == "password" && !value.isEmpty { secrets.insert(value) }
        }
        secrets.formUnion(rawPasswordCandidates(conninfo))
        var result = message
        for secret in secrets.sorted(by: { $0.count > $1.count }) where !secret.isEmpty {
            result = result.replacingOccurrences(of: secret, with: mask)
        }
        return result
    }

    /// Password-looking fragments found by plain text scanning: `password=…` values and
    /// the `user:password@` part of a URI, raw and percent-decoded.
    static func rawPasswordCandidates(_ conninfo: String) -> [String] {
        var found: [String] = []
        var rest = Substring(conninfo)
        while let range = rest.range(of: "password=") {
            var value = rest[range.upperBound...]
            if let end = value.firstIndex(where: { $0 == " " || $0 == "&" || $0 == "\t" || $0 == "\n" }) {
                value = value[..<end]
            }
            let trimmed = value.trimming(["'"])
            if !trimmed.isEmpty { found.append(String(trimmed)) }
            rest = rest[range.upperBound...]
        }
        if let scheme = conninfo.range(of: "://") {
            let afterScheme = conninfo[scheme.upperBound...]
            let authorityEnd = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? afterScheme.endIndex
            let authority = afterScheme[..<authorityEnd]
            if let at = authority.lastIndex(of: "@") {
                let userinfo = authority[..<at]
                if let colon = userinfo.firstIndex(of: ":") {
                    let secret = String(userinfo[userinfo.index(after: colon)...])
                    if !secret.isEmpty {
                        found.append(secret)
                        if let decoded = secret.removingPercentEncoding, decoded != secret { found.append(decoded) }
                    }
                }
            }
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
        return "\(host):\(port)"
    }
}
