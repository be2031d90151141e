import Foundation
import PatroniREST
import PostgresClient

/// Why a promotion was refused or failed.
public struct PromotionError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// What a promotion did and how long each step took.
public struct PromotionOutcome: Sendable, Equatable {
    public enum Method: String, Sendable {
        /// `pg_promote()` on the node (clusters without an HA engine).
        case pgPromote = "pg_promote"
        /// Patroni's `POST /switchover`: the healthy leader stepped down.
        case switchover
        /// Patroni's `POST /failover`: there was no healthy leader.
        case failover
    }

    public var node: String
    public var method: Method
    /// From the request until the node was out of recovery (and, with Patroni, its leader).
    public var acceptingWrites: Duration
    /// Replicas now following the node: repointed by us (plain) or by Patroni.
    public var following: [String] = []
    /// Replicas that do not stream from it yet, and why.
    public var notFollowing: [String: String] = [:]
    /// From the request until every reachable replica streamed from the node.
    public var allStreaming: Duration?
}

/// Guarded promotion of a replica.
///
/// Without an HA engine: `pg_promote()`, wait until it is out of recovery, then repoint
/// the other replicas to it (`primary_conninfo` + reload; PostgreSQL ≥ 13 applies that
/// without a restart). With `[patroni]`: never `pg_promote()` — Patroni would demote the
/// node within its loop and lose what it accepted — but a switchover through Patroni's REST
/// API (a failover when there is no healthy leader), then wait until the node leads,
/// accepts writes and the others stream from it.
public enum Promotion {
    public static func promote(
        _ node: String, configuration: ClusterConfiguration, force: Bool = false, progress: @Sendable (String) -> Void = { _ in }
    ) async throws -> PromotionOutcome {
        guard let endpoint = configuration.nodes.first(where: { $0.name == node }) else {
            throw PromotionError(
                message: "no node named \"\(node)\" (nodes: \(configuration.nodes.map(\.name).joined(separator: ", ")))")
        }
        if let patroni = configuration.patroni {
            if force {
                throw PromotionError(
                    message: "this cluster is managed by Patroni ([patroni] in the config): a pg_promote() behind its back is undone "
                        + "within its loop and the rows written in between are lost, so --force is refused. Without --force, "
                        + "promote asks Patroni for a switchover (or a failover when there is no leader)")
            }
            return try await promoteThroughPatroni(endpoint, patroni: patroni, configuration: configuration, progress: progress)
        }
        let monitor = ClusterMonitor(nodes: configuration.nodes, settings: ClusterMonitor.Settings(configuration))
        let topology = await monitor.probeNow()
        await monitor.stop()
        guard let target = topology.node(node), target.reachable else {
            throw PromotionError(message: "\(node) is not reachable: \(topology.node(node)?.error ?? "no answer")")
        }
        guard target.role == .replica else { throw PromotionError(message: "\(node) is already a primary") }
        let others = topology.primaries.filter { $0.name != node }
        if !others.isEmpty && !force {
            throw PromotionError(
                message: "\(others.map(\.name).joined(separator: ", ")) is still a reachable primary: promoting \(node) now would "
                    + "create split brain. Stop it first, or force it")
        }
        let started = ContinuousClock.now
        progress("pg_promote() on \(node)")
        try await withConnection(endpoint) { connection in
            _ = try await connection.query("select pg_promote(true, 60)")
            while try await connection.query("select pg_is_in_recovery()").scalar(Bool.self) == true {
                guard ContinuousClock.now - started < .seconds(60) else {
                    throw PromotionError(message: "\(node) is still in recovery after 60 s")
                }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        var outcome = PromotionOutcome(node: node, method: .pgPromote, acceptingWrites: ContinuousClock.now - started)
        progress("\(node) accepts writes after \(formatDuration(outcome.acceptingWrites))")
        let replicas = topology.nodes.filter { $0.reachable && $0.role == .replica && $0.name != node }
        for replica in replicas {
            guard let other = configuration.nodes.first(where: { $0.name == replica.name }) else { continue }
            do {
                progress("repointing \(replica.name) to \(node)")
                try await repoint(other, to: endpoint)
            } catch {
                outcome.notFollowing[replica.name] = "not repointed: \(describe(error))"
            }
        }
        let streaming = await waitForFollowers(
            of: endpoint, names: replicas.map(\.name).filter { outcome.notFollowing[$0] == nil }, started: started, progress: progress)
        outcome.following = streaming.following
        outcome.notFollowing.merge(streaming.missing) { first, _ in first }
        outcome.allStreaming = outcome.notFollowing.isEmpty ? streaming.after : nil
        return outcome
    }

    // MARK: Through Patroni

    static func promoteThroughPatroni(
        _ endpoint: NodeEndpoint, patroni: PatroniSettings, configuration: ClusterConfiguration, progress: @Sendable (String) -> Void
    ) async throws -> PromotionOutcome {
        let node = endpoint.name
        let client = patroni.client
        let monitor = ClusterMonitor(nodes: configuration.nodes, settings: ClusterMonitor.Settings(configuration))
        let topology = await monitor.probeNow()
        await monitor.stop()
        guard let view = topology.patroni, view.error == nil else {
            throw PromotionError(
                message: "Patroni does not answer (\(topology.patroni?.error ?? "no view")): refusing to promote \(node) behind its back")
        }
        guard let member = view.member(forNode: node) else {
            throw PromotionError(message: "\(node) is not a Patroni member (members: \(view.members.map(\.name).joined(separator: ", ")))")
        }
        if member.isLeader { throw PromotionError(message: "\(node) is already Patroni's leader") }
        if member.noFailover { throw PromotionError(message: "\(node) is tagged nofailover: Patroni will not promote it") }
        guard topology.node(node)?.reachable == true else {
            throw PromotionError(message: "\(node) is not reachable: \(topology.node(node)?.error ?? "no answer")")
        }
        // In synchronous mode Patroni promotes only its synchronous standbys; right after a
        // switchover it names them again one loop at a time.
        if (try? await client.dynamicConfiguration().synchronousMode) == true && member.role != "sync_standby" {
            progress("waiting for Patroni to make \(node) a synchronous standby (synchronous_mode)")
            let deadline = ContinuousClock.now + .seconds(60)
            var role = member.role
            while role != "sync_standby" && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))
                role = (try? await client.cluster().members.first { $0.name == member.name }?.role) ?? role
            }
            guard role == "sync_standby" else {
                throw PromotionError(
                    message: "Patroni runs in synchronous_mode and \(node) is not a synchronous standby (\(role)): Patroni promotes only those")
            }
        }
        // A healthy leader hands over (switchover); without one, Patroni is asked to fail over.
        let leader = view.members.first(where: \.isLeader)
        let leaderHealthy = leader.map { leader in
            ["running", "streaming"].contains(leader.state) && leader.node.flatMap { topology.node($0) }?.reachable == true
                && leader.node.flatMap { topology.node($0) }?.role == .primary
        } ?? false
        let started = ContinuousClock.now
        let method: PromotionOutcome.Method = (leader != nil && leaderHealthy) ? .switchover : .failover
        /// The POST went unanswered: whether it happened is read from the cluster below.
        var unanswered: String?
        do {
            if let leader, leaderHealthy {
                progress("Patroni switchover: \(leader.name) → \(member.name)")
                let answer = try await client.switchover(leader: leader.name, candidate: member.name)
                progress("Patroni: \(answer)")
                // Patroni may hand over to another member when the candidate was too slow
                // to take the leader key ("Switched over to X instead of Y"): say so now.
                if answer.contains("instead of") {
                    throw PromotionError(message: "Patroni did not promote \(node): \(answer)")
                }
            } else {
                progress("Patroni failover to \(member.name) (no healthy leader\(leader.map { ": \($0.name) \($0.state)" } ?? ""))")
                let answer = try await client.failover(candidate: member.name)
                progress("Patroni: \(answer)")
            }
        } catch let error as PatroniError where error.kind == .noAnswer {
            unanswered = error.message
            progress("Patroni did not answer (\(error.message)); reading the cluster's state to see whether \(node) took over")
        } catch let error as PatroniError {
            throw PromotionError(message: "Patroni refused: \(error.message)")
        }
        // Leads (Patroni) and is out of recovery (the node itself).
        let deadline = started + .seconds(90)
        while true {
            let leads = (try? await client.cluster().leader?.name) == member.name
            let writable = leads ? ((try? await withConnection(endpoint) { try await $0.query("select pg_is_in_recovery()").scalar(Bool.self) }) == false) : false
            if writable { break }
            guard ContinuousClock.now < deadline else {
                if let unanswered {
                    let current = (try? await client.cluster().leader?.name).map { "Patroni's leader is \($0)" } ?? "Patroni names no leader"
                    throw PromotionError(
                        message: "the \(method.rawValue) was sent once and not answered (\(unanswered)); \(node) does not lead 90 s later: \(current)")
                }
                throw PromotionError(message: "\(node) does not lead and accept writes 90 s after the \(method.rawValue)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        var outcome = PromotionOutcome(node: node, method: method, acceptingWrites: ContinuousClock.now - started)
        progress("\(node) leads and accepts writes after \(formatDuration(outcome.acceptingWrites))")
        let others = view.members.filter { $0.name != member.name && ["running", "streaming"].contains($0.state) }.map(\.name)
        let streaming = await waitForFollowers(of: endpoint, names: others, started: started, progress: progress)
        outcome.following = streaming.following
        outcome.notFollowing = streaming.missing
        outcome.allStreaming = streaming.missing.isEmpty ? streaming.after : nil
        // Patroni's own record catches up a loop or two later.
        let settled = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < settled {
            if let members = try? await client.cluster().members,
                members.filter({ others.contains($0.name) }).allSatisfy({ ["running", "streaming"].contains($0.state) })
            {
                progress("Patroni reports every member running after \(formatDuration(ContinuousClock.now - started))")
                break
            }
            try? await Task.sleep(for: .milliseconds(200))
        }
        return outcome
    }

    // MARK: Helpers

    /// Waits up to 60 s until every name streams from `primary` (its `pg_stat_replication`,
    /// by application name).
    static func waitForFollowers(
        of primary: NodeEndpoint, names: [String], started: ContinuousClock.Instant, progress: @Sendable (String) -> Void
    ) async -> (following: [String], missing: [String: String], after: Duration) {
        guard !names.isEmpty else { return ([], [:], ContinuousClock.now - started) }
        progress("waiting for \(names.joined(separator: ", ")) to stream from \(primary.name)")
        let deadline = ContinuousClock.now + .seconds(60)
        var streaming = Set<String>()
        while ContinuousClock.now < deadline {
            let rows = try? await withConnection(primary) { connection in
                try await connection.query("select coalesce(application_name, '') from pg_stat_replication where state = 'streaming'")
                    .rows.map { try $0.decode(0, as: String.self) }
            }
            streaming = Set(rows ?? [])
            if names.allSatisfy(streaming.contains) { break }
            try? await Task.sleep(for: .milliseconds(100))
        }
        let after = ContinuousClock.now - started
        let following = names.filter(streaming.contains)
        let missing = Dictionary(uniqueKeysWithValues: names.filter { !streaming.contains($0) }.map { ($0, "not streaming from \(primary.name) after 60 s") })
        if missing.isEmpty { progress("\(following.joined(separator: ", ")) \(following.count == 1 ? "streams" : "stream") from \(primary.name) after \(formatDuration(after))") }
        return (following, missing, after)
    }

    /// Points `replica`'s WAL receiver at `primary`: its `primary_conninfo` with the new
    /// host and port (user, password and the rest kept), `ALTER SYSTEM` and a reload.
    static func repoint(_ replica: NodeEndpoint, to primary: NodeEndpoint) async throws {
        let target = Conninfo.parse(primary.monitorConninfo) ?? []
        func value(_ key: String) -> String? { target.first { $0.key == key }?.value }
        let host = value("host") ?? value("hostaddr") ?? "localhost"
        let port = value("port") ?? "5432"
        try await withConnection(replica) { connection in
            guard try await connection.query("select pg_is_in_recovery()").scalar(Bool.self) == true else {
                throw PromotionError(message: "\(replica.name) is not a replica")
            }
            let current = try await connection.query("select setting from pg_settings where name = 'primary_conninfo'").scalar(String.self) ?? ""
            var pairs = (Conninfo.parse(current) ?? []).filter { !["host", "hostaddr", "port"].contains($0.key) }.map { ($0.key, $0.value) }
            // The new primary knows it by name in pg_stat_replication.
            if !pairs.contains(where: { $0.0 == "application_name" }) { pairs.append(("application_name", replica.name)) }
            let repointed = ([("host", host), ("port", port)] + pairs)
                .map { "\($0.0)=\(Conninfo.quoted($0.1))" }.joined(separator: " ")
            let statement = try await connection.query("select format('alter system set primary_conninfo = %L', $1::text)", [repointed])
                .scalar(String.self) ?? ""
            _ = try await connection.query(statement)
            _ = try await connection.query("select pg_reload_conf()")
        }
    }

    static func withConnection<T: Sendable>(_ node: NodeEndpoint, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        let connection = try await PostgresConnection.connect(
            node.monitorConninfo, label: node.name,
            options: ConnectOptions(connectTimeout: .seconds(5), statementTimeout: .seconds(70), fallbackApplicationName: "switchyard promote"))
        return try await connection.closing(body)
    }

    static func describe(_ error: Error) -> String { (error as? PostgresError)?.message ?? "\(error)" }

}
