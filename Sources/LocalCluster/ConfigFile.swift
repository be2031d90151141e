import Foundation

/// A `switchyard.toml` to write: the one writer of config files, used by `cluster up` and
/// by the tests. Every string is escaped as a TOML basic string, so any node name,
/// conninfo or path reads back as written (see the README's config section for the format).
public struct ConfigFile: Sendable, Equatable {
    public struct Node: Sendable, Equatable {
        public var name: String
        public var conninfo: String
        /// Straight to the server when `conninfo` goes through a pooler.
        public var monitorConninfo: String?
        /// `transaction` behind a pooler in transaction mode.
        public var poolMode: String?

        public init(name: String, conninfo: String, monitorConninfo: String? = nil, poolMode: String? = nil) {
            self.name = name
            self.conninfo = conninfo
            self.monitorConninfo = monitorConninfo
            self.poolMode = poolMode
        }
    }

    public var clusterName: String
    public var nodes: [Node]
    public var monitorInterval: Duration = .seconds(1)
    /// `[patroni] endpoints`: Patroni REST URLs, when Patroni manages the nodes.
    public var patroniEndpoints: [String] = []
    /// `[query_log] file`, if any.
    public var queryLogFile: String?
    /// A comment for the top of the file.
    public var header: [String] = []

    public init(clusterName: String, nodes: [Node]) {
        self.clusterName = clusterName
        self.nodes = nodes
    }

    public func render() -> String {
        // Comments cannot escape anything: control characters become spaces.
        var lines = header.map { line in
            "# " + String(String.UnicodeScalarView(line.unicodeScalars.map { $0.properties.generalCategory == .control ? " " : $0 }))
        }
        if !lines.isEmpty { lines.append("") }
        lines += ["[cluster]", "name = \(Self.string(clusterName))"]
        for node in nodes {
            lines += ["", "[[nodes]]", "name = \(Self.string(node.name))", "conninfo = \(Self.string(node.conninfo))"]
            if let monitorConninfo = node.monitorConninfo { lines.append("monitor_conninfo = \(Self.string(monitorConninfo))") }
            if let poolMode = node.poolMode { lines.append("pool_mode = \(Self.string(poolMode))") }
        }
        lines += [
            "",
            "[routing]",
            "replica_selection = \"least-lag\"",
            "max_replica_lag_ms = 500",
            "read_your_writes = true",
            "",
            "[monitor]",
            "interval_ms = \(max(Int(monitorInterval.components.seconds * 1000 + monitorInterval.components.attoseconds / 1_000_000_000_000_000), 1))",
            "warn_lag_ms = 200",
            "critical_lag_ms = 1000",
        ]
        if !patroniEndpoints.isEmpty {
            lines += ["", "[patroni]", "endpoints = [\(patroniEndpoints.map(Self.string).joined(separator: ", "))]"]
        }
        if let queryLogFile { lines += ["", "[query_log]", "file = \(Self.string(queryLogFile))"] }
        lines += ["", "[console]", "theme = \"default\"", ""]
        return lines.joined(separator: "\n")
    }

    /// Writes the file (0600: conninfo strings may carry secrets).
    public func write(to path: String) throws {
        try PrivateFile.write(Data(render().utf8), to: path)
    }

    /// A TOML basic string.
    static func string(_ value: String) -> String {
        var escaped = ""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\\": escaped += "\\\\"
            case "\"": escaped += "\\\""
            case "\n": escaped += "\\n"
            case "\t": escaped += "\\t"
            case "\r": escaped += "\\r"
            default:
                if scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) {
                    escaped += String(format: "\\u%04X", scalar.value)
                } else {
                    escaped.unicodeScalars.append(scalar)
                }
            }
        }
        return "\"\(escaped)\""
    }
}
