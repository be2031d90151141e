import ArgumentParser
import Console
import Foundation
import Switchyard

extension BenchCommand {
    /// The console's export path end to end: COPY streamed to a file through the data
    /// service, timed, with the process's resident memory sampled throughout.
    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Time the console's export of a table (COPY … TO STDOUT to a file) and its memory growth.")

        @OptionGroup var config: ConfigOption
        @Option(help: ArgumentHelp("The table.", valueName: "SCHEMA.TABLE")) var table = "demo.events"
        @Option(help: "csv or jsonl.") var format = "csv"
        @Flag(help: "Read from the least-lagging replica instead of the primary.") var replica = false
        @Option(help: ArgumentHelp("Folder for the file (removed afterwards).", valueName: "DIR")) var dir = NSTemporaryDirectory()
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            guard let exportFormat = ExportFormat(rawValue: format) else { throw ValidationError("--format must be csv or jsonl") }
            let cluster = try Cluster(configuration: try config.load())
            await cluster.start()
            let service = DataService(cluster: cluster, audit: false)
            guard case .tablesLoaded(let tables, _) = await service.perform(.loadTables(request: 1)),
                let info = tables.first(where: { $0.qualifiedName == table })
            else {
                await cluster.shutdown()
                throw UsageError("no table \(table)")
            }
            guard case .tableOpened(let shape, _) = await service.perform(.openTable(info, request: 2)) else {
                await cluster.shutdown()
                throw UsageError("cannot open \(table)")
            }
            let path = URL(fileURLWithPath: dir).appendingPathComponent("switchyard-export-\(UUID().uuidString).\(exportFormat.rawValue)").path
            defer { unlink(path) }
            let baseline = Self.residentBytes()
            let peak = Peak(baseline)
            let sampler = Task {
                while !Task.isCancelled {
                    peak.note(Self.residentBytes())
                    try? await Task.sleep(for: .milliseconds(20))
                }
            }
            let started = ContinuousClock.now
            let outcome = await service.perform(.export(
                ExportJob(shape: shape, sort: nil, filter: nil, scope: nil, format: exportFormat, fromReplica: replica, path: path), request: 3))
            let seconds = (ContinuousClock.now - started).milliseconds / 1000
            sampler.cancel()
            peak.note(Self.residentBytes())
            await cluster.shutdown()
            guard case .exported(_, let rows, let bytes, let node, _, _) = outcome else { throw UsageError("export failed: \(String(describing: outcome))") }
            let growth = max(peak.value - baseline, 0)
            if json {
                try printJSON(Report(table: table, format: exportFormat.rawValue, node: node, rows: rows, bytes: bytes, seconds: seconds,
                                     rssGrowthBytes: growth))
            } else {
                print(String(format: "%@ → %@: %d rows, %.1f MB from %@ in %.2f s (%.1f MB/s); resident memory grew by %.1f MB at most",
                             table, exportFormat.rawValue, rows, Double(bytes) / 1e6, node, seconds, Double(bytes) / 1e6 / seconds,
                             Double(growth) / 1e6))
            }
        }

        struct Report: Encodable {
            var table, format, node: String
            var rows, bytes: Int
            var seconds: Double
            var rssGrowthBytes: Int
        }

        final class Peak: @unchecked Sendable {
            private let lock = NSLock()
            private var peak: Int
            init(_ value: Int) { peak = value }
            func note(_ value: Int) { lock.withLock { peak = max(peak, value) } }
            var value: Int { lock.withLock { peak } }
        }

        /// Resident set size from /proc/self/statm.
        static func residentBytes() -> Int {
            guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
            let pages = text.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
            return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
        }
    }
}
