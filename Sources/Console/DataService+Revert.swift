import Foundation
import PostgresClient
import Switchyard

/// How a recorded change is undone: an update back to its before-image, an insert by
/// deleting the row, a delete by inserting it again — an ordinary conflict-checked edit.
public struct RevertPlan: Sendable, Equatable {
    public enum Write: Sendable, Equatable {
        case update(seen: [String?], changes: [Int: String?])
        case delete(seen: [String?])
        case insert(values: [Int: String?])
    }

    public var change: ChangeAudit.Entry
    public var shape: TableShape
    public var write: Write
    /// The statement, its values listed after it (what `y` runs).
    public var sql: String
    /// Why it is asked again (the row changed between the question and `y`).
    public var note: String? = nil
}

/// Why a change cannot be undone: the row moved on. Per column, what the change found,
/// what it wrote and what is there now.
public struct RevertConflict: Sendable, Equatable {
    public struct Version: Sendable, Equatable {
        public var column: String
        public var before: String?
        public var after: String?
        /// nil with `rowExists` false: no row.
        public var now: String?

        public init(column: String, before: String?, after: String?, now: String?) {
            self.column = column
            self.before = before
            self.after = after
            self.now = now
        }
    }

    public var change: ChangeAudit.Entry
    public var reason: String
    public var versions: [Version]
    public var rowExists: Bool
}

extension DataService {
    /// The table a history row names (`schema.table` as recorded).
    func recordedTable(_ name: String) async throws -> TableInfo {
        let rows = try await cluster.query(
            """
            select n.nspname, c.relname from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
            where n.nspname || '.' || c.relname = $1 and c.relkind in ('r', 'p', 'v', 'f') limit 2
            """, [name]).rows
        guard rows.count == 1 else {
            throw WriteRefused(rows.isEmpty ? "\(name) no longer exists: the change cannot be reverted" : "\(name) names more than one table: revert it by hand")
        }
        return TableInfo(schema: try rows[0].decode(0), name: try rows[0].decode(1), estimatedRows: -1)
    }

    /// Works out the inverse of `entry` against the row as it is now.
    func prepareRevert(_ entry: ChangeAudit.Entry, request: Int) async throws -> ConsoleEvent {
        guard entry.action != .statement else {
            throw WriteRefused("change #\(entry.id) is a statement without rows of its own (\(entry.statement ?? "?")): it cannot be reverted here")
        }
        guard !entry.key.isEmpty else { throw WriteRefused("change #\(entry.id) names no row: it cannot be reverted") }
        let shape = try await shape(of: try await recordedTable(entry.table))
        if let reason = shape.readOnlyReason { throw WriteRefused("\(shape.table.qualifiedName) is read-only (\(reason)): nothing to revert with") }
        guard shape.hasPrimaryKey else { throw WriteRefused("\(shape.table.qualifiedName) has no primary key: a revert cannot find its row") }
        func index(_ column: String) throws -> Int {
            guard let index = shape.columns.firstIndex(where: { $0.name == column }) else {
                throw WriteRefused("column \(column) of \(shape.table.qualifiedName) no longer exists: change #\(entry.id) cannot be reverted")
            }
            return index
        }
        var key: [String?] = []
        for index in shape.keyIndexes {
            guard let value = entry.key[shape.columns[index].name] else {
                throw WriteRefused("the primary key of \(shape.table.qualifiedName) changed since change #\(entry.id): revert it by hand")
            }
            key.append(value)
        }
        let width = shape.columns.count
        let read = SQLBuilder.current(shape, key: key)
        let current = try await cluster.query(read.sql, read.bindings, table: shape.table.qualifiedName).first.map { row in (0..<width).map { row.raw($0) } }
        let before = entry.before ?? [:]
        let after = entry.after ?? [:]
        func conflict(_ reason: String) throws -> ConsoleEvent {
            let columns = Set(before.keys).union(after.keys)
            let versions = try shape.columns.map(\.name).filter(columns.contains).map { column in
                RevertConflict.Version(column: column, before: before[column] ?? nil, after: after[column] ?? nil, now: current?[try index(column)] ?? nil)
            }
            return .revertConflict(RevertConflict(change: entry, reason: reason, versions: versions, rowExists: current != nil), request: request)
        }
        /// Columns whose value now is not what the change left.
        func moved(_ values: [String: String?], in row: [String?]) throws -> [String] {
            try values.keys.sorted().filter { column in row[try index(column)] != values[column]! }
        }
        let write: RevertPlan.Write
        let statement: Statement
        switch entry.action {
        case .update:
            guard let current else { return try conflict("the row was deleted since change #\(entry.id): nothing to revert") }
            let changed = try moved(after, in: current)
            if !changed.isEmpty { return try conflict("\(changed.joined(separator: ", ")) changed since change #\(entry.id): nothing was written") }
            var changes: [Int: String?] = [:]
            for (column, value) in before { changes[try index(column)] = value }
            write = .update(seen: current, changes: changes)
            statement = SQLBuilder.update(shape, seen: current, changes: changes)
        case .insert:
            guard let current else { return try conflict("the row change #\(entry.id) inserted is gone already") }
            let changed = try moved(after, in: current)
            if !changed.isEmpty { return try conflict("\(changed.joined(separator: ", ")) changed since change #\(entry.id) inserted the row: nothing was written") }
            write = .delete(seen: current)
            statement = SQLBuilder.delete(shape, seen: current)
        case .delete:
            if current != nil { return try conflict("a row with this key exists again since change #\(entry.id): nothing was written") }
            var values: [Int: String?] = [:]
            for (column, value) in before { values[try index(column)] = value }
            write = .insert(values: values)
            statement = SQLBuilder.insert(shape, values: values)
        case .statement:
            throw WriteRefused("a statement cannot be reverted here")
        }
        return .revertReady(RevertPlan(change: entry, shape: shape, write: write, sql: Self.shown(statement)), request: request)
    }

    /// A statement with its values listed after it, for a confirmation.
    static func shown(_ statement: Statement) -> String {
        let values = statement.parameters.enumerated().map { index, value in
            "$\(index + 1) = " + (value.map { "'" + Renderer.historyValue($0, limit: 60).replacingOccurrences(of: "'", with: "''") + "'" } ?? "NULL")
        }
        return statement.sql + (values.isEmpty ? "" : "   -- " + values.joined(separator: ", "))
    }

    /// Writes a confirmed revert: the same conflict check as any edit, and a history row
    /// that names the change it reverted.
    func revert(_ plan: RevertPlan, request: Int) async throws -> ConsoleEvent {
        try await ensureAudit()
        let shape = plan.shape
        let outcome: ConsoleEvent
        switch plan.write {
        case .update(let seen, let changes):
            outcome = try await write(
                SQLBuilder.update(shape, seen: seen, changes: changes), shape: shape, seen: seen, request: request, action: .update,
                changed: changes.keys.sorted(), reverts: plan.change.id)
        case .delete(let seen):
            outcome = try await write(
                SQLBuilder.delete(shape, seen: seen), shape: shape, seen: seen, request: request, action: .delete,
                changed: Array(0..<shape.columns.count), reverts: plan.change.id)
        case .insert(let values):
            do {
                outcome = try await insertRow(shape, values: values, request: request, reverts: plan.change.id)
            } catch let error as PostgresError where error.sqlState == "23505" {
                return .failed(message: "a row with this key was inserted meanwhile: nothing was written (\(error.message))", request: request)
            }
        }
        switch outcome {
        case .saved:
            return .reverted("reverted change #\(plan.change.id) (\(plan.change.action.rawValue) of \(plan.change.table) \(plan.change.keyLabel))", request: request)
        case .conflict:
            // The row moved between the confirmation and `y`: nothing was written; show
            // the revert against the row as it is now, or why there is none.
            let again = try await prepareRevert(plan.change, request: request)
            if case .revertReady(var fresh, let request) = again {
                fresh.note = "the row changed after you were asked: nothing was written; this is the revert against it now"
                return .revertReady(fresh, request: request)
            }
            return again
        default:
            return outcome
        }
    }
}
