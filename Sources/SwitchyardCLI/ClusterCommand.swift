import ArgumentParser
import Foundation
import LocalCluster
import PostgresClient
import Switchyard

struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Run a local primary and streaming replicas for development and tests.",
        discussion: """
            Nodes are pg1 (primary), pg2, pg3, … on 127.0.0.1, ports P, P+1, …; database \
            `app`, user `postgres` with a random password in D/pgpass (scram-sha-256). The \
            folder holds the data, each node's log and a switchyard.toml for the other \
            commands. With --ha patroni, a local etcd and one Patroni per node manage them. \
            With --pgbouncer, a PgBouncer in transaction-pooling mode fronts each node \
            (ports after the cluster's); switchyard.toml sends app traffic through it and \
            probes straight to the servers (monitor_conninfo).
            """,
        subcommands: [Up.self, Down.self, Status.self, Delay.self, Stop.self, Start.self, Rejoin.self]
    )
}

/// `--dir`, shared by every cluster subcommand.
extension LocalCluster.Engine: ExpressibleByArgument {}

struct ClusterDirectoryOption: ParsableArguments {
    @Option(
        name: .customLong("dir"),
        help: ArgumentHelp(
            "Cluster folder (default: $XDG_STATE_HOME/switchyard/cluster, ~/.local/state/switchyard/cluster, "
                + "or /var/lib/switchyard/cluster as root).",
            valueName: "D"))
    var path: String?

    var cluster: LocalCluster {
        let url = path.map { URL(fileURLWithPath: $0) } ?? LocalCluster.defaultDirectory()
        return LocalCluster(directory: url)
    }
}

extension ClusterCommand {
    struct Up: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create the cluster, or start what is stopped in an existing one.")

        @OptionGroup var directory: ClusterDirectoryOption
        @Option(help: "Streaming replicas besides the primary.") var replicas = 2
        @Option(help: "Port of pg1; replicas take the following ports.") var port = 55432
        @Option(
            help: ArgumentHelp(
                "Let an HA engine manage the nodes: patroni (with a local etcd; needs the patroni and etcd-server packages).",
                valueName: "engine"))
        var ha: LocalCluster.Engine?
        @Flag(help: "Put a PgBouncer (transaction pooling; needs the pgbouncer package) in front of each node.")
        var pgbouncer = false

        func validate() throws {
            guard (0...16).contains(replicas) else { throw ValidationError("--replicas must be between 0 and 16") }
            guard (1024...65535).contains(port) else { throw ValidationError("--port must be between 1024 and 65535") }
        }

        func run() async throws {
            let cluster = directory.cluster
            let started = Date()
            let statuses = try await cluster.up(basePort: port, replicas: replicas, engine: ha, pgbouncer: pgbouncer) { step in
                print("  \(step)")
            }
            print(StatusTable.render(statuses))
            print(String(format: "cluster ready in %.1f s: %@", Date().timeIntervalSince(started), cluster.directory.path))
            print("config: \(cluster.configURL.path)")
            if let primary = statuses.first(where: { $0.role == .primary }) {
                print("connect: psql \"\(cluster.conninfo(for: primary.node))\"")
                if let bounced = cluster.bouncerConninfo(for: primary.node) {
                    print("through PgBouncer: psql \"\(bounced)\"")
                    print("PgBouncer console: psql \"\(cluster.bouncerConninfo(for: primary.node, database: "pgbouncer")!)\" -c 'show pools'")
                }
            }
            if let endpoints = try? cluster.patroniEndpoints(), !endpoints.isEmpty {
                print("patroni: \(endpoints.map(\.absoluteString).joined(separator: " "))")
            }
        }
    }

    struct Down: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop every node; the data is kept.")

        @OptionGroup var directory: ClusterDirectoryOption
        @Flag(help: "Kill the servers at once instead of a clean shutdown.") var immediate = false

        func run() async throws {
            let cluster = directory.cluster
            try await cluster.down(mode: immediate ? .immediate : .fast)
            print("stopped all nodes in \(cluster.directory.path) (data kept; `switchyard cluster up` starts them again)")
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show each node: port, running, role, replay position.")

        @OptionGroup var directory: ClusterDirectoryOption

        func run() async throws {
            print(StatusTable.render(try await directory.cluster.status()))
        }
    }

    struct Delay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a replica replay WAL this many milliseconds late (recovery_min_apply_delay); 0 clears.")

        @OptionGroup var directory: ClusterDirectoryOption
        @Argument(help: "Replica name, e.g. pg3.") var node: String
        @Argument(help: "Delay in milliseconds; 0 removes it.") var milliseconds: Int

        func validate() throws {
            guard (0...86_400_000).contains(milliseconds) else {
                throw ValidationError("the delay must be between 0 and 86400000 milliseconds")
            }
        }

        func run() async throws {
            try await directory.cluster.delay(node: node, milliseconds: milliseconds)
            print(milliseconds == 0 ? "\(node): replay delay cleared" : "\(node): replays \(milliseconds) ms behind")
        }
    }

    struct Stop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop one node.")

        @OptionGroup var directory: ClusterDirectoryOption
        @Argument(help: "Node name, e.g. pg2.") var node: String
        @Flag(help: "Kill it at once, as a crash would.") var immediate = false

        func run() async throws {
            try await directory.cluster.stop(node: node, mode: immediate ? .immediate : .fast)
            print("\(node): stopped")
        }
    }

    struct Rejoin: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Bring a node (an old primary) back as a replica of the current primary: pg_rewind, then standby.",
            discussion: "Whatever the node wrote after it and the primary diverged is undone. Not for Patroni clusters: Patroni rejoins its members itself.")

        @OptionGroup var directory: ClusterDirectoryOption
        @Argument(help: "Node name, e.g. pg1.") var node: String

        func run() async throws {
            let started = ContinuousClock.now
            try await directory.cluster.rejoin(node: node) { print("  \($0)") }
            print("\(node): streaming again (\(formatDuration(ContinuousClock.now - started)))")
        }
    }

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start one node.")

        @OptionGroup var directory: ClusterDirectoryOption
        @Argument(help: "Node name, e.g. pg2.") var node: String

        func run() async throws {
            try await directory.cluster.start(node: node)
            print("\(node): running")
        }
    }
}

enum StatusTable {
    static func render(_ statuses: [LocalNodeStatus]) -> String {
        let patroni = statuses.contains { $0.patroni != nil }
        let bouncers = statuses.contains { $0.node.bouncerPort != nil }
        let header = ["NODE", "PORT", "RUNNING", "ROLE", "IN RECOVERY", "LSN", "WAL RECEIVER"] + (patroni ? ["PATRONI"] : [])
            + (bouncers ? ["PGBOUNCER"] : [])
        let rows = statuses.map { status -> [String] in
            var extra = patroni ? [status.patroni ?? "-"] : []
            if bouncers {
                extra.append(status.node.bouncerPort.map { "\($0) \(status.bouncerRunning == true ? "running" : "stopped")" } ?? "-")
            }
            return [
                status.node.name, String(status.node.port), status.running ? "yes" : "no",
                status.problem == nil ? status.role.rawValue : "unknown",
                status.inRecovery.map { $0 ? "yes" : "no" } ?? "-",
                status.lsn?.description ?? "-",
                status.walReceiver ?? "-",
            ] + extra
        }
        var lines = [TextTable.render(header: header, rows: rows)]
        for status in statuses {
            if let problem = status.problem { lines.append("\(status.node.name): \(problem)") }
        }
        return lines.joined(separator: "\n")
    }
}

/// Columns of text for the terminal. Cells may carry server text: control, bidi and
/// zero-width characters in them are shown as `·`, never sent to the terminal.
enum TextTable {
    static func render(header: [String], rows: [[String]]) -> String {
        let rows = rows.map { $0.map { TerminalText.sanitized($0) } }
        var widths = header.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count { widths[index] = max(widths[index], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }
}
