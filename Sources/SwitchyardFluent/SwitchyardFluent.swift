public import FluentKit
import FluentSQL
import Foundation
import Logging
import NIOCore
import PostgresClient
import struct PostgresKit.PostgresDialect
public import SQLKit
public import Switchyard
import Synchronization

extension DatabaseConfigurationFactory {
    /// Fluent on a Switchyard cluster: every query — model queries, eager loads,
    /// transactions, migrations, raw SQLKit — is routed by the task's
    /// ``RoutingContext``, written to the cluster's query log, and gives read-your-writes
    /// tokens, through the same `Cluster` as everything else in Switchyard.
    ///
    /// ```swift
    /// app.databases.use(.switchyard(try .load(path: "switchyard.toml")), as: .psql)
    /// ```
    ///
    /// The cluster is started on the first query and shut down with the application.
    /// `source` names the app in the query log file (`[query_log] source`), so
    /// `switchyard console --follow` shows its statements apart.
    public static func switchyard(_ configuration: ClusterConfiguration, source: String? = nil) -> Self {
        var configuration = configuration
        if let source { configuration.queryLogSource = source }
        let handle = ClusterHandle(configuration: configuration)
        return .init { SwitchyardDatabaseConfiguration(handle: handle) }
    }

    /// Fluent on a cluster the app made (and started) itself, to use it beside Fluent;
    /// the app shuts it down.
    public static func switchyard(cluster: Cluster) -> Self {
        let handle = ClusterHandle(cluster: cluster)
        return .init { SwitchyardDatabaseConfiguration(handle: handle) }
    }
}

extension DatabaseID {
    /// An id for a Switchyard database when the app has no `.psql` of its own.
    public static var switchyard: DatabaseID { .init(string: "switchyard") }
}

enum ClusterHandleError: Error, CustomStringConvertible {
    case shutDown
    var description: String { "the Switchyard database was shut down with the application" }
}

/// The cluster behind a Fluent database: given, or made and started once on first use.
final class ClusterHandle: Sendable {
    private enum State {
        case idle(ClusterConfiguration)
        case starting(Task<Cluster, any Error>)
        case ready(Cluster)
        case shutDown
    }
    private let state: Mutex<State>
    /// What the cluster is made from; nil for a cluster the app gave, which it shuts down.
    private let configuration: ClusterConfiguration?

    init(configuration: ClusterConfiguration) {
        state = Mutex(.idle(configuration))
        self.configuration = configuration
    }

    init(cluster: Cluster) {
        state = Mutex(.ready(cluster))
        configuration = nil
    }

    /// The started cluster.
    func cluster() async throws -> Cluster {
        let task: Task<Cluster, any Error> = try state.withLock { state in
            switch state {
            case .ready(let cluster):
                return Task { cluster }
            case .starting(let task):
                return task
            case .shutDown:
                throw ClusterHandleError.shutDown
            case .idle(let configuration):
                let task = Task {
                    let cluster = try Cluster(configuration: configuration)
                    await cluster.start()
                    return cluster
                }
                state = .starting(task)
                return task
            }
        }
        do {
            let cluster = try await task.value
            state.withLock { if case .starting = $0 { $0 = .ready(cluster) } }
            return cluster
        } catch {
            // A cluster that could not be made (its query log file unwritable, say) is
            // tried again by the next query, not refused for the life of the app.
            state.withLock { state in
                if case .starting(let current) = state, current == task, let configuration { state = .idle(configuration) }
            }
            throw error
        }
    }

    /// The cluster when it is ready (the common case), without a suspension.
    var ready: Cluster? {
        state.withLock { if case .ready(let cluster) = $0 { return cluster } else { return nil } }
    }

    func shutdown() async {
        let previous = state.withLock { state in
            let previous = state
            state = .shutDown
            return previous
        }
        guard configuration != nil else { return }
        switch previous {
        case .ready(let cluster): await cluster.shutdown()
        case .starting(let task): if let cluster = try? await task.value { await cluster.shutdown() }
        case .idle, .shutDown: break
        }
    }
}

struct SwitchyardDatabaseConfiguration: DatabaseConfiguration {
    let handle: ClusterHandle
    var middleware: [any AnyModelMiddleware] = []

    func makeDriver(for databases: Databases) -> any DatabaseDriver { SwitchyardDriver(handle: handle) }
}

struct SwitchyardDriver: DatabaseDriver {
    let handle: ClusterHandle

    func makeDatabase(with context: DatabaseContext) -> any Database {
        SwitchyardDatabase(handle: handle, context: context, transaction: nil)
    }

    func shutdown() {
        let handle = handle
        Task { await handle.shutdown() }
    }

    func shutdownAsync() async { await handle.shutdown() }
}

/// One Fluent database handle: every statement goes through the cluster (routed), or
/// through the transaction it belongs to (on the primary, one connection).
struct SwitchyardDatabase: Database, SQLDatabase {
    let handle: ClusterHandle
    let context: DatabaseContext
    let transaction: Cluster.Transaction?

    var inTransaction: Bool { transaction != nil }
    var dialect: any SQLDialect { PostgresDialect() }
    var version: (any SQLDatabaseReportedVersion)? { nil }
    var queryLogLevel: Logger.Level? { nil }
    var logger: Logger { context.logger }
    var eventLoop: any EventLoop { context.eventLoop }

    // MARK: Fluent

    func execute(query: DatabaseQuery, onOutput: @escaping @Sendable (any DatabaseOutput) -> Void) -> EventLoopFuture<Void> {
        let converted = SQLQueryConverter(delegate: SwitchyardConverterDelegate()).convert(query)
        var expression = converted
        // A created row's generated id comes back (not for a composite id, which Fluent
        // marks with an empty custom id key).
        if case .create = query.action, query.customIDKey != .some(.string("")) {
            expression = SQLKit.SQLList(
                [expression, SQLReturning(SQLColumn((query.customIDKey ?? .id).description))], separator: SQLRaw(" "))
        }
        let kind: StatementKind
        switch query.action {
        case .read, .aggregate: kind = .read
        case .create, .update, .delete, .custom: kind = .write
        }
        let statement = expression
        return future {
            try await run(statement, kind: kind, table: query.schema) { onOutput(SwitchyardOutput(row: $0, schema: nil)) }
        }
    }

    func execute(schema: DatabaseSchema) -> EventLoopFuture<Void> {
        let expression = SQLSchemaConverter(delegate: SwitchyardConverterDelegate()).convert(schema)
        return future { try await run(expression, kind: .write, table: nil) { _ in } }
    }

    func execute(enum value: DatabaseEnum) -> EventLoopFuture<Void> {
        switch value.action {
        case .create:
            return value.createCases.reduce(create(enum: value.name)) { $0.value($1) }.run()
        case .update:
            // PostgreSQL cannot drop an enum's value; new ones are added one by one.
            let adds = value.createCases
            return future {
                for add in adds { try await alter(enum: value.name).add(value: add).run() }
            }
        case .delete:
            return drop(enum: value.name).run()
        }
    }

    func transaction<T>(_ closure: @escaping @Sendable (any Database) -> EventLoopFuture<T>) -> EventLoopFuture<T> {
        if inTransaction { return closure(self) }
        let handle = handle, context = context
        return future {
            let cluster = try await handle.cluster()
            return try await cluster.transaction { transaction in
                let inside = SwitchyardDatabase(handle: handle, context: context, transaction: transaction)
                return UncheckedBox(try await closure(inside).get())
            }.value
        }
    }

    func withConnection<T>(_ closure: @escaping @Sendable (any Database) -> EventLoopFuture<T>) -> EventLoopFuture<T> {
        // Each statement takes a pooled connection of the node it is routed to; a caller
        // that needs one connection for several statements wants `transaction`.
        closure(self)
    }

    // MARK: SQLKit

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> Void) -> EventLoopFuture<Void> {
        future { try await run(query, kind: nil, table: nil, onRow) }
    }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> Void) async throws {
        try await run(query, kind: nil, table: nil, onRow)
    }

    /// Runs `expression`: a read or a write as `kind` says, or (raw SQLKit) as the
    /// expression itself shows — see ``FluentStatements/kind(of:sql:)``.
    func run(
        _ expression: any SQLExpression, kind: StatementKind?, table: String?, _ onRow: @Sendable (any SQLRow) -> Void
    ) async throws {
        let (sql, binds) = serialize(expression)
        var parameters: [any PostgresEncodable] = []
        parameters.reserveCapacity(binds.count)
        for bind in binds { parameters.append(try PostgresTextCoding.binding(for: bind)) }
        let kind = kind ?? FluentStatements.kind(of: expression, sql: sql)
        let result: PostgresResult
        if let transaction {
            result = kind == .read ? try await transaction.query(sql, parameters) : try await transaction.execute(sql, parameters)
        } else {
            let ready = handle.ready
            let cluster = if let ready { ready } else { try await handle.cluster() }
            result = try await cluster.run(kind, sql, parameters, table: table).result
        }
        for index in 0..<result.rowCount { onRow(SwitchyardRow(result: result, index: index)) }
    }

    /// `body` as a future on this database's event loop. The task inherits the caller's
    /// task-locals: its routing context.
    private func future<T>(_ body: @escaping @Sendable () async throws -> T) -> EventLoopFuture<T> {
        let promise = eventLoop.makePromise(of: UncheckedBox<T>.self)
        promise.completeWithTask { UncheckedBox(try await body()) }
        return promise.futureResult.map(\.value)
    }
}

/// Carries a value that Fluent's generic signatures do not mark `Sendable` across the
/// one hop from the statement's task to its future.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// How a raw SQLKit statement is routed.
public enum FluentStatements {
    /// A `SELECT` built by SQLKit (without `FOR UPDATE`/`FOR SHARE`), a union of them, or
    /// raw SQL that ``SessionStatements/isRead(_:)`` finds a plain read, is a read; anything
    /// else is a write and goes to the primary.
    public static func kind(of expression: any SQLExpression, sql: String) -> StatementKind {
        if let select = expression as? SQLSelect { return select.lockingClause == nil ? .read : .write }
        return SessionStatements.isRead(sql) ? .read : .write
    }
}

/// One result row, as SQLKit and Fluent read it.
struct SwitchyardRow: SQLRow, CustomStringConvertible {
    let result: PostgresResult
    let index: Int

    var allColumns: [String] { result.columns.map(\.name) }

    func contains(column: String) -> Bool { result.columnIndex(column) != nil }

    func decodeNil(column: String) throws -> Bool {
        result.raw(row: index, column: try position(of: column)) == nil
    }

    func decode<D: Decodable>(column: String, as type: D.Type) throws -> D {
        let position = try position(of: column)
        do {
            return try PostgresTextCoding.decode(
                D.self, from: result.raw(row: index, column: position), typeOID: result.columns[position].typeOID)
        } catch let error as PostgresError {
            throw DecodingError.dataCorrupted(
                DecodingError.Context(codingPath: [SQLCodingKey(column)], debugDescription: error.message, underlyingError: error))
        }
    }

    private func position(of column: String) throws -> Int {
        guard let position = result.columnIndex(column) else {
            throw DecodingError.keyNotFound(
                SQLCodingKey(column), DecodingError.Context(codingPath: [], debugDescription: "no column \"\(column)\" in the result"))
        }
        return position
    }

    var description: String {
        return "[" + result.columns.indices.map { "\(result.columns[$0].name): \(result.raw(row: index, column: $0) ?? "NULL")" }.joined(separator: ", ") + "]"
    }
}

struct SQLCodingKey: CodingKey {
    let stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// A row as Fluent's models read it: a joined model's fields carry its schema as prefix.
struct SwitchyardOutput: DatabaseOutput {
    let row: any SQLRow
    let schema: String?

    var description: String { String(describing: row) }

    private func column(_ key: FieldKey) -> String {
        (schema.map { FieldKey.prefix(.prefix(.string($0), "_"), key) } ?? key).description
    }

    func schema(_ schema: String) -> any DatabaseOutput { SwitchyardOutput(row: row, schema: schema) }
    func contains(_ key: FieldKey) -> Bool { row.contains(column: column(key)) }
    func decodeNil(_ key: FieldKey) throws -> Bool { try row.decodeNil(column: column(key)) }
    func decode<T: Decodable>(_ key: FieldKey, as type: T.Type) throws -> T { try row.decode(column: column(key), as: T.self) }
}

/// Fluent's data types as PostgreSQL types (as FluentPostgresDriver makes them, so a
/// schema its migrations made is the schema these make).
struct SwitchyardConverterDelegate: SQLConverterDelegate {
    func customDataType(_ dataType: DatabaseSchema.DataType) -> (any SQLExpression)? {
        switch dataType {
        case .uuid: SQLRaw("UUID")
        case .bool: SQLRaw("BOOL")
        case .data: SQLRaw("BYTEA")
        case .date: SQLRaw("DATE")
        case .datetime: SQLRaw("TIMESTAMPTZ")
        case .double: SQLRaw("DOUBLE PRECISION")
        case .dictionary: SQLRaw("JSONB")
        case .array(of: let element):
            if let element, let inner = customDataType(element) { ArrayType(element: inner) } else { SQLRaw("JSONB") }
        case .enum(let value): SQLIdentifier(value.name)
        case .int8, .uint8: SQLIdentifier("char")
        case .int16, .uint16: SQLRaw("SMALLINT")
        case .int32, .uint32: SQLRaw("INT")
        case .int64, .uint64: SQLRaw("BIGINT")
        case .string: SQLRaw("TEXT")
        case .time: SQLRaw("TIME")
        case .float: SQLRaw("FLOAT")
        case .custom: nil
        }
    }

    private struct ArrayType: SQLExpression {
        let element: any SQLExpression
        func serialize(to serializer: inout SQLSerializer) {
            element.serialize(to: &serializer)
            serializer.write("[]")
        }
    }
}
