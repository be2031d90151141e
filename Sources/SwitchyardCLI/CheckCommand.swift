import ArgumentParser
import Foundation
import PostgresClient
import Switchyard

struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Could the cluster lose its primary now, and which replica would take over?",
        discussion: """
            Exit codes follow Nagios: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. The first line is a \
            one-line summary for monitoring systems; a table of every check and the candidate \
            ranking follow. The visibility check writes a marker row in the schema `switchyard` \
            on the primary (created if allowed).
            """)

    @OptionGroup var config: ConfigOption

    @OptionGroup var logging: LoggingOptions
    @Flag(help: "Print JSON instead of text.") var json = false
    @Option(name: .customLong("warn-lag-ms"), help: "Lag (ms) that warns; default from [monitor] warn_lag_ms.") var warnLagMs: Int?
    @Option(name: .customLong("critical-lag-ms"), help: "Lag (ms) that is critical; default from [monitor] critical_lag_ms.")
    var criticalLagMs: Int?

    func validate() throws {
        for (name, value) in [("--warn-lag-ms", warnLagMs), ("--critical-lag-ms", criticalLagMs)] {
            if let value, !(0...86_400_000).contains(value) {
                throw ValidationError("\(name) must be between 0 and 86400000 milliseconds, not \(value)")
            }
        }
        if let warnLagMs, let criticalLagMs, criticalLagMs < warnLagMs {
            throw ValidationError("--critical-lag-ms must not be below --warn-lag-ms")
        }
    }

    func run() async throws {

        try logging.bootstrap()
        let configuration: ClusterConfiguration
        do {
            configuration = try config.load()
        } catch {
            // Monitoring reads the first line and the exit code: a config problem is UNKNOWN.
            print(TerminalText.sanitized("SWITCHYARD UNKNOWN - \(error)"))
            throw ExitCode(3)
        }
        let report = await FailoverChecker(
            configuration: configuration, warnLag: warnLagMs.map { .milliseconds($0) }, criticalLag: criticalLagMs.map { .milliseconds($0) }).run()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(TerminalText.sanitized(report.summaryLine))
            let rows = report.results.map { [$0.status.rawValue, $0.check, $0.node ?? "-", $0.summary] }
            print(TextTable.render(header: ["STATUS", "CHECK", "NODE", "DETAIL"], rows: rows))
            if !report.candidates.isEmpty {
                print("\ncandidates, best first:")
                let candidateRows = report.candidates.enumerated().map { index, candidate in
                    [String(index + 1), candidate.node, candidate.receiveLSN?.description ?? "-", candidate.replayLSN?.description ?? "-",
                     candidate.missingBytes.map(String.init) ?? "-"]
                }
                print(TextTable.render(header: ["#", "NODE", "RECEIVED", "REPLAYED", "BEHIND BYTES"], rows: candidateRows))
            }
            print("lag = age of the oldest change a replica has not applied (how stale its data is), timed by the monitor's heartbeat")
            print(String(format: "checked from %@ in %.0f ms", report.testedFrom, report.durationMs))
        }
        throw ExitCode(report.exitCode)
    }
}

struct PromoteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "promote",
        abstract: "Make a replica the primary, through the HA engine when there is one.",
        discussion: """
            Without an HA engine: pg_promote() on the node, then the other replicas are \
            repointed to it (primary_conninfo + reload); refused while another primary is \
            reachable (split brain) unless --force. With [patroni] in the config: a Patroni \
            switchover (a failover when there is no healthy leader), never pg_promote(); \
            --force is refused there. Either way it waits until the node accepts writes and \
            the others stream from it, and says how long each took.
            """)

    @OptionGroup var config: ConfigOption

    @OptionGroup var logging: LoggingOptions
    @Argument(help: "The replica to promote, e.g. pg2.") var node: String
    @Flag(help: "Confirm: promotion cannot be undone.") var yes = false
    @Flag(help: "Promote even though another primary is reachable (clusters without an HA engine only).") var force = false

    func run() async throws {

        try logging.bootstrap()
        guard yes else { throw UsageError("promoting \(node) cannot be undone: run again with --yes to confirm") }
        let configuration = try config.load()
        print("promoting \(node)…")
        let outcome = try await Promotion.promote(node, configuration: configuration, force: force) { step in
            print("  \(TerminalText.sanitized(step))")
        }
        print("\(node) is primary (\(outcome.method.rawValue); accepting writes after \(formatDuration(outcome.acceptingWrites)))")
        if let all = outcome.allStreaming, !outcome.following.isEmpty {
            print("\(outcome.following.joined(separator: ", ")) \(outcome.following.count == 1 ? "streams" : "stream") from \(node) (after \(formatDuration(all)))")
        }
        for (name, why) in outcome.notFollowing.sorted(by: { $0.key < $1.key }) {
            print("warning: \(name) \(TerminalText.sanitized(why))")
        }
        if !outcome.notFollowing.isEmpty { throw ExitCode(1) }
    }
}
