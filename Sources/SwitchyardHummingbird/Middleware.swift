public import HTTPTypes
public import Hummingbird
public import Switchyard

/// Binds each request's routing context (chosen by ``HTTPRouting``'s rules) and carries
/// the visitor's read-your-writes token in a cookie, so a page that reads back what the
/// previous request wrote gets a node that has it.
///
/// ```swift
/// let cluster = try Cluster(configuration: .load(path: "switchyard.toml"))
/// let router = Router()
/// router.add(middleware: SwitchyardMiddleware(routing: cluster.configuration.http))
/// router.get("/items/{id}") { _, context in
///     let id = try context.parameters.require("id", as: Int.self)
///     return try await cluster.query("select name from items where id = $1", [id]).rows.first?[0] ?? ""
/// }
/// ```
///
/// The handler's statements (and its child tasks') see the context; an error response
/// still gets the cookie, because a write may have committed before the handler failed.
public struct SwitchyardMiddleware<Context: RequestContext>: RouterMiddleware {
    public let routing: HTTPRouting
    /// Only these fields are copied out of a request.
    @usableFromInline let headerNames: [HTTPField.Name]

    public init(routing: HTTPRouting = HTTPRouting()) {
        self.routing = routing
        headerNames = routing.consultedHeaders.compactMap { HTTPField.Name($0) }
    }

    @inlinable
    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let routed = routing.begin(facts(of: request))
        do {
            var response = try await routed.run { try await next(request, context) }
            Self.add(routed.responseHeaders(), to: &response.headers)
            return response
        } catch let error as any HTTPResponseError {
            var response = try error.response(from: request, context: context)
            Self.add(routed.responseHeaders(), to: &response.headers)
            return response
        }
    }

    /// What the routing core needs from a Hummingbird request.
    @inlinable
    public func facts(of request: Request) -> RequestFacts {
        var headers: [(name: String, value: String)] = []
        for name in headerNames {
            for value in request.headers[values: name] { headers.append((name.canonicalName, value)) }
        }
        return RequestFacts(
            method: request.method.rawValue, path: request.uri.path, headers: headers,
            isHTTPS: request.head.scheme?.lowercased() == "https")
    }

    @inlinable
    static func add(_ headers: [(name: String, value: String)], to fields: inout HTTPFields) {
        for (name, value) in headers {
            guard let name = HTTPField.Name(name) else { continue }
            fields.append(HTTPField(name: name, value: value))
        }
    }
}
