import Foundation
import Switchyard
import Testing

@Suite struct ConfigurationTests {
    let sample = """
        [cluster]
        name = "demo"

        [[nodes]]
        name = "pg1"
        conninfo = "host=127.0.0.1 port=55432 dbname=app user=postgres"

        [[nodes]]
        name = "pg2"
        conninfo = "postgresql://postgres@127.0.0.1:55433/app"

        [routing]
        replica_selection = "round-robin"
        max_replica_lag_ms = 750
        read_your_writes = true

        [monitor]
        interval_ms = 500
        warn_lag_ms = 100
        critical_lag_ms = 900

        [console]
        theme = "light"
        """

    @Test func parsesTheDocumentedFormat() throws {
        let config = try ClusterConfiguration.parse(sample, file: "switchyard.toml")
        #expect(config.name == "demo")
        #expect(config.nodes.map(\.name) == ["pg1", "pg2"])
        #expect(config.nodes[1].conninfo == "postgresql://postgres@127.0.0.1:55433/app")
        #expect(config.replicaSelection == .roundRobin)
        #expect(config.maxReplicaLag == .milliseconds(750))
        #expect(config.consistency == .lsn)
        #expect(config.monitorInterval == .milliseconds(500))
        #expect(config.warnLag == .milliseconds(100) && config.criticalLag == .milliseconds(900))
        #expect(config.theme == "light")
    }

    @Test func defaultsAndPolicies() throws {
        var config = try ClusterConfiguration.parse(
            "[[nodes]]\nname = \"a\"\nconninfo = \"host=x\"\n", file: "f.toml")
        #expect(config.replicaSelection == .leastLag)
        #expect(config.maxReplicaLag == .milliseconds(500))
        #expect(config.monitorInterval == .seconds(1))
        #expect(config.consistency == .lsn)
        config.pinWindow = .seconds(2)
        #expect(config.consistency == .pinWindow(.seconds(2)))
        config.readYourWrites = false
        #expect(config.consistency == ConsistencyPolicy.none)
    }

    @Test func errorsNameFileAndLine() {
        func error(_ text: String) -> ConfigurationError? {
            do {
                _ = try ClusterConfiguration.parse(text, file: "/etc/sy.toml")
                return nil
            } catch {
                return error as? ConfigurationError
            }
        }
        let syntax = error("[cluster]\nname = \"x\n")
        #expect(syntax?.file == "/etc/sy.toml")
        #expect(syntax?.line == 2)
        let badSelection = error(sample.replacingOccurrences(of: "\"round-robin\"", with: "\"fastest\""))
        #expect(badSelection?.line == 13)
        #expect(badSelection?.description.hasPrefix("/etc/sy.toml:13: replica_selection \"fastest\"") == true)
        let wrongType = error(sample.replacingOccurrences(of: "max_replica_lag_ms = 750", with: "max_replica_lag_ms = \"750\""))
        #expect(wrongType?.line == 14)
        #expect(wrongType?.message.contains("whole number") == true)
        let unknown = error(sample.replacingOccurrences(of: "interval_ms = 500", with: "interval_ms = 500\nintervall = 3"))
        #expect(unknown?.line == 19)
        #expect(unknown?.message.contains("unknown key \"intervall\"") == true)
        let noNodes = error("[cluster]\nname = \"x\"\n")
        #expect(noNodes?.message.contains("[[nodes]]") == true)
        let duplicate = error("[[nodes]]\nname = \"a\"\nconninfo = \"x\"\n[[nodes]]\nname = \"a\"\nconninfo = \"y\"\n")
        #expect(duplicate?.message.contains("used twice") == true)
        let missingConninfo = error("[[nodes]]\nname = \"a\"\n[[nodes]]\nname = \"b\"\nconninfo = \"y\"\n")
        #expect(missingConninfo?.line == 1)
        let thresholds = error(sample.replacingOccurrences(of: "critical_lag_ms = 900", with: "critical_lag_ms = 50"))
        #expect(thresholds?.line == 20)
    }

    @Test func locateFollowsTheDocumentedOrder() throws {
        #expect(try ClusterConfiguration.locate(explicit: "/x.toml", environment: ["SWITCHYARD_CONFIG": "/y.toml"]) == "/x.toml")
        #expect(try ClusterConfiguration.locate(explicit: nil, environment: ["SWITCHYARD_CONFIG": "/y.toml"]) == "/y.toml")
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("sy-cfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: empty) }
        #expect(throws: ConfigurationError.self) {
            _ = try ClusterConfiguration.locate(explicit: nil, environment: ["HOME": empty.path], currentDirectory: empty.path)
        }
        let local = empty.appendingPathComponent("switchyard.toml")
        try Data("x".utf8).write(to: local)
        #expect(try ClusterConfiguration.locate(explicit: nil, environment: ["HOME": "/nonexistent"], currentDirectory: empty.path) == local.path)
    }

    @Test func numbersThatWouldOverflowAreRefusedWithFileAndLine() {
        let head = "[[nodes]]\nname = \"a\"\nconninfo = \"host=x\"\n"
        let cases: [(String, String)] = [
            ("[monitor]\ninterval_ms = 9223372036854775807\n", "switchyard.toml:5: [monitor] interval_ms must be at most 86400000"),
            ("[monitor]\nwarn_lag_ms = -3\n", "switchyard.toml:5: [monitor] warn_lag_ms must be at least 0, not -3"),
            ("[routing]\nmax_replica_lag_ms = 100000000000\n", "switchyard.toml:5: [routing] max_replica_lag_ms must be at most"),
            ("[pool]\nmax_connections = 0\n", "switchyard.toml:5: [pool] max_connections must be at least 1"),
            ("[pool]\nconnect_timeout_s = 9223372036854775807\n", "switchyard.toml:5: [pool] connect_timeout_s must be at most"),
            ("[query_log]\nkeep = -1\n", "switchyard.toml:5: [query_log] keep must be at least 0"),
        ]
        for (section, expected) in cases {
            let error = #expect(throws: ConfigurationError.self) { try ClusterConfiguration.parse(head + section, file: "switchyard.toml") }
            #expect(error?.description.hasPrefix(expected) == true, "\(error?.description ?? "no error") does not start with \(expected)")
        }
    }
}

/// `[[clusters]]`: the other clusters a console can switch to.
@Suite struct ClusterListConfigurationTests {
    let base = """
        [cluster]
        name = "staging"
        color = "green"

        [[nodes]]
        name = "pg1"
        conninfo = "host=a"

        """

    @Test func otherClustersAreNamedByTheirFilesWithOverrides() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sy-clusters-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("prod"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try "[cluster]\nname = \"p\"\n\n[[nodes]]\nname = \"db1\"\nconninfo = \"host=prod\"\n"
            .write(to: folder.appendingPathComponent("prod/switchyard.toml"), atomically: true, encoding: .utf8)
        let text = base + """
            [[clusters]]
            name = "production"
            config = "prod/switchyard.toml"
            color = "red"
            protected = true
            """
        let main = try ClusterConfiguration.parse(text, file: folder.appendingPathComponent("switchyard.toml").path)
        #expect(main.clusterNames == ["staging", "production"] && main.color == .green)
        #expect(main.otherClusters.first?.path == folder.appendingPathComponent("prod/switchyard.toml").path)
        let production = try main.cluster(named: "production")
        #expect(production.name == "production" && production.color == .red && production.protected && production.nodes.first?.name == "db1")
        #expect(production.clusterNames == ["production", "staging"], "the way back is listed")
        let back = try production.cluster(named: "staging")
        #expect(back.nodes == main.nodes && back.color == .green && back.clusterNames == ["staging", "production"],
                "the cluster switched from comes back as it was loaded")
        #expect(throws: ConfigurationError.self) { try main.cluster(named: "nope") }
    }

    @Test func aClusterCanBeWrittenInlineWithItsNodes() throws {
        let text = base + """
            [[clusters]]
            name = "qa"
            color = "yellow"

            [[clusters.nodes]]
            name = "q1"
            conninfo = "host=qa1"

            [[clusters.nodes]]
            name = "q2"
            conninfo = "host=qa2"

            [[clusters]]
            name = "dev"
            nodes = [{ name = "d1", conninfo = "host=dev" }]
            """
        let main = try ClusterConfiguration.parse(text, file: "c.toml")
        #expect(main.clusterNames == ["staging", "qa", "dev"])
        let qa = try main.cluster(named: "qa")
        #expect(qa.nodes.map(\.name) == ["q1", "q2"] && qa.nodes[1].conninfo == "host=qa2" && qa.color == .yellow && qa.name == "qa")
        #expect(qa.clusterNames == ["qa", "staging", "dev"])
        #expect(try main.cluster(named: "dev").nodes.map(\.conninfo) == ["host=dev"])
        // A node without its conninfo in the second inline cluster: that cluster's line.
        let broken = text.replacingOccurrences(of: "nodes = [{ name = \"d1\", conninfo = \"host=dev\" }]", with: "[[clusters.nodes]]\nname = \"d1\"")
        let error = #expect(throws: ConfigurationError.self) { try ClusterConfiguration.parse(broken, file: "c.toml") }
        #expect(error?.line == 22 && error?.message.contains("\"d1\" has no conninfo") == true, "\(error?.description ?? "")")
        let both = base + "[[clusters]]\nname = \"x\"\nconfig = \"x.toml\"\n\n[[clusters.nodes]]\nname = \"n\"\nconninfo = \"host=n\"\n"
        let twice = #expect(throws: ConfigurationError.self) { try ClusterConfiguration.parse(both, file: "c.toml") }
        #expect(twice?.message.contains("not both") == true, "\(twice?.description ?? "")")
    }

    @Test func badClusterEntriesNameTheirLine() {
        for (entry, line, words) in [
            ("[[clusters]]\nname = \"staging\"\nconfig = \"x.toml\"\n", 8, "used twice"),
            ("[[clusters]]\nname = \"x\"\n", 8, "not neither"),
            ("[[clusters]]\nname = \"x\"\nconfig = \"x.toml\"\ncolor = \"pink\"\n", 11, "not one of"),
            ("[[clusters]]\nconfig = \"x.toml\"\n", 8, "has no name"),
        ] {
            let error = #expect(throws: ConfigurationError.self) { try ClusterConfiguration.parse(base + entry, file: "c.toml") }
            #expect(error?.line == line && error?.message.contains(words) == true, "\(entry.debugDescription): \(error?.description ?? "")")
        }
    }
}
