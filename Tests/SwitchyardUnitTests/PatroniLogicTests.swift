import Foundation
import PatroniREST
import PostgresClient
import PropertyBased
@testable import Switchyard
import Testing

/// Patroni's answers, its view against the nodes' own, fencing and the failover rules
/// that use it: no server.
@Suite struct PatroniLogicTests {
    // Answers as Patroni 3.0.2 gives them (taken from a local cluster).
    static let clusterJSON = """
        {"members": [{"name": "pg1", "role": "leader", "state": "running", "api_url": "http://127.0.0.1:46003/patroni", "host": "127.0.0.1", "port": 46000, "timeline": 4},
        {"name": "pg2", "role": "sync_standby", "state": "running", "api_url": "http://127.0.0.1:46004/patroni", "host": "127.0.0.1", "port": 46001, "timeline": 4, "lag": 0},
        {"name": "db-c", "role": "replica", "state": "running", "host": "127.0.0.1", "port": 46002, "timeline": 4, "lag": "unknown", "pending_restart": true, "tags": {"nofailover": true}}],
        "pause": true}
        """
    static let memberJSON = """
        {"state": "running", "role": "master", "server_version": 150018, "xlog": {"location": 83886936}, "timeline": 1,
        "replication": [{"usename": "replicator", "application_name": "pg3", "client_addr": "127.0.0.1", "state": "streaming", "sync_state": "sync", "sync_priority": 1}],
        "patroni": {"version": "3.0.2", "scope": "local"}}
        """
    static let configJSON = """
        {"ttl": 10, "loop_wait": 2, "retry_timeout": 4, "maximum_lag_on_failover": 1048576, "synchronous_mode": true, "postgresql": {"use_pg_rewind": true}}
        """
    static let endpoints: [(name: String, endpoint: String)] = [("pg1", "127.0.0.1:46000"), ("pg2", "127.0.0.1:46001"), ("pg3", "127.0.0.1:46002")]

    @Test func answersDecodeAsPatroniSendsThem() throws {
        let cluster = try JSONDecoder().decode(PatroniClusterStatus.self, from: Data(Self.clusterJSON.utf8))
        #expect(cluster.paused)
        #expect(cluster.leader?.name == "pg1")
        #expect(cluster.members.map(\.lagBytes) == [nil, 0, nil])
        #expect(cluster.members[2].noFailover && cluster.members[2].pendingRestart && cluster.members[2].endpoint == "127.0.0.1:46002")
        let member = try JSONDecoder().decode(PatroniMemberStatus.self, from: Data(Self.memberJSON.utf8))
        #expect(member.isPrimary && member.replication.map(\.applicationName) == ["pg3"] && member.version == "3.0.2")
        let config = try JSONDecoder().decode(PatroniDynamicConfiguration.self, from: Data(Self.configJSON.utf8))
        #expect(config.maximumLagOnFailover == 1_048_576 && config.synchronousMode && !config.paused)
        // A member without the optional fields still decodes.
        let bare = try JSONDecoder().decode(PatroniClusterStatus.self, from: Data(#"{"members":[{"name":"x"}]}"#.utf8))
        #expect(bare.members[0].role == "unknown" && bare.leader == nil && !bare.paused)
    }

    @Test func membersAreMatchedToNodesByNameThenByEndpoint() throws {
        let cluster = try JSONDecoder().decode(PatroniClusterStatus.self, from: Data(Self.clusterJSON.utf8))
        let view = PatroniView.from(cluster, endpoints: Self.endpoints)
        #expect(view.members.map(\.node) == ["pg1", "pg2", "pg3"])
        #expect(view.member(forNode: "pg3")?.name == "db-c")
        #expect(view.leaderNode == "pg1")
    }

    // MARK: Fencing

    static func view(leader: String?, replicas: [String], paused: Bool = false) -> PatroniView {
        let members = (leader.map { [PatroniView.Member(name: $0, node: $0, role: "leader", state: "running", timeline: 1)] } ?? [])
            + replicas.map { PatroniView.Member(name: $0, node: $0, role: "replica", state: "running", timeline: 1, lagBytes: 0) }
        return PatroniView(members: members, leader: leader, paused: paused)
    }

    @Test func aPrimaryPatroniDoesNotLeadGetsNoWrites() {
        let nodes = [Fixtures.node("pg1", role: .primary), Fixtures.node("pg2", role: .primary), Fixtures.node("pg3", role: .replica)]
        let view = Self.view(leader: "pg1", replicas: ["pg2", "pg3"])
        #expect(view.fenced(nodes) == ["pg2": "Patroni's leader is pg1, not pg2"])
        // Patroni unreachable: probing alone decides.
        #expect(PatroniView.unreachable("timeout").fenced(nodes).isEmpty)
        // No leader key (an election under way): nobody takes writes.
        #expect(Self.view(leader: nil, replicas: ["pg1", "pg2", "pg3"]).fenced(nodes).keys.sorted() == ["pg1", "pg2"])
        var topology = Topology(nodes: [nodes[0], nodes[2]])
        topology.fenced = Self.view(leader: "pg3", replicas: ["pg1"]).fenced(topology.nodes)
        #expect(topology.primary == nil)
        #expect(RoutingError.noPrimary(topology).message.contains("pg1 is out of recovery but gets no writes: Patroni's leader is pg3"))
    }

    /// Whatever the nodes say and whatever Patroni says: with Patroni answering, the one
    /// primary writes may go to is the node holding the leader key, or there is none;
    /// only primaries are fenced; without an answer nothing is.
    @Test func writesGoOnlyToPatronisLeaderOnAnyPicture() async {
        // Per node: 0 primary, 1 replica, 2 unknown role; +3: unreachable.
        let node = Gen.int(in: 0...5)
        // 0-2: pg1-pg3 leads, 3: a member that is no configured node, 4: no leader, 5: Patroni silent.
        let patroni = Gen.int(in: 0...5)
        await propertyCheck(count: 3000, input: node.array(of: 3...3), patroni) { codes, patroniCode in
            let roles = codes.map { [NodeRole.primary, .replica, .unknown][$0 % 3] }
            let reachables = codes.map { $0 < 3 }
            let leader: String? = patroniCode < 3 ? "pg\(patroniCode + 1)" : patroniCode == 3 ? "elsewhere" : nil
            let answered = patroniCode != 5
            let nodes = (0..<3).map { Fixtures.node("pg\($0 + 1)", role: roles[$0], reachable: reachables[$0]) }
            let view = answered ? Self.view(leader: leader, replicas: ["pg1", "pg2", "pg3"].filter { $0 != leader }) : .unreachable("down")
            var topology = Topology(nodes: nodes)
            topology.fenced = view.fenced(nodes)
            if answered {
                if let primary = topology.primary { #expect(primary.name == leader) }
            } else {
                #expect(topology.fenced.isEmpty)
            }
            for name in topology.fenced.keys { #expect(topology.node(name)?.role == .primary && topology.node(name)?.reachable == true) }
        }
    }

    // MARK: Rules

    static func facts(_ nodes: [NodeState], view: PatroniView, streaming: [String] = ["pg2", "pg3"]) -> FailoverFacts {
        var facts = FailoverRulesTests.facts(nodes)
        facts.patroni = view
        facts.replication = streaming.map { ReplicationPeer(applicationName: $0, clientAddress: nil, state: "streaming", sentLSN: nil, replayLSN: nil, syncState: nil) }
        return facts
    }

    static let healthy = [FailoverRulesTests.primary, FailoverRulesTests.replica("pg2"), FailoverRulesTests.replica("pg3")]

    func patroniResults(_ facts: FailoverFacts) -> [CheckResult] {
        FailoverRules.evaluate(facts, FailoverRulesTests.thresholds).results.filter { $0.check == "patroni" }
    }

    @Test func agreeingViewsPassAndShowBoth() {
        let results = patroniResults(Self.facts(Self.healthy, view: Self.view(leader: "pg1", replicas: ["pg2", "pg3"])))
        #expect(results.allSatisfy { $0.status == .pass })
        let pg2 = results.first { $0.node == "pg2" }
        #expect(pg2?.summary == "Patroni: replica running, timeline 1, lag 0 bytes | node: replica, WAL receiver streaming, timeline 1")
    }

    @Test func disagreementsAreCriticalWithBothViews() {
        // pg3 promoted behind Patroni's back.
        var nodes = Self.healthy
        nodes[2] = Fixtures.node("pg3", role: .primary, timeline: 2)
        let behindBack = patroniResults(Self.facts(nodes, view: Self.view(leader: "pg1", replicas: ["pg2", "pg3"], paused: true), streaming: ["pg2"]))
        #expect(behindBack.first { $0.node == nil }?.status == .warn)
        #expect(behindBack.first { $0.node == nil }?.summary.contains("paused") == true)
        let pg3 = behindBack.first { $0.node == "pg3" }
        #expect(pg3?.status == .fail)
        #expect(pg3?.summary.contains("Patroni: replica running") == true && pg3?.summary.contains("node: primary (out of recovery)") == true)

        // Patroni says running, the node does not stream, and the leader does not list it.
        nodes = Self.healthy
        nodes[1] = FailoverRulesTests.replica("pg2", status: "waiting")
        let stalled = patroniResults(Self.facts(nodes, view: Self.view(leader: "pg1", replicas: ["pg2", "pg3"]), streaming: ["pg3"]))
        let pg2 = stalled.first { $0.node == "pg2" }
        #expect(pg2?.status == .fail)
        #expect(pg2?.summary.contains("not streaming by its own account") == true)
        #expect(pg2?.summary.contains("not streaming in pg1's pg_stat_replication under \"pg2\"") == true)

        // Another timeline than the leader.
        nodes = Self.healthy
        nodes[2] = FailoverRulesTests.replica("pg3", timeline: 2)
        let forked = patroniResults(Self.facts(nodes, view: Self.view(leader: "pg1", replicas: ["pg2", "pg3"])))
        #expect(forked.first { $0.node == "pg3" }?.summary.contains("on timeline 2, the leader on 1") == true)

        // The leader key on a node in recovery; Patroni unreachable.
        let wrongLeader = patroniResults(Self.facts(Self.healthy, view: Self.view(leader: "pg2", replicas: ["pg1", "pg3"])))
        #expect(wrongLeader.first { $0.node == "pg2" && $0.summary.hasPrefix("Patroni says leader pg2") }?.status == .fail)
        let silent = patroniResults(Self.facts(Self.healthy, view: .unreachable("http://127.0.0.1:8008 did not answer")))
        #expect(silent.count == 1 && silent[0].status == .fail)
    }

    @Test func candidatesPatroniWouldNotPromoteComeLast() {
        var view = Self.view(leader: "pg1", replicas: ["pg2", "pg3"])
        view.members[1].noFailover = true
        let nodes = [FailoverRulesTests.primary, FailoverRulesTests.replica("pg2", replay: 1000), FailoverRulesTests.replica("pg3", replay: 900)]
        let ranked = FailoverRules.rank(Topology(nodes: nodes), patroni: view, configuration: PatroniDynamicConfiguration(maximumLagOnFailover: 1_000_000))
        #expect(ranked.map(\.node) == ["pg3", "pg2"])
        #expect(ranked[1].ineligible == "is tagged nofailover")
        let tight = FailoverRules.rank(
            Topology(nodes: nodes), patroni: Self.view(leader: "pg1", replicas: ["pg2", "pg3"]), configuration: PatroniDynamicConfiguration(maximumLagOnFailover: 50))
        #expect(tight.map(\.node) == ["pg2", "pg3"])
        #expect(tight[1].ineligible == "is 100 bytes behind, over maximum_lag_on_failover (50)")
        var facts = Self.facts(nodes, view: view)
        facts.patroniConfiguration = PatroniDynamicConfiguration(maximumLagOnFailover: 10)
        let verdict = FailoverRules.evaluate(facts, FailoverRulesTests.thresholds)
        let summary = verdict.results.first { $0.check == "candidates" }
        #expect(summary?.status == .fail && summary?.summary.hasPrefix("no replica Patroni would promote") == true)
        // In synchronous mode only synchronous standbys can take over.
        var sync = Self.view(leader: "pg1", replicas: ["pg2", "pg3"])
        sync.members[2].role = "sync_standby"
        let synchronous = FailoverRules.rank(Topology(nodes: nodes), patroni: sync, configuration: PatroniDynamicConfiguration(synchronousMode: true))
        #expect(synchronous.map(\.node) == ["pg3", "pg2"])
        #expect(synchronous[1].ineligible == "is not a synchronous standby (Patroni runs in synchronous_mode)")
    }

    @Test func disagreementInThePane() {
        let view = Self.view(leader: "pg1", replicas: ["pg2", "pg3"])
        #expect(view.disagreement(for: Fixtures.node("pg3", role: .primary)) == "Patroni: replica running, node is primary")
        #expect(view.disagreement(for: Fixtures.node("pg2", role: .replica, status: nil)) == "Patroni: replica running, node not streaming")
        #expect(view.disagreement(for: Fixtures.node("pg2", role: .replica)) == nil)
    }

    // MARK: Config

    @Test func patroniSectionParsesAndItsErrorsNameTheLine() throws {
        let base = "[[nodes]]\nname = \"pg1\"\nconninfo = \"host=a\"\n"
        let config = try ClusterConfiguration.parse(
            base + "[patroni]\nendpoints = [\"http://10.0.0.1:8008\", \"https://b:8008\"]\ntimeout_ms = 500\nusername = \"u\"\npassword = \"s3cret\"\n",
            file: "x.toml")
        #expect(config.patroni?.endpoints.map(\.absoluteString) == ["http://10.0.0.1:8008", "https://b:8008"])
        #expect(config.patroni?.timeout == .milliseconds(500))
        let cases: [(String, Int, String)] = [
            ("[patroni]\nendpoints = []\n", 5, "at least one REST URL"),
            ("[patroni]\nendpoints = [\"ftp://x\"]\n", 5, "is not an http(s)://host:port URL"),
            ("[patroni]\nendpoints = [\"http://u:topsecret@x:8008\"]\n", 5, "credentials go in username and password"),
            ("[patroni]\nendpoints = [\"http://x\"]\nusername = \"u\"\n", 6, "both username and password"),
            ("[patroni]\nendpoint = [\"http://x\"]\n", 5, "unknown key \"endpoint\""),
        ]
        for (text, line, message) in cases {
            let error = #expect(throws: ConfigurationError.self) { try ClusterConfiguration.parse(base + text, file: "x.toml") }
            #expect(error?.line == line, "\(text)")
            #expect(error?.message.contains(message) == true, "\(error?.message ?? "")")
            #expect(error?.description.contains("topsecret") == false)
        }
    }

    @Test func endpointsAreDescribedWithoutCredentials() {
        #expect(PatroniClient.describe(URL(string: "http://user:pw@10.0.0.1:8008/cluster")!) == "http://10.0.0.1:8008")
    }
}
