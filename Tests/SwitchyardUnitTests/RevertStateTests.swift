@testable import Console
@testable import Switchyard
import Testing

/// `u` in the history, as the console's state machine runs it.
@Suite struct RevertStateTests {
    static func entry(_ id: Int, _ action: ChangeAudit.Action, statement: String? = nil) -> ChangeAudit.Entry {
        ChangeAudit.Entry(
            id: id, changedAt: "2026-12-05T07:00:00.000+00", role: "clerk", osUser: "ana", clientHost: "desk", table: "demo.customers",
            key: action == .statement ? [:] : ["id": "3"], action: action, before: ["name": "Old"], after: ["name": "New"], statement: statement)
    }

    func history(_ entries: [ChangeAudit.Entry]) -> ConsoleState {
        var state = ConsoleState.sample(width: 120, height: 40)
        var view = HistoryView(table: "demo.customers", key: nil, keyLabel: nil, columns: ["id", "name"])
        view.entries = entries
        view.loaded = true
        state.mode = .history(view)
        return state
    }

    var view: (ConsoleState) -> HistoryView? { { if case .history(let view) = $0.mode { view } else { nil } } }

    @Test func aRevertIsShownThenWrittenOnlyOnYes() {
        let change = Self.entry(42, .update)
        var state = history([change])
        guard case .prepareRevert(let asked, let request) = state.reduce(.key(.character("u"))).first else { Issue.record("not prepared"); return }
        #expect(asked == change)
        let plan = RevertPlan(change: change, shape: state.grid!.shape, write: .update(seen: ["3", "New"], changes: [1: "Old"]),
                              sql: "update demo.customers set name = $1   -- $1 = 'Old'")
        _ = state.reduce(.revertReady(plan, request: request))
        let screen = Renderer.render(state).text
        #expect(screen.contains("Revert change #42") && screen.contains("$1 = 'Old'"))
        // Any other key: nothing.
        #expect(state.reduce(.key(.character("x"))).isEmpty)
        #expect(view(state)?.revert == nil && state.message == "revert cancelled: nothing written")
        guard case .prepareRevert(_, let again) = state.reduce(.key(.character("u"))).first else { return }
        _ = state.reduce(.revertReady(plan, request: again))
        guard case .revert(let confirmed, let write) = state.reduce(.key(.character("y"))).first else { Issue.record("not written"); return }
        #expect(confirmed == plan && state.pendingWrites)
        guard case .loadHistory = state.reduce(.reverted("reverted change #42", request: write)).first else { Issue.record("history not read again"); return }
        #expect(view(state)?.wroteRevert == true)
        // Closing reads the grid again: it shows the row as the revert left it.
        if let pending = state.pending { _ = state.reduce(.historyLoaded([change], request: pending)) }
        guard case .loadPage = state.reduce(.key(.escape)).first else { Issue.record("grid not read again"); return }
    }

    @Test func aConflictShowsThreeVersionsAndAStatementCannotBeReverted() {
        var state = history([Self.entry(7, .update)])
        guard case .prepareRevert(_, let request) = state.reduce(.key(.character("u"))).first else { return }
        let conflict = RevertConflict(
            change: Self.entry(7, .update), reason: "name changed since change #7: nothing was written",
            versions: [.init(column: "name", before: "Old", after: "New", now: "Theirs")], rowExists: true)
        _ = state.reduce(.revertConflict(conflict, request: request))
        let screen = Renderer.render(state).text
        #expect(screen.contains("the change wrote") && screen.contains("Theirs") && state.messageIsError)
        #expect(state.reduce(.key(.character("y"))).isEmpty, "y on a conflict writes nothing")
        #expect(view(state)?.conflict == nil)

        var statement = history([Self.entry(8, .statement, statement: "create table x (a int)")])
        #expect(statement.reduce(.key(.character("u"))).isEmpty)
        #expect(statement.message?.contains("cannot be reverted") == true && statement.messageIsError)
    }
}
