import ArgumentParser
import Console
import Foundation
import Switchyard

extension BenchCommand {
    /// The console's bulk delete end to end: rows marked one by one, the held statement with
    /// its preview, the commit with a history row per row; statements counted from the
    /// query log. Works on a table of its own (`switchyard_bench.bulk`), restored afterwards.
    struct Bulk: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Time a bulk delete of marked rows (preview, commit, history rows) and count its statements.")

        @OptionGroup var config: ConfigOption
        @Option(help: "Rows in the bench table (created once).") var tableRows = 1_000_000
        @Option(help: "Rows marked and deleted.") var marked = 10_000
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            guard (1...10_000_000).contains(tableRows) else { throw ValidationError("--table-rows must be between 1 and 10000000") }
            guard (1...tableRows).contains(marked) else { throw ValidationError("--marked must be between 1 and --table-rows") }
        }

        func run() async throws {
            let cluster = try Cluster(configuration: try config.load())
            await cluster.start()
            do {
                let report = try await RoutingContext.admin.run { try await measure(cluster) }
                await cluster.shutdown()
                if json {
                    try printJSON(report)
                } else {
                    print(String(format: "bulk delete of %d marked rows of %d: held with its preview in %.0f ms, committed in %.0f ms "
                                    + "(%d statements in all, %d history rows)", report.marked, report.tableRows, report.previewMs,
                                 report.commitMs, report.statements, report.historyRows))
                }
            } catch {
                await cluster.shutdown()
                throw error
            }
        }

        func measure(_ cluster: Cluster) async throws -> Report {
            _ = try await cluster.execute("create schema if not exists switchyard_bench")
            _ = try await cluster.execute("create table if not exists switchyard_bench.bulk (id int primary key, name text, qty int)")
            let present = try await cluster.query("select count(*)::int from switchyard_bench.bulk").scalar(Int.self) ?? 0
            if present != tableRows {
                _ = try await cluster.execute("truncate switchyard_bench.bulk")
                _ = try await cluster.execute(
                    "insert into switchyard_bench.bulk select g, 'row ' || g, g % 100 from generate_series(1, $1::int) g", [tableRows])
                _ = try await cluster.execute("analyze switchyard_bench.bulk")
            }
            let service = DataService(cluster: cluster)
            guard case .tableOpened(let shape, _) = await service.perform(
                .openTable(TableInfo(schema: "switchyard_bench", name: "bulk", estimatedRows: Int64(tableRows)), request: 1))
            else { throw UsageError("cannot open switchyard_bench.bulk") }
            var marks = Marks()
            var generator = SystemRandomNumberGenerator()
            while marks.keys.count < marked { marks.keys.insert([String(Int.random(in: 1...tableRows, using: &generator))]) }
            let statement = SQLBuilder.bulkDelete(shape, marks)
            let before = cluster.log.entries(after: 0).last?.id ?? 0
            let historyBefore = try await cluster.query("select count(*)::int from switchyard.changes where table_name = 'switchyard_bench.bulk'")
                .scalar(Int.self) ?? 0
            let started = ContinuousClock.now
            let held = await service.perform(.runStatement(
                PromptStatement(statement.sql, parameters: statement.parameters, label: "bench"), pageSize: 40, request: 2))
            let preview = ContinuousClock.now - started
            guard case .promptHeld(let write, _) = held, write.rows == marked else {
                throw UsageError("the delete was not held as expected: \(String(describing: held))")
            }
            let committing = ContinuousClock.now
            guard case .promptDone(let message, _) = await service.perform(.promptCommand(.commit, request: 3)), message.hasPrefix("committed") else {
                throw UsageError("the delete was not committed")
            }
            let commit = ContinuousClock.now - committing
            let statements = cluster.log.entries(after: before).count
            let history = (try await cluster.query("select count(*)::int from switchyard.changes where table_name = 'switchyard_bench.bulk'")
                .scalar(Int.self) ?? 0) - historyBefore
            // Put the rows back for the next run.
            _ = try await cluster.execute(
                "insert into switchyard_bench.bulk select g, 'row ' || g, g % 100 from generate_series(1, $1::int) g on conflict do nothing", [tableRows])
            return Report(
                tableRows: tableRows, marked: marked, previewMs: preview.milliseconds, commitMs: commit.milliseconds, statements: statements,
                historyRows: history)
        }

        struct Report: Encodable {
            var tableRows, marked: Int
            var previewMs, commitMs: Double
            var statements, historyRows: Int
        }
    }
}
