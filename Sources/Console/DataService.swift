import Foundation
import PostgresClient
import Switchyard
import LocalCluster
import Synchronization

/// Runs the console's effects against the cluster, always inside the `admin` routing
/// context: every read and write lands on the primary, and the query log shows it.
public struct DataService: Sendable {
    public let cluster: Cluster
    /// Record every change in ``ChangeAudit/table`` (`[console] audit`, default on).
    public let audit: Bool
    private let auditReady = AuditReadiness()
    /// The SQL prompt's open transaction, if any (one at a time).
    let prompts = PromptSessions()
    /// How long the SQL prompt holds a transaction waiting for an answer.
    public let promptHold: Duration
    /// The console is read-only: the SQL prompt runs each statement in a read-only
    /// transaction and refuses what would change the session's settings.
    public let readOnly: Bool

    public init(cluster: Cluster, audit: Bool = true, promptHold: Duration = .seconds(120), readOnly: Bool = false) {
        self.cluster = cluster
        // A read-only console writes nothing, history included.
        self.audit = audit && !readOnly
        self.promptHold = promptHold
        self.readOnly = readOnly
    }

    /// Whether the history table is known to exist (checked once, before the first edit).
    final class AuditReadiness: Sendable {
        private let ready = Mutex(false)
        var isReady: Bool { ready.withLock { $0 } }
        func markReady() { ready.withLock { $0 = true } }
    }

    static let tablesSQL = """
        select n.nspname, c.relname, c.reltuples::bigint, c.relkind::text
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p', 'v', 'm') and n.nspname not in ('pg_catalog', 'information_schema')
          and n.nspname not like 'pg_toast%' and n.nspname not like 'pg_temp%'
        order by n.nspname, c.relname
        """

    static let columnsSQL = """
        select a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid),
               array_position(i.indkey::int2[], a.attnum),
               (select array_to_json(array_agg(e.enumlabel order by e.enumsortorder))::text from pg_enum e where e.enumtypid = a.atttypid)
        from pg_attribute a
        left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
        left join pg_index i on i.indrelid = a.attrelid and i.indisprimary
        where a.attrelid = $1::regclass and a.attnum > 0 and not a.attisdropped
        order by a.attnum
        """

    /// Runs `effect` and returns the event that reports its outcome; `progress` receives
    /// events on the way (failover check results).
    public func perform(_ effect: ConsoleEffect, progress: @escaping @Sendable (ConsoleEvent) -> Void = { _ in }) async -> ConsoleEvent? {
        await RoutingContext.admin.run { await performInContext(effect, progress: progress) }
    }

    private func performInContext(_ effect: ConsoleEffect, progress: @escaping @Sendable (ConsoleEvent) -> Void) async -> ConsoleEvent? {
        switch effect {
        case .runChecks(let request):
            let report = await FailoverChecker(configuration: cluster.configuration).run { progress(.checkProgress($0, request: request)) }
            return .checksDone(report, request: request)
        case .promote(let node, let request):
            return await attempt(request, writes: .promotion) {
                let outcome = try await Promotion.promote(node, configuration: cluster.configuration)
                await cluster.monitor.probeNow()
                let how = (outcome.method == .pgPromote ? "pg_promote()" : "Patroni \(outcome.method.rawValue)")
                    + ", writes after \(formatDuration(outcome.acceptingWrites))"
                    + (outcome.notFollowing.isEmpty ? "" : "; not following yet: \(outcome.notFollowing.keys.sorted().joined(separator: ", "))")
                return .promoted(node: node, how: how, request: request)
            }
        case .runStatement(let statement, let pageSize, let request):
            return await runStatement(statement, pageSize: pageSize, request: request, progress: progress)
        case .promptCommand(let command, let request):
            return await sendToPrompt(command, request: request)
        case .endPrompt, .rememberStatement, .setClipboard:
            return nil
        case .copyRow(let shape, let key, let format, let path, let request):
            return await attempt(request) {
                let read = SQLBuilder.current(shape, key: key)
                guard let found = try await cluster.query(read.sql, read.bindings, table: shape.table.qualifiedName).first else {
                    return .failed(message: "the row is gone (deleted since it was shown): nothing copied", request: request)
                }
                let row = (0..<shape.columns.count).map { found.raw($0) }
                let text = RowCopy.text(format, shape: shape, row: row, null: cluster.configuration.exportNull)
                guard let path else {
                    return .copied("copied the row as \(format.label) to the clipboard (\(text.utf8.count) bytes, through the terminal)",
                                   clipboard: text, request: request)
                }
                do {
                    try PrivateFile.create(Data(text.utf8), at: path)
                } catch {
                    return .failed(message: "\(path): \(error.localizedDescription) — nothing written (an existing file is never overwritten)", request: request)
                }
                return .copied("copied the row as \(format.label) to \(path)", clipboard: nil, request: request)
            }
        case .loadTables(let request):
            return await attempt(request) {
                let result = try await cluster.query(Self.tablesSQL)
                return .tablesLoaded(try result.rows.map { row in
                    TableInfo(
                        schema: try row.decode(0), name: try row.decode(1), estimatedRows: try row.decode(2),
                        kind: ["v": .view, "m": .materializedView][try row.decode(3, as: String.self)] ?? .table)
                }, request: request)
            }
        case .openTable(let table, let request):
            return await attempt(request) { .tableOpened(try await shape(of: table), request: request) }
        case .loadPage(let shape, let position, let sort, let filter, let limit, let request, let scope):
            return await attempt(request) {
                let statement = SQLBuilder.page(shape, position: position, sort: sort, filter: filter, scope: scope, limit: limit)
                let result = try await cluster.query(statement.sql, statement.bindings, table: shape.table.qualifiedName)
                // Columns: the values (cut), the summary of cut values, the sort keys.
                let width = shape.columns.count
                var rows = result.rows.map { row in (0..<width).map { row.raw($0) } }
                var long = result.rows.map { row in LongValue.parse(row.raw(width), columns: width) }
                var keys = result.rows.map { row in ((width + 1)..<result.columns.count).map { row.raw($0) } }
                switch position {
                case .last, .before:
                    rows.reverse()
                    keys.reverse()
                    long.reverse()
                default: break
                }
                var matching: MatchCount?
                if let filter, position == .first {
                    let count = SQLBuilder.count(shape, filter: filter, scope: scope, cap: SQLBuilder.countCap)
                    let counted = try await cluster.query(count.sql, count.bindings, table: shape.table.qualifiedName).scalar(Int.self) ?? 0
                    matching = MatchCount(rows: min(counted, SQLBuilder.countCap), capped: counted > SQLBuilder.countCap)
                }
                return .pageLoaded(rows: rows, keys: keys, position: position, request: request, long: long, matching: matching)
            }
        case .loadValue(let shape, let row, let column, let request):
            return await attempt(request) {
                let statement = SQLBuilder.value(shape, key: shape.keyIndexes.map { row[$0] }, column: column)
                let result = try await cluster.query(statement.sql, statement.bindings, table: shape.table.qualifiedName)
                guard let first = result.first else { return .conflict(current: nil, request: request) }
                return .valueLoaded(first.raw(0), request: request)
            }
        case .update(let shape, let seen, let changes, let long, let request):
            return await attempt(request, writes: .row) {
                try await ensureAudit()
                let statement = SQLBuilder.update(shape, seen: seen, changes: changes, long: long)
                return try await write(statement, shape: shape, seen: seen, request: request, action: .update, changed: changes.keys.sorted())
            }
        case .insert(let shape, let values, let request):
            return await attempt(request, writes: .row) {
                try await ensureAudit()
                return try await insertRow(shape, values: values, request: request)
            }
        case .delete(let shape, let seen, let long, let request):
            return await attempt(request, writes: .row) {
                try await ensureAudit()
                let statement = SQLBuilder.delete(shape, seen: seen, long: long)
                return try await write(
                    statement, shape: shape, seen: seen, request: request, action: .delete, changed: Array(0..<shape.columns.count))
            }
        case .prepareRevert(let entry, let request):
            return await attempt(request) { try await prepareRevert(entry, request: request) }
        case .revert(let plan, let request):
            return await attempt(request, writes: .revert) { try await revert(plan, request: request) }
        case .follow(_, let key, let values, let request):
            return await followReference(key, values: values, request: request)
        case .export(let job, let request):
            return await export(job, request: request, progress: progress)
        case .refreshView(let table, let request):
            return await attempt(request) {
                let names = try await cluster.quoteIdentifiers([table.schema, table.name])
                let started = ContinuousClock.now
                _ = try await cluster.execute("refresh materialized view \(names[0]).\(names[1])", table: table.qualifiedName)
                return .viewRefreshed(table, took: (ContinuousClock.now - started).milliseconds, request: request)
            }
        case .loadReferences(let shape, let row, let request):
            return await attempt(request) { .referencesLoaded(try await references(to: shape, row: row), request: request) }
        case .openReferencing(let item, let request):
            return await attempt(request) {
                let shape = try await shape(of: item.table)
                let columns = item.columns.compactMap { name in shape.columns.firstIndex { $0.name == name } }
                let label = zip(item.columns, item.values).map { "\($0) = \($1 ?? "NULL")" }.joined(separator: ", ")
                return .referencingOpened(shape, scope: ReferenceScope(columns: columns, values: item.values, label: label), request: request)
            }
        case .loadHistory(let table, let key, let request):
            return await attempt(request) {
                do {
                    return .historyLoaded(try await ChangeAudit.history(cluster, table: table, key: key, limit: 500), request: request)
                } catch let error as PostgresError where error.sqlState == "42P01" {
                    return .historyLoaded([], request: request)  // no history table yet: nothing recorded
                }
            }
        case .cancel, .quit, .editExternally:
            return nil
        }
    }

    /// Inserts a row (values by column index, the rest defaults) and, with the history
    /// on, its history row in the same transaction.
    func insertRow(_ shape: TableShape, values: [Int: String?], request: Int, reverts: Int? = nil) async throws -> ConsoleEvent {
                let statement = SQLBuilder.insert(shape, values: values)
                let width = shape.columns.count
                return try await cluster.transaction { transaction -> ConsoleEvent in
                    try await markConsoleWrites(transaction)
                    let result = try await transaction.execute(statement.sql, statement.bindings)
                    let row = result.first.map { row in (0..<width).map { row.raw($0) } }
                    if audit, row == nil {
                        // An INSTEAD OF trigger (or a rule) that returns no row: what it
                        // wrote cannot be recorded, so it is not kept.
                        throw WriteRefused("the insert returned no row (an INSTEAD OF trigger or a rule that returns none), so the "
                            + "change history could not record it: nothing was written")
                    }
                    if audit, let row {
                        try await ChangeAudit.record(
                            in: transaction, table: shape.table.qualifiedName, key: Self.values(shape, row, shape.keyIndexes), action: .insert,
                            before: nil, after: Self.values(shape, row, Array(0..<width)), reverts: reverts)
                    }
                    return .saved(row: row, request: request)
                }
    }

    private func followReference(_ key: ForeignKey, values: [String?], request: Int) async -> ConsoleEvent? {
            await attempt(request) {
                let target = try await shape(of: key.target)
                let names = try await cluster.quoteIdentifiers(key.targetColumns)
                let conditions = names.enumerated().map { "\($0.element) = $\($0.offset + 1)" }.joined(separator: " and ")
                let sortKeys = SQLBuilder.sortKeys(target, sort: nil).map { "(\($0.expression))::text" }.joined(separator: ", ")
                let keyCount = SQLBuilder.sortKeys(target, sort: nil).count
                let row = try await cluster.query(
                    "select \(sortKeys) from \(target.quotedName) as r where \(conditions) limit 1", values.map { $0 as any PostgresEncodable },
                    table: target.table.qualifiedName
                ).first
                guard let row else {
                    throw WriteRefused("the row \(key.name) points to is not in \(key.target.qualifiedName) (or not visible to you)")
                }
                let anchor = (0..<keyCount).map { row.raw($0) }
                let label = values.count == 1 ? "#\(values[0] ?? "NULL")" : "#(\(values.map { $0 ?? "NULL" }.joined(separator: ", ")))"
                return .followed(target, anchor: anchor, label: label, request: request)
            }
    }

    private func export(_ job: ExportJob, request: Int, progress: @escaping @Sendable (ConsoleEvent) -> Void) async -> ConsoleEvent? {
            await attempt(request) {
                let (sql, settings) = SQLBuilder.export(
                    job.shape, sort: job.sort, filter: job.filter, scope: job.scope, format: job.format, null: cluster.configuration.exportNull)
                let writer = try ExportWriter(path: job.path) { rows, bytes in
                    progress(.exportProgress(rows: rows, bytes: bytes, request: request))
                }
                let started = ContinuousClock.now
                do {
                    // Its own routing context, so the log says what read the rows and why.
                    let context = RoutingContext(name: "export", readsFromReplicas: job.fromReplica, maxReplicaLag: cluster.configuration.maxReplicaLag)
                    let (node, _) = try await context.run {
                        try await cluster.copyOut(
                            sql, settings: settings, table: job.shape.table.qualifiedName, leastLag: job.fromReplica, sink: { try writer.write($0) })
                    }
                    let (rows, bytes) = try writer.finish()
                    return .exported(path: job.path, rows: job.format == .csv ? max(rows - 1, 0) : rows, bytes: bytes, node: node,
                                     took: (ContinuousClock.now - started).milliseconds, request: request)
                } catch {
                    writer.discard()
                    throw error
                }
            }
    }

    /// An update or delete of the row as seen, in a transaction that commits only when it
    /// touched exactly that one row. None: someone else changed or deleted it (the event
    /// carries the row as it is now) — or, when the row is in fact unchanged, a trigger or
    /// a row-level security policy refused the change. More than one: the key is not
    /// unique here (inheritance children, a dropped constraint) and nothing is written.
    ///
    /// With the history on, the row as it was (read in the transaction, whole values) and
    /// as it is after go into ``ChangeAudit`` in the same transaction: `changed` columns only.
    func write(
        _ statement: Statement, shape: TableShape, seen: [String?], request: Int, action: ChangeAudit.Action, changed: [Int],
        reverts: Int? = nil
    ) async throws -> ConsoleEvent {
        let width = shape.columns.count
        let key = shape.keyIndexes.map { seen[$0] }
        /// Thrown inside the transaction to roll it back: the statement touched no row, yet
        /// a trigger may have written something.
        struct TouchedNoRow: Error {}
        do {
            return try await cluster.transaction { transaction -> ConsoleEvent in
                try await markConsoleWrites(transaction)
                var before: [String?]?
                if audit {
                    let current = SQLBuilder.current(shape, key: key)
                    before = try await transaction.query(current.sql, current.bindings).first.map { row in (0..<width).map { row.raw($0) } }
                }
                let result = try await transaction.execute(statement.sql, statement.bindings)
                if result.affectedRows > 1 {
                    throw WriteRefused("the key \(SQLBuilder.describeKey(shape, row: seen)) matched \(result.affectedRows) rows "
                        + "(inherited tables, or no unique key): nothing was written")
                }
                if result.affectedRows == 1 {
                    let after = result.first.map { row in (0..<width).map { row.raw($0) } }
                    if audit, before == nil || (action != .delete && after == nil) {
                        throw WriteRefused("the \(action.rawValue) left no \(before == nil ? "before" : "after")-image to record "
                            + "(a view whose INSTEAD OF trigger returns no row?), so the change history could not keep it: nothing was written")
                    }
                    if audit, let before {
                        try await ChangeAudit.record(
                            in: transaction, table: shape.table.qualifiedName, key: Self.values(shape, before, shape.keyIndexes),
                            action: action, before: Self.values(shape, before, changed),
                            after: action == .delete ? nil : after.map { Self.values(shape, $0, changed) }, reverts: reverts)
                    }
                    return .saved(row: after, request: request)
                }
                throw TouchedNoRow()
            }
        } catch is TouchedNoRow {
            // Rolled back (a trigger's own writes with it); the row as it is now, outside.
            let current = SQLBuilder.current(shape, key: key)
            let now = try await cluster.query(current.sql, current.bindings, table: shape.table.qualifiedName).first
                .map { row in (0..<width).map { row.raw($0) } }
            if let now, now == seen {
                return .failed(
                    message: "the row is unchanged, yet the change touched no row: a trigger or a row-level security policy "
                        + "refused it; nothing was written", request: request)
            }
            return .conflict(current: now, request: request)
        } catch let refused as WriteRefused {
            return .failed(message: refused.message, request: request)
        }
    }

    /// Column name → value for the columns at `indexes` of `row`.
    static func values(_ shape: TableShape, _ row: [String?], _ indexes: [Int]) -> [String: String?] {
        var values: [String: String?] = [:]
        for index in indexes where shape.columns.indices.contains(index) && row.indices.contains(index) {
            values[shape.columns[index].name] = row[index]
        }
        return values
    }

    /// Before the first edit: the history table exists, or is created now; if neither,
    /// the edit is refused (an audit trail that silently stops is worse than none).
    func ensureAudit() async throws {
        guard audit, !auditReady.isReady else { return }
        // One question: does the table exist, and has it every column this version writes
        // (a history made by an older version has no hash chain yet)?
        let current = try await cluster.query(
            """
            select to_regclass($1) is not null,
                   (select count(*) = 5 from pg_catalog.pg_attribute
                    where attrelid = to_regclass($1) and attname in ('statement', 'reverts', 'source', 'seq', 'hash') and not attisdropped)
            """, [ChangeAudit.table]).first
        let exists = try current?.decode(0, as: Bool.self) ?? false
        let upToDate = try current?.decode(1, as: Bool.self) ?? false
        if !exists || !upToDate {
            do {
                try await ChangeAudit.initialize(cluster)
            } catch let error as PostgresError {
                throw WriteRefused(
                    (exists
                        ? "the change history \(ChangeAudit.table) was made by an older version and cannot be brought up to date (append-only, hash chain) "
                        : "there is no change history table \(ChangeAudit.table) and it cannot be created ")
                        + "(\(error.message)): nothing was saved; " + ChangeAudit.remedy)
            }
        }
        auditReady.markReady()
    }

    /// Tells a tracked table's trigger (`switchyard audit track`) that this transaction's
    /// changes are the console's, which records them itself with more to say (who at the
    /// console, the statement, the change reverted). Without the history on, the trigger
    /// records them.
    func markConsoleWrites(_ transaction: Cluster.Transaction) async throws {
        guard audit else { return }
        _ = try await transaction.query("select set_config('switchyard.console', 'on', true)")
    }

    /// A write rolled back on purpose, with the reason for the user.
    struct WriteRefused: Error {
        let message: String
        init(_ message: String) { self.message = message }
    }

    /// A view's rows are keyed by its base table's primary key, when the view reads one
    /// table and shows every key column under its own name.
    func viewKey(_ table: TableInfo, quotedName: String, columns: [ColumnInfo]) async throws -> [ColumnInfo] {
        guard table.kind == .view else { return columns }
        let row = try await cluster.query(
            """
            with base as (
                select distinct d.refobjid as oid
                from pg_rewrite r join pg_depend d on d.objid = r.oid and d.classid = 'pg_rewrite'::regclass
                    and d.refclassid = 'pg_class'::regclass
                where r.ev_class = $1::regclass and d.refobjid <> $1::regclass)
            select (select count(*) from base)::int,
                   array_to_json(array(select a.attname from base b join pg_index i on i.indrelid = b.oid and i.indisprimary
                                       cross join lateral unnest(i.indkey) with ordinality k(n, o)
                                       join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.n order by k.o))::text
            """, [quotedName]).first
        guard let row, try row.decode(0, as: Int.self) == 1 else { return columns }
        let key = Self.names(try row.decode(1, as: String.self))
        guard !key.isEmpty, key.allSatisfy({ name in columns.contains { $0.name == name } }) else { return columns }
        return columns.map { column in
            var column = column
            column.primaryKeyPosition = key.firstIndex(of: column.name).map { $0 + 1 }
            return column
        }
    }

    /// Auto-updatable (`information_schema.views`) or with INSTEAD OF triggers.
    func viewIsUpdatable(_ table: TableInfo, quotedName: String) async throws -> Bool {
        try await cluster.query(
            """
            select coalesce((select is_updatable = 'YES' from information_schema.views where table_schema = $1 and table_name = $2), false)
                or exists (select 1 from pg_trigger where tgrelid = $3::regclass and (tgtype & 64) <> 0)
            """, [table.schema, table.name, quotedName]).scalar(Bool.self) ?? false
    }

    /// The column names of a constraint's `keys` on `relation`, in key order, as JSON.
    private static func columnNames(_ keys: String, of relation: String) -> String {
        """
        array_to_json(array(select a.attname from unnest(c.\(keys)) with ordinality k(n, o)
                            join pg_attribute a on a.attrelid = c.\(relation) and a.attnum = k.n order by k.o))::text
        """
    }

    /// This table's foreign keys: name, referenced table, its columns, the referenced ones.
    static let foreignKeysSQL = """
        select c.conname, fn.nspname, fc.relname, greatest(fc.reltuples, 0)::bigint,
               \(columnNames("conkey", of: "conrelid")), \(columnNames("confkey", of: "confrelid"))
        from pg_constraint c join pg_class fc on fc.oid = c.confrelid join pg_namespace fn on fn.oid = fc.relnamespace
        where c.conrelid = $1::regclass and c.contype = 'f'
        order by c.conname
        """

    /// The foreign keys of other tables that reference this one.
    static let referencingSQL = """
        select c.conname, n.nspname, t.relname, greatest(t.reltuples, 0)::bigint,
               \(columnNames("conkey", of: "conrelid")), \(columnNames("confkey", of: "confrelid"))
        from pg_constraint c join pg_class t on t.oid = c.conrelid join pg_namespace n on n.oid = t.relnamespace
        where c.confrelid = $1::regclass and c.contype = 'f'
        order by n.nspname, t.relname, c.conname
        """

    static func names(_ json: String) -> [String] {
        (try? JSONDecoder().decode([String].self, from: Data(json.utf8))) ?? []
    }

    /// Tables referencing `row`, each with how many of its rows do. A count runs only when
    /// the plan uses an index or the table is small: never a scan of a big table.
    func references(to shape: TableShape, row: [String?]) async throws -> [Referencing] {
        var items: [Referencing] = []
        for found in try await cluster.query(Self.referencingSQL, [shape.quotedName]).rows {
            let table = TableInfo(schema: try found.decode(1), name: try found.decode(2), estimatedRows: try found.decode(3))
            let columns = Self.names(try found.decode(4, as: String.self))
            let referenced = Self.names(try found.decode(5, as: String.self))
            let values = referenced.map { name in shape.columns.firstIndex { $0.name == name }.flatMap { row.indices.contains($0) ? row[$0] : nil } }
            var item = Referencing(table: table, constraint: try found.decode(0), columns: columns, values: values, count: nil)
            if values.contains(where: { $0 == nil }) {
                item.count = 0
                items.append(item)
                continue
            }
            let quoted = try await cluster.quoteIdentifiers([table.schema, table.name] + columns)
            let conditions = quoted.dropFirst(2).enumerated().map { "\($0.element) = $\($0.offset + 1)" }.joined(separator: " and ")
            let count = "select count(*) from (select 1 from \(quoted[0]).\(quoted[1]) where \(conditions) limit 100001) s"
            let parameters = values.map { $0 as any PostgresEncodable }
            let plan = try await cluster.query("explain " + count, parameters).rows.map { try $0.decode(0, as: String.self) }.joined(separator: "\n")
            if plan.contains("Seq Scan") && table.estimatedRows > 50_000 {
                item.uncounted = "no index on \(table.name) (\(columns.joined(separator: ", "))) — a count would scan ~\(table.estimatedRows) rows"
            } else {
                item.count = try await cluster.query(count, parameters, table: table.qualifiedName).scalar(Int.self)
            }
            items.append(item)
        }
        return items
    }

    func shape(of table: TableInfo) async throws -> TableShape {
        let names = try await cluster.quoteIdentifiers([table.schema, table.name])
        let quotedName = "\(names[0]).\(names[1])"
        let rows = try await cluster.query(Self.columnsSQL, [quotedName]).rows
        let columnNames = try rows.map { try $0.decode(0, as: String.self) }
        let quotedColumns = try await cluster.quoteIdentifiers(columnNames)
        // CHECK (col IN (…)) constraints give pick lists like enums do.
        let checks = try await cluster.query(
            "select pg_get_constraintdef(oid) from pg_constraint where conrelid = $1::regclass and contype = 'c'", [quotedName]
        ).rows.map { try $0.decode(0, as: String.self) }
        let columns = try rows.enumerated().map { index, row in
            let name = columnNames[index]
            let enumLabels = try row.decode(5, as: String?.self).map(Self.names)
            let checked = checks.lazy.compactMap { TypedValues.checkChoices($0, column: name) }.first
            return ColumnInfo(
                name: name, type: try row.decode(1), notNull: try row.decode(2),
                defaultExpression: try row.decode(3, as: String?.self), primaryKeyPosition: try row.decode(4, as: Int?.self),
                quoted: quotedColumns[index], choices: enumLabels ?? checked)
        }
        let settings = try await cluster.query("select current_setting('TimeZone'), current_setting('DateStyle')").first
        let foreignKeys = try await cluster.query(Self.foreignKeysSQL, [quotedName]).rows.map { row -> ForeignKey in
            let local = Self.names(try row.decode(4, as: String.self))
            return ForeignKey(
                name: try row.decode(0), columns: local.compactMap { name in columnNames.firstIndex(of: name) },
                target: TableInfo(schema: try row.decode(1), name: try row.decode(2), estimatedRows: try row.decode(3)),
                targetColumns: Self.names(try row.decode(5, as: String.self)))
        }
        var shape = TableShape(table: table, quotedName: quotedName, columns: try await viewKey(table, quotedName: quotedName, columns: columns), foreignKeys: foreignKeys)
        switch table.kind {
        case .table: break
        case .materializedView: shape.readOnlyReason = "a materialized view is read-only (M refreshes it)"
        case .view:
            if !(try await viewIsUpdatable(table, quotedName: quotedName)) {
                shape.readOnlyReason = "PostgreSQL cannot update this view (not simple, no INSTEAD OF triggers)"
            } else if !shape.hasPrimaryKey {
                shape.readOnlyReason = "this view does not show its table's whole primary key, so rows cannot be told apart"
            }
        }
        let privileges = try await cluster.query(
            "select has_table_privilege($1::text, 'UPDATE'), has_table_privilege($1::text, 'INSERT'), has_table_privilege($1::text, 'DELETE')", [quotedName]).first
        for (index, privilege) in [TablePrivilege.update, .insert, .delete].enumerated() where try privileges?.decode(index, as: Bool.self) == false {
            shape.missingPrivileges.insert(privilege)
        }
        shape.timeZone = try settings?.decode(0, as: String.self)
        shape.dateStyle = try settings?.decode(1, as: String.self)
        // Never analyzed (reltuples -1): for a table of up to 16 MiB an exact count costs
        // milliseconds — better than "~?".
        if table.kind == .table, table.estimatedRows < 0,
            try await cluster.query("select pg_relation_size($1::regclass) <= 16777216", [quotedName]).scalar(Bool.self) == true
        {
            shape.table.estimatedRows = try await cluster.query("select count(*) from \(quotedName)").scalar(Int64.self) ?? -1
        }
        return shape
    }

    /// What an effect changes, for telling the user what a cancel did.
    enum Writes { case nothing, row, promotion, revert }

    /// Turns errors into a `failed` event the status bar can show, with SQLSTATE. A
    /// cancelled read reports nothing; a cancelled write reports what became of it.
    func attempt(_ request: Int, writes: Writes = .nothing, _ body: () async throws -> ConsoleEvent) async -> ConsoleEvent? {
        do {
            return try await body()
        } catch is CancellationError {
            return cancelled(request, writes, confirmed: true)
        } catch let error as PostgresError {
            // 57014: the server cancelled it, so the transaction rolled back. Without it
            // (the server never answered) nobody knows.
            if error.kind == .cancelled { return cancelled(request, writes, confirmed: error.sqlState == "57014") }
            var text = error.message
            if let state = error.sqlState { text += " (SQLSTATE \(state))" }
            if let detail = error.detail { text += " — \(detail)" }
            if error.isConnectionError { text = "primary unavailable: \(error.message)" + (writes == .row ? "; your input is kept" : "") }
            return .failed(message: text, request: request)
        } catch let error as RoutingError {
            return .failed(message: error.message + (writes == .row ? "; your input is kept" : ""), request: request)
        } catch let error as PromotionError {
            return .failed(message: error.message, request: request)
        } catch let refused as WriteRefused {
            return .failed(message: refused.message, request: request)
        } catch {
            return .failed(message: "\(error)", request: request)
        }
    }

    private func cancelled(_ request: Int, _ writes: Writes, confirmed: Bool) -> ConsoleEvent? {
        switch writes {
        case .nothing:
            return nil
        case .row:
            return .failed(
                message: confirmed ? "cancelled in time: nothing was written; your input is kept"
                    : "cancelled, but the server did not confirm: the change may have been saved — refresh (r) before saving again",
                request: request)
        case .promotion:
            return .failed(message: "promotion cancelled; the candidate may still be leaving recovery — checks re-run", request: request)
        case .revert:
            return .failed(
                message: confirmed ? "revert cancelled in time: nothing was written"
                    : "revert cancelled, but the server did not confirm: it may have been written — read the history again (r)",
                request: request)
        }
    }
}
