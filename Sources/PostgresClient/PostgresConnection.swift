import CLibPQ
import Foundation
import Synchronization

/// Options applied on top of a connection string.
public struct ConnectOptions: Sendable {
    /// How long libpq waits for the connection (overrides `connect_timeout` in the
    /// conninfo; libpq counts whole seconds, at least 2); nil keeps whatever the conninfo
    /// and environment say.
    public var connectTimeout: Duration?
    /// `statement_timeout` set right after connecting; nil leaves it.
    public var statementTimeout: Duration?
    /// Further settings made right after connecting (`set_config(name, value, false)`),
    /// e.g. `default_transaction_read_only`.
    public var sessionSettings: [String: String] = [:]
    /// How long any one statement may take, kept by this process whatever the server
    /// does (a server whose packets vanish enforces nothing): when it passes, the server is
    /// asked to cancel (the caller gets a `timedOut` error); a server that answers neither
    /// within ``PostgresConnection/cancelGrace`` more is given up (`connectionLost`). Nil:
    /// no bound. A task can override it for its statements with
    /// ``PostgresConnection/withStatementBound(_:_:)``.
    public var statementBound: Duration?
    /// libpq's `tcp_user_timeout`: how long sent data may stay unacknowledged before the
    /// kernel gives the connection up, and TCP keepalives (`keepalives_idle`,
    /// `keepalives_interval`, `keepalives_count`) for a connection that waits in silence.
    /// A partitioned node then costs seconds, not TCP's quarter of an hour of
    /// retransmissions. The conninfo's own settings win; nil leaves libpq's defaults.
    public var tcpUserTimeout: Duration?
    public var keepalives: (idle: Duration, interval: Duration, count: Int)?
    /// `application_name` shown in `pg_stat_activity` unless the conninfo sets one.
    public var fallbackApplicationName: String
    /// Statements kept prepared on the server, per connection (parsed and planned once,
    /// not on every call); 0 sends every statement unnamed — needed behind a pooler in
    /// transaction mode that does not track prepared statements (PgBouncer before 1.21).
    public var statementCacheCapacity: Int

    /// `tcp_user_timeout` unless told otherwise: sent data unacknowledged for this long
    /// ends the connection.
    public static let defaultTCPUserTimeout: Duration = .seconds(10)
    /// Keepalives unless told otherwise: the first probe after 10 s of silence, then every
    /// 3 s, the connection given up after 3 unanswered.
    public static let defaultKeepalives: (idle: Duration, interval: Duration, count: Int) = (.seconds(10), .seconds(3), 3)

    public init(
        connectTimeout: Duration? = nil, statementTimeout: Duration? = nil, fallbackApplicationName: String = "switchyard",
        statementCacheCapacity: Int = 128, statementBound: Duration? = nil,
        tcpUserTimeout: Duration? = ConnectOptions.defaultTCPUserTimeout,
        keepalives: (idle: Duration, interval: Duration, count: Int)? = ConnectOptions.defaultKeepalives
    ) {
        self.connectTimeout = connectTimeout
        self.statementTimeout = statementTimeout
        self.statementBound = statementBound
        self.tcpUserTimeout = tcpUserTimeout
        self.keepalives = keepalives
        self.fallbackApplicationName = fallbackApplicationName
        self.statementCacheCapacity = statementCacheCapacity
    }
}

/// What a connected server says about itself.
public struct ServerInfo: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var inRecovery: Bool
    /// `server_version`, e.g. `15.18 (Debian 15.18-0+deb12u1)`.
    public var serverVersion: String
    /// `PQserverVersion`, e.g. 150018.
    public var serverVersionNumber: Int
}

private struct PGConnPointer: @unchecked Sendable {
    let pointer: OpaquePointer
}

/// One libpq connection.
///
/// libpq runs in non-blocking mode: a statement is sent from the calling task's thread,
/// and only the wait for the answer leaves it (``SocketPoller``, one thread for all
/// connections), so a round trip costs one hand-off and a connection costs no thread.
/// Statements from several tasks queue, first come first served. ``cancel()`` may be
/// called from anywhere; cancelling the calling task cancels its statement on the
/// server too.
public final class PostgresConnection: @unchecked Sendable {
    /// Names this connection in errors: the label given to `connect`, else `host:port`.
    public let label: String
    /// The connection string with its password masked.
    public let redactedConninfo: String

    private let conninfo: String
    private let serial = AsyncSerialLock()
    private let registration: SocketPoller.Registration
    private var pgconn: OpaquePointer?  // touched by the holder of `serial` only (and deinit)
    private var cache: StatementCache  // touched by the holder of `serial` only

    private let lock = NSLock()
    private var cancelHandle: CancelHandle?  // guarded by lock
    private var cancelling = false  // guarded by lock: a cancel request is on its way
    private var closed = false  // guarded by lock
    private var broken = false  // guarded by lock
    private var transaction = TransactionState.idle  // guarded by lock; set after each statement
    private var statementNumber: UInt64 = 0  // guarded by lock
    private var running = false  // guarded by lock: a statement holds the connection
    private var checkedAlive = false  // guarded by lock: `looksAlive()` just polled; the next send need not
    private var deadline: ContinuousClock.Instant?  // guarded by lock: the running statement's bound
    private var startedAt: ContinuousClock.Instant?  // guarded by lock: when the running statement began
    private var runningBound: Duration = .zero  // guarded by lock: the bound that set `deadline`
    private var boundReached = false  // guarded by lock: the running statement passed its deadline
    private var cancelWaiters: [ResumeOnceVoid] = []  // guarded by lock
    /// The statement bound from ``ConnectOptions/statementBound``.
    private let bound: Duration?

    private init(
        conninfo: String, label: String, connection: OpaquePointer, registration: SocketPoller.Registration, cacheCapacity: Int,
        bound: Duration?
    ) {
        self.bound = bound
        self.cache = StatementCache(capacity: cacheCapacity)
        self.conninfo = conninfo
        self.label = label
        self.redactedConninfo = Conninfo.redacted(conninfo)
        self.pgconn = connection
        self.registration = registration
        self.cancelHandle = PQgetCancel(connection).map(CancelHandle.init)
    }

    deinit {
        StatementDeadlines.shared.remove(self)
        if let connection = pgconn {
            SocketPoller.shared.unregister(registration)
            PQfinish(connection)
        }
    }

    /// Connects with `conninfo` exactly as libpq takes it: `key=value` pairs or a
    /// `postgresql://` URI, with `PG*` environment variables, `.pgpass`, service files
    /// and `sslmode` honoured.
    public static func connect(
        _ conninfo: String, label: String? = nil, options: ConnectOptions = ConnectOptions()
    ) async throws -> PostgresConnection {
        let name = label ?? Conninfo.endpoint(conninfo)
        // Connecting blocks (name lookup, TLS, authentication) and is rare: its own thread.
        let pointer: PGConnPointer = try await onThread(name: "pg connect \(name)") {
            // Later keywords override earlier ones: the fallback name cannot override the
            // conninfo, the timeout must.
            var keywords = ["fallback_application_name"]
            var values = [options.fallbackApplicationName]
            if let timeout = options.tcpUserTimeout {
                keywords.append("tcp_user_timeout")
                values.append(String(max(timeout.wholeMilliseconds, 1)))
            }
            if let keepalives = options.keepalives {
                keywords += ["keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count"]
                values += [
                    "1", String(max(Int(keepalives.idle.components.seconds), 1)),
                    String(max(Int(keepalives.interval.components.seconds), 1)), String(max(keepalives.count, 1)),
                ]
            }
            keywords.append("dbname")
            values.append(conninfo)
            if let timeout = options.connectTimeout {
                keywords.append("connect_timeout")
                values.append(String(max(Int(timeout.components.seconds), 1)))
            }
            let connection = withCStringArray(keywords) { keys in
                withCStringArray(values) { vals in PQconnectdbParams(keys, vals, 1) }
            }
            guard let connection else {
                throw PostgresError(kind: .connectionFailed, message: "out of memory", node: name)
            }
            guard PQstatus(connection) == CONNECTION_OK else {
                let message = cleanMessage(String(cString: PQerrorMessage(connection)))
                PQfinish(connection)
                throw PostgresError(
                    kind: .connectionFailed, message: Conninfo.scrub(message, conninfo: conninfo), node: name)
            }
            PQsetNoticeProcessor(connection, { _, _ in }, nil)
            guard PQsetnonblocking(connection, 1) == 0 else {
                PQfinish(connection)
                throw PostgresError(kind: .connectionFailed, message: "cannot switch the connection to non-blocking mode", node: name)
            }
            return PGConnPointer(pointer: connection)
        }
        let registration: SocketPoller.Registration
        do {
            registration = try SocketPoller.shared.register(PQsocket(pointer.pointer))
        } catch {
            PQfinish(pointer.pointer)
            throw error
        }
        let connection = PostgresConnection(
            conninfo: conninfo, label: name, connection: pointer.pointer, registration: registration,
            cacheCapacity: options.statementCacheCapacity, bound: options.statementBound)
        StatementDeadlines.shared.add(connection)
        var settings = options.sessionSettings
        if let timeout = options.statementTimeout {
            settings["statement_timeout"] = "\(max(Int(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000), 0))ms"
        }
        for (name, value) in settings.sorted(by: { $0.key < $1.key }) {
            do {
                _ = try await connection.query("select set_config($1, $2, false)", [name, value])
            } catch {
                await connection.close()
                throw error
            }
        }
        return connection
    }

    /// Where the session stands after its last statement: outside any transaction, inside
    /// one, or inside one that failed and takes nothing but ROLLBACK.
    public enum TransactionState: Sendable, Equatable {
        case idle, inTransaction, failed, unknown
    }

    /// The transaction state libpq reported after the last statement (`PQtransactionStatus`).
    public var transactionState: TransactionState {
        lock.withLock { transaction }
    }

    /// False once the connection has been closed or found broken; then it cannot be used again.
    public var isUsable: Bool {
        lock.lock()
        defer { lock.unlock() }
        return !closed && !broken
    }

    // MARK: Statements

    /// Runs one statement with its parameters sent separately (`$1`, `$2`, …).
    ///
    /// Values never become part of the SQL text, so no value can change the statement.
    public func query(_ sql: String, _ parameters: [any PostgresEncodable] = []) async throws -> PostgresResult {
        let bindings = parameters.map(\.postgresBinding)
        return try await statement { connection in try await self.send(sql, bindings, on: connection) }
    }

    /// Runs `COPY … TO STDOUT` (simple protocol: COPY takes no parameters) and hands its
    /// output to `sink` row by row as it arrives, never all of it in memory. Returns the
    /// row count the server reports. Cancelling the calling task cancels the COPY.
    public func copyOut(_ sql: String, _ sink: @escaping @Sendable (UnsafeRawBufferPointer) throws -> Void) async throws -> Int {
        try await statement { connection in
            try self.checkBeforeSending(connection)
            guard PQsendQuery(connection, sql) == 1 else { throw self.connectionError(connection) }
            try await self.flush(connection)
            guard let first = try await self.nextResult(connection) else { throw self.connectionError(connection) }
            guard PQresultStatus(first) == PGRES_COPY_OUT else {
                let error: PostgresError = PQresultStatus(first) == PGRES_FATAL_ERROR
                    ? self.serverError(first, connection: connection)
                    : PostgresError(kind: .invalidArgument, message: "not a COPY … TO STDOUT statement", node: self.label)
                PQclear(first)
                while let rest = try await self.nextResult(connection) { PQclear(rest) }
                throw error
            }
            PQclear(first)
            while true {
                var buffer: UnsafeMutablePointer<CChar>?
                let count = PQgetCopyData(connection, &buffer, 1)
                if count > 0, let buffer {
                    defer { PQfreemem(buffer) }
                    try sink(UnsafeRawBufferPointer(start: buffer, count: Int(count)))
                } else if count == 0 {
                    try await SocketPoller.shared.wait(self.registration, for: .read)
                    guard PQconsumeInput(connection) == 1 else { throw self.connectionError(connection) }
                } else if count == -1 {
                    break
                } else {
                    throw self.connectionError(connection)
                }
            }
            var rows = 0
            var failure: PostgresError?
            while let result = try await self.nextResult(connection) {
                defer { PQclear(result) }
                if PQresultStatus(result) == PGRES_COMMAND_OK {
                    rows = Int(String(cString: PQcmdTuples(result))) ?? 0
                } else {
                    failure = failure ?? self.serverError(result, connection: connection)
                }
            }
            if let failure { throw failure }
            return rows
        }
    }

    /// How long a cancelled statement may take to stop before its caller is let go and
    /// the connection given up (a hung server answers neither the statement nor the cancel).
    public static let cancelGrace: Duration = .seconds(2)

    /// How long ROLLBACK, which no cancellation interrupts, may wait for the server before
    /// the connection is given up.
    static let rollbackDeadline: Duration = .seconds(5)

    /// Runs `body` while holding the connection. When the calling task is cancelled, the
    /// server is asked to cancel (without blocking anyone), and if the statement has not
    /// ended after ``cancelGrace`` its wait ends with a cancellation error and the
    /// connection is marked broken.
    private func statement<T: Sendable>(
        cancellable: Bool = true, _ body: @escaping (OpaquePointer) async throws -> T
    ) async throws -> T {
        if cancellable { try Task.checkCancellation() }
        await serial.acquire()
        defer { serial.release() }
        let connection = try liveConnection()
        let bound = Self.boundOverride ?? self.bound
        let now = ContinuousClock.now
        let number: UInt64 = lock.withLock {
            statementNumber += 1
            running = true
            boundReached = false
            startedAt = now
            if let bound, bound > .zero {
                deadline = now + bound
                runningBound = bound
            } else {
                deadline = nil
            }
            return statementNumber
        }
        SocketPoller.shared.reset(registration)
        Self.inFlight.add(1, ordering: .relaxed)
        let outcome: Result<T, Error>
        if cancellable {
            outcome = await withTaskCancellationHandler {
                do { return .success(try await body(connection)) } catch { return .failure(error) }
            } onCancel: {
                self.cancel()
                self.giveUp(number, after: Self.cancelGrace, message: "cancelled; the server did not answer within \(Self.cancelGrace), connection given up")
            }
        } else {
            giveUp(number, after: Self.rollbackDeadline, message: "the server did not answer ROLLBACK within \(Self.rollbackDeadline), connection given up")
            do { outcome = .success(try await body(connection)) } catch { outcome = .failure(error) }
        }
        Self.inFlight.subtract(1, ordering: .relaxed)
        let cancelInFlight = lock.withLock {
            running = false
            checkedAlive = false
            deadline = nil
            return cancelling && !broken  // a broken connection is never handed on
        }
        noteTransactionState(connection)
        // A cancel request still on its way would hit whatever this connection runs next
        // (another borrower's statement): the connection is handed on only once it landed.
        if cancelInFlight { await cancelLanded() }
        return try outcome.get()
    }

    /// How long the statement in progress has been running at `now`; nil when none runs.
    public func runningFor(at now: ContinuousClock.Instant) -> Duration? {
        lock.withLock { running ? startedAt.map { now - $0 } : nil }
    }

    /// A task's own statement bound for the statements it runs in `body`, overriding
    /// ``ConnectOptions/statementBound`` (`.zero`: no bound).
    public static func withStatementBound<T>(
        _ bound: Duration, isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> T
    ) async rethrows -> T {
        try await $boundOverride.withValue(bound, operation: body, isolation: isolation)
    }

    @TaskLocal static var boundOverride: Duration?

    /// Called about every 50 ms by ``StatementDeadlines``: a statement past its bound is
    /// cancelled on the server; one whose server answers neither within ``cancelGrace``
    /// more is given up.
    func expire(at now: ContinuousClock.Instant) {
        enum Step { case none, cancel, abandon(UInt64, Duration) }
        let step: Step = lock.withLock {
            guard running, let deadline, now >= deadline else { return .none }
            if !boundReached {
                boundReached = true
                return .cancel
            }
            guard now >= deadline + Self.cancelGrace else { return .none }
            self.deadline = nil
            return .abandon(statementNumber, runningBound)
        }
        switch step {
        case .none: return
        case .cancel: cancel()
        case .abandon(let number, let bound):
            abandon(
                number, kind: .connectionLost,
                message: "no answer within the statement bound of \(bound) and \(Self.cancelGrace) after the cancel; connection given up")
        }
    }

    /// Waits until the cancel request in flight has been delivered (or ``cancelGrace``
    /// passed: then the connection is given up, its fate unknown).
    private func cancelLanded() async {
        let once = ResumeOnceVoid()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            once.set(continuation)
            let waiting = lock.withLock { () -> Bool in
                guard cancelling else { return false }
                cancelWaiters.append(once)
                return true
            }
            guard waiting else {
                once.resume()
                return
            }
            DispatchQueue.global().asyncAfter(deadline: .now() + Self.cancelGrace.timeInterval) { [weak self] in
                if once.resume() { self?.markBroken() }
            }
        }
    }

    /// After `delay`, ends statement `number` if it is still running and marks the
    /// connection broken: its server answers nothing.
    private func giveUp(_ number: UInt64, after delay: Duration, kind: PostgresError.Kind = .cancelled, message: String) {
        DispatchQueue.global().asyncAfter(deadline: .now() + delay.timeInterval) { [weak self] in
            self?.abandon(number, kind: kind, message: message)
        }
    }

    /// Ends the statement in progress now, if there is one: its caller gets a
    /// `connectionLost` error with `message`, the server a cancel request, and the
    /// connection is given up. For callers that keep their own deadline (the monitor's
    /// round) for a server that stopped answering.
    public func abandonStatement(_ message: String) {
        let number: UInt64? = lock.withLock { running ? statementNumber : nil }
        if let number { abandon(number, kind: .connectionLost, message: message) }
    }

    private func abandon(_ number: UInt64, kind: PostgresError.Kind, message: String) {
        let stillRunning = lock.withLock { () -> Bool in
            guard running, statementNumber == number else { return false }
            broken = true
            return true
        }
        guard stillRunning else { return }
        SocketPoller.shared.abandon(registration, with: PostgresError(kind: kind, message: message, node: label, nothingSent: false))
        if kind != .cancelled { cancel() }
    }

    /// Runs one statement in its own transaction, then reads `pg_current_wal_insert_lsn()`
    /// after it committed, in one round trip (libpq pipeline mode, a sync after each).
    ///
    /// The LSN is where a reader must have replayed to see this write: a
    /// read-your-writes token. It is nil when the server cannot say (a replica). The
    /// insert position is past the commit record even with `synchronous_commit = off`
    /// (the write position may not be yet), and it is the server's, not the session's:
    /// behind a transaction pooler that runs the second segment on another server
    /// session of the same node, the token is just as safe.
    public func queryReturningCommitLSN(_ sql: String, _ parameters: [any PostgresEncodable] = []) async throws
        -> (result: PostgresResult, lsn: LSN?)
    {
        let bindings = parameters.map(\.postgresBinding)
        return try await statement { connection in try await self.pipelinedWrite(sql, bindings, on: connection) }
    }

    /// What a read sent with a replay guard came back with.
    public enum GuardedResult: Sendable {
        /// The server had replayed past the position; the read ran after the check.
        case served(PostgresResult, replayed: LSN?)
        /// The server had not replayed that far (or is not a standby): the read did not run.
        case behind(replayed: LSN?)
    }

    /// Runs a read only if this server (a standby) has replayed the WAL up to `position`,
    /// in one round trip: a guard statement and the read go out together in one pipeline;
    /// a guard that finds the server behind fails, which aborts the read before it runs.
    ///
    /// Replay only moves forward, so the read's snapshot, taken after the guard passed,
    /// contains every transaction committed up to `position`.
    public func query(_ sql: String, _ parameters: [any PostgresEncodable] = [], ifReplayed position: LSN) async throws
        -> GuardedResult
    {
        let bindings = parameters.map(\.postgresBinding)
        return try await statement { connection in try await self.guardedRead(sql, bindings, position: position, on: connection) }
    }

    /// Fails unless replay has reached $1; says how far replay got either way. Its error
    /// arms depend on what it reads at run time, so the planner cannot fold them into an
    /// error at plan time.
    ///
    /// It also fails unless the session reads committed (PostgreSQL runs read uncommitted
    /// as read committed): guard and read share one
    /// transaction, and under repeatable read its snapshot is taken when the guard
    /// starts — before the guard looks at the replay position — and the read would see
    /// that older picture although the guard passed.
    static let replayGuard = """
        select case when i not in ('read committed', 'read uncommitted') then \
        ('switchyard: the replay guard needs read committed, not ' || i)::pg_lsn::text \
        when r >= $1::pg_lsn then r::text \
        else ('switchyard: replayed ' || coalesce(r::text, 'nothing (not a standby)') || ' < ' || $1)::pg_lsn::text end \
        from (select pg_catalog.pg_last_wal_replay_lsn() as r, \
        pg_catalog.current_setting('transaction_isolation') as i) as replay
        """

    /// Runs a script of one or more statements with no parameters (simple protocol),
    /// returning the last result. For trusted SQL only (schema files); never build it
    /// from input.
    public func execute(script sql: String) async throws -> PostgresResult {
        try await statement { connection in try await self.script(sql, on: connection) }
    }

    /// Runs `body` inside BEGIN … COMMIT; a throw rolls back and rethrows.
    public func withTransaction<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        _ = try await query("begin")
        do {
            let value = try await body(self)
            _ = try await query("commit")
            return value
        } catch {
            await rollback()
            throw error
        }
    }

    /// Sends ROLLBACK even when the calling task is cancelled: a transaction left open
    /// holds its locks and poisons whoever gets the connection next. Errors are dropped
    /// (a broken connection has no transaction left; the pool discards it).
    public func rollback() async {
        guard isUsable else { return }
        _ = try? await statement(cancellable: false) { connection in try await self.send("rollback", [], on: connection) }
    }

    /// Runs `body`, then closes the connection, also when `body` throws.
    public func closing<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        do {
            let value = try await body(self)
            await close()
            return value
        } catch {
            await close()
            throw error
        }
    }

    /// Asks the server to cancel whatever this connection is running. Returns at once,
    /// from any thread: the request goes out on a thread of its own (libpq's `PQcancel`
    /// blocks, without a timeout, on a server that does not answer), at most one at a
    /// time per connection, and no lock is held while it waits.
    public func cancel() {
        // Only a statement in progress is cancelled: a request sent after it ended would
        // land on the next one.
        let handle: CancelHandle? = lock.withLock {
            guard !closed, running, !cancelling, let cancelHandle else { return nil }
            cancelling = true
            return cancelHandle
        }
        guard let handle else { return }
        let thread = Thread { [weak self] in
            var buffer = [CChar](repeating: 0, count: 256)
            _ = PQcancel(handle.pointer, &buffer, Int32(buffer.count))
            guard let self else { return }
            let waiters = self.lock.withLock {
                self.cancelling = false
                defer { self.cancelWaiters = [] }
                return self.cancelWaiters
            }
            for waiter in waiters { waiter.resume() }
        }
        thread.name = "pg cancel \(label)"
        thread.stackSize = 256 << 10
        thread.start()
    }

    /// Closes the connection once the statement in progress (if any) has ended.
    public func close() async {
        let wasClosed = lock.withLock {
            let was = closed
            closed = true
            cancelHandle = nil  // freed when no cancel request uses it any more
            return was
        }
        guard !wasClosed else { return }
        StatementDeadlines.shared.remove(self)
        await serial.acquire()
        if let connection = pgconn {
            SocketPoller.shared.unregister(registration)
            PQfinish(connection)
            pgconn = nil
        }
        serial.release()
    }

    // MARK: Identity and quoting

    /// Host, port, recovery state and version of the server.
    public func serverInfo() async throws -> ServerInfo {
        let result = try await query("select pg_is_in_recovery(), current_setting('server_version')")
        let endpoint = try await statement { connection -> (String, Int, Int) in
            let host = PQhost(connection).map { String(cString: $0) } ?? ""
            let port = PQport(connection).map { Int(String(cString: $0)) ?? 0 } ?? 0
            return (host, port, Int(PQserverVersion(connection)))
        }
        guard let row = result.first else {
            throw PostgresError(kind: .decoding, message: "server returned no identity row", node: label)
        }
        return ServerInfo(
            host: endpoint.0, port: endpoint.1, inRecovery: try row.decode(0, as: Bool.self),
            serverVersion: try row.decode(1, as: String.self), serverVersionNumber: endpoint.2)
    }

    /// `identifier` quoted for SQL by libpq (`PQescapeIdentifier`), e.g. `"Order Items"`.
    public func quoteIdentifier(_ identifier: String) async throws -> String {
        try await statement { connection in
            let length = identifier.utf8.count
            guard let escaped = PQescapeIdentifier(connection, identifier, length) else {
                throw PostgresError(
                    kind: .invalidArgument, message: cleanMessage(String(cString: PQerrorMessage(connection))), node: self.label)
            }
            defer { PQfreemem(escaped) }
            return String(cString: escaped)
        }
    }

    /// The server's stored form of `password` for `user` (`PQencryptPasswordConn`, SCRAM
    /// when the server's `password_encryption` says so), computed here: an `ALTER ROLE …
    /// PASSWORD` with it never carries the password itself to the server or its log.
    public func encryptPassword(_ password: String, user: String, algorithm: String = "scram-sha-256") async throws -> String {
        try await statement { connection in
            guard let encrypted = PQencryptPasswordConn(connection, password, user, algorithm) else {
                throw PostgresError(
                    kind: .invalidArgument, message: cleanMessage(String(cString: PQerrorMessage(connection))), node: self.label)
            }
            defer { PQfreemem(encrypted) }
            return String(cString: encrypted)
        }
    }

    // MARK: While holding the connection

    /// Notes libpq's transaction status after every statement.
    private func noteTransactionState(_ connection: OpaquePointer) {
        let state: TransactionState
        switch PQtransactionStatus(connection) {
        case PQTRANS_IDLE: state = .idle
        case PQTRANS_INTRANS: state = .inTransaction
        case PQTRANS_INERROR: state = .failed
        default: state = .unknown
        }
        lock.withLock { transaction = state }
    }

    /// Throws (nothing sent) when the server already closed this idle connection.
    private func checkBeforeSending(_ connection: OpaquePointer) throws {
        let checked = lock.withLock {
            defer { checkedAlive = false }
            return checkedAlive
        }
        guard !checked, Self.serverHungUp(connection) else { return }
        markBroken()
        throw PostgresError(
            kind: .connectionLost, message: "the server closed the connection before the statement was sent", node: label,
            nothingSent: true)
    }

    /// An idle connection whose socket is readable has been closed by the server: a
    /// terminated backend sends its FATAL and hangs up, and nothing else arrives unasked
    /// on a connection that does not LISTEN. One poll, no round trip.
    static func serverHungUp(_ connection: OpaquePointer) -> Bool {
        let socket = PQsocket(connection)
        guard socket >= 0, PQstatus(connection) == CONNECTION_OK else { return true }
        var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, 0) > 0
    }

    /// Whether this connection still looks usable: open here and not hung up by the
    /// server. For the pool, on an idle connection only.
    public func looksAlive() -> Bool {
        guard isUsable, let connection = pgconn else { return false }
        if Self.serverHungUp(connection) {
            markBroken()
            return false
        }
        lock.withLock { checkedAlive = true }
        return true
    }

    private func liveConnection() throws -> OpaquePointer {
        lock.lock()
        let unusable = closed
        lock.unlock()
        guard !unusable, let connection = pgconn else { throw PostgresError.closed(node: label) }
        return connection
    }

    /// Pushes what libpq has buffered to the server, waiting while the socket is full.
    private func flush(_ connection: OpaquePointer) async throws {
        while true {
            switch PQflush(connection) {
            case 0: return
            case 1:
                try await SocketPoller.shared.wait(registration, for: .readOrWrite)
                // The server may be sending while we are: read it, or both sides stall.
                guard PQconsumeInput(connection) == 1 else { throw connectionError(connection) }
            default: throw connectionError(connection)
            }
        }
    }

    /// The next result of the command in progress, waiting for the server as needed; nil
    /// when its results are done (in pipeline mode: this query's results).
    private func nextResult(_ connection: OpaquePointer) async throws -> OpaquePointer? {
        while PQisBusy(connection) == 1 {
            if !waitInline(connection) {
                Self.parkedWaits.add(1, ordering: .relaxed)
                try await SocketPoller.shared.wait(registration, for: .read)
            }
            guard PQconsumeInput(connection) == 1 else { throw connectionError(connection) }
        }
        return PQgetResult(connection)
    }

    /// Statements in progress in this process.
    private static let inFlight = Atomic<Int>(0)
    /// Waits for an answer that went through the poller (a hand-off) since the process
    /// started; the others waited on their caller's thread.
    public static var handOffs: Int { parkedWaits.load(ordering: .relaxed) }
    private static let parkedWaits = Atomic<Int>(0)
    /// Whether a thread may wait for an answer itself: not on a single core, where it is
    /// the only thread Swift's tasks have.
    private static let inlineWaitAllowed = ProcessInfo.processInfo.activeProcessorCount > 1
    /// How long a statement alone in the process waits on its own thread.
    static let inlineWait: Duration = .milliseconds(1)
    private static let inlineWaitMilliseconds: Int32 = 1

    /// When this is the only statement in progress in the process, waits for the answer
    /// on the calling thread for up to ``inlineWait`` (the answer of a nearby server
    /// usually comes sooner), saving the hand-off to the poller and back; true when the
    /// socket turned readable. Concurrent statements always wait through the poller, so
    /// no task's thread sits blocked while others have work.
    private func waitInline(_ connection: OpaquePointer) -> Bool {
        guard Self.inlineWaitAllowed, Self.inFlight.load(ordering: .relaxed) == 1 else { return false }
        var descriptor = pollfd(fd: PQsocket(connection), events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, Self.inlineWaitMilliseconds) > 0
    }

    /// Reads every result of the command sent; returns the last, throws the first error.
    private func collectAll(_ connection: OpaquePointer) async throws -> PostgresResult {
        var last: PostgresResult?
        var failure: PostgresError?
        while let result = try await nextResult(connection) {
            defer { PQclear(result) }
            if Self.isCopy(result) { throw refuseCopy() }
            do {
                last = try collect(result, connection: connection)
            } catch let error as PostgresError {
                failure = failure ?? error
            }
        }
        if let failure { throw failure }
        guard let last else { throw connectionError(connection) }
        return last
    }

    private func send(_ sql: String, _ bindings: [PostgresBinding], on connection: OpaquePointer) async throws -> PostgresResult {
        try checkBeforeSending(connection)
        if StatementCache.discardsPrepared(sql) { cache.removeAll() }
        let key = StatementCache.Key(sql: sql, types: bindings.map(\.typeOID))
        if let name = cache.hit(key) {
            do {
                return try await sendPrepared(name, bindings, on: connection)
            } catch let error as PostgresError where Self.preparedStatementGone(error) {
                // Someone discarded it, or a table it reads changed shape: the server ran
                // nothing. Prepare it afresh, once, unless the error aborted a transaction.
                cache.forget(key)
                noteTransactionState(connection)
                guard transactionState == .idle else { throw error }
            }
        }
        // New to this connection: prepared and executed in one round trip (or sent
        // unnamed when it is not to be cached).
        return try await pipeline([[(sql, bindings)]], on: connection)[0].get()
    }

    private func sendPrepared(_ name: String, _ bindings: [PostgresBinding], on connection: OpaquePointer) async throws
        -> PostgresResult
    {
        try withParameters(bindings) { count, _, values, lengths, formats in
            guard PQsendQueryPrepared(connection, name, count, values, lengths, formats, 0) == 1 else {
                throw connectionError(connection)
            }
        }
        try await flush(connection)
        return try await collectAll(connection)
    }

    /// The server no longer has a cached statement (26000), or cannot reuse its plan
    /// because a table changed shape (0A000: cached plan must not change result type).
    static func preparedStatementGone(_ error: PostgresError) -> Bool {
        error.sqlState == "26000" || (error.sqlState == "0A000" && error.message.contains("cached plan"))
    }

    /// What a pipeline's next result belongs to.
    private enum Expected {
        /// The Parse of statement `slot`: an error there is that statement's error.
        case prepare(slot: Int)
        case result(slot: Int)
        /// A DEALLOCATE of an evicted statement, in a segment of its own.
        case ignore
    }

    /// Sends `segments` in one pipeline, each segment its own implicit transaction (a
    /// sync after each), statements prepared on first use when the cache is on, and
    /// returns every statement's outcome in order. A statement after a failed one in its
    /// segment did not run and says so.
    private func pipeline(
        _ segments: [[(sql: String, bindings: [PostgresBinding])]], on connection: OpaquePointer
    ) async throws -> [Result<PostgresResult, PostgresError>] {
        guard PQenterPipelineMode(connection) == 1 else {
            throw PostgresError(kind: .invalidArgument, message: "cannot enter pipeline mode", node: label)
        }
        defer { _ = PQexitPipelineMode(connection) }
        var expected: [Expected] = []
        var keys: [StatementCache.Key] = []
        var evicted: [String] = []
        // The segment each expected result belongs to, and each segment's statements.
        var segmentOf: [Int] = []
        var slotsOf: [Range<Int>] = []
        for (segmentIndex, segment) in segments.enumerated() {
            slotsOf.append(keys.count..<(keys.count + segment.count))
            for (sql, bindings) in segment {
                let slot = keys.count
                let key = StatementCache.Key(sql: sql, types: bindings.map(\.typeOID))
                keys.append(key)
                let plan = cache.plan(key)
                try withParameters(bindings) { count, types, values, lengths, formats in
                    switch plan {
                    case .unnamed:
                        guard PQsendQueryParams(connection, sql, count, types, values, lengths, formats, 0) == 1 else {
                            throw connectionError(connection)
                        }
                    case .execute(let name):
                        guard PQsendQueryPrepared(connection, name, count, values, lengths, formats, 0) == 1 else {
                            throw connectionError(connection)
                        }
                    case .prepare(let name, let evicting):
                        if let evicting { evicted.append(evicting) }
                        guard PQsendPrepare(connection, name, sql, count, types) == 1,
                            PQsendQueryPrepared(connection, name, count, values, lengths, formats, 0) == 1
                        else { throw connectionError(connection) }
                        expected.append(.prepare(slot: slot))
                        segmentOf.append(segmentIndex)
                    }
                }
                expected.append(.result(slot: slot))
                segmentOf.append(segmentIndex)
            }
            guard PQpipelineSync(connection) == 1 else { throw connectionError(connection) }
        }
        for name in evicted {
            // Its own segment: a failure here (already gone) touches no statement above.
            guard PQsendQueryParams(connection, "deallocate \(name)", 0, nil, nil, nil, nil, 0) == 1,
                PQpipelineSync(connection) == 1
            else { throw connectionError(connection) }
            segmentOf.append(slotsOf.count)
            slotsOf.append(0..<0)
            expected.append(.ignore)
        }
        try await flush(connection)
        var outcomes = [Result<PostgresResult, PostgresError>?](repeating: nil, count: keys.count)
        var index = 0
        try await readPipeline(connection, syncs: segments.count + evicted.count) { result, segment in
            let status = PQresultStatus(result)
            guard index < expected.count, segmentOf[index] == segment else {
                // More than the segment's statements answered: the error of its implicit
                // COMMIT at the sync (a deferred constraint, a serialization failure). None
                // of the segment's statements took effect: each reports it.
                if status == PGRES_FATAL_ERROR, segment < slotsOf.count {
                    let error = self.serverError(result, connection: connection)
                    for slot in slotsOf[segment] { outcomes[slot] = .failure(error) }
                }
                return
            }
            defer { index += 1 }
            switch expected[index] {
            case .ignore:
                break
            case .prepare(let slot):
                if status != PGRES_COMMAND_OK {
                    outcomes[slot] = .failure(self.serverError(result, connection: connection))
                    self.cache.forget(keys[slot])
                }
            case .result(let slot):
                guard outcomes[slot] == nil else { return }  // its prepare failed
                if status == PGRES_PIPELINE_ABORTED {
                    outcomes[slot] = .failure(PostgresError(
                        kind: .server, message: "not run: an earlier statement of its pipeline failed", node: self.label))
                    return
                }
                do {
                    outcomes[slot] = .success(try self.collect(result, connection: connection))
                } catch let error as PostgresError {
                    if Self.preparedStatementGone(error) { self.cache.forget(keys[slot]) }
                    outcomes[slot] = .failure(error)
                }
            }
        }
        return outcomes.map { $0 ?? .failure(PostgresError(kind: .server, message: "no result for the statement", node: label)) }
    }

    private func script(_ sql: String, on connection: OpaquePointer) async throws -> PostgresResult {
        try checkBeforeSending(connection)
        if StatementCache.discardsPrepared(sql) { cache.removeAll() }
        guard PQsendQuery(connection, sql) == 1 else { throw connectionError(connection) }
        try await flush(connection)
        return try await collectAll(connection)
    }

    private func pipelinedWrite(_ sql: String, _ bindings: [PostgresBinding], on connection: OpaquePointer) async throws
        -> (PostgresResult, LSN?)
    {
        try checkBeforeSending(connection)
        // The LSN is read in a segment of its own, after the statement's commit. A server
        // that turned out to be a standby (a read sent to a primary demoted since the
        // monitor's last round) answers with how far it has replayed: what the read saw.
        let position = """
            select case when pg_catalog.pg_is_in_recovery() then pg_catalog.pg_last_wal_replay_lsn()
                        else pg_catalog.pg_current_wal_insert_lsn() end
            """
        let outcomes = try await pipeline([[(sql, bindings)], [(position, [])]], on: connection)
        let result = try outcomes[0].get()
        let lsn = (try? outcomes[1].get())?.first.flatMap { try? $0.decode(0, as: LSN?.self) } ?? nil
        return (result, lsn)
    }

    private func guardedRead(_ sql: String, _ bindings: [PostgresBinding], position: LSN, on connection: OpaquePointer)
        async throws -> GuardedResult
    {
        try checkBeforeSending(connection)
        // One segment: a failed guard aborts the read before it runs.
        let outcomes = try await pipeline(
            [[(Self.replayGuard, [PostgresBinding.text(position.description)]), (sql, bindings)]], on: connection)
        switch outcomes[0] {
        case .success(let guardResult):
            let replayed = (guardResult.first.flatMap { try? $0.decode(0, as: String?.self) } ?? nil).flatMap(LSN.init)
            guard let replayed, replayed >= position else { return .behind(replayed: replayed) }
            return .served(try outcomes[1].get(), replayed: replayed)
        case .failure(let error):
            if error.isConnectionError { throw error }
            return .behind(replayed: Self.replayedPosition(inGuardError: error.message))
        }
    }

    /// Runs a read on a standby and says how far it had replayed once the read's
    /// snapshot was taken (read right after the read, in the same round trip): everything
    /// the read saw is at or below that position, so a session that carries it on never
    /// reads anything older afterwards (monotonic reads). With `position`, the read is
    /// guarded as ``query(_:_:ifReplayed:)`` does.
    public func queryReportingReplay(_ sql: String, _ parameters: [any PostgresEncodable] = [], ifReplayed position: LSN? = nil)
        async throws -> GuardedResult
    {
        let bindings = parameters.map(\.postgresBinding)
        return try await statement { connection in
            try self.checkBeforeSending(connection)
            var segment: [(sql: String, bindings: [PostgresBinding])] = []
            if let position { segment.append((Self.replayGuard, [PostgresBinding.text(position.description)])) }
            segment.append((sql, bindings))
            segment.append(("select pg_catalog.pg_last_wal_replay_lsn()", []))
            let outcomes = try await self.pipeline([segment], on: connection)
            var next = 0
            if let position {
                next = 1
                switch outcomes[0] {
                case .success(let guardResult):
                    let replayed = (guardResult.first.flatMap { try? $0.decode(0, as: String?.self) } ?? nil).flatMap(LSN.init)
                    guard let replayed, replayed >= position else { return .behind(replayed: replayed) }
                case .failure(let error):
                    if error.isConnectionError { throw error }
                    return .behind(replayed: Self.replayedPosition(inGuardError: error.message))
                }
            }
            let result = try outcomes[next].get()
            let after = (try? outcomes[next + 1].get())?.first.flatMap { try? $0.decode(0, as: LSN?.self) } ?? nil
            return .served(result, replayed: after)
        }
    }

    /// The replayed position the guard's error names, e.g. `0/3000148` in
    /// `invalid input syntax for type pg_lsn: "switchyard: replayed 0/3000148 < 0/3000200"`.
    static func replayedPosition(inGuardError message: String) -> LSN? {
        guard let range = message.range(of: "switchyard: replayed ") else { return nil }
        let rest = message[range.upperBound...]
        return LSN(String(rest.prefix { $0 != " " }))
    }

    /// Reads a pipeline's results up to its `syncs`-th sync, handing each (not NULL, not
    /// a sync) to `body` with the number of syncs seen before it.
    private func readPipeline(
        _ connection: OpaquePointer, syncs: Int, _ body: (OpaquePointer, Int) throws -> Void
    ) async throws {
        var seen = 0
        var idle = 0
        while seen < syncs {
            guard let result = try await nextResult(connection) else {
                if PQstatus(connection) != CONNECTION_OK { throw connectionError(connection) }
                // One NULL ends each query's results; more in a row means nothing will come.
                idle += 1
                if idle > 4 { throw connectionError(connection) }
                continue
            }
            idle = 0
            defer { PQclear(result) }
            if PQresultStatus(result) == PGRES_PIPELINE_SYNC {
                seen += 1
                continue
            }
            // COPY cannot finish inside a pipeline: the connection would wait for copy
            // data forever. Give it up; the pool replaces it.
            if Self.isCopy(result) { throw refuseCopy() }
            try body(result, seen)
        }
    }

    private static func isCopy(_ result: OpaquePointer) -> Bool {
        let status = PQresultStatus(result)
        return status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH
    }

    /// COPY is refused; the connection, left in the middle of a copy, is given up (the
    /// pool replaces it).
    private func refuseCopy() -> PostgresError {
        markBroken()
        return PostgresError(kind: .invalidArgument, message: Self.copyRefused, node: label)
    }

/// Copies `bindings` into C buffers for the duration of `body`.
    private func withParameters<R>(
        _ bindings: [PostgresBinding],
        _ body: (Int32, [Oid], [UnsafePointer<CChar>?], [Int32], [Int32]) throws -> R
    ) throws -> R {
        let count = bindings.count
        var types = [Oid](repeating: 0, count: count)
        var lengths = [Int32](repeating: 0, count: count)
        var formats = [Int32](repeating: 0, count: count)
        var buffers: [UnsafeMutablePointer<CChar>?] = []
        buffers.reserveCapacity(count)
        defer { for buffer in buffers { free(buffer) } }
        for (index, binding) in bindings.enumerated() {
            switch binding {
            case .null:
                buffers.append(nil)
            case .text(let text):
                if text.utf8.contains(0) {
                    throw PostgresError(
                        kind: .invalidArgument, message: "parameter $\(index + 1) contains a NUL character", node: label)
                }
                buffers.append(strdup(text))
            case .binary(let bytes, let oid):
                let buffer = malloc(max(bytes.count, 1))!.assumingMemoryBound(to: CChar.self)
                bytes.withUnsafeBytes { raw in
                    if let base = raw.baseAddress { memcpy(buffer, base, bytes.count) }
                }
                buffers.append(buffer)
                lengths[index] = Int32(bytes.count)
                formats[index] = 1
                types[index] = Oid(oid)
            }
        }
        let values = buffers.map { UnsafePointer($0) }
        return try body(Int32(count), types, values, lengths, formats)
    }

    private func collect(_ result: OpaquePointer, connection: OpaquePointer) throws -> PostgresResult {
        switch PQresultStatus(result) {
        case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            return copyResult(result)
        default:
            throw serverError(result, connection: connection)
        }
    }

    private func copyResult(_ result: OpaquePointer) -> PostgresResult {
        let columnCount = Int(PQnfields(result))
        let rowCount = Int(PQntuples(result))
        var columns: [PostgresColumn] = []
        columns.reserveCapacity(columnCount)
        for column in 0..<columnCount {
            let name = PQfname(result, Int32(column)).map { String(cString: $0) } ?? "?column?"
            columns.append(PostgresColumn(name: name, typeOID: UInt32(PQftype(result, Int32(column)))))
        }
        var values: [String?] = []
        values.reserveCapacity(rowCount * columnCount)
        for row in 0..<Int32(rowCount) {
            for column in 0..<Int32(columnCount) {
                if PQgetisnull(result, row, column) == 1 {
                    values.append(nil)
                } else {
                    values.append(String(cString: PQgetvalue(result, row, column)))
                }
            }
        }
        let tag = String(cString: PQcmdStatus(result))
        let tuples = String(cString: PQcmdTuples(result))
        return PostgresResult(
            columns: columns, values: values, commandTag: tag, affectedRows: Int(tuples) ?? rowCount)
    }

    private func serverError(_ result: OpaquePointer, connection: OpaquePointer) -> PostgresError {
        func field(_ code: Character) -> String? {
            guard let ascii = code.asciiValue, let value = PQresultErrorField(result, Int32(ascii)) else { return nil }
            return String(cString: value)
        }
        let sqlState = field("C")
        var kind = PostgresError.Kind.server
        var message = field("M") ?? cleanMessage(String(cString: PQresultErrorMessage(result)))
        if PQstatus(connection) != CONNECTION_OK {
            markBroken()
            kind = .connectionLost
            if message.isEmpty { message = cleanMessage(String(cString: PQerrorMessage(connection))) }
        } else if sqlState == "57014" {
            let (reached, bound) = lock.withLock { (boundReached, runningBound) }
            kind = reached ? .timedOut : .cancelled
            if reached { message = "statement bound of \(bound) reached; cancelled on the server (\(message))" }
        }
        if message.isEmpty { message = "unknown error" }
        return PostgresError(
            kind: kind, message: Conninfo.scrub(message, conninfo: conninfo), sqlState: sqlState,
            severity: field("V") ?? field("S"), detail: field("D"), hint: field("H"), node: label)
    }

    private func connectionError(_ connection: OpaquePointer) -> PostgresError {
        let message = cleanMessage(String(cString: PQerrorMessage(connection)))
        let lost = PQstatus(connection) != CONNECTION_OK
        if lost { markBroken() }
        return PostgresError(
            kind: lost ? .connectionLost : .server,
            message: Conninfo.scrub(message.isEmpty ? "no result from server" : message, conninfo: conninfo), node: label)
    }

    static let copyRefused = "COPY is not supported through this API: use psql's \\copy or a driver with COPY support"

    private func markBroken() {
        lock.lock()
        broken = true
        lock.unlock()
    }
}

/// libpq messages end in newlines and continue with tabs; fold them to one line.
func cleanMessage(_ message: String) -> String {
    message.split(whereSeparator: { $0 == "\n" || $0 == "\t" })
        .map { $0.trimmingCharacters(in: .whitespaces) }
        .filter { !$0.isEmpty }
        .joined(separator: " ")
}

private func withCStringArray<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let copies = strings.map { strdup($0) }
    defer { for copy in copies { free(copy) } }
    let pointers = copies.map { UnsafePointer($0) } + [nil]
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

/// Resumes a continuation once, whoever comes first: the cancel thread or the timer.
final class ResumeOnceVoid: @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<Void, Never>?
    private var done = false

    func set(_ continuation: CheckedContinuation<Void, Never>) { lock.withLock { self.continuation = continuation } }

    /// True for the caller that resumed it.
    @discardableResult
    func resume() -> Bool {
        let taken: CheckedContinuation<Void, Never>? = lock.withLock {
            guard !done else { return nil }
            done = true
            defer { continuation = nil }
            return continuation
        }
        taken?.resume()
        return taken != nil
    }
}

/// Keeps every connection's statement bound with one thread for the process: about every
/// 50 ms it looks at each open connection's running statement (a lock and a comparison),
/// so a statement costs no timer of its own.
final class StatementDeadlines: @unchecked Sendable {
    static let shared = StatementDeadlines()

    private struct Weak { weak var connection: PostgresConnection? }
    private let lock = NSLock()
    private var connections: [ObjectIdentifier: Weak] = [:]  // guarded by lock
    private var started = false  // guarded by lock

    func add(_ connection: PostgresConnection) {
        let start = lock.withLock { () -> Bool in
            connections[ObjectIdentifier(connection)] = Weak(connection: connection)
            defer { started = true }
            return !started
        }
        guard start else { return }
        let thread = Thread { [self] in
            while true {
                usleep(50_000)
                let now = ContinuousClock.now
                let live = lock.withLock { connections.values.compactMap(\.connection) }
                for connection in live { connection.expire(at: now) }
            }
        }
        thread.name = "pg statement bounds"
        thread.stackSize = 256 << 10
        thread.start()
    }

    func remove(_ connection: PostgresConnection) {
        let id = ObjectIdentifier(connection)
        lock.withLock { _ = connections.removeValue(forKey: id) }
    }
}

/// libpq's cancel object, freed when the last user lets go of it (a cancel request in
/// flight may outlive the connection).
final class CancelHandle: @unchecked Sendable {
    let pointer: OpaquePointer
    init(_ pointer: OpaquePointer) { self.pointer = pointer }
    deinit { PQfreeCancel(pointer) }
}

/// Runs `body` on a new thread of its own and resumes the caller with its result: for
/// blocking calls that are rare (connecting).
func onThread<T: Sendable>(name: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.name = name
        thread.stackSize = 512 << 10
        thread.start()
    }
}

extension Duration {
    var wholeMilliseconds: Int { Int(components.seconds) * 1000 + Int(components.attoseconds / 1_000_000_000_000_000) }
    var timeInterval: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
