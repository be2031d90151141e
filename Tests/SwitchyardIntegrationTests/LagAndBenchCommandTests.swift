import Foundation
import LocalCluster
import SwitchyardTestSupport
import Testing

extension ClusterTests {
    /// `switchyard lag` and `switchyard bench` run as a user would, on the shared cluster.
    @Suite struct LagAndBenchCommandTests {
        /// A config for the shared cluster plus `extra`, in a folder of its own.
        static func configWith(_ extra: ConfigFile.Node, name: String) throws -> (folder: URL, path: String) {
            let cluster = try TestCluster.shared()
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sy-config-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let nodes = try cluster.nodes.map { ConfigFile.Node(name: $0.name, conninfo: try cluster.conninfo($0.name)) } + [extra]
            let path = folder.appendingPathComponent("switchyard.toml").path
            try ConfigFile(clusterName: name, nodes: nodes).write(to: path)
            return (folder, path)
        }

        @Test func lagTableAndJSONAgree() async throws {
            let cluster = try TestCluster.shared()
            let config = cluster.local.configURL.path
            let table = try await CommandLineTests.run(["lag", "--config", config])
            #expect(table.status == 0, "\(table.output)")
            let rows = table.output.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true) }
            #expect(rows.contains { $0.first == "pg1" && $0.contains("primary") && $0.contains("running") })
            #expect(rows.contains { $0.first == "pg2" && $0.contains("replica") && $0.contains("streaming") })
            #expect(rows.contains { $0.first == "pg3" && $0.contains("replica") && $0.contains("streaming") })

            let json = try await CommandLineTests.run(["lag", "--config", config, "--json"])
            #expect(json.status == 0)
            let document = try #require(JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any])
            #expect(document["primary"] as? String == "pg1")
            let nodes = try #require(document["nodes"] as? [[String: Any]])
            #expect(nodes.map { $0["name"] as? String } == ["pg1", "pg2", "pg3"])
            #expect(nodes.map { $0["role"] as? String } == ["primary", "replica", "replica"])
            #expect(nodes.dropFirst().allSatisfy { $0["walReceiverStatus"] as? String == "streaming" })
            let peers = try #require(document["replication"] as? [[String: Any]])
            #expect(Set(peers.compactMap { $0["applicationName"] as? String }) == ["pg2", "pg3"])
        }

        @Test func logLevelShowsOperationalMessagesOnlyWhenAsked() async throws {
            let port = try #require(PortCheck.freeRange(count: 1))
            let (folder, path) = try Self.configWith(
                ConfigFile.Node(name: "gone", conninfo: "host=127.0.0.1 port=\(port) dbname=app user=postgres"), name: "logs")
            defer { try? FileManager.default.removeItem(at: folder) }
            let quiet = try await CommandLineTests.run(["lag", "--config", path])
            #expect(quiet.output.contains("gone") && !quiet.output.contains("probe failed"), "\(quiet.output)")
            let chatty = try await CommandLineTests.run(["lag", "--config", path, "--log-level", "info"])
            #expect(chatty.output.contains("switchyard.monitor") && chatty.output.contains("probe failed"), "\(chatty.output)")
            #expect(chatty.output.contains("node=gone"))
            let logFile = folder.appendingPathComponent("switchyard.log").path
            let toFile = try await CommandLineTests.run(["lag", "--config", path, "--log-level", "info", "--log-file", logFile])
            #expect(!toFile.output.contains("probe failed"))
            #expect(try String(contentsOfFile: logFile, encoding: .utf8).contains("probe failed"))
        }

        @Test func serverAndConfigTextReachesTheTerminalDefused() async throws {
            // A node whose libpq error quotes hostile text back, in a cluster with a hostile name.
            let (folder, path) = try Self.configWith(
                ConfigFile.Node(name: "odd", conninfo: "host=127.0.0.1 port=\u{1B}[2J\u{9B}31m\u{202E}"), name: "esc\u{1B}[2Jname")
            defer { try? FileManager.default.removeItem(at: folder) }
            for arguments in [["lag", "--config", path], ["check", "--config", path]] {
                let run = try await CommandLineTests.run(arguments)
                #expect(!run.output.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x9B || $0.value == 0x202E },
                        "\(arguments[0]) printed terminal controls: \(run.output.debugDescription)")
                #expect(run.output.contains("odd"))
            }
        }

        @Test func badConfigNamesFileAndLine() async throws {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("sy-bad-\(UUID().uuidString).toml").path
            defer { try? FileManager.default.removeItem(atPath: path) }
            try "[[nodes]]\nname = \"pg1\"\nconninfo = \"host=127.0.0.1 password=hunter2\"\n[routing]\nreplica_selection = 3\n"
                .write(toFile: path, atomically: true, encoding: .utf8)
            let run = try await CommandLineTests.run(["lag", "--config", path])
            #expect(run.status == 1)
            #expect(run.output.contains("\(path):5: [routing] replica_selection must be a string"))
            #expect(!run.output.contains("hunter2"))
        }

        /// Through the bouncers too: the token is read on the same node, so 0 stale under LSN.
        @Test(arguments: TestCluster.Path.allCases)
        func consistencyBenchFindsStaleReadsOnlyWithoutProtection(path: TestCluster.Path) async throws {
            let cluster = try TestCluster.shared()
            let config = cluster.configPath(path)
            let delay = try await CommandLineTests.run(["cluster", "delay", "pg3", "200", "--dir", cluster.local.directory.path])
            #expect(delay.status == 0, "\(delay.output)")
            try await ensuring {
                let run = try await CommandLineTests.run(
                    ["bench", "consistency", "--config", config, "--seconds", "1", "--slice-ms", "100", "--clients", "1,4", "--rows", "200", "--json"]
                        + (path == .pgbouncer ? ["--compare-direct"] : []))
                #expect(run.status == 0, "\(run.output)")
                let start = try #require(run.output.firstIndex(of: "["))
                let reports = try #require(
                    JSONSerialization.jsonObject(with: Data(run.output[start...].utf8)) as? [[String: Any]])
                // Every policy at every client count (through the bouncers: and straight to
                // the servers, same slices), each measured in interleaved slices.
                let paths = path == .pgbouncer ? ["configured", "direct"] : ["configured"]
                #expect(reports.count == 10 * paths.count)
                #expect(Set(reports.compactMap { $0["path"] as? String }) == Set(paths))
                #expect(Set(reports.compactMap { $0["clients"] as? Int }) == [1, 4])
                for report in reports {
                    #expect((report["slices"] as? Int ?? 0) >= 3)
                    #expect(report["opsPerSecondSpread"] is Double)
                    #expect((report["allReadsReplicaSharePercent"] as? Double ?? -1) >= 0)
                }
                for measured in paths {
                    let byPolicy = Dictionary(uniqueKeysWithValues: reports.filter { $0["clients"] as? Int == 4 && $0["path"] as? String == measured }
                        .map { ($0["policy"] as? String ?? "?", $0) })
                    #expect(Set(byPolicy.keys) == ["naive-random", "admin-context", "pin-window-2s", "per-read-lsn-check", "lsn-read-your-writes"])
                    for protected in ["admin-context", "pin-window-2s", "per-read-lsn-check", "lsn-read-your-writes"] {
                        #expect(byPolicy[protected]?["staleReadBacks"] as? Int == 0, "\(protected) (\(measured)) returned stale read-backs")
                        #expect((byPolicy[protected]?["readBacks"] as? Int ?? 0) > 0)
                    }
                    #expect((byPolicy["naive-random"]?["staleReadBacks"] as? Int ?? 0) > 0, "naive routing should show stale reads")
                    #expect(byPolicy["admin-context"]?["readsOnReplicas"] as? Int == 0)
                    #expect((byPolicy["lsn-read-your-writes"]?["replicaSharePercent"] as? Double ?? 0) > 90)
                }
                #expect(reports.allSatisfy { $0["errors"] as? Int == 0 })
                if path == .direct {
                    // Nothing to compare without a pooler: refused before any work.
                    let refused = try await CommandLineTests.run(["bench", "consistency", "--config", config, "--compare-direct"])
                    #expect(refused.status != 0)
                    #expect(refused.output.contains("nothing to compare"), "\(refused.output)")
                    // Some policies only, in the order given; an unknown name is refused.
                    let two = try await CommandLineTests.run(
                        ["bench", "consistency", "--config", config, "--seconds", "0.5", "--clients", "2", "--rows", "200", "--json",
                         "--policies", "naive-random,lsn-read-your-writes"])
                    #expect(two.status == 0, "\(two.output)")
                    let twoStart = try #require(two.output.firstIndex(of: "["))
                    let twoReports = try #require(JSONSerialization.jsonObject(with: Data(two.output[twoStart...].utf8)) as? [[String: Any]])
                    #expect(twoReports.compactMap { $0["policy"] as? String } == ["naive-random", "lsn-read-your-writes"])
                    let unknown = try await CommandLineTests.run(["bench", "consistency", "--config", config, "--policies", "naive-random,fastest"])
                    #expect(unknown.status != 0)
                    #expect(unknown.output.contains("--policies must name some of"), "\(unknown.output)")
                    let twice = try await CommandLineTests.run(["bench", "consistency", "--config", config, "--policies", "naive-random,naive-random"])
                    #expect(twice.status != 0)
                    #expect(twice.output.contains("once each"), "\(twice.output)")
                }
        
            } finally: {
                _ = try? await CommandLineTests.run(["cluster", "delay", "pg3", "0", "--dir", cluster.local.directory.path])
            }
        }

        /// Through the bouncers it also runs routed `SELECT 1` straight to the server, in the same slices.
        @Test(arguments: TestCluster.Path.allCases)
        func routingBenchReportsFigures(path: TestCluster.Path) async throws {
            let config = try TestCluster.shared().configPath(path)
            let run = try await CommandLineTests.run(["bench", "routing", "--config", config, "--seconds", "1", "--decisions", "20000", "--json"])
            #expect(run.status == 0, "\(run.output)")
            let report = try #require(JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any])
            #expect((report["decisionMedianNs"] as? Double ?? 0) > 0)
            #expect((report["rawSelectsPerSecond"] as? Double ?? 0) > 0)
            #expect((report["routedSelectsPerSecond"] as? Double ?? 0) > 0)
            // Every rate with its spread across the slices (four in one second).
            #expect(report["slices"] as? Int == 4)
            #expect((report["rawSelectsPerSecondSpread"] as? Double ?? 0) > 0)
            #expect((report["routedSelectsPerSecondSpread"] as? Double ?? 0) > 0)
            #expect((report["pooledSelectsPerSecondSpread"] as? Double ?? 0) > 0)
            #expect((report["ratioSpread"] as? Double ?? 0) > 0)
            #expect(report["node"] as? String == "pg1")
            // Where the routed path's time goes.
            #expect((report["routedCPUMicrosecondsPerSelect"] as? Double ?? 0) > 0)
            #expect((report["pooledSelectsPerSecond"] as? Double ?? 0) > 0)
            #expect((report["pooledCPUMicrosecondsPerSelect"] as? Double ?? 0) > 0)
            #expect((report["pooledUserMicrosecondsPerSelect"] as? Double ?? 0) > 0)
            #expect((report["poolCheckoutNs"] as? Double ?? 0) > 0)
            #expect((report["logRecordNs"] as? Double ?? 0) > 0)
            #expect((report["routedHandOffsPerSelect"] as? Double ?? -1) >= 0)
            // 200 pooled connections opened and measured.
            #expect((report["pooledConnectionsRSSMegabytes"] as? Double ?? 0) > 0)
            if FileManager.default.isExecutableFile(atPath: "/usr/bin/pgbench") {
                #expect((report["pgbenchSelectsPerSecond"] as? Double ?? 0) > 0)
                #expect((report["rawVsPgbench"] as? Double ?? 0) > 0)
            }
            if path == .pgbouncer {
                #expect((report["directRoutedSelectsPerSecond"] as? Double ?? 0) > 0)
                #expect((report["pooledVsDirect"] as? Double ?? 0) > 0)
            } else {
                #expect(report["pooledVsDirect"] == nil)
            }
        }

        @Test func monitorBenchCountsEachStrategysStatementsOnTheServers() async throws {
            let config = try TestCluster.shared().local.configURL.path
            let run = try await CommandLineTests.run([
                "bench", "monitor", "--config", config, "--seconds", "2", "--interval-ms", "100", "--replica-probe-interval-ms", "1000", "--json",
            ])
            #expect(run.status == 0, "\(run.output)")
            let reports = try #require(JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [[String: Any]])
            let byStrategy = Dictionary(uniqueKeysWithValues: reports.map { ($0["strategy"] as? String ?? "?", $0) })
            #expect(Set(byStrategy.keys) == ["every-node", "primary-view"])
            for report in reports {
                #expect(report["nodes"] as? Int == 3)
                #expect((report["rounds"] as? Int ?? 0) >= 10)
                #expect((report["cpuMsPerRound"] as? Double ?? 0) > 0)
                #expect((report["serverStatementsPerSecond"] as? Double ?? 0) > 0)
                #expect(report["quiet"] as? Bool == true, "other work on the cluster would be counted as the monitor's")
            }
            // 100 ms rounds: every node 10/s against the primary's 10/s and the replicas' turns.
            let every = try #require(byStrategy["every-node"]?["serverStatementsPerSecondByNode"] as? [String: Double])
            let view = try #require(byStrategy["primary-view"]?["serverStatementsPerSecondByNode"] as? [String: Double])
            #expect(every.values.allSatisfy { $0 > 7 }, "\(every)")
            #expect((view["pg1"] ?? 0) > 7, "\(view)")
            #expect((view["pg2"] ?? 0) + (view["pg3"] ?? 0) < 3, "\(view)")
        }

        @Test func httpBenchComparesTheMiddlewareWithItsBaselineUnderWrk() async throws {
            let config = try TestCluster.shared().local.configURL.path
            let schema = "bench_" + UUID().uuidString.prefix(6).lowercased()
            defer { Task { await RunningStorefront.dropSchema(schema) } }
            let run = try await CommandLineTests.run([
                "bench", "http", "--config", config, "--seconds", "2", "--slice-seconds", "1", "--connections", "4", "--schema", schema,
                "--json",
            ])
            #expect(run.status == 0, "\(run.output)")
            let json = String(run.output.drop { $0 != "{" })
            let report = try #require(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
            for variant in ["withMiddleware", "withoutMiddleware"] {
                let figures = try #require(report[variant] as? [String: Any])
                #expect((figures["requestsPerSecond"] as? Double ?? 0) > 0)
                #expect((figures["p99Ms"] as? Double ?? 0) > 0)
                #expect(figures["errors"] as? Int == 0)
                #expect(figures["slices"] as? Int == 2)
            }
            #expect((report["ratio"] as? Double ?? 0) > 0)
        }
    }
}
