import Foundation
import PostgresClient
import Switchyard
import Synchronization

/// What the SQL prompt asks of its open transaction.
public enum PromptCommand: Sendable, Equatable {
    /// Rows `offset + 1 …` of the query's cursor, `count` of them.
    case page(offset: Int, count: Int)
    case commit
    case rollback
}

/// A page of a prompt query's rows.
public struct PromptRows: Sendable, Equatable {
    public var columns: [String]
    public var rows: [[String?]]
    /// Rows before this page.
    public var offset: Int
    /// No row follows this page.
    public var atEnd: Bool
}

/// A prompt statement that wrote, held open until the user answers.
public struct PromptWrite: Sendable, Equatable {
    public var statement: String
    /// `UPDATE 2`, `CREATE TABLE`.
    public var summary: String
    /// Rows written (nil: the statement reports none).
    public var rows: Int?
    /// Up to a screenful of the rows, before and after (changed columns for an update).
    public var sample: [ChangeAudit.Entry]
    /// Column order for showing the sample.
    public var columns: [String]
    /// Why rows are not shown before and after, if they are not.
    public var note: String?
    /// When the transaction rolls back by itself.
    public var expires: Date
}

/// The SQL prompt's open transaction: one at a time; a new statement rolls the old back.
final class PromptSessions: Sendable {
    private let current = Mutex<PromptSession?>(nil)

    func replace(with session: PromptSession?) -> PromptSession? {
        current.withLock { current in
            defer { current = session }
            return current
        }
    }

    func session() -> PromptSession? { current.withLock { $0 } }

    func clear(_ session: PromptSession) {
        current.withLock { if $0 === session { $0 = nil } }
    }
}

/// One statement's transaction, held by a task that waits for commands.
final class PromptSession: Sendable {
    typealias Reply = CheckedContinuation<ConsoleEvent?, Never>
    typealias Waiter = CheckedContinuation<(PromptCommand, Reply)?, Never>

    private struct State {
        var queued: [(PromptCommand, Reply)] = []
        var waiter: Waiter?
        var timer: Task<Void, Never>?
        var waitID = 0
        var ended = false
        var task: Task<Void, Never>?
        var cancelled = false

        /// The waiter, taken, with its timer stopped.
        mutating func takeWaiter() -> Waiter? {
            defer {
                waiter = nil
                timer?.cancel()
                timer = nil
            }
            return waiter
        }
    }

    private let state = Mutex(State())

    /// Hands a command to the session; its answer comes back (nil: the session had ended).
    func send(_ command: PromptCommand) async -> ConsoleEvent? {
        await withCheckedContinuation { (reply: Reply) in
            enum Next { case ended, deliver(Waiter), queued }
            let next = state.withLock { state -> Next in
                if state.ended { return .ended }
                if let waiter = state.takeWaiter() { return .deliver(waiter) }
                state.queued.append((command, reply))
                return .queued
            }
            switch next {
            case .ended: reply.resume(returning: nil)
            case .deliver(let waiter): waiter.resume(returning: (command, reply))
            case .queued: break
            }
        }
    }

    /// The next command, or nil after `timeout` (or once cancelled).
    func next(timeout: Duration) async -> (PromptCommand, Reply)? {
        await withCheckedContinuation { (waiter: Waiter) in
            enum Next { case ready((PromptCommand, Reply)), cancelled, wait }
            let next = state.withLock { state -> Next in
                if !state.queued.isEmpty { return .ready(state.queued.removeFirst()) }
                if state.cancelled { return .cancelled }
                state.waitID += 1
                state.waiter = waiter
                let id = state.waitID
                state.timer = Task {
                    try? await Task.sleep(for: timeout)
                    if !Task.isCancelled { self.expire(id) }
                }
                return .wait
            }
            switch next {
            case .ready(let command): waiter.resume(returning: command)
            case .cancelled: waiter.resume(returning: nil)
            case .wait: break
            }
        }
    }

    private func expire(_ id: Int) {
        let waiter = state.withLock { state in state.waitID == id ? state.takeWaiter() : nil }
        waiter?.resume(returning: nil)
    }

    /// No more commands: queued ones are answered nil.
    func end() {
        let queued = state.withLock { state in
            state.ended = true
            defer { state.queued = [] }
            return state.queued
        }
        for (_, reply) in queued { reply.resume(returning: nil) }
    }

    func attach(_ task: Task<Void, Never>) {
        let cancelled = state.withLock { state in
            state.task = task
            return state.cancelled
        }
        if cancelled { task.cancel() }
    }

    /// Rolls the transaction back: the statement running is cancelled on the server, a
    /// wait for a command ends.
    func cancel() {
        let (task, waiter) = state.withLock { state in
            state.cancelled = true
            return (state.task, state.takeWaiter())
        }
        task?.cancel()
        waiter?.resume(returning: nil)
    }
}

extension DataService {
    /// Hands a command to the prompt's open transaction and answers for `request`. A page
    /// or rollback asked for and then cancelled (Esc) rolls the transaction back; a commit
    /// is never abandoned: its real outcome is awaited.
    func sendToPrompt(_ command: PromptCommand, request: Int) async -> ConsoleEvent? {
        guard let session = prompts.session() else {
            return command == .rollback ? .promptDone("rolled back", request: request)
                : .promptDone("the transaction had ended already (rolled back): nothing was committed", request: request)
        }
        let answer: ConsoleEvent?
        if command == .commit {
            answer = await session.send(command)
        } else {
            answer = await withTaskCancellationHandler { await session.send(command) } onCancel: { session.cancel() }
        }
        guard let answer else {
            return .promptDone(command == .commit ? "the transaction had ended already (rolled back): nothing was committed" : "rolled back", request: request)
        }
        return Self.retagged(answer, request)
    }

    /// The prompt is left: its open transaction rolls back.
    func endPrompt() {
        prompts.session()?.cancel()
    }

    /// A session's answer, for the request that asked (the session knows only the first).
    static func retagged(_ event: ConsoleEvent, _ request: Int) -> ConsoleEvent {
        switch event {
        case .promptRows(let rows, _): return .promptRows(rows, request: request)
        case .promptText(let title, let lines, _): return .promptText(title: title, lines: lines, request: request)
        case .promptHeld(let write, _): return .promptHeld(write, request: request)
        case .promptDone(let message, _): return .promptDone(message, request: request)
        case .failed(let message, _): return .failed(message: message, request: request)
        default: return event
        }
    }

    /// Rows of a prompt query fetched per page at most; the preview shows this many rows.
    static let promptSampleRows = 50

    /// Why the prompt refuses a statement before running it.
    static func promptRefusal(_ statement: PromptStatement, readOnly: Bool = false) -> String? {
        if statement.multiple { return "one statement at a time: the prompt runs the first only when it is alone" }
        if readOnly, let first = SQLTokens.words(statement.text, limit: 1).first?.lowercased(),
            ["set", "reset", "discard", "load", "lock", "listen", "notify", "prepare", "execute", "deallocate", "call", "do", "copy", "checkpoint", "vacuum", "analyze", "cluster", "reindex", "refresh"].contains(first)
        {
            return "the console is read-only: \(first.uppercased()) is not run here (reads only)"
        }
        if statement.kind == .transactionControl {
            return "the prompt holds the transaction itself: each statement runs in its own, and one that writes waits for y (commit) or n (roll back)"
        }
        return nil
    }

    /// Starts a statement in a transaction of its own and answers with its first outcome;
    /// the transaction stays open for ``PromptCommand``s while it holds rows or a write.
    func runStatement(_ statement: PromptStatement, pageSize: Int, request: Int, progress: @escaping @Sendable (ConsoleEvent) -> Void) async -> ConsoleEvent? {
        if let refusal = Self.promptRefusal(statement, readOnly: readOnly) { return .failed(message: refusal, request: request) }
        if let previous = prompts.replace(with: nil) { previous.cancel() }
        if !readOnly, statement.kind == .other || statement.kind == .explain(analyze: true) {
            do {
                try await ensureAudit()
            } catch let refused as WriteRefused {
                return .failed(message: refused.message, request: request)
            } catch {
                return .failed(message: "the change history cannot be checked: \(error): nothing was run", request: request)
            }
        }
        let session = PromptSession()
        _ = prompts.replace(with: session)
        let first = FirstAnswer()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<ConsoleEvent?, Never>) in
                first.set(continuation)
                let task = Task {
                    await RoutingContext.admin.run {
                        let outcome = await attempt(request) {
                            try await hold(statement, pageSize: pageSize, request: request, session: session, first: first)
                        }
                        session.end()
                        prompts.clear(session)
                        let last = outcome ?? .promptDone("cancelled: rolled back, nothing was written", request: request)
                        if !first.answer(last), let late = Self.ended(last) { progress(late) }
                    }
                }
                session.attach(task)
            }
        } onCancel: {
            session.cancel()
        }
    }

    /// A session's last word when it comes after its first answer: no request waits.
    /// (nil: the command that was waiting got it already).
    static func ended(_ event: ConsoleEvent) -> ConsoleEvent? {
        switch event {
        case .failed(let message, _): return .promptEnded(message)
        case .promptDone(let message, _): return .promptEnded(message)
        case .promptEnded(let message): return message.isEmpty ? nil : event
        default: return event
        }
    }

    /// The first answer goes to the request that started the statement; later ones to
    /// the commands that asked, or to the UI loop directly.
    final class FirstAnswer: Sendable {
        private let continuation = Mutex<CheckedContinuation<ConsoleEvent?, Never>?>(nil)
        func set(_ continuation: CheckedContinuation<ConsoleEvent?, Never>) { self.continuation.withLock { $0 = continuation } }
        /// False when the first answer was given already.
        @discardableResult func answer(_ event: ConsoleEvent?) -> Bool {
            guard let continuation = continuation.withLock({ value -> CheckedContinuation<ConsoleEvent?, Never>? in
                defer { value = nil }
                return value
            }) else { return false }
            continuation.resume(returning: event)
            return true
        }
    }

    /// The statement's work inside its transaction; returns the event that ends it.
    private func hold(
        _ statement: PromptStatement, pageSize: Int, request: Int, session: PromptSession, first: FirstAnswer
    ) async throws -> ConsoleEvent {
        // Every answer after the first goes to the command that asked for it.
        var pending: CheckedContinuation<ConsoleEvent?, Never>?
        func answer(_ event: ConsoleEvent) {
            if let pending {
                pending.resume(returning: event)
            } else {
                first.answer(event)
            }
            pending = nil
        }
        enum Outcome: Error { case rolledBack(String) }
        do {
            let message = try await cluster.transaction { transaction -> String in
                try await markConsoleWrites(transaction)
                if readOnly {
                    // Read-only, and fixed so: once a query has run, nothing in the
                    // statement can make this transaction read-write again.
                    _ = try await transaction.query("set transaction read only")
                    _ = try await transaction.query("select 1")
                }
                switch statement.kind {
                case .query:
                    if try await declareCursor(statement.text, in: transaction) {
                        var page = try await fetch(offset: 0, count: pageSize, in: transaction)
                        answer(.promptRows(page, request: request))
                        // Every row is on screen: nothing to page through, no snapshot to keep.
                        if page.atEnd { throw Outcome.rolledBack("") }
                        while let (command, reply) = await session.next(timeout: promptHold) {
                            pending = reply
                            switch command {
                            case .page(let offset, let count):
                                page = try await fetch(offset: max(offset, 0), count: count, in: transaction)
                                answer(.promptRows(page, request: request))
                            case .commit, .rollback:
                                throw Outcome.rolledBack("closed")
                            }
                        }
                        throw Outcome.rolledBack("the rows were closed after \(formatDuration(promptHold)) without a key: the transaction is rolled back")
                    }
                    fallthrough
                case .other:
                    let write = try await run(statement, in: transaction)
                    guard var held = write.held else {
                        if !write.lines.isEmpty {
                            answer(.promptText(title: write.summary, lines: write.lines, request: request))
                        }
                        throw Outcome.rolledBack("\(write.summary): nothing was written")
                    }
                    held.expires = Date() + TimeInterval(promptHold.components.seconds)
                    answer(.promptHeld(held, request: request))
                    while let (command, reply) = await session.next(timeout: promptHold) {
                        pending = reply
                        switch command {
                        case .commit:
                            if audit, !write.recordedPerRow {
                                try await ChangeAudit.recordStatement(
                                    in: transaction, table: write.table, statement: statement.text, rows: held.rows)
                            }
                            return "committed: \(held.summary)" + (audit ? " (in the change history)" : "")
                        case .rollback:
                            throw Outcome.rolledBack("rolled back: \(held.summary) was not committed")
                        case .page:
                            answer(.promptHeld(held, request: request))
                        }
                    }
                    throw Outcome.rolledBack("rolled back by itself: \(held.summary) waited \(formatDuration(promptHold)) for y")
                case .explain(let analyze):
                    // EXPLAIN ANALYZE executes the statement: whatever it wrote is rolled back.
                    let result = try await transaction.execute(statement.text)
                    let title = analyze ? "EXPLAIN ANALYZE (executed, then rolled back)" : "EXPLAIN"
                    answer(.promptText(title: title, lines: result.rows.map { $0.raw(0) ?? "" }, request: request))
                    throw Outcome.rolledBack("")
                case .empty, .transactionControl:
                    throw Outcome.rolledBack("")
                }
            }
            let event = ConsoleEvent.promptDone(message, request: request)
            if let pending { pending.resume(returning: event); return .promptEnded("") }
            return event
        } catch Outcome.rolledBack(let message) {
            let event = ConsoleEvent.promptDone(message, request: request)
            if let pending { pending.resume(returning: event); return .promptEnded("") }
            return event
        } catch {
            // A failure after the first answer reaches the command that was waiting.
            if let pending {
                let text = (error as? PostgresError).map { $0.message } ?? "\(error)"
                pending.resume(returning: .failed(message: "rolled back: \(text)", request: request))
                return .promptEnded("")
            }
            throw error
        }
    }

    /// `DECLARE` a scrolling cursor over the query; false when the server says the query
    /// cannot be a cursor (a WITH that writes), so it runs as a statement instead.
    private func declareCursor(_ sql: String, in transaction: Cluster.Transaction) async throws -> Bool {
        _ = try await transaction.query("savepoint sy_prompt")
        do {
            _ = try await transaction.query("declare sy_prompt_rows scroll cursor for \(sql)")
            return true
        } catch let error as PostgresError where error.sqlState == "0A000" {
            _ = try await transaction.query("rollback to savepoint sy_prompt")
            return false
        }
    }

    private func fetch(offset: Int, count: Int, in transaction: Cluster.Transaction) async throws -> PromptRows {
        _ = try await transaction.query("move absolute \(offset) in sy_prompt_rows")
        // One row more than shown says whether the page is the last.
        let result = try await transaction.query("fetch forward \(count + 1) from sy_prompt_rows")
        let width = result.columns.count
        let rows = result.rows.prefix(count).map { row in (0..<width).map { row.raw($0) } }
        return PromptRows(columns: result.columns.map(\.name), rows: Array(rows), offset: offset, atEnd: result.rowCount <= count)
    }

    /// What running a writing statement did.
    private struct Ran {
        var summary: String
        var lines: [String] = []
        var held: PromptWrite?
        /// The history rows were written with the statement (one per row).
        var recordedPerRow = false
        /// `schema.table` the statement wrote, when known.
        var table: String?
    }

    /// Runs the statement; for a single-table write, wrapped so that its rows come back
    /// before and after (and into the history, in the same statement).
    private func run(_ statement: PromptStatement, in transaction: Cluster.Transaction) async throws -> Ran {
        if let target = statement.target, let described = try await describe(target, in: transaction) {
            _ = try await transaction.query("savepoint sy_prompt")
            do {
                let wrapped = try await previewSQL(statement, target: target, described: described)
                let result = try await transaction.execute(wrapped.sql, wrapped.bindings)
                let count = try result.first?.decode(0, as: Int.self) ?? 0
                let sample = result.rows.compactMap { row -> ChangeAudit.Entry? in
                    guard !row.isNull(1) || !row.isNull(2) || !row.isNull(3) else { return nil }
                    return ChangeAudit.Entry(
                        id: 0, changedAt: "", role: "", osUser: nil, clientHost: nil, table: described.name,
                        key: ChangeAudit.decode(row.raw(1)) ?? [:], action: target.action,
                        before: ChangeAudit.decode(row.raw(2)), after: ChangeAudit.decode(row.raw(3)), statement: statement.text)
                }
                let summary = "\(target.action.rawValue.uppercased()) \(count)"
                var note: String?
                if target.action == .update && described.keys.isEmpty { note = "\(described.name) has no primary key: rows are shown after the change only" }
                let wroteAnything = try await wrote(transaction)
                let held = count == 0 && !wroteAnything
                    ? nil
                    : PromptWrite(statement: statement.text, summary: summary, rows: count, sample: sample, columns: described.columns, note: note, expires: Date())
                return Ran(summary: summary, held: held, recordedPerRow: audit, table: described.name)
            } catch let error as PostgresError where error.sqlState == "42601" || error.sqlState == "0A000" || error.sqlState == "42P10" {
                // The wrapping did not fit this statement: run it as it was typed.
                _ = try await transaction.query("rollback to savepoint sy_prompt")
            }
        }
        let result = statement.parameters.isEmpty
            ? try await transaction.execute(statement.text) : try await transaction.execute(statement.text, statement.parameters.map { $0 })
        let width = result.columns.count
        var lines: [String] = []
        var sample: [ChangeAudit.Entry] = []
        if width > 0 {
            let names = result.columns.map(\.name)
            for row in result.rows.prefix(Self.promptSampleRows) {
                let values = Dictionary((0..<width).map { (names[$0], row.raw($0)) }, uniquingKeysWith: { first, _ in first })
                sample.append(ChangeAudit.Entry(
                    id: 0, changedAt: "", role: "", osUser: nil, clientHost: nil, table: statement.target?.table ?? "",
                    key: [:], action: .statement, before: nil, after: values, statement: statement.text))
                lines.append(values.keys.sorted { names.firstIndex(of: $0)! < names.firstIndex(of: $1)! }.map { "\($0)=\(values[$0]! ?? "NULL")" }.joined(separator: "  "))
            }
        }
        let summary = result.commandTag.isEmpty ? "done" : result.commandTag
        guard try await wrote(transaction) else { return Ran(summary: summary, lines: lines) }
        let held = PromptWrite(
            statement: statement.text, summary: summary, rows: result.affectedRows > 0 || result.commandTag.hasSuffix(" 0") ? result.affectedRows : nil,
            sample: sample, columns: result.columns.map(\.name),
            note: statement.target == nil ? nil : "rows before and after are shown for INSERT, UPDATE and DELETE of one table without RETURNING",
            expires: Date())
        return Ran(summary: summary, lines: lines, held: held, table: nil)
    }

    /// Whether the transaction has written anything (it has a transaction id).
    private func wrote(_ transaction: Cluster.Transaction) async throws -> Bool {
        try await transaction.query("select pg_current_xact_id_if_assigned() is not null").scalar(Bool.self) ?? false
    }

    /// A target table's canonical name, key columns and columns (nil: not a table).
    private struct Described {
        var name: String
        var keys: [String]
        var columns: [String]
    }

    private func describe(_ target: PromptStatement.Target, in transaction: Cluster.Transaction) async throws -> Described? {
        let result = try await transaction.query(
            """
            select n.nspname || '.' || c.relname,
                   (select coalesce(array_to_json(array_agg(a.attname order by array_position(i.indkey::int2[], a.attnum))), '[]')::text
                    from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
                    where i.indrelid = c.oid and i.indisprimary),
                   (select coalesce(array_to_json(array_agg(a.attname order by a.attnum)), '[]')::text
                    from pg_attribute a where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped)
            from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where c.oid = to_regclass($1) and c.relkind in ('r', 'p')
            """, [target.table])
        guard let row = result.first else { return nil }
        func names(_ index: Int) -> [String] {
            (try? JSONDecoder().decode([String].self, from: Data((row.raw(index) ?? "[]").utf8))) ?? []
        }
        return Described(name: try row.decode(0, as: String.self), keys: names(1), columns: names(2))
    }

    /// The statement wrapped in CTEs: its rows RETURNING, the old rows of an update (read
    /// by key in the statement's snapshot, which is from before the update), the history
    /// rows, and a sample with the count.
    private func previewSQL(_ statement: PromptStatement, target: PromptStatement.Target, described: Described) async throws -> (sql: String, bindings: [any PostgresEncodable]) {
        let keys = try await cluster.quoteIdentifiers(described.keys)
        let columns = try await cluster.quoteIdentifiers(described.columns)
        // The statement's own values come first: its `$1`… stay what they were.
        var bindings: [any PostgresEncodable] = statement.parameters.map { $0 }
        func parameter(_ value: any PostgresEncodable) -> String {
            bindings.append(value)
            return "$\(bindings.count)"
        }
        // Values as `::text`, as the console's own edits record them (to_jsonb would
        // write timestamps and the like differently, and revert compares them).
        let names = described.columns.map { parameter($0) + "::text" }
        func textMap(_ row: String) -> String {
            guard !columns.isEmpty else { return "'{}'::jsonb" }
            // jsonb_build_object takes at most 100 arguments: 50 columns a call.
            return "(" + stride(from: 0, to: columns.count, by: 50).map { start in
                "jsonb_build_object(" + (start..<min(start + 50, columns.count)).map { "\(names[$0]), \(row).\(columns[$0])::text" }
                    .joined(separator: ", ") + ")"
            }.joined(separator: " || ") + ")"
        }
        let keyObject = keys.isEmpty ? "'{}'::jsonb"
            : "jsonb_build_object(" + zip(described.keys, keys).map { "\(parameter($0.0))::text, sy_changed.\($0.1)::text" }.joined(separator: ", ") + ")"
        let before: String, after: String, join: String
        switch target.action {
        case .insert:
            (before, after, join) = ("null::jsonb", textMap("sy_changed"), "")
        case .delete:
            (before, after, join) = (textMap("sy_changed"), "null::jsonb", "")
        default:
            if keys.isEmpty {
                (before, after, join) = ("null::jsonb", textMap("sy_changed"), "")
            } else {
                func changed(_ side: String) -> String {
                    """
                    (select jsonb_object_agg(n.key, \(side).value) from jsonb_each_text(\(textMap("sy_changed"))) n
                     join jsonb_each_text(\(textMap("sy_old"))) o on o.key = n.key where n.value is distinct from o.value)
                    """
                }
                before = changed("o")
                after = changed("n")
                join = " left join \(target.table) as sy_old on " + keys.map { "sy_old.\($0) is not distinct from sy_changed.\($0)" }.joined(separator: " and ")
            }
        }
        var sql = """
            with sy_changed as (\(statement.text)
            returning \(target.reference).*),
            sy_rows as (select \(keyObject) as sy_key, \(before) as sy_before, \(after) as sy_after from sy_changed\(join))
            """
        if audit {
            sql += """
                ,
                sy_history as (insert into switchyard.changes (os_user, client_host, table_name, row_key, action, before, after, statement)
                    select \(parameter(ChangeAudit.osUser)), \(parameter(ChangeAudit.hostName)), \(parameter(described.name)), sy_key,
                           \(parameter(target.action.rawValue)), sy_before, sy_after, \(parameter(statement.text)) from sy_rows)
                """
        }
        sql += """

            select (select count(*) from sy_rows), s.sy_key::text, s.sy_before::text, s.sy_after::text
            from (select 1) as sy_one left join (select * from sy_rows limit \(Self.promptSampleRows)) as s on true
            """
        return (sql, bindings)
    }
}

extension ChangeAudit {
    /// One history row for a prompt statement whose rows were not recorded one by one.
    static func recordStatement(in transaction: Cluster.Transaction, table: String?, statement: String, rows: Int?) async throws {
        do {
            _ = try await transaction.execute(
                """
                insert into switchyard.changes (os_user, client_host, table_name, row_key, action, after, statement)
                values ($1, $2, $3, '{}', 'statement', $4::jsonb, $5)
                """,
                [osUser, hostName, table ?? "(statement)", rows.map { json(["rows": String($0)]) }, statement])
        } catch let error as PostgresError {
            throw DataService.WriteRefused(
                "the change history \(Self.table) cannot be written (\(error.message)): nothing was committed; \(remedy)")
        }
    }
}
