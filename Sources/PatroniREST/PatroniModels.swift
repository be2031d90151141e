import Foundation

/// `GET /cluster`: every member as Patroni sees it.
public struct PatroniClusterStatus: Sendable, Equatable, Decodable {
    public var members: [PatroniMember]
    /// The cluster is in maintenance mode: Patroni neither fails over nor fixes anything.
    public var paused: Bool
    /// A switchover Patroni has scheduled, if any (`scheduled_at`).
    public var scheduledSwitchover: String?

    public init(members: [PatroniMember], paused: Bool = false, scheduledSwitchover: String? = nil) {
        self.members = members
        self.paused = paused
        self.scheduledSwitchover = scheduledSwitchover
    }

    /// The member holding the leader key, if any.
    public var leader: PatroniMember? { members.first { $0.isLeader } }

    enum CodingKeys: String, CodingKey { case members, pause, scheduled_switchover }

    struct Scheduled: Decodable { var at: String?; enum CodingKeys: String, CodingKey { case at = "at" } }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        members = try container.decodeIfPresent([PatroniMember].self, forKey: .members) ?? []
        paused = try container.decodeIfPresent(Bool.self, forKey: .pause) ?? false
        scheduledSwitchover = try? container.decodeIfPresent(Scheduled.self, forKey: .scheduled_switchover)?.at
    }
}

/// One member in `/cluster`.
public struct PatroniMember: Sendable, Equatable, Decodable {
    public var name: String
    /// `leader`, `replica`, `sync_standby`, `standby_leader`.
    public var role: String
    /// `running`, `streaming` (newer Patroni), `stopped`, `starting`, `crashed`, `start failed`, …
    public var state: String
    public var host: String?
    public var port: Int?
    public var apiURL: String?
    public var timeline: Int?
    /// Bytes behind the leader as Patroni measured it; nil when Patroni says "unknown".
    public var lagBytes: Int?
    public var pendingRestart: Bool
    /// `tags.nofailover`: Patroni never promotes this member.
    public var noFailover: Bool

    public init(
        name: String, role: String, state: String, host: String? = nil, port: Int? = nil, apiURL: String? = nil, timeline: Int? = nil,
        lagBytes: Int? = nil, pendingRestart: Bool = false, noFailover: Bool = false
    ) {
        self.name = name
        self.role = role
        self.state = state
        self.host = host
        self.port = port
        self.apiURL = apiURL
        self.timeline = timeline
        self.lagBytes = lagBytes
        self.pendingRestart = pendingRestart
        self.noFailover = noFailover
    }

    public var isLeader: Bool { role == "leader" || role == "standby_leader" || role == "master" || role == "primary" }

    /// `host:port`, how a configured node is matched to a member when names differ.
    public var endpoint: String? { host.flatMap { host in port.map { "\(host):\($0)" } } }

    enum CodingKeys: String, CodingKey { case name, role, state, host, port, api_url, timeline, lag, pending_restart, tags }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        role = try container.decodeIfPresent(String.self, forKey: .role) ?? "unknown"
        state = try container.decodeIfPresent(String.self, forKey: .state) ?? "unknown"
        host = try? container.decodeIfPresent(String.self, forKey: .host)
        port = try? container.decodeIfPresent(Int.self, forKey: .port)
        apiURL = try? container.decodeIfPresent(String.self, forKey: .api_url)
        timeline = try? container.decodeIfPresent(Int.self, forKey: .timeline)
        // A number, or the string "unknown".
        lagBytes = try? container.decodeIfPresent(Int.self, forKey: .lag)
        pendingRestart = (try? container.decodeIfPresent(Bool.self, forKey: .pending_restart)) ?? false
        let tags = try? container.decodeIfPresent([String: FlexibleValue].self, forKey: .tags)
        noFailover = tags?["nofailover"]?.isTrue ?? false
    }
}

/// `GET /patroni`: one member's view of itself.
public struct PatroniMemberStatus: Sendable, Equatable, Decodable {
    /// `running`, `stopped`, `starting`, …
    public var state: String
    /// `master`/`primary` or `replica`.
    public var role: String
    public var timeline: Int?
    /// The WAL senders of a primary: who streams from it.
    public var replication: [PatroniReplication]
    public var paused: Bool
    public var pendingRestart: Bool
    public var scope: String?
    public var version: String?

    public init(state: String, role: String, timeline: Int? = nil, replication: [PatroniReplication] = [], paused: Bool = false) {
        self.state = state
        self.role = role
        self.timeline = timeline
        self.replication = replication
        self.paused = paused
        self.pendingRestart = false
    }

    public var isPrimary: Bool { role == "master" || role == "primary" }

    enum CodingKeys: String, CodingKey { case state, role, timeline, replication, pause, pending_restart, patroni }
    struct About: Decodable { var version: String?; var scope: String? }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        state = try container.decodeIfPresent(String.self, forKey: .state) ?? "unknown"
        role = try container.decodeIfPresent(String.self, forKey: .role) ?? "unknown"
        timeline = try? container.decodeIfPresent(Int.self, forKey: .timeline)
        replication = (try? container.decodeIfPresent([PatroniReplication].self, forKey: .replication)) ?? []
        paused = (try? container.decodeIfPresent(Bool.self, forKey: .pause)) ?? false
        pendingRestart = (try? container.decodeIfPresent(Bool.self, forKey: .pending_restart)) ?? false
        let about = try? container.decodeIfPresent(About.self, forKey: .patroni)
        scope = about?.scope
        version = about?.version
    }
}

/// One WAL sender in a primary's `/patroni` answer (its `pg_stat_replication`).
public struct PatroniReplication: Sendable, Equatable, Decodable {
    public var applicationName: String
    public var state: String?
    public var syncState: String?

    public init(applicationName: String, state: String?, syncState: String? = nil) {
        self.applicationName = applicationName
        self.state = state
        self.syncState = syncState
    }

    enum CodingKeys: String, CodingKey { case application_name, state, sync_state }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        applicationName = (try? container.decodeIfPresent(String.self, forKey: .application_name)) ?? ""
        state = try? container.decodeIfPresent(String.self, forKey: .state)
        syncState = try? container.decodeIfPresent(String.self, forKey: .sync_state)
    }
}

/// One line of `/history`: the timeline that ended, where, why, when, and who led next.
public struct PatroniHistoryEntry: Sendable, Equatable {
    public var timeline: Int
    public var lsn: UInt64
    public var reason: String
    public var time: String?
    public var newLeader: String?

    public init(timeline: Int, lsn: UInt64, reason: String, time: String? = nil, newLeader: String? = nil) {
        self.timeline = timeline
        self.lsn = lsn
        self.reason = reason
        self.time = time
        self.newLeader = newLeader
    }

    /// `[[timeline, lsn, reason, time, new_leader], …]` (the last two are missing in old entries).
    package static func decodeList(_ data: Data, from endpoint: URL) throws -> [PatroniHistoryEntry] {
        guard let rows = (try? JSONSerialization.jsonObject(with: data)) as? [[Any]] else {
            throw PatroniError(.badAnswer, "\(PatroniClient.describe(endpoint))/history is not a list of lists")
        }
        return rows.compactMap { row in
            guard row.count >= 3, let timeline = (row[0] as? NSNumber)?.intValue, let lsn = (row[1] as? NSNumber)?.uint64Value else {
                return nil
            }
            return PatroniHistoryEntry(
                timeline: timeline, lsn: lsn, reason: row[2] as? String ?? "", time: row.count > 3 ? row[3] as? String : nil,
                newLeader: row.count > 4 ? row[4] as? String : nil)
        }
    }
}

/// The parts of `GET /config` that failover decisions read.
public struct PatroniDynamicConfiguration: Sendable, Equatable, Decodable {
    /// A replica further behind than this many bytes is never promoted by Patroni.
    public var maximumLagOnFailover: Int?
    public var synchronousMode: Bool
    public var paused: Bool
    public var loopWait: Int?
    public var ttl: Int?

    public init(maximumLagOnFailover: Int? = nil, synchronousMode: Bool = false, paused: Bool = false) {
        self.maximumLagOnFailover = maximumLagOnFailover
        self.synchronousMode = synchronousMode
        self.paused = paused
    }

    enum CodingKeys: String, CodingKey { case maximum_lag_on_failover, synchronous_mode, pause, loop_wait, ttl }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        maximumLagOnFailover = try? container.decodeIfPresent(Int.self, forKey: .maximum_lag_on_failover)
        synchronousMode = (try? container.decodeIfPresent(FlexibleValue.self, forKey: .synchronous_mode))??.isTrue ?? false
        paused = (try? container.decodeIfPresent(FlexibleValue.self, forKey: .pause))??.isTrue ?? false
        loopWait = try? container.decodeIfPresent(Int.self, forKey: .loop_wait)
        ttl = try? container.decodeIfPresent(Int.self, forKey: .ttl)
    }
}

/// A tag or setting Patroni may give as a bool, a string or a number.
struct FlexibleValue: Decodable, Sendable, Equatable {
    var isTrue: Bool

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let bool = try? container.decode(Bool.self) {
            isTrue = bool
        } else if let string = try? container.decode(String.self) {
            isTrue = ["true", "on", "yes", "1"].contains(string.lowercased())
        } else if let number = try? container.decode(Int.self) {
            isTrue = number != 0
        } else {
            isTrue = false
        }
    }
}
