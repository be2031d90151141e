import ArgumentParser
import Foundation
import LocalCluster
import Switchyard
import Verify

/// `switchyard verify`: a randomized workload under faults, then a history check.
struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Run many clients against a local cluster while faults are injected, then check the history.",
        discussion: """
            Clients write their own keys, read them back in the same unit of work, carry their token to later units \
            (as a cookie does), read other clients' keys and run transactions, through the routing library. Faults run \
            on a schedule, each at least once, and are healed before the end. The history is then checked for \
            read-your-writes, monotonic reads, transactions reading their own writes, reads that failed although \
            another node could serve them, and acknowledged writes missing from the final primary. Exit status 1 on \
            any violation. Faults: \(Fault.allCases.map(\.rawValue).joined(separator: ", ")).
            """)

    @OptionGroup var directory: ClusterDirectoryOption
    @Option(help: ArgumentHelp("Config file (default: the cluster folder's switchyard.toml).", valueName: "F"))
    var config: String?
    @Option(help: "How long the workload runs (seconds).") var seconds = 40
    @Option(help: "Concurrent clients.") var clients = 8
    @Option(help: ArgumentHelp("The monitor's interval for this run (default: the config's).", valueName: "MS"))
    var monitorIntervalMs: Int?
    @Option(help: "Seed of the clients' choices (printed; the same seed makes the same choices).") var seed: UInt64?
    @Option(help: ArgumentHelp("Faults to inject, comma-separated.", valueName: "LIST"))
    var faults = "kill-replica,stop-replica,delay-replica,blackhole-replica"
    @Flag(help: "Route without monotonic_reads and do not check monotonic reads.") var noMonotonicReads = false
    @Flag(help: "Drive the sample storefront over HTTP (visitors keep the token cookie) instead of the library.") var http = false
    @Option(help: ArgumentHelp("With --http: the storefront's answer deadline (ms); a later answer is a violation.", valueName: "MS"))
    var deadlineMs = 5000
    @Option(help: ArgumentHelp("Also write every operation (and fault window) as JSON Lines to this new file.", valueName: "FILE"))
    var history: String?
    @Flag(help: "Print the report as JSON.") var json = false

    func validate() throws {
        guard seconds >= 5 else { throw ValidationError("--seconds must be at least 5") }
        guard (1...256).contains(clients) else { throw ValidationError("--clients takes 1 to 256") }
        guard (500...60_000).contains(deadlineMs) else { throw ValidationError("--deadline-ms takes 500 to 60000") }
        if let monitorIntervalMs, !(50...60_000).contains(monitorIntervalMs) {
            throw ValidationError("--monitor-interval-ms takes 50 to 60000")
        }
        do { _ = try Fault.parse(faults) } catch { throw ValidationError("\(error)") }
    }

    func run() async throws {
        let local = directory.cluster
        let path = config ?? local.configURL.path
        var configuration = try ClusterConfiguration.load(path: path)
        if let monitorIntervalMs { configuration.monitorInterval = .milliseconds(monitorIntervalMs) }
        var options = VerifyOptions()
        options.seconds = seconds
        options.clients = clients
        if let seed { options.seed = seed }
        options.faults = try Fault.parse(faults)
        options.monotonicReads = !noMonotonicReads
        options.http = http
        options.historyFile = history
        options.requestDeadline = .milliseconds(deadlineMs)
        let json = self.json
        let report = try await VerifyRun(local: local, configuration: configuration, options: options).run { line in
            if !json { print(line) }
        }
        if json {
            try printJSON(report)
        } else {
            print(VerifyText.render(report))
        }
        if !report.violations.isEmpty { throw ExitCode(1) }
    }
}
