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
            DemoCommand.self, ConsoleCommand.self, ClusterCommand.self, LagCommand.self, CheckCommand.self, PromoteCommand.self, AuditCommand.self,
            BenchCommand.self, StorefrontCommand.self, VerifyCommand.self, InstallCommand.self,
        ]
    )
}

enum SwitchyardVersion {
    static let current = "0.1.0"
}

/// A problem with how the command was used that no library error describes; the
/// argument parser prints it as `Error: …` and exits 1, like every other error.
struct UsageError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
