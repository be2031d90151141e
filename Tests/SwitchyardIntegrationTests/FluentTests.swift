import Fluent
import Logging
import NIOCore
import NIOPosix
import SQLKit
import FluentShop
import Foundation
import PostgresClient
import Storefront
import Switchyard
import SwitchyardFluent
import SwitchyardTestSupport
import Testing

/// A database of its own on the shared cluster for one Fluent app (Fluent's models name
/// their tables, not a schema): created on the primary, replicated, dropped afterwards.
struct FluentDatabase {
    let name: String

    static func with<T>(_ body: (FluentDatabase) async throws -> T) async throws -> T {
        let database = FluentDatabase(name: "fluent_" + UUID().uuidString.prefix(8).lowercased())
        let test = try TestCluster.shared()
        try await test.withConnection("pg1") { connection in
            _ = try await connection.query("create database \(try await connection.quoteIdentifier(database.name))")
        }
        do {
            let value = try await body(database)
            await database.drop()
            return value
        } catch {
            await database.drop()
            throw error
        }
    }

    func drop() async {
        _ = try? await TestCluster.shared().withConnection("pg1") { connection in
            try await connection.query("drop database if exists \(try await connection.quoteIdentifier(name)) with (force)")
        }
    }

    /// Waits until every replica has replayed what the primary wrote so far (the
    /// migrations and the seed), so a test starts from a cluster where only its own writes
    /// can be missing on a replica.
    static func replicasCaughtUp() async throws {
        let test = try TestCluster.shared()
        let target = try await test.withConnection("pg1") { try await $0.query("select pg_current_wal_lsn()::text").scalar(String.self) }
        guard let target, let position = LSN(target) else { throw StorefrontTestError("no WAL position on the primary") }
        for replica in test.replicas {
            let caughtUp = try await TestCluster.eventually(timeout: .seconds(20)) {
                let replayed = try await test.withConnection(replica.name) {
                    try await $0.query("select pg_last_wal_replay_lsn()::text").scalar(String.self)
                }
                return replayed.flatMap(LSN.init).map { $0 >= position } ?? false
            }
            guard caughtUp else { throw StorefrontTestError("\(replica.name) did not replay the migrations in time") }
        }
    }

    /// The shared cluster's nodes, connecting to this database.
    func configuration(logFile: String? = nil) throws -> ClusterConfiguration {
        let test = try TestCluster.shared()
        var configuration = ClusterConfiguration(
            name: "fluent",
            nodes: try test.nodes.map { NodeEndpoint(name: $0.name, conninfo: try test.conninfo($0.name, database: name)) })
        configuration.replicaSelection = .random
        configuration.monitorInterval = .milliseconds(250)
        configuration.queryLogFile = logFile
        return configuration
    }

    /// A started shop on this database, stopped after `body`, also when it throws.
    func withShop<T>(
        logFile: String? = nil, customers: Int = 100, _ body: (FluentShop.Running) async throws -> T
    ) async throws -> T {
        let shop = try await FluentShop.start(.switchyard(try configuration(logFile: logFile)), customers: customers)
        do {
            try await Self.replicasCaughtUp()
            let value = try await body(shop)
            await shop.stop()
            return value
        } catch {
            await shop.stop()
            throw error
        }
    }
}

extension ClusterTests {
    /// A Vapor app with Fluent models, unchanged, on Switchyard, over real HTTP.
    @Suite struct FluentTests {
        @Test func fluentReadBacksWithTheCookieAreNeverStaleAndWithoutItTheRaceIsReal() async throws {
            let test = try TestCluster.shared()
            try await FluentDatabase.with { database in
                try await test.local.delay(node: "pg2", milliseconds: 300)
                try await test.local.delay(node: "pg3", milliseconds: 300)
                do {
                    try await database.withShop { shop in
                        try await StorefrontTests.expectTheCookieClosesTheRace(shop.baseURL)
                        // Cookies of the same name planted beside the real one (ahead of the
                        // primary, and zero) neither hide the real token nor pin the visitor.
                        let planted = ["switchyard_token=sy1:FFFFFFFF/FFFFFFFF", "switchyard_token=sy1:0/0"]
                        let visitor = StorefrontVisitor(baseURL: shop.baseURL)
                        var plantedStale = 0
                        for i in 1...50 {
                            let name = "planted \(i)"
                            let put = try await visitor.send(
                                "PUT", "/api/customers/\(i)", body: Data(#"{"name": "\#(name)"}"#.utf8), plantedCookies: planted)
                            #expect(put.status == 200)
                            let get = try await visitor.send("GET", "/api/customers/\(i)", body: nil, plantedCookies: planted)
                            if get.json?["name"] as? String != name { plantedStale += 1 }
                        }
                        #expect(plantedStale == 0, "\(plantedStale) of 50 read-backs beside planted cookies were stale")
                        let kept = try #require(visitor.cookieJar["switchyard_token"].flatMap(ConsistencyToken.init))
                        #expect(kept.lsn < LSN(UInt64.max) && kept.lsn > LSN(0), "the visitor's token is \(kept)")
                    }
                } catch {
                    try? await test.local.delay(node: "pg2", milliseconds: 0)
                    try? await test.local.delay(node: "pg3", milliseconds: 0)
                    throw error
                }
                try await test.local.delay(node: "pg2", milliseconds: 0)
                try await test.local.delay(node: "pg3", milliseconds: 0)
            }
        }

        static func entries(_ path: String) throws -> [QueryLogEntry] {
            let text = try String(contentsOfFile: path, encoding: .utf8)
            return try text.split(separator: "\n").map { try JSONDecoder().decode(QueryLogEntry.self, from: Data($0.utf8)) }
        }

        @Test func fluentMigrationsAdminRoutesAndTransactionsStayOnThePrimaryAndEverythingIsLogged() async throws {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fluent-log-\(UUID().uuidString.prefix(8))")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let logFile = directory.appendingPathComponent("queries.jsonl").path
            try await FluentDatabase.with { database in
                try await database.withShop(logFile: logFile) { shop in
                    let visitor = StorefrontVisitor(baseURL: shop.baseURL)
                    for id in 1...10 {
                        #expect(try await visitor.get("/admin/customers/\(id)").status == 200)
                        #expect(try await visitor.put("/admin/customers/\(id)", json: ["name": "staff \(id)"]).status == 200)
                    }
                    let order = try await visitor.send("POST", "/api/customers/7/orders", body: Data(#"{"totalCents": 1250}"#.utf8))
                    #expect(order.status == 200, "\(String(decoding: order.body, as: UTF8.self))")
                    #expect(order.json?["status"] as? String == "placed")
                    let customer = try await visitor.get("/api/customers/7")
                    #expect(customer.json?["spentCents"] as? Int == 1250)
                    // A visitor without a token, once the replicas have it all (and the
                    // monitor has seen them): public reads on replicas.
                    try await FluentDatabase.replicasCaughtUp()
                    try await Task.sleep(for: .milliseconds(600))
                    let reader = StorefrontVisitor(baseURL: shop.baseURL, keepsCookies: false)
                    // An eager load reads the customer and then its orders.
                    let orders = try await reader.get("/api/customers/7/orders")
                    #expect(orders.status == 200)
                    let list = try #require(try JSONSerialization.jsonObject(with: orders.body) as? [[String: Any]])
                    #expect(list.count == 1 && list.first?["totalCents"] as? Int == 1250)
                    // Raw SQLKit.
                    let stats = try await reader.get("/api/stats")
                    #expect(stats.json?["customers"] as? Int == 100)
                    #expect(stats.json?["spentCents"] as? Int == 1250)
                    // A missing customer is Vapor's own 404 body, through the middleware.
                    let missing = try await visitor.get("/api/customers/100000")
                    #expect(missing.status == 404)
                    #expect(missing.json?["reason"] as? String == "Not Found")
                }
            }
            let entries = try Self.entries(logFile)
            #expect(!entries.isEmpty)
            #expect(entries.allSatisfy { $0.source == "fluent-shop" }, "every statement carries the app's name")
            // Migrations: DDL, the enum type and Fluent's bookkeeping, all on the primary.
            let migrations = entries.filter { $0.context == nil }
            #expect(migrations.contains { $0.sql.contains("CREATE TABLE") && $0.sql.contains("\"customers\"") })
            #expect(migrations.contains { $0.sql.contains("CREATE TYPE") && $0.sql.contains("order_status") })
            #expect(migrations.contains { $0.sql.contains("_fluent_migrations") })
            #expect(migrations.allSatisfy { $0.node == "pg1" }, "\(migrations.filter { $0.node != "pg1" }.map(\.sql))")
            // /admin never reached a replica.
            let admin = entries.filter { $0.context == "admin" }
            #expect(admin.count >= 20)
            #expect(admin.allSatisfy { $0.node == "pg1" }, "\(admin.filter { $0.node != "pg1" }.map { "\($0.node): \($0.sql)" })")
            // The order's transaction: one node, begin to commit.
            let transaction = entries.filter { $0.reason.contains("transaction") }
            #expect(transaction.first?.sql.lowercased() == "begin")
            #expect(transaction.last?.sql.lowercased() == "commit")
            #expect(transaction.contains { $0.sql.hasPrefix("INSERT INTO \"orders\"") })
            #expect(Set(transaction.map(\.node)) == ["pg1"])
            // Public reads may use replicas, and the eager load's second query is a read.
            let publicReads = entries.filter { $0.context == "public" && $0.operation == .read }
            #expect(publicReads.contains { $0.sql.contains("FROM \"orders\"") })
            #expect(publicReads.contains { $0.sql.contains("count(") })
            #expect(publicReads.contains { $0.node != "pg1" }, "no public read reached a replica")
        }

        @Test func aFluentClusterThatCouldNotStartIsTriedAgainByTheNextQuery() async throws {
            let root = FileManager.default.temporaryDirectory.appendingPathComponent("fluent-start-\(UUID().uuidString.prefix(8))")
            defer { try? FileManager.default.removeItem(at: root) }
            // The query log's folder does not exist yet: the cluster cannot be made.
            var configuration = try FluentDatabase(name: "postgres").configuration(logFile: root.appendingPathComponent("queries.jsonl").path)
            configuration.queryLogSource = "fluent-retry"
            let databases = Databases(threadPool: .singleton, on: MultiThreadedEventLoopGroup.singleton)
            databases.use(.switchyard(configuration), as: .switchyard)
            let database = try #require(databases.database(logger: Logger(label: "test.fluent"), on: MultiThreadedEventLoopGroup.singleton.any()))
            let sql = try #require(database as? any SQLDatabase)
            await #expect(throws: (any Error).self) { try await sql.raw("select 1 as one").first() }
            try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
            let row = try await sql.raw("select 1 as one").first()
            #expect(try row?.decode(column: "one", as: Int.self) == 1)
            await databases.shutdownAsync()
            #expect(FileManager.default.fileExists(atPath: root.appendingPathComponent("queries.jsonl").path))
        }

        @Test func fluentFieldsRoundTripThroughTheTextProtocol() async throws {
            let tags = ["a,b", "{x}", "\"q\"", "back\\slash", "NULL", "", "ünï"]
            try await FluentDatabase.with { database in
                try await database.withShop(customers: 12) { shop in
                    let visitor = StorefrontVisitor(baseURL: shop.baseURL)
                    // Seeded: an array with a quoted element, JSONB with a date and non-ASCII text.
                    let six = try await visitor.get("/admin/customers/6")
                    #expect(six.json?["tags"] as? [String] == ["vip", "a \"quoted\" tag"])
                    let profile = try #require(six.json?["profile"] as? [String: Any])
                    #expect(profile["city"] as? String == "Zürich")
                    #expect(profile["newsletter"] as? Bool == false)
                    // Vapor writes dates as ISO 8601 (whole seconds).
                    #expect(profile["since"] as? String == "2023-11-14T22:13:20Z")
                    // Written back through Fluent: tags with commas, braces, quotes, backslashes, NULL-like text.
                    let put = try await visitor.put("/admin/customers/6", json: ["name": "Ω'; drop table customers; --", "tags": tags])
                    #expect(put.status == 200, "\(String(decoding: put.body, as: UTF8.self))")
                    let again = try await visitor.get("/admin/customers/6")
                    #expect(again.json?["tags"] as? [String] == tags)
                    #expect(again.json?["name"] as? String == "Ω'; drop table customers; --")
                    #expect(again.json?["updatedAt"] != nil)
                    let none = try await visitor.get("/admin/customers/5")
                    #expect(none.json?["profile"] == nil)
                    #expect(none.json?["tags"] as? [String] == [])
                }
                // The same rows through plain FluentPostgresDriver (binary protocol): what one
                // driver wrote, the other reads alike — an app can move either way.
                let plain = try await FluentShop.start(
                    .plain(conninfo: try TestCluster.shared().conninfo("pg1"), database: database.name), customers: 12)
                do {
                    let visitor = StorefrontVisitor(baseURL: plain.baseURL)
                    for id in [5, 6] {
                        let theirs = try await visitor.get("/api/customers/\(id)")
                        #expect(theirs.status == 200, "\(String(decoding: theirs.body, as: UTF8.self))")
                        #expect(theirs.json?["tags"] as? [String] == (id == 6 ? tags : []))
                    }
                    #expect(try await visitor.get("/api/customers/6").json?["name"] as? String == "Ω'; drop table customers; --")
                    let profile = try #require(try await visitor.get("/api/customers/2").json?["profile"] as? [String: Any])
                    #expect(profile["since"] as? String == "2023-11-14T22:13:20Z")
                    // Written by FluentPostgresDriver, read through Switchyard below.
                    #expect(try await visitor.put("/api/customers/4", json: ["name": "plain", "tags": ["from", "the driver"]]).status == 200)
                    await plain.stop()
                } catch {
                    await plain.stop()
                    throw error
                }
                try await database.withShop(customers: 12) { shop in
                    let four = try await StorefrontVisitor(baseURL: shop.baseURL).get("/admin/customers/4")
                    #expect(four.json?["name"] as? String == "plain")
                    #expect(four.json?["tags"] as? [String] == ["from", "the driver"])
                    #expect((four.json?["profile"] as? [String: Any])?["city"] as? String == "Zürich")
                }
            }
        }
    }
}
