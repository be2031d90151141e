import Foundation
import LocalCluster
import PostgresClient

#if canImport(Glibc)
import Glibc
#endif

/// A real primary + replicas for one test process, in a temporary folder on free ports.
///
/// Start it once (a suite-wide scope in the test target does) and stop it at the end;
/// ``stop()`` runs also when tests fail. Clusters left behind by a test process that
/// crashed are stopped and removed by the next ``start(replicas:)``, and an `atexit`
/// hook kills the servers of a process that exits without stopping them.
public final class TestCluster: Sendable {
    /// The cluster of the current test scope, set by the test target's suite trait.
    @TaskLocal public static var current: TestCluster?

    public let local: LocalCluster
    public let nodes: [LocalNode]

    public static let root = URL(fileURLWithPath: "/tmp/switchyard-tests")

    private init(local: LocalCluster, nodes: [LocalNode]) {
        self.local = local
        self.nodes = nodes
    }

    /// The cluster of the enclosing scope; throws outside one.
    public static func shared() throws -> TestCluster {
        guard let current else {
            throw LocalClusterError(.noCluster, "this test needs a real cluster: put it inside a @Suite(.realCluster)")
        }
        return current
    }

    /// The way a test reaches the nodes: straight to PostgreSQL, or through the PgBouncer
    /// (transaction pooling) in front of each node. Tests that must hold on both take it
    /// as an argument.
    public enum Path: String, CaseIterable, Sendable, CustomStringConvertible {
        case direct, pgbouncer
        public var description: String { rawValue }
    }

    /// With `pgbouncer`, each node also gets a PgBouncer (`cluster up --pgbouncer`); the
    /// cluster's own `switchyard.toml` stays the direct one, the bouncer path's is
    /// ``configPath(_:)``.
    public static func start(replicas: Int = 2, pgbouncer: Bool = false) async throws -> TestCluster {
        sweepAbandoned()
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        // A short path: the data folders live here.
        let directory = root.appendingPathComponent("run-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        let ports = (replicas + 1) * (pgbouncer ? 2 : 1)
        guard let basePort = PortCheck.freeRange(count: ports) else {
            throw LocalClusterError(.portInUse, "no \(ports) free consecutive ports found for the test cluster")
        }
        let local = LocalCluster(directory: directory)
        Registry.shared.add(directory)
        do {
            var statuses = try await local.up(basePort: basePort, replicas: replicas)
            if pgbouncer {
                let direct = try Data(contentsOf: local.configURL)
                statuses = try await local.up(basePort: basePort, replicas: replicas, pgbouncer: true)
                try FileManager.default.moveItem(at: local.configURL, to: directory.appendingPathComponent("switchyard-pgbouncer.toml"))
                try direct.write(to: local.configURL)
            }
            let cluster = TestCluster(local: local, nodes: statuses.map(\.node))
            try await cluster.waitForStreaming()
            return cluster
        } catch {
            killServers(in: directory)
            try? FileManager.default.removeItem(at: directory)
            Registry.shared.remove(directory)
            throw error
        }
    }

    /// A Patroni-managed cluster (etcd + one Patroni per node, `cluster up --ha patroni`)
    /// in its own folder on free ports. Fails, saying how to install them, when Patroni or
    /// etcd is missing.
    public static func startPatroni(replicas: Int = 2) async throws -> TestCluster {
        sweepAbandoned()
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let directory = root.appendingPathComponent("patroni-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        let count = 2 * (replicas + 1) + 2
        guard let basePort = PortCheck.freeRange(count: count) else {
            throw LocalClusterError(.portInUse, "no \(count) free consecutive ports found for the Patroni test cluster")
        }
        let local = LocalCluster(directory: directory)
        Registry.shared.add(directory)
        do {
            let started = ContinuousClock.now
            let statuses = try await local.up(basePort: basePort, replicas: replicas, engine: .patroni) { step in
                if step.contains("vanished") { print("Patroni test cluster: \(step)") }
            }
            print("Patroni test cluster: 1 leader + \(replicas) streaming replicas in \(ContinuousClock.now - started)")
            return TestCluster(local: local, nodes: statuses.map(\.node))
        } catch {
            killServers(in: directory)
            try? FileManager.default.removeItem(at: directory)
            Registry.shared.remove(directory)
            throw error
        }
    }

    /// Stops every server and removes the folder.
    public func stop() async {
        try? await local.down(mode: .immediate)
        Self.killServers(in: local.directory)
        try? FileManager.default.removeItem(at: local.directory)
        Registry.shared.remove(local.directory)
    }

    // MARK: Connections

    public var primary: LocalNode { nodes[0] }
    public var replicas: [LocalNode] { Array(nodes.dropFirst()) }

    public func node(_ name: String) throws -> LocalNode { try local.node(named: name) }

    public func conninfo(_ name: String, database: String? = nil, path: Path = .direct) throws -> String {
        guard path == .pgbouncer else { return try local.conninfo(node: name, database: database) }
        guard let bounced = local.bouncerConninfo(for: try node(name), database: database) else {
            throw LocalClusterError(.notRunning, "\(name) has no PgBouncer: start the cluster with pgbouncer: true")
        }
        return bounced
    }

    /// The `switchyard.toml` of `path`: the cluster's own, or its PgBouncer twin (app
    /// traffic through the bouncers, probes straight to the servers).
    public func configPath(_ path: Path) -> String {
        path == .direct ? local.configURL.path : local.directory.appendingPathComponent("switchyard-pgbouncer.toml").path
    }

    public func connect(
        _ name: String, path: Path = .direct, options: ConnectOptions = ConnectOptions(connectTimeout: .seconds(5))
    ) async throws -> PostgresConnection {
        // Behind a transaction pooler every statement goes unnamed.
        var options = options
        if path == .pgbouncer { options.statementCacheCapacity = 0 }
        return try await PostgresConnection.connect(try conninfo(name, path: path), label: name, options: options)
    }

    /// Runs `body` with a connection to `name`, closing it afterwards.
    public func withConnection<T: Sendable>(_ name: String, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await connect(name).closing(body)
    }

    /// Runs `body` with a fresh schema on the primary (`t_<random>`, quoted by libpq),
    /// dropped afterwards: tests sharing the cluster never see each other's tables.
    public func withSchema<T: Sendable>(_ body: (TestSchema) async throws -> T) async throws -> T {
        let primary = try await connect(self.primary.name)
        let name = "t_" + UUID().uuidString.prefix(8).lowercased()
        let quoted = try await primary.quoteIdentifier(name)
        _ = try await primary.query("create schema \(quoted)")
        let schema = TestSchema(name: name, quoted: quoted, primary: primary)
        do {
            let value = try await body(schema)
            _ = try? await primary.query("drop schema \(quoted) cascade")
            await primary.close()
            return value
        } catch {
            _ = try? await primary.query("drop schema \(quoted) cascade")
            await primary.close()
            throw error
        }
    }

    /// Writes a `switchyard.toml` for this cluster in `folder` with a fast monitor and,
    /// optionally, a JSON Lines query log; returns its path.
    public func writeConfig(
        in folder: URL, name: String, intervalMs: Int = 250, queryLogFile: String? = nil, path: Path = .direct
    ) throws -> String {
        var file = ConfigFile(clusterName: name, nodes: try nodes.map { node in
            guard path == .pgbouncer else { return ConfigFile.Node(name: node.name, conninfo: try conninfo(node.name)) }
            return ConfigFile.Node(
                name: node.name, conninfo: try conninfo(node.name, path: .pgbouncer), monitorConninfo: try conninfo(node.name),
                poolMode: "transaction")
        })
        file.monitorInterval = .milliseconds(intervalMs)
        file.queryLogFile = queryLogFile
        file.patroniEndpoints = ((try? local.patroniEndpoints()) ?? []).map(\.absoluteString)
        let path = folder.appendingPathComponent("switchyard.toml").path
        try file.write(to: path)
        return path
    }

    // MARK: Waiting

    /// Polls `condition` every 50 ms until it holds or `timeout` passes; returns whether it held.
    public static func eventually(
        timeout: Duration = .seconds(15), _ condition: () async throws -> Bool
    ) async rethrows -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            if try await condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return try await condition()
    }

    /// Waits until every replica's WAL receiver is streaming.
    public func waitForStreaming(timeout: Duration = .seconds(30)) async throws {
        let streaming = try await Self.eventually(timeout: timeout) {
            let statuses = try await local.status()
            return statuses.dropFirst().allSatisfy { $0.walReceiver == "streaming" }
        }
        if !streaming {
            throw LocalClusterError(.notRunning, "replicas of the test cluster did not start streaming in time")
        }
    }

    /// Adds a `pg_hba.conf` rule on `node` ahead of the trust rules and reloads it.
    public func prependHBARule(_ rule: String, node name: String) async throws {
        let url = local.dataDirectory(try node(name)).appendingPathComponent("pg_hba.conf")
        let current = try String(contentsOf: url, encoding: .utf8)
        guard !current.contains(rule) else { return }
        try (rule + "\n" + current).write(to: url, atomically: false, encoding: .utf8)
        _ = try await withConnection(name) { try await $0.query("select pg_reload_conf()") }
    }

    // MARK: Cleanup of what a crashed run left

    /// Kills the Patroni, etcd and PgBouncer daemons (SIGKILL: Patroni would restart its
    /// server) and the postmasters (SIGQUIT: immediate shutdown) under `directory`.
    /// Synchronous, so a `defer` can call it.
    public static func killServers(in directory: URL) {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        var pids: [pid_t] = []
        let daemons = entries.map { ($0, $0 == "etcd" ? "etcd" : "patroni") } + entries.map { ($0, "pgbouncer") }
        for (entry, program) in daemons {
            let pidFile = directory.appendingPathComponent("\(entry)/\(program).pid").path
            guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
                let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0,
                let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
                String(decoding: cmdline, as: UTF8.self).contains(program)
            else { continue }
            kill(pid, SIGKILL)
            pids.append(pid)
        }
        for entry in entries {
            let pidFile = directory.appendingPathComponent("\(entry)/data/postmaster.pid").path
            guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
                let line = text.split(separator: "\n").first, let pid = pid_t(line),
                // A postmaster killed earlier leaves its pid file; the pid may be another
                // process's by now (pids wrap).
                let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
                String(decoding: cmdline, as: UTF8.self).contains("postgres")
            else { continue }
            kill(pid, SIGQUIT)
            pids.append(pid)
        }
        // Wait for the servers to be gone: a postmaster still shutting down writes its log
        // again and keeps its folder from being removed.
        let deadline = Date().addingTimeInterval(10)
        while pids.contains(where: isAlive), Date() < deadline { usleep(20_000) }
    }

    /// Alive and not a zombie (nobody may reap a daemon's corpse in a container).
    static func isAlive(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first != "Z"
    }

    /// Removes test clusters whose test process is gone.
    static func sweepAbandoned() {
        let runs = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        // `run-PID-…` and `patroni-PID-…` (shared clusters) and the folders of tests that start clusters of their
        // own (`demo-PID-…`, `trust-PID-…`, `cli-PID-…`).
        for run in runs where ["run-", "demo-", "trust-", "cli-", "patroni-"].contains(where: run.hasPrefix) {
            let parts = run.split(separator: "-")
            guard parts.count >= 2, let owner = pid_t(parts[1]) else { continue }
            if owner == getpid() || kill(owner, 0) == 0 { continue }
            let directory = root.appendingPathComponent(run)
            killServers(in: directory)
            try? FileManager.default.removeItem(at: directory)
        }
    }

    /// Folders of this process's clusters, for the exit hook.
    final class Registry: @unchecked Sendable {
        static let shared = Registry()
        private let lock = NSLock()
        private var directories: Set<URL> = []
        private var hooked = false

        func add(_ directory: URL) {
            lock.lock()
            defer { lock.unlock() }
            directories.insert(directory)
            if !hooked {
                hooked = true
                atexit { TestCluster.Registry.shared.killAll() }
            }
        }

        func remove(_ directory: URL) {
            lock.lock()
            defer { lock.unlock() }
            directories.remove(directory)
        }

        func killAll() {
            lock.lock()
            let remaining = directories
            lock.unlock()
            for directory in remaining { TestCluster.killServers(in: directory) }
        }
    }
}

/// Runs `body`, then `cleanup`, also when `body` throws (an async `defer`).
public func ensuring<T>(_ body: () async throws -> T, finally cleanup: () async -> Void) async throws -> T {
    do {
        let value = try await body()
        await cleanup()
        return value
    } catch {
        await cleanup()
        throw error
    }
}

/// A schema of its own for one test, on the primary.
public struct TestSchema: Sendable {
    /// Plain name, e.g. `t_3fa85f64`.
    public let name: String
    /// Quoted by libpq, ready to put in SQL.
    public let quoted: String
    /// A connection to the primary, open for the test's duration.
    public let primary: PostgresConnection

    /// `schema.table`, both quoted.
    public func table(_ table: String) async throws -> String {
        "\(quoted).\(try await primary.quoteIdentifier(table))"
    }
}
