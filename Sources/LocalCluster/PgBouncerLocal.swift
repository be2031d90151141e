import Foundation
import PostgresClient

/// PgBouncer in front of each node (`cluster up --pgbouncer`): transaction pooling, as
/// production clusters with many app servers run it. Each bouncer listens on its own port
/// and forwards to its node only; its admin console (`dbname=pgbouncer`) takes the
/// cluster's superuser.
extension LocalCluster {
    func bouncerConfigFile(_ node: LocalNode) -> URL { directory.appendingPathComponent("\(node.name)/pgbouncer.ini") }
    func bouncerUsersFile(_ node: LocalNode) -> URL { directory.appendingPathComponent("\(node.name)/pgbouncer-users.txt") }
    func bouncerPidFile(_ node: LocalNode) -> URL { directory.appendingPathComponent("\(node.name)/pgbouncer.pid") }
    public func bouncerLogFile(_ node: LocalNode) -> URL { directory.appendingPathComponent("\(node.name)/pgbouncer.log") }

    /// The bouncer's connection string for `node` (nil without one): what app traffic uses.
    public func bouncerConninfo(for node: LocalNode, database: String? = nil) -> String? {
        guard let port = node.bouncerPort else { return nil }
        var conninfo = "host=\(host) port=\(port) dbname=\(database ?? self.database) user=\(user)"
        if FileManager.default.fileExists(atPath: passfileURL.path) { conninfo += " passfile=\(Conninfo.quoted(passfileURL.path))" }
        return conninfo
    }

    static func locatePgBouncer() throws -> String {
        guard let program = Daemon.locate("pgbouncer", candidates: ["/usr/sbin/pgbouncer"]) else {
            throw LocalClusterError(
                .binariesNotFound,
                "pgbouncer is not installed: `apt-get install --no-install-recommends pgbouncer` (Debian's package) and run again")
        }
        return program
    }

    /// Writes each node's bouncer files: the ini and a users file with the superuser's
    /// SCRAM secret (read from the primary; the password itself is never written there),
    /// so clients log in to the bouncer with the cluster's password and the bouncer logs
    /// in to the server with the keys of that login.
    func writeBouncerFiles(_ nodes: [LocalNode], primary: LocalNode, runner: ProcessRunner) async throws {
        let connection = try await PostgresConnection.connect(
            conninfo(for: primary, database: "postgres"), label: primary.name, options: ConnectOptions(connectTimeout: .seconds(5)))
        let secret = try await connection.closing {
            try await $0.query("select rolpassword from pg_authid where rolname = $1", [user]).scalar(String.self)
        }
        guard let secret, secret.hasPrefix("SCRAM-SHA-256$") else {
            throw LocalClusterError(.commandFailed, "\(user) has no SCRAM password on \(primary.name): PgBouncer needs one")
        }
        for node in nodes {
            guard let port = node.bouncerPort else { continue }
            // PgBouncer's users file quotes with double quotes, doubled inside.
            func quoted(_ text: String) -> String { "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
            let users = bouncerUsersFile(node)
            try PrivateFile.write(Data("\(quoted(user)) \(quoted(secret))\n".utf8), to: users.path)
            try runner.giveToServerUser(users)
            let ini = """
                ; Written by switchyard for a local development cluster: one PgBouncer per node.
                [databases]
                * = host=\(host) port=\(node.port)

                [pgbouncer]
                listen_addr = \(host)
                listen_port = \(port)
                unix_socket_dir =
                auth_type = scram-sha-256
                auth_file = \(users.path)
                admin_users = \(user)
                stats_users = \(user)
                pool_mode = transaction
                max_client_conn = 2000
                default_pool_size = 40
                reserve_pool_size = 5
                server_lifetime = 3600
                ; libpq and drivers send these at startup; PgBouncer may ignore them.
                ignore_startup_parameters = extra_float_digits,options
                application_name_add_host = 0
                log_connections = 0
                log_disconnections = 0

                """
            let url = bouncerConfigFile(node)
            try Data(ini.utf8).write(to: url)
            try runner.giveToServerUser(url)
        }
    }

    func isBouncerRunning(_ node: LocalNode) -> Bool {
        Daemon.running(bouncerPidFile(node), program: "pgbouncer") != nil
    }

    /// Starts `node`'s bouncer (as the server's user when run as root) and waits until it
    /// accepts connections.
    func startBouncer(_ node: LocalNode, runner: ProcessRunner) async throws {
        guard let port = node.bouncerPort, !isBouncerRunning(node) else { return }
        guard PortCheck.isFree(port) else {
            throw LocalClusterError(.portInUse, "port \(port) on \(host) is already in use; \(node.name)'s PgBouncer cannot start")
        }
        let program = try Self.locatePgBouncer()
        let log = bouncerLogFile(node)
        if !FileManager.default.fileExists(atPath: log.path) {
            FileManager.default.createFile(atPath: log.path, contents: nil, attributes: [.posixPermissions: 0o600])
            try runner.giveToServerUser(log)
        }
        let pid = try await Daemon.start(
            [program, bouncerConfigFile(node).path], log: log, pidFile: bouncerPidFile(node), user: runner.serverUser,
            environment: ["PATH": "/usr/sbin:/usr/bin:/bin", "LC_ALL": "C.UTF-8"], workingDirectory: directory)
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if !PortCheck.isFree(port) { return }
            // Not by its command line: while setsid and setpriv exec their way to pgbouncer,
            // /proc/PID/cmdline can read empty for an instant. The pid is a second old.
            guard Daemon.isAlive(pid) else { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        let state = Daemon.isAlive(pid) ? "running, not listening on \(port) after 10 s" : "exited"
        throw LocalClusterError(
            .commandFailed, "\(node.name)'s PgBouncer (pid \(pid)) \(state): \(ProcessRunner.tail(text, lines: 3)) (\(log.path))")
    }

    /// Stops `node`'s bouncer (SIGINT: at once, closing its connections; `immediate`: SIGKILL).
    func stopBouncer(_ node: LocalNode, mode: StopMode) async {
        guard let pid = Daemon.running(bouncerPidFile(node), program: "pgbouncer") else { return }
        let stopped = await Daemon.stop(pid, signal: mode == .immediate ? SIGKILL : SIGINT, timeout: .seconds(10), program: "pgbouncer")
        if !stopped { await Daemon.stop(pid, signal: SIGKILL, timeout: .seconds(5), program: "pgbouncer") }
    }

    /// Stops `name`'s PgBouncer (SIGINT: its connections close at once); nothing when it has none.
    public func stopBouncer(node name: String) async throws {
        await stopBouncer(try node(named: name), mode: .fast)
    }

    /// Starts `name`'s PgBouncer again (nothing when it has none or it runs).
    public func startBouncer(node name: String) async throws {
        try await startBouncer(try node(named: name), runner: try ProcessRunner.forCurrentUser(workingDirectory: directory))
    }

    /// Puts a bouncer in front of each node that has none: ports after every port the
    /// cluster uses, files, start. Used by `up --pgbouncer`, new or existing cluster.
    func addBouncers(runner: ProcessRunner, progress: @Sendable (String) -> Void) async throws {
        var manifest = try manifest()
        let taken = manifest.nodes.flatMap { [$0.port, $0.restPort, $0.bouncerPort].compactMap { $0 } }
            + [manifest.patroni?.etcdClientPort, manifest.patroni?.etcdPeerPort].compactMap { $0 }
        var next = (taken.max() ?? 55432) + 1
        var added: [LocalNode] = []
        for index in manifest.nodes.indices where manifest.nodes[index].bouncerPort == nil {
            guard next <= 65535, PortCheck.isFree(next) else {
                throw LocalClusterError(
                    .portInUse, "port \(next) on \(host) is in use (needed by \(manifest.nodes[index].name)'s PgBouncer); choose another --port")
            }
            manifest.nodes[index].bouncerPort = next
            added.append(manifest.nodes[index])
            next += 1
        }
        guard !added.isEmpty else { return }
        _ = try Self.locatePgBouncer()
        guard let primary = try await status().first(where: { $0.role == .primary })?.node else {
            throw LocalClusterError(.notRunning, "no running primary to read the SCRAM secret from")
        }
        try await writeBouncerFiles(added, primary: primary, runner: runner)
        try writeManifest(manifest)
        for node in added {
            progress("start PgBouncer for \(node.name) on port \(node.bouncerPort!)")
            try await startBouncer(node, runner: runner)
        }
    }
}
