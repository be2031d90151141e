import Foundation
import InMemoryTracing
import Logging
import Metrics
import PostgresClient
import Prometheus
import Storefront
import Switchyard
import SwitchyardTestSupport
import Synchronization
import Testing
import Tracing

/// One sample of Prometheus text format: name, labels, value.
struct PrometheusSample: Equatable {
    var name: String
    var labels: [String: String]
    var value: Double

    /// Every sample line of `text` (comments skipped).
    static func parse(_ text: String) -> [PrometheusSample] {
        text.split(separator: "\n").compactMap { line -> PrometheusSample? in
            guard !line.hasPrefix("#"), let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                return nil
            }
            let series = line[..<space]
            guard let open = series.firstIndex(of: "{") else { return PrometheusSample(name: String(series), labels: [:], value: value) }
            var labels: [String: String] = [:]
            for pair in series[series.index(after: open)..<series.index(before: series.endIndex)].split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2 else { continue }
                labels[String(parts[0])] = String(parts[1].dropFirst().dropLast())
            }
            return PrometheusSample(name: String(series[..<open]), labels: labels, value: value)
        }
    }
}

extension [PrometheusSample] {
    /// The sum of `name`'s samples whose labels include `labels`.
    func sum(_ name: String, _ labels: [String: String] = [:]) -> Double {
        filter { sample in sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value } }.map(\.value).reduce(0, +)
    }

    func contains(_ name: String, _ labels: [String: String] = [:]) -> Bool {
        contains { sample in sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value } }
    }
}

func stringAttribute(_ span: FinishedInMemorySpan, _ key: String) -> String? {
    if case .string(let value) = span.attributes.get(key) { return value }
    return nil
}

extension ClusterTests {
    /// Metrics through swift-metrics (exported by swift-prometheus) and spans through
    /// swift-distributed-tracing (an in-memory tracer), on the real cluster.
    @Suite struct TelemetryTests {
        @Test func statementsErrorsRefusalsAndLagAreCountedPerNodeContextAndOperation() async throws {
            let registry = PrometheusCollectorRegistry()
            let telemetry = Telemetry(metrics: PrometheusMetricsFactory(registry: registry), tracer: NoOpTracer())
            try await withRouted(selection: .roundRobin, telemetry: telemetry) { cluster, test in
                let table = try await RoutingTests.makeTable(cluster, test)
                try await RoutingContext.admin.run {
                    for id in 1...5 { _ = try await cluster.query("select note from \(table) where id = $1", [id]) }
                    await #expect(throws: PostgresError.self) { try await cluster.query("select * from no_such_table_here") }
                    await #expect(throws: RoutingError.self) { try await cluster.query("begin") }
                    // An export's COPY counts like any read.
                    let copied = try await cluster.copyOut("copy (select id from \(table)) to stdout") { _ in }
                    #expect(copied.node == "pg1" && copied.rows == 20)
                }
                try await RoutingContext.public.run {
                    for id in 1...10 { _ = try await cluster.query("select note from \(table) where id = $1", [id]) }
                    for id in 1...3 { try await cluster.execute("update \(table) set version = version + 1 where id = $1", [id]) }
                }
                try await Task.sleep(for: .milliseconds(600))  // monitor rounds: the gauges
                let samples = PrometheusSample.parse(registry.emitToString())
                #expect(samples.sum("switchyard_statements_total", ["node": "pg1", "context": "admin", "operation": "read"]) == 7)
                #expect(samples.sum("switchyard_statements_total", ["context": "public", "operation": "read"]) == 10)
                #expect(samples.sum("switchyard_statements_total", ["node": "pg1", "context": "public", "operation": "read"]) == 0)
                #expect(samples.sum("switchyard_statements_total", ["node": "pg1", "context": "public", "operation": "write"]) == 3)
                #expect(samples.sum("switchyard_statements_total", ["context": "none", "operation": "write"]) >= 2)
                #expect(samples.sum("switchyard_statement_errors_total", ["node": "pg1", "context": "admin", "code": "42P01"]) == 1)
                #expect(samples.sum("switchyard_refusals_total", ["context": "admin", "operation": "read", "kind": "refused"]) == 1)
                // A histogram in seconds, one count per statement.
                #expect(samples.sum("switchyard_statement_duration_seconds_count", ["context": "public", "operation": "read"]) == 10)
                #expect(samples.contains("switchyard_statement_duration_seconds_bucket", ["node": "pg1", "le": "+Inf"]))
                // The monitor's gauges.
                #expect(samples.sum("switchyard_node_up", ["node": "pg2"]) == 1)
                #expect(samples.sum("switchyard_node_is_primary", ["node": "pg1"]) == 1)
                #expect(samples.sum("switchyard_node_is_primary", ["node": "pg3"]) == 0)
                #expect(samples.contains("switchyard_replica_lag_seconds", ["node": "pg3"]))
                #expect(samples.contains("switchyard_replica_lag_bytes", ["node": "pg2"]))
                #expect(samples.sum("switchyard_monitor_round_seconds_count") >= 2)
            }
        }

        @Test func eachStatementIsASpanUnderTheRequestsAndAGuardedReadShowsBothAttempts() async throws {
            let tracer = InMemoryTracer()
            let registry = PrometheusCollectorRegistry()
            let telemetry = Telemetry(metrics: PrometheusMetricsFactory(registry: registry), tracer: tracer)
            let test = try TestCluster.shared()
            try await withRouted(selection: .random, telemetry: telemetry) { cluster, test in
                let table = try await RoutingTests.makeTable(cluster, test)
                try await test.local.delay(node: "pg3", milliseconds: 200)
                do {
                    tracer.clearAll()
                    for i in 1...150 {
                        try await tracer.withSpan("PUT /things/\(i % 10 + 1)", ofKind: .server) { _ in
                            try await RoutingContext.public.run {
                                try await cluster.execute("update \(table) set version = $1 where id = $2", [i, i % 10 + 1])
                                _ = try await cluster.query(
                                    "select version from \(table) where id = $1 and note <> 'a secret value' and version > 41", [i % 10 + 1],
                                    table: table)
                            }
                        }
                    }
                } catch {
                    try? await test.local.delay(node: "pg3", milliseconds: 0)
                    throw error
                }
                try await test.local.delay(node: "pg3", milliseconds: 0)
            }
            let spans = tracer.finishedSpans
            let requests = spans.filter { $0.kind == .server }
            #expect(requests.count == 150)
            let statements = spans.filter { $0.kind == .client }
            #expect(statements.count >= 300)
            // Every statement span is a child of its request's span.
            let requestIDs = Set(requests.map(\.spanID))
            #expect(statements.allSatisfy { $0.parentSpanID.map(requestIDs.contains) == true })
            let read = try #require(statements.first { stringAttribute($0, "db.operation.name") == "SELECT" })
            #expect(read.operationName.hasPrefix("SELECT rt_") && stringAttribute(read, "db.collection.name").map { read.operationName == "SELECT \($0)" } == true)
            #expect(stringAttribute(read, "db.system.name") == "postgresql")
            let text = try #require(stringAttribute(read, "db.query.text"))
            #expect(!text.contains("secret") && !text.contains("41"), "values left in \(text)")
            #expect(text.contains("$1") && text.contains("note <> ?"))
            #expect(stringAttribute(read, "server.address") == "127.0.0.1")
            #expect(read.attributes.get("server.port") != nil)
            #expect(stringAttribute(read, "switchyard.context") == "public")
            #expect(["pg1", "pg2", "pg3"].contains(stringAttribute(read, "switchyard.node") ?? ""))
            #expect(stringAttribute(read, "switchyard.route") != nil)
            // A guard that found pg3 behind: its attempt and the primary's, under one request.
            let byParent = Dictionary(grouping: statements, by: { $0.parentSpanID ?? "" })
            let fellBack = byParent.values.filter { children in
                children.contains { stringAttribute($0, "switchyard.route") == "guard-fb" && stringAttribute($0, "switchyard.node") == "pg1" }
            }
            #expect(!fellBack.isEmpty, "no guarded read fell back in 150 requests")
            for children in fellBack {
                let replicaAttempt = children.first { stringAttribute($0, "switchyard.outcome")?.contains("read again on the primary") == true }
                #expect(replicaAttempt != nil && stringAttribute(replicaAttempt!, "switchyard.node") != "pg1")
            }
            // Every fallback counted once, on the replica that was behind.
            let fallbackSpans = statements.filter { stringAttribute($0, "switchyard.route") == "guard-fb" }
            let samples = PrometheusSample.parse(registry.emitToString())
            #expect(samples.sum("switchyard_guard_fallbacks_total", ["context": "public"]) == Double(fallbackSpans.count))
            #expect(samples.sum("switchyard_guard_fallbacks_total", ["node": "pg1"]) == 0)
            _ = test
        }

        @Test func checkoutsThatWaitAreTimedAndThoseThatGiveUpCounted() async throws {
            let test = try TestCluster.shared()
            let registry = PrometheusCollectorRegistry()
            let pool = ConnectionPool(
                node: "pg1", conninfo: try test.conninfo("pg1"), maxConnections: 1, checkoutTimeout: .milliseconds(150),
                metrics: PrometheusMetricsFactory(registry: registry))
            // The fast path (an idle connection, a free slot) is not timed.
            _ = try await pool.withConnection { try await $0.query("select 1") }
            #expect(PrometheusSample.parse(registry.emitToString()).sum("switchyard_pool_wait_seconds_count", ["node": "pg1"]) == 0)
            async let holder: Void = pool.withConnection { _ = try await $0.query("select pg_sleep(0.5)") }
            try await Task.sleep(for: .milliseconds(50))
            await #expect(throws: PostgresError.self) { try await pool.withConnection { try await $0.query("select 1") } }
            try await holder
            // Waits for one that comes back in time.
            async let second: Void = pool.withConnection { _ = try await $0.query("select pg_sleep(0.05)") }
            try await Task.sleep(for: .milliseconds(10))
            _ = try await pool.withConnection { try await $0.query("select 1") }
            try await second
            await pool.close()
            let samples = PrometheusSample.parse(registry.emitToString())
            #expect(samples.sum("switchyard_pool_timeouts_total", ["node": "pg1"]) == 1)
            #expect(samples.sum("switchyard_pool_wait_seconds_count", ["node": "pg1"]) == 2)
            #expect(samples.sum("switchyard_pool_wait_seconds_sum", ["node": "pg1"]) >= 0.15)
        }

        @Test func theStorefrontServesMetricsAndLagPrintsTheSameGauges() async throws {
            let test = try TestCluster.shared()
            let registry = PrometheusCollectorRegistry()
            var configuration = ClusterConfiguration(
                name: "shop", nodes: try test.nodes.map { NodeEndpoint(name: $0.name, conninfo: try test.conninfo($0.name)) })
            configuration.monitorInterval = .milliseconds(250)
            let cluster = try Cluster(configuration: configuration, telemetry: Telemetry(metrics: PrometheusMetricsFactory(registry: registry)))
            await cluster.start()
            let schema = StorefrontTests.schema()
            do {
                let storefront = try await Storefront(cluster: cluster, schema: schema, metrics: registry)
                try await storefront.loadSampleData(events: 10) { _ in }
                let port = Mutex<Int?>(nil)
                var logger = Logger(label: "test.storefront")
                logger.logLevel = .critical
                let app = storefront.application(port: 0, logger: logger) { bound in port.withLock { $0 = bound } }
                let task = Task { try await app.run() }
                defer { task.cancel() }
                #expect(try await TestCluster.eventually { port.withLock { $0 } != nil })
                let visitor = StorefrontVisitor(baseURL: URL(string: "http://127.0.0.1:\(port.withLock { $0 }!)")!)
                for id in 1...4 { #expect(try await visitor.get("/api/customers/\(id)").status == 200) }
                #expect(try await visitor.get("/admin/customers/1").status == 200)
                let scraped = try await visitor.get("/metrics")
                #expect(scraped.status == 200)
                #expect(scraped.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)
                let samples = PrometheusSample.parse(String(decoding: scraped.body, as: UTF8.self))
                #expect(samples.sum("switchyard_statements_total", ["context": "public", "operation": "read"]) == 4)
                #expect(samples.sum("switchyard_statements_total", ["node": "pg1", "context": "admin"]) == 1)
                #expect(samples.contains("switchyard_replica_lag_seconds", ["node": "pg2"]))
                task.cancel()
                _ = await task.result
            } catch {
                await cluster.shutdown()
                await RunningStorefront.dropSchema(schema)
                throw error
            }
            await cluster.shutdown()
            await RunningStorefront.dropSchema(schema)

            // The same gauges from the command line, printed and written to a file whole.
            let config = test.configPath(.direct)
            let printed = try await CommandLineTests.run(["lag", "--config", config, "--prometheus"])
            #expect(printed.status == 0, "\(printed.output)")
            let lagSamples = PrometheusSample.parse(printed.output)
            #expect(lagSamples.sum("switchyard_node_is_primary", ["node": "pg1"]) == 1)
            #expect(lagSamples.contains("switchyard_replica_lag_seconds", ["node": "pg3"]))
            #expect(lagSamples.contains("switchyard_replica_lag_bytes", ["node": "pg2"]))
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("prom-\(UUID().uuidString.prefix(8))")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let file = directory.appendingPathComponent("switchyard.prom").path
            let written = try await CommandLineTests.run(["lag", "--config", config, "--prometheus", "--output", file])
            #expect(written.status == 0)
            #expect(PrometheusSample.parse(try String(contentsOfFile: file, encoding: .utf8)).sum("switchyard_node_up") == 3)
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["switchyard.prom"])
            let refused = try await CommandLineTests.run(["lag", "--config", config, "--prometheus", "--output", "/nonexistent/dir/x.prom"])
            #expect(refused.status != 0 && refused.output.contains("/nonexistent/dir/x.prom"))
        }
    }
}
