import CLibPQ
import Foundation

/// Options applied on top of a connection string.
public struct ConnectOptions: Sendable {
    /// How long libpq waits for the connection (overrides `connect_timeout` in the
    /// conninfo; libpq counts whole seconds, at least 2); nil keeps whatever the conninfo
    /// and environment say.
    public var connectTimeout: Duration?
    /// `statement_timeout` set right after connecting; nil leaves it.
    public var statementTimeout: Duration?
    /// `application_name` shown in `pg_stat_activity` unless the conninfo sets one.
    public var fallbackApplicationName: String

    public init(connectTimeout: Duration? = nil, statementTimeout: Duration? = nil, fallbackApplicationName: String = "switchyard") {
        self.connectTimeout = connectTimeout
        self.statementTimeout = statementTimeout
        self.fallbackApplicationName = fallbackApplicationName
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
/// Every call runs on the connection's own thread, in order, so the connection may be
/// shared between tasks (statements then queue) and blocking libpq calls never occupy
/// Swift's cooperative threads. ``cancel()`` may be called from anywhere; cancelling
/// the calling task cancels its statement on the server too.
public final class PostgresConnection: @unchecked Sendable {
    /// Names this connection in errors: the label given to `connect`, else `host:port`.
    public let label: String
    /// The connection string with its password masked.
    public let redactedConninfo: String

    private let conninfo: String
    private let worker: WorkerThread
    private var pgconn: OpaquePointer?  // touched on `worker` only

    private let lock = NSLock()
    private var cancelHandle: CancelHandle?  // guarded by lock
    private var cancelling = false  // guarded by lock: a cancel request is on its way
    private var closed = false  // guarded by lock
    private var broken = false  // guarded by lock
    private var transaction = TransactionState.idle  // guarded by lock; set on `worker` after each statement

    private init(conninfo: String, label: String, worker: WorkerThread, connection: OpaquePointer) {
        self.conninfo = conninfo
        self.label = label
        self.redactedConninfo = Conninfo.redacted(conninfo)
        self.worker = worker
        self.pgconn = connection
        self.cancelHandle = PQgetCancel(connection).map(CancelHandle.init)
    }

    deinit {
        if let connection = pgconn.map(PGConnPointer.init) {
            worker.submit { PQfinish(connection.pointer) }
        }
        worker.stop()
    }

    /// Connects with `conninfo` exactly as libpq takes it: `key=value` pairs or a
    /// `postgresql://` URI, with `PG*` environment variables, `.pgpass`, service files
    /// and `sslmode` honoured.
    public static func connect(
        _ conninfo: String, label: String? = nil, options: ConnectOptions = ConnectOptions()
    ) async throws -> PostgresConnection {
        let name = label ?? Conninfo.endpoint(conninfo)
        let worker = WorkerThread(name: "pg \(name)")
        let pointer: PGConnPointer
        do {
            pointer = try await worker.run {
                // Later keywords override earlier ones: the fallback name cannot override the
                // conninfo, the timeout must.
                var keywords = ["fallback_application_name", "dbname"]
                var values = [options.fallbackApplicationName, conninfo]
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
                return PGConnPointer(pointer: connection)
            }
        } catch {
            worker.stop()
            throw error
        }
        let connection = PostgresConnection(conninfo: conninfo, label: name, worker: worker, connection: pointer.pointer)
        if let timeout = options.statementTimeout {
            do {
                _ = try await connection.query("select set_config('statement_timeout', $1, false)", ["\(max(Int(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000), 0))ms"])
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
        return try await statement { try self.blockingQuery(sql, bindings) }
    }

    /// How long a cancelled statement may take to stop before its caller is let go and
    /// the connection given up (a hung server answers neither the statement nor the cancel).
    public static let cancelGrace: Duration = .seconds(2)

    /// Runs `body` on the connection's thread. When the calling task is cancelled, the
    /// server is asked to cancel (without blocking anyone), and if the statement has not
    /// ended after ``cancelGrace`` the caller gets a cancellation error at once and the
    /// connection is marked broken — its thread may stay stuck until the server answers.
    private func statement<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try Task.checkCancellation()
        let outcome = Outcome<T>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
                outcome.wait(continuation)
                let accepted = worker.submit { outcome.finish(Result { try body() }) }
                if !accepted { outcome.finish(.failure(PostgresError.closed(node: self.label))) }
            }
        } onCancel: {
            self.cancel()
            let label = self.label
            DispatchQueue.global().asyncAfter(deadline: .now() + Self.cancelGrace.timeInterval) {
                outcome.finish(
                    .failure(PostgresError(
                        kind: .cancelled, message: "cancelled; the server did not answer within \(Self.cancelGrace), connection given up",
                        node: label, nothingSent: false)),
                    first: { self.markBroken() })
            }
        }
    }

    /// Runs one statement in its own transaction, then reads `pg_current_wal_lsn()`
    /// after it committed, in one round trip (libpq pipeline mode, a sync after each).
    ///
    /// The LSN is where a reader must have replayed to see this write: a
    /// read-your-writes token. It is nil when the server cannot say (a replica).
    public func queryReturningCommitLSN(_ sql: String, _ parameters: [any PostgresEncodable] = []) async throws
        -> (result: PostgresResult, lsn: LSN?)
    {
        let bindings = parameters.map(\.postgresBinding)
        return try await statement { try self.blockingPipelinedWrite(sql, bindings) }
    }

    /// Runs a script of one or more statements with no parameters (`PQexec`), returning
    /// the last result. For trusted SQL only (schema files); never build it from input.
    public func execute(script sql: String) async throws -> PostgresResult {
        try await statement { try self.blockingScript(sql) }
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
        _ = try? await worker.run { try self.blockingQuery("rollback", []) }
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
        let handle: CancelHandle? = lock.withLock {
            guard !closed, !cancelling, let cancelHandle else { return nil }
            cancelling = true
            return cancelHandle
        }
        guard let handle else { return }
        let thread = Thread { [weak self] in
            var buffer = [CChar](repeating: 0, count: 256)
            _ = PQcancel(handle.pointer, &buffer, Int32(buffer.count))
            self?.lock.withLock { self?.cancelling = false }
        }
        thread.name = "pg cancel \(label)"
        thread.stackSize = 256 << 10
        thread.start()
    }

    /// Closes the connection. Statements already queued finish first.
    public func close() async {
        let wasClosed = lock.withLock {
            let was = closed
            closed = true
            cancelHandle = nil  // freed when no cancel request uses it any more
            return was
        }
        guard !wasClosed else { return }
        _ = try? await worker.run { self.finish() }
        worker.stop()
    }

    // MARK: Identity and quoting

    /// Host, port, recovery state and version of the server.
    public func serverInfo() async throws -> ServerInfo {
        let result = try await query("select pg_is_in_recovery(), current_setting('server_version')")
        let endpoint = try await worker.run { () -> (String, Int, Int) in
            guard let connection = self.pgconn else { throw PostgresError.closed(node: self.label) }
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
        try await worker.run {
            guard let connection = self.pgconn else { throw PostgresError.closed(node: self.label) }
            let length = identifier.utf8.count
            guard let escaped = PQescapeIdentifier(connection, identifier, length) else {
                throw PostgresError(
                    kind: .invalidArgument, message: cleanMessage(String(cString: PQerrorMessage(connection))), node: self.label)
            }
            defer { PQfreemem(escaped) }
            return String(cString: escaped)
        }
    }

    // MARK: On the worker thread

    private func finish() {
        if let connection = pgconn { PQfinish(connection) }
        pgconn = nil
    }

    /// Notes libpq's transaction status; called on `worker` after every statement.
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
        guard Self.serverHungUp(connection) else { return }
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
        return true
    }

    private func liveConnection() throws -> OpaquePointer {
        lock.lock()
        let unusable = closed
        lock.unlock()
        guard !unusable, let connection = pgconn else { throw PostgresError.closed(node: label) }
        return connection
    }

    private func blockingQuery(_ sql: String, _ bindings: [PostgresBinding]) throws -> PostgresResult {
        let connection = try liveConnection()
        try checkBeforeSending(connection)
        defer { noteTransactionState(connection) }
        return try withParameters(bindings) { count, types, values, lengths, formats in
            let result = PQexecParams(connection, sql, count, types, values, lengths, formats, 0)
            return try collect(result, connection: connection)
        }
    }

    private func blockingPipelinedWrite(_ sql: String, _ bindings: [PostgresBinding]) throws -> (PostgresResult, LSN?) {
        let connection = try liveConnection()
        try checkBeforeSending(connection)
        defer { noteTransactionState(connection) }
        guard PQenterPipelineMode(connection) == 1 else {
            throw PostgresError(kind: .invalidArgument, message: "cannot enter pipeline mode", node: label)
        }
        defer { _ = PQexitPipelineMode(connection) }
        try withParameters(bindings) { count, types, values, lengths, formats in
            guard PQsendQueryParams(connection, sql, count, types, values, lengths, formats, 0) == 1,
                PQpipelineSync(connection) == 1,
                PQsendQueryParams(connection, "select pg_catalog.pg_current_wal_lsn()", 0, nil, nil, nil, nil, 0) == 1,
                PQpipelineSync(connection) == 1
            else { throw connectionError(connection) }
        }
        // Results arrive as: statement result(s), NULL, SYNC, LSN result, NULL, SYNC.
        var syncs = 0
        var statement: Result<PostgresResult, PostgresError>?
        var lsn: LSN?
        var idleReads = 0
        while syncs < 2 {
            guard let result = PQgetResult(connection) else {
                if PQstatus(connection) != CONNECTION_OK { throw connectionError(connection) }
                idleReads += 1
                if idleReads > 4 { throw connectionError(connection) }
                continue
            }
            idleReads = 0
            let status = PQresultStatus(result)
            if status == PGRES_PIPELINE_SYNC {
                syncs += 1
                PQclear(result)
                continue
            }
            if status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH {
                // COPY cannot finish inside a pipeline: the connection would wait for
                // copy data forever. Give it up; the pool replaces it.
                PQclear(result)
                markBroken()
                throw PostgresError(kind: .invalidArgument, message: Self.copyRefused, node: label)
            }
            if syncs == 0 {
                do {
                    statement = .success(try collect(result, connection: connection, clear: false))
                } catch let error as PostgresError {
                    statement = .failure(error)
                }
            } else if status == PGRES_TUPLES_OK, PQntuples(result) == 1, PQgetisnull(result, 0, 0) == 0 {
                lsn = LSN(String(cString: PQgetvalue(result, 0, 0)))
            }
            PQclear(result)
        }
        switch statement {
        case .success(let result): return (result, lsn)
        case .failure(let error): throw error
        case nil: throw PostgresError(kind: .server, message: "no result for the statement", node: label)
        }
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

    private func blockingScript(_ sql: String) throws -> PostgresResult {
        let connection = try liveConnection()
        defer { noteTransactionState(connection) }
        return try collect(PQexec(connection, sql), connection: connection)
    }

    private func collect(_ result: OpaquePointer?, connection: OpaquePointer, clear: Bool = true) throws -> PostgresResult {
        guard let result else { throw connectionError(connection) }
        defer { if clear { PQclear(result) } }
        switch PQresultStatus(result) {
        case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            return copyResult(result)
        case PGRES_COPY_IN, PGRES_COPY_OUT, PGRES_COPY_BOTH:
            if clear { abandonCopy(connection) }
            throw PostgresError(kind: .invalidArgument, message: Self.copyRefused, node: label)
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
            kind = .cancelled
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

    private func abandonCopy(_ connection: OpaquePointer) {
        _ = PQputCopyEnd(connection, "COPY is not supported")
        var buffer: UnsafeMutablePointer<CChar>?
        while PQgetCopyData(connection, &buffer, 0) > 0 {
            PQfreemem(buffer)
        }
        while let next = PQgetResult(connection) { PQclear(next) }
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

/// libpq's cancel object, freed when the last user lets go of it (a cancel request in
/// flight may outlive the connection).
final class CancelHandle: @unchecked Sendable {
    let pointer: OpaquePointer
    init(_ pointer: OpaquePointer) { self.pointer = pointer }
    deinit { PQfreeCancel(pointer) }
}

/// The result of one statement, delivered once: by the connection's thread, or by the
/// cancellation deadline, whichever comes first; a result that arrives before the
/// caller waits is kept for it.
final class Outcome<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<T, Error>?
    private var result: Result<T, Error>?
    private var done = false

    func wait(_ continuation: CheckedContinuation<T, Error>) {
        let ready: Result<T, Error>? = lock.withLock {
            if let result { return result }
            self.continuation = continuation
            return nil
        }
        if let ready { continuation.resume(with: ready) }
    }

    /// Delivers `result` unless one was delivered already; true when this one counted.
    /// `first` runs before the waiter resumes, only when this result counts.
    @discardableResult
    func finish(_ result: Result<T, Error>, first: () -> Void = {}) -> Bool {
        let (counted, waiting): (Bool, CheckedContinuation<T, Error>?) = lock.withLock {
            guard !done else { return (false, nil) }
            done = true
            if let continuation {
                self.continuation = nil
                return (true, continuation)
            }
            self.result = result
            return (true, nil)
        }
        if counted { first() }
        waiting?.resume(with: result)
        return counted
    }
}

extension Duration {
    var timeInterval: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
