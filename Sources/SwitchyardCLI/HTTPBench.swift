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

        struct Variant: Encodable {
            var requestsPerSecond: Double
            /// Spread (standard deviation) of requests/s across slices.
            var requestsPerSecondSpread: Double
            /// Median over slices of each slice's p99 latency (ms).
            var p99Ms: Double
            var p50Ms: Double
            var errors: Int
            var slices: Int
        }

        struct Report: Encodable {
            var withMiddleware: Variant
            var withoutMiddleware: Variant
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
            guard let wrk = executableOnPath("wrk") else {
                throw UsageError("wrk not found: install it (apt-get install wrk) or put it on PATH")
            }
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
                let script = try Self.writeScript()
                defer { try? FileManager.default.removeItem(atPath: (script as NSString).deletingLastPathComponent) }
                // Warm both (connections, statement caches), then alternate.
                for url in urls.values.joined() { _ = try await Self.wrk(wrk, url: url, script: script, seconds: 1, connections: connections, threads: threads) }
                let rounds = max(Int((seconds / sliceSeconds).rounded()), 1)
                var slices: [Bool: [WrkSlice]] = [true: [], false: []]
                for round in 0..<rounds {
                    for middleware in round % 2 == 0 ? [true, false] : [false, true] {
                        let slice = try await Self.wrk(
                            wrk, url: urls[middleware]![(round / 2) % 2], script: script, seconds: sliceSeconds, connections: connections,
                            threads: threads)
                        slices[middleware]!.append(slice)
                    }
                }
                let with = Self.summary(slices[true]!)
                let without = Self.summary(slices[false]!)
                let report = Report(
                    withMiddleware: with, withoutMiddleware: without, ratio: with.requestsPerSecond / without.requestsPerSecond,
                    pairedRatioMedian: Self.pairedRatioMedian(slices[true]!, slices[false]!),
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

        struct WrkSlice {
            var requests: Int
            var seconds: Double
            var p50Ms: Double
            var p99Ms: Double
            var errors: Int
        }

        static func pairedRatioMedian(_ with: [WrkSlice], _ without: [WrkSlice]) -> Double {
            let ratios = zip(with, without).map { a, b in
                (Double(a.requests) / max(a.seconds, 0.001)) / max(Double(b.requests) / max(b.seconds, 0.001), 0.001)
            }.sorted()
            guard !ratios.isEmpty else { return 0 }
            return ratios.count % 2 == 1 ? ratios[ratios.count / 2] : (ratios[ratios.count / 2 - 1] + ratios[ratios.count / 2]) / 2
        }

        static func summary(_ slices: [WrkSlice]) -> Variant {
            let rates = slices.map { Double($0.requests) / max($0.seconds, 0.001) }
            func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
            return Variant(
                requestsPerSecond: Double(slices.map(\.requests).reduce(0, +)) / slices.map(\.seconds).reduce(0, +),
                requestsPerSecondSpread: rates.spread, p99Ms: median(slices.map(\.p99Ms)), p50Ms: median(slices.map(\.p50Ms)),
                errors: slices.map(\.errors).reduce(0, +), slices: slices.count)
        }

        /// Random customer ids; prints one machine-readable line at the end. Written into a
        /// new private directory (a wrk script can run commands: never one planted by
        /// someone else); the caller removes the directory.
        static func writeScript() throws -> String {
            let path = try PrivateFile.makeDirectory(prefix: "switchyard-wrk").appendingPathComponent("requests.lua").path
            let lua = """
                math.randomseed(os.time())
                request = function()
                  return wrk.format("GET", "/api/customers/" .. math.random(1, 20000))
                end
                done = function(summary, latency, requests)
                  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout
                  io.write(string.format("SWITCHYARD %d %d %f %f %d\\n", summary.requests, summary.duration,
                    latency:percentile(50) / 1000, latency:percentile(99) / 1000, errors))
                end
                """
            try PrivateFile.create(Data(lua.utf8), at: path)
            return path
        }

        static func wrk(_ path: String, url: String, script: String, seconds: Double, connections: Int, threads: Int) async throws -> WrkSlice {
            let result = try await ChildProcess.run([
                path, "-t", String(threads), "-c", String(connections), "-d", "\(Int(seconds.rounded()))s", "-s", script, url,
            ])
            guard result.status == 0,
                let line = result.output.split(separator: "\n").first(where: { $0.hasPrefix("SWITCHYARD ") })
            else { throw UsageError("wrk failed (status \(result.status)): \(result.output.suffix(400))") }
            let fields = line.split(separator: " ")
            guard fields.count == 6, let requests = Int(fields[1]), let micros = Double(fields[2]), let p50 = Double(fields[3]),
                let p99 = Double(fields[4]), let errors = Int(fields[5])
            else { throw UsageError("unexpected wrk output: \(line)") }
            return WrkSlice(requests: requests, seconds: micros / 1e6, p50Ms: p50, p99Ms: p99, errors: errors)
        }
    }
}
