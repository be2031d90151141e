import Foundation
import PostgresClient

/// A primary and streaming replicas on 127.0.0.1, made from this machine's PostgreSQL
/// in one folder, for development, demos and tests.
///
/// Layout of the folder `D`: `D/cluster.json` (nodes and ports), `D/switchyard.toml`
/// (config for the other commands), and per node `D/pgN/data` and `D/pgN/postgres.log`.
/// Servers listen on TCP only (no Unix socket) on 127.0.0.1 and ask for a password
/// (scram-sha-256): the superuser's is random, in the passfile `D/pgpass` (0600) that the
/// generated conninfo names (`PGPASSFILE=D/pgpass psql …` for scripts). `fsync=off` and
/// small buffers: fast and light, never for production.
public final class LocalCluster: Sendable {
    public let directory: URL
    public let database = "app"
    public let user = "postgres"
    public let host = "127.0.0.1"

    public var manifestURL: URL { directory.appendingPathComponent("cluster.json") }
    public var configURL: URL { directory.appendingPathComponent("switchyard.toml") }
    /// The superuser's password as a libpq passfile (0600).
    public var passfileURL: URL { directory.appendingPathComponent("pgpass") }

    private let explicitBinaries: PostgresBinaries?

    public init(directory: URL, binaries: PostgresBinaries? = nil) {
        self.directory = directory.standardizedFileURL
        self.explicitBinaries = binaries
    }

    /// The default folder: `$XDG_STATE_HOME/switchyard/cluster`, else
    /// `~/.local/state/switchyard/cluster`; as root (whose home the `postgres` user cannot
    /// enter) `/var/lib/switchyard/cluster` unless `XDG_STATE_HOME` is set.
    public static func defaultDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        if let state = environment["XDG_STATE_HOME"], !state.isEmpty {
            return URL(fileURLWithPath: state).appendingPathComponent("switchyard/cluster")
        }
        if ProcessRunner.isRoot { return URL(fileURLWithPath: "/var/lib/switchyard/cluster") }
        let home = environment["HOME"] ?? NSHomeDirectory()
        return URL(fileURLWithPath: home).appendingPathComponent(".local/state/switchyard/cluster")
    }

    // MARK: Nodes and connection strings

    /// The nodes recorded in `D/cluster.json`.
    public func nodes() throws -> [LocalNode] { try manifest().nodes }

    public func node(named name: String) throws -> LocalNode {
        let nodes = try nodes()
        guard let node = nodes.first(where: { $0.name == name }) else {
            throw LocalClusterError(
                .unknownNode, "no node named \"\(name)\" in \(directory.path) (nodes: \(nodes.map(\.name).joined(separator: ", ")))")
        }
        return node
    }

    /// libpq connection string for `node` (database `app` unless `database` is given).
    public func conninfo(for node: LocalNode, database: String? = nil) -> String {
        var conninfo = "host=\(host) port=\(node.port) dbname=\(database ?? self.database) user=\(user)"
        // A cluster made before passwords (trust authentication) has no passfile.
        if FileManager.default.fileExists(atPath: passfileURL.path) { conninfo += " passfile=\(Conninfo.quoted(passfileURL.path))" }
        return conninfo
    }

    /// 256 random bits as hex.
    static func newPassword() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<4).map { _ in String(generator.next() as UInt64, radix: 16) }.joined()
    }

    /// The superuser's password, from the passfile (nil for a trust cluster).
    public func password() -> String? {
        guard let text = try? String(contentsOf: passfileURL, encoding: .utf8) else { return nil }
        return text.split(separator: "\n").first.flatMap { $0.split(separator: ":", maxSplits: 4).last }.map(String.init)
    }

    /// A new random superuser password (or `password`) in `D/pgpass` (hex: nothing to escape).
    func writePassfile(_ given: String? = nil) throws -> String {
        let password = given ?? Self.newPassword()
        let lines = ["\(host):*:*:\(user):\(password)", "localhost:*:*:\(user):\(password)", ""]
        try PrivateFile.write(Data(lines.joined(separator: "\n").utf8), to: passfileURL.path)
        return password
    }

    public func conninfo(node name: String, database: String? = nil) throws -> String {
        conninfo(for: try node(named: name), database: database)
    }

    /// `D/<node>/data`, the node's PGDATA.
    public func dataDirectory(_ node: LocalNode) -> URL { directory.appendingPathComponent("\(node.name)/data") }
    /// `D/<node>/postgres.log`, the server log.
    public func logFile(_ node: LocalNode) -> URL { directory.appendingPathComponent("\(node.name)/postgres.log") }

    func manifest() throws -> ClusterManifest {
        guard let data = FileManager.default.contents(atPath: manifestURL.path) else {
            throw LocalClusterError(
                .noCluster, "no cluster in \(directory.path): create one with `switchyard cluster up --dir \(directory.path)`")
        }
        do {
            return try JSONDecoder().decode(ClusterManifest.self, from: data)
        } catch {
            throw LocalClusterError(.noCluster, "\(manifestURL.path) is damaged: \(error)")
        }
    }

    // MARK: up

    /// Creates the cluster (a primary `pg1` on `basePort` and `replicas` streaming
    /// replicas on the following ports), or, when the folder already holds one, starts
    /// whatever is stopped and adds replicas up to `replicas`. With `pgbouncer`, a
    /// PgBouncer (transaction pooling) in front of each node, on the ports after the
    /// cluster's; a cluster that has them keeps them. Returns the node statuses.
    @discardableResult
    public func up(
        basePort: Int = 55432, replicas: Int = 2, engine: Engine? = nil, pgbouncer: Bool = false,
        progress: @Sendable (String) -> Void = { _ in }
    ) async throws -> [LocalNodeStatus] {
        if pgbouncer { _ = try Self.locatePgBouncer() }
        let statuses = try await upServers(basePort: basePort, replicas: replicas, engine: engine, progress: progress)
        let manifest = try manifest()
        guard pgbouncer || manifest.nodes.contains(where: { $0.bouncerPort != nil }) else { return statuses }
        let runner = try ProcessRunner.forCurrentUser(workingDirectory: directory)
        for node in manifest.nodes where node.bouncerPort != nil && !isBouncerRunning(node) {
            progress("start PgBouncer for \(node.name) on port \(node.bouncerPort!)")
            try await startBouncer(node, runner: runner)
        }
        try await addBouncers(runner: runner, progress: progress)
        let nodes = try nodes()
        try writeConfig(nodes, patroni: manifest.patroni == nil ? [] : nodes.compactMap(\.restURL))
        return try await status()
    }

    private func upServers(
        basePort: Int, replicas: Int, engine: Engine?, progress: @Sendable (String) -> Void
    ) async throws -> [LocalNodeStatus] {
        guard (1...65535).contains(basePort), basePort + replicas <= 65535 else {
            throw LocalClusterError(.invalidArgument, "port \(basePort) is out of range (1-65535)")
        }
        guard replicas >= 0, replicas <= 16 else {
            throw LocalClusterError(.invalidArgument, "--replicas must be between 0 and 16")
        }
        let binaries = try await serverBinaries()
        if FileManager.default.fileExists(atPath: manifestURL.path) {
            let manifest = try manifest()
            if manifest.patroni != nil {
                return try await restartPatroni(manifest, binaries: binaries, replicas: replicas, progress: progress)
            }
            if let engine {
                throw LocalClusterError(
                    .directoryNotUsable,
                    "\(directory.path) holds a cluster without an HA engine: `--ha \(engine.rawValue)` needs a new folder (--dir)")
            }
            return try await restart(binaries: binaries, replicas: replicas, progress: progress)
        }
        if engine == .patroni {
            return try await createPatroni(binaries: binaries, basePort: basePort, replicas: replicas, progress: progress)
        }
        return try await create(binaries: binaries, basePort: basePort, replicas: replicas, progress: progress)
    }

    private func create(binaries: PostgresBinaries, basePort: Int, replicas: Int, progress: @Sendable (String) -> Void)
        async throws -> [LocalNodeStatus]
    {
        let nodes = (0...replicas).map { LocalNode(name: "pg\($0 + 1)", port: basePort + $0) }
        for node in nodes where !PortCheck.isFree(node.port) {
            throw LocalClusterError(
                .portInUse,
                "port \(node.port) on 127.0.0.1 is already in use (needed by \(node.name)); choose another base port with --port")
        }
        let runner = try prepareDirectory()
        for node in nodes where FileManager.default.fileExists(atPath: directory.appendingPathComponent(node.name).path) {
            throw LocalClusterError(
                .directoryNotUsable,
                "\(directory.path) already holds \(node.name)/ but no cluster.json: remove the folder or choose another --dir")
        }
        var started: [LocalNode] = []
        do {
            let primary = nodes[0]
            progress("initdb \(primary.name)")
            try await makeNodeFolder(primary, runner: runner)
            let password = try writePassfile()
            // initdb reads the password from a file the server user can read, removed after.
            let passwordFile = directory.appendingPathComponent(".initdb-password")
            try PrivateFile.write(Data((password + "\n").utf8), to: passwordFile.path)
            defer { try? FileManager.default.removeItem(at: passwordFile) }
            try runner.giveToServerUser(passwordFile)
            try await runner.check(
                binaries.path("initdb"),
                ["-D", dataDirectory(primary).path, "-U", user, "-A", "scram-sha-256", "--pwfile=\(passwordFile.path)",
                 "-E", "UTF8", "--locale=C", "-N"],
                what: "initdb for \(primary.name)")
            let conf = dataDirectory(primary).appendingPathComponent("postgresql.conf")
            let handle = try FileHandle(forWritingTo: conf)
            handle.seekToEndOfFile()
            handle.write(Data("\n# Local-cluster settings (port, replication, dev speed):\ninclude_if_exists = 'switchyard.conf'\n".utf8))
            try handle.close()
            try writeNodeSettings(primary)
            progress("start \(primary.name) on port \(primary.port)")
            try await startServer(primary, binaries: binaries, runner: runner)
            started.append(primary)
            try await createDatabase(on: primary)
            for replica in nodes.dropFirst() {
                progress("pg_basebackup \(replica.name) from \(primary.name)")
                try await makeReplica(replica, from: primary, binaries: binaries, runner: runner)
                progress("start \(replica.name) on port \(replica.port)")
                try await startServer(replica, binaries: binaries, runner: runner)
                started.append(replica)
            }
            try writeManifest(ClusterManifest(database: database, user: user, host: host, nodes: nodes))
            try writeConfig(nodes)
        } catch {
            for node in started.reversed() {
                _ = try? await runner.run(binaries.path("pg_ctl"), ["-D", dataDirectory(node).path, "-m", "immediate", "-w", "stop"])
            }
            for node in nodes {
                try? FileManager.default.removeItem(at: directory.appendingPathComponent(node.name))
            }
            throw error
        }
        return try await status()
    }

    private func restart(binaries: PostgresBinaries, replicas: Int, progress: @Sendable (String) -> Void) async throws
        -> [LocalNodeStatus]
    {
        var manifest = try manifest()
        let runner = try ProcessRunner.forCurrentUser(workingDirectory: directory)
        for node in manifest.nodes where try await !isRunning(node, binaries: binaries, runner: runner) {
            guard PortCheck.isFree(node.port) else {
                throw LocalClusterError(
                    .portInUse, "port \(node.port) on 127.0.0.1 is already in use by another program; \(node.name) cannot start")
            }
            progress("start \(node.name) on port \(node.port)")
            // A stopped node starts with this version's local settings.
            try writeNodeSettings(node)
            try await startServer(node, binaries: binaries, runner: runner)
        }
        if try !FileManager.default.fileExists(atPath: passfileURL.path) || manifest.nodes.contains(where: trusts) {
            progress("adding a password (scram-sha-256) to a cluster made with trust authentication")
            try await addPassword(manifest.nodes)
            try writeConfig(manifest.nodes)
        }
        let existingReplicas = manifest.nodes.count - 1
        if replicas > existingReplicas {
            guard let source = try await status().first(where: { $0.role == .primary }).map({ $0.node }) else {
                throw LocalClusterError(.notRunning, "no running primary to copy new replicas from")
            }
            let highest = manifest.nodes.compactMap { Int($0.name.dropFirst(2)) }.max() ?? manifest.nodes.count
            let highestPort = manifest.nodes.flatMap { [$0.port, $0.bouncerPort].compactMap { $0 } }.max() ?? 55432
            for offset in 1...(replicas - existingReplicas) {
                let node = LocalNode(name: "pg\(highest + offset)", port: highestPort + offset)
                guard PortCheck.isFree(node.port) else {
                    throw LocalClusterError(
                        .portInUse, "port \(node.port) on 127.0.0.1 is already in use (needed by new replica \(node.name))")
                }
                progress("pg_basebackup \(node.name) from \(source.name)")
                try await makeReplica(node, from: source, binaries: binaries, runner: runner)
                progress("start \(node.name) on port \(node.port)")
                try await startServer(node, binaries: binaries, runner: runner)
                manifest.nodes.append(node)
                try writeManifest(manifest)
            }
            try writeConfig(manifest.nodes)
        }
        return try await status()
    }

    /// Whether `node`'s `pg_hba.conf` still lets anyone in without a password.
    func trusts(_ node: LocalNode) throws -> Bool {
        let url = dataDirectory(node).appendingPathComponent("pg_hba.conf")
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return false }
        return text.split(separator: "\n").contains { !$0.hasPrefix("#") && $0.hasSuffix("trust") }
    }

    /// Moves a cluster made before passwords from trust to scram-sha-256: a random
    /// superuser password (in `D/pgpass`), replicas that stream with it, `pg_hba.conf`
    /// asking for it. Statements are built by the server (`format` with `%I`/`%L`).
    ///
    /// In an order that cannot lock anyone out: the passfile is saved first (trust ignores
    /// it), then the role gets the password — as a SCRAM verifier computed here, so the
    /// password never reaches the server's log — and only then does `pg_hba.conf` ask for
    /// it. A step that fails leaves trust in place and the next `cluster up` starts over
    /// with the same saved password.
    private func addPassword(_ nodes: [LocalNode]) async throws {
        let statuses = try await status()
        guard let primary = statuses.first(where: { $0.role == .primary })?.node else {
            throw LocalClusterError(.notRunning, "no running primary: cannot add a password")
        }
        let password = try writePassfile(password())
        func run(_ node: LocalNode, _ template: String, _ values: [String]) async throws {
            let connection = try await PostgresConnection.connect(
                "host=\(host) port=\(node.port) dbname=postgres user=\(user)", label: node.name,
                options: ConnectOptions(connectTimeout: .seconds(5)))
            try await connection.closing { connection in
                let statement = try await connection.query(template, values).scalar(String.self) ?? ""
                _ = try await connection.query(statement)
                _ = try await connection.query("select pg_reload_conf()")
            }
        }
        let verifier = try await PostgresConnection.connect(
            "host=\(host) port=\(primary.port) dbname=postgres user=\(user)", label: primary.name,
            options: ConnectOptions(connectTimeout: .seconds(5))
        ).closing { try await $0.encryptPassword(password, user: user) }
        try await run(primary, "select format('alter role %I password %L', $1::text, $2::text)", [user, verifier])
        for node in nodes where node != primary {
            let upstream = "host=\(host) port=\(primary.port) user=\(user) password=\(password)"
            try await run(node, "select format('alter system set primary_conninfo = %L', $1::text)", [upstream])
        }
        for node in nodes {
            let url = dataDirectory(node).appendingPathComponent("pg_hba.conf")
            let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
            let secured = lines.map { line -> String in
                guard !line.hasPrefix("#"), line.hasSuffix("trust") else { return String(line) }
                return String(line.dropLast("trust".count)) + "scram-sha-256"
            }
            try Data(secured.joined(separator: "\n").utf8).write(to: url)
            try fixOwnership(url)
            try await run(node, "select 'select 1'", [])
        }
    }

    /// Creates the folder, checks we (and, as root, the `postgres` user) can write to it.
    /// The server programs given at init, else the ones found on this machine.
    func serverBinaries() async throws -> PostgresBinaries {
        if let explicitBinaries { return explicitBinaries }
        return try await PostgresBinaries.locate()
    }

    func prepareDirectory() throws -> ProcessRunner {
        let manager = FileManager.default
        var isDirectory: ObjCBool = false
        if manager.fileExists(atPath: directory.path, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw LocalClusterError(.directoryNotUsable, "\(directory.path) exists and is not a directory")
        }
        var ancestor = directory
        while !manager.fileExists(atPath: ancestor.path) && ancestor.path != "/" { ancestor.deleteLastPathComponent() }
        if ancestor != directory {
            if manager.fileExists(atPath: ancestor.path, isDirectory: &isDirectory), !isDirectory.boolValue {
                throw LocalClusterError(
                    .directoryNotUsable, "cannot create \(directory.path): \(ancestor.path) is not a directory")
            }
            guard manager.isWritableFile(atPath: ancestor.path) else {
                throw LocalClusterError(
                    .directoryNotUsable, "cannot create \(directory.path): directory \(ancestor.path) is not writable")
            }
        }
        do {
            try manager.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw LocalClusterError(.directoryNotUsable, "cannot create \(directory.path): \(error.localizedDescription)")
        }
        guard manager.isWritableFile(atPath: directory.path) else {
            throw LocalClusterError(.directoryNotUsable, "directory \(directory.path) is not writable")
        }
        return try ProcessRunner.forCurrentUser(workingDirectory: directory)
    }

    func makeNodeFolder(_ node: LocalNode, runner: ProcessRunner) async throws {
        let folder = directory.appendingPathComponent(node.name)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try runner.giveToServerUser(directory)
        try runner.giveToServerUser(folder)
        if runner.serverUser != nil {
            let probe = try await runner.run("/usr/bin/test", ["-w", folder.path])
            if probe.status != 0 {
                throw LocalClusterError(
                    .directoryNotUsable,
                    "the postgres user cannot enter \(directory.path) (a parent folder is closed to it); "
                        + "choose a --dir it can reach, e.g. under /tmp or /var/lib")
            }
        }
    }

    private func writeNodeSettings(_ node: LocalNode) throws {
        let settings = """
            # Written by switchyard for a local development cluster: not production settings.
            port = \(node.port)
            listen_addresses = '\(host)'
            unix_socket_directories = ''
            cluster_name = '\(node.name)'
            wal_level = replica
            max_wal_senders = 10
            max_replication_slots = 10
            wal_keep_size = '512MB'
            hot_standby = on
            hot_standby_feedback = on
            wal_log_hints = on
            wal_receiver_status_interval = '1s'
            fsync = off
            shared_buffers = '32MB'
            max_connections = 300
            log_line_prefix = '%m [%p] %q%u@%d '

            """
        let url = dataDirectory(node).appendingPathComponent("switchyard.conf")
        try Data(settings.utf8).write(to: url)
        try fixOwnership(url)
    }

    func fixOwnership(_ url: URL) throws {
        guard ProcessRunner.isRoot, let user = getpwnam("postgres") else { return }
        chown(url.path, user.pointee.pw_uid, user.pointee.pw_gid)
    }

    func createDatabase(on primary: LocalNode) async throws {
        let connection = try await PostgresConnection.connect(
            conninfo(for: primary, database: "postgres"), label: primary.name, options: ConnectOptions(connectTimeout: .seconds(5)))
        try await connection.closing { connection in
            let exists = try await connection.query("select 1 from pg_database where datname = $1", [database])
            if exists.rowCount == 0 {
                _ = try await connection.query("create database \(try await connection.quoteIdentifier(database))")
            }
        }
    }

    private func makeReplica(_ replica: LocalNode, from source: LocalNode, binaries: PostgresBinaries, runner: ProcessRunner)
        async throws
    {
        try await makeNodeFolder(replica, runner: runner)
        // The password goes in the environment of pg_basebackup alone (readable only by its
        // user); -R writes it into the replica's primary_conninfo (0600, the server's).
        try await runner.check(
            binaries.path("pg_basebackup"),
            [
                "-h", host, "-p", String(source.port), "-U", user, "-D", dataDirectory(replica).path,
                "-R", "-X", "stream", "-c", "fast", "-N",
            ],
            environment: password().map { ["PGPASSWORD": $0] } ?? [:],
            what: "pg_basebackup for \(replica.name)")
        try writeNodeSettings(replica)
    }

    private func startServer(_ node: LocalNode, binaries: PostgresBinaries, runner: ProcessRunner) async throws {
        let output = try await runner.run(
            binaries.path("pg_ctl"), ["-D", dataDirectory(node).path, "-l", logFile(node).path, "-w", "-t", "60", "start"])
        guard output.status == 0 else {
            let log = (try? String(contentsOf: logFile(node), encoding: .utf8)) ?? ""
            throw LocalClusterError(
                .commandFailed,
                "\(node.name) did not start: \(ProcessRunner.tail(output.text, lines: 2)); log: \(ProcessRunner.tail(log, lines: 4))")
        }
    }

    func isRunning(_ node: LocalNode, binaries: PostgresBinaries, runner: ProcessRunner) async throws -> Bool {
        try await runner.run(binaries.path("pg_ctl"), ["-D", dataDirectory(node).path, "status"]).status == 0
    }

    func writeManifest(_ manifest: ClusterManifest) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(manifest).write(to: manifestURL, options: .atomic)
    }

    func writeConfig(_ nodes: [LocalNode], patroni: [URL] = []) throws {
        var file = ConfigFile(
            clusterName: "local",
            nodes: nodes.map { node in
                guard let bounced = bouncerConninfo(for: node) else { return ConfigFile.Node(name: node.name, conninfo: conninfo(for: node)) }
                return ConfigFile.Node(name: node.name, conninfo: bounced, monitorConninfo: conninfo(for: node), poolMode: "transaction")
            })
        file.patroniEndpoints = patroni.map(\.absoluteString)
        file.header = [
            "Written by `switchyard cluster up` for this local development cluster.",
            "Roles are discovered with pg_is_in_recovery(), so this stays true after a failover.",
        ]
        if !patroni.isEmpty { file.header.append("Patroni manages the nodes: promote goes through its REST API.") }
        if nodes.contains(where: { $0.bouncerPort != nil }) {
            file.header.append("App traffic goes through each node's PgBouncer (transaction pooling); probes go straight to the servers.")
        }
        try file.write(to: configURL.path)
    }

    // MARK: down, stop, start

    public enum StopMode: String, Sendable {
        /// Disconnect clients, shut down cleanly.
        case fast
        /// Kill at once, as a crash would; recovery runs at the next start.
        case immediate
    }

    /// Stops every running node (replicas first), keeping the data.
    public func down(mode: StopMode = .fast) async throws {
        let manifest = try manifest()
        for node in manifest.nodes.reversed() { await stopBouncer(node, mode: mode) }
        if manifest.patroni != nil { return try await downPatroni(manifest, mode: mode) }
        let binaries = try await serverBinaries()
        let runner = try ProcessRunner.forCurrentUser(workingDirectory: directory)
        for node in manifest.nodes.reversed() where try await isRunning(node, binaries: binaries, runner: runner) {
            try await runner.check(
                binaries.path("pg_ctl"), ["-D", dataDirectory(node).path, "-m", mode.rawValue, "-w", "-t", "60", "stop"],
                what: "stopping \(node.name)")
        }
    }

    /// Stops one node (its bouncer first). Stopping a stopped node is not an error.
    public func stop(node name: String, mode: StopMode = .fast) async throws {
        let node = try node(named: name)
        await stopBouncer(node, mode: mode)
        if try manifest().patroni != nil { return try await stopPatroni(node, mode: mode) }
        let binaries = try await serverBinaries()
        let runner = try ProcessRunner.forCurrentUser(workingDirectory: directory)
        guard try await isRunning(node, binaries: binaries, runner: runner) else { return }
        try await runner.check(
            binaries.path("pg_ctl"), ["-D", dataDirectory(node).path, "-m", mode.rawValue, "-w", "-t", "60", "stop"],
            what: "stopping \(node.name)")
    }

    /// Starts one node (and its bouncer) and waits until it accepts connections.
    public func start(node name: String) async throws {
        let node = try node(named: name)
        try await startServer(node)
        if node.bouncerPort != nil { try await startBouncer(node, runner: try ProcessRunner.forCurrentUser(workingDirectory: directory)) }
    }

    private func startServer(_ node: LocalNode) async throws {
        if try manifest().patroni != nil { return try await startPatroni(node) }
        let binaries = try await serverBinaries()
        let runner = try ProcessRunner.forCurrentUser(workingDirectory: directory)
        guard try await !isRunning(node, binaries: binaries, runner: runner) else { return }
        guard PortCheck.isFree(node.port) else {
            throw LocalClusterError(.portInUse, "port \(node.port) on 127.0.0.1 is already in use; \(node.name) cannot start")
        }
        try await startServer(node, binaries: binaries, runner: runner)
    }

    // MARK: rejoin

    /// Brings `name` (typically a former primary) back as a replica of the current primary:
    /// stops it, `pg_rewind -R` from the primary (undoing whatever it wrote after the two
    /// diverged), then starts it as a standby and waits until it streams. Plain local
    /// clusters only: Patroni rejoins its members by itself.
    public func rejoin(node name: String, progress: @Sendable (String) -> Void = { _ in }) async throws {
        let node = try node(named: name)
        if try manifest().patroni != nil {
            throw LocalClusterError(
                .invalidArgument, "Patroni rejoins \(name) by itself (with pg_rewind) once it runs: `switchyard cluster start \(name)`")
        }
        let binaries = try await serverBinaries()
        let runner = try ProcessRunner.forCurrentUser(workingDirectory: directory)
        let statuses = try await status()
        guard let primary = statuses.first(where: { $0.role == .primary && $0.node != node })?.node else {
            throw LocalClusterError(.notRunning, "no running primary besides \(name) to rejoin it to")
        }
        if let own = statuses.first(where: { $0.node == node }), own.role == .replica, own.walReceiver == "streaming" {
            throw LocalClusterError(.invalidArgument, "\(name) is already a streaming replica")
        }
        if try await isRunning(node, binaries: binaries, runner: runner) {
            progress("stop \(name)")
            try await runner.check(
                binaries.path("pg_ctl"), ["-D", dataDirectory(node).path, "-m", "fast", "-w", "-t", "60", "stop"], what: "stopping \(name)")
        }
        // A newly promoted primary's control file names its new timeline only after a
        // checkpoint; before it, pg_rewind takes both for one history and rewinds nothing.
        progress("checkpoint on \(primary.name)")
        let source = try await PostgresConnection.connect(
            conninfo(for: primary, database: "postgres"), label: primary.name, options: ConnectOptions(connectTimeout: .seconds(5)))
        try await source.closing { _ = try await $0.query("checkpoint") }
        progress("pg_rewind \(name) from \(primary.name)")
        let rewind = try await runner.check(
            binaries.path("pg_rewind"),
            ["-D", dataDirectory(node).path, "--source-server=host=\(host) port=\(primary.port) user=\(user) dbname=postgres", "-R"],
            environment: password().map { ["PGPASSWORD": $0] } ?? [:], what: "pg_rewind of \(name)")
        if rewind.text.contains("no rewind required") { progress("no rewind required") }
        // pg_rewind copied the primary's files, ours among them: this node's own settings again.
        try writeNodeSettings(node)
        progress("start \(name) as a replica of \(primary.name)")
        try await startServer(node, binaries: binaries, runner: runner)
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let own = try await status().first(where: { $0.node == node }), own.role == .replica, own.walReceiver == "streaming" { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw LocalClusterError(.notRunning, "\(name) started but does not stream from \(primary.name) after 30 s; see \(logFile(node).path)")
    }

    // MARK: delay

    /// Sets `recovery_min_apply_delay` on a replica (0 clears it), so it replays WAL that
    /// many milliseconds behind the primary.
    public func delay(node name: String, milliseconds: Int) async throws {
        guard milliseconds >= 0 else {
            throw LocalClusterError(.invalidArgument, "delay must be 0 or more milliseconds")
        }
        let node = try node(named: name)
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(
                conninfo(for: node), label: node.name, options: ConnectOptions(connectTimeout: .seconds(5)))
        } catch let error as PostgresError {
            throw LocalClusterError(.notRunning, "\(node.name) is not reachable: \(error.message)")
        }
        try await connection.closing { connection in
            guard try await connection.serverInfo().inRecovery else {
                throw LocalClusterError(.notAReplica, "\(node.name) is a primary: only replicas can be delayed")
            }
            if try manifest().patroni != nil {
                // Patroni rewrites recovery settings in the files it owns; ours it leaves alone.
                try writeLocalSettings(node, delayMilliseconds: milliseconds, runner: try ProcessRunner.forCurrentUser(workingDirectory: directory))
            } else if milliseconds == 0 {
                _ = try await connection.query("alter system reset recovery_min_apply_delay")
            } else {
                _ = try await connection.query("alter system set recovery_min_apply_delay = '\(milliseconds)ms'")
            }
            _ = try await connection.query("select pg_reload_conf()")
        }
    }

    // MARK: status

    /// Every node's process and replication state, read from the servers.
    public func status() async throws -> [LocalNodeStatus] {
        let manifest = try manifest()
        let binaries = try await serverBinaries()
        let runner = try ProcessRunner.forCurrentUser(workingDirectory: directory)
        var statuses: [LocalNodeStatus] = []
        let members = manifest.patroni == nil ? nil : await patroniMembers(manifest)
        for node in manifest.nodes {
            var status = LocalNodeStatus(node: node, running: try await isRunning(node, binaries: binaries, runner: runner))
            if node.bouncerPort != nil { status.bouncerRunning = isBouncerRunning(node) }
            if manifest.patroni != nil {
                status.patroni = members.map { $0[node.name].map { "\($0.role) \($0.state)" } ?? "not a member" } ?? "Patroni not answering"
            }
            if status.running {
                do {
                    let connection = try await PostgresConnection.connect(
                        conninfo(for: node), label: node.name, options: ConnectOptions(connectTimeout: .seconds(3)))
                    let row = try await connection.query(
                        """
                        select pg_is_in_recovery(),
                               case when pg_is_in_recovery() then pg_last_wal_replay_lsn() else pg_current_wal_lsn() end,
                               (select status from pg_stat_wal_receiver)
                        """
                    ).first
                    await connection.close()
                    if let row {
                        let inRecovery = try row.decode(0, as: Bool.self)
                        status.inRecovery = inRecovery
                        status.role = inRecovery ? .replica : .primary
                        status.lsn = try row.decode(1, as: LSN?.self)
                        status.walReceiver = try row.decode(2, as: String?.self)
                    }
                } catch {
                    status.problem = "\(error)"
                }
            }
            statuses.append(status)
        }
        return statuses
    }
}

/// What `cluster status` shows for one node.
public struct LocalNodeStatus: Sendable, Equatable {
    public enum Role: String, Sendable { case primary, replica, unknown }

    public var node: LocalNode
    public var running: Bool
    public var role: Role = .unknown
    public var inRecovery: Bool?
    /// Current WAL position on a primary, last replayed position on a replica.
    public var lsn: LSN?
    /// `pg_stat_wal_receiver.status` on a replica (`streaming` when healthy).
    public var walReceiver: String?
    /// Why the server could not be asked, when it is running but did not answer.
    public var problem: String?
    /// Patroni's role and state for the node (clusters with `--ha patroni`).
    public var patroni: String?
    /// Whether the node's PgBouncer runs (clusters with `--pgbouncer`).
    public var bouncerRunning: Bool?
}
