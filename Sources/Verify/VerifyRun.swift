import Foundation
import LocalCluster
import PostgresClient
import Storefront
import Switchyard

/// What `switchyard verify` runs.
public struct VerifyOptions: Sendable {
    public var seconds: Int = 40
    public var clients: Int = 8
    public var seed: UInt64 = UInt64.random(in: 0...UInt64(UInt32.max))
    public var faults: [Fault] = [.killReplica, .stopReplica, .delayReplica, .blackholeReplica]
    /// Runs the routing with `monotonic_reads` and checks it.
    public var monotonicReads = true
    /// Keys each client owns.
    public var keysPerClient = 4
    /// Drive the sample storefront over HTTP (visitors with cookie jars) instead of the
    /// library; keys are customers, values their names.
    public var http = false
    /// Where to write the whole history as JSON Lines (one operation a line, then one
    /// line per fault window), for a closer look; nil: nowhere.
    public var historyFile: String?
    /// The storefront's answer deadline (`--http`): an answer later than this is a violation.
    public var requestDeadline: Duration = .seconds(5)

    public init() {}
}

/// The outcome of a run: the history's size, what the checker found, the faults.
public struct VerifyReport: Codable, Sendable {
    public var seed: UInt64
    public var seconds: Double
    public var clients: Int
    public var operations: Int
    public var violations: [Violation]
    public var lostWrites: [LostWrite]
    public var faultsInjected: [String: Int]
    public var faults: [FaultWindow]
    public var figures: Figures

    public struct Figures: Codable, Sendable {
        public var operationsPerSecond: Double
        public var reads: Int
        public var readsOnReplicas: Int
        public var writes: Int
        public var failedOperations: Int
        public var unknownWrites: Int
        /// The longest any read took, and the 99th percentile (ms).
        public var maxReadMilliseconds: Double
        public var p99ReadMilliseconds: Double
        /// The longest a read took that began while a blackhole was on (ms).
        public var maxReadDuringBlackholeMilliseconds: Double?
        /// For faults that may lose writes: from the fault's start to the completion of the
        /// last acknowledged write that was lost (s) — how long the old primary went on
        /// acknowledging writes nobody would keep.
        public var lossWindowSeconds: Double?
    }
}

/// Runs a randomized workload from many clients against a local cluster through the
/// routing library, injects faults on a schedule, records every operation's invocation
/// and completion, then checks the history (``HistoryChecker``).
public struct VerifyRun: Sendable {
    public let local: LocalCluster
    public let configuration: ClusterConfiguration
    public let options: VerifyOptions

    static let schema = "switchyard_verify"

    public init(local: LocalCluster, configuration: ClusterConfiguration, options: VerifyOptions) {
        self.local = local
        var configuration = configuration
        configuration.monotonicReads = options.monotonicReads
        configuration.readYourWrites = true
        configuration.pinWindow = .zero
        configuration.http.serverTiming = true
        self.configuration = configuration
        self.options = options
    }

    public func run(progress: @escaping @Sendable (String) -> Void = { _ in }) async throws -> VerifyReport {
        let patroni = local.engine == .patroni
        for fault in options.faults {
            if fault.needsPatroni && !patroni { throw VerifyError("\(fault.rawValue) needs a Patroni cluster (cluster up --ha patroni)") }
            if fault.plainOnly && patroni { throw VerifyError("\(fault.rawValue) is for plain clusters: Patroni repairs it by itself") }
        }
        let cluster = try Cluster(configuration: configuration, log: QueryLog(capacity: 1000))
        await cluster.start()
        defer { Task { await cluster.shutdown() } }
        let shop = options.http
            ? try await VerifyStorefront.start(
                cluster: cluster, requestDeadline: options.requestDeadline, keys: options.clients * options.keysPerClient)
            : nil
        try await prepare(cluster)
        defer { if let shop { Task { await shop.stop() } } }
        let recorder = Recorder()
        let tossing = Flag()
        let injector = FaultInjector(local: local, tossing: tossing)
        let clock = ContinuousClock()
        let began = clock.now
        let seconds = Double(options.seconds)
        let now: @Sendable () -> Double = { (clock.now - began).seconds }
        let deadline = began + .seconds(options.seconds)

        let windows = WindowLog()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for client in 0..<options.clients {
                group.addTask {
                    var client = Client(
                        id: client, cluster: cluster, recorder: recorder, tossing: tossing, keysPerClient: self.options.keysPerClient,
                        clients: self.options.clients, random: SplitMix(seed: self.options.seed &+ UInt64(client) &* 0x9E37_79B9),
                        http: shop.map { HTTPOperations(visitor: StorefrontVisitor(baseURL: $0.baseURL), client: client, recorder: recorder) })
                    while clock.now < deadline {
                        let before = recorder.failures
                        await client.step(now: now)
                        // A client whose request failed waits a little before the next, as
                        // a visitor or an app's retry would: no failing in a tight loop.
                        if recorder.failures > before { try? await Task.sleep(for: .milliseconds(20)) }
                    }
                }
            }
            group.addTask {
                try await self.schedule(injector, cluster: cluster, windows: windows, now: now, seconds: seconds, progress: progress)
            }
            try await group.waitForAll()
        }
        progress("workload done; checking the final state on the primary")
        let keys = options.clients * options.keysPerClient
        let final = shop == nil ? try await finalState(cluster) : try await VerifyStorefront.finalState(cluster, keys: keys)
        let operations = recorder.operations
        let faults = windows.windows
        let checker = HistoryChecker(
            monotonicReads: options.monotonicReads, registers: shop != nil,
            deadline: shop == nil ? nil : options.requestDeadline.seconds + 0.5)
        let report = checker.check(operations, faults: faults, final: final)
        if let path = options.historyFile { try Self.writeHistory(operations, faults: faults, to: path) }
        return VerifyReport(
            seed: options.seed, seconds: seconds, clients: options.clients, operations: operations.count,
            violations: report.violations, lostWrites: report.lostWrites,
            faultsInjected: Dictionary(grouping: faults, by: \.fault).mapValues(\.count), faults: faults,
            figures: Self.figures(
                operations, faults: faults, lost: report.lostWrites, seconds: seconds, nodes: configuration.nodes.map(\.name), cluster: cluster))
    }

    /// A fresh table for the run, on the primary, replicated before the clients start.
    private func prepare(_ cluster: Cluster) async throws {
        _ = try await cluster.execute("drop schema if exists \(Self.schema) cascade")
        _ = try await cluster.execute("create schema \(Self.schema)")
        _ = try await cluster.execute("create table \(Self.schema).writes (key int not null, value int not null, primary key (key, value))")
        let topology = await cluster.monitor.probeNow()
        if let position = topology.primary?.currentLSN {
            for _ in 0..<100 {
                let now = await cluster.monitor.probeNow()
                if now.nodes.filter({ $0.role == .replica }).allSatisfy({ ($0.replayLSN ?? LSN(0)) >= position }) { break }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    /// Every fault in turn, each at least once, spread over the run; all healed by the end.
    private func schedule(
        _ injector: FaultInjector, cluster: Cluster, windows: WindowLog, now: @Sendable () -> Double, seconds: Double,
        progress: @Sendable (String) -> Void
    ) async throws {
        guard !options.faults.isEmpty else { return }
        // Spread over the run, each fault in turn, again and again on a long run: a slot is
        // the longest hold plus time to settle between faults.
        let longest = options.faults.map(\.hold.seconds).max() ?? 1
        let slot = max(3.0, min((seconds - 2) / Double(options.faults.count), longest + 4))
        var rounds = 0
        while true {
            let fault = options.faults[rounds % options.faults.count]
            let start = max(now(), 1.0 + Double(rounds) * slot)
            // Every fault once; more rounds only while they can end before the clients stop.
            let room = seconds - start - 0.5
            guard rounds < options.faults.count || room >= 1.5 else { return }
            // Roles from the monitor's current picture: a promotion moves them.
            let topology = await cluster.monitor.probeNow()
            let nodes = try local.nodes()
            let replicas = nodes.filter { topology.node($0.name)?.role == .replica && topology.node($0.name)?.reachable == true }
            guard let primary = nodes.first(where: { $0.name == topology.primary?.name }), !replicas.isEmpty else {
                throw VerifyError("the cluster has no primary and replica to fault now")
            }
            let replica = replicas[(rounds / options.faults.count + rounds) % replicas.count]
            let target = fault.targetsPrimary ? primary : replica
            let hold = min(fault.hold.seconds, max(slot - 1.5, 1), max(room, 1))
            if start > now() { try await Task.sleep(for: .seconds(start - now())) }
            let begun = now()
            progress(String(format: "%6.1f s  %@ %@", begun, fault.rawValue, target.name))
            let heal = try await injector.inject(fault, on: target, primary: primary, others: replicas.filter { $0 != replica })
            try await Task.sleep(for: .seconds(hold))
            try await heal()
            windows.add(FaultWindow(
                fault: fault.rawValue, target: fault == .cookieToss ? "clients" : target.name, start: begun, end: now(),
                mayLoseWrites: fault.mayLoseWrites))
            progress(String(format: "%6.1f s  healed %@ %@", now(), fault.rawValue, target.name))
            rounds += 1
        }
    }

    /// Every (key, value) on the final primary, once the monitor sees one.
    private func finalState(_ cluster: Cluster) async throws -> Set<KeyValue> {
        for _ in 0..<100 where cluster.monitor.topology.primary == nil { try await Task.sleep(for: .milliseconds(100)) }
        let rows = try await cluster.query("select key, value from \(Self.schema).writes")
        var state = Set<KeyValue>()
        for row in rows.rows { state.insert(KeyValue(key: try row.decode(0, as: Int.self), value: try row.decode(1, as: Int.self))) }
        return state
    }

    /// The history as JSON Lines, in a new file (0600; an existing one is not overwritten).
    static func writeHistory(_ operations: [VerifyOperation], faults: [FaultWindow], to path: String) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw VerifyError("cannot create \(path): \(String(cString: strerror(errno)))") }
        let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var buffer = Data()
        for operation in operations {
            buffer.append(try encoder.encode(operation))
            buffer.append(0x0A)
        }
        for fault in faults {
            buffer.append(try encoder.encode(fault))
            buffer.append(0x0A)
        }
        try handle.write(contentsOf: buffer)
    }

    static func figures(
        _ operations: [VerifyOperation], faults: [FaultWindow], lost: [LostWrite], seconds: Double, nodes: [String], cluster: Cluster
    ) -> VerifyReport.Figures {
        let ends = Dictionary(uniqueKeysWithValues: operations.map { ($0.id, $0.end) })
        let lossWindows = faults.filter(\.mayLoseWrites).compactMap { window -> Double? in
            let last = lost.compactMap { ends[$0.operation] }.filter { window.contains($0, slack: 2) }.max()
            return last.map { max(0, $0 - window.start) }
        }
        let reads = operations.filter(\.isRead)
        let primary = cluster.monitor.topology.primary?.name
        let durations = reads.filter { $0.outcome == .ok }.map { ($0.end - $0.start) * 1000 }.sorted()
        let blackholes = faults.filter { $0.fault == Fault.blackholeReplica.rawValue }
        let duringBlackhole = reads.filter { read in blackholes.contains { read.start >= $0.start && read.start <= ($0.end ?? .infinity) } }
        return VerifyReport.Figures(
            operationsPerSecond: Double(operations.count) / max(seconds, 0.001),
            reads: reads.count,
            readsOnReplicas: reads.filter { $0.outcome == .ok && $0.node != nil && $0.node != primary }.count,
            writes: operations.filter(\.writes).count,
            failedOperations: operations.filter { $0.outcome != .ok }.count,
            unknownWrites: operations.filter { $0.writes && $0.outcome == .unknown }.count,
            maxReadMilliseconds: durations.last ?? 0,
            p99ReadMilliseconds: durations.isEmpty ? 0 : durations[min(durations.count - 1, Int(Double(durations.count) * 0.99))],
            maxReadDuringBlackholeMilliseconds: blackholes.isEmpty ? nil : duringBlackhole.map { ($0.end - $0.start) * 1000 }.max() ?? 0,
            lossWindowSeconds: lossWindows.max())
    }
}

/// One client: runs units of work one at a time, carrying its token between them as a
/// browser carries a cookie.
struct Client {
    let id: Int
    let cluster: Cluster
    let recorder: Recorder
    let tossing: Flag
    let keysPerClient: Int
    let clients: Int
    var random: SplitMix
    /// Over HTTP through the storefront, when set; else through the library.
    let http: HTTPOperations?
    var sequence = 0
    var carried: ConsistencyToken?
    var unit = 0

    static let forged = [ConsistencyToken(lsn: LSN(UInt64.max)), ConsistencyToken(lsn: LSN(0))]

    mutating func step(now: @Sendable () -> Double) async {
        unit += 1
        var tokens = carried.map { [$0] } ?? []
        if tossing.isSet { tokens.insert(Self.forged[Int(random.next() % 2)], at: 0) }
        let own = id * keysPerClient + Int(random.next() % UInt64(keysPerClient))
        let roll = random.next() % 100
        let other = Int(random.next() % UInt64(clients * keysPerClient))
        let next = sequence + 1
        if let http {
            // A visitor: the cookie jar carries the token between requests.
            let planted = tossing.isSet ? [HTTPOperations.planted[Int(random.next() % 2)]] : []
            var wrote = false
            if roll < 40 || roll >= 90 {
                let outcome = await http.write(own, value: next, unit: unit, planted: planted, now: now)
                wrote = outcome == .ok || outcome == .unknown
                if outcome == .ok { await http.read(.read, own, unit: unit, planted: planted, now: now) }
            } else if roll < 70 {
                await http.read(.read, own, unit: unit, planted: planted, now: now)
            } else {
                await http.read(.readOther, other, unit: unit, planted: planted, now: now)
            }
            if wrote { sequence = next }
            return
        }
        let context = RoutingContext.public
        let this = self
        let unit = self.unit
        let result: (ConsistencyToken?, Bool) = await context.run(tokens: tokens) {
            var wrote = false
            if roll < 40 {
                let outcome = await this.write(own, value: next, unit: unit, now: now)
                wrote = outcome == .ok || outcome == .unknown
                if outcome == .ok { await this.read(.read, own, unit: unit, now: now) }
            } else if roll < 70 {
                await this.read(.read, own, unit: unit, now: now)
            } else if roll < 90 {
                await this.read(.readOther, other, unit: unit, now: now)
            } else {
                wrote = await this.transaction(own, value: next, unit: unit, now: now)
            }
            return (Cluster.currentToken, wrote)
        }
        carried = result.0
        if result.1 { sequence = next }
    }

    private func write(_ key: Int, value: Int, unit: Int, now: @Sendable () -> Double) async -> VerifyOperation.Outcome {
        let before = Cluster.currentToken?.description
        let start = now()
        do {
            let routed = try await cluster.run(.write, "insert into switchyard_verify.writes (key, value) values ($1, $2)", [key, value])
            recorder.add(VerifyOperation(
                id: 0, client: id, kind: .write, key: key, value: value, node: routed.node, reason: routed.reason.render(node: routed.node),
                tokenBefore: before, tokenAfter: Cluster.currentToken?.description, start: start, end: now(), outcome: .ok, unit: unit))
            return .ok
        } catch {
            let (outcome, errorClass) = Self.classify(error, write: true)
            recorder.add(VerifyOperation(
                id: 0, client: id, kind: .write, key: key, value: value, tokenBefore: before, start: start, end: now(), outcome: outcome,
                errorClass: errorClass, error: "\(error)", unit: unit))
            return outcome
        }
    }

    private func read(_ kind: VerifyOperation.Kind, _ key: Int, unit: Int, now: @Sendable () -> Double) async {
        let before = Cluster.currentToken?.description
        let start = now()
        do {
            let routed = try await cluster.run(.read, "select max(value) from switchyard_verify.writes where key = $1", [key])
            let value = try routed.result.first?.decode(0, as: Int?.self) ?? nil
            recorder.add(VerifyOperation(
                id: 0, client: id, kind: kind, key: key, observed: value, node: routed.node, reason: routed.reason.render(node: routed.node),
                tokenBefore: before, tokenAfter: Cluster.currentToken?.description, start: start, end: now(), outcome: .ok, unit: unit))
        } catch {
            let (outcome, errorClass) = Self.classify(error, write: false)
            var operation = VerifyOperation(
                id: 0, client: id, kind: kind, key: key, tokenBefore: before, start: start, end: now(), outcome: outcome,
                errorClass: errorClass, error: "\(error)", unit: unit)
            if let error = error as? PostgresError {
                operation.node = error.node
                operation.retryable = error.nothingSent || cluster.monitor.topology.node(error.node ?? "")?.role == .replica
            }
            recorder.add(operation)
        }
    }

    private func transaction(_ key: Int, value: Int, unit: Int, now: @Sendable () -> Double) async -> Bool {
        let before = Cluster.currentToken?.description
        let start = now()
        do {
            let (node, observed) = try await cluster.transaction { tx -> (String, Int?) in
                try await tx.execute("insert into switchyard_verify.writes (key, value) values ($1, $2)", [key, value])
                let back = try await tx.query("select max(value) from switchyard_verify.writes where key = $1", [key])
                return (tx.node, try back.first?.decode(0, as: Int?.self) ?? nil)
            }
            recorder.add(VerifyOperation(
                id: 0, client: id, kind: .transaction, key: key, value: value, observed: observed, node: node, reason: "transaction",
                tokenBefore: before, tokenAfter: Cluster.currentToken?.description, start: start, end: now(), outcome: .ok, unit: unit))
            return true
        } catch {
            let (outcome, errorClass) = Self.classify(error, write: true)
            recorder.add(VerifyOperation(
                id: 0, client: id, kind: .transaction, key: key, value: value, tokenBefore: before, start: start, end: now(),
                outcome: outcome, errorClass: errorClass, error: "\(error)", unit: unit))
            return outcome == .unknown
        }
    }

    static func classify(_ error: Error, write: Bool) -> (VerifyOperation.Outcome, VerifyOperation.ErrorClass) {
        if let error = error as? PostgresError {
            if write && (error.outcomeUnknown || error.kind == .cancelled) { return (.unknown, .connection) }
            if error.isConnectionError || error.kind == .timedOut { return (.failed, .connection) }
            return (.failed, .server)
        }
        if error is RoutingError { return (.failed, .routing) }
        return (.failed, .other)
    }
}

/// Collects operations from every client, numbering them in completion order.
final class Recorder: @unchecked Sendable {
    private let lock = NSLock()
    private var recorded: [VerifyOperation] = []

    private var failed = 0

    func add(_ operation: VerifyOperation) {
        lock.withLock {
            var operation = operation
            operation.id = recorded.count + 1
            if operation.outcome != .ok { failed += 1 }
            recorded.append(operation)
        }
    }

    /// Operations that did not succeed so far.
    var failures: Int { lock.withLock { failed } }

    var operations: [VerifyOperation] { lock.withLock { recorded } }
}

final class WindowLog: @unchecked Sendable {
    private let lock = NSLock()
    private var recorded: [FaultWindow] = []
    func add(_ window: FaultWindow) { lock.withLock { recorded.append(window) } }
    var windows: [FaultWindow] { lock.withLock { recorded } }
}

/// A small seeded generator (splitmix64): the same seed gives the same choices.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
