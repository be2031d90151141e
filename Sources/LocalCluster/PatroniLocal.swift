import Foundation
import PatroniREST
import PostgresClient

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Clusters made with `cluster up --ha patroni`: a single-node etcd (v3 API) and one
/// Patroni per node, from Debian's `patroni` and `etcd-server` packages.
///
/// Layout of `D` besides the plain cluster's: `D/etcd/` (data, `etcd.log`, `etcd.pid`) and
/// per node `D/pgN/patroni.yml` (0600: it holds the replication password),
/// `D/pgN/patroni.log`, `D/pgN/patroni.pid`, `D/pgN/local.conf` (included by the server's
/// configuration: `cluster delay` writes there, where Patroni leaves it alone). Ports: the
/// servers on P…P+N, Patroni's REST APIs on P+N+1…P+2N+1, etcd on P+2N+2 (clients) and
/// P+2N+3 (peers). The cluster is synchronous (Patroni's `synchronous_mode`, every replica a
/// synchronous standby): a failover never loses a commit that was acknowledged.
extension LocalCluster {
    /// An HA engine managing the nodes.
    public enum Engine: String, Sendable, CaseIterable {
        case patroni
    }

    /// The engine recorded in the folder's `cluster.json` (nil: plain cluster or none).
    public var engine: Engine? { (try? manifest())?.patroni != nil ? .patroni : nil }

    /// Each node's Patroni REST endpoint, in node order.
    public func patroniEndpoints() throws -> [URL] { try nodes().compactMap(\.restURL) }

    /// A client for this cluster's Patroni members.
    public func patroniClient() throws -> PatroniClient { PatroniClient(endpoints: try patroniEndpoints()) }

    static let patroniScope = "local"
    static let replicationUser = "replicator"

    var etcdFolder: URL { directory.appendingPathComponent("etcd") }
    func nodeFolder(_ node: LocalNode) -> URL { directory.appendingPathComponent(node.name) }
    func patroniConfigFile(_ node: LocalNode) -> URL { nodeFolder(node).appendingPathComponent("patroni.yml") }
    func patroniLogFile(_ node: LocalNode) -> URL { nodeFolder(node).appendingPathComponent("patroni.log") }
    func patroniPidFile(_ node: LocalNode) -> URL { nodeFolder(node).appendingPathComponent("patroni.pid") }
    /// Settings of ours Patroni includes in the server's configuration.
    func localSettingsFile(_ node: LocalNode) -> URL { nodeFolder(node).appendingPathComponent("local.conf") }

    /// Patroni and etcd, or an error that says how to install them.
    static func patroniPrograms() throws -> (patroni: String, etcd: String) {
        let patroni = Daemon.locate("patroni")
        let etcd = Daemon.locate("etcd")
        guard let patroni, let etcd else {
            let missing = [patroni == nil ? "patroni" : nil, etcd == nil ? "etcd" : nil].compactMap { $0 }
            throw LocalClusterError(
                .binariesNotFound,
                "\(missing.joined(separator: " and ")) not found: `--ha patroni` needs them "
                    + "(Debian/Ubuntu: apt-get install --no-install-recommends patroni etcd-server)")
        }
        return (patroni, etcd)
    }

    // MARK: up

    func createPatroni(binaries: PostgresBinaries, basePort: Int, replicas: Int, progress: @Sendable (String) -> Void) async throws
        -> [LocalNodeStatus]
    {
        let programs = try Self.patroniPrograms()
        let count = replicas + 1
        guard basePort + 2 * count + 1 <= 65535 else {
            throw LocalClusterError(.invalidArgument, "port \(basePort) is too high: a Patroni cluster needs \(2 * count + 2) ports from it")
        }
        let nodes = (0..<count).map { LocalNode(name: "pg\($0 + 1)", port: basePort + $0, restPort: basePort + count + $0) }
        let etcd = PatroniManifest(scope: Self.patroniScope, etcdClientPort: basePort + 2 * count, etcdPeerPort: basePort + 2 * count + 1)
        let ports = nodes.flatMap { [$0.port, $0.restPort!] } + [etcd.etcdClientPort, etcd.etcdPeerPort]
        for port in ports where !PortCheck.isFree(port) {
            throw LocalClusterError(
                .portInUse, "port \(port) on 127.0.0.1 is already in use (a Patroni cluster on \(basePort) needs \(basePort)-\(basePort + ports.count - 1)); choose another base port with --port")
        }
        let runner = try prepareDirectory()
        for node in nodes where FileManager.default.fileExists(atPath: nodeFolder(node).path) {
            throw LocalClusterError(
                .directoryNotUsable, "\(directory.path) already holds \(node.name)/ but no cluster.json: remove the folder or choose another --dir")
        }
        let manifest = ClusterManifest(database: database, user: user, host: host, nodes: nodes, patroni: etcd)
        do {
            let password = try writePassfile()
            let replicationPassword = Self.newPassword()
            for node in nodes {
                try await makeNodeFolder(node, runner: runner)
                try writePatroniConfig(node, manifest: manifest, binaries: binaries, password: password, replicationPassword: replicationPassword, runner: runner)
            }
            try writeManifest(manifest)
            progress("etcd on ports \(etcd.etcdClientPort)/\(etcd.etcdPeerPort)")
            try await startEtcd(manifest, program: programs.etcd)
            // The first node alone until it leads, so pg1 is the leader.
            progress("patroni \(nodes[0].name) (bootstrap: initdb, then leader)")
            // A Patroni that vanished before saying anything is started once more.
            for attempt in 1...2 {
                try await startPatroni(nodes[0], program: programs.patroni, binaries: binaries, runner: runner)
                do {
                    try await waitUntil(timeout: .seconds(120), what: "\(nodes[0].name) to become Patroni's leader", nodes[0]) {
                        try await PatroniClient(endpoints: [nodes[0].restURL!]).isLeader(at: nodes[0].restURL!)
                    }
                    break
                } catch let error as LocalClusterError where attempt == 1 && error.message.hasSuffix("stopped: (no output)") {
                    progress("\(nodes[0].name)'s Patroni vanished at start (\(error.message)); starting it again")
                    try? FileManager.default.removeItem(at: dataDirectory(nodes[0]))
                }
            }
            try await createDatabase(on: nodes[0])
            for node in nodes.dropFirst() {
                progress("patroni \(node.name) (replica, cloned by Patroni)")
                try await startPatroni(node, program: programs.patroni, binaries: binaries, runner: runner)
            }
            progress("waiting for \(replicas) streaming replica\(replicas == 1 ? "" : "s")")
            try await waitForPatroniCluster(nodes, timeout: .seconds(180))
            try writeConfig(nodes, patroni: nodes.compactMap(\.restURL))
        } catch {
            await killPatroniCluster(manifest)
            for node in nodes { try? FileManager.default.removeItem(at: nodeFolder(node)) }
            try? FileManager.default.removeItem(at: etcdFolder)
            try? FileManager.default.removeItem(at: manifestURL)
            throw error
        }
        return try await status()
    }

    func restartPatroni(_ manifest: ClusterManifest, binaries: PostgresBinaries, replicas: Int, progress: @Sendable (String) -> Void)
        async throws -> [LocalNodeStatus]
    {
        guard replicas <= manifest.nodes.count - 1 else {
            throw LocalClusterError(
                .invalidArgument,
                "adding replicas to a Patroni cluster is not supported: it has \(manifest.nodes.count - 1); "
                    + "create a new one with `cluster up --ha patroni --dir NEW --replicas \(replicas)`")
        }
        let programs = try Self.patroniPrograms()
        let runner = try ProcessRunner.forCurrentUser(workingDirectory: directory)
        if Daemon.running(etcdFolder.appendingPathComponent("etcd.pid"), program: "etcd") == nil {
            progress("etcd on ports \(manifest.patroni!.etcdClientPort)/\(manifest.patroni!.etcdPeerPort)")
            try await startEtcd(manifest, program: programs.etcd)
        }
        for node in manifest.nodes where Daemon.running(patroniPidFile(node), program: "patroni") == nil {
            progress("patroni \(node.name)")
            try await startPatroni(node, program: programs.patroni, binaries: binaries, runner: runner)
        }
        try await waitForPatroniCluster(manifest.nodes, timeout: .seconds(180))
        try writeConfig(manifest.nodes, patroni: manifest.nodes.compactMap(\.restURL))
        return try await status()
    }

    private func writePatroniConfig(
        _ node: LocalNode, manifest: ClusterManifest, binaries: PostgresBinaries, password: String, replicationPassword: String,
        runner: ProcessRunner
    ) throws {
        let etcd = manifest.patroni!
        // A TOML basic string (\\, \", \n, \t, \r, \uXXXX) is also a YAML double-quoted scalar.
        func q(_ text: String) -> String { ConfigFile.string(text) }
        let replicas = manifest.nodes.count - 1
        let yaml = """
            # Written by `switchyard cluster up --ha patroni` for a local development cluster.
            scope: \(q(etcd.scope))
            name: \(q(node.name))
            log:
              level: WARNING
            restapi:
              listen: \(q("\(host):\(node.restPort!)"))
              connect_address: \(q("\(host):\(node.restPort!)"))
            etcd3:
              hosts: \(q("\(host):\(etcd.etcdClientPort)"))
            bootstrap:
              dcs:
                ttl: 10
                loop_wait: 2
                retry_timeout: 4
                maximum_lag_on_failover: 1048576
                synchronous_mode: \(replicas > 0 ? "true" : "false")
                synchronous_node_count: \(max(replicas, 1))
                postgresql:
                  use_pg_rewind: true
                  use_slots: true
                  parameters:
                    wal_level: replica
                    hot_standby: "on"
                    hot_standby_feedback: "on"
                    wal_log_hints: "on"
                    max_wal_senders: 10
                    max_replication_slots: 10
                    wal_keep_size: 512MB
                    wal_receiver_status_interval: 1s
                    max_connections: 300
              initdb:
                - encoding: UTF8
                - locale: C.UTF-8
                - data-checksums
            postgresql:
              listen: \(q("\(host):\(node.port)"))
              connect_address: \(q("\(host):\(node.port)"))
              data_dir: \(q(dataDirectory(node).path))
              bin_dir: \(q(binaries.directory.path))
              pgpass: \(q(nodeFolder(node).appendingPathComponent("pgpass.patroni").path))
              custom_conf: \(q(localSettingsFile(node).path))
              basebackup:
                - checkpoint: fast
              authentication:
                superuser:
                  username: \(q(user))
                  password: \(q(password))
                replication:
                  username: \(q(Self.replicationUser))
                  password: \(q(replicationPassword))
              parameters:
                unix_socket_directories: \(q(nodeFolder(node).path))
                fsync: "off"
                shared_buffers: 32MB
                log_line_prefix: "%m [%p] %q%u@%d "
              pg_hba:
                - host replication \(Self.replicationUser) 127.0.0.1/32 scram-sha-256
                - host all all 127.0.0.1/32 scram-sha-256
            watchdog:
              mode: "off"
            tags:
              nofailover: false
              noloadbalance: false
              clonefrom: false
              nosync: false

            """
        let url = patroniConfigFile(node)
        try PrivateFile.write(Data(yaml.utf8), to: url.path)
        try runner.giveToServerUser(url)
        try writeLocalSettings(node, delayMilliseconds: 0, runner: runner)
    }

    /// `D/pgN/local.conf`: settings of ours, read after Patroni's (Patroni leaves a
    /// recovery setting alone when it comes from an included file it does not manage).
    func writeLocalSettings(_ node: LocalNode, delayMilliseconds: Int, runner: ProcessRunner) throws {
        var text = "# Written by switchyard for a local development cluster (cluster delay).\n"
        if delayMilliseconds > 0 { text += "recovery_min_apply_delay = '\(delayMilliseconds)ms'\n" }
        let url = localSettingsFile(node)
        guard FileManager.default.createFile(atPath: url.path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o644]) else {
            throw LocalClusterError(.directoryNotUsable, "cannot write \(url.path)")
        }
        try runner.giveToServerUser(url)
    }

    private func startEtcd(_ manifest: ClusterManifest, program: String) async throws {
        let etcd = manifest.patroni!
        try FileManager.default.createDirectory(at: etcdFolder, withIntermediateDirectories: true)
        let client = "http://\(host):\(etcd.etcdClientPort)", peer = "http://\(host):\(etcd.etcdPeerPort)"
        for port in [etcd.etcdClientPort, etcd.etcdPeerPort] where !PortCheck.isFree(port) {
            throw LocalClusterError(.portInUse, "port \(port) on 127.0.0.1 is already in use; etcd cannot start")
        }
        _ = try await Daemon.start(
            [program, "--name", "etcd1", "--data-dir", etcdFolder.appendingPathComponent("data").path,
             "--listen-client-urls", client, "--advertise-client-urls", client,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", "etcd1=\(peer)", "--initial-cluster-state", "new"],
            log: etcdFolder.appendingPathComponent("etcd.log"), pidFile: etcdFolder.appendingPathComponent("etcd.pid"), user: nil,
            environment: ["PATH": "/usr/bin:/bin", "HOME": NSHomeDirectory(), "LC_ALL": "C.UTF-8"],
            workingDirectory: directory)
        let health = URL(string: "\(client)/health")!
        try await waitUntil(timeout: .seconds(30), what: "etcd to answer on \(client)", nil) {
            guard let data = try? await Self.httpGet(health) else { return false }
            return String(decoding: data, as: UTF8.self).contains("true")
        }
    }

    private func startPatroni(_ node: LocalNode, program: String, binaries: PostgresBinaries, runner: ProcessRunner) async throws {
        guard PortCheck.isFree(node.restPort!) else {
            throw LocalClusterError(.portInUse, "port \(node.restPort!) on 127.0.0.1 is already in use; \(node.name)'s Patroni cannot start")
        }
        let home = runner.serverUser.flatMap { getpwnam($0) }.map { String(cString: $0.pointee.pw_dir) } ?? NSHomeDirectory()
        // A clean environment: Patroni reads PG* and PATRONI_* variables.
        let environment = [
            "HOME": home, "PATH": "\(binaries.directory.path):/usr/bin:/bin", "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
        ]
        let log = patroniLogFile(node)
        if !FileManager.default.fileExists(atPath: log.path) {
            FileManager.default.createFile(atPath: log.path, contents: nil, attributes: [.posixPermissions: 0o600])
            try runner.giveToServerUser(log)
        }
        _ = try await Daemon.start(
            [program, patroniConfigFile(node).path], log: log, pidFile: patroniPidFile(node), user: runner.serverUser,
            environment: environment, workingDirectory: directory)
    }

    /// Waits until Patroni has one leader and every other member streams from it.
    public func waitUntilPatroniHealthy(timeout: Duration = .seconds(60)) async throws {
        try await waitForPatroniCluster(try nodes(), timeout: timeout)
    }

    /// Waits until one member leads and every other one streams from it (confirmed in the
    /// leader's own `pg_stat_replication`, by member name: Patroni 3.0's `/cluster` only
    /// says "running").
    func waitForPatroniCluster(_ nodes: [LocalNode], timeout: Duration) async throws {
        let client = PatroniClient(endpoints: nodes.compactMap(\.restURL))
        var last = "no answer from Patroni"
        try await waitUntil(timeout: timeout, what: "one Patroni leader and \(nodes.count - 1) streaming replicas", nil, detail: { last }) {
            guard let cluster = try? await client.cluster() else { return false }
            guard let leader = cluster.leader, leader.state == "running",
                let url = nodes.first(where: { $0.name == leader.name })?.restURL,
                let status = try? await client.member(at: url)
            else {
                last = "no running leader yet (\(cluster.members.map { "\($0.name): \($0.role) \($0.state)" }.joined(separator: ", ")))"
                return false
            }
            let streaming = Set(status.replication.filter { $0.state == "streaming" }.map(\.applicationName))
            // Patroni's own word too: a member it still calls "creating replica" is not done.
            // In synchronous mode Patroni names its synchronous standbys one loop at a time;
            // only those can be switched over to.
            let running = Set(cluster.members.filter { ($0.state == "running" || $0.state == "streaming") && (nodes.count == 1 || $0.isLeader || $0.role == "sync_standby") }.map(\.name))
            let waiting = nodes.filter { $0.name != leader.name && !(streaming.contains($0.name) && running.contains($0.name)) }.map(\.name)
            last = "leader \(leader.name); not streaming yet: \(waiting.joined(separator: ", "))"
            return waiting.isEmpty
        }
    }

    private func waitUntil(
        timeout: Duration, what: String, _ node: LocalNode?, detail: () -> String = { "" }, _ condition: () async throws -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + timeout
        var missing = 0
        while ContinuousClock.now < deadline {
            if (try? await condition()) == true { return }
            // Gone on three looks in a row (0.4 s), not one: a process in the middle of its
            // execs (setsid → setpriv → python) must not read as stopped.
            if let node, Daemon.running(patroniPidFile(node), program: "patroni") == nil { missing += 1 } else { missing = 0 }
            if let node, missing >= 3 {
                let log = (try? String(contentsOf: patroniLogFile(node), encoding: .utf8)) ?? ""
                let pid = (try? String(contentsOf: patroniPidFile(node), encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
                let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline").map { String(decoding: $0.map { $0 == 0 ? 32 : $0 }, as: UTF8.self) }
                let state = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?.split(separator: " ").dropFirst(2).first.map(String.init)
                throw LocalClusterError(
                    .commandFailed,
                    "\(node.name)'s Patroni (pid \(pid)\(cmdline.map { ", now \"\($0.prefix(80))\"" } ?? ", gone")\(state.map { ", state \($0)" } ?? "")) stopped: "
                        + ProcessRunner.tail(log, lines: 4))
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        let extra = detail()
        throw LocalClusterError(
            .notRunning, "timed out after \(timeout) waiting for \(what)\(extra.isEmpty ? "" : " (\(extra))"); logs in \(directory.path)")
    }

    // MARK: down, stop, start

    /// Replicas first, the leader last (no failover on the way down), then etcd.
    func downPatroni(_ manifest: ClusterManifest, mode: StopMode) async throws {
        if mode == .immediate {
            await killPatroniCluster(manifest)
            return
        }
        let leader = try? await PatroniClient(endpoints: manifest.nodes.compactMap(\.restURL)).cluster().leader?.name
        let ordered = manifest.nodes.filter { $0.name != leader } + manifest.nodes.filter { $0.name == leader }
        for node in ordered { try await stopPatroni(node, mode: .fast) }
        if let pid = Daemon.running(etcdFolder.appendingPathComponent("etcd.pid"), program: "etcd") {
            await Daemon.stop(pid, timeout: .seconds(10), program: "etcd")
        }
    }

    /// Stops one node's Patroni, which stops its server. Fast: SIGTERM, so a leader hands
    /// over at once; immediate: SIGKILL and an immediate server stop, as a crash would
    /// (the leader key then expires after Patroni's ttl).
    func stopPatroni(_ node: LocalNode, mode: StopMode) async throws {
        if let pid = Daemon.running(patroniPidFile(node), program: "patroni") {
            let stopped = await Daemon.stop(pid, signal: mode == .immediate ? SIGKILL : SIGTERM, timeout: .seconds(60), program: "patroni")
            if !stopped { await Daemon.stop(pid, signal: SIGKILL, timeout: .seconds(5), program: "patroni") }
        }
        let binaries = try await serverBinaries()
        let runner = try ProcessRunner.forCurrentUser(workingDirectory: directory)
        if try await isRunning(node, binaries: binaries, runner: runner) {
            _ = try await runner.run(binaries.path("pg_ctl"), ["-D", dataDirectory(node).path, "-m", "immediate", "-w", "stop"])
        }
    }

    func startPatroni(_ node: LocalNode) async throws {
        guard Daemon.running(patroniPidFile(node), program: "patroni") == nil else { return }
        let programs = try Self.patroniPrograms()
        let binaries = try await serverBinaries()
        let runner = try ProcessRunner.forCurrentUser(workingDirectory: directory)
        try await startPatroni(node, program: programs.patroni, binaries: binaries, runner: runner)
        let client = PatroniClient(endpoints: [node.restURL!])
        try await waitUntil(timeout: .seconds(120), what: "\(node.name)'s Patroni to run its server", node) {
            try await client.member(at: node.restURL!).state == "running"
        }
    }

    /// SIGKILL to every Patroni, an immediate stop of every server, SIGKILL to etcd.
    func killPatroniCluster(_ manifest: ClusterManifest) async {
        for node in manifest.nodes {
            if let pid = Daemon.running(patroniPidFile(node), program: "patroni") {
                await Daemon.stop(pid, signal: SIGKILL, timeout: .seconds(5), program: "patroni")
            }
        }
        if let binaries = try? await serverBinaries(), let runner = try? ProcessRunner.forCurrentUser(workingDirectory: directory) {
            for node in manifest.nodes where (try? await isRunning(node, binaries: binaries, runner: runner)) == true {
                _ = try? await runner.run(binaries.path("pg_ctl"), ["-D", dataDirectory(node).path, "-m", "immediate", "-w", "stop"])
            }
        }
        if let pid = Daemon.running(etcdFolder.appendingPathComponent("etcd.pid"), program: "etcd") {
            await Daemon.stop(pid, signal: SIGKILL, timeout: .seconds(5), program: "etcd")
        }
    }

    /// Patroni's members by name, or nil when no member answers.
    func patroniMembers(_ manifest: ClusterManifest) async -> [String: PatroniMember]? {
        guard let cluster = try? await PatroniClient(endpoints: manifest.nodes.compactMap(\.restURL), timeout: .seconds(2)).cluster() else {
            return nil
        }
        return Dictionary(cluster.members.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    }

    static func httpGet(_ url: URL) async throws -> Data {
        var request = URLRequest(url: url)
        request.timeoutInterval = 2
        let (data, response) = try await URLSession.shared.data(for: request)
        guard (response as? HTTPURLResponse)?.statusCode == 200 else { throw LocalClusterError(.notRunning, "\(url) did not answer 200") }
        return data
    }
}
