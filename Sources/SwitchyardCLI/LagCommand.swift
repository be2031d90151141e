import ArgumentParser
import Foundation
import LocalCluster
import Prometheus
import PostgresClient
import Switchyard

struct LagCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lag",
        abstract: "Show every node's role, state, upstream, timeline and replication lag.",
        discussion: """
            LAG BYTES: WAL the replica has still to replay, against the primary's current \
            position. LAG SECONDS: how stale the replica's data is — the age of the oldest \
            change committed on the primary that it has not applied. The monitor times it \
            with a heartbeat its probe of the primary commits every round (a transactional \
            logical message, no table; `[monitor] heartbeat = false` turns it off), so a \
            replica that applies changes 1.5 s late reads 1.5 s whether or not the \
            application writes. A one-off report waits until each replica has applied the \
            first heartbeat (at most 3 s).

            --prometheus prints the monitor's gauges (switchyard_replica_lag_seconds, \
            switchyard_replica_lag_bytes, switchyard_node_up, switchyard_node_is_primary, per \
            node) in Prometheus text format, for a node exporter's textfile collector; with \
            --output the file is replaced whole (written beside it, then renamed), so the \
            collector never reads half of one.
            """)

    @OptionGroup var config: ConfigOption

    @OptionGroup var logging: LoggingOptions
    @Flag(help: "Print JSON instead of a table.") var json = false
    @Flag(help: "Redraw every monitor interval until interrupted.") var watch = false
    @Flag(help: "Print the lag gauges in Prometheus text format.") var prometheus = false
    @Option(help: ArgumentHelp("With --prometheus: replace this file instead of printing (atomically).", valueName: "file"))
    var output: String?

    func validate() throws {
        if json && prometheus { throw ValidationError("--json and --prometheus exclude each other") }
        if output != nil && !prometheus { throw ValidationError("--output goes with --prometheus") }
    }

    func run() async throws {

        try logging.bootstrap()
        let configuration = try config.load()
        let monitor = ClusterMonitor(
            nodes: configuration.nodes,
            settings: ClusterMonitor.Settings(configuration))
        var first = true
        repeat {
            let started = ContinuousClock.now
            let topology = first ? await monitor.probeSettled() : await monitor.probeNow()
            first = false
            if prometheus {
                let text = LagReport.prometheus(topology)
                if let output { try LagReport.replace(output, with: text) } else { print(text, terminator: "") }
            } else {
                if watch && !json { print("\u{1B}[H\u{1B}[2J", terminator: "") }
                print(json ? try LagReport.json(topology, cluster: configuration.name) : LagReport.table(topology, configuration))
            }
            if watch { try await Task.sleep(until: started + configuration.monitorInterval, clock: .continuous) }
        } while watch
        await monitor.stop()
    }
}

enum LagReport {
    /// The monitor's gauges for `topology`, in Prometheus text format (the same names
    /// and labels a running app exports).
    static func prometheus(_ topology: Topology) -> String {
        let registry = PrometheusCollectorRegistry()
        MonitorGauges(nodes: topology.nodes.map(\.name), factory: PrometheusMetricsFactory(registry: registry)).publish(topology)
        return registry.emitToString()
    }

    /// Replaces `path` whole (a new file beside it, renamed over it), readable by the
    /// collector: a reader sees the old file or the new one, never a part.
    static func replace(_ path: String, with text: String) throws {
        do {
            try PrivateFile.write(Data(text.utf8), to: path, mode: 0o644)
        } catch {
            throw UsageError("\(error)")
        }
    }

    static func table(_ topology: Topology, _ configuration: ClusterConfiguration) -> String {
        let patroni = topology.patroni
        let header = ["NODE", "ROLE", "STATE", "UPSTREAM", "TL", "LAG BYTES", "LAG SECONDS", "REPLAY PAUSED"] + (patroni == nil ? [] : ["PATRONI"])
        let rows = topology.nodes.map { node -> [String] in
            let patroniCell: String? = patroni.map { view -> String in
                guard view.error == nil else { return "?" }
                guard let member = view.member(forNode: node.name) else { return "not a member" }
                return member.summary + (member.timeline.map { " tl \($0)" } ?? "")
            }
            let cells: [String] = [
                node.name, node.reachable ? node.role.rawValue : "-", state(node), node.upstream ?? "-",
                node.timeline.map(String.init) ?? "-", node.lagBytes.map(String.init) ?? "-",
                node.lagSeconds.map { (node.lagIsUpperBound ? "≤ " : "") + String(format: "%.3f", $0) } ?? "-",
                node.replayPaused.map { $0 ? "yes" : "no" } ?? "-",
            ]
            return cells + (patroniCell.map { [$0] } ?? [])
        }
        var lines = [TerminalText.sanitized("cluster \(configuration.name)"), TextTable.render(header: header, rows: rows)]
        lines.append(lagNote(topology))
        let hidden = topology.hiddenFromMonitor
        if !hidden.isEmpty {
            lines.append(TerminalText.sanitized(
                "\(hidden.keys.sorted().joined(separator: ", ")): WAL receiver state, upstream and timeline unknown: \(Topology.monitoringRightsHint)"))
        }
        if let patroni {
            if let error = patroni.error {
                lines.append(TerminalText.sanitized("Patroni: not answering (\(error))"))
            } else {
                lines.append(TerminalText.sanitized(
                    "Patroni: leader \(patroni.leader ?? "none")" + (patroni.paused ? ", PAUSED (maintenance mode: no automatic failover)" : "")))
            }
        }
        for (name, why) in topology.fenced.sorted(by: { $0.key < $1.key }) {
            lines.append(TerminalText.sanitized("\(name) gets no writes: \(why)"))
        }
        if topology.primaries.count > 1 {
            lines.append("SPLIT BRAIN: \(topology.primaries.map(\.name).joined(separator: ", ")) are all primaries")
        } else if topology.primary == nil {
            lines.append("no reachable primary")
        }
        return lines.joined(separator: "\n")
    }

    /// What LAG SECONDS means, under every table that shows it.
    static func lagNote(_ topology: Topology) -> String {
        var note = "LAG SECONDS: age of the oldest change the replica has not applied (how stale its data is)"
        if let problem = topology.heartbeatProblem {
            note += "; no heartbeat (\(problem)): only other writes are timed, an idle replica reads 0"
        } else {
            note += ", timed by the monitor's heartbeat"
        }
        if topology.nodes.contains(where: \.lagIsUpperBound) {
            note += "; ≤: behind everything this run saw written, the age of its last replayed change"
        }
        return TerminalText.sanitized(note)
    }

    static func state(_ node: NodeState) -> String {
        guard node.reachable else {
            let why = node.error ?? "unreachable"
            return "DOWN: " + (why.count > 40 ? String(why.prefix(39)) + "…" : why)
        }
        if node.role == .primary { return "running" }
        return node.walReceiverStatus ?? "not streaming"
    }

    struct Document: Encodable {
        var cluster: String
        var primary: String?
        var nodes: [NodeState]
        var replication: [ReplicationPeer]
        var patroni: PatroniView?
        var fenced: [String: String]
        /// What `lagSeconds` means, and why the heartbeat is off when it is.
        var lagMeaning: String
        var heartbeatProblem: String?
        /// Replicas whose receiver state the monitoring role cannot read, and why.
        var monitoringProblems: [String: String]
    }

    static func json(_ topology: Topology, cluster: String) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let document = Document(
            cluster: cluster, primary: topology.primary?.name, nodes: topology.nodes, replication: topology.replication,
            patroni: topology.patroni, fenced: topology.fenced, lagMeaning: Topology.lagMeaning,
            heartbeatProblem: topology.heartbeatProblem, monitoringProblems: topology.hiddenFromMonitor)
        return String(decoding: try encoder.encode(document), as: UTF8.self)
    }
}
