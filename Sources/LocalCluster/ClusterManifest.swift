import Foundation

/// One node of a local cluster: its name, TCP port and folders inside the cluster folder.
public struct LocalNode: Codable, Sendable, Equatable {
    public var name: String
    public var port: Int

    public init(name: String, port: Int) {
        self.name = name
        self.port = port
    }
}

/// `D/cluster.json`: what `cluster up` created, so later commands know the nodes.
/// Roles are not recorded: they are read from the servers, so they stay true after a
/// promotion.
struct ClusterManifest: Codable, Sendable, Equatable {
    var formatVersion = 1
    var database: String
    var user: String
    var host: String
    var nodes: [LocalNode]
}

/// The `switchyard.toml` written for a local cluster (format: DESIGN §3).
enum ConfigFileWriter {
    static func render(clusterName: String, nodes: [LocalNode], host: String, database: String, user: String) -> String {
        var lines = [
            "# Written by `switchyard cluster up` for this local development cluster.",
            "# Roles are discovered with pg_is_in_recovery(), so this stays true after a failover.",
            "",
            "[cluster]",
            "name = \(string(clusterName))",
        ]
        for node in nodes {
            lines += [
                "",
                "[[nodes]]",
                "name = \(string(node.name))",
                "conninfo = \(string("host=\(host) port=\(node.port) dbname=\(database) user=\(user)"))",
            ]
        }
        lines += [
            "",
            "[routing]",
            "replica_selection = \"least-lag\"",
            "max_replica_lag_ms = 500",
            "read_your_writes = true",
            "",
            "[monitor]",
            "interval_ms = 1000",
            "warn_lag_ms = 200",
            "critical_lag_ms = 1000",
            "",
            "[console]",
            "theme = \"default\"",
            "",
        ]
        return lines.joined(separator: "\n")
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
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    escaped += String(format: "\\u%04X", scalar.value)
                } else {
                    escaped.unicodeScalars.append(scalar)
                }
            }
        }
        return "\"\(escaped)\""
    }
}
