import Foundation
import Hummingbird
import Prometheus
import Logging
import NIOCore
import PostgresClient
import Switchyard
import SwitchyardHummingbird

/// The sample web shop: JSON over HTTP on the sample schema, every request routed by
/// ``SwitchyardMiddleware`` (`/admin/*` in the admin context, the rest public, the
/// visitor's token in a cookie).
///
/// Routes (the interface tests and scripts use):
/// - `GET /health`
/// - `GET /api/customers/{id}`, `PUT /api/customers/{id}` with `{"name": "…"}`
/// - `GET /admin/customers/{id}`, `PUT /admin/customers/{id}`: the same, admin context
/// - `GET /api/products?after=ID&limit=N`, `GET /api/products/{id}`
/// - `GET /api/customers/{id}/orders`, `GET /api/orders/{id}`
///
/// Errors are JSON `{"error": "…"}`: 400 bad id or body, 404 unknown route or record,
/// 422 a name that cannot be stored, 503 when the database cannot answer.
public struct Storefront: Sendable {
    public let cluster: Cluster
    /// The sample schema's name, unquoted.
    public let schema: String
    /// When false, no middleware: every request runs in the fixed `public` context with a
    /// fresh session (what the same handlers cost without the middleware's work).
    public let middleware: Bool

    /// How long a request's database work may take before it is answered 503 (a node
    /// that stopped answering must not hold visitors forever).
    public let requestDeadline: Duration

    /// Quoted once at start (by libpq).
    private let quotedSchema: String

    /// Served at `/metrics` in Prometheus text format, when given (the registry the
    /// process's `PrometheusMetricsFactory` — or the cluster's ``Telemetry`` — writes to).
    public let metrics: PrometheusCollectorRegistry?

    public init(
        cluster: Cluster, schema: String = "demo", middleware: Bool = true, requestDeadline: Duration = .seconds(5),
        metrics: PrometheusCollectorRegistry? = nil
    ) async throws {
        self.cluster = cluster
        self.metrics = metrics
        self.schema = schema
        self.middleware = middleware
        self.requestDeadline = requestDeadline
        quotedSchema = try await cluster.quoteIdentifier(schema)
    }

    /// Loads the sample schema on the primary unless it is there.
    public func loadSampleData(events: Int, progress: @Sendable (String) -> Void) async throws {
        guard let primary = cluster.monitor.topology.primary, let pool = cluster.pool(primary.name) else {
            throw RoutingError.noPrimary(cluster.monitor.topology)
        }
        try await pool.withConnection { connection in
            try await SampleShop.load(on: connection, schema: schema, events: events, progress: progress)
        }
    }

    /// The application, listening on `host:port` (0 picks a free port; `onListening`
    /// gets the real one).
    public func application(
        host: String = "127.0.0.1", port: Int, logger: Logger = Logger(label: "switchyard.storefront"),
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let routes = router().buildResponder()
        // Outermost: every error becomes a JSON response (unknown routes too, which no
        // router middleware sees); nothing reaches a client as a stack or an empty body.
        let responder = CallbackResponder<BasicRequestContext> { request, context in
            do {
                let response = try await routes.respond(to: request, context: context)
                // The router answers an unknown route with a bare 404.
                if response.status == .notFound, response.headers[.contentType] == nil {
                    return StoreError.json(.notFound, "no such route: \(request.method.rawValue) \(request.uri.path)")
                }
                return response
            } catch {
                return JSONErrors.response(for: error, request: request, logger: context.logger)
            }
        }
        return Application(
            responder: responder,
            server: .http1(configuration: .init(additionalChannelHandlers: [ParserErrorBody()])),
            configuration: .init(address: .hostname(host, port: port), serverName: "switchyard-storefront"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? port) },
            logger: logger)
    }

    /// The routes, with the error and routing middleware in front.
    public func router() -> Hummingbird.Router<BasicRequestContext> {
        let router = Hummingbird.Router()
        if middleware {
            router.add(middleware: SwitchyardMiddleware(routing: cluster.configuration.http))
        } else {
            router.add(middleware: FixedContext())
        }
        router.get("/health") { _, _ in Health(status: "ok") }
        if let metrics {
            router.get("/metrics") { _, _ in
                Response(
                    status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                    body: ResponseBody(byteBuffer: ByteBuffer(bytes: metrics.emitToBuffer())))
            }
        }
        for prefix in ["/api", "/admin"] {
            router.get("\(prefix)/customers/{id}") { _, context in try await customer(id(context)) }
            router.put("\(prefix)/customers/{id}") { request, context in
                try await rename(id(context), Self.nameUpdate(from: request, context: context))
            }
        }
        router.get("/api/customers/{id}/orders") { _, context in try await orders(of: id(context)) }
        router.get("/api/orders/{id}") { _, context in try await order(id(context)) }
        router.get("/api/products/{id}") { _, context in try await product(id(context)) }
        router.get("/api/products") { request, _ in
            let after = try Self.integer(request.uri.queryParameters["after"], name: "after") ?? 0
            let limit = try Self.integer(request.uri.queryParameters["limit"], name: "limit") ?? 20
            guard (1...100).contains(limit) else { throw StoreError(.badRequest, "limit must be 1 to 100") }
            return try await products(after: after, limit: limit)
        }
        return router
    }

    // MARK: Handlers

    private func customer(_ id: Int) async throws -> Customer {
        let result = try await run {
            try await cluster.query(
                "select id, name, email, country, vip from \(quotedSchema).customers where id = $1", [id], table: "\(schema).customers")
        }
        guard let row = result.rows.first else { throw StoreError(.notFound, "no customer \(id)") }
        return try Customer(row)
    }

    private func rename(_ id: Int, _ update: NameUpdate) async throws -> Customer {
        let result = try await run(writes: true) {
            try await cluster.execute(
                "update \(quotedSchema).customers set name = $1 where id = $2 returning id, name, email, country, vip",
                [update.name, id], table: "\(schema).customers")
        }
        guard let row = result.rows.first else { throw StoreError(.notFound, "no customer \(id)") }
        return try Customer(row)
    }

    private func product(_ id: Int) async throws -> Product {
        let result = try await run {
            try await cluster.query(
                "select id, name, price::text, stock from \(quotedSchema).products where id = $1", [id], table: "\(schema).products")
        }
        guard let row = result.rows.first else { throw StoreError(.notFound, "no product \(id)") }
        return try Product(row)
    }

    private func products(after: Int, limit: Int) async throws -> ProductPage {
        let result = try await run {
            try await cluster.query(
                "select id, name, price::text, stock from \(quotedSchema).products where id > $1 order by id limit $2", [after, limit],
                table: "\(schema).products")
        }
        let products = try result.rows.map(Product.init)
        return ProductPage(products: products, next: products.count == limit ? products.last?.id : nil)
    }

    private func orders(of customer: Int) async throws -> OrderList {
        let result = try await run {
            try await cluster.query(
                "select id, customer_id, status, total::text, ordered_at::text from \(quotedSchema).orders where customer_id = $1 order by id desc limit 50",
                [customer], table: "\(schema).orders")
        }
        return OrderList(orders: try result.rows.map(Order.init))
    }

    private func order(_ id: Int) async throws -> OrderDetail {
        let result = try await run {
            try await cluster.query(
                """
                select o.id, o.customer_id, o.status, o.total::text, o.ordered_at::text, i.product_id, i.quantity, i.unit_price::text
                from \(quotedSchema).orders o left join \(quotedSchema).order_items i on i.order_id = o.id
                where o.id = $1 order by i.product_id
                """, [id], table: "\(schema).orders")
        }
        guard let first = result.rows.first else { throw StoreError(.notFound, "no order \(id)") }
        var items: [OrderItem] = []
        for row in result.rows where !row.isNull(5) {
            items.append(OrderItem(productId: try row.decode(5, as: Int.self), quantity: try row.decode(6, as: Int.self), unitPrice: try row.decode(7, as: String.self)))
        }
        return OrderDetail(order: try Order(first), items: items)
    }

    /// Runs a statement within ``requestDeadline``, turning database trouble into a JSON
    /// 503 (or 422 for a value the database refused) instead of a stack trace or a hang.
    /// A write is cancelled before the deadline with time left to hear how it ended: one
    /// that committed anyway is reported as done (with its token), one whose fate nobody
    /// could learn says so instead of "try again". A read has no fate to learn: it gets
    /// nearly the whole deadline (time to be retried on another node), and is let go.
    private func run<T: Sendable>(writes: Bool = false, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let grace = writes ? min(requestDeadline / 2, PostgresConnection.cancelGrace + .milliseconds(500)) : .zero
        let answerTime = writes ? requestDeadline - grace : requestDeadline - min(requestDeadline / 10, .milliseconds(300))
        switch await withDeadline(answerTime, grace: grace, body) {
        case .value(let value):
            return value
        case .timedOut:
            throw StoreError(.serviceUnavailable, "the database did not answer within \(formatDuration(requestDeadline)); nothing was changed; try again")
        case .unknown:
            throw StoreError(
                .serviceUnavailable,
                "the database did not answer within \(formatDuration(requestDeadline)); whether a change was saved is unknown: check before trying again")
        case .failed(let error as PostgresError) where error.outcomeUnknown:
            throw StoreError(.serviceUnavailable, "the database connection was lost; whether a change was saved is unknown: check before trying again")
        case .failed(let error as PostgresError):
            if error.isConnectionError || error.kind == .cancelled || error.kind == .closed {
                throw StoreError(.serviceUnavailable, "the database is not answering; try again")
            }
            if let state = error.sqlState, state.hasPrefix("22") || state.hasPrefix("23") {
                throw StoreError(.unprocessableContent, "the database refused the value (SQLSTATE \(state))")
            }
            throw StoreError(.internalServerError, "database error (SQLSTATE \(error.sqlState ?? "?"))")
        case .failed(is RoutingError), .failed(is CancellationError):
            throw StoreError(.serviceUnavailable, "no database node can take the request now; try again")
        case .failed(let error):
            throw error
        }
    }

    // MARK: Input

    private func id(_ context: BasicRequestContext) throws -> Int {
        guard let text = context.parameters.get("id"), let id = Int(text), id > 0, id <= Int32.max else {
            throw StoreError(.badRequest, "the id must be a positive whole number")
        }
        return id
    }

    static func integer(_ text: Substring?, name: String) throws -> Int? {
        guard let text else { return nil }
        guard let value = Int(text), value >= 0, value <= Int32.max else {
            throw StoreError(.badRequest, "\(name) must be a whole number from 0")
        }
        return value
    }

    /// The JSON body `{"name": "…"}`: at most 64 KiB, a name of 1 to 200 characters
    /// without control characters.
    static func nameUpdate(from request: Request, context: BasicRequestContext) async throws -> NameUpdate {
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: 64 << 10)
        } catch is NIOTooManyBytesError {
            throw StoreError(.contentTooLarge, "the body is larger than 64 KiB")
        } catch {
            // The client stopped sending before its Content-Length.
            throw StoreError(.badRequest, "the body ended before its Content-Length")
        }
        let update: NameUpdate
        do {
            update = try JSONDecoder().decode(NameUpdate.self, from: Data(body.readableBytesView))
        } catch {
            throw StoreError(.badRequest, "the body must be JSON: {\"name\": \"…\"}")
        }
        let name = update.name.trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty, name.count <= 200 else { throw StoreError(.unprocessableContent, "the name must be 1 to 200 characters") }
        guard !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw StoreError(.unprocessableContent, "the name must not contain control characters")
        }
        return NameUpdate(name: name)
    }
}

// MARK: JSON shapes

struct Health: ResponseEncodable { var status: String }

struct NameUpdate: Codable { var name: String }

struct Customer: ResponseEncodable, Equatable {
    var id: Int
    var name: String
    var email: String?
    var country: String?
    var vip: Bool

    init(_ row: PostgresRow) throws {
        id = try row.decode(0, as: Int.self)
        name = try row.decode(1, as: String.self)
        email = try row.decode(2, as: String?.self)
        country = try row.decode(3, as: String?.self)
        vip = try row.decode(4, as: Bool.self)
    }
}

struct Product: ResponseEncodable {
    var id: Int
    var name: String
    var price: String
    var stock: Int

    init(_ row: PostgresRow) throws {
        id = try row.decode(0, as: Int.self)
        name = try row.decode(1, as: String.self)
        price = try row.decode(2, as: String.self)
        stock = try row.decode(3, as: Int.self)
    }
}

struct ProductPage: ResponseEncodable {
    var products: [Product]
    /// Pass as `after` for the next page; nil on the last.
    var next: Int?
}

struct Order: ResponseEncodable {
    var id: Int
    var customerId: Int
    var status: String
    var total: String?
    var orderedAt: String

    init(_ row: PostgresRow) throws {
        id = try row.decode(0, as: Int.self)
        customerId = try row.decode(1, as: Int.self)
        status = try row.decode(2, as: String.self)
        total = try row.decode(3, as: String?.self)
        orderedAt = try row.decode(4, as: String.self)
    }
}

struct OrderList: ResponseEncodable { var orders: [Order] }

struct OrderItem: ResponseEncodable {
    var productId: Int
    var quantity: Int
    var unitPrice: String
}

struct OrderDetail: ResponseEncodable {
    var order: Order
    var items: [OrderItem]
}

// MARK: Errors and the baseline context

/// A client-facing error: its status and a one-line JSON message.
struct StoreError: HTTPResponseError {
    var status: HTTPResponse.Status
    var message: String

    init(_ status: HTTPResponse.Status, _ message: String) {
        self.status = status
        self.message = message
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        Self.json(status, message)
    }

    static func json(_ status: HTTPResponse.Status, _ message: String) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: body(message))))
    }

    /// `{"error": message}`.
    static func body(_ message: String) -> Data {
        struct Body: Encodable { var error: String }
        return (try? JSONEncoder().encode(Body(error: message))) ?? Data("{\"error\":\"error\"}".utf8)
    }
}

/// Errors as JSON responses.
enum JSONErrors {
    static func response(for error: any Error, request: Request, logger: Logger) -> Response {
        switch error {
        case let error as StoreError:
            return StoreError.json(error.status, error.message)
        case let error as any HTTPResponseError:
            let message =
                switch error.status {
                case .notFound: "no such route: \(request.method.rawValue) \(request.uri.path)"
                case .methodNotAllowed: "method not allowed here"
                default: error.status.reasonPhrase
                }
            return StoreError.json(error.status, message)
        default:
            logger.error("request failed", metadata: ["error": "\(error)"])
            return StoreError.json(.internalServerError, "internal error")
        }
    }
}

/// The baseline for measuring the middleware: the fixed public context, a fresh
/// session, no rules, no cookie.
struct FixedContext: RouterMiddleware {
    typealias Context = BasicRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        try await RoutingContext.public.run { try await next(request, context) }
    }
}
