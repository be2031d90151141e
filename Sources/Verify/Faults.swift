import Foundation
import LocalCluster
import PostgresClient

/// The faults `switchyard verify` injects into a local cluster, each with a start and an
/// end (the cluster is healthy again after the end).
public enum Fault: String, CaseIterable, Sendable, Codable {
    /// `kill -9` of a replica's postmaster, then a start (crash recovery).
    case killReplica = "kill-replica"
    /// A clean stop of a replica, then a start.
    case stopReplica = "stop-replica"
    /// A replica replays WAL late (`recovery_min_apply_delay`), then on time again.
    case delayReplica = "delay-replica"
    /// A replica's replay paused, then resumed.
    case pauseReplay = "pause-replay"
    /// A replica's packets dropped (nftables on its port): silence, not a refused
    /// connection, as a partition or a dead host looks.
    case blackholeReplica = "blackhole-replica"
    /// Clients carry a planted token cookie beside their real one (ahead of the primary,
    /// or ancient), as a sibling subdomain can plant it.
    case cookieToss = "cookie-toss"
    /// `pg_promote()` on a replica while the primary runs on (plain clusters): split
    /// brain until the monitor sees two primaries. Healed by stopping the old primary and
    /// rejoining it and the other replicas under the promoted one (`pg_rewind`): what the
    /// old primary acknowledged after the promotion is lost, and counted.
    case promoteReplica = "promote-replica"
    /// Patroni clusters: a switchover from the leader to a replica (`POST /switchover`),
    /// healed when every member streams from the new leader. No acknowledged write may be lost.
    case switchover
    /// Patroni clusters: the leader's Patroni and server killed (SIGKILL, immediate stop);
    /// Patroni fails over once the leader key expires, and the old leader rejoins when
    /// started again. Whether acknowledged writes survive depends on the replication mode
    /// (none lost in synchronous mode): losses are counted and explained, not violations.
    case killLeader = "kill-leader"
    /// A replica's PgBouncer stopped (its connections close at once), then started:
    /// for clusters whose app traffic goes through the bouncers (`cluster up --pgbouncer`).
    case restartBouncer = "restart-bouncer"

    /// Acknowledged writes may be lost while it lasts: losses are counted, not violations.
    var mayLoseWrites: Bool { self == .promoteReplica || self == .killLeader }

    /// The fault acts on the primary (else on a replica).
    var targetsPrimary: Bool { self == .switchover || self == .killLeader }

    /// Faults that need Patroni, and those a Patroni cluster does not take (Patroni itself
    /// would repair them behind the schedule's back).
    var needsPatroni: Bool { self == .switchover || self == .killLeader }
    var plainOnly: Bool { self == .promoteReplica || self == .killReplica }

    /// How long the fault lasts at most.
    var hold: Duration {
        switch self {
        case .killReplica, .stopReplica: .seconds(2)
        case .delayReplica, .pauseReplay: .seconds(3)
        case .blackholeReplica: .seconds(5)
        case .cookieToss: .seconds(4)
        case .promoteReplica: .seconds(3)
        case .switchover: .seconds(1)
        case .killLeader: .seconds(14)
        case .restartBouncer: .seconds(2)
        }
    }

    /// Parses `--faults a,b,c`; names what it does not know.
    public static func parse(_ list: String) throws -> [Fault] {
        var faults: [Fault] = []
        for name in list.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !name.isEmpty {
            guard let fault = Fault(rawValue: name) else {
                throw VerifyError("unknown fault \"\(name)\"; known: \(Fault.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if !faults.contains(fault) { faults.append(fault) }
        }
        return faults
    }
}

public struct VerifyError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Injects and heals faults on the nodes of a local cluster.
struct FaultInjector: Sendable {
    let local: LocalCluster
    /// Whether the cookie-toss fault is on (read by the clients).
    let tossing: Flag

    /// Starts `fault` on `node` (a replica of `primary`, beside `others`); returns what heals it.
    func inject(_ fault: Fault, on node: LocalNode, primary: LocalNode, others: [LocalNode]) async throws
        -> @Sendable () async throws -> Void
    {
        switch fault {
        case .restartBouncer:
            guard node.bouncerPort != nil else { throw VerifyError("restart-bouncer needs bouncers: cluster up --pgbouncer") }
            try await local.stopBouncer(node: node.name)
            return { try await self.local.startBouncer(node: node.name) }
        case .switchover:
            _ = try await local.patroniClient().switchover(leader: primary.name, candidate: others.first?.name ?? node.name)
            return { try await self.local.waitUntilPatroniHealthy() }
        case .killLeader:
            try await local.stop(node: primary.name, mode: .immediate)
            return {
                try await self.local.start(node: primary.name)
                try await self.local.waitUntilPatroniHealthy()
            }
        case .promoteReplica:
            try await sql(node, "select pg_catalog.pg_promote()")
            return {
                // The promoted node wins; the old primary and the other replicas follow it.
                try await self.local.stop(node: primary.name, mode: .fast)
                for other in others {
                    do { try await self.local.rejoin(node: other.name) } catch let error as LocalClusterError where "\(error)".contains("already") {}
                }
                try await self.local.rejoin(node: primary.name)
            }
        case .killReplica:
            let pidFile = local.dataDirectory(node).appendingPathComponent("postmaster.pid").path
            let text = try String(contentsOfFile: pidFile, encoding: .utf8)
            guard let pid = text.split(separator: "\n").first.flatMap({ pid_t($0) }) else { throw VerifyError("no postmaster pid for \(node.name)") }
            kill(pid, SIGKILL)
            return { try await self.startWhenGone(node) }
        case .stopReplica:
            try await local.stop(node: node.name, mode: .fast)
            return { try await self.local.start(node: node.name) }
        case .delayReplica:
            try await local.delay(node: node.name, milliseconds: 800)
            return { try await self.local.delay(node: node.name, milliseconds: 0) }
        case .pauseReplay:
            try await sql(node, "select pg_catalog.pg_wal_replay_pause()")
            return { try await self.sql(node, "select pg_catalog.pg_wal_replay_resume()") }
        case .blackholeReplica:
            try await Blackhole.drop(port: node.port)
            return { try await Blackhole.restore(port: node.port) }
        case .cookieToss:
            tossing.set(true)
            return { self.tossing.set(false) }
        }
    }

    private func sql(_ node: LocalNode, _ statement: String) async throws {
        let connection = try await PostgresConnection.connect(
            local.conninfo(for: node), label: node.name, options: ConnectOptions(connectTimeout: .seconds(5), statementBound: .seconds(10)))
        try await connection.closing { _ = try await $0.query(statement) }
    }

    /// A killed postmaster's children exit on their own; start once its pid file is free.
    private func startWhenGone(_ node: LocalNode) async throws {
        for _ in 0..<50 {
            do {
                try await local.start(node: node.name)
                return
            } catch {
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        try await local.start(node: node.name)
    }
}

/// Drops every packet to and from a local port with nftables (one table of our own,
/// removed on restore): a node behind it answers nothing.
enum Blackhole {
    static func table(_ port: Int) -> String { "switchyard_blackhole_\(port)" }

    static func drop(port: Int) async throws {
        let table = table(port)
        let script = """
            table inet \(table) {
              chain output {
                type filter hook output priority -10; policy accept;
                tcp dport \(port) drop
                tcp sport \(port) drop
              }
            }
            """
        try await nft(["-f", "-"], input: script)
    }

    static func restore(port: Int) async throws {
        try await nft(["delete", "table", "inet", table(port)])
    }

    private static func nft(_ arguments: [String], input: String? = nil) async throws {
        guard let nft = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw VerifyError("blackhole-replica needs nftables (apt-get install nftables) and root")
        }
        var argv = [nft] + arguments
        if let input {
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-nft-\(UUID().uuidString).nft")
            let descriptor = open(file.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard descriptor >= 0 else { throw VerifyError("cannot create \(file.path)") }
            _ = input.utf8CString.withUnsafeBufferPointer { write(descriptor, $0.baseAddress, $0.count - 1) }
            close(descriptor)
            argv = [nft, "-f", file.path]
            defer { unlink(file.path) }
            let result = try await ChildProcess.run(argv)
            guard result.status == 0 else { throw VerifyError("nft failed: \(result.output.prefix(300))") }
            return
        }
        let result = try await ChildProcess.run(argv)
        guard result.status == 0 else { throw VerifyError("nft failed: \(result.output.prefix(300))") }
    }
}

/// A flag shared between the fault schedule and the clients.
final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set(_ value: Bool) { lock.withLock { self.value = value } }
    var isSet: Bool { lock.withLock { value } }
}
