import Foundation
import Synchronization

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// One visitor of the storefront over real HTTP: keeps the token cookie the way a browser
/// does (or drops it, like a client without cookies). The demo's traffic, the tests and
/// the benchmark use it.
public final class StorefrontVisitor: Sendable {
    public let baseURL: URL
    public let keepsCookies: Bool
    private let session: URLSession
    private let cookies = Mutex<[String: String]>([:])

    public struct Response: Sendable {
        public var status: Int
        public var body: Data
        public var headers: [String: String]

        /// The body as a JSON object.
        public var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] }
    }

    public init(baseURL: URL, keepsCookies: Bool = true, session: URLSession = StorefrontVisitor.sharedSession) {
        self.baseURL = baseURL
        self.keepsCookies = keepsCookies
        self.session = session
    }

    /// No cookie storage, no caching: each visitor keeps its own cookie.
    public static let sharedSession: URLSession = {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpShouldSetCookies = false
        configuration.httpCookieAcceptPolicy = .never
        configuration.httpCookieStorage = nil
        configuration.urlCache = nil
        configuration.timeoutIntervalForRequest = 10
        configuration.httpMaximumConnectionsPerHost = 16
        return URLSession(configuration: configuration)
    }()

    public func get(_ path: String) async throws -> Response { try await send("GET", path, body: nil) }

    public func put(_ path: String, json: [String: Any]) async throws -> Response {
        try await send("PUT", path, body: try JSONSerialization.data(withJSONObject: json))
    }

    /// Sends a request with the visitor's cookies; `plantedCookies` (`name=value`) go in
    /// front of them, as cookies a sibling domain set would.
    public func send(
        _ method: String, _ path: String, body: Data?, contentType: String = "application/json", plantedCookies: [String] = []
    ) async throws -> Response {
        guard let url = URL(string: path, relativeTo: baseURL) else { throw URLError(.badURL) }
        var request = URLRequest(url: url)
        request.httpMethod = method
        request.httpBody = body
        if body != nil { request.setValue(contentType, forHTTPHeaderField: "Content-Type") }
        let cookie = (plantedCookies + cookies.withLock { $0.map { "\($0.key)=\($0.value)" }.sorted() }).joined(separator: "; ")
        if !cookie.isEmpty { request.setValue(cookie, forHTTPHeaderField: "Cookie") }
        let (data, response) = try await session.data(for: request)
        guard let http = response as? HTTPURLResponse else { throw URLError(.badServerResponse) }
        var headers: [String: String] = [:]
        for (key, value) in http.allHeaderFields {
            if let key = key as? String, let value = value as? String { headers[key.lowercased()] = value }
        }
        if keepsCookies, let setCookie = headers["set-cookie"] { remember(setCookie) }
        return Response(status: http.statusCode, body: data, headers: headers)
    }

    /// The visitor's cookies now.
    public var cookieJar: [String: String] { cookies.withLock { $0 } }

    private func remember(_ header: String) {
        // One cookie per response here; its attributes follow the first `;`.
        let pair = header.split(separator: ";", maxSplits: 1).first.map(String.init) ?? ""
        guard let equals = pair.firstIndex(of: "=") else { return }
        let name = pair[..<equals].trimmingCharacters(in: .whitespaces)
        let value = String(pair[pair.index(after: equals)...])
        let expired = header.lowercased().contains("max-age=0")
        cookies.withLock { jar in
            if expired || value.isEmpty { jar[name] = nil } else { jar[name] = value }
        }
    }
}
