import Foundation

/// HTTP load from wrk (Debian package `wrk`), in slices, for the benches that compare two
/// servers under the same load: one slice's figures, and a summary over slices.
public enum Wrk {
    /// One wrk run.
    public struct Slice: Sendable {
        public var requests: Int
        public var seconds: Double
        public var p50Ms: Double
        public var p99Ms: Double
        public var errors: Int

        public var rate: Double { Double(requests) / max(seconds, 0.001) }
    }

    /// Several slices of one variant.
    public struct Summary: Encodable, Sendable {
        public var requestsPerSecond: Double
        /// Spread (standard deviation) of requests/s across slices.
        public var requestsPerSecondSpread: Double
        /// Median over slices of each slice's p99 latency (ms).
        public var p99Ms: Double
        public var p50Ms: Double
        public var errors: Int
        public var slices: Int

        public init(_ slices: [Slice]) {
            func median(_ values: [Double]) -> Double { values.isEmpty ? 0 : values.sorted()[values.count / 2] }
            requestsPerSecond = Double(slices.map(\.requests).reduce(0, +)) / max(slices.map(\.seconds).reduce(0, +), 0.001)
            requestsPerSecondSpread = slices.map(\.rate).spread
            p99Ms = median(slices.map(\.p99Ms))
            p50Ms = median(slices.map(\.p50Ms))
            errors = slices.map(\.errors).reduce(0, +)
            self.slices = slices.count
        }
    }

    /// wrk on `$PATH`.
    public static func find() throws -> String {
        guard let path = executableOnPath("wrk") else {
            throw LocalClusterError(.commandFailed, "wrk not found: install it (apt-get install wrk) or put it on PATH")
        }
        return path
    }

    /// A request script whose `request` function is `requestBody` (Lua), printing one
    /// machine-readable line at the end. Written into a new private directory (a wrk
    /// script can run commands: never one planted by someone else); remove the directory
    /// (the returned path's parent) afterwards.
    public static func writeScript(request requestBody: String) throws -> String {
        let path = try PrivateFile.makeDirectory(prefix: "switchyard-wrk").appendingPathComponent("requests.lua").path
        let lua = """
            math.randomseed(os.time())
            request = function()
              \(requestBody)
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

    /// One slice of load on `url`.
    public static func run(_ wrk: String, url: String, script: String, seconds: Double, connections: Int, threads: Int) async throws -> Slice {
        let result = try await ChildProcess.run([
            wrk, "-t", String(threads), "-c", String(connections), "-d", "\(Int(seconds.rounded()))s", "-s", script, url,
        ])
        guard result.status == 0, let line = result.output.split(separator: "\n").first(where: { $0.hasPrefix("SWITCHYARD ") }) else {
            throw LocalClusterError(.commandFailed, "wrk failed (status \(result.status)): \(result.output.suffix(400))")
        }
        let fields = line.split(separator: " ")
        guard fields.count == 6, let requests = Int(fields[1]), let micros = Double(fields[2]), let p50 = Double(fields[3]),
            let p99 = Double(fields[4]), let errors = Int(fields[5])
        else { throw LocalClusterError(.commandFailed, "unexpected wrk output: \(line)") }
        return Slice(requests: requests, seconds: micros / 1e6, p50Ms: p50, p99Ms: p99, errors: errors)
    }

    /// Median over rounds of (a ÷ b) in the same round: less moved by drift than the
    /// ratio of the totals.
    public static func pairedRatioMedian(_ a: [Slice], _ b: [Slice]) -> Double {
        let ratios = zip(a, b).map { $0.rate / max($1.rate, 0.001) }.sorted()
        guard !ratios.isEmpty else { return 0 }
        return ratios.count % 2 == 1 ? ratios[ratios.count / 2] : (ratios[ratios.count / 2 - 1] + ratios[ratios.count / 2]) / 2
    }
}

/// The first executable `name` in `$PATH`.
public func executableOnPath(_ name: String) -> String? {
    for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
        let candidate = "\(directory)/\(name)"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}

extension Array where Element == Double {
    /// Sample standard deviation: how far the slices of one measurement spread.
    public var spread: Double {
        guard count > 1 else { return 0 }
        let mean = reduce(0, +) / Double(count)
        return (map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(count - 1)).squareRoot()
    }
}
