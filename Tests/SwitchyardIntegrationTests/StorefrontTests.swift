import Foundation
import Hummingbird
import LocalCluster
import Logging
import PostgresClient
import Storefront
import Switchyard
import SwitchyardTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A storefront on the shared cluster, listening on a free port, with its own sample
/// schema (a small one) and, optionally, a JSON Lines query log.
struct RunningStorefront {
    let baseURL: URL
    let cluster: Cluster
    let schema: String
    let task: Task<Void, any Error>

    static func start(
        schema: String, selection: ReplicaSelection = .random, logFile: String? = nil, logMaxBytes: Int = 64 << 20,
        serverTiming: Bool = false, requestDeadline: Duration = .seconds(5)
    ) async throws -> RunningStorefront {
        let test = try TestCluster.shared()
        var configuration = ClusterConfiguration(
            name: "shop", nodes: try test.nodes.map { NodeEndpoint(name: $0.name, conninfo: try test.conninfo($0.name)) })
        configuration.replicaSelection = selection
        configuration.monitorInterval = .milliseconds(250)
        configuration.queryLogFile = logFile
        configuration.queryLogMaxBytes = logMaxBytes
        configuration.queryLogSource = "storefront"
        configuration.http.serverTiming = serverTiming
        let cluster = try Cluster(configuration: configuration)
        await cluster.start()
        do {
            let storefront = try await Storefront(cluster: cluster, schema: schema, requestDeadline: requestDeadline)
            try await storefront.loadSampleData(events: 100) { _ in }
            let port = Mutex<Int?>(nil)
            // Stopping by cancellation makes the server log an error; tests do not need it.
            var logger = Logger(label: "test.storefront")
            logger.logLevel = .critical
            let app = storefront.application(port: 0, logger: logger) { bound in port.withLock { $0 = bound } }
            let task = Task { try await app.run() }
            let listening = try await TestCluster.eventually(timeout: .seconds(20)) { port.withLock { $0 } != nil }
            guard listening, let bound = port.withLock({ $0 }) else {
                task.cancel()
                throw StorefrontTestError("the storefront did not start listening")
            }
            return RunningStorefront(
                baseURL: URL(string: "http://127.0.0.1:\(bound)")!, cluster: cluster, schema: schema, task: task)
        } catch {
            await cluster.shutdown()
            throw error
        }
    }

    func stop() async {
        task.cancel()
        _ = await task.result
        await cluster.shutdown()
    }

    /// Runs `body` with a started storefront and stops it afterwards, also on failure.
    static func with<T>(
        schema: String, selection: ReplicaSelection = .random, logFile: String? = nil, logMaxBytes: Int = 64 << 20,
        serverTiming: Bool = false, requestDeadline: Duration = .seconds(5), _ body: (RunningStorefront) async throws -> T
    ) async throws -> T {
        let shop = try await start(
            schema: schema, selection: selection, logFile: logFile, logMaxBytes: logMaxBytes, serverTiming: serverTiming,
            requestDeadline: requestDeadline)
        do {
            let value = try await body(shop)
            await shop.stop()
            return value
        } catch {
            await shop.stop()
            throw error
        }
    }

    static func dropSchema(_ schema: String) async {
        _ = try? await TestCluster.shared().withConnection("pg1") { connection in
            try await connection.query("drop schema if exists \(try await connection.quoteIdentifier(schema)) cascade")
        }
    }
}

struct StorefrontTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension ClusterTests {
    /// The sample storefront over real HTTP, on the real cluster.
    @Suite struct StorefrontTests {
        static func schema() -> String { "shop_" + UUID().uuidString.prefix(8).lowercased() }

        /// `pairs` PUT-then-GET round trips for customer ids `ids`; returns the stale reads.
        static func readBacks(_ visitor: StorefrontVisitor, pairs: Int, ids: ClosedRange<Int>, prefix: String = "/api") async throws -> Int {
            var stale = 0
            for i in 1...pairs {
                let id = ids.lowerBound + i % ids.count
                let name = "visitor \(i) \(UUID().uuidString.prefix(6))"
                let put = try await visitor.put("\(prefix)/customers/\(id)", json: ["name": name])
                #expect(put.status == 200)
                #expect(put.json?["name"] as? String == name)
                let get = try await visitor.get("\(prefix)/customers/\(id)")
                #expect(get.status == 200)
                if get.json?["name"] as? String != name { stale += 1 }
            }
            return stale
        }

        /// 200 read-backs with the token cookie are never stale; 200 by a client that drops
        /// cookies, on other rows, show the race (any app: the storefront, a Vapor one).
        static func expectTheCookieClosesTheRace(_ baseURL: URL) async throws {
            let browser = StorefrontVisitor(baseURL: baseURL)
            let stale = try await readBacks(browser, pairs: 200, ids: 1...50)
            #expect(stale == 0, "\(stale) of 200 read-backs with the cookie were stale")
            let cookie = try #require(browser.cookieJar["switchyard_token"])
            #expect(ConsistencyToken(cookie) != nil)
            let noCookies = StorefrontVisitor(baseURL: baseURL, keepsCookies: false)
            let raced = try await readBacks(noCookies, pairs: 200, ids: 51...100)
            #expect(raced > 0, "no stale read without the token: the race did not show")
            #expect(noCookies.cookieJar.isEmpty)
        }

        @Test func readBacksWithTheCookieAreNeverStaleAndWithoutItTheRaceIsReal() async throws {
            let test = try TestCluster.shared()
            let schema = Self.schema()
            defer { Task { await RunningStorefront.dropSchema(schema) } }
            try await test.local.delay(node: "pg3", milliseconds: 300)
            do {
                try await RunningStorefront.with(schema: schema, selection: .random) { shop in
                    try await Self.expectTheCookieClosesTheRace(shop.baseURL)
                }
            } catch {
                try? await test.local.delay(node: "pg3", milliseconds: 0)
                throw error
            }
            try await test.local.delay(node: "pg3", milliseconds: 0)
        }

        /// Scans of the customers table on each replica (sequential + index).
        static func replicaScans(_ schema: String) async throws -> [String: Int] {
            let test = try TestCluster.shared()
            var scans: [String: Int] = [:]
            for replica in test.replicas {
                scans[replica.name] = try await test.withConnection(replica.name) { connection in
                    try await connection.query(
                        "select coalesce(seq_scan, 0) + coalesce(idx_scan, 0) from pg_stat_user_tables where schemaname = $1 and relname = 'customers'",
                        [schema]
                    ).scalar(Int.self) ?? 0
                }
            }
            return scans
        }

        @Test func adminRequestsRunEveryStatementOnThePrimary() async throws {
            let schema = Self.schema()
            defer { Task { await RunningStorefront.dropSchema(schema) } }
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sy-shop-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let log = folder.appendingPathComponent("admin.jsonl").path
            // Load the schema first, so the replicas have it and their counters exist.
            try await RunningStorefront.with(schema: schema) { _ in }
            try await Task.sleep(for: .seconds(1))
            let before = try await Self.replicaScans(schema)
            try await RunningStorefront.with(schema: schema, logFile: log) { shop in
                let staff = StorefrontVisitor(baseURL: shop.baseURL)
                for id in 1...50 {
                    let response = try await staff.get("/admin/customers/\(id)")
                    #expect(response.status == 200)
                }
                let stale = try await Self.readBacks(staff, pairs: 25, ids: 1...25, prefix: "/admin")
                #expect(stale == 0)
            }
            // The storefront's connections are closed: their statistics are flushed.
            try await Task.sleep(for: .seconds(1))
            #expect(try await Self.replicaScans(schema) == before, "a replica scanned customers during admin requests")
            let entries = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map {
                try JSONDecoder().decode(QueryLogEntry.self, from: Data($0.utf8))
            }
            let admin = entries.filter { $0.sql.contains("customers") }
            #expect(admin.count == 100)
            #expect(admin.allSatisfy { $0.node == "pg1" && $0.context == "admin" && $0.source == "storefront" })

            // The same measurement sees public reads on the replicas: it can fail.
            try await RunningStorefront.with(schema: schema) { shop in
                let visitor = StorefrontVisitor(baseURL: shop.baseURL)
                for id in 1...50 {
                    let response = try await visitor.get("/api/customers/\(id)")
                    #expect(response.status == 200)
                }
            }
            let moved = try await TestCluster.eventually(timeout: .seconds(10)) {
                let after = try await Self.replicaScans(schema)
                return after.values.reduce(0, +) > before.values.reduce(0, +)
            }
            #expect(moved, "public reads did not show in the replicas' scan counters")
        }

        @Test func theConsoleFollowsTheStorefrontsLogAcrossRotations() async throws {
            let test = try TestCluster.shared()
            let schema = Self.schema()
            defer { Task { await RunningStorefront.dropSchema(schema) } }
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sy-follow-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let log = folder.appendingPathComponent("storefront.jsonl").path
            let config = try test.writeConfig(in: folder, name: "follow-test")
            // A small rotation size: the file rotates every few requests.
            try await RunningStorefront.with(schema: schema, logFile: log, logMaxBytes: 3000) { shop in
                let visitor = StorefrontVisitor(baseURL: shop.baseURL)
                _ = try await visitor.get("/health")
                let binary = try CommandLineTests.executable.path
                let console = try await TmuxSession.start(
                    command: "\(binary) console --config \(config) --follow '\(folder.path)/*.jsonl'", width: 160, height: 48)
                defer { console.close() }
                try await console.waitFor(text: "Query log +1 followed")
                for id in 1...3 { _ = try await visitor.get("/api/products/\(id)") }
                let shown = try await console.waitFor(text: " P storefront ", timeout: .seconds(3))
                #expect(shown.contains("select id, name, pr"))  // how much of the SQL fits depends on the duration's width
                #expect(!FileManager.default.fileExists(atPath: log + ".1"), "rotated too early for the test to mean anything")
                for id in 1...30 { _ = try await visitor.get("/api/orders/\(id)") }
                #expect(FileManager.default.fileExists(atPath: log + ".1"), "the log did not rotate")
                try await console.waitFor(text: "select o.id", timeout: .seconds(3))
                // Writes in the storefront show as such, from its process, beside the console's own.
                _ = try await visitor.put("/api/customers/7", json: ["name": "followed"])
                try await console.waitFor(text: "│ pg1 write P storefront ", timeout: .seconds(3))
                try await console.send("q")
            }
        }

        @Test func aHungPrimaryGetsA503InTimeAndReplicasKeepServing() async throws {
            let schema = Self.schema()
            defer { Task { await RunningStorefront.dropSchema(schema) } }
            try await RunningStorefront.with(schema: schema, requestDeadline: .seconds(1)) { shop in
                let visitor = StorefrontVisitor(baseURL: shop.baseURL)
                let warm = try await visitor.get("/admin/customers/1")
                #expect(warm.status == 200)
                try await HungNodeTests.signal(SIGSTOP, node: "pg1")
                try await ensuring {
                    let clock = ContinuousClock()
                    let started = clock.now
                    let hung = try await visitor.get("/admin/customers/1")
                    #expect(hung.status == 503)
                    #expect((hung.json?["error"] as? String)?.contains("did not answer") == true, "\(hung.json ?? [:])")
                    #expect(clock.now - started < .seconds(4), "the request waited on the hung primary")
                    let read = try await visitor.get("/api/customers/2")
                    #expect(read.status == 200, "public reads stopped with the primary")
                } finally: {
                    try? await HungNodeTests.signal(SIGCONT, node: "pg1")
                }
                // Once it answers again, so does the shop.
                let back = try await TestCluster.eventually(timeout: .seconds(15)) {
                    (try? await visitor.get("/admin/customers/1"))?.status == 200
                }
                #expect(back)
            }
        }

        @Test func aStorefrontStartedWithExitWithParentEndsWhenItsParentDies() async throws {
            let test = try TestCluster.shared()
            let schema = Self.schema()
            defer { Task { await RunningStorefront.dropSchema(schema) } }
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sy-orphan-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let output = folder.appendingPathComponent("out.log").path
            let binary = try CommandLineTests.executable.path
            // A parent shell that starts the storefront, waits until it listens, and exits
            // without stopping it (as a demo killed with SIGKILL would).
            let script = """
                '\(binary)' storefront --config '\(test.local.configURL.path)' --port 0 --schema \(schema) --events 100 \
                  --exit-with-parent > '\(output)' 2>&1 < /dev/null &
                for i in $(seq 300); do grep -q '^listening on' '\(output)' && exit 0; sleep 0.1; done
                exit 1
                """
            let parent = try await ChildProcess.run(["/bin/sh", "-c", script])
            #expect(parent.status == 0, "the storefront did not start: \((try? String(contentsOfFile: output, encoding: .utf8)) ?? "")")
            let text = try String(contentsOfFile: output, encoding: .utf8)
            let url = try #require(text.split(separator: "\n").first { $0.hasPrefix("listening on ") }).dropFirst("listening on ".count)
            let gone = try await TestCluster.eventually(timeout: .seconds(15)) {
                try await ChildProcess.run(["/usr/bin/curl", "-s", "-o", "/dev/null", "--max-time", "2", "\(url)/health"]).status != 0
            }
            #expect(gone, "the orphaned storefront still answers")
            if !gone { _ = try? await ChildProcess.run(["/usr/bin/pkill", "-f", "--schema \(schema)"]) }
        }

        /// Sends `request` as raw bytes, closes the sending side, returns all that came back.
        static func exchange(_ port: Int, _ request: String) -> String {
            let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(socket) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var timeout = timeval(tv_sec: 10, tv_usec: 0)
            setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard connected == 0 else { return "connect failed" }
            let bytes = Array(request.utf8)
            var offset = 0
            while offset < bytes.count {
                let sent = bytes[offset...].withUnsafeBytes { send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                guard sent > 0 else { break }  // the server may answer and close before reading it all
                offset += sent
            }
            shutdown(socket, Int32(SHUT_WR))
            var answer = [UInt8]()
            var buffer = [UInt8](repeating: 0, count: 65536)
            while case let count = read(socket, &buffer, buffer.count), count > 0 { answer += buffer[..<count] }
            return String(decoding: answer, as: UTF8.self)
        }

        @Test func badRequestsGetJSONErrorsNeverAStack() async throws {
            let schema = Self.schema()
            defer { Task { await RunningStorefront.dropSchema(schema) } }
            try await RunningStorefront.with(schema: schema, serverTiming: true) { shop in
                let visitor = StorefrontVisitor(baseURL: shop.baseURL)
                func expectError(_ response: StorefrontVisitor.Response, _ status: Int, _ text: String) {
                    #expect(response.status == status)
                    #expect(response.headers["content-type"]?.hasPrefix("application/json") == true)
                    let message = response.json?["error"] as? String
                    #expect(message?.contains(text) == true, "\(message ?? String(decoding: response.body, as: UTF8.self))")
                }
                #expect(try await visitor.get("/health").status == 200)
                expectError(try await visitor.get("/nope"), 404, "no such route")
                expectError(try await visitor.get("/api/customers/abc"), 400, "positive whole number")
                expectError(try await visitor.get("/api/customers/-1"), 400, "positive whole number")
                expectError(try await visitor.get("/api/customers/99999999999999999999"), 400, "positive whole number")
                expectError(try await visitor.get("/api/customers/9999999"), 404, "no customer")
                expectError(try await visitor.send("PUT", "/api/customers/1", body: Data("{".utf8)), 400, "must be JSON")
                expectError(try await visitor.send("PUT", "/api/customers/1", body: Data()), 400, "must be JSON")
                expectError(try await visitor.put("/api/customers/1", json: ["name": "  "]), 422, "1 to 200")
                expectError(try await visitor.put("/api/customers/1", json: ["name": "a\u{7}b"]), 422, "control characters")
                expectError(try await visitor.put("/api/customers/1", json: ["name": String(repeating: "x", count: 201)]), 422, "1 to 200")
                expectError(
                    try await visitor.put("/api/customers/1", json: ["name": String(repeating: "x", count: 70_000)]), 413, "64 KiB")
                // What no HTTP library sends: a 100 KB cookie (over the parser's header limit)
                // and a body that ends before its Content-Length. Both JSON 400s (before: an
                // empty body, and "413 larger than 64 KiB").
                let port = try #require(shop.baseURL.port)
                let hugeCookie = Self.exchange(port, "GET /api/customers/1 HTTP/1.1\r\nHost: x\r\nCookie: switchyard_token="
                    + String(repeating: "a", count: 100_000) + "\r\n\r\n")
                #expect(hugeCookie.hasPrefix("HTTP/1.1 400") && hugeCookie.contains("application/json")
                    && hugeCookie.contains(#"{"error":"the request could not be read"#), "\(hugeCookie.prefix(300))")
                let shortBody = Self.exchange(port, "PUT /api/customers/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + "Content-Length: 100\r\n\r\n{\"name\":")
                #expect(shortBody.hasPrefix("HTTP/1.1 400") && shortBody.contains("ended before its Content-Length"), "\(shortBody.prefix(300))")
                expectError(try await visitor.get("/api/products?limit=1000"), 400, "limit")
                expectError(try await visitor.get("/api/products?after=x"), 400, "after")
                let page = try await visitor.get("/api/products?limit=3")
                #expect((page.json?["products"] as? [Any])?.count == 3)
                #expect(try await visitor.get("/api/orders/5").status == 200)
                #expect(try await visitor.get("/api/customers/36/orders").status == 200)
                // Server-Timing names the node that served the statement.
                let timed = try await visitor.get("/admin/customers/3")
                #expect(timed.headers["server-timing"]?.hasPrefix("db;desc=\"pg1\";dur=") == true, "\(timed.headers)")
                // A forged token (ahead of the primary) is dropped, and the cookie cleared.
                var request = URLRequest(url: shop.baseURL.appendingPathComponent("api/customers/3"))
                request.setValue("switchyard_token=sy1:FFFFFFFF/0", forHTTPHeaderField: "Cookie")
                let (_, response) = try await StorefrontVisitor.sharedSession.data(for: request)
                let cleared = (response as? HTTPURLResponse)?.value(forHTTPHeaderField: "Set-Cookie") ?? ""
                #expect((response as? HTTPURLResponse)?.statusCode == 200)
                #expect(cleared.hasPrefix("switchyard_token=; Path=/; Max-Age=0"), "\(cleared)")
            }
        }
    }
}

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
