@testable import Console
import Foundation
@testable import Switchyard
import Testing

/// The one keymap (`SWITCHYARD_UPDATE_GOLDEN=1` rewrites the README's table): dispatch, hints, help and the README all come from it.
@Suite struct KeymapTests {
    /// A state in every mode the console has, on the sample table.
    static func statesInEveryMode() -> [(String, ConsoleState)] {
        let base = ConsoleState.sample(width: 120, height: 40)
        let row = base.grid!.rows[0]
        let candidates = [Candidate(node: "pg2", reachable: true, receiveLSN: nil, replayLSN: nil, missingBytes: 0, lagSeconds: 0)]
        var promoting = FailoverView(candidates: candidates)
        promoting.confirmation = TextField("")
        let modes: [(String, Mode)] = [
            ("browse", .browse),
            ("editCell", .editCell(CellEdit(row: 0, column: 1, field: TextField(row[1]), seen: row))),
            ("form", .form(RowForm(kind: .edit(seen: row), fields: row.map { TextField($0) }))),
            ("filter", .filter(FilterPrompt(column: 0, op: .equals, field: TextField("")))),
            ("confirmDelete", .confirmDelete(DeleteConfirmation(seen: row, sql: "delete …", key: "id = 1"))),
            ("conflict", .conflict(Conflict(mine: [1: "x"], current: row, resume: .browse))),
            ("failover", .failover(FailoverView(candidates: candidates))),
            ("promote", .failover(promoting)),
            ("confirmQuit", .confirmQuit(previous: .browse)),
        ]
        return modes.map { name, mode in
            var state = base
            state.mode = mode
            return (name, state)
        }
    }

    /// Renders the help opened from `state`'s mode, scrolling until the end, and returns
    /// all text seen.
    static func helpText(_ state: ConsoleState) -> String {
        var help = state
        help.mode = .help(HelpView(previous: state.mode))
        var text = ""
        for _ in 0..<200 {
            text += Renderer.render(help).text + "\n"
            let before = help.mode
            _ = help.reduce(.key(.down))
            if help.mode == before { break }
        }
        return text
    }

    @Test func helpForEveryModeListsEveryBindingOfThatMode() {
        for (name, state) in Self.statesInEveryMode() {
            let text = Self.helpText(state)
            let scopes = Keymap.helpScopes(for: state.mode)
            #expect(!scopes.isEmpty, "\(name) has no help")
            for scope in scopes {
                #expect(text.contains(scope.title), "\(name): help lacks the section \(scope.title)")
                for binding in Keymap.bindings(in: scope) {
                    #expect(text.contains(binding.help), "\(name): help lacks “\(binding.help)”")
                    #expect(text.contains(binding.keyLabel), "\(name): help lacks the keys \(binding.keyLabel)")
                }
            }
            // Every scope the state dispatches through is documented in its help.
            for scope in state.scopes {
                #expect(scopes.contains(scope), "\(name): scope \(scope) is not in its help")
            }
        }
    }

    @Test func helpClosesBackIntoTheModeItCameFrom() {
        for (name, state) in Self.statesInEveryMode() {
            var help = state
            help.mode = .help(HelpView(previous: state.mode))
            _ = help.reduce(.key(.character("x")))
            #expect(help.mode == state.mode, "\(name): help did not return to its mode")
        }
        var editing = Self.statesInEveryMode().first { $0.0 == "editCell" }!.1
        _ = editing.reduce(.key(.function(1)))
        guard case .help(let view) = editing.mode else { Issue.record("F1 did not open help while editing"); return }
        #expect(Keymap.helpContent(for: view.previous, state: editing).contains { $0.text.contains("set the value to NULL") })
    }

    @Test func noKeyIsBoundTwiceInOneScope() {
        for scope in KeyScope.allCases {
            var seen: [Key: Command] = [:]
            var anyKey = 0
            for binding in Keymap.bindings where binding.scopes.contains(scope) {
                if binding.keys.isEmpty { anyKey += 1 }
                for key in binding.keys {
                    #expect(seen[key] == nil, "\(key.label) is bound twice in \(scope)")
                    seen[key] = binding.command
                }
            }
            #expect(anyKey <= 1, "\(scope) has two catch-all bindings")
        }
    }

    @Test func hintLineComesFromTheKeymapAndLeavesOutDisabledKeys() {
        var state = ConsoleState.sample(width: 200, height: 60)
        state.focus = .grid
        let hints = Keymap.hintLine(for: state)
        #expect(hints.contains("Enter edit"))
        #expect(hints.contains("d delete"))
        #expect(Renderer.render(state).text.contains(hints))
        var readOnly = state
        for index in readOnly.grid!.shape.columns.indices { readOnly.grid!.shape.columns[index].primaryKeyPosition = nil }
        let readOnlyHints = Keymap.hintLine(for: readOnly)
        #expect(!readOnlyHints.contains("Enter edit") && !readOnlyHints.contains("d delete") && !readOnlyHints.contains("a add"))
        #expect(readOnlyHints.contains("s sort"))
    }

    @Test func disabledBindingsSayWhy() {
        var state = ConsoleState.sample(width: 120, height: 40)
        state.focus = .grid
        for index in state.grid!.shape.columns.indices { state.grid!.shape.columns[index].primaryKeyPosition = nil }
        #expect(state.reduce(.key(.character("d"))).isEmpty)
        #expect(state.mode == .browse)
        #expect(state.message?.contains("has no primary key: read-only") == true)
        #expect(state.messageIsError)

        var empty = ConsoleState.sample(width: 120, height: 40)
        empty.focus = .grid
        empty.grid!.rows = []
        empty.grid!.keys = []
        _ = empty.reduce(.key(.enter))
        #expect(empty.mode == .browse)
        #expect(empty.message == "no row selected")

        // The help names the reason beside the binding.
        let help = Keymap.helpContent(for: .browse, state: state)
        #expect(help.contains { $0.kind == .disabled && $0.text.contains("delete the row") && $0.text.contains("read-only") })
    }

    @Test func readmeKeyTableIsTheBrowseKeymap() throws {
        let readme = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("README.md")
        let text = try String(contentsOf: readme, encoding: .utf8)
        let begin = "<!-- keys: generated from Keymap.markdownTable() -->\n"
        let end = "\n<!-- keys end -->"
        let start = try #require(text.range(of: begin), "README has no generated key table")
        let stop = try #require(text.range(of: end, range: start.upperBound..<text.endIndex))
        let table = String(text[start.upperBound..<stop.lowerBound])
        if ProcessInfo.processInfo.environment["SWITCHYARD_UPDATE_GOLDEN"] == "1" {
            try text.replacingCharacters(in: start.upperBound..<stop.lowerBound, with: Keymap.markdownTable())
                .write(to: readme, atomically: true, encoding: .utf8)
            return
        }
        #expect(table == Keymap.markdownTable(), "README key table differs; replace it with:\n\(Keymap.markdownTable())")
    }
}
