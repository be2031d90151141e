public import Switchyard
public import Vapor

/// Binds each request's routing context (chosen by ``HTTPRouting``'s rules) and carries
/// the visitor's read-your-writes token in a cookie — the Vapor face of the same
/// framework-free core the Hummingbird middleware uses.
///
/// ```swift
/// app.databases.use(.switchyard(configuration), as: .psql)
/// app.middleware.use(SwitchyardVaporMiddleware(routing: configuration.http))
/// app.get("items", ":id") { req async throws in
///     try await Item.find(req.parameters.get("id"), on: req.db)   // routed by the request's context
/// }
/// ```
///
/// The context reaches what the handler awaits, Fluent's queries on `req.db` among them
/// (a task-local, inherited by the tasks Fluent's futures run on). A handler that returns
/// an `EventLoopFuture` without awaiting runs its statements outside the context: on the
/// primary, the safe default.
///
/// Every response leaving through this middleware carries the cookie, error responses
/// included (a write may have committed before the handler failed): the error is turned
/// into its response here, the way Vapor's `ErrorMiddleware` does, so the cookie can be
/// added. A streamed body runs after the headers left: write before you stream.
public struct SwitchyardVaporMiddleware: AsyncMiddleware {
    public let routing: HTTPRouting
    private let headerNames: [String]

    public init(routing: HTTPRouting = HTTPRouting()) {
        self.routing = routing
        headerNames = routing.consultedHeaders
    }

    public func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        let routed = routing.begin(facts(of: request))
        let response: Response
        do {
            response = try await routed.run { try await next.respond(to: request) }
        } catch {
            response = try await ErrorMiddleware.default(environment: request.application.environment)
                .respond(to: request, chainingTo: Failing(error: error)).get()
        }
        for (name, value) in routed.responseHeaders() { response.headers.add(name: name, value: value) }
        return response
    }

    /// What the routing core needs from a Vapor request.
    public func facts(of request: Request) -> RequestFacts {
        var headers: [(name: String, value: String)] = []
        for name in headerNames {
            for value in request.headers[name] { headers.append((name, value)) }
        }
        return RequestFacts(
            method: request.method.rawValue, path: request.url.path, headers: headers,
            isHTTPS: request.application.http.server.configuration.tlsConfiguration != nil)
    }

    /// Hands an error to Vapor's `ErrorMiddleware` to render.
    private struct Failing: Responder {
        let error: any Error
        func respond(to request: Request) -> EventLoopFuture<Response> { request.eventLoop.makeFailedFuture(error) }
    }
}
