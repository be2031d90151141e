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

    func run() async throws {
        try logging.bootstrap(fullScreen: true)
        var configuration = try config.load()
        if readOnly { configuration.readOnly = true }
        let theme = try loadTheme(self.theme ?? configuration.theme)
        try await runConsole(configuration: configuration, theme: theme, table: table, follow: configuration.consoleFollow + follow)
    }
}

/// Loads a theme before the screen is touched, so its errors print as plain lines.
func loadTheme(_ nameOrPath: String) throws -> Theme {
    try Theme.load(nameOrPath)
}

func runConsole(
    configuration: ClusterConfiguration, theme: Theme, table: String?, follow: [String] = [],
    beside: (@Sendable (Cluster) -> Task<Void, Never>)? = nil
) async throws
{
    guard isatty(STDIN_FILENO) == 1, isatty(STDOUT_FILENO) == 1 else {
        throw UsageError("the console needs a terminal (stdin and stdout must be a tty)")
    }
    let cluster = try Cluster(configuration: configuration)
    await cluster.start()
    let sideTask = beside?(cluster)
    let app = ConsoleApp(cluster: cluster, theme: theme, initialTable: table, follow: follow)
    await app.run { NCursesDriver(theme: theme) }
    sideTask?.cancel()
    await sideTask?.value
    await cluster.shutdown()
}
