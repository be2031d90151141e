import ArgumentParser
import FluentShop
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import LocalCluster
import PostgresClient
import Switchyard

/// The same Vapor + Fluent app on Switchyard and on plain FluentPostgresDriver, under the
/// same wrk load in alternating slices: what routing Fluent through Switchyard costs.
@main
struct FluentBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchyard-fluent-bench",
        abstract: "Requests/s of a Vapor + Fluent app through Switchyard against the same app on FluentPostgresDriver (wrk).",
        discussion: """
            Makes a database of its own on the cluster's primary (switchyard_fluent_bench, \
            dropped and made again), seeds it through the app's Fluent migrations, and starts \
            both apps in this process: one with `.switchyard(configuration)` and its \
            middleware (public reads on replicas, by the configuration's selection), one with \
            `.postgres(...)` on the primary. wrk (Debian package `wrk`) sends GET \
            /api/customers/{random id} — a Fluent `find` — to each in turn, in slices, \
            rotating the order. Build with -c release for meaningful figures.
            """)

    @Option(help: "The cluster's switchyard.toml.") var config = "switchyard.toml"
    @Option(help: "Seconds of load per app (split into slices).") var seconds = 20.0
    @Option(help: "Seconds per slice.") var sliceSeconds = 2.0
    @Option(help: "wrk connections.") var connections = 16
    @Option(help: "wrk threads.") var threads = 1
    @Option(help: "Customers to seed.") var customers = 10_000
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard seconds.isFinite, seconds >= 1, seconds <= 86_400 else { throw ValidationError("--seconds must be 1 to 86400") }
        guard sliceSeconds >= 1, sliceSeconds <= seconds else { throw ValidationError("--slice-seconds must be 1 to --seconds") }
        guard (1...10_000).contains(connections), (1...64).contains(threads), threads <= connections else {
            throw ValidationError("--connections must be 1 to 10000 and --threads 1 to 64 (at most --connections)")
        }
        guard (1...10_000_000).contains(customers) else { throw ValidationError("--customers must be 1 to 10000000") }
    }

    struct Report: Encodable {
        var switchyard: Wrk.Summary
        var fluentPostgresDriver: Wrk.Summary
        /// Switchyard ÷ FluentPostgresDriver requests/s.
        var ratio: Double
        var pairedRatioMedian: Double
        var connections: Int
        var threads: Int
    }

    static let database = "switchyard_fluent_bench"

    func run() async throws {
        let wrk = try Wrk.find()
        var configuration = try ClusterConfiguration.load(path: config)
        configuration.queryLogFile = nil
        configuration.queryLogCapacity = 1000
        guard let primaryConninfo = try await Self.primaryConninfo(configuration) else {
            throw ValidationError("no node of \(config) answers as the primary")
        }
        try await Self.recreateDatabase(on: primaryConninfo)
        configuration.nodes = configuration.nodes.map { node in
            var node = node
            node.conninfo = Self.conninfo(node.conninfo, database: Self.database)
            return node
        }
        let plain = FluentShop.Backend.plain(conninfo: primaryConninfo, database: Self.database)

        let routed = try await FluentShop.start(.switchyard(configuration), customers: customers)
        let direct: FluentShop.Running
        do { direct = try await FluentShop.start(plain, customers: customers) } catch {
            await routed.stop()
            throw error
        }
        do {
            let script = try Wrk.writeScript(request: #"return wrk.format("GET", "/api/customers/" .. math.random(1, \#(customers)))"#)
            defer { try? FileManager.default.removeItem(atPath: (script as NSString).deletingLastPathComponent) }
            let urls = [true: routed.baseURL.absoluteString, false: direct.baseURL.absoluteString]
            FileHandle.standardError.write(Data("Switchyard: \(urls[true]!), FluentPostgresDriver: \(urls[false]!)\n".utf8))
            // Both must answer before their answers are counted.
            for url in urls.values {
                let (body, response) = try await URLSession.shared.data(from: URL(string: url + "/api/customers/1")!)
                guard (response as? HTTPURLResponse)?.statusCode == 200 else {
                    throw ValidationError("\(url)/api/customers/1 answered \((response as? HTTPURLResponse)?.statusCode ?? 0): \(String(decoding: body.prefix(300), as: UTF8.self))")
                }
            }
            for url in urls.values { _ = try await Wrk.run(wrk, url: url, script: script, seconds: 1, connections: connections, threads: threads) }
            let rounds = max(Int((seconds / sliceSeconds).rounded()), 1)
            var slices: [Bool: [Wrk.Slice]] = [true: [], false: []]
            for round in 0..<rounds {
                for switchyard in round % 2 == 0 ? [true, false] : [false, true] {
                    slices[switchyard]!.append(
                        try await Wrk.run(wrk, url: urls[switchyard]!, script: script, seconds: sliceSeconds, connections: connections, threads: threads))
                }
            }
            let with = Wrk.Summary(slices[true]!), without = Wrk.Summary(slices[false]!)
            let report = Report(
                switchyard: with, fluentPostgresDriver: without, ratio: with.requestsPerSecond / max(without.requestsPerSecond, 0.001),
                pairedRatioMedian: Wrk.pairedRatioMedian(slices[true]!, slices[false]!), connections: connections, threads: threads)
            await routed.stop()
            await direct.stop()
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(report), as: UTF8.self))
            } else {
                for (name, variant) in [("Switchyard (SwitchyardFluent + middleware)", with), ("FluentPostgresDriver (primary only)", without)] {
                    print(String(
                        format: "%@: %.0f req/s (± %.0f), p50 %.2f ms, p99 %.2f ms, %d errors, %d slices", name, variant.requestsPerSecond,
                        variant.requestsPerSecondSpread, variant.p50Ms, variant.p99Ms, variant.errors, variant.slices))
                }
                print(String(
                    format: "Switchyard/FluentPostgresDriver: %.3f, paired median %.3f (%d connections, %d wrk threads)", report.ratio,
                    report.pairedRatioMedian, connections, threads))
            }
        } catch {
            await routed.stop()
            await direct.stop()
            throw error
        }
    }

    /// The conninfo of the node that answers as the primary.
    static func primaryConninfo(_ configuration: ClusterConfiguration) async throws -> String? {
        for node in configuration.nodes {
            guard let connection = try? await PostgresConnection.connect(node.conninfo, label: node.name) else { continue }
            let inRecovery = try? await connection.closing { try await $0.query("select pg_is_in_recovery()").scalar(Bool.self) }
            if inRecovery == false { return node.conninfo }
        }
        return nil
    }

    /// `conninfo` pointing at `database` (key/value form; a URI is expanded by libpq first).
    static func conninfo(_ conninfo: String, database: String) -> String {
        var pairs = (Conninfo.parse(conninfo) ?? []).filter { $0.key != "dbname" }
        pairs.append((key: "dbname", value: database))
        return pairs.map { "\($0.key)=\(Conninfo.quoted($0.value))" }.joined(separator: " ")
    }

    static func recreateDatabase(on conninfo: String) async throws {
        let connection = try await PostgresConnection.connect(conninfo, label: "primary")
        try await connection.closing { connection in
            let name = try await connection.quoteIdentifier(database)
            _ = try await connection.query("drop database if exists \(name) with (force)")
            _ = try await connection.query("create database \(name)")
        }
    }
}
