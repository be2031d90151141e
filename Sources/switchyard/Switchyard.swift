import ArgumentParser
import Foundation

@main
struct SwitchyardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchyard",
        abstract: "Route PostgreSQL reads and writes across a primary and its streaming replicas.",
        discussion: """
            Start with `switchyard cluster up`: a local primary and two streaming replicas \
            from this machine's PostgreSQL, with a switchyard.toml for them.
            """,
        version: SwitchyardVersion.current,
        subcommands: [
            DemoCommand.self, ConsoleCommand.self, ClusterCommand.self, LagCommand.self, CheckCommand.self, PromoteCommand.self,
            BenchCommand.self,
        ]
    )
}

enum SwitchyardVersion {
    static let current = "0.1.0"
}

/// Prints `message` to standard error and exits with status 1: for errors the user can
/// act on, worded as one line.
func fail(_ message: String) -> ExitCode {
    FileHandle.standardError.write(Data("switchyard: error: \(message)\n".utf8))
    return ExitCode.failure
}
