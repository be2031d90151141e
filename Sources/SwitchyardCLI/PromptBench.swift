import ArgumentParser
import Console
import Foundation
import Switchyard

extension BenchCommand {
    /// The SQL prompt's query path end to end: the time to the first page of a big result,
    /// then every page read through the server-side cursor, with the process's resident
    /// memory sampled throughout.
    struct Prompt: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Time the SQL prompt's first rows of a big query and its paging through all of them, and its memory.")

        @OptionGroup var config: ConfigOption
        @Option(help: "The query.") var query = "select * from demo.events"
        @Option(help: "Rows per page (a screenful).") var pageSize = 40
        @Option(help: "Pages to read after the first (0: every page).") var pages = 0
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            guard (1...10_000).contains(pageSize) else { throw ValidationError("--page-size must be between 1 and 10000") }
            guard pages >= 0 else { throw ValidationError("--pages must be 0 or more") }
        }

        func run() async throws {
            let cluster = try Cluster(configuration: try config.load())
            await cluster.start()
            let service = DataService(cluster: cluster, audit: false)
            let baseline = Export.residentBytes()
            let peak = Export.Peak(baseline)
            let sampler = Task {
                while !Task.isCancelled {
                    peak.note(Export.residentBytes())
                    try? await Task.sleep(for: .milliseconds(20))
                }
            }
            let started = ContinuousClock.now
            let first = await service.perform(.runStatement(PromptStatement(query), pageSize: pageSize, request: 1))
            let firstRows = ContinuousClock.now - started
            guard case .promptRows(var page, _) = first else {
                sampler.cancel()
                await cluster.shutdown()
                throw UsageError("the query did not return rows: \(String(describing: first))")
            }
            var rows = page.rows.count
            var read = 0
            var request = 2
            while !page.atEnd && (pages == 0 || read < pages) {
                let next = await service.perform(.promptCommand(.page(offset: page.offset + page.rows.count, count: pageSize), request: request))
                guard case .promptRows(let fetched, _) = next else { break }
                page = fetched
                rows += page.rows.count
                read += 1
                request += 1
            }
            let total = ContinuousClock.now - started
            _ = await service.perform(.promptCommand(.rollback, request: request))
            sampler.cancel()
            peak.note(Export.residentBytes())
            await cluster.shutdown()
            let report = Report(
                query: query, pageSize: pageSize, rows: rows, pages: read + 1, firstRowsMs: firstRows.milliseconds,
                totalSeconds: total.milliseconds / 1000, peakResidentBytes: peak.value, residentGrowthBytes: max(peak.value - baseline, 0))
            if json {
                try printJSON(report)
            } else {
                print(String(format: "%@: first %d rows in %.1f ms; %d rows in %d pages in %.2f s (%.2f ms a page); "
                                + "resident memory at most %.1f MB (grew by %.1f MB)",
                             query, pageSize, report.firstRowsMs, rows, read + 1, report.totalSeconds, report.totalSeconds * 1000 / Double(read + 1),
                             Double(report.peakResidentBytes) / 1e6, Double(report.residentGrowthBytes) / 1e6))
            }
        }

        struct Report: Encodable {
            var query: String
            var pageSize, rows, pages: Int
            var firstRowsMs, totalSeconds: Double
            var peakResidentBytes, residentGrowthBytes: Int
        }
    }
}
