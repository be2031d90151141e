import ArgumentParser
import Console
import Foundation
import PostgresClient
import Switchyard

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "The console's change history (switchyard.changes): print it, or create its table.",
        subcommands: [List.self, Initialize.self, Verify.self, Track.self],
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
            var types: [String: [String: String]] = [:]
            do {
                (entries, types) = try await RoutingContext.admin.run {
                    let entries = try await ChangeAudit.history(cluster, table: table, since: since, limit: limit)
                    if let table, entries.isEmpty,
                        try await cluster.query("select to_regclass($1) is null", [ChangeAudit.quotedForRegclass(table)]).scalar(Bool.self) == true
                    {
                        throw UsageError("no table \(table) (SCHEMA.TABLE, as the console names it) and no recorded change to one of that name")
                    }
                    let types = json ? try await ChangeAudit.columnTypes(cluster, tables: Set(entries.map(\.table))) : [:]
                    return (entries, types)
                }
            } catch let error as UsageError {
                await cluster.shutdown()
                throw error
            } catch let error as PostgresError {
                await cluster.shutdown()
                if error.sqlState == "42P01" { throw UsageError("no change history yet: \(ChangeAudit.table) does not exist (`switchyard audit init` creates it)") }
                throw UsageError("cannot read \(ChangeAudit.table): \(error.message)")
            }
            await cluster.shutdown()
            if json {
                // Values typed by the table's columns as they are now (a number, a boolean,
                // nested JSON); text where the column is gone or its type has no JSON form.
                for entry in entries {
                    let object = ChangeAudit.typedJSON(entry, types: types[entry.table] ?? [:])
                    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
                    print(String(decoding: data, as: UTF8.self))
                }
                return
            }
            if entries.isEmpty {
                print(table.map { "no recorded changes to \($0)" } ?? "no recorded changes")
                return
            }
            let rows = entries.map { entry -> [String] in
                let changes: String
                switch entry.action {
                case .update:
                    changes = entry.changes().map { "\($0.column): \(Self.shown($0.before)) → \(Self.shown($0.after))" }.joined(separator: "; ")
                case .insert:
                    changes = entry.changes().map { "\($0.column) = \(Self.shown($0.after))" }.joined(separator: "; ")
                case .delete:
                    changes = "was " + entry.changes().map { "\($0.column) = \(Self.shown($0.before))" }.joined(separator: "; ")
                case .statement:
                    changes = ""
                }
                let statement = entry.statement.map { (changes.isEmpty ? "" : "; ") + "by: " + Self.shown($0) } ?? ""
                let by = entry.fromTrigger ? "app \(entry.application.map { $0.isEmpty ? "?" : $0 } ?? "?")@\(entry.clientHost ?? "local")"
                    : "\(entry.osUser ?? "?")@\(entry.clientHost ?? "?")"
                return [String(entry.id), entry.changedAt, entry.role, by, entry.table,
                        entry.keyLabel, entry.action.rawValue, changes + statement]
            }
            print(TextTable.render(header: ["ID", "TIME", "ROLE", "BY", "TABLE", "KEY", "ACTION", "CHANGES"], rows: rows))
        }

        /// A value as the grid bounds it: NULL named, long text cut.
        static func shown(_ value: String?) -> String {
            guard let value else { return "NULL" }
            return value.count > 60 ? String(value.prefix(59)) + "…" : value
        }
    }

    /// Runs `body` in the admin context on a started cluster, shut down afterwards; a
    /// PostgreSQL error becomes "`failure`: message".
    static func onCluster(_ config: ConfigOption, failure: String, _ body: @escaping @Sendable (Cluster) async throws -> Void) async throws {
        let cluster = try Cluster(configuration: try config.load())
        await cluster.start()
        do {
            try await RoutingContext.admin.run { try await body(cluster) }
        } catch let error as PostgresError {
            await cluster.shutdown()
            throw UsageError("\(failure): \(error.message)")
        }
        await cluster.shutdown()
    }

    struct Initialize: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "init", abstract: "Create the schema switchyard and the table switchyard.changes (run it as an owner).")

        @OptionGroup var config: ConfigOption
        @OptionGroup var logging: LoggingOptions
        @Option(help: ArgumentHelp("Let this role add to the history and read it (INSERT, SELECT; nothing else). Repeatable.", valueName: "ROLE"))
        var grant: [String] = []

        func run() async throws {
            try logging.bootstrap()
            let grant = grant
            try await AuditCommand.onCluster(config, failure: "cannot set up \(ChangeAudit.table)") { cluster in
                try await ChangeAudit.initialize(cluster)
                for role in grant {
                    let quoted = try await cluster.quoteIdentifiers([role])[0]
                    for statement in ChangeAudit.grantSQL(role: quoted) { _ = try await cluster.execute(statement) }
                }
            }
            print("\(ChangeAudit.table) is ready: append-only, hash-chained; the console records every change there")
            for role in grant { print("\(role) may add to it and read it, nothing else") }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify",
            abstract: "Recompute the history's hash chain; name the first row where it breaks (exit 1).",
            discussion: "Keep the head hash it prints somewhere else: a chain recomputed from scratch ends in another one.")

        @OptionGroup var config: ConfigOption
        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            try logging.bootstrap()
            let cluster = try Cluster(configuration: try config.load())
            await cluster.start()
            let report: ChangeAudit.ChainReport
            do {
                report = try await RoutingContext.admin.run { try await ChangeAudit.verify(cluster) }
            } catch let error as PostgresError {
                await cluster.shutdown()
                if error.sqlState == "42P01" || error.sqlState == "42703" || error.sqlState == "42883" {
                    throw UsageError("\(ChangeAudit.table) has no hash chain yet: `switchyard audit init` adds it")
                }
                throw UsageError("cannot read \(ChangeAudit.table): \(error.message)")
            }
            await cluster.shutdown()
            if let problem = report.problem {
                print("BROKEN at change #\(report.brokenAt ?? 0): \(problem)")
                throw ExitCode(1)
            }
            print("intact: \(report.rows) changes chained; head \(report.headSeq.map { "#\($0)" } ?? "-") \(report.headHash ?? "")")
        }
    }

    struct Track: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "track",
            abstract: "Record every change to a table from any client (apps, psql) in the history, beside the console's own.")

        @OptionGroup var config: ConfigOption
        @OptionGroup var logging: LoggingOptions
        @Argument(help: ArgumentHelp("The table.", valueName: "SCHEMA.TABLE")) var table: String

        func run() async throws {
            try logging.bootstrap()
            let table = table
            try await AuditCommand.onCluster(config, failure: "cannot track \(table)") { cluster in
                try await ChangeAudit.initialize(cluster)
                _ = try await cluster.query("select switchyard.track($1::regclass)", [ChangeAudit.quotedForRegclass(table)])
            }
            print("\(table) is tracked: its changes from any client go into \(ChangeAudit.table) (marked as not from the console)")
        }
    }
}
