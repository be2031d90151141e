public import HTTPTypes
public import Hummingbird
public import Switchyard
import Logging

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
/// The handler's statements (and its child tasks') see the context; so do the statements
/// a streamed response body runs while it is written. Every response leaving through this
/// middleware carries the cookie, error responses included — a write may have committed
/// before the handler failed: an `HTTPResponseError` keeps its own response, any other
/// error becomes the 500 Hummingbird would have sent (the error logged), with the cookie.
///
/// What a streamed body cannot carry: its headers are on their way before the body
/// runs, so a token from a write made while streaming reaches no cookie. Write before
/// you stream.
public struct SwitchyardMiddleware<Context: RequestContext>: RouterMiddleware {
    public let routing: HTTPRouting
    /// Only these fields are copied out of a request.
    @usableFromInline let headerNames: [HTTPField.Name]

    public init(routing: HTTPRouting = HTTPRouting()) {
        self.routing = routing
        headerNames = routing.consultedHeaders.compactMap { HTTPField.Name($0) }
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let routed = routing.begin(facts(of: request))
        var response: Response
        do {
            response = try await routed.run { try await next(request, context) }
        } catch let error as any HTTPResponseError {
            response = try error.response(from: request, context: context)
        } catch {
            context.logger.error("request failed", metadata: ["error": "\(String(reflecting: error))"])
            response = Response(status: .internalServerError)
        }
        Self.add(routed.responseHeaders(), to: &response.headers)
        let body = response.body
        response.body = ResponseBody(contentLength: body.contentLength) { writer in
            try await routed.run { try await body.write(writer) }
        }
        return response
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
