import Foundation
import Synchronization

/// Per-request routing for web apps, without a web framework: the facts of a request go
/// in, a routing context and the visitor's read-your-writes token come out; after the
/// handler ran, the headers to add to the response (the token cookie, `Server-Timing`)
/// come out. A framework adapter (``SwitchyardHummingbird``, or a few lines for any other)
/// only copies facts in and headers out.
///
/// ```swift
/// let request = routing.begin(RequestFacts(method: "GET", path: "/admin/customers/7", headers: headers))
/// let response = try await request.run { try await handler() }
/// for (name, value) in request.responseHeaders() { response.headers.add(name, value) }
/// ```
public struct HTTPRouting: Sendable, Equatable {
    /// Checked in order; the first rule whose every condition holds chooses the context.
    public var rules: [HTTPRoutingRule]
    /// The context of a request no rule matches.
    public var defaultContext: RoutingContext
    /// The cookie that carries the token between one visitor's requests.
    public var cookieName: String
    /// How long the browser keeps the token cookie (seconds).
    public var cookieMaxAge: Int
    /// Adds a `Server-Timing` header naming the node(s) that served the request's statements.
    public var serverTiming: Bool
    /// Believes `X-Forwarded-Proto: https` (set by a TLS-terminating proxy in front of
    /// the app) when deciding whether the cookie gets `Secure`.
    public var trustForwardedProto: Bool

    /// `/admin` (and everything under it) in the admin context, everything else public.
    public static let defaultRules = [HTTPRoutingRule(pathPrefix: "/admin", context: .admin)]

    public init(
        rules: [HTTPRoutingRule] = HTTPRouting.defaultRules, defaultContext: RoutingContext = .public,
        cookieName: String = "switchyard_token", cookieMaxAge: Int = 900, serverTiming: Bool = false,
        trustForwardedProto: Bool = false
    ) {
        self.rules = rules
        self.defaultContext = defaultContext
        self.cookieName = cookieName
        self.cookieMaxAge = cookieMaxAge
        self.serverTiming = serverTiming
        self.trustForwardedProto = trustForwardedProto
    }

    /// The header fields routing reads (lower case): an adapter need copy only these
    /// into ``RequestFacts``.
    public var consultedHeaders: [String] {
        var names = ["cookie"]
        if trustForwardedProto { names.append("x-forwarded-proto") }
        for rule in rules { if let header = rule.header, !names.contains(header) { names.append(header) } }
        return names
    }

    /// The context rules choose for `facts`.
    public func context(for facts: RequestFacts) -> RoutingContext {
        let path = RequestPath(facts.path)
        for rule in rules where rule.matches(facts, path: path) { return rule.context }
        return defaultContext
    }

    /// Starts handling one request: its context, and the token its cookie carries.
    public func begin(_ facts: RequestFacts) -> RoutedRequest {
        let cookie = Self.cookieValues(named: cookieName, in: facts.values(of: "cookie"))
        // Every value that parses is a candidate: a cookie of the same name can be planted
        // beside the real one (a sibling subdomain may set it), in front of it or behind
        // it. The first statement keeps the highest the primary has reached; a garbled
        // value is simply not a token.
        let tokens = cookie.compactMap { $0.utf8.count <= 64 ? ConsistencyToken($0) : nil }
        let secure =
            facts.isHTTPS
            || (trustForwardedProto
                && facts.value(of: "x-forwarded-proto")?.split(separator: ",").first?
                    .trimmingCharacters(in: .whitespaces).lowercased() == "https")
        return RoutedRequest(
            routing: self, context: context(for: facts), incomingTokens: tokens, hadCookie: !cookie.isEmpty, secure: secure)
    }

    /// The values of every cookie called `name` in `Cookie` header values, in order.
    package static func cookieValues(named name: String, in headers: [String]) -> [String] {
        var values: [String] = []
        for header in headers {
            for pair in header.split(separator: ";") {
                let pair = pair.trimmingCharacters(in: .whitespaces)
                guard let equals = pair.firstIndex(of: "="), pair[..<equals] == name else { continue }
                var value = pair[pair.index(after: equals)...]
                if value.count >= 2, value.first == "\"", value.last == "\"" { value = value.dropFirst().dropLast() }
                values.append(String(value))
            }
        }
        return values
    }

    /// Whether `name` may be a cookie name (an HTTP token).
    public static func isValidCookieName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 128
            && name.unicodeScalars.allSatisfy { scalar in
                scalar.isASCII && scalar.value > 0x20 && scalar.value < 0x7F && !"()<>@,;:\\\"/[]?={}".unicodeScalars.contains(scalar)
            }
    }
}

/// One routing rule: every condition given must hold.
public struct HTTPRoutingRule: Sendable, Equatable {
    /// Matches this path and everything under it, segment by segment: `/admin` matches
    /// `/admin` and `/admin/x`, not `/administrator`. A trailing `/*` is allowed.
    public var pathPrefix: String?
    /// Matches any of these methods (upper case); nil for any method.
    public var methods: [String]?
    /// Matches when this header is present (and, when a value is given, equal to it).
    public var header: String?
    public var headerValue: String?
    public var context: RoutingContext

    private var prefixPath: RequestPath?

    public init(
        pathPrefix: String? = nil, methods: [String]? = nil, header: String? = nil, headerValue: String? = nil,
        context: RoutingContext
    ) {
        self.pathPrefix = pathPrefix
        self.methods = methods?.map { $0.uppercased() }
        self.header = header?.lowercased()
        self.headerValue = headerValue
        self.context = context
        if let pathPrefix {
            var prefix = Substring(pathPrefix)
            if prefix.hasSuffix("/*") { prefix = prefix.dropLast(2) }
            prefixPath = RequestPath(String(prefix))
        }
    }

    func matches(_ facts: RequestFacts, path: RequestPath) -> Bool {
        if let prefixPath, !path.isUnder(prefixPath) { return false }
        if let methods, !methods.contains(facts.method.uppercased()) { return false }
        if let header {
            guard let value = facts.value(of: header) else { return false }
            if let headerValue, value.trimmingCharacters(in: .whitespaces) != headerValue { return false }
        }
        return true
    }
}

/// A request path as routing compares it: query and fragment cut off, percent-escapes
/// decoded, empty and `.` segments dropped, `..` applied. So `/%61dmin//x`, `/api/../admin`
/// and `/admin/./x` all count as under `/admin`, as a server that normalizes paths would
/// treat them. A path that needs none of that (the usual case) is taken as it is, without
/// copying it apart.
struct RequestPath: Equatable {
    /// `/a/b`; `/` for the root. A slice of the request's own text when it needed no work.
    let normalized: Substring

    init(_ raw: String) {
        var utf8 = Substring(raw).utf8
        if let cut = utf8.firstIndex(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }) {
            utf8 = utf8[..<cut]
        }
        if Self.isPlain(utf8) {
            var path = Substring(utf8)
            while path.utf8.count > 1, path.utf8.last == UInt8(ascii: "/") { path = path.dropLast() }
            normalized = path
            return
        }
        let decoded = Self.percentDecoded(Substring(utf8))
        var segments: [Substring] = []
        for segment in decoded.split(separator: "/", omittingEmptySubsequences: true) {
            switch segment {
            case ".": continue
            case "..": if !segments.isEmpty { segments.removeLast() }
            default: segments.append(segment)
            }
        }
        normalized = Substring("/" + segments.joined(separator: "/"))
    }

    var segments: [Substring] { normalized.split(separator: "/") }

    var description: String { String(normalized) }

    /// This path is `prefix` or below it, segment by segment.
    func isUnder(_ prefix: RequestPath) -> Bool {
        let path = normalized.utf8, head = prefix.normalized.utf8
        if head.count == 1 { return true }  // "/"
        guard path.starts(with: head) else { return false }
        return path.count == head.count || path[path.index(path.startIndex, offsetBy: head.count)] == UInt8(ascii: "/")
    }

    /// Starts with `/`, has no `%`, no empty segment but a trailing one, no `.` or `..`.
    private static func isPlain(_ utf8: Substring.UTF8View) -> Bool {
        guard utf8.first == UInt8(ascii: "/") else { return false }
        var segmentLength = 0
        var dots = 0
        var index = utf8.index(after: utf8.startIndex)
        while index < utf8.endIndex {
            let byte = utf8[index]
            if byte == UInt8(ascii: "%") { return false }
            if byte == UInt8(ascii: "/") {
                if segmentLength == 0 || segmentLength == dots && dots <= 2 { return false }
                segmentLength = 0
                dots = 0
            } else {
                segmentLength += 1
                if byte == UInt8(ascii: ".") { dots += 1 }
            }
            index = utf8.index(after: index)
        }
        return !(segmentLength > 0 && segmentLength == dots && dots <= 2)
    }

    /// `%XX` decoded where it forms valid UTF-8; anything else kept as written.
    static func percentDecoded(_ text: Substring) -> String {
        guard text.contains("%") else { return String(text) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var utf8 = text.utf8[...]
        while let byte = utf8.first {
            if byte == UInt8(ascii: "%"), utf8.count >= 3,
                let high = hexValue(utf8[utf8.index(after: utf8.startIndex)]),
                let low = hexValue(utf8[utf8.index(utf8.startIndex, offsetBy: 2)])
            {
                bytes.append(high << 4 | low)
                utf8 = utf8.dropFirst(3)
            } else {
                bytes.append(byte)
                utf8 = utf8.dropFirst()
            }
        }
        return String(validating: bytes, as: UTF8.self) ?? String(text)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// What routing needs to know about a request.
public struct RequestFacts: Sendable {
    public var method: String
    /// The request target's path (a query string is ignored).
    public var path: String
    /// Header fields as received; names compare case-insensitively.
    public var headers: [(name: String, value: String)]
    /// The request came over TLS to this process.
    public var isHTTPS: Bool

    public init(method: String, path: String, headers: [(name: String, value: String)] = [], isHTTPS: Bool = false) {
        self.method = method
        self.path = path
        self.headers = headers
        self.isHTTPS = isHTTPS
    }

    /// Every value of header `name`.
    public func values(of name: String) -> [String] {
        headers.compactMap { $0.name.caseInsensitiveEquals(name) ? $0.value : nil }
    }

    /// The first value of header `name`.
    public func value(of name: String) -> String? {
        headers.first { $0.name.caseInsensitiveEquals(name) }?.value
    }
}

extension String {
    /// ASCII case-insensitive equality (header names are ASCII), without allocating.
    fileprivate func caseInsensitiveEquals(_ other: String) -> Bool {
        guard utf8.count == other.utf8.count else { return false }
        for (a, b) in zip(utf8, other.utf8) where a != b {
            let lowerA = a >= 65 && a <= 90 ? a + 32 : a
            let lowerB = b >= 65 && b <= 90 ? b + 32 : b
            if lowerA != lowerB { return false }
        }
        return true
    }
}

/// One request being handled: run the handler in ``run(_:)``, then add
/// ``responseHeaders()`` to the response (also to an error response: a write may have
/// committed before the handler failed).
public final class RoutedRequest: Sendable {
    public let routing: HTTPRouting
    public let context: RoutingContext
    /// The highest token the visitor's cookies carried, if any parsed.
    public var incomingToken: ConsistencyToken? { incomingTokens.max { $0.lsn < $1.lsn } }
    /// Every token the request's cookies of ``HTTPRouting/cookieName`` carried, in order.
    public let incomingTokens: [ConsistencyToken]
    /// The request carried the token cookie at all (even one that did not parse).
    public let hadCookie: Bool
    /// The cookie gets `Secure`.
    public let secure: Bool
    let scope: RoutingScope

    init(routing: HTTPRouting, context: RoutingContext, incomingTokens: [ConsistencyToken], hadCookie: Bool, secure: Bool) {
        self.routing = routing
        self.context = context
        self.incomingTokens = incomingTokens
        self.hadCookie = hadCookie
        self.secure = secure
        scope = RoutingScope(
            context: context, session: ConsistencySession(candidates: incomingTokens),
            trace: routing.serverTiming ? RequestTrace() : nil)
    }

    /// Runs `body` with this request's context and consistency session bound.
    public func run<T>(isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> T) async rethrows -> T {
        try await RoutingScope.$current.withValue(scope, operation: body, isolation: isolation)
    }

    /// The token after the handler ran: the highest incoming one the primary had reached,
    /// a newer one from a write, or nil when every incoming one was dropped (ahead of the
    /// primary: forged or stale).
    public var token: ConsistencyToken? { scope.session.token }

    /// The `Set-Cookie` value to send, if the visitor's token changed.
    ///
    /// A valid token is never cleared because a garbled or planted cookie came with it:
    /// the cookie is set to the token kept (and so repaired when the browser sent several),
    /// and cleared only when no incoming token survived.
    public var setCookie: String? {
        // Nothing ran that settled the incoming tokens: nothing was learned, nothing to say.
        guard scope.session.uncheckedToken == nil else { return nil }
        if let token = scope.session.token {
            return incomingTokens == [token] ? nil : cookie(value: token.description, maxAge: routing.cookieMaxAge)
        }
        // No incoming token survived (dropped as ahead of the primary, or garbled).
        return hadCookie ? cookie(value: "", maxAge: 0) : nil
    }

    private func cookie(value: String, maxAge: Int) -> String {
        "\(routing.cookieName)=\(value); Path=/; Max-Age=\(maxAge); HttpOnly; SameSite=Lax\(secure ? "; Secure" : "")"
    }

    /// `Server-Timing` naming each node that served a statement, with the time spent
    /// there (ms), in the order first used; nil when off or when no statement ran.
    public var serverTiming: String? {
        guard let trace = scope.trace else { return nil }
        let nodes = trace.nodes
        guard !nodes.isEmpty else { return nil }
        return nodes.map { node, milliseconds in
            let name = node.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            return "db;desc=\"\(name)\";dur=\(Self.serverTimingValue(milliseconds))"
        }.joined(separator: ", ")
    }

    /// Headers to add to the response.
    public func responseHeaders() -> [(name: String, value: String)] {
        var headers: [(name: String, value: String)] = []
        if let setCookie { headers.append(("Set-Cookie", setCookie)) }
        if let serverTiming { headers.append(("Server-Timing", serverTiming)) }
        return headers
    }

    static func serverTimingValue(_ milliseconds: Double) -> String {
        let hundredths = milliseconds.isFinite ? Int(min(max(milliseconds, 0), 1e12) * 100 + 0.5) : 0
        let fraction = hundredths % 100
        return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}

/// The nodes that served one request's statements and the time each took (ms).
final class RequestTrace: Sendable {
    private let state = Mutex<[(node: String, milliseconds: Double)]>([])

    func add(_ node: String, _ duration: Duration) {
        let milliseconds = duration.milliseconds
        state.withLock { nodes in
            if let index = nodes.firstIndex(where: { $0.node == node }) {
                nodes[index].milliseconds += milliseconds
            } else if nodes.count < 16 {
                nodes.append((node, milliseconds))
            }
        }
    }

    var nodes: [(node: String, milliseconds: Double)] { state.withLock { $0 } }
}
