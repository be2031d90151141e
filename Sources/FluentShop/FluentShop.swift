import Fluent
import FluentPostgresDriver
import Foundation
import PostgresClient
import Switchyard
import SwitchyardFluent
import SwitchyardVapor
import Vapor

/// A small Vapor + Fluent shop: customers and their orders, as a Vapor app would write
/// them. The same app runs on Switchyard (`.switchyard`) or on plain FluentPostgresDriver
/// (`.plain`), for the tests and for `switchyard-fluent-bench`.
public enum FluentShop {
    public enum Backend: Sendable {
        /// Routed by Switchyard, with its middleware.
        case switchyard(ClusterConfiguration)
        /// FluentPostgresDriver on the primary (host, port, user, database), no middleware.
        case plain(host: String, port: Int, user: String, password: String?, database: String)

        /// FluentPostgresDriver on the server `conninfo` names (its password, or the one its
        /// passfile gives), on `database`.
        public static func plain(conninfo: String, database: String) -> Backend {
            let fields = Dictionary(Conninfo.parse(conninfo) ?? [], uniquingKeysWith: { $1 })
            let host = fields["hostaddr"] ?? fields["host"] ?? "127.0.0.1", port = Int(fields["port"] ?? "") ?? 5432
            let user = fields["user"] ?? ProcessInfo.processInfo.environment["USER"] ?? "postgres"
            let secret =
                fields["password"] ?? fields["passfile"].flatMap { Self.password(in: $0, host: fields["host"] ?? host, port: port, user: user, database: database) }
            return .plain(host: host, port: port, user: user, password: secret, database: database)
        }

        /// The password a libpq password file (`host:port:database:user:password`, `*` for
        /// any, `\:` and `\\` escaped) gives for this server and user, as libpq would pick it.
        static func password(in passfile: String, host: String, port: Int, user: String, database: String) -> String? {
            guard let text = try? String(contentsOfFile: passfile, encoding: .utf8) else { return nil }
            for line in text.split(separator: "\n") where !line.hasPrefix("#") {
                var fields: [String] = [], current = "", escaped = false
                for character in line {
                    if escaped { current.append(character); escaped = false } else if character == "\\" { escaped = true }
                    else if character == ":" && fields.count < 4 { fields.append(current); current = "" } else { current.append(character) }
                }
                fields.append(current)
                guard fields.count == 5 else { continue }
                func matches(_ field: String, _ value: String) -> Bool { field == "*" || field == value }
                if matches(fields[0], host), matches(fields[1], String(port)), matches(fields[2], database), matches(fields[3], user) {
                    return fields[4]
                }
            }
            return nil
        }
    }

    /// A started app on 127.0.0.1, and the port it listens on.
    public struct Running: Sendable {
        public let app: Application
        public let port: Int

        public var baseURL: URL { URL(string: "http://127.0.0.1:\(port)")! }

        public func stop() async {
            await app.server.shutdown()
            try? await app.asyncShutdown()
        }
    }

    /// Makes the app, runs its migrations (seeding `customers` customers), and starts
    /// listening on a free port.
    public static func start(_ backend: Backend, customers: Int = 100, logLevel: Logger.Level = .error) async throws -> Running {
        let app = try await Application.make(Environment(name: "production", arguments: ["fluent-shop"]))
        app.logger.logLevel = logLevel
        do {
            switch backend {
            case .switchyard(let configuration):
                app.databases.use(.switchyard(configuration, source: "fluent-shop"), as: .switchyard)
                app.middleware.use(SwitchyardVaporMiddleware(routing: configuration.http))
            case .plain(let host, let port, let user, let password, let database):
                app.databases.use(
                    .postgres(
                        configuration: SQLPostgresConfiguration(
                            hostname: host, port: port, username: user, password: password, database: database, tls: .disable)),
                    as: .psql)
            }
            app.migrations.add(CreateCustomer(), CreateOrder(), SeedCustomers(count: customers))
            try routes(app)
            try await app.autoMigrate()
            app.http.server.configuration.hostname = "127.0.0.1"
            app.http.server.configuration.port = 0
            try await app.server.start()
            guard let port = app.http.server.shared.localAddress?.port else {
                throw Abort(.internalServerError, reason: "the shop did not start listening")
            }
            return Running(app: app, port: port)
        } catch {
            await app.server.shutdown()
            try? await app.asyncShutdown()
            throw error
        }
    }

    static func routes(_ app: Application) throws {
        for prefix in ["api", "admin"] {
            let group = app.grouped(PathComponent(stringLiteral: prefix))
            group.get("customers", ":id") { req async throws -> CustomerView in
                CustomerView(try await customer(req))
            }
            group.put("customers", ":id") { req async throws -> CustomerView in
                let customer = try await customer(req)
                let change = try req.content.decode(CustomerChange.self)
                customer.name = change.name
                if let tags = change.tags { customer.tags = tags }
                try await customer.save(on: req.db)
                return CustomerView(customer)
            }
            // An eager load: the customer, then its orders (two statements).
            group.get("customers", ":id", "orders") { req async throws -> [OrderView] in
                let id = try req.parameters.require("id", as: Int.self)
                guard let customer = try await Customer.query(on: req.db).filter(\.$id == id).with(\.$orders).first() else {
                    throw Abort(.notFound)
                }
                return customer.orders.map(OrderView.init)
            }
            // An order and the customer's running total, in one transaction.
            group.post("customers", ":id", "orders") { req async throws -> OrderView in
                let id = try req.parameters.require("id", as: Int.self)
                let placed = try req.content.decode(PlacedOrder.self)
                return try await req.db.transaction { db in
                    guard let customer = try await Customer.find(id, on: db) else { throw Abort(.notFound) }
                    let order = Order(customerID: id, totalCents: placed.totalCents, status: .placed)
                    try await order.create(on: db)
                    customer.spentCents += placed.totalCents
                    try await customer.save(on: db)
                    return OrderView(order)
                }
            }
            // Raw SQLKit.
            group.get("stats") { req async throws -> Stats in
                guard let sql = req.db as? any SQLDatabase else { throw Abort(.internalServerError) }
                let row = try await sql.select().column(SQLFunction("count", args: SQLLiteral.all), as: "customers")
                    .column(SQLFunction("coalesce", args: SQLFunction("sum", args: SQLColumn("spent_cents")), SQLLiteral.numeric("0")), as: "spent")
                    .from(Customer.schema).first()
                guard let row else { throw Abort(.internalServerError) }
                return Stats(customers: try row.decode(column: "customers", as: Int.self), spentCents: try row.decode(column: "spent", as: Int.self))
            }
        }
    }

    static func customer(_ req: Request) async throws -> Customer {
        let id = try req.parameters.require("id", as: Int.self)
        guard let customer = try await Customer.find(id, on: req.db) else { throw Abort(.notFound) }
        return customer
    }
}

// MARK: Models (as any Fluent app writes them)

public final class Customer: Model, @unchecked Sendable {
    public static let schema = "customers"

    @ID(custom: "id", generatedBy: .database) public var id: Int?
    @Field(key: "name") public var name: String
    @Field(key: "email") public var email: String
    @Field(key: "tags") public var tags: [String]
    @Field(key: "spent_cents") public var spentCents: Int
    @OptionalField(key: "profile") public var profile: Profile?
    @Timestamp(key: "updated_at", on: .update) public var updatedAt: Date?
    @Children(for: \.$customer) public var orders: [Order]

    public init() {}

    public init(id: Int? = nil, name: String, email: String, tags: [String] = [], profile: Profile? = nil) {
        self.id = id
        self.name = name
        self.email = email
        self.tags = tags
        self.spentCents = 0
        self.profile = profile
    }
}

/// Stored as JSONB.
public struct Profile: Codable, Sendable, Equatable {
    public var city: String
    public var since: Date
    public var newsletter: Bool
}

public enum OrderStatus: String, Codable, Sendable, CaseIterable {
    case placed, shipped, cancelled
}

public final class Order: Model, @unchecked Sendable {
    public static let schema = "orders"

    @ID(key: .id) public var id: UUID?
    @Parent(key: "customer_id") public var customer: Customer
    @Field(key: "total_cents") public var totalCents: Int
    @Enum(key: "status") public var status: OrderStatus
    @Timestamp(key: "created_at", on: .create) public var createdAt: Date?

    public init() {}

    public init(customerID: Int, totalCents: Int, status: OrderStatus) {
        self.$customer.id = customerID
        self.totalCents = totalCents
        self.status = status
    }
}

struct CreateCustomer: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(Customer.schema)
            .field("id", .int, .identifier(auto: true))
            .field("name", .string, .required)
            .field("email", .string, .required)
            .field("tags", .array(of: .string), .required)
            .field("spent_cents", .int, .required)
            .field("profile", .dictionary)
            .field("updated_at", .datetime)
            .create()
    }
    func revert(on database: any Database) async throws { try await database.schema(Customer.schema).delete() }
}

struct CreateOrder: AsyncMigration {
    func prepare(on database: any Database) async throws {
        let status = try await database.enum("order_status").case("placed").case("shipped").case("cancelled").create()
        try await database.schema(Order.schema)
            .id()
            .field("customer_id", .int, .required, .references(Customer.schema, "id"))
            .field("total_cents", .int, .required)
            .field("status", status, .required)
            .field("created_at", .datetime)
            .create()
    }
    func revert(on database: any Database) async throws {
        try await database.schema(Order.schema).delete()
        try await database.enum("order_status").delete()
    }
}

struct SeedCustomers: AsyncMigration {
    let count: Int
    func prepare(on database: any Database) async throws {
        let since = Date(timeIntervalSince1970: 1_700_000_000.25)
        var batch: [Customer] = []
        for i in 1...max(count, 1) {
            batch.append(Customer(
                name: "Customer \(i)", email: "customer\(i)@example.com", tags: i % 3 == 0 ? ["vip", "a \"quoted\" tag"] : [],
                profile: i % 2 == 0 ? Profile(city: "Zürich", since: since, newsletter: i % 4 == 0) : nil))
            if batch.count == 500 {
                try await batch.create(on: database)
                batch.removeAll()
            }
        }
        if !batch.isEmpty { try await batch.create(on: database) }
    }
    func revert(on database: any Database) async throws { try await Customer.query(on: database).delete() }
}

// MARK: Request and response bodies

struct CustomerChange: Content {
    var name: String
    var tags: [String]?
}

struct PlacedOrder: Content {
    var totalCents: Int
}

struct CustomerView: Content {
    var id: Int
    var name: String
    var email: String
    var tags: [String]
    var spentCents: Int
    var profile: Profile?
    var updatedAt: Date?

    init(_ customer: Customer) {
        id = customer.id ?? 0
        name = customer.name
        email = customer.email
        tags = customer.tags
        spentCents = customer.spentCents
        profile = customer.profile
        updatedAt = customer.updatedAt
    }
}

struct OrderView: Content {
    var id: UUID
    var customerID: Int
    var totalCents: Int
    var status: OrderStatus
    var createdAt: Date?

    init(_ order: Order) {
        id = order.id ?? UUID()
        customerID = order.$customer.id
        totalCents = order.totalCents
        status = order.status
        createdAt = order.createdAt
    }
}

struct Stats: Content {
    var customers: Int
    var spentCents: Int
}
