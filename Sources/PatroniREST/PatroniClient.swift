import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Patroni's REST API: the cluster's members as Patroni sees them, one node's own view,
/// the timeline history, and switchover/failover. Plain HTTP or HTTPS through URLSession;
/// every call has a timeout and tries the configured endpoints in order (any member
/// answers for the whole cluster).
public struct PatroniClient: Sendable {
    public let endpoints: [URL]
    public let timeout: Duration
    /// How long a switchover or failover POST may take before its answer is given up on
    /// (Patroni answers once the change is done).
    public let changeTimeout: Duration
    /// For Patroni's `restapi.authentication` (sent on every request; never printed).
    let credentials: Credentials?

    public struct Credentials: Sendable {
        public var username: String
        public var password: String

        public init(username: String, password: String) {
            self.username = username
            self.password = password
        }
    }

    public init(
        endpoints: [URL], timeout: Duration = .seconds(2), changeTimeout: Duration = .seconds(60), credentials: Credentials? = nil
    ) {
        self.endpoints = endpoints
        self.timeout = timeout
        self.changeTimeout = changeTimeout
        self.credentials = credentials
    }

    // MARK: Reads

    /// `GET /cluster` from the first endpoint that answers.
    public func cluster() async throws -> PatroniClusterStatus {
        try await firstAnswer { try await self.get("cluster", from: $0, as: PatroniClusterStatus.self) }
    }

    /// `GET /patroni` of one member: its own state and, on the leader, who streams from it.
    public func member(at endpoint: URL) async throws -> PatroniMemberStatus {
        try await get("patroni", from: endpoint, as: PatroniMemberStatus.self)
    }

    /// `GET /history`: one entry per timeline switch, oldest first.
    public func history() async throws -> [PatroniHistoryEntry] {
        try await firstAnswer { endpoint in
            let (data, _) = try await self.request("GET", "history", at: endpoint, expect: [200])
            return try PatroniHistoryEntry.decodeList(data, from: endpoint)
        }
    }

    /// `GET /config`: the cluster-wide (DCS) settings that matter for failover.
    public func dynamicConfiguration() async throws -> PatroniDynamicConfiguration {
        try await firstAnswer { try await self.get("config", from: $0, as: PatroniDynamicConfiguration.self) }
    }

    /// Whether the member at `endpoint` holds the leader key and runs as primary
    /// (`GET /primary` answers 200 there, 503 elsewhere).
    public func isLeader(at endpoint: URL) async throws -> Bool {
        let (_, status) = try await request("GET", "primary", at: endpoint, expect: [200, 503])
        return status == 200
    }

    // MARK: Changes

    /// `POST /switchover`: the leader steps down and `candidate` takes over. Blocks until
    /// Patroni has done it (or refused); returns Patroni's message.
    public func switchover(leader: String, candidate: String) async throws -> String {
        try await post("switchover", ["leader": leader, "candidate": candidate])
    }

    /// `POST /failover`: `candidate` becomes leader; Patroni allows it without a healthy leader.
    public func failover(candidate: String) async throws -> String {
        try await post("failover", ["candidate": candidate])
    }

    /// `PATCH /config {"pause": …}`: maintenance mode on or off (Patroni then neither fails
    /// over nor repairs members).
    public func setPaused(_ paused: Bool) async throws {
        let payload = try JSONSerialization.data(withJSONObject: ["pause": paused])
        _ = try await firstAnswer { try await self.request("PATCH", "config", at: $0, body: payload, expect: [200]) }
    }

    /// `POST /reinitialize {"force": true}` on the member at `endpoint`: Patroni wipes its
    /// data and clones it again from the leader.
    public func reinitialize(at endpoint: URL) async throws {
        let payload = try JSONSerialization.data(withJSONObject: ["force": true])
        _ = try await request("POST", "reinitialize", at: endpoint, body: payload, expect: [200, 202], timeout: .seconds(30))
    }

    /// A change is sent once: the next endpoint is tried only when the request could not
    /// have reached the previous one (no connection). Once sent, a missing answer is
    /// ``PatroniError/Kind/noAnswer`` — the change may have happened; the caller reads the
    /// cluster's state to know — never a second POST that Patroni would refuse (412/503)
    /// because the first one worked.
    private func post(_ path: String, _ body: [String: String]) async throws -> String {
        let payload = try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])
        return try await firstAnswer(retryingOnlyUnsent: true) { endpoint in
            let (data, _) = try await self.request("POST", path, at: endpoint, body: payload, expect: [200, 202], timeout: changeTimeout)
            return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    // MARK: HTTP

    private func get<T: Decodable>(_ path: String, from endpoint: URL, as type: T.Type) async throws -> T {
        let (data, _) = try await request("GET", path, at: endpoint, expect: [200, 503])
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch {
            throw PatroniError(.badAnswer, "\(Self.describe(endpoint))/\(path) answered something that is not Patroni's JSON: \(error)")
        }
    }

    /// Tries each endpoint in turn; an answer that Patroni refused (4xx/5xx with a
    /// message) is final, a connection problem moves on to the next endpoint.
    private func firstAnswer<T>(retryingOnlyUnsent: Bool = false, _ call: (URL) async throws -> T) async throws -> T {
        var problems: [String] = []
        for endpoint in endpoints {
            do {
                return try await call(endpoint)
            } catch let error as PatroniError where error.kind == .unreachable {
                problems.append(error.message)
            } catch let error as PatroniError where error.kind == .noAnswer {
                if retryingOnlyUnsent { throw error }
                problems.append(error.message)
            }
        }
        if endpoints.isEmpty { throw PatroniError(.unreachable, "no Patroni REST endpoint configured") }
        throw PatroniError(.unreachable, problems.joined(separator: "; "))
    }

    private func request(
        _ method: String, _ path: String, at endpoint: URL, body: Data? = nil, expect: Set<Int>, timeout: Duration? = nil
    ) async throws -> (Data, Int) {
        var request = URLRequest(url: endpoint.appendingPathComponent(path))
        request.httpMethod = method
        request.timeoutInterval = Double((timeout ?? self.timeout).components.seconds) + Double((timeout ?? self.timeout).components.attoseconds) / 1e18
        request.setValue("application/json", forHTTPHeaderField: "Accept")
        if let body {
            request.httpBody = body
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        if let credentials {
            let token = Data("\(credentials.username):\(credentials.password)".utf8).base64EncodedString()
            request.setValue("Basic \(token)", forHTTPHeaderField: "Authorization")
        }
        let data: Data
        let response: URLResponse
        do {
            (data, response) = try await Self.session.data(for: request)
        } catch {
            // Only a connection that was never made proves the request was not received.
            let unsent: Set<URLError.Code> = [.cannotConnectToHost, .cannotFindHost, .dnsLookupFailed, .notConnectedToInternet, .badURL, .unsupportedURL]
            if let error = error as? URLError, unsent.contains(error.code) {
                throw PatroniError(.unreachable, "\(Self.describe(endpoint)) did not answer: \(error.localizedDescription)")
            }
            throw PatroniError(
                .noAnswer, "\(Self.describe(endpoint)) \(method) /\(path) got no answer (\(error.localizedDescription))")
        }
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard expect.contains(status) else {
            let text = String(decoding: data.prefix(300), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw PatroniError(.refused(status: status), "\(Self.describe(endpoint)) \(method) /\(path): HTTP \(status)\(text.isEmpty ? "" : ": \(text)")")
        }
        return (data, status)
    }

    /// `scheme://host:port` of an endpoint, without any user or password in the URL.
    public static func describe(_ endpoint: URL) -> String {
        var components = URLComponents(url: endpoint, resolvingAgainstBaseURL: false)
        components?.user = nil
        components?.password = nil
        components?.path = ""
        components?.query = nil
        return components?.string ?? "Patroni endpoint"
    }

    /// No cookies, no cache.
    static let session: URLSession = {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpShouldSetCookies = false
        configuration.urlCache = nil
        configuration.timeoutIntervalForRequest = 60
        return URLSession(configuration: configuration)
    }()
}

/// Why a Patroni call failed.
public struct PatroniError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        /// No endpoint could be reached: the request was not received.
        case unreachable
        /// The request was sent and no answer came (a timeout, a dropped connection): what
        /// it did is unknown.
        case noAnswer
        /// Patroni answered with an error status (412: wrong leader or candidate, 503: …).
        case refused(status: Int)
        /// The answer was not the JSON Patroni sends.
        case badAnswer
    }

    public var kind: Kind
    public var message: String
    public var description: String { message }

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
}
