import PostgresClient
@testable import Switchyard
import Testing

/// The failover rules on hand-built facts: no server.
@Suite struct FailoverRulesTests {
    static let thresholds = FailoverThresholds(warnLag: .milliseconds(200), criticalLag: .seconds(1))
    static let endpoints = ["pg1": "127.0.0.1:5432", "pg2": "127.0.0.1:5433", "pg3": "127.0.0.1:5434"]
    static let goodSettings: [String: String] = ["wal_level": "replica", "hot_standby": "on", "wal_log_hints": "on"]

    /// Complete facts for `nodes`: marker visible fast, active slots, good settings.
    static func facts(_ nodes: [NodeState]) -> FailoverFacts {
        let replicas = nodes.filter { $0.reachable && $0.role == .replica }
        let primary = Topology(nodes: nodes).primary
        return FailoverFacts(
            cluster: "c", testedFrom: "here", nodes: nodes, endpoints: endpoints,
            visibility: primary == nil ? .noPrimary
                : .observed(Dictionary(uniqueKeysWithValues: replicas.map { ($0.name, .visible(afterMs: 5)) })),
            slots: primary == nil ? nil : .read(slots: [], maxWalSenders: 10, walSendersInUse: replicas.count),
            settings: Dictionary(uniqueKeysWithValues: nodes.filter(\.reachable).map { ($0.name, .read(goodSettings)) }),
            connectedStandbys: Set(replicas.map(\.name)))
    }

    static func replica(_ name: String, replay: UInt64 = 1000, upstream: String = "127.0.0.1:5432", timeline: Int = 1,
                        status: String = "streaming", paused: Bool = false, lagMs: Double = 0) -> NodeState {
        Fixtures.node(name, role: .replica, replay: replay, receive: replay, lagBytes: lagMs > 0 ? 100 : 0, lagSeconds: lagMs / 1000,
                      status: status, upstream: upstream, timeline: timeline, paused: paused)
    }

    static let primary = Fixtures.node("pg1", role: .primary, replay: 1000, timeline: 1)

    static func report(_ facts: FailoverFacts) -> FailoverReport {
        let verdict = FailoverRules.evaluate(facts, thresholds)
        return FailoverReport(cluster: "c", primary: facts.topology.primary?.name, testedFrom: "here", durationMs: 1,
                              results: verdict.results, candidates: verdict.candidates)
    }

    func result(_ report: FailoverReport, _ check: String, _ node: String? = nil) -> CheckResult? {
        report.results.first { $0.check == check && (node == nil || $0.node == node) }
    }

    @Test func aHealthyClusterIsOK() {
        let report = Self.report(Self.facts([Self.primary, Self.replica("pg2"), Self.replica("pg3")]))
        #expect(report.status == .pass)
        #expect(report.exitCode == 0)
        #expect(report.summaryLine.hasPrefix("SWITCHYARD OK - "))
        #expect(report.summaryLine.hasSuffix("primary pg1, best candidate pg2"))
        #expect(report.results.last?.check == "candidates")
    }

    @Test func splitBrainIsCritical() {
        let second = Fixtures.node("pg2", role: .primary, replay: 900, timeline: 2)
        let report = Self.report(Self.facts([Self.primary, second, Self.replica("pg3")]))
        #expect(result(report, "primary")?.status == .fail)
        #expect(result(report, "primary")?.summary == "split brain: pg1 and pg2 are all primaries")
        #expect(report.exitCode == 2)
        #expect(report.summaryLine.hasPrefix("SWITCHYARD CRITICAL - split brain: pg1 and pg2"))
        #expect(report.primary == nil)
    }

    @Test func noPrimaryNamesTheBestCandidate() {
        let down = Fixtures.node("pg1", role: .primary, reachable: false, error: "connection refused")
        let report = Self.report(Self.facts([down, Self.replica("pg2", replay: 900), Self.replica("pg3", replay: 950)]))
        #expect(result(report, "reachable", "pg1")?.status == .fail)
        #expect(result(report, "reachable", "pg1")?.summary == "unreachable from here: connection refused")
        #expect(result(report, "primary")?.summary == "no reachable primary; best candidate pg3")
        #expect(result(report, "visibility")?.status == .unknown)
        #expect(report.candidates.map(\.node) == ["pg3", "pg2"])
        #expect(report.exitCode == 2)
    }

    @Test func aReplicaFollowingADeadOrWrongUpstreamFails() {
        let down = Fixtures.node("pg2", role: .replica, reachable: false)
        let report = Self.report(Self.facts([Self.primary, down, Self.replica("pg3", upstream: "127.0.0.1:5433")]))
        #expect(result(report, "replication", "pg3")?.status == .fail)
        #expect(result(report, "replication", "pg3")?.summary == "follows pg2 (127.0.0.1:5433), which is down")
        let stranger = Self.report(Self.facts([Self.primary, Self.replica("pg2"), Self.replica("pg3", upstream: "10.9.9.9:5432")]))
        #expect(result(stranger, "replication", "pg3")?.summary == "follows 10.9.9.9:5432, which is not the primary")
    }

    @Test func anOldTimelineAndPausedReplayFail() {
        let report = Self.report(Self.facts([Self.primary, Self.replica("pg2", timeline: 0), Self.replica("pg3", paused: true)]))
        #expect(result(report, "replication", "pg2")?.summary == "on timeline 0, primary on 1")
        #expect(result(report, "replication", "pg3")?.summary == "replay paused")
        #expect(report.exitCode == 2)
        let stopped = Self.report(Self.facts([Self.primary, Self.replica("pg2", status: "stopping"), Self.replica("pg3")]))
        #expect(result(stopped, "replication", "pg2")?.summary == "WAL receiver stopping")
    }

    @Test func lagAgainstWarnAndCritical() {
        let report = Self.report(Self.facts([Self.primary, Self.replica("pg2", lagMs: 250), Self.replica("pg3")]))
        #expect(result(report, "lag", "pg2")?.status == .warn)
        #expect(report.exitCode == 1)
        #expect(report.summaryLine.hasPrefix("SWITCHYARD WARNING - pg2: lag 100 bytes, 250 ms (warn 200 ms, critical 1000 ms)"))
        let critical = Self.report(Self.facts([Self.primary, Self.replica("pg2", lagMs: 1500), Self.replica("pg3")]))
        #expect(result(critical, "lag", "pg2")?.status == .fail)
        #expect(result(critical, "lag", "pg2")?.summary.contains("1.5 s") == true)
        // Bytes behind with no time known: a warning, not a pass.
        var unknown = Self.replica("pg3")
        unknown.lagSeconds = nil
        unknown.lagBytes = 4096
        #expect(result(Self.report(Self.facts([Self.primary, Self.replica("pg2"), unknown])), "lag", "pg3")?.status == .warn)
    }

    @Test func candidateTiesBreakByReplayThenName() {
        var a = Self.replica("pg3", replay: 900)
        a.receiveLSN = LSN(1000)
        var b = Self.replica("pg2", replay: 950)
        b.receiveLSN = LSN(1000)
        let c = Self.replica("pg4", replay: 950)
        #expect(FailoverRules.rank(Topology(nodes: [Self.primary, a, b])).map(\.node) == ["pg2", "pg3"])
        var d = Self.replica("pg5", replay: 950)
        d.receiveLSN = LSN(950)
        #expect(FailoverRules.rank(Topology(nodes: [Self.primary, d, c])).map(\.node) == ["pg4", "pg5"])
        #expect(FailoverRules.rank(Topology(nodes: [Self.primary, a, b])).first?.missingBytes == 0)
    }

    @Test func visibilitySlotsAndSettingsRules() {
        var facts = Self.facts([Self.primary, Self.replica("pg2"), Self.replica("pg3")])
        facts.visibility = .observed(["pg2": .visible(afterMs: 300), "pg3": .notVisible(within: .seconds(1))])
        facts.slots = .read(slots: [FailoverFacts.Slot(name: "old", active: false, retainedBytes: 4096)], maxWalSenders: 2, walSendersInUse: 2)
        facts.settings?["pg1"] = .read(["wal_level": "minimal", "synchronous_standby_names": "FIRST 1 (pg9)"])
        facts.settings?["pg2"] = .unreadable(error: "permission denied")
        let report = Self.report(facts)
        #expect(result(report, "visibility", "pg2")?.status == .warn)
        #expect(result(report, "visibility", "pg3")?.summary == "marker row not visible within 1000 ms")
        #expect(result(report, "slots")?.summary == "inactive slots: old retains 4096 bytes")
        #expect(result(report, "wal_senders")?.status == .warn)
        let settings = result(report, "settings", "pg1")
        #expect(settings?.status == .fail)
        #expect(settings?.summary.contains("wal_level is minimal, needs replica") == true)
        #expect(settings?.summary.contains("pg_rewind cannot rejoin") == true)
        #expect(settings?.summary.contains("synchronous_standby_names lists pg9, not connected") == true)
        #expect(result(report, "settings", "pg2")?.status == .unknown)
        // Four or more problems: the summary names three and counts the rest.
        #expect(report.summaryLine.contains("more"))
    }

    @Test func unknownOnlyIsExitThree() {
        var facts = Self.facts([Self.primary, Self.replica("pg2")])
        facts.visibility = .notWritten(error: "read-only")
        let verdict = FailoverRules.evaluate(facts, Self.thresholds)
        let report = FailoverReport(cluster: "c", primary: "pg1", testedFrom: "here", durationMs: 1,
                                    results: verdict.results.filter { $0.check == "visibility" }, candidates: [])
        #expect(report.exitCode == 3)
        #expect(report.summaryLine.hasPrefix("SWITCHYARD UNKNOWN - pg1: cannot write the marker row: read-only"))
    }

    @Test func gatheringFactsOnlyAppendsResults() {
        let full = Self.facts([Self.primary, Self.replica("pg2"), Self.replica("pg3", lagMs: 300)])
        var partial = full
        partial.visibility = nil
        partial.slots = nil
        partial.settings = nil
        var previous: [CheckResult] = []
        for stage in 0...3 {
            var facts = partial
            if stage >= 1 { facts.visibility = full.visibility }
            if stage >= 2 { facts.slots = full.slots }
            if stage >= 3 { facts.settings = full.settings }
            let results = FailoverRules.evaluate(facts, Self.thresholds).results
            #expect(Array(results.prefix(previous.count)) == previous, "stage \(stage) rewrote earlier results")
            #expect(results.count >= previous.count)
            previous = results
        }
        #expect(previous.last?.check == "candidates")
    }
}
