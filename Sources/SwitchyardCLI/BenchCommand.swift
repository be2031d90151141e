import ArgumentParser
import Console
import Foundation
import InMemoryTracing
import Metrics
import Prometheus
import Tracing
import LocalCluster
import PostgresClient
import Switchyard

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure stale reads per routing policy, routing overhead, the monitor, rendering, and the web middleware.",
        subcommands: [Consistency.self, Routing.self, Monitor.self, Render.self, HTTP.self, Export.self, Prompt.self, Bulk.self])
}

extension BenchCommand {
    struct Consistency: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stale read-backs, replica share, throughput and latency for each consistency policy.",
            discussion: """
                C clients per run. Each iteration: with 20 % probability a visitor updates its \
                own row on the primary and at once reads it back in the same public request (a \
                read-back; stale if it shows an older version); otherwise a visitor reads a \
                random other row in a fresh public request. Policies: naive random replica, \
                admin context (everything on the primary), pin window 2 s, per-read LSN check \
                (ask the replica its replay position first, in its own round trip), LSN \
                read-your-writes (replay guard in the same round trip). The policies run in \
                alternating slices, rotating their order, so each sees the same noise; the \
                spread is the standard deviation of the per-slice throughput. Pool size per \
                node comes from the configuration. Try it with `switchyard cluster delay pg3 \
                200`. Build with -c release for meaningful figures.
                """)

        @OptionGroup var config: ConfigOption

        @OptionGroup var logging: LoggingOptions
        @Option(help: "Seconds each policy is measured (in slices), per client count.") var seconds = 10.0
        @Option(help: "Concurrent clients; a comma-separated list (e.g. 1,4,16,64) measures each.") var clients = "8"
        @Option(help: "Milliseconds per slice.") var sliceMs = 100
        @Option(help: "Rows read at random besides the clients' own.") var rows = 1000
        @Flag(help: "Also run every policy straight to the servers (monitor_conninfo), in the same slices: what a pooler costs.")
        var compareDirect = false
        @Option(help: "Policies to run, comma-separated (default: all).")
        var policies = ConsistencyBench.Policy.allCases.map(\.rawValue).joined(separator: ",")
        @Flag(help: "Print JSON.") var json = false

        var parsedPolicies: [ConsistencyBench.Policy] {
            policies.split(separator: ",").compactMap { ConsistencyBench.Policy(rawValue: $0.trimmingCharacters(in: .whitespaces)) }
        }

        var clientCounts: [Int] { clients.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }

        func validate() throws {
            try validateSeconds(seconds)
            let counts = clientCounts
            guard !counts.isEmpty, counts.count == clients.split(separator: ",").count, counts.allSatisfy({ (1...256).contains($0) })
            else { throw ValidationError("--clients must be numbers between 1 and 256, separated by commas, not \"\(clients)\"") }
            guard (50...10_000).contains(sliceMs) else { throw ValidationError("--slice-ms must be between 50 and 10000") }
            guard (1...10_000_000).contains(rows) else { throw ValidationError("--rows must be between 1 and 10000000") }
            let names = policies.split(separator: ",")
            guard !names.isEmpty, parsedPolicies.count == names.count, Set(parsedPolicies).count == names.count else {
                throw ValidationError(
                    "--policies must name some of, once each, \(ConsistencyBench.Policy.allCases.map(\.rawValue).joined(separator: ", ")), not \"\(policies)\"")
            }
        }

        func run() async throws {
            try logging.bootstrap()
            let configuration = try config.load()
            let bench = ConsistencyBench(base: configuration, clients: clientCounts.max()!, rows: rows, seconds: seconds)
            if compareDirect, !bench.hasPooler {
                throw ValidationError("--compare-direct: no node has a monitor_conninfo other than its conninfo, so there is nothing to compare")
            }
            try await bench.prepare()
            var reports: [ConsistencyBench.Report] = []
            for count in clientCounts {
                if !json {
                    FileHandle.standardError.write(Data(
                        "\(count) clients: \(parsedPolicies.count) policies × \(seconds) s in \(sliceMs) ms slices…\n".utf8))
                }
                reports += try await bench.run(
                    clients: count, slice: .milliseconds(sliceMs), policies: parsedPolicies, compareDirect: compareDirect)
            }
            print(json ? try ConsistencyBench.json(reports) : ConsistencyBench.table(reports))
        }
    }

    struct Monitor: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "What one process's monitor costs the cluster and how well it sees it, per strategy.",
            discussion: """
                For each strategy (every-node, primary-view): the statements per second the \
                servers count from this process's monitor (pg_stat_database commits in the \
                probes' database, less the measuring reads' own) on a quiet cluster, the CPU \
                it costs this process; with --lag NODE:MS, the lag it shows for NODE delayed \
                by MS against MS, under steady writes (a commit every 100 ms), sporadic \
                writes (every 2.5 s) and none, read at random instants; with --promote \
                NODE on a local cluster (--dir), how soon it sees NODE promoted (the node is \
                rejoined with pg_rewind afterwards). Try it on `switchyard cluster up \
                --replicas 8`. Build with -c release for meaningful CPU figures.
                """)

        @OptionGroup var config: ConfigOption
        @OptionGroup var logging: LoggingOptions
        @Option(help: "Seconds for each measurement.") var seconds = 10.0
        @Option(help: "Milliseconds between probe rounds.") var intervalMs = 250
        @Option(help: "primary-view: milliseconds between the direct probes of replicas in turn.") var replicaProbeIntervalMs = 2000
        @Option(help: "Strategies to measure, comma-separated.") var strategies = "every-node,primary-view"
        @Option(help: ArgumentHelp("Delay this replica by MS and measure the lag shown.", valueName: "NODE:MS")) var lag: String?
        @Option(help: ArgumentHelp("Promote this replica of the local cluster in --dir, then rejoin it.", valueName: "NODE")) var promote: String?
        @Option(name: .customLong("dir"), help: ArgumentHelp("The local cluster's folder (for --promote).", valueName: "D")) var directory: String?
        @Flag(help: "Print JSON.") var json = false

        var parsedStrategies: [ClusterMonitor.Strategy] {
            strategies.split(separator: ",").compactMap { ClusterMonitor.Strategy(rawValue: $0.trimmingCharacters(in: .whitespaces)) }
        }

        var parsedLag: (String, Int)? {
            guard let lag, let colon = lag.lastIndex(of: ":"), let ms = Int(lag[lag.index(after: colon)...]) else { return nil }
            return (String(lag[..<colon]), ms)
        }

        func validate() throws {
            try validateSeconds(seconds)
            guard (10...3_600_000).contains(intervalMs) else { throw ValidationError("--interval-ms must be between 10 and 3600000") }
            guard (50...3_600_000).contains(replicaProbeIntervalMs) else {
                throw ValidationError("--replica-probe-interval-ms must be between 50 and 3600000")
            }
            guard !parsedStrategies.isEmpty, parsedStrategies.count == strategies.split(separator: ",").count else {
                throw ValidationError(
                    "--strategies must name \(ClusterMonitor.Strategy.allCases.map(\.rawValue).joined(separator: ", ")), not \"\(strategies)\"")
            }
            if lag != nil {
                guard let (_, ms) = parsedLag, (1...60_000).contains(ms) else {
                    throw ValidationError("--lag must be NODE:MS with MS between 1 and 60000, e.g. pg3:300")
                }
            }
            if promote != nil, directory == nil { throw ValidationError("--promote needs the local cluster's folder: --dir D") }
        }

        func run() async throws {
            try logging.bootstrap()
            let local = directory.map { LocalCluster(directory: URL(fileURLWithPath: $0)) }
            let configuration = try local.flatMap { config.path == nil ? try ClusterConfiguration.load(path: $0.configURL.path) : nil }
                ?? config.load()
            let bench = MonitorBench(
                configuration: configuration, interval: .milliseconds(intervalMs), replicaProbeInterval: .milliseconds(replicaProbeIntervalMs),
                seconds: seconds, lag: parsedLag.map { (node: $0.0, milliseconds: $0.1) },
                promote: promote.flatMap { node in local.map { (node: node, cluster: $0) } })
            let reports = try await bench.run(strategies: parsedStrategies) { step in
                if !json { FileHandle.standardError.write(Data("\(step)\n".utf8)) }
            }
            if json { try printJSON(reports) } else { print(MonitorBench.table(reports)) }
        }

        /// User CPU time of this process so far.
        static func userSeconds() -> Double {
            var usage = rusage()
            getrusage(RUSAGE_SELF.rawValue, &usage)
            return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        }

        /// User and system CPU time of this process so far.
        static func cpuSeconds() -> Double {
            var usage = rusage()
            getrusage(RUSAGE_SELF.rawValue, &usage)
            func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
            return seconds(usage.ru_utime) + seconds(usage.ru_stime)
        }
    }

    struct Render: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Time the console's frame rendering (state → screen cells) at a given size.",
            discussion: "Needs no database. Build with -c release for meaningful figures.")

        @Option(help: "Terminal width.") var width = 200
        @Option(help: "Terminal height.") var height = 60
        @Option(help: "Frames to render.") var frames = 2000
        @Option(help: "Put a value of this many bytes in the cell under the cursor, and also time opening it in the editor.")
        var cellBytes = 0

        func validate() throws {
            guard (0...(256 << 20)).contains(cellBytes) else { throw ValidationError("--cell-bytes must be between 0 and 268435456") }
            guard (1...10_000).contains(width), (1...10_000).contains(height) else {
                throw ValidationError("--width and --height must be between 1 and 10000")
            }
            guard (1...10_000_000).contains(frames) else { throw ValidationError("--frames must be between 1 and 10000000") }
        }

        func run() throws {
            var state = ConsoleState.sample(width: width, height: height)
            if cellBytes > 0, var grid = state.grid {
                grid.rows[grid.cursorRow][grid.cursorColumn] = String(repeating: "é", count: cellBytes / 2)
                state.grid = grid
            }
            print(String(format: "render %d×%d: %@", width, height, Self.time(frames) { Renderer.render(state) }))
            guard cellBytes > 0 else { return }
            // Opening the value in the cell editor, and drawing it there.
            print(String(format: "open editor on a %d-byte cell and render: %@", cellBytes, Self.time(max(frames / 20, 5)) { () -> Screen in
                var editing = state
                _ = editing.reduce(.key(.enter))
                return Renderer.render(editing)
            }))
        }

        /// Median and p99 of `count` runs of `body`, in milliseconds.
        static func time(_ count: Int, _ body: () -> Screen) -> String {
            let clock = ContinuousClock()
            var times: [Double] = []
            var checksum = 0
            for _ in 0..<count {
                let started = clock.now
                checksum &+= body().cells.count
                times.append((clock.now - started).milliseconds)
            }
            precondition(checksum > 0)
            times.sort()
            return String(format: "median %.3f ms, p99 %.3f ms (%d runs)", times[times.count / 2], times[min(times.count - 1, times.count * 99 / 100)], count)
        }
    }

    struct Routing: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Routing decision time, and routed `SELECT 1` throughput against raw PostgresClient on the same node.",
            discussion: "Build with -c release for meaningful figures.")

        @OptionGroup var config: ConfigOption

        @OptionGroup var logging: LoggingOptions
        @Option(help: "Seconds for each throughput run.") var seconds = 5.0
        @Option(help: "Routing decisions to time.") var decisions = 1_000_000
        @Option(
            help: ArgumentHelp(
                "Metrics and spans of the routed statements: none (the no-op backends), prometheus (a registry in memory), tracing (an in-memory tracer, emptied every 100 ms), or both.",
                valueName: "backend"))
        var telemetry: TelemetryChoice = .none

        enum TelemetryChoice: String, ExpressibleByArgument, CaseIterable {
            case none, prometheus, tracing, both
        }

        func validate() throws {
            try validateSeconds(seconds)
            guard (1...1_000_000_000).contains(decisions) else { throw ValidationError("--decisions must be between 1 and 1000000000") }
        }
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {

            try logging.bootstrap()
            let configuration = try config.load()
            var bench = RoutingBench(configuration: configuration, seconds: seconds, decisions: decisions)
            let tracer = InMemoryTracer()
            let metrics: (any MetricsFactory)? =
                [.prometheus, .both].contains(telemetry) ? PrometheusMetricsFactory(registry: PrometheusCollectorRegistry()) : nil
            let tracing = [.tracing, .both].contains(telemetry)
            bench.telemetry = Telemetry(metrics: metrics, tracer: tracing ? tracer : nil)
            // Finished spans are dropped as an exporter would send them off.
            let drain = Task {
                while tracing, (try? await Task.sleep(for: .milliseconds(100))) != nil { tracer.clearFinishedSpans() }
            }
            defer { drain.cancel() }
            let report = try await bench.run()
            if !json {
                print("telemetry: \(telemetry.rawValue) (metrics recorded: \(bench.telemetry.recordsMetrics), spans recorded: \(bench.telemetry.recordsSpans))")
            }
            print(json ? try report.json() : report.table())
        }
    }
}

/// A report as pretty, key-sorted JSON on standard output.
func printJSON(_ report: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    print(String(decoding: try encoder.encode(report), as: UTF8.self))
}

/// `--seconds`: a finite, positive number of seconds, at most a day.
func validateSeconds(_ seconds: Double) throws {
    guard seconds.isFinite, seconds > 0, seconds <= 86_400 else {
        throw ValidationError("--seconds must be a number above 0 and at most 86400, not \(seconds)")
    }
}
