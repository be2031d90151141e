import Dispatch
import Foundation
import Switchyard
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Runs the console: the UI loop on a thread of its own (curses is called only there),
/// database work in tasks in the admin context, the side pane fed by the monitor and the
/// query log.
public final class ConsoleApp: Sendable {
    public let cluster: Cluster
    /// One service for the session: it remembers that the history table exists.
    private let service: DataService
    public let theme: Theme
    public let initialTable: String?
    /// Other processes' query logs shown in the pane beside this console's own.
    public let follower: QueryLogFollower?
    /// Where the SQL prompt's statements are kept (nil: not kept).
    public let promptHistory: PromptHistory?

    private let inbox = Mutex<[ConsoleEvent]>([])
    private let work = TaskRegistry()
    private let stopRequested = Atomic<Bool>(false)
    /// Writes the SQL prompt's history file, in order.
    private let historyWriter = DispatchQueue(label: "switchyard prompt history")

    public init(
        cluster: Cluster, theme: Theme, initialTable: String? = nil, follow patterns: [String] = [],
        promptHistory: PromptHistory? = .standard()
    ) {
        self.cluster = cluster
        self.service = DataService(
            cluster: cluster, audit: cluster.configuration.consoleAudit, promptHold: cluster.configuration.promptHold,
            readOnly: cluster.configuration.readOnly)
        self.promptHistory = promptHistory
        self.theme = theme
        self.initialTable = initialTable
        follower = patterns.isEmpty ? nil : QueryLogFollower(patterns: patterns)
    }

    /// Entries of followed files kept for the pane (the newest).
    /// Entries kept per followed source (this console's own: its query log's capacity):
    /// an app's flood never pushes out another source's statements.
    static let followedKept = 10_000

    /// Hands an event to the UI loop (from any task).
    func post(_ event: ConsoleEvent) { inbox.withLock { $0.append(event) } }

    /// Runs until the user quits or SIGINT/SIGTERM/SIGHUP arrives; the terminal is
    /// restored in every case.
    public func run(driver makeDriver: @escaping @Sendable () -> any TerminalDriver) async {
        _ = await run(terminal: Terminal(makeDriver))
    }

    /// The terminal one console after another uses (switching clusters keeps it), made on
    /// first use on the UI thread.
    public final class Terminal: @unchecked Sendable {
        private let make: @Sendable () -> any TerminalDriver
        private var driver: (any TerminalDriver)?  // touched by the UI thread of one run at a time

        public init(_ make: @escaping @Sendable () -> any TerminalDriver) { self.make = make }

        func current() -> any TerminalDriver {
            if let driver { return driver }
            let made = make()
            driver = made
            return made
        }

        func shutdown() {
            driver?.shutdown()
            driver = nil
        }
    }

    /// How a run ended: quit, or a switch to another cluster (`C`); what it showed, to
    /// come back to.
    public struct End: Sendable {
        public var switchTo: String?
        public var state: ConsoleState
    }

    /// Runs until the user quits or switches cluster; `restoring` is what this cluster's
    /// console showed when it was left.
    public func run(terminal: Terminal, restoring: ConsoleState? = nil) async -> End {
        let feeders = startFeeders()
        let signals = installSignalHandlers()
        let ended = await withCheckedContinuation { (continuation: CheckedContinuation<ConsoleState, Never>) in
            let thread = Thread {
                let driver = terminal.current()
                let state = self.loop(driver, restoring: restoring)
                if state.switchTo == nil || self.stopRequested.load(ordering: .relaxed) { terminal.shutdown() }
                continuation.resume(returning: state)
            }
            thread.name = "switchyard console"
            thread.stackSize = 8 << 20
            thread.start()
        }
        signals.forEach { $0.cancel() }
        feeders.forEach { $0.cancel() }
        work.cancelAll()
        // A transaction the SQL prompt held open rolls back with the console.
        service.endPrompt()
        return End(switchTo: stopRequested.load(ordering: .relaxed) ? nil : ended.switchTo, state: ended)
    }

    /// The UI loop, for tests with a ``TextDriver``: runs until `until` says stop or the
    /// console quits.
    @discardableResult
    func loop(_ driver: any TerminalDriver, restoring: ConsoleState? = nil, until shouldStop: (ConsoleState) -> Bool = { _ in false }) -> ConsoleState {
        let size = driver.size
        var state = ConsoleState(
            width: size.width, height: size.height, clusterName: cluster.configuration.name,
            warnLag: cluster.configuration.warnLag, criticalLag: cluster.configuration.criticalLag)
        if var saved = restoring {
            // Back on this cluster: its place as it was left, answers it was waiting for forgotten.
            saved.width = size.width
            saved.height = size.height
            saved.quit = false
            saved.switchTo = nil
            saved.busy = nil
            saved.pending = nil
            saved.pendingWrites = false
            saved.queuedKeys = []
            saved.mode = .browse
            saved.reloadGridOnLoad = saved.grid != nil
            saved.message = saved.message ?? "back on \(cluster.configuration.name)"
            state = saved
        }
        let initialTopology = cluster.monitor.topology
        _ = state.reduce(.topology(initialTopology, history: history(initialTopology)))
        state.openOnLoad = initialTable
        state.exportNull = cluster.configuration.exportNull
        state.promptHistory = promptHistory?.load() ?? []
        state.readOnly = cluster.configuration.readOnly
        state.protected = cluster.configuration.protected
        state.clusterColor = cluster.configuration.color
        state.clusterNames = cluster.configuration.clusterNames
        var effects = state.reduce(.start)
        var drawn: ConsoleState?
        while !state.quit && !stopRequested.load(ordering: .relaxed) && !shouldStop(state) {
            while !effects.isEmpty {
                let effect = effects.removeFirst()
                if case .setClipboard(let text) = effect {
                    driver.setClipboard(text)
                    continue
                }
                if case .editExternally(let text) = effect {
                    // The terminal belongs to the editor until it exits.
                    var outcome = ConsoleEvent.externallyEdited(nil, problem: "the editor did not run")
                    driver.suspend { outcome = ExternalEditor.edit(text) }
                    drawn = nil
                    effects += state.reduce(outcome)
                    continue
                }
                dispatch(effect, &state)
            }
            if state.quit { break }
            // Render only when something changed; the driver then redraws changed rows only.
            if state != drawn {
                driver.draw(Renderer.render(state))
                drawn = state
            }
            var events: [ConsoleEvent] = []
            if let input = driver.nextInput(timeout: .milliseconds(state.busy == nil ? 100 : 80)) {
                switch input {
                case .key(.control("l")):
                    // Repaint the whole screen, whatever the console thinks it shows.
                    driver.invalidate()
                    drawn = nil
                case .key(let key): events.append(.key(key))
                case .resize(let width, let height): events.append(.resize(width: width, height: height))
                }
            } else if state.busy != nil {
                events.append(.tick)
            }
            events += inbox.withLock { inbox in
                defer { inbox.removeAll() }
                return inbox
            }
            for event in events { effects += state.reduce(event) }
        }
        return state
    }

    private func dispatch(_ effect: ConsoleEffect, _ state: inout ConsoleState) {
        switch effect {
        case .quit:
            state.quit = true
        case .cancel(let request):
            work.cancel(request)
        case .endPrompt:
            service.endPrompt()
        case .rememberStatement(let statement):
            guard let promptHistory else { return }
            // Off the UI thread (a slow or full disk never stalls a key), one write at a time.
            historyWriter.async {
                do {
                    try promptHistory.append(statement)
                } catch {
                    self.post(.warning("the SQL prompt history cannot be kept in \(promptHistory.path): \(error.localizedDescription)"))
                }
            }
        default:
            guard let request = effect.request else { return }
            let service = self.service
            work.start(request) {
                if let event = await service.perform(effect, progress: { self.post($0) }) { self.post(event) }
            }
        }
    }

    /// Lag history in milliseconds per node, for sparklines.
    private func history(_ topology: Topology) -> [String: [Double?]] {
        var result: [String: [Double?]] = [:]
        for node in topology.nodes {
            result[node.name] = cluster.monitor.history(of: node.name).map { $0.reachable ? $0.lagMilliseconds : nil }
        }
        return result
    }

    private func startFeeders() -> [Task<Void, Never>] {
        let topologyFeed = Task {
            for await topology in cluster.monitor.updates() {
                post(.topology(topology, history: history(topology)))
            }
        }
        let logFeed = Task {
            // At most five redraws a second for the log, however busy the cluster is.
            var lastID: UInt64 = 0
            var lastProblem: String?
            var lastFollowProblem: String?
            var local: [QueryLogEntry] = []
            var followed: [String: [QueryLogEntry]] = [:]
            var followedChanged = false
            var lastFiles = -1
            while !Task.isCancelled {
                if let follower {
                    let batch = follower.poll()
                    if !batch.isEmpty {
                        for item in batch {
                            var entry = item.entry
                            entry.source = item.source
                            entry.file = item.path
                            followed[item.source, default: []].append(entry)
                        }
                        for source in Set(batch.map(\.source)) {
                            let excess = followed[source]!.count - Self.followedKept
                            if excess > 0 { followed[source]!.removeFirst(excess) }
                        }
                        followedChanged = true
                    }
                    let status = follower.status
                    if status.files.count != lastFiles {
                        if status.files.isEmpty {
                            post(.warning("--follow: no file matches \(follower.patterns.joined(separator: ", ")) (yet); watching"))
                        }
                        lastFiles = status.files.count
                        post(.followedFiles(lastFiles))
                    }
                    if let problem = status.problem, problem != lastFollowProblem { post(.warning(problem)) }
                    lastFollowProblem = status.problem
                }
                let fresh = cluster.log.entries(after: lastID)
                if !fresh.isEmpty {
                    local += fresh
                    lastID = fresh.last!.id
                    let excess = local.count - cluster.log.capacity
                    if excess > 0 { local.removeFirst(excess) }
                }
                if !fresh.isEmpty || followedChanged {
                    followedChanged = false
                    post(.log(Self.merge(local, Array(followed.values))))
                }
                // A failing query log file is reported once; the console carries on.
                let problem = cluster.log.file?.problem
                if let problem, problem != lastProblem { post(.warning(problem)) }
                lastProblem = problem
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        return [topologyFeed, logFeed]
    }

    /// This console's entries and each followed source's, by time: every list is in time
    /// order already, so they are merged pairwise in linear time (ties keep list order).
    static func merge(_ local: [QueryLogEntry], _ followed: [[QueryLogEntry]]) -> [QueryLogEntry] {
        followed.reduce(local) { merged, next in
            guard !next.isEmpty else { return merged }
            var result: [QueryLogEntry] = []
            result.reserveCapacity(merged.count + next.count)
            var i = 0, j = 0
            while i < merged.count, j < next.count {
                if next[j].time < merged[i].time { result.append(next[j]); j += 1 } else { result.append(merged[i]); i += 1 }
            }
            result += merged[i...]
            result += next[j...]
            return result
        }
    }

    private func installSignalHandlers() -> [DispatchSourceSignal] {
        [SIGINT, SIGTERM, SIGHUP].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [weak self] in self?.stopRequested.store(true, ordering: .relaxed) }
            source.resume()
            return source
        }
    }
}

extension ConsoleEffect {
    var request: Int? {
        switch self {
        case .loadTables(let request), .openTable(_, let request), .loadPage(_, _, _, _, _, let request, _),
            .update(_, _, _, _, let request), .insert(_, _, let request), .delete(_, _, _, let request), .cancel(let request), .loadHistory(_, _, let request), .follow(_, _, _, let request), .loadReferences(_, _, let request), .openReferencing(_, let request), .refreshView(_, let request), .export(_, let request),
            .loadValue(_, _, _, let request),
            .runChecks(let request), .promote(_, let request), .runStatement(_, _, let request), .promptCommand(_, let request), .prepareRevert(_, let request), .revert(_, let request), .copyRow(_, _, _, _, let request):
            return request
        case .quit, .editExternally, .endPrompt, .rememberStatement, .setClipboard:
            return nil
        }
    }
}

extension ConsoleEffect {
    /// Whether the effect commits a write to the database (what `[cluster] protected` asks
    /// the cluster's name for).
    var commitsWrite: Bool {
        switch self {
        case .update, .insert, .delete, .revert, .refreshView, .promptCommand(.commit, _): return true
        default: return false
        }
    }

    /// What the write does, for the protected confirmation.
    var writeSummary: String {
        switch self {
        case .update(let shape, _, let changes, _, _):
            return "update \(changes.keys.sorted().compactMap { shape.columns.indices.contains($0) ? shape.columns[$0].name : nil }.joined(separator: ", ")) of a row of \(shape.table.qualifiedName)"
        case .insert(let shape, _, _): return "insert a row into \(shape.table.qualifiedName)"
        case .delete(let shape, _, _, _): return "delete a row of \(shape.table.qualifiedName)"
        case .revert(let plan, _): return "revert change #\(plan.change.id) (\(plan.change.table))"
        case .refreshView(let table, _): return "refresh \(table.qualifiedName)"
        case .promptCommand: return "commit the statement held open"
        default: return "write"
        }
    }
}
