import Foundation
import PatroniREST
import TOMLKit

/// A config or theme file problem, naming the file and, where known, the line.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible, Equatable {
    public var file: String
    public var line: Int?
    public var message: String

    public init(file: String, line: Int? = nil, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String {
        line.map { "\(file):\($0): \(message)" } ?? "\(file): \(message)"
    }

    /// Lines that start a table must be well-formed headers (this schema has no arrays, so
    /// no value line starts with `[`).
    static func screenHeaders(_ text: String, file: String) throws {
        // `[name]` or `[[name]]`: names bare (ASCII letters, digits, `_`, `-`) or quoted,
        // dotted, then an optional comment.
        // Whitespace is TOML's (space, tab), not the regex's `\s`: a bare CR in a header
        // aborts the parser underneath.
        let header = #/^[ \t]*\[\[?[ \t]*(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')(?:[ \t]*\.[ \t]*(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*'))*[ \t]*\]\]?[ \t]*(?:#.*)?$/#
        // Lines end at LF scalars (a CRLF is one Swift Character, so splitting the
        // characters would miss it).
        for (index, scalars) in text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = String(String.UnicodeScalarView(scalars))
            if line.unicodeScalars.last == "\r" { line.unicodeScalars.removeLast() }
            let trimmed = line.unicodeScalars.drop(while: { $0 == " " || $0 == "\t" })
            guard trimmed.first == "[" else { continue }
            if (try? header.wholeMatch(in: line)) == nil {
                throw ConfigurationError(
                    file: file, line: index + 1, message: "not a table header: write [name] or [[name]] with a plain or quoted name")
            }
        }
    }

    /// Refuses control characters (other than tab and line ends) anywhere, and non-ASCII
    /// characters outside strings and comments (TOML keys are ASCII), naming the line.
    static func screen(_ text: String, file: String) throws {
        try screenHeaders(text, file: file)
        enum Place { case bare, header, basic, literal, multiBasic, multiLiteral, comment }
        var place = Place.bare
        // Open `[` and `{` of values with their lines: a closing bracket of the other kind
        // is refused here (the parser underneath aborts on `[ }`).
        var open: [(bracket: Unicode.Scalar, line: Int)] = []
        var atLineStart = true
        var line = 1
        var column = 0
        var escaped = false
        let scalars = Array(text.unicodeScalars)
        func starts(_ index: Int, _ token: String) -> Bool {
            let token = Array(token.unicodeScalars)
            return index + token.count <= scalars.count && Array(scalars[index..<(index + token.count)]) == token
        }
        var index = 0
        while index < scalars.count {
            let scalar = scalars[index]
            let value = scalar.value
            if scalar == "\n" {
                line += 1
                column = 0
                atLineStart = true
                if place == .comment || place == .header || place == .basic || place == .literal { place = .bare }
                escaped = false
                index += 1
                continue
            }
            column += 1
            if scalar == "\r", !starts(index, "\r\n") {
                throw ConfigurationError(
                    file: file, line: line,
                    message: "carriage return without a line feed (column \(column)): TOML ends lines with LF or CRLF only")
            }
            if (value < 0x20 && scalar != "\t" && scalar != "\r") || (0x7F...0x9F).contains(value) {
                throw ConfigurationError(
                    file: file, line: line,
                    message: String(format: "control character U+%04X (column %d): TOML does not allow it", value, column))
            }
            switch place {
            case .bare:
                if value > 0x7F {
                    throw ConfigurationError(
                        file: file, line: line,
                        message: "character \"\(Character(scalar))\" (column \(column)) outside a string: keys are ASCII; quote the text")
                }
                let wasAtLineStart = atLineStart
                if scalar != " " && scalar != "\t" && scalar != "\r" { atLineStart = false }
                switch scalar {
                case "[" where wasAtLineStart && open.isEmpty:
                    place = .header  // checked whole by screenHeaders
                case "[", "{":
                    open.append((scalar, line))
                case "]", "}":
                    if let last = open.popLast(), (last.bracket == "[") != (scalar == "]") {
                        throw ConfigurationError(
                            file: file, line: line,
                            message: "\"\(scalar)\" (column \(column)) does not close the \"\(last.bracket)\" opened on line \(last.line)")
                    }
                default:
                    break
                }
                if starts(index, "\"\"\"") { place = .multiBasic; index += 3; column += 2; continue }
                if starts(index, "'''") { place = .multiLiteral; index += 3; column += 2; continue }
                if scalar == "\"" { place = .basic } else if scalar == "'" { place = .literal } else if scalar == "#" { place = .comment }
            case .basic, .multiBasic:
                if escaped {
                    escaped = false
                } else if scalar == "\\" {
                    escaped = true
                } else if place == .multiBasic, starts(index, "\"\"\"") {
                    place = .bare; index += 3; column += 2; continue
                } else if place == .basic, scalar == "\"" {
                    place = .bare
                }
            case .literal:
                if scalar == "'" { place = .bare }
            case .multiLiteral:
                if starts(index, "'''") { place = .bare; index += 3; column += 2; continue }
            case .comment, .header:
                break
            }
            index += 1
        }
    }

    /// Parses TOML, turning a syntax error into one that names the file, line and column.
    /// Text TOML forbids and the C++ parser underneath aborts the process on (it asserts
    /// in debug builds) is refused first: see ``screen(_:file:)``.
    public static func parseTOML(_ text: String, file: String) throws -> TOMLTable {
        try screen(text, file: file)
        do {
            return try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigurationError(
                file: file, line: error.source.begin.line, message: "\(error.description) (column \(error.source.begin.column))")
        }
    }
}

/// `switchyard.toml`: the nodes and how to route between them (format in the README).
///
/// Roles are never configured: they are discovered by probing, so the file stays true
/// after a failover.
public struct ClusterConfiguration: Sendable, Equatable {
    public var name = "cluster"
    /// `[cluster] read_only` (default false): the console opens every session with
    /// `default_transaction_read_only`, and offers no key that writes.
    public var readOnly = false
    /// `[cluster] protected` (default false): the console asks for the cluster's name to be
    /// typed before any write commits.
    public var protected = false
    /// `[cluster] color`: the colour the console's title bar shows the cluster's name in
    /// (`red` for production, say).
    public var color: ClusterColor?
    /// `[[clusters]]`: other clusters the console can switch to, each by its own file.
    public var otherClusters: [ClusterReference] = []

    /// This cluster and the others named under `[[clusters]]`, this one first.
    public var clusterNames: [String] { [name] + otherClusters.map(\.name) }

    /// The configuration of the cluster named `name`: this one, or one under `[[clusters]]`
    /// loaded from its file (its colour, read-only and protected as the entry says, when
    /// it says), with the same `[[clusters]]` list so the console can switch on from it.
    public func cluster(named name: String) throws -> ClusterConfiguration {
        if name == self.name { return self }
        guard let reference = otherClusters.first(where: { $0.name == name }) else {
            throw ConfigurationError(file: "--cluster", message: "no cluster \"\(name)\" (known: \(clusterNames.joined(separator: ", ")))")
        }
        var loaded: ClusterConfiguration
        if let configuration = reference.loaded {
            loaded = configuration
        } else if let nodes = reference.nodes {
            // Written inline: its nodes, everything else as this file says.
            loaded = self
            loaded.nodes = nodes
            loaded.color = nil
            loaded.readOnly = false
            loaded.protected = false
        } else {
            loaded = try ClusterConfiguration.load(path: reference.path)
        }
        loaded.name = reference.name
        loaded.color = reference.color ?? loaded.color
        loaded.readOnly = reference.readOnly ?? loaded.readOnly
        loaded.protected = reference.protected ?? loaded.protected
        var siblings = otherClusters.filter { $0.name != name }
        siblings.insert(ClusterReference(name: self.name, configuration: self), at: 0)
        loaded.otherClusters = siblings
        return loaded
    }
    public var nodes: [NodeEndpoint] = []

    /// `[routing] replica_selection`: random | round-robin | least-lag (default least-lag).
    public var replicaSelection = ReplicaSelection.leastLag
    /// `[routing] max_replica_lag_ms` (default 500 ms); replicas further behind serve no reads.
    public var maxReplicaLag: Duration = .milliseconds(500)
    /// `[routing] read_your_writes` (default true): reads after a write see it.
    public var readYourWrites = true
    /// Read-backs not yet known to be replayed go to a replica with a replay guard (one
    /// round trip; primary if behind) rather than straight to the primary.
    public var replayGuard = true
    /// `[routing] monotonic_reads` (default false): a session never reads anything older
    /// than it already read. Each replica read also reports how far that replica had
    /// replayed (same round trip) and the session's token moves up to it, so later reads
    /// go only where that much is replayed (guarded, or the primary). Costs a statement
    /// per replica read and more guarded reads.
    public var monotonicReads = false
    /// `[routing] pin_window_ms` (default 0): when > 0, read-your-writes pins a context
    /// that wrote to the primary for this long instead of comparing WAL positions.
    public var pinWindow: Duration = .zero

    /// `[monitor] interval_ms` (default 1 s), `warn_lag_ms` (200 ms), `critical_lag_ms` (1 s).
    public var monitorInterval: Duration = .seconds(1)
    public var warnLag: Duration = .milliseconds(200)
    public var criticalLag: Duration = .seconds(1)
    /// `[monitor] strategy` (default `primary-view`) and `replica_probe_interval_ms` (2 s):
    /// see ``ClusterMonitor/Strategy``.
    public var monitorStrategy: ClusterMonitor.Strategy = .primaryView
    public var replicaProbeInterval: Duration = .seconds(2)
    /// `[monitor] heartbeat` (default true): the primary's probe commits a heartbeat that
    /// lag is timed by (see ``ClusterMonitor/Settings/heartbeat``).
    public var heartbeat = true

    /// `[pool] max_connections` per node (default 8), `checkout_timeout_ms` (5 s),
    /// `connect_timeout_s` (3 s).
    public var poolMaxConnections = 8
    public var poolCheckoutTimeout: Duration = .seconds(5)
    public var connectTimeout: Duration = .seconds(3)
    /// `[pool] statement_timeout_ms` (default 30 s; 0: none): the bound on any one
    /// statement, kept by this process (a silent server enforces nothing): the server is
    /// asked to cancel, and a server that answers neither is given up 2 s later. Override
    /// per call with `timeout:`.
    public var statementBound: Duration? = .seconds(30)
    /// `[pool] tcp_user_timeout_ms` (default 10 s; 0: the system's) and TCP keepalives
    /// (on: 10 s idle, 3 s interval, 3 probes): a partitioned node costs seconds, not
    /// TCP's minutes of retransmissions. A conninfo's own settings win.
    public var tcpUserTimeout: Duration? = .seconds(10)
    /// `[pool] statement_cache` (default 128): statements each connection keeps prepared;
    /// 0 behind a pooler in transaction mode that does not track prepared statements.
    public var statementCache = 128

    /// `[query_log] capacity` (default 10 000) and `file` (a JSON Lines sink, optional),
    /// rotated at `max_bytes` (default 64 MiB; 0 never) keeping `keep` old files (default 3).
    public var queryLogCapacity = 10_000
    public var queryLogFile: String?
    public var queryLogMaxBytes = 64 << 20
    public var queryLogKeep = 3
    /// `[query_log] source`: the name this process's entries carry in the file (an app
    /// name), so a console following several files can tell them apart.
    public var queryLogSource: String?

    /// `[http]`: how a web app's requests choose their routing context.
    public var http = HTTPRouting()

    /// `[patroni]`: Patroni's REST API, when Patroni manages the nodes. The monitor reads
    /// its view of the cluster beside the nodes' own, and promotion goes through it.
    public var patroni: PatroniSettings?

    /// `[console] follow`: query-log files (globs) of other processes the console tails.
    public var consoleFollow: [String] = []

    /// `[console] audit`: record every change the console makes in `switchyard.changes`
    /// ("table", the default) or not ("off").
    public var consoleAudit = true

    /// `[console] export_null`: how a CSV export writes NULL (default: empty).
    public var exportNull = ""

    /// `[console] prompt_hold_s` (default 120): how long the SQL prompt holds a transaction
    /// open (rows being read, a write waiting for y) before rolling it back by itself.
    public var promptHold: Duration = .seconds(120)

    /// `[console] theme` (default "default").
    public var theme = "default"

    public init(name: String = "cluster", nodes: [NodeEndpoint] = []) {
        self.name = name
        self.nodes = nodes
    }

    /// The consistency policy the routing settings describe.
    public var consistency: ConsistencyPolicy {
        guard readYourWrites else { return .none }
        return pinWindow > .zero ? .pinWindow(pinWindow) : .lsn
    }

    /// Which file to read: `explicit` (`--config`), else `$SWITCHYARD_CONFIG`, else
    /// `./switchyard.toml`, else `$XDG_CONFIG_HOME/switchyard/switchyard.toml`
    /// (`~/.config/…`).
    public static func locate(
        explicit: String?, environment: [String: String] = ProcessInfo.processInfo.environment,
        currentDirectory: String = FileManager.default.currentDirectoryPath
    ) throws -> String {
        if let explicit { return explicit }
        if let fromEnvironment = environment["SWITCHYARD_CONFIG"], !fromEnvironment.isEmpty { return fromEnvironment }
        let local = URL(fileURLWithPath: currentDirectory).appendingPathComponent("switchyard.toml").path
        if FileManager.default.fileExists(atPath: local) { return local }
        let user = XDG.configHome(environment) + "/switchyard/switchyard.toml"
        if FileManager.default.fileExists(atPath: user) { return user }
        throw ConfigurationError(
            file: "switchyard.toml",
            message: "no config file: pass --config FILE, set SWITCHYARD_CONFIG, or run `switchyard cluster up` "
                + "(it writes one); looked in ./switchyard.toml and \(user)")
    }

    public static func load(path: String) throws -> ClusterConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(file: path, message: "cannot read the file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigurationError(file: path, message: "not UTF-8 text")
        }
        return try parse(text, file: path)
    }

    public static func parse(_ text: String, file: String) throws -> ClusterConfiguration {
        let root = try ConfigurationError.parseTOML(text, file: file)
        let reader = TOMLReader(file: file, text: text)
        var config = ClusterConfiguration()
        try reader.allowOnly(["cluster", "nodes", "routing", "monitor", "pool", "query_log", "console", "http", "patroni", "clusters"], in: root, section: nil)

        if let cluster = try reader.table(root, "cluster") {
            try reader.allowOnly(["name", "read_only", "protected", "color"], in: cluster, section: "cluster")
            config.name = try reader.string(cluster, "name", section: "cluster") ?? config.name
            config.readOnly = try reader.bool(cluster, "read_only", section: "cluster") ?? config.readOnly
            config.protected = try reader.bool(cluster, "protected", section: "cluster") ?? config.protected
            config.color = try reader.color(cluster, section: "cluster")
        }
        if let clusters = root["clusters"] {
            guard let array = clusters.array else {
                throw ConfigurationError(file: file, line: reader.line(of: "clusters"), message: "clusters must be [[clusters]] tables")
            }
            let folder = (file as NSString).deletingLastPathComponent
            var names: Set<String> = [config.name]
            for index in 0..<array.count {
                let line = reader.line(ofTableArray: "clusters", index: index)
                guard let entry = array[index].table else {
                    throw ConfigurationError(file: file, line: line, message: "clusters[\(index)] is not a table")
                }
                try reader.allowOnly(["name", "config", "nodes", "color", "read_only", "protected"], in: entry, section: "clusters")
                guard let name = try reader.string(entry, "name", section: "clusters"), !name.isEmpty else {
                    throw ConfigurationError(file: file, line: line, message: "cluster \(index + 1) under [[clusters]] has no name")
                }
                let path = try reader.string(entry, "config", section: "clusters")
                guard (path?.isEmpty == false) != (entry["nodes"] != nil) else {
                    throw ConfigurationError(
                        file: file, line: line,
                        message: "cluster \"\(name)\" needs either config (the path of its switchyard.toml) or its [[clusters.nodes]], not "
                            + (path == nil ? "neither" : "both"))
                }
                guard names.insert(name).inserted else {
                    throw ConfigurationError(file: file, line: line, message: "cluster name \"\(name)\" is used twice")
                }
                var reference = ClusterReference(
                    name: name, path: path.map { $0.hasPrefix("/") ? $0 : (folder.isEmpty ? $0 : folder + "/" + $0) } ?? "",
                    color: try reader.color(entry, section: "clusters"), readOnly: try reader.bool(entry, "read_only", section: "clusters"),
                    protected: try reader.bool(entry, "protected", section: "clusters"))
                if path == nil {
                    reference.nodes = try parseNodes(entry["nodes"], reader: reader, section: "clusters.nodes", fallbackLine: line)
                }
                config.otherClusters.append(reference)
            }
        }
        config.nodes = try parseNodes(root["nodes"], reader: reader, section: "nodes", fallbackLine: nil)

        if let routing = try reader.table(root, "routing") {
            try reader.allowOnly(["replica_selection", "max_replica_lag_ms", "read_your_writes", "replay_guard", "pin_window_ms", "monotonic_reads"],
                                 in: routing, section: "routing")
            config.monotonicReads = try reader.bool(routing, "monotonic_reads", section: "routing") ?? config.monotonicReads
            if let selection = try reader.string(routing, "replica_selection", section: "routing") {
                guard let parsed = ReplicaSelection(rawValue: selection) else {
                    throw ConfigurationError(
                        file: file, line: reader.line(of: "replica_selection"),
                        message: "replica_selection \"\(selection)\" is not one of random, round-robin, least-lag")
                }
                config.replicaSelection = parsed
            }
            config.maxReplicaLag = try reader.milliseconds(routing, "max_replica_lag_ms", section: "routing", min: 0) ?? config.maxReplicaLag
            config.readYourWrites = try reader.bool(routing, "read_your_writes", section: "routing") ?? config.readYourWrites
            config.replayGuard = try reader.bool(routing, "replay_guard", section: "routing") ?? config.replayGuard
            config.pinWindow = try reader.milliseconds(routing, "pin_window_ms", section: "routing", min: 0) ?? config.pinWindow
        }
        if let monitor = try reader.table(root, "monitor") {
            try reader.allowOnly(
                ["interval_ms", "warn_lag_ms", "critical_lag_ms", "strategy", "replica_probe_interval_ms", "heartbeat"], in: monitor,
                section: "monitor")
            config.heartbeat = try reader.bool(monitor, "heartbeat", section: "monitor") ?? config.heartbeat
            if let strategy = try reader.string(monitor, "strategy", section: "monitor") {
                guard let parsed = ClusterMonitor.Strategy(rawValue: strategy) else {
                    throw ConfigurationError(
                        file: file, line: reader.line(of: "strategy", value: strategy),
                        message: "strategy \"\(strategy)\" is not one of \(ClusterMonitor.Strategy.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                config.monitorStrategy = parsed
            }
            config.replicaProbeInterval =
                try reader.milliseconds(monitor, "replica_probe_interval_ms", section: "monitor", min: 50) ?? config.replicaProbeInterval
            config.monitorInterval = try reader.milliseconds(monitor, "interval_ms", section: "monitor", min: 50) ?? config.monitorInterval
            config.warnLag = try reader.milliseconds(monitor, "warn_lag_ms", section: "monitor", min: 0) ?? config.warnLag
            config.criticalLag = try reader.milliseconds(monitor, "critical_lag_ms", section: "monitor", min: 0) ?? config.criticalLag
            if config.criticalLag < config.warnLag {
                throw ConfigurationError(
                    file: file, line: reader.line(of: "critical_lag_ms"),
                    message: "critical_lag_ms (\(Int(config.criticalLag.milliseconds))) is below warn_lag_ms (\(Int(config.warnLag.milliseconds)))")
            }
        }
        if let pool = try reader.table(root, "pool") {
            try reader.allowOnly(
                ["max_connections", "checkout_timeout_ms", "connect_timeout_s", "statement_cache", "statement_timeout_ms", "tcp_user_timeout_ms"],
                in: pool, section: "pool")
            if let bound = try reader.milliseconds(pool, "statement_timeout_ms", section: "pool", min: 0) {
                config.statementBound = bound > .zero ? bound : nil
            }
            if let timeout = try reader.milliseconds(pool, "tcp_user_timeout_ms", section: "pool", min: 0) {
                config.tcpUserTimeout = timeout > .zero ? timeout : nil
            }
            config.statementCache = try reader.int(pool, "statement_cache", section: "pool", min: 0, max: 100_000) ?? config.statementCache
            config.poolMaxConnections = try reader.int(pool, "max_connections", section: "pool", min: 1, max: 10_000) ?? config.poolMaxConnections
            config.poolCheckoutTimeout = try reader.milliseconds(pool, "checkout_timeout_ms", section: "pool", min: 1) ?? config.poolCheckoutTimeout
            config.connectTimeout = try reader.int(pool, "connect_timeout_s", section: "pool", min: 1, max: 86_400).map { .seconds($0) }
                ?? config.connectTimeout
        }
        if let log = try reader.table(root, "query_log") {
            try reader.allowOnly(["capacity", "file", "max_bytes", "keep", "source"], in: log, section: "query_log")
            config.queryLogSource = try reader.string(log, "source", section: "query_log")
            config.queryLogCapacity = try reader.int(log, "capacity", section: "query_log", min: 1, max: 10_000_000) ?? config.queryLogCapacity
            config.queryLogFile = try reader.string(log, "file", section: "query_log")
            config.queryLogMaxBytes = try reader.int(log, "max_bytes", section: "query_log", min: 0, max: 1 << 40) ?? config.queryLogMaxBytes
            config.queryLogKeep = try reader.int(log, "keep", section: "query_log", min: 0, max: 100) ?? config.queryLogKeep
        }
        if let console = try reader.table(root, "console") {
            try reader.allowOnly(["theme", "follow", "audit", "export_null", "prompt_hold_s"], in: console, section: "console")
            config.promptHold = try reader.int(console, "prompt_hold_s", section: "console", min: 1, max: 3600).map { .seconds($0) }
                ?? config.promptHold
            if let null = try reader.string(console, "export_null", section: "console") {
                guard null.count <= 20, !null.unicodeScalars.contains(where: { $0 == "'" || $0 == "\\" || $0.properties.generalCategory == .control }) else {
                    throw ConfigurationError(
                        file: file, line: reader.line(of: "export_null"),
                        message: "[console] export_null must be at most 20 characters without quotes, backslashes or control characters")
                }
                config.exportNull = null
            }
            if let audit = try reader.string(console, "audit", section: "console") {
                guard ["table", "off"].contains(audit) else {
                    throw ConfigurationError(
                        file: file, line: reader.line(of: "audit"), message: "[console] audit must be \"table\" or \"off\", not \"\(audit)\"")
                }
                config.consoleAudit = audit == "table"
            }
            config.theme = try reader.string(console, "theme", section: "console") ?? config.theme
            config.consoleFollow = try reader.strings(console, "follow", section: "console") ?? []
        }
        if let http = try reader.table(root, "http") {
            config.http = try parseHTTP(http, reader: reader)
        }
        if let patroni = try reader.table(root, "patroni") {
            config.patroni = try parsePatroni(patroni, reader: reader)
        }
        return config
    }

    /// The `[[nodes]]` of a cluster (or of an entry under `[[clusters]]`: `section`
    /// `clusters.nodes`, errors at the entry's line where a node's own cannot be found).
    static func parseNodes(_ value: TOMLValueConvertible?, reader: TOMLReader, section: String, fallbackLine: Int?) throws -> [NodeEndpoint] {
        let file = reader.file
        guard let value else {
            throw ConfigurationError(file: file, line: fallbackLine, message: "no [[\(section)]]: add one table per node with name and conninfo")
        }
        guard let nodeArray = value.array else {
            throw ConfigurationError(file: file, line: reader.line(of: "nodes") ?? fallbackLine, message: "nodes must be [[\(section)]] tables")
        }
        var nodes: [NodeEndpoint] = []
        var seen = Set<String>()
        for (index, value) in nodeArray.enumerated() {
            let line = reader.line(ofTableArray: section, index: index, after: fallbackLine ?? 0) ?? fallbackLine
            guard let node = value.table else {
                throw ConfigurationError(file: file, line: line, message: "\(section)[\(index)] is not a table")
            }
            try reader.allowOnly(["name", "conninfo", "monitor_conninfo", "pool_mode"], in: node, section: section)
            guard let name = try reader.string(node, "name", section: section), !name.isEmpty else {
                throw ConfigurationError(file: file, line: line, message: "node \(index + 1) has no name")
            }
            guard let conninfo = try reader.string(node, "conninfo", section: section) else {
                throw ConfigurationError(file: file, line: line, message: "node \"\(name)\" has no conninfo")
            }
            guard seen.insert(name).inserted else {
                throw ConfigurationError(file: file, line: reader.line(of: "name", value: name) ?? line,
                                         message: "node name \"\(name)\" is used twice")
            }
            let monitorConninfo = try reader.string(node, "monitor_conninfo", section: section)
            var poolMode = NodeEndpoint.PoolMode.session
            if let mode = try reader.string(node, "pool_mode", section: section) {
                guard let parsed = NodeEndpoint.PoolMode(rawValue: mode) else {
                    throw ConfigurationError(
                        file: file, line: reader.line(of: "pool_mode", value: mode) ?? line,
                        message: "pool_mode \"\(mode)\" of node \"\(name)\" is not one of session, transaction")
                }
                poolMode = parsed
            }
            nodes.append(NodeEndpoint(name: name, conninfo: conninfo, monitorConninfo: monitorConninfo, poolMode: poolMode))
        }
        if nodes.isEmpty {
            throw ConfigurationError(file: file, line: fallbackLine, message: "no [[\(section)]]: add one table per node with name and conninfo")
        }
        return nodes
    }

    private static func parsePatroni(_ table: TOMLTable, reader: TOMLReader) throws -> PatroniSettings {
        try reader.allowOnly(["endpoints", "timeout_ms", "username", "password"], in: table, section: "patroni")
        let texts = try reader.strings(table, "endpoints", section: "patroni") ?? []
        guard !texts.isEmpty else {
            throw ConfigurationError(
                file: reader.file, line: reader.line(of: "endpoints") ?? reader.sectionLine("patroni"),
                message: "[patroni] endpoints must list at least one REST URL, e.g. [\"http://10.0.0.1:8008\"]")
        }
        var endpoints: [URL] = []
        for text in texts {
            guard let url = URL(string: text), ["http", "https"].contains(url.scheme?.lowercased() ?? ""), url.host?.isEmpty == false,
                url.user == nil, url.password == nil
            else {
                throw ConfigurationError(
                    file: reader.file, line: reader.line(of: "endpoints"),
                    message: "[patroni] endpoints: \"\(PatroniSettings.redacted(text))\" is not an http(s)://host:port URL without a user"
                        + " (credentials go in username and password)")
            }
            endpoints.append(url)
        }
        var settings = PatroniSettings(endpoints: endpoints)
        settings.timeout = try reader.milliseconds(table, "timeout_ms", section: "patroni", min: 50) ?? settings.timeout
        settings.username = try reader.string(table, "username", section: "patroni")
        settings.password = try reader.string(table, "password", section: "patroni")
        if (settings.username == nil) != (settings.password == nil) {
            throw ConfigurationError(
                file: reader.file, line: reader.line(of: "username") ?? reader.line(of: "password"),
                message: "[patroni] needs both username and password, or neither")
        }
        return settings
    }

    private static func parseHTTP(_ table: TOMLTable, reader: TOMLReader) throws -> HTTPRouting {
        try reader.allowOnly(
            ["default_context", "cookie_name", "cookie_max_age_s", "server_timing", "trust_forwarded_proto", "rules"], in: table,
            section: "http")
        var http = HTTPRouting()
        func context(_ name: String, key: String) throws -> RoutingContext {
            switch name {
            case "admin": return .admin
            case "public": return .public
            default:
                throw ConfigurationError(
                    file: reader.file, line: reader.line(of: key, value: name),
                    message: "[http] unknown context \"\(name)\" (known: admin, public)")
            }
        }
        if let name = try reader.string(table, "default_context", section: "http") {
            http.defaultContext = try context(name, key: "default_context")
        }
        if let name = try reader.string(table, "cookie_name", section: "http") {
            guard HTTPRouting.isValidCookieName(name) else {
                throw ConfigurationError(
                    file: reader.file, line: reader.line(of: "cookie_name"),
                    message: "[http] cookie_name must be letters, digits and !#$%&'*+-.^_`|~ (an HTTP token)")
            }
            http.cookieName = name
        }
        http.cookieMaxAge = try reader.int(table, "cookie_max_age_s", section: "http", min: 1, max: 400 * 86_400) ?? http.cookieMaxAge
        http.serverTiming = try reader.bool(table, "server_timing", section: "http") ?? http.serverTiming
        http.trustForwardedProto = try reader.bool(table, "trust_forwarded_proto", section: "http") ?? http.trustForwardedProto
        if let value = table["rules"] {
            guard let array = value.array else {
                throw ConfigurationError(file: reader.file, line: reader.line(of: "rules"), message: "[http] rules must be [[http.rules]] tables")
            }
            var rules: [HTTPRoutingRule] = []
            for index in 0..<array.count {
                let line = reader.line(ofTableArray: "http.rules", index: index)
                guard let rule = array[index].table else {
                    throw ConfigurationError(file: reader.file, line: line, message: "http.rules[\(index)] is not a table")
                }
                try reader.allowOnly(["path_prefix", "methods", "header", "header_value", "context"], in: rule, section: "http.rules")
                guard let name = try reader.string(rule, "context", section: "http.rules") else {
                    throw ConfigurationError(file: reader.file, line: line, message: "[[http.rules]] needs context = \"admin\" or \"public\"")
                }
                let prefix = try reader.string(rule, "path_prefix", section: "http.rules")
                if let prefix, !prefix.hasPrefix("/") {
                    throw ConfigurationError(
                        file: reader.file, line: reader.line(of: "path_prefix", value: prefix),
                        message: "[[http.rules]] path_prefix must start with /")
                }
                let methods = try reader.strings(rule, "methods", section: "http.rules")
                let header = try reader.string(rule, "header", section: "http.rules")
                let headerValue = try reader.string(rule, "header_value", section: "http.rules")
                if headerValue != nil, header == nil {
                    throw ConfigurationError(
                        file: reader.file, line: reader.line(of: "header_value"), message: "[[http.rules]] header_value needs header")
                }
                if prefix == nil, methods == nil, header == nil {
                    throw ConfigurationError(
                        file: reader.file, line: line,
                        message: "[[http.rules]] needs at least one of path_prefix, methods, header (use default_context for all requests)")
                }
                rules.append(
                    HTTPRoutingRule(
                        pathPrefix: prefix, methods: methods, header: header, headerValue: headerValue,
                        context: try context(name, key: "context")))
            }
            http.rules = rules
        }
        return http
    }
}

/// The XDG base directories (freedesktop.org), as config and themes look them up.
public enum XDG {
    /// `$XDG_CONFIG_HOME`, else `~/.config`.
    public static func configHome(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let home = environment["XDG_CONFIG_HOME"], !home.isEmpty { return home }
        return (environment["HOME"] ?? NSHomeDirectory()) + "/.config"
    }
}

/// Typed access to a parsed TOML table with errors that name the file and line; config
/// files and themes both read through it.
public struct TOMLReader: Sendable {
    public let file: String
    let lines: [Substring]

    public init(file: String, text: String) {
        self.file = file
        lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    }

    /// The first line that sets `key` (optionally to `value`), 1-based.
    public func line(of key: String, value: String? = nil) -> Int? {
        for (index, line) in lines.enumerated() {
            let trimmed = line.drop(while: { $0 == " " || $0 == "\t" })
            guard trimmed.hasPrefix(key) else { continue }
            let rest = trimmed.dropFirst(key.count).drop(while: { $0 == " " || $0 == "\t" })
            guard rest.hasPrefix("=") || (rest.isEmpty && key.hasPrefix("[")) else { continue }
            if let value, !rest.contains(value) { continue }
            return index + 1
        }
        return nil
    }

    /// The line of the `index`-th `[[name]]` header (after line `after`: the nodes of one
    /// entry under `[[clusters]]`).
    func line(ofTableArray name: String, index: Int, after: Int = 0) -> Int? {
        var seen = 0
        for (number, line) in lines.enumerated() where number >= after && line.trimmingCharacters(in: .whitespaces) == "[[\(name)]]" {
            if seen == index { return number + 1 }
            seen += 1
        }
        return nil
    }

    func sectionLine(_ section: String) -> Int? {
        lines.firstIndex { $0.trimmingCharacters(in: .whitespaces) == "[\(section)]" }.map { $0 + 1 }
    }

    func allowOnly(_ keys: Set<String>, in table: TOMLTable, section: String?) throws {
        for key in table.keys where !keys.contains(key) {
            let place = section.map { "[\($0)]" } ?? "the top level"
            throw ConfigurationError(
                file: file, line: line(of: key) ?? line(of: "[\(key)]") ?? line(of: "[[\(key)]]"),
                message: "unknown key \"\(key)\" in \(place) (known: \(keys.sorted().joined(separator: ", ")))")
        }
    }

    func table(_ parent: TOMLTable, _ key: String) throws -> TOMLTable? {
        guard let value = parent[key] else { return nil }
        guard let table = value.table else {
            throw ConfigurationError(file: file, line: line(of: key), message: "\(key) must be a [\(key)] table")
        }
        return table
    }

    func string(_ table: TOMLTable, _ key: String, section: String) throws -> String? {
        guard let value = table[key] else { return nil }
        guard let string = value.string else { throw typeError(key, section: section, expected: "a string") }
        return string
    }

    /// A whole number in `min...max`; the bounds keep every later computation with it
    /// from overflowing.
    func int(_ table: TOMLTable, _ key: String, section: String, min: Int, max: Int = 1_000_000_000) throws -> Int? {
        guard let value = table[key] else { return nil }
        guard let int = value.int else { throw typeError(key, section: section, expected: "a whole number") }
        guard int >= min else {
            throw ConfigurationError(file: file, line: line(of: key), message: "[\(section)] \(key) must be at least \(min), not \(int)")
        }
        guard int <= max else {
            throw ConfigurationError(file: file, line: line(of: key), message: "[\(section)] \(key) must be at most \(max), not \(int)")
        }
        return int
    }

    /// A duration given in whole milliseconds (at most a day).
    func milliseconds(_ table: TOMLTable, _ key: String, section: String, min: Int) throws -> Duration? {
        try int(table, key, section: section, min: min, max: 86_400_000).map { .milliseconds($0) }
    }

    /// An array of strings.
    func strings(_ table: TOMLTable, _ key: String, section: String) throws -> [String]? {
        guard let value = table[key] else { return nil }
        guard let array = value.array else { throw typeError(key, section: section, expected: "an array of strings") }
        var strings: [String] = []
        for index in 0..<array.count {
            guard let string = array[index].string else { throw typeError(key, section: section, expected: "an array of strings") }
            strings.append(string)
        }
        return strings
    }

    /// `color = "red"`: one of the terminal's eight colours.
    func color(_ table: TOMLTable, section: String) throws -> ClusterColor? {
        guard let text = try string(table, "color", section: section) else { return nil }
        guard let color = ClusterColor(rawValue: text) else {
            throw ConfigurationError(
                file: file, line: line(of: "color", value: text),
                message: "[\(section)] color \"\(text)\" is not one of \(ClusterColor.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return color
    }

    func bool(_ table: TOMLTable, _ key: String, section: String) throws -> Bool? {
        guard let value = table[key] else { return nil }
        guard let bool = value.bool else { throw typeError(key, section: section, expected: "true or false") }
        return bool
    }

    private func typeError(_ key: String, section: String, expected: String) -> ConfigurationError {
        ConfigurationError(file: file, line: line(of: key), message: "[\(section)] \(key) must be \(expected)")
    }
}

/// A title-bar colour for a cluster.
public enum ClusterColor: String, Sendable, Equatable, CaseIterable {
    case red, yellow, green, blue, magenta, cyan
}

/// Another cluster the console can switch to: its name, its own config file, and what
/// the entry overrides there.
public struct ClusterReference: Sendable, Equatable {
    public var name: String
    public var path: String
    public var color: ClusterColor?
    public var readOnly: Bool?
    public var protected: Bool?
    /// The nodes of a cluster written inline under `[[clusters]]` (nil: it has a file).
    public var nodes: [NodeEndpoint]?
    /// Set when the reference is to a configuration already loaded (the cluster switched from).
    var loaded: ClusterConfiguration? { boxed?.value }
    private var boxed: Box?

    final class Box: Sendable, Equatable {
        let value: ClusterConfiguration
        init(_ value: ClusterConfiguration) { self.value = value }
        static func == (a: Box, b: Box) -> Bool { a.value == b.value }
    }

    public init(name: String, path: String, color: ClusterColor? = nil, readOnly: Bool? = nil, protected: Bool? = nil) {
        self.name = name
        self.path = path
        self.color = color
        self.readOnly = readOnly
        self.protected = protected
    }

    init(name: String, configuration: ClusterConfiguration) {
        self.init(name: name, path: "", color: configuration.color, readOnly: configuration.readOnly, protected: configuration.protected)
        boxed = Box(configuration)
    }
}
