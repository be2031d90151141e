import ArgumentParser
import Console
import Foundation
import PostgresClient
import Switchyard

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure stale reads per routing policy, routing overhead, the monitor, rendering, and the web middleware.",
        subcommands: [Consistency.self, Routing.self, Monitor.self, Render.self, HTTP.self, Export.self])
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
        @Flag(help: "Print JSON.") var json = false

        var clientCounts: [Int] { clients.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }

        func validate() throws {
            try validateSeconds(seconds)
            let counts = clientCounts
            guard !counts.isEmpty, counts.count == clients.split(separator: ",").count, counts.allSatisfy({ (1...256).contains($0) })
            else { throw ValidationError("--clients must be numbers between 1 and 256, separated by commas, not \"\(clients)\"") }
            guard (50...10_000).contains(sliceMs) else { throw ValidationError("--slice-ms must be between 50 and 10000") }
            guard (1...10_000_000).contains(rows) else { throw ValidationError("--rows must be between 1 and 10000000") }
        }

        func run() async throws {
            try logging.bootstrap()
            let configuration = try config.load()
            let bench = ConsistencyBench(base: configuration, clients: clientCounts.max()!, rows: rows, seconds: seconds)
            try await bench.prepare()
            var reports: [ConsistencyBench.Report] = []
            for count in clientCounts {
                if !json {
                    FileHandle.standardError.write(Data(
                        "\(count) clients: \(ConsistencyBench.Policy.allCases.count) policies × \(seconds) s in \(sliceMs) ms slices…\n".utf8))
                }
                reports += try await bench.run(clients: count, slice: .milliseconds(sliceMs))
            }
            print(json ? try ConsistencyBench.json(reports) : ConsistencyBench.table(reports))
        }
    }

    struct Monitor: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "CPU the cluster monitor costs this process: per probe round, per node, and as a share of one core.",
            discussion: """
                Runs only the monitor (one probe connection per node) for S seconds at the given \
                interval and reads the process's CPU time (getrusage) before and after. Try it \
                on `switchyard cluster up --replicas 8`. Build with -c release for meaningful \
                figures.
                """)

        @OptionGroup var config: ConfigOption
        @OptionGroup var logging: LoggingOptions
        @Option(help: "Seconds to run.") var seconds = 10.0
        @Option(help: "Milliseconds between probe rounds.") var intervalMs = 250
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            try validateSeconds(seconds)
            guard (10...3_600_000).contains(intervalMs) else { throw ValidationError("--interval-ms must be between 10 and 3600000") }
        }

        struct Report: Encodable {
            var nodes: Int
            var intervalMs: Int
            var seconds: Double
            var rounds: Int
            var cpuMsPerRound: Double
            var cpuMsPerRoundPerNode: Double
            var percentOfOneCore: Double
        }

        func run() async throws {
            try logging.bootstrap()
            let configuration = try config.load()
            let monitor = ClusterMonitor(nodes: configuration.nodes, settings: ClusterMonitor.Settings(interval: .milliseconds(intervalMs)))
            // The first round opens the probe connections; measure the steady state after it.
            await monitor.probeNow()
            let clock = ContinuousClock()
            let cpuBefore = Self.cpuSeconds()
            let roundsBefore = monitor.roundCount
            let started = clock.now
            monitor.start()
            try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
            await monitor.stop()
            let wall = (clock.now - started).seconds
            let cpu = Self.cpuSeconds() - cpuBefore
            let rounds = max(monitor.roundCount - roundsBefore, 1)
            let nodes = configuration.nodes.count
            let report = Report(
                nodes: nodes, intervalMs: intervalMs, seconds: wall, rounds: rounds, cpuMsPerRound: 1000 * cpu / Double(rounds),
                cpuMsPerRoundPerNode: 1000 * cpu / Double(rounds * nodes), percentOfOneCore: 100 * cpu / wall)
            if json {
                try printJSON(report)
            } else {
                print(String(
                    format: "monitor, %d nodes every %d ms, %.1f s: %d rounds, %.3f ms CPU a round (%.3f ms a node), %.2f %% of one core",
                    nodes, intervalMs, wall, rounds, report.cpuMsPerRound, report.cpuMsPerRoundPerNode, report.percentOfOneCore))
            }
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

        func validate() throws {
            try validateSeconds(seconds)
            guard (1...1_000_000_000).contains(decisions) else { throw ValidationError("--decisions must be between 1 and 1000000000") }
        }
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {

            try logging.bootstrap()
            let configuration = try config.load()
            let report = try await RoutingBench(configuration: configuration, seconds: seconds, decisions: decisions).run()
            print(json ? try report.json() : report.table())
        }
    }
}

/// The first executable `name` in `$PATH`.
func executableOnPath(_ name: String) -> String? {
    for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
        let candidate = "\(directory)/\(name)"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
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
