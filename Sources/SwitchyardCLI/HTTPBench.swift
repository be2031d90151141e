import ArgumentParser
import Foundation
import Hummingbird
import LocalCluster
import Logging
import Storefront
import Switchyard
import Synchronization

extension BenchCommand {
    struct HTTP: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "http",
            abstract: "Storefront requests/s and p99 with the Switchyard middleware against the same handlers without it (wrk).",
            discussion: """
                Starts two storefronts in this process on one cluster: one with the middleware \
                (rules, token cookie, bound context), one whose handlers run in a fixed public \
                context (what the middleware adds is the difference). wrk (Debian package `wrk`) \
                sends GET /api/customers/{random id} to each in turn, in slices, rotating the \
                order, so both see the same noise. Build with -c release for meaningful figures.
                """)

        @OptionGroup var config: ConfigOption
        @OptionGroup var logging: LoggingOptions
        @Option(help: "Seconds of load per variant (split into slices).") var seconds = 20.0
        @Option(help: "Seconds per slice.") var sliceSeconds = 2.0
        @Option(help: "wrk connections.") var connections = 16
        @Option(help: "wrk threads.") var threads = 1
        @Option(help: "Schema of the sample data (loaded if missing, with few events).") var schema = "demo"
        @Flag(help: "Both sides without the middleware: what the harness itself makes of two equal servers.") var control = false
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            try validateSeconds(seconds)
            guard sliceSeconds >= 1, sliceSeconds <= seconds else { throw ValidationError("--slice-seconds must be 1 to --seconds") }
            guard (1...10_000).contains(connections), (1...64).contains(threads), threads <= connections else {
                throw ValidationError("--connections must be 1 to 10000 and --threads 1 to 64 (at most --connections)")
            }
        }

        struct Report: Encodable {
            var withMiddleware: Wrk.Summary
            var withoutMiddleware: Wrk.Summary
            var ratio: Double
            /// Median over rounds of (with ÷ without) in the same round: less moved by drift.
            var pairedRatioMedian: Double
            /// What the middleware's core costs per request in this process, no I/O: facts in,
            /// rules, cookie, scope bound around an empty handler, response headers out.
            var middlewareCoreNs: Double
            var connections: Int
            var threads: Int
            /// `--control`: both sides ran without the middleware.
            var control: Bool
        }

        func run() async throws {
            try logging.bootstrap()
            let wrk = try Wrk.find()
            var configuration = try config.load()
            configuration.queryLogFile = nil
            configuration.queryLogCapacity = 1000
            let cluster = try Cluster(configuration: configuration)
            await cluster.start()
            var apps: [Task<Void, any Error>] = []
            do {
                var logger = Logger(label: "switchyard.bench.http")
                logger.logLevel = .critical
                // Two servers per variant, started A B B A, so that neither variant gains from
                // the order the servers started in; slices use them in turn.
                var urls: [Bool: [String]] = [true: [], false: []]
                for (index, middleware) in [true, false, false, true].enumerated() {
                    let storefront = try await Storefront(cluster: cluster, schema: schema, middleware: middleware && !control)
                    if index == 0 { try await storefront.loadSampleData(events: 1000) { FileHandle.standardError.write(Data(($0 + "\n").utf8)) } }
                    let port = Mutex<Int?>(nil)
                    let app = storefront.application(port: 0, logger: logger) { bound in port.withLock { $0 = bound } }
                    apps.append(Task { try await app.run() })
                    let deadline = ContinuousClock.now + .seconds(20)
                    while port.withLock({ $0 }) == nil, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
                    guard let bound = port.withLock({ $0 }) else { throw UsageError("a storefront did not start listening") }
                    urls[middleware]!.append("http://127.0.0.1:\(bound)")
                }
                let script = try Wrk.writeScript(request: #"return wrk.format("GET", "/api/customers/" .. math.random(1, 20000))"#)
                defer { try? FileManager.default.removeItem(atPath: (script as NSString).deletingLastPathComponent) }
                // Warm both (connections, statement caches), then alternate.
                for url in urls.values.joined() { _ = try await Wrk.run(wrk, url: url, script: script, seconds: 1, connections: connections, threads: threads) }
                let rounds = max(Int((seconds / sliceSeconds).rounded()), 1)
                var slices: [Bool: [Wrk.Slice]] = [true: [], false: []]
                for round in 0..<rounds {
                    for middleware in round % 2 == 0 ? [true, false] : [false, true] {
                        let slice = try await Wrk.run(
                            wrk, url: urls[middleware]![(round / 2) % 2], script: script, seconds: sliceSeconds, connections: connections,
                            threads: threads)
                        slices[middleware]!.append(slice)
                    }
                }
                let with = Wrk.Summary(slices[true]!)
                let without = Wrk.Summary(slices[false]!)
                let report = Report(
                    withMiddleware: with, withoutMiddleware: without, ratio: with.requestsPerSecond / without.requestsPerSecond,
                    pairedRatioMedian: Wrk.pairedRatioMedian(slices[true]!, slices[false]!),
                    middlewareCoreNs: await Self.coreNanoseconds(configuration.http), connections: connections, threads: threads,
                    control: control)
                for app in apps { app.cancel() }
                for app in apps { _ = await app.result }
                await cluster.shutdown()
                if json {
                    try printJSON(report)
                } else {
                    if control { print("control run: both sides WITHOUT the middleware") }
                    for (name, variant) in [("with middleware", with), ("without (fixed public context)", without)] {
                        print(String(
                            format: "%@: %.0f req/s (± %.0f), p50 %.2f ms, p99 %.2f ms, %d errors, %d slices", name, variant.requestsPerSecond,
                            variant.requestsPerSecondSpread, variant.p50Ms, variant.p99Ms, variant.errors, variant.slices))
                    }
                    print(String(
                        format: "with/without: %.3f, paired median %.3f (%d connections, %d wrk threads)", report.ratio,
                        report.pairedRatioMedian, connections, threads))
                    print(String(format: "middleware core per request (no I/O): %.0f ns", report.middlewareCoreNs))
                }
            } catch {
                for app in apps { app.cancel() }
                for app in apps { _ = await app.result }
                await cluster.shutdown()
                throw error
            }
        }

        /// Nanoseconds per request of the framework-free core with a wrk-like request.
        static func coreNanoseconds(_ routing: HTTPRouting) async -> Double {
            let facts = RequestFacts(
                method: "GET", path: "/api/customers/1234", headers: [("Host", "127.0.0.1:8080"), ("User-Agent", "wrk")])
            let clock = ContinuousClock()
            var sink = 0
            let count = 200_000
            let started = clock.now
            for _ in 0..<count {
                let routed = routing.begin(facts)
                await routed.run { sink &+= 1 }
                sink &+= routed.responseHeaders().count
            }
            precondition(sink >= count)
            return (clock.now - started).nanoseconds / Double(count)
        }
    }
}
