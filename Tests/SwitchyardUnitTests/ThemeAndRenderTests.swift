import Foundation
@testable import Console
import Switchyard
import Testing

@Suite struct ThemeTests {
    static let themes = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Themes")

    @Test func shippedThemesParseAndDefaultMatchesTheBuiltIn() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.themes.path).filter { $0.hasSuffix(".toml") }.sorted()
        #expect(files == ["default.toml", "high-contrast.toml", "light.toml", "solarized-dark.toml"])
        for file in files {
            let theme = try Theme.parse(file: Self.themes.appendingPathComponent(file).path)
            #expect(Set(theme.styles.keys) == Set(StyleRole.allCases), "\(file) leaves roles out")
        }
        let shipped = try Theme.load("default", searchPaths: [Self.themes.path])
        #expect(shipped.styles == Theme.builtIn.styles)
        #expect(try Theme.load("light", searchPaths: [Self.themes.path]).name == "light")
    }

    func error(_ text: String) -> ConfigurationError? {
        do {
            _ = try Theme.parse(text, file: "bad.toml")
            return nil
        } catch {
            return error as? ConfigurationError
        }
    }

    @Test func badThemesNameFileLineAndProblem() {
        let syntax = error("name = \"x\"\n[styles]\nheader = { fg = \"red\" \n")
        #expect(syntax?.file == "bad.toml")
        #expect(syntax?.line == 3)
        let role = error("[styles]\nheader = { fg = \"red\" }\nheadr = { fg = \"red\" }\n")
        #expect(role?.line == 3)
        #expect(role?.message.contains("unknown role \"headr\"") == true)
        let colour = error("[styles]\nnull = { fg = \"grey\" }\n")
        #expect(colour?.line == 2)
        #expect(colour?.message.contains("unknown colour") == true)
        let number = error("[styles]\nnull = { fg = 300 }\n")
        #expect(number?.message.contains("unknown colour") == true)
        let attribute = error("[styles]\nnull = { blink = true }\n")
        #expect(attribute?.message.contains("unknown attribute \"blink\"") == true)
        #expect(throws: ConfigurationError.self) { _ = try Theme.load("no-such-theme", searchPaths: ["/nonexistent"]) }
    }

    @Test func coloursParseAndDegrade() {
        #expect(TerminalColor(name: "bright-red") == .index(9))
        #expect(TerminalColor(name: "default") == .terminalDefault)
        #expect(TerminalColor(name: "196")?.basic == .index(1))
        #expect(TerminalColor(name: "bright-blue")?.basic == .index(4))
        #expect(TerminalColor(name: "250")?.basic == .index(7))
        #expect(TerminalColor(name: "purple") == nil)
    }

    @Test func partialThemesFallBackToDefault() throws {
        let theme = try Theme.parse("[styles]\nheader = { fg = \"green\" }\n", file: "mini.toml")
        #expect(theme.style(.header).foreground == .index(2))
        #expect(theme.style(.error) == Theme.builtIn.style(.error))
        #expect(theme.name == "mini")
    }
}

@Suite struct RenderTests {
    static let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

    /// Compares with `Golden/NAME.txt`; `SWITCHYARD_UPDATE_GOLDEN=1` rewrites the file.
    func check(_ screen: Screen, _ name: String) throws {
        let url = Self.golden.appendingPathComponent("\(name).txt")
        let text = screen.text + "\n"
        if ProcessInfo.processInfo.environment["SWITCHYARD_UPDATE_GOLDEN"] == "1" {
            try text.write(to: url, atomically: true, encoding: .utf8)
        }
        let expected = try String(contentsOf: url, encoding: .utf8)
        #expect(text == expected, "render differs from \(url.path); run with SWITCHYARD_UPDATE_GOLDEN=1 to accept")
    }

    static func clock(_ date: Date) -> String {
        let seconds = Int(date.timeIntervalSince1970) % 86400
        return String(format: "%02d:%02d:%02d", seconds / 3600, seconds / 60 % 60, seconds % 60)
    }

    @Test func layoutAt80x24() throws {
        try check(Renderer.render(.sample(width: 80, height: 24), clock: Self.clock), "browse-80x24")
    }

    @Test func layoutAt200x60() throws {
        try check(Renderer.render(.sample(width: 200, height: 60), clock: Self.clock), "browse-200x60")
    }

    /// `H` on a row, the history arriving, `Enter` for one change's whole diff, at the
    /// smallest and a large terminal; values with control characters and long text.
    @Test func historyViews() throws {
        let entries = [
            ChangeAudit.Entry(
                id: 3, changedAt: "2026-11-27T21:40:05.120+00", role: "clerk", osUser: "ana", clientHost: "desk-7", table: "demo.customers",
                key: ["id": "3"], action: .update, before: ["name": "Old\u{1B}[31mName", "notes": String(repeating: "n", count: 300)],
                after: ["name": "New Name", "notes": nil]),
            ChangeAudit.Entry(
                id: 2, changedAt: "2026-11-27T21:39:00.000+00", role: "clerk", osUser: "ana", clientHost: "desk-7", table: "demo.customers",
                key: ["id": "3"], action: .insert, before: nil, after: ["id": "3", "name": "Old Name", "country": "SE"]),
        ]
        for (width, height) in [(80, 24), (200, 60)] {
            var state = ConsoleState.sample(width: width, height: height)
            let effects = state.reduce(.key(.character("H")))
            guard case .loadHistory(let table, let key, let request) = effects.first else { Issue.record("no history request: \(effects)"); return }
            #expect(table == "demo.customers" && key == ["id": "3"])
            _ = state.reduce(.historyLoaded(entries, request: request))
            try check(Renderer.render(state, clock: Self.clock), "history-\(width)x\(height)")
            _ = state.reduce(.key(.enter))
            try check(Renderer.render(state, clock: Self.clock), "history-diff-\(width)x\(height)")
            _ = state.reduce(.key(.escape))
            _ = state.reduce(.key(.escape))
            #expect(state.mode == .browse)
        }
    }

    /// `Q`: the whole log, newest first, at the smallest and a large terminal (node, reason
    /// code and SQL on every line; the reason itself where there is room); a guarded read
    /// that fell back shown whole; the search prompt.
    @Test func queryLogViews() throws {
        for (width, height) in [(80, 24), (200, 60)] {
            var state = ConsoleState.sample(width: width, height: height)
            _ = state.reduce(.key(.character("Q")))
            try check(Renderer.render(state, clock: Self.clock), "querylog-\(width)x\(height)")
            _ = state.reduce(.key(.enter))
            try check(Renderer.render(state, clock: Self.clock), "querylog-entry-\(width)x\(height)")
            _ = state.reduce(.key(.escape))
            _ = state.reduce(.key(.character("/")))
            for character in "PRODUCTS" { _ = state.reduce(.key(.character(character))) }
            try check(Renderer.render(state, clock: Self.clock), "querylog-search-\(width)x\(height)")
            _ = state.reduce(.key(.escape))
            _ = state.reduce(.key(.escape))
            #expect(state.mode == .browse)
        }
    }

    @Test func editAndConflictViews() throws {
        var state = ConsoleState.sample(width: 100, height: 30)
        _ = state.reduce(.key(.enter))
        try check(Renderer.render(state, clock: Self.clock), "edit-100x30")
        guard case .update(_, _, _, _, let request) = state.reduce(.key(.enter)).first else { Issue.record("no update"); return }
        var current = state.grid!.rows[2]
        current[1] = "Changed Elsewhere"
        current[3] = "SE"
        _ = state.reduce(.conflict(current: current, request: request))
        try check(Renderer.render(state, clock: Self.clock), "conflict-100x30")
    }

    @Test func aReplicaTheMonitorCannotReadSaysWhyInThePane() {
        var state = ConsoleState.sample(width: 120, height: 30)
        let index = try! #require(state.nodes.firstIndex { $0.state.role == .replica })
        state.nodes[index].state.walReceiverStatus = "unknown"
        let text = Renderer.render(state).text
        #expect(text.contains("receiver ? no pg_monitor"), "\(text)")
    }

    @Test func horizontalScrollKeepsTheKeyColumnFrozen() {
        var state = ConsoleState.sample(width: 80, height: 24)
        let before = Renderer.render(state).text.split(separator: "\n")[2]
        #expect(!before.contains("notes"), "at 80 columns the last column starts off screen")
        for _ in 0..<5 { _ = state.reduce(.key(.right)) }
        #expect(state.grid?.cursorColumn == 5)
        let header = Renderer.render(state).text.split(separator: "\n")[2]
        #expect(header.contains("id ⚷"), "the key column stays")
        #expect(header.contains("notes"), "the cursor column scrolled into view")
    }

    @Test func tooSmallTerminalSaysSo() {
        let screen = Renderer.render(.sample(width: 60, height: 20))
        #expect(screen.text.contains("Terminal too small: 60×20"))
        #expect(screen.text.contains("80×24"))
    }

    @Test func wideCharactersTakeTwoColumnsAndNullIsDistinct() {
        var screen = Screen(width: 10, height: 1)
        #expect(screen.put("山田x", x: 0, y: 0, role: .normal) == 5)
        #expect(screen.text == "山田x     ")
        #expect(Screen.fit("abcdefgh", to: 5) == "abcd…")
        #expect(Screen.fit("a\nb", to: 5) == "a↵b")
        let text = Renderer.render(.sample(width: 120, height: 40)).text
        #expect(text.contains("∅"), "NULL is shown as ∅")
        #expect(text.contains("ADMIN → primary pg1"))
        #expect(text.contains("pg3 DOWN"))
    }

    @Test func redrawsOnlyChangedRows() {
        let driver = TextDriver(width: 100, height: 30)
        var state = ConsoleState.sample(width: 100, height: 30)
        driver.draw(Renderer.render(state, clock: Self.clock))
        let full = driver.drawnRows
        #expect(full == 30)
        _ = state.reduce(.key(.down))
        driver.draw(Renderer.render(state, clock: Self.clock))
        #expect(driver.drawnRows - full <= 4, "moving the cursor redraws a few rows, not the screen")
    }
}
