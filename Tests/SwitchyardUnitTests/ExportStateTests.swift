@testable import Console
import Foundation
import Switchyard
import Testing

/// Exports in the state machine and their SQL: no server.
@Suite struct ExportStateTests {
    @Test func exportSQLKeepsEveryValueOutOfTheText() {
        let shape = ConsoleState.sample(width: 80, height: 24).grid!.shape
        let (sql, settings) = SQLBuilder.export(
            shape, sort: Sort(column: 1, descending: true), filter: Filter(column: 0, op: .greater, value: "1'; drop table x; --"),
            scope: ReferenceScope(columns: [3], values: ["SE"], label: "country = SE"), format: .csv, null: "")
        #expect(!sql.contains("drop table") && !sql.contains("'SE'"))
        #expect(sql.contains("r.\"id\" > current_setting('switchyard.export_1')::integer"))
        #expect(sql.contains("r.\"country\"::text = current_setting('switchyard.export_2')"))
        #expect(sql.hasSuffix("to stdout with (format csv, header true, null E'')"))
        #expect(settings.map(\.0) == ["switchyard.export_1", "switchyard.export_2"] && settings.map(\.1) == ["1'; drop table x; --", "SE"])
        let lines = SQLBuilder.export(shape, sort: nil, filter: nil, scope: nil, format: .jsonLines, null: "").sql
        #expect(lines.hasPrefix("copy (select row_to_json(x) from (select "))
    }

    @Test func promptProgressAndCancel() throws {
        var state = ConsoleState.sample(width: 80, height: 24)
        state.grid?.shape.table.estimatedRows = 1_000_000
        _ = state.reduce(.key(.character("x")))
        guard case .exportPrompt(let prompt) = state.mode else { Issue.record("no prompt"); return }
        #expect(prompt.path.value == "demo.customers.csv")
        _ = state.reduce(.key(.tab))
        _ = state.reduce(.key(.backTab))
        guard case .exportPrompt(let changed) = state.mode else { Issue.record("prompt closed"); return }
        #expect(changed.format == .jsonLines && changed.fromReplica && changed.path.value == "demo.customers.jsonl")
        for (width, height) in [(80, 24), (200, 60)] {
            var sized = state
            _ = sized.reduce(.resize(width: width, height: height))
            try RenderTests().check(Renderer.render(sized, clock: RenderTests.clock), "export-\(width)x\(height)")
        }
        let effects = state.reduce(.key(.enter))
        guard case .export(let job, let request) = effects.first else { Issue.record("no export: \(effects)"); return }
        #expect(job.format == .jsonLines && job.fromReplica && job.path == "demo.customers.jsonl")
        guard case .exporting(var status) = state.mode else { Issue.record("no progress view"); return }
        status.started = Date(timeIntervalSince1970: 0)
        state.mode = .exporting(status)
        _ = state.reduce(.exportProgress(rows: 250_000, bytes: 40_000_000, at: Date(timeIntervalSince1970: 2), request: request))
        for (width, height) in [(80, 24), (200, 60)] {
            var sized = state
            _ = sized.reduce(.resize(width: width, height: height))
            try RenderTests().check(Renderer.render(sized, clock: RenderTests.clock), "exporting-\(width)x\(height)")
        }
        let screen = Renderer.render(state, clock: RenderTests.clock).text
        #expect(screen.contains("25%") && screen.contains("ETA 6 s"), "\(screen)")
        let cancel = state.reduce(.key(.escape))
        #expect(cancel == [.cancel(request: request)])
        #expect(state.mode == .browse && state.message == "export cancelled: demo.customers.jsonl is removed")
    }
}
