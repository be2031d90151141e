import ArgumentParser
import Console
import Foundation
import PostgresClient
import Switchyard

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "The console's change history (switchyard.changes): print it, or create its table.",
        subcommands: [List.self, Initialize.self],
        defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list", abstract: "Print recorded changes, newest first (`switchyard audit` alone does this).")

        @OptionGroup var config: ConfigOption
        @OptionGroup var logging: LoggingOptions
        @Option(help: ArgumentHelp("Only changes to this table.", valueName: "SCHEMA.TABLE")) var table: String?
        @Option(help: ArgumentHelp("Only changes at or after this time (anything PostgreSQL reads as timestamptz, e.g. '2026-11-27 10:00' or 'today').", valueName: "TIME"))
        var since: String?
        @Option(help: "At most this many changes.") var limit = 100
        @Flag(help: "One JSON object per change (JSON Lines).") var json = false

        func validate() throws {
            guard (1...100_000).contains(limit) else { throw ValidationError("--limit must be between 1 and 100000") }
        }

        func run() async throws {
            try logging.bootstrap()
            let cluster = try Cluster(configuration: try config.load())
            await cluster.start()
            let entries: [ChangeAudit.Entry]
            do {
                entries = try await RoutingContext.admin.run {
                    try await ChangeAudit.history(cluster, table: table, since: since, limit: limit)
                }
            } catch let error as PostgresError {
                await cluster.shutdown()
                if error.sqlState == "42P01" { throw UsageError("no change history yet: \(ChangeAudit.table) does not exist (`switchyard audit init` creates it)") }
                throw UsageError("cannot read \(ChangeAudit.table): \(error.message)")
            }
            await cluster.shutdown()
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                for entry in entries { print(String(decoding: try encoder.encode(entry), as: UTF8.self)) }
                return
            }
            let rows = entries.map { entry -> [String] in
                let changes = entry.changes().map { change in
                    "\(change.column): \(Self.shown(change.before)) → \(Self.shown(change.after))"
                }.joined(separator: "; ")
                return [String(entry.id), entry.changedAt, entry.role, "\(entry.osUser ?? "?")@\(entry.clientHost ?? "?")", entry.table,
                        entry.keyLabel, entry.action.rawValue, changes]
            }
            print(TextTable.render(header: ["ID", "TIME", "ROLE", "BY", "TABLE", "KEY", "ACTION", "CHANGES"], rows: rows))
        }

        /// A value as the grid bounds it: NULL named, long text cut.
        static func shown(_ value: String?) -> String {
            guard let value else { return "NULL" }
            return value.count > 60 ? String(value.prefix(59)) + "…" : value
        }
    }

    struct Initialize: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "init", abstract: "Create the schema switchyard and the table switchyard.changes (run it as an owner).")

        @OptionGroup var config: ConfigOption
        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            try logging.bootstrap()
            let cluster = try Cluster(configuration: try config.load())
            await cluster.start()
            do {
                try await RoutingContext.admin.run { try await ChangeAudit.initialize(cluster) }
            } catch let error as PostgresError {
                await cluster.shutdown()
                throw UsageError("cannot create \(ChangeAudit.table): \(error.message)")
            }
            await cluster.shutdown()
            print("\(ChangeAudit.table) is ready: the console records every change there")
        }
    }
}
