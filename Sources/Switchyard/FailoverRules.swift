import Foundation
import PatroniREST
import PostgresClient

/// The failover-readiness rules: facts in, verdicts and a candidate ranking out. Pure:
/// no I/O, so every rule is unit-tested on hand-built facts.
public enum FailoverRules {
    /// Judges `facts`. Results come in a fixed order (reachability, primary, each
    /// replica's stream and lag, visibility, slots and WAL senders, settings,
    /// candidates); sections whose facts are missing are left out, so evaluating facts as
    /// they are gathered only ever appends results.
    public static func evaluate(_ facts: FailoverFacts, _ thresholds: FailoverThresholds) -> (results: [CheckResult], candidates: [Candidate]) {
        var results: [CheckResult] = []
        let topology = facts.topology
        let host = facts.testedFrom

        for node in facts.nodes {
            results.append(node.reachable
                ? CheckResult(check: "reachable", node: node.name, status: .pass, summary: "reachable from \(host)")
                : CheckResult(check: "reachable", node: node.name, status: .fail,
                              summary: "unreachable from \(host): \(node.error ?? "no answer")"))
        }
        let candidates = rank(topology, patroni: facts.patroni, configuration: facts.patroniConfiguration)

        let primaries = topology.primaries
        switch primaries.count {
        case 1:
            results.append(CheckResult(check: "primary", node: primaries[0].name, status: .pass, summary: "\(primaries[0].name) is the only primary"))
        case 0:
            let best = candidates.first.map { "; best candidate \($0.node)" } ?? "; no candidate reachable"
            results.append(CheckResult(check: "primary", status: .fail, summary: "no reachable primary\(best)"))
        default:
            results.append(CheckResult(check: "primary", status: .fail,
                                       summary: "split brain: \(primaries.map(\.name).joined(separator: " and ")) are all primaries"))
        }
        let primary = topology.primary
        let primaryEndpoint = primary.flatMap { facts.endpoints[$0.name] }

        for node in facts.nodes where node.reachable && node.role == .replica {
            results.append(stream(node, facts: facts, primary: primary, primaryEndpoint: primaryEndpoint))
            results.append(lag(node, thresholds))
        }
        if let view = facts.patroni { results += patroni(view, facts: facts) }

        if let visibility = facts.visibility { results += self.visibility(visibility, primary: primary, thresholds) }
        if let slots = facts.slots, let primary { results += self.slots(slots, primary: primary.name) }
        if let settings = facts.settings {
            for node in facts.nodes where node.reachable {
                guard let nodeSettings = settings[node.name] else { continue }
                results.append(self.settings(nodeSettings, node: node, connectedStandbys: facts.connectedStandbys))
            }
            // The ranking closes the report once everything is known.
            if candidates.isEmpty {
                results.append(CheckResult(check: "candidates", status: .fail, summary: "no reachable replica could take over"))
            } else if candidates[0].ineligible != nil {
                results.append(CheckResult(
                    check: "candidates", status: .fail,
                    summary: "no replica Patroni would promote: "
                        + candidates.map { "\($0.node) \($0.ineligible ?? "")" }.joined(separator: "; "),
                    figures: ["ranking": candidates.map(\.node).joined(separator: ",")]))
            } else {
                let best = candidates[0]
                results.append(CheckResult(
                    check: "candidates", node: best.node, status: best.reachable ? .pass : .fail,
                    summary: "best candidate \(best.node)" + (best.missingBytes.map { " (\($0) bytes behind)" } ?? ""),
                    figures: ["ranking": candidates.map(\.node).joined(separator: ",")]))
            }
        }
        return (results, candidates)
    }

    /// Like ``rank(_:)``, and with Patroni's view those it would not promote — tagged
    /// `nofailover`, further behind than `maximum_lag_on_failover` by its own count or
    /// ours, or not a synchronous standby in `synchronous_mode` — come last, saying why.
    public static func rank(_ topology: Topology, patroni: PatroniView?, configuration: PatroniDynamicConfiguration?) -> [Candidate] {
        let maximumLag = configuration?.maximumLagOnFailover
        var candidates = rank(topology)
        guard let patroni, patroni.error == nil else { return candidates }
        for index in candidates.indices {
            let candidate = candidates[index]
            guard let member = patroni.member(forNode: candidate.node) else {
                candidates[index].ineligible = "is not a Patroni member"
                continue
            }
            if member.noFailover {
                candidates[index].ineligible = "is tagged nofailover"
            } else if configuration?.synchronousMode == true && member.role != "sync_standby" {
                candidates[index].ineligible = "is not a synchronous standby (Patroni runs in synchronous_mode)"
            } else if let maximumLag {
                let behind = max(member.lagBytes ?? 0, Int(clamping: candidate.missingBytes ?? 0))
                if behind > maximumLag {
                    candidates[index].ineligible = "is \(behind) bytes behind, over maximum_lag_on_failover (\(maximumLag))"
                }
            }
        }
        // Stable: eligible first, each group in the order above.
        return candidates.filter { $0.ineligible == nil } + candidates.filter { $0.ineligible != nil }
    }

    /// Replicas ordered by how little they would lose if promoted now: most WAL
    /// received, then most replayed, then by name.
    public static func rank(_ topology: Topology) -> [Candidate] {
        let primaryLSN = topology.primary?.currentLSN
        let replicas = topology.nodes.filter { $0.reachable && $0.role == .replica }
        return replicas.map { node in
            Candidate(
                node: node.name, reachable: node.reachable, receiveLSN: node.receiveLSN, replayLSN: node.replayLSN,
                missingBytes: primaryLSN.map { $0.bytes(after: node.receiveLSN ?? node.replayLSN ?? LSN(0)) },
                lagSeconds: node.lagSeconds)
        }.sorted { a, b in
            let aReceived = a.receiveLSN ?? a.replayLSN ?? LSN(0), bReceived = b.receiveLSN ?? b.replayLSN ?? LSN(0)
            if aReceived != bReceived { return aReceived > bReceived }
            let aReplayed = a.replayLSN ?? LSN(0), bReplayed = b.replayLSN ?? LSN(0)
            if aReplayed != bReplayed { return aReplayed > bReplayed }
            return a.node < b.node
        }
    }

    // MARK: Rules

    /// Patroni's view against the nodes' own: the engine must be reachable and not paused,
    /// hold one leader that really is the primary, and every member it calls a running
    /// replica must be one — streaming (by its own WAL receiver and in the primary's
    /// `pg_stat_replication` under its member name), on the leader's timeline.
    static func patroni(_ view: PatroniView, facts: FailoverFacts) -> [CheckResult] {
        if let error = view.error {
            return [CheckResult(
                check: "patroni", status: .fail,
                summary: "Patroni's REST API did not answer (\(error)): nobody can fail over or switch over through it")]
        }
        var results: [CheckResult] = []
        let topology = facts.topology
        let leaderNode = view.leaderNode.flatMap { topology.node($0) }
        if view.paused {
            results.append(CheckResult(
                check: "patroni", status: .warn,
                summary: "Patroni is paused (maintenance mode): it will neither fail over nor repair a member until resumed"))
        }
        if let leaderNode {
            switch (leaderNode.reachable, leaderNode.role) {
            case (true, .primary):
                results.append(CheckResult(
                    check: "patroni", node: leaderNode.name, status: .pass,
                    summary: "Patroni's leader \(leaderNode.name) is the primary; \(view.members.count) members"
                        + (view.paused ? "" : ", automatic failover on")))
            case (false, _):
                results.append(CheckResult(
                    check: "patroni", node: leaderNode.name, status: .fail,
                    summary: "Patroni says leader \(leaderNode.name); the node is unreachable (\(leaderNode.error ?? "no answer"))"))
            default:
                results.append(CheckResult(
                    check: "patroni", node: leaderNode.name, status: .fail,
                    summary: "Patroni says leader \(leaderNode.name); the node says it is \(leaderNode.role.rawValue) (in recovery)"))
            }
        } else {
            results.append(CheckResult(
                check: "patroni", status: .fail,
                summary: view.leader.map { "Patroni's leader \($0) is not a configured node" } ?? "Patroni has no leader"))
        }
        let leaderTimeline = leaderNode?.timeline ?? view.members.first(where: \.isLeader)?.timeline
        let streamingToPrimary = Set(facts.replication.filter { $0.state == "streaming" }.map(\.applicationName))
        let primaryName = topology.primaries.count == 1 ? topology.primaries[0].name : nil
        for node in facts.nodes {
            guard let member = view.member(forNode: node.name) else {
                results.append(CheckResult(
                    check: "patroni", node: node.name, status: .warn,
                    summary: "not a Patroni member (Patroni lists \(view.members.map(\.name).joined(separator: ", ")))"))
                continue
            }
            if member.isLeader { continue }
            let patroniSays = "Patroni: \(member.summary)" + (member.timeline.map { ", timeline \($0)" } ?? "")
                + (member.lagBytes.map { ", lag \($0) bytes" } ?? "")
            let nodeSays: String
            if !node.reachable {
                nodeSays = "node: unreachable"
            } else {
                nodeSays = "node: \(node.role == .primary ? "primary (out of recovery)" : "replica, WAL receiver \(node.walReceiverStatus ?? "not running")")"
                    + (node.timeline.map { ", timeline \($0)" } ?? "")
            }
            var problems: [String] = []
            var status = CheckStatus.pass
            let running = ["running", "streaming"].contains(member.state)
            if !running {
                problems.append("Patroni reports it \(member.state)")
                status = .fail
            }
            if node.reachable {
                if node.role == .primary {
                    problems.append("a primary Patroni does not know of: promoted behind its back, and what it accepts is lost when Patroni rewinds it")
                    status = .fail
                } else if running {
                    if node.walReceiverStatus != "streaming" && node.walReceiverStatus != "unknown" {
                        problems.append("not streaming by its own account")
                        status = .fail
                    }
                    if let primaryName, !streamingToPrimary.contains(member.name) {
                        problems.append("not streaming in \(primaryName)'s pg_stat_replication under \"\(member.name)\"")
                        status = .fail
                    }
                    if let timeline = node.timeline, let leaderTimeline, timeline != leaderTimeline {
                        problems.append("on timeline \(timeline), the leader on \(leaderTimeline)")
                        status = .fail
                    }
                }
            }
            if member.pendingRestart {
                problems.append("pending restart")
                status = max(status, .warn)
            }
            results.append(CheckResult(
                check: "patroni", node: node.name, status: status,
                summary: (problems.isEmpty ? "" : problems.joined(separator: "; ") + " — ") + "\(patroniSays) | \(nodeSays)",
                figures: ["patroni_role": member.role, "patroni_state": member.state, "nofailover": member.noFailover ? "true" : "false"]))
        }
        return results
    }

    static func stream(_ node: NodeState, facts: FailoverFacts, primary: NodeState?, primaryEndpoint: String?) -> CheckResult {
        var problems: [String] = []
        var status = CheckStatus.pass
        let follows = node.upstream ?? node.configuredUpstream
        let followsName = follows.flatMap { endpoint in facts.nodes.first { facts.endpoints[$0.name] == endpoint }?.name }
        if let follows, follows != primaryEndpoint {
            let followed = followsName.map { "\($0) (\(follows))" } ?? follows
            let state = followsName.flatMap { facts.topology.node($0) }.map { $0.reachable ? "not the primary" : "down" } ?? "not the primary"
            problems.append("follows \(followed), which is \(state)")
            status = .fail
        }
        if node.walReceiverStatus == "unknown" {
            problems.append("WAL receiver state unknown: \(Topology.monitoringRightsHint)")
            status = max(status, .warn)
        } else if node.walReceiverStatus != "streaming" {
            problems.append("WAL receiver \(node.walReceiverStatus ?? "not running")")
            status = .fail
        }
        if let timeline = node.timeline, let primaryTimeline = primary?.timeline, timeline != primaryTimeline {
            problems.append("on timeline \(timeline), primary on \(primaryTimeline)")
            status = .fail
        }
        if node.replayPaused == true {
            problems.append("replay paused")
            status = .fail
        }
        return CheckResult(
            check: "replication", node: node.name, status: status,
            summary: problems.isEmpty ? "streaming from \(node.upstream ?? "?") on timeline \(node.timeline.map(String.init) ?? "?")"
                : problems.joined(separator: "; "),
            figures: ["upstream": node.upstream ?? "", "timeline": node.timeline.map(String.init) ?? ""])
    }

    static func lag(_ node: NodeState, _ thresholds: FailoverThresholds) -> CheckResult {
        let lagMs = node.lagMilliseconds
        let status: CheckStatus
        if let lagMs {
            status = lagMs >= thresholds.criticalLag.milliseconds ? .fail : lagMs >= thresholds.warnLag.milliseconds ? .warn : .pass
        } else {
            status = (node.lagBytes ?? 0) > 0 ? .warn : .unknown
        }
        return CheckResult(
            check: "lag", node: node.name, status: status,
            summary: "lag \(node.lagBytes.map { "\($0) bytes" } ?? "? bytes"), \(lagMs.map { formatMilliseconds($0) } ?? "unknown time")"
                + " (warn \(Int(thresholds.warnLag.milliseconds)) ms, critical \(Int(thresholds.criticalLag.milliseconds)) ms)",
            figures: ["lag_bytes": node.lagBytes.map(String.init) ?? "", "lag_ms": lagMs.map { String(format: "%.1f", $0) } ?? ""])
    }

    static func visibility(_ visibility: FailoverFacts.Visibility, primary: NodeState?, _ thresholds: FailoverThresholds) -> [CheckResult] {
        switch visibility {
        case .noPrimary:
            return [CheckResult(check: "visibility", status: .unknown, summary: "no primary to write the marker row on")]
        case .notWritten(let error):
            return [CheckResult(check: "visibility", node: primary?.name, status: .unknown, summary: "cannot write the marker row: \(error)")]
        case .observed(let replicas):
            return replicas.keys.sorted().map { name in
                switch replicas[name]! {
                case .visible(let ms):
                    return CheckResult(
                        check: "visibility", node: name, status: ms >= thresholds.warnLag.milliseconds ? .warn : .pass,
                        summary: "marker row visible after \(formatMilliseconds(ms))", figures: ["visible_ms": String(format: "%.1f", ms)])
                case .notVisible(let limit):
                    return CheckResult(
                        check: "visibility", node: name, status: .fail, summary: "marker row not visible within \(Int(limit.milliseconds)) ms")
                case .unreadable(let error):
                    return CheckResult(check: "visibility", node: name, status: .unknown, summary: "cannot read the marker row: \(error)")
                }
            }
        }
    }

    static func slots(_ slots: FailoverFacts.Slots, primary: String) -> [CheckResult] {
        switch slots {
        case .unreadable(let error):
            return [CheckResult(check: "slots", node: primary, status: .unknown, summary: "cannot read slots: \(error)")]
        case .read(let all, let maxSenders, let used):
            let idle = all.filter { !$0.active }
            let slotResult = idle.isEmpty
                ? CheckResult(check: "slots", node: primary, status: .pass,
                              summary: all.isEmpty ? "no replication slots" : "\(all.count) slots, all active")
                : CheckResult(check: "slots", node: primary, status: .warn,
                              summary: "inactive slots: " + idle.map { "\($0.name) retains \($0.retainedBytes) bytes" }.joined(separator: ", "))
            let senders = CheckResult(
                check: "wal_senders", node: primary, status: maxSenders - used > 0 ? .pass : .warn,
                summary: "\(used) of \(maxSenders) WAL senders in use", figures: ["max_wal_senders": String(maxSenders), "in_use": String(used)])
            return [slotResult, senders]
        }
    }

    static func settings(_ settings: FailoverFacts.Settings, node: NodeState, connectedStandbys: Set<String>) -> CheckResult {
        guard case .read(let values) = settings else {
            if case .unreadable(let error) = settings {
                return CheckResult(check: "settings", node: node.name, status: .unknown, summary: "cannot read settings: \(error)")
            }
            return CheckResult(check: "settings", node: node.name, status: .unknown, summary: "settings unknown")
        }
        var problems: [String] = []
        var status = CheckStatus.pass
        if !["replica", "logical"].contains(values["wal_level"] ?? "") {
            problems.append("wal_level is \(values["wal_level"] ?? "?"), needs replica")
            status = .fail
        }
        if node.role == .replica && values["hot_standby"] != "on" {
            problems.append("hot_standby is off")
            status = max(status, .warn)
        }
        if values["wal_log_hints"] != "on" && values["data_checksums"] != "on" {
            problems.append("neither wal_log_hints nor data checksums: pg_rewind cannot rejoin the old primary")
            status = max(status, .warn)
        }
        if node.role == .primary, let names = values["synchronous_standby_names"], !names.isEmpty {
            let listed = names.split(whereSeparator: { ",() ".contains($0) }).map(String.init)
                .filter { !$0.isEmpty && Int($0) == nil && !["FIRST", "ANY", "first", "any", "*"].contains($0) }
            let missing = listed.filter { !connectedStandbys.contains($0) }
            if !missing.isEmpty {
                problems.append("synchronous_standby_names lists \(missing.joined(separator: ", ")), not connected: commits may hang")
                status = max(status, .warn)
            }
        }
        return CheckResult(
            check: "settings", node: node.name, status: status,
            summary: problems.isEmpty ? "wal_level \(values["wal_level"] ?? "?"), wal_log_hints \(values["wal_log_hints"] ?? "?")"
                : problems.joined(separator: "; "),
            figures: values)
    }
}
