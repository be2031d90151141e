import ArgumentParser
import Console
import Foundation
import Switchyard

struct ConsoleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "console",
        abstract: "Browse and edit records on the primary, with live replica lag and the query log beside them.",
        discussion: "Every statement the console runs is in the admin routing context: reads and writes go to the primary.")

    @OptionGroup var config: ConfigOption

    @OptionGroup var logging: LoggingOptions
    @Option(help: "Theme name (Themes/NAME.toml) or path to a theme file.") var theme: String?
    @Option(help: "Open this table at once, as SCHEMA.TABLE.") var table: String?
    @Option(
        name: .customLong("follow"),
        help: ArgumentHelp(
            "Also show another process's JSON Lines query log (repeatable; globs allowed; adds to [console] follow).",
            valueName: "file"))
    var follow: [String] = []
    @Flag(help: "Write nothing: sessions open read-only, writing keys are off, the SQL prompt reads only (as [cluster] read_only).")
    var readOnly = false
    @Option(help: ArgumentHelp("Open this cluster of the config's [[clusters]] (default: the config's own).", valueName: "NAME"))
    var cluster: String?

    func run() async throws {
        try logging.bootstrap(fullScreen: true)
        var configuration = try config.load()
        if let cluster { configuration = try configuration.cluster(named: cluster) }
        if readOnly { configuration.readOnly = true }
        let theme = try loadTheme(self.theme ?? configuration.theme)
        try await runConsole(
            configuration: configuration, theme: theme, table: table, follow: configuration.consoleFollow + follow, readOnly: readOnly)
    }
}

/// Loads a theme before the screen is touched, so its errors print as plain lines.
func loadTheme(_ nameOrPath: String) throws -> Theme {
    try Theme.load(nameOrPath)
}

func runConsole(
    configuration: ClusterConfiguration, theme: Theme, table: String?, follow: [String] = [],
    beside: (@Sendable (Cluster) -> Task<Void, Never>)? = nil, readOnly: Bool = false
) async throws
{
    guard isatty(STDIN_FILENO) == 1, isatty(STDOUT_FILENO) == 1 else {
        throw UsageError("the console needs a terminal (stdin and stdout must be a tty)")
    }
    // One terminal for every cluster the console switches between (`C`); each cluster's
    // place is kept for when the console comes back to it.
    let terminal = ConsoleApp.Terminal { NCursesDriver(theme: theme) }
    var places: [String: ConsoleState] = [:]
    var current = configuration
    var first = true
    while true {
        let cluster = try Cluster(configuration: current)
        await cluster.start()
        let sideTask = first ? beside?(cluster) : nil
        let app = ConsoleApp(cluster: cluster, theme: theme, initialTable: first ? table : nil, follow: first ? follow : [])
        let end = await app.run(terminal: terminal, restoring: places[current.name])
        sideTask?.cancel()
        await sideTask?.value
        await cluster.shutdown()
        places[current.name] = end.state
        places[current.name]?.message = nil
        guard let next = end.switchTo else { return }
        do {
            current = try current.cluster(named: next)
            if readOnly { current.readOnly = true }
        } catch {
            // The terminal is still the console's: say it there, on the cluster left.
            places[current.name]?.message = "cannot switch to \(next): \(error)"
            continue
        }
        first = false
    }
}
