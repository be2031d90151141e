import Foundation
import PatroniREST
import PostgresClient

/// `[patroni]` in the config file.
public struct PatroniSettings: Sendable, Equatable {
    /// REST URLs of the members (any one answers for the cluster).
    public var endpoints: [URL]
    /// How long one REST call may take (default 2 s).
    public var timeout: Duration = .seconds(2)
    /// Patroni's `restapi.authentication`, if it asks for one.
    public var username: String?
    public var password: String?

    public init(endpoints: [URL]) { self.endpoints = endpoints }

    public var client: PatroniClient {
        PatroniClient(
            endpoints: endpoints, timeout: timeout,
            credentials: username.flatMap { user in password.map { PatroniClient.Credentials(username: user, password: $0) } })
    }

    /// A URL as text with any password in it replaced (for error messages).
    static func redacted(_ text: String) -> String {
        guard var components = URLComponents(string: text), components.password != nil else { return text }
        components.password = "xxxxx"
        return components.string ?? "(unparseable URL)"
    }
}

/// Patroni's view of the cluster from one monitor round, beside what the nodes say of
/// themselves.
public struct PatroniView: Sendable, Equatable, Codable {
    public struct Member: Sendable, Equatable, Codable {
        public var name: String
        /// The configured node this member is (by name, else by host:port).
        public var node: String?
        public var role: String
        public var state: String
        public var timeline: Int?
        public var lagBytes: Int?
        public var pendingRestart: Bool
        public var noFailover: Bool

        public init(name: String, node: String?, role: String, state: String, timeline: Int? = nil, lagBytes: Int? = nil,
                    pendingRestart: Bool = false, noFailover: Bool = false) {
            self.name = name
            self.node = node
            self.role = role
            self.state = state
            self.timeline = timeline
            self.lagBytes = lagBytes
            self.pendingRestart = pendingRestart
            self.noFailover = noFailover
        }

        public var isLeader: Bool { ["leader", "standby_leader", "master", "primary"].contains(role) }
        /// `replica running`, `leader running`, …
        public var summary: String { "\(role) \(state)" }
    }

    /// Empty when Patroni could not be read.
    public var members: [Member]
    /// The member name holding the leader key.
    public var leader: String?
    /// Maintenance mode: Patroni neither fails over nor repairs anything.
    public var paused: Bool
    /// Why Patroni could not be read this round.
    public var error: String?

    public init(members: [Member], leader: String?, paused: Bool, error: String? = nil) {
        self.members = members
        self.leader = leader
        self.paused = paused
        self.error = error
    }

    /// The member that is configured node `node`.
    public func member(forNode node: String) -> Member? { members.first { $0.node == node } }

    /// The configured node holding the leader key.
    public var leaderNode: String? { leader.flatMap { name in members.first { $0.name == name }?.node } }

    /// Builds the view from `/cluster`, matching members to configured nodes by name, else
    /// by `host:port` (`endpoints`: node name → endpoint of its conninfo).
    public static func from(_ status: PatroniClusterStatus, endpoints: [(name: String, endpoint: String)]) -> PatroniView {
        let names = Set(endpoints.map(\.name))
        let members = status.members.map { member in
            let node = names.contains(member.name) ? member.name : endpoints.first { $0.endpoint == member.endpoint }?.name
            return Member(
                name: member.name, node: node, role: member.role, state: member.state, timeline: member.timeline, lagBytes: member.lagBytes,
                pendingRestart: member.pendingRestart, noFailover: member.noFailover)
        }
        return PatroniView(members: members, leader: status.leader?.name, paused: status.paused)
    }

    public static func unreachable(_ error: String) -> PatroniView {
        PatroniView(members: [], leader: nil, paused: false, error: error)
    }

    /// Where Patroni and `node` itself disagree about the node's role or stream, in a few
    /// words (nil when they agree or Patroni does not know the node).
    public func disagreement(for node: NodeState) -> String? {
        guard error == nil, let member = member(forNode: node.name), node.reachable else { return nil }
        let running = ["running", "streaming"].contains(member.state)
        if member.isLeader && node.role != .primary { return "Patroni: leader, node in recovery" }
        if !member.isLeader && node.role == .primary { return "Patroni: \(member.summary), node is primary" }
        if !member.isLeader && running && node.walReceiverStatus != "streaming" && node.walReceiverStatus != "unknown" {
            return "Patroni: \(member.summary), node not streaming"
        }
        return nil
    }

    /// Primaries that must not take writes because Patroni, answering, disagrees: a node
    /// out of recovery that does not hold the leader key (promoted behind Patroni's back,
    /// or an old leader Patroni is demoting). Probing alone decides who is primary;
    /// Patroni can only take that away. Pure.
    public func fenced(_ nodes: [NodeState]) -> [String: String] {
        guard error == nil else { return [:] }
        var fenced: [String: String] = [:]
        for node in nodes where node.reachable && node.role == .primary {
            if let leaderNode {
                if leaderNode != node.name { fenced[node.name] = "Patroni's leader is \(leaderNode), not \(node.name)" }
            } else if let leader {
                fenced[node.name] = "Patroni's leader \(leader) is not a configured node"
            } else {
                fenced[node.name] = "Patroni has no leader (election under way)"
            }
        }
        return fenced
    }
}

extension PatroniClient {
    /// `/cluster` as a ``PatroniView`` (an unreachable view when no endpoint answers).
    func view(endpoints: [(name: String, endpoint: String)]) async -> PatroniView {
        do {
            return PatroniView.from(try await cluster(), endpoints: endpoints)
        } catch let error as PatroniError {
            return .unreachable(error.message)
        } catch {
            return .unreachable("\(error)")
        }
    }
}
