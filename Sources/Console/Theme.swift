import Foundation
import Switchyard
import TOMLKit

/// What a piece of the screen is, so a theme can style it.
public enum StyleRole: String, Sendable, CaseIterable, Hashable {
    case normal, header, badge, status, border, focus_border, grid_header, selected, null
    case primary, replica, node_down, lag_ok, lag_warn, lag_critical
    case log_admin, log_public, error, help, dim
}

/// A terminal colour: the terminal's own default, or an index of the 256-colour palette
/// (0–7 the basic colours, 8–15 their bright forms).
public enum TerminalColor: Sendable, Equatable, Hashable {
    case terminalDefault
    case index(Int)

    static let names = ["black", "red", "green", "yellow", "blue", "magenta", "cyan", "white"]

    /// Parses `red`, `bright-red`, `default` or `0`–`255`.
    public init?(name: String) {
        if name == "default" {
            self = .terminalDefault
        } else if let index = Self.names.firstIndex(of: name) {
            self = .index(index)
        } else if name.hasPrefix("bright-"), let index = Self.names.firstIndex(of: String(name.dropFirst(7))) {
            self = .index(index + 8)
        } else if let number = Int(name), (0...255).contains(number) {
            self = .index(number)
        } else {
            return nil
        }
    }

    /// The nearest of the 8 basic colours, for terminals that have only those.
    public var basic: TerminalColor {
        guard case .index(let index) = self else { return self }
        if index < 8 { return self }
        if index < 16 { return .index(index - 8) }
        if index >= 232 { return .index(index < 244 ? 0 : 7) }
        let cube = index - 16
        let (r, g, b) = (cube / 36, cube / 6 % 6, cube % 6)
        let bits = (r >= 3 ? 1 : 0) | (g >= 3 ? 2 : 0) | (b >= 3 ? 4 : 0)
        return .index(bits)
    }
}

public struct Style: Sendable, Equatable, Hashable {
    public var foreground: TerminalColor = .terminalDefault
    public var background: TerminalColor = .terminalDefault
    public var bold = false
    public var italic = false
    public var underline = false
    public var dim = false
    public var reverse = false

    public init(
        foreground: TerminalColor = .terminalDefault, background: TerminalColor = .terminalDefault, bold: Bool = false,
        italic: Bool = false, underline: Bool = false, dim: Bool = false, reverse: Bool = false
    ) {
        self.foreground = foreground
        self.background = background
        self.bold = bold
        self.italic = italic
        self.underline = underline
        self.dim = dim
        self.reverse = reverse
    }
}

/// Styles for every ``StyleRole``, from `Themes/NAME.toml`.
public struct Theme: Sendable, Equatable {
    public var name: String
    public var styles: [StyleRole: Style]

    public func style(_ role: StyleRole) -> Style { styles[role] ?? Theme.builtIn.styles[role] ?? Style() }

    /// The default theme, also shipped as `Themes/default.toml`; other themes fall back
    /// to it for roles they leave out.
    public static let builtIn: Theme = {
        let dark: [StyleRole: Style] = [
            .normal: Style(),
            .header: Style(foreground: .index(7), background: .index(4), bold: true),
            .badge: Style(foreground: .index(0), background: .index(3), bold: true),
            .status: Style(foreground: .index(0), background: .index(6)),
            .border: Style(foreground: .index(8)),
            .focus_border: Style(foreground: .index(6), bold: true),
            .grid_header: Style(foreground: .index(7), bold: true, underline: true),
            .selected: Style(foreground: .index(0), background: .index(6)),
            .null: Style(foreground: .index(8), italic: true),
            .primary: Style(foreground: .index(4), bold: true),
            .replica: Style(foreground: .index(6)),
            .node_down: Style(foreground: .index(7), background: .index(1), bold: true),
            .lag_ok: Style(foreground: .index(2)),
            .lag_warn: Style(foreground: .index(3), bold: true),
            .lag_critical: Style(foreground: .index(1), bold: true),
            .log_admin: Style(foreground: .index(5)),
            .log_public: Style(foreground: .index(8)),
            .error: Style(foreground: .index(15), background: .index(1), bold: true),
            .help: Style(foreground: .index(0), background: .index(7)),
            .dim: Style(foreground: .index(8)),
        ]
        return Theme(name: "default", styles: dark)
    }()

    /// Loads `--theme NAME|PATH`: a path (contains `/` or ends in `.toml`), or a name looked
    /// up in `searchPaths`; `default` needs no file. Fails before anything is drawn, with
    /// the file, line and problem.
    public static func load(_ nameOrPath: String, searchPaths: [String] = Theme.searchPaths()) throws -> Theme {
        if nameOrPath.contains("/") || nameOrPath.hasSuffix(".toml") {
            return try parse(file: nameOrPath)
        }
        for folder in searchPaths {
            let candidate = "\(folder)/\(nameOrPath).toml"
            if FileManager.default.fileExists(atPath: candidate) { return try parse(file: candidate) }
        }
        if nameOrPath == "default" { return builtIn }
        throw ConfigurationError(
            file: "\(nameOrPath).toml",
            message: "theme \"\(nameOrPath)\" not found (looked in \(searchPaths.joined(separator: ", "))); give a name or a path")
    }

    /// `$SWITCHYARD_THEMES`, `./Themes`, the `Themes` folder of the checkout the program
    /// was built in, and `$XDG_CONFIG_HOME/switchyard/themes`.
    public static func searchPaths(environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        var paths: [String] = []
        if let custom = environment["SWITCHYARD_THEMES"], !custom.isEmpty { paths.append(custom) }
        paths.append(FileManager.default.currentDirectoryPath + "/Themes")
        var folder = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            folder.deleteLastPathComponent()
            paths.append(folder.appendingPathComponent("Themes").path)
        }
        paths.append(XDG.configHome(environment) + "/switchyard/themes")
        var seen = Set<String>()
        return paths.filter { seen.insert($0).inserted }
    }

    public static func parse(file: String) throws -> Theme {
        guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
            throw ConfigurationError(file: file, message: "cannot read the theme file")
        }
        return try parse(text, file: file)
    }

    public static func parse(_ text: String, file: String) throws -> Theme {
        let root = try ConfigurationError.parseTOML(text, file: file)
        let reader = TOMLReader(file: file, text: text)
        func line(of key: String) -> Int? { reader.line(of: key) }
        for key in root.keys where key != "name" && key != "styles" {
            throw ConfigurationError(file: file, line: line(of: key), message: "unknown key \"\(key)\" (expected name and [styles])")
        }
        var theme = Theme(name: root["name"]?.string ?? URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent, styles: [:])
        guard let styles = root["styles"]?.table else {
            throw ConfigurationError(file: file, message: "no [styles] table")
        }
        for role in styles.keys {
            guard let styleRole = StyleRole(rawValue: role) else {
                throw ConfigurationError(
                    file: file, line: line(of: role),
                    message: "unknown role \"\(role)\" (roles: \(StyleRole.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            guard let table = styles[role]?.table else {
                throw ConfigurationError(file: file, line: line(of: role), message: "\(role) must be an inline table like { fg = \"white\" }")
            }
            var style = Style()
            for key in table.keys {
                switch key {
                case "fg", "bg":
                    guard let name = table[key]?.string ?? table[key]?.int.map(String.init), let color = TerminalColor(name: name) else {
                        throw ConfigurationError(
                            file: file, line: line(of: role),
                            message: "\(role).\(key): unknown colour \(table[key].map { "\($0)" } ?? "") "
                                + "(use black, red, green, yellow, blue, magenta, cyan, white, bright-NAME, default or 0-255)")
                    }
                    if key == "fg" { style.foreground = color } else { style.background = color }
                case "bold", "italic", "underline", "dim", "reverse":
                    guard let flag = table[key]?.bool else {
                        throw ConfigurationError(file: file, line: line(of: role), message: "\(role).\(key) must be true or false")
                    }
                    switch key {
                    case "bold": style.bold = flag
                    case "italic": style.italic = flag
                    case "underline": style.underline = flag
                    case "dim": style.dim = flag
                    default: style.reverse = flag
                    }
                default:
                    throw ConfigurationError(
                        file: file, line: line(of: role),
                        message: "\(role): unknown attribute \"\(key)\" (fg, bg, bold, italic, underline, dim, reverse)")
                }
            }
            theme.styles[styleRole] = style
        }
        return theme
    }
}
