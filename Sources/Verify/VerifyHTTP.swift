import Foundation
import Hummingbird
import Logging
import PostgresClient
import Storefront
import Switchyard

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The storefront `verify --http` drives: its own sample schema, in this process, on a
/// free port; visitors keep its token cookie as a browser does.
struct VerifyStorefront: Sendable {
    static let schema = "switchyard_verify_shop"
    let baseURL: URL
    let task: Task<Void, any Error>
    let requestDeadline: Duration

    static func start(cluster: Cluster, requestDeadline: Duration, keys: Int) async throws -> VerifyStorefront {
        let storefront = try await Storefront(cluster: cluster, schema: schema, requestDeadline: requestDeadline)
        try await storefront.loadSampleData(events: 0) { _ in }
        // Values only grow within a run: names left by an earlier run start over.
        _ = try await cluster.execute("update \(schema).customers set name = 'customer ' || id where id <= $1", [keys])
        let port = PortBox()
        var logger = Logger(label: "switchyard.verify.storefront")
        logger.logLevel = .critical
        let app = storefront.application(port: 0, logger: logger) { bound in port.set(bound) }
        let task = Task { try await app.run() }
        for _ in 0..<400 where port.value == nil { try await Task.sleep(for: .milliseconds(50)) }
        guard let bound = port.value else {
            task.cancel()
            throw VerifyError("the storefront did not start listening")
        }
        return VerifyStorefront(baseURL: URL(string: "http://127.0.0.1:\(bound)")!, task: task, requestDeadline: requestDeadline)
    }

    func stop() async {
        task.cancel()
        _ = await task.result
    }

    /// The value a customer's name carries (`verify 17`), nil for any other name.
    static func value(ofName name: String?) -> Int? {
        guard let name, name.hasPrefix("verify ") else { return nil }
        return Int(name.dropFirst(7))
    }

    /// Every verify customer's value on the final primary.
    static func finalState(_ cluster: Cluster, keys: Int) async throws -> Set<KeyValue> {
        let rows = try await cluster.query("select id, name from \(schema).customers where id <= $1", [keys])
        var state = Set<KeyValue>()
        for row in rows.rows {
            if let value = value(ofName: try row.decode(1, as: String?.self)) {
                state.insert(KeyValue(key: try row.decode(0, as: Int.self), value: value))
            }
        }
        return state
    }
}

final class PortBox: @unchecked Sendable {
    private let lock = NSLock()
    private var port: Int?
    func set(_ port: Int) { lock.withLock { self.port = port } }
    var value: Int? { lock.withLock { port } }
}

/// One visitor's operations over HTTP.
struct HTTPOperations: Sendable {
    let visitor: StorefrontVisitor
    let client: Int
    let recorder: Recorder

    static let planted = ["switchyard_token=sy1:FFFFFFFF/FFFFFFFF", "switchyard_token=sy1:0/0"]

    /// Customer ids are 1-based.
    func write(_ key: Int, value: Int, unit: Int, planted: [String], now: @Sendable () -> Double) async -> VerifyOperation.Outcome {
        let before = visitor.cookieJar["switchyard_token"]
        let start = now()
        do {
            let body = try JSONSerialization.data(withJSONObject: ["name": "verify \(value)"])
            let response = try await visitor.send("PUT", "/api/customers/\(key + 1)", body: body, plantedCookies: planted)
            let (outcome, errorClass) = Self.classify(response, write: true)
            recorder.add(VerifyOperation(
                id: 0, client: client, kind: .write, key: key + 1, value: value, node: Self.node(response), tokenBefore: before,
                tokenAfter: visitor.cookieJar["switchyard_token"], start: start, end: now(), outcome: outcome, errorClass: errorClass,
                error: outcome == .ok ? nil : Self.message(response), unit: unit))
            return outcome
        } catch {
            recorder.add(VerifyOperation(
                id: 0, client: client, kind: .write, key: key + 1, value: value, tokenBefore: before, start: start, end: now(),
                outcome: .unknown, errorClass: .connection, error: "\(error)", unit: unit))
            return .unknown
        }
    }

    func read(_ kind: VerifyOperation.Kind, _ key: Int, unit: Int, planted: [String], now: @Sendable () -> Double) async {
        let before = visitor.cookieJar["switchyard_token"]
        let start = now()
        do {
            let response = try await visitor.send("GET", "/api/customers/\(key + 1)", body: nil, plantedCookies: planted)
            let (outcome, errorClass) = Self.classify(response, write: false)
            recorder.add(VerifyOperation(
                id: 0, client: client, kind: kind, key: key + 1,
                observed: outcome == .ok ? VerifyStorefront.value(ofName: response.json?["name"] as? String) : nil,
                node: Self.node(response), tokenBefore: before, tokenAfter: visitor.cookieJar["switchyard_token"], start: start,
                end: now(), outcome: outcome, errorClass: errorClass, error: outcome == .ok ? nil : Self.message(response), unit: unit))
        } catch {
            recorder.add(VerifyOperation(
                id: 0, client: client, kind: kind, key: key + 1, tokenBefore: before, start: start, end: now(), outcome: .failed,
                errorClass: .connection, error: "\(error)", unit: unit))
        }
    }

    /// The node `Server-Timing` names (the last one, for a request that fell back).
    static func node(_ response: StorefrontVisitor.Response) -> String? {
        guard let timing = response.headers["server-timing"] else { return nil }
        let names = timing.components(separatedBy: "desc=\"").dropFirst().compactMap { $0.split(separator: "\"").first.map(String.init) }
        return names.last
    }

    static func message(_ response: StorefrontVisitor.Response) -> String {
        "HTTP \(response.status): \(response.json?["error"] as? String ?? String(decoding: response.body.prefix(200), as: UTF8.self))"
    }

    static func classify(_ response: StorefrontVisitor.Response, write: Bool) -> (VerifyOperation.Outcome, VerifyOperation.ErrorClass?) {
        guard response.status != 200 else { return (.ok, nil) }
        let text = (response.json?["error"] as? String) ?? ""
        if write && text.contains("unknown") { return (.unknown, .connection) }
        if response.status == 503 { return (.failed, text.contains("no database node") ? .routing : .connection) }
        return (.failed, .server)
    }
}
