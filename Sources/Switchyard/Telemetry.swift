public import CoreMetrics
import Foundation
import PostgresClient
import Synchronization
public import Tracing

/// Where a cluster's metrics and spans go. By default the process's backends
/// (`MetricsSystem.bootstrap`, `InstrumentationSystem.bootstrap`) as they are when the
/// cluster is made: bootstrap them first, as swift-metrics and swift-distributed-tracing
/// ask. Left at their no-op defaults, a statement does no metrics or tracing work at all.
///
/// Metrics (labels `node`, `context` — `none` outside one —, `operation` `read`/`write`):
/// `switchyard_statements_total`, `switchyard_statement_errors_total` (also `code`, the
/// SQLSTATE or the failure's kind), `switchyard_statement_duration_seconds`,
/// `switchyard_read_retries_total` (the node it failed on), `switchyard_guard_fallbacks_total`
/// (the replica found behind), `switchyard_lag_exclusions_total` (a replica skipped for lag
/// when a read fell back to the primary), `switchyard_refusals_total` (`kind`),
/// `switchyard_pool_wait_seconds` and `switchyard_pool_timeouts_total` (per node); from the
/// monitor, per node: `switchyard_replica_lag_seconds`, `switchyard_replica_lag_bytes`,
/// `switchyard_node_up`, `switchyard_node_is_primary`, and `switchyard_monitor_round_seconds`.
///
/// Spans: one per statement attempt (a retried or guarded read shows each), a client span
/// child of the task's `ServiceContext` (the request's span), with OpenTelemetry's
/// database attributes and Switchyard's node, context and routing reason.
public struct Telemetry: Sendable {
    public var metrics: any MetricsFactory
    public var tracer: any Tracer

    public init(metrics: (any MetricsFactory)? = nil, tracer: (any Tracer)? = nil) {
        self.metrics = metrics ?? MetricsSystem.factory
        self.tracer = tracer ?? InstrumentationSystem.tracer
    }

    /// No metrics and no spans, whatever the process bootstrapped.
    public static let disabled = Telemetry(metrics: NOOPMetricsHandler.instance, tracer: NoOpTracer())

    /// Whether metrics go anywhere (a backend other than the no-op one).
    public var recordsMetrics: Bool { !(metrics is NOOPMetricsHandler) }
    /// Whether spans go anywhere (a tracer other than the no-op one).
    public var recordsSpans: Bool { !(tracer is NoOpTracer) }
}

/// The metric handles and tracer one cluster uses; handles are made once per label set.
final class Instruments: Sendable {
    let metricsOn: Bool
    let tracingOn: Bool
    private let factory: any MetricsFactory
    private let tracer: any Tracer
    /// `server.address` and `server.port` per node, from its conninfo.
    private let servers: [String: (address: String?, port: Int?)]
    private let statementHandles = Mutex<[StatementKey: StatementHandles]>([:])
    private let counters = Mutex<[CounterKey: Counter]>([:])
    /// A statement's operation name and value-free text, by its SQL: an app sends the
    /// same few statements over and over. Emptied when it reaches `textCacheLimit`.
    private let texts = Mutex<[String: (operation: String, text: String)]>([:])
    static let textCacheLimit = 2048

    struct StatementKey: Hashable {
        var node: String
        var context: String
        var operation: StatementKind
    }

    struct CounterKey: Hashable {
        var label: String
        var dimensions: [String]
    }

    final class StatementHandles: Sendable {
        let statements: Counter
        let duration: CoreMetrics.Timer
        init(_ key: StatementKey, factory: any MetricsFactory) {
            let dimensions = [("node", key.node), ("context", key.context), ("operation", key.operation.rawValue)]
            statements = Counter(label: "switchyard_statements_total", dimensions: dimensions, factory: factory)
            duration = CoreMetrics.Timer(label: "switchyard_statement_duration_seconds", dimensions: dimensions, factory: factory)
        }
    }

    init(_ telemetry: Telemetry, nodes: [NodeEndpoint]) {
        metricsOn = telemetry.recordsMetrics
        tracingOn = telemetry.recordsSpans
        factory = telemetry.metrics
        tracer = telemetry.tracer
        var servers: [String: (address: String?, port: Int?)] = [:]
        for node in nodes {
            let fields = Conninfo.parse(node.conninfo) ?? []
            func field(_ key: String) -> String? { fields.last(where: { $0.key == key })?.value }
            let host = field("hostaddr") ?? field("host")
            servers[node.name] = (host?.split(separator: ",").first.map(String.init), field("port").flatMap { Int($0.split(separator: ",").first ?? "") } ?? 5432)
        }
        self.servers = servers
    }

    // MARK: Metrics

    /// A statement that ran (or failed) on `node`.
    func statement(node: String, context: String?, operation: StatementKind, duration: Duration, error: (any Error)?) {
        guard metricsOn else { return }
        let key = StatementKey(node: node, context: context ?? "none", operation: operation)
        let handles = statementHandles.withLock { handles in
            if let found = handles[key] { return found }
            let made = StatementHandles(key, factory: factory)
            handles[key] = made
            return made
        }
        handles.statements.increment()
        handles.duration.recordNanoseconds(duration.nanosecondsClamped)
        if let error {
            count("switchyard_statement_errors_total", [
                ("node", node), ("context", context ?? "none"), ("operation", operation.rawValue), ("code", Self.code(of: error)),
            ])
        }
    }

    /// Increments the counter `label` with `dimensions` (made on first use).
    func count(_ label: String, _ dimensions: [(String, String)]) {
        guard metricsOn else { return }
        let key = CounterKey(label: label, dimensions: dimensions.flatMap { [$0.0, $0.1] })
        let factory = factory
        counters.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = Counter(label: label, dimensions: dimensions, factory: factory)
            counters[key] = counter
            return counter
        }.increment()
    }

    /// What the error's `code` label says: the SQLSTATE, or the kind of failure.
    static func code(of error: any Error) -> String {
        if let error = error as? PostgresError { return error.sqlState ?? "\(error.kind)" }
        if let error = error as? RoutingError { return label(of: error.kind) }
        if error is CancellationError { return "cancelled" }
        return "other"
    }

    /// A routing refusal's kind as a label value.
    static func label(of kind: RoutingError.Kind) -> String {
        switch kind {
        case .noPrimary: "no_primary"
        case .splitBrain: "split_brain"
        case .unknownNode: "unknown_node"
        case .writeNotOnPrimary: "write_not_on_primary"
        case .refused: "refused"
        }
    }

    // MARK: Spans

    /// A client span for one attempt of `sql` on `decision.node`, child of the task's
    /// service context; nil when no tracer records.
    func span(_ request: RouteRequest, _ decision: RouteDecision, sql: String) -> (any Span)? {
        guard tracingOn else { return nil }
        let (operation, text) = statementText(sql)
        let name = request.table.map { "\(operation) \($0)" } ?? operation
        let span = tracer.startSpan(name, context: ServiceContext.current ?? .topLevel, ofKind: .client)
        guard span.isRecording else { return span }
        var attributes = SpanAttributes()
        attributes["db.system.name"] = "postgresql"
        attributes["db.operation.name"] = operation
        attributes["db.query.text"] = text
        if let table = request.table { attributes["db.collection.name"] = table }
        if let server = servers[decision.node] {
            if let address = server.address { attributes["server.address"] = address }
            if let port = server.port { attributes["server.port"] = port }
        }
        attributes["switchyard.node"] = decision.node
        attributes["switchyard.context"] = request.context?.name ?? "none"
        attributes["switchyard.operation"] = request.operation.rawValue
        attributes["switchyard.route"] = decision.reason.code
        attributes["switchyard.route.detail"] = decision.reason.description
        span.attributes = attributes
        return span
    }

    /// What a span says of `sql`, worked out once per distinct statement.
    private func statementText(_ sql: String) -> (operation: String, text: String) {
        if let known = texts.withLock({ $0[sql] }) { return known }
        let worked = (StatementText.operationName(sql), StatementText.withoutValues(sql))
        // Statements longer than this are seldom repeated: not kept.
        guard sql.utf8.count <= 16_384 else { return worked }
        texts.withLock { texts in
            if texts.count >= Self.textCacheLimit { texts.removeAll(keepingCapacity: true) }
            texts[sql] = worked
        }
        return worked
    }

    /// Ends an attempt's span: an error is recorded with its SQLSTATE.
    func end(_ span: (any Span)?, error: (any Error)? = nil, note: String? = nil) {
        guard let span else { return }
        if let error {
            span.recordError(error)
            span.attributes["error.type"] = Self.code(of: error)
            if let sqlState = (error as? PostgresError)?.sqlState { span.attributes["db.response.status_code"] = sqlState }
            span.setStatus(SpanStatus(code: .error))
        }
        if let note { span.attributes["switchyard.outcome"] = note }
        span.end()
    }
}

extension Duration {
    /// Whole nanoseconds, clamped to `Int64`.
    var nanosecondsClamped: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return product.addingReportingOverflow(attoseconds / 1_000_000_000).partialValue
    }
}

/// What spans say of a statement's text (pure; property-tested).
public enum StatementText {
    /// The statement's first keyword in upper case (`SELECT`, `INSERT`, `WITH` …), or
    /// `SQL` when it starts with none.
    public static func operationName(_ sql: String) -> String {
        let word = SQLTokens.words(String(sql.unicodeScalars.prefix(4096)), limit: 1).first ?? ""
        guard !word.isEmpty, word.unicodeScalars.allSatisfy({ $0.properties.isAlphabetic }), word.unicodeScalars.count <= 20 else { return "SQL" }
        return word.uppercased()
    }

    /// `sql` with every literal value — quoted strings (`'…'`, `E'…'`, `$tag$…$tag$`) and
    /// numbers — replaced by `?`, so a span carries the statement's shape and no data.
    /// Quoted identifiers, `$1` parameters and comments' text are kept; comments are
    /// dropped whole (they may hold anything).
    public static func withoutValues(_ sql: String) -> String {
        let scalars = Array(sql.unicodeScalars)
        var out = String.UnicodeScalarView()
        var index = 0
        func at(_ offset: Int) -> Unicode.Scalar? { index + offset < scalars.count ? scalars[index + offset] : nil }
        func isWordScalar(_ scalar: Unicode.Scalar?) -> Bool {
            guard let scalar else { return false }
            return scalar.properties.isAlphabetic || scalar == "_" || ("0"..."9").contains(scalar) || scalar == "$"
        }
        while index < scalars.count {
            let scalar = scalars[index]
            if scalar == "-" && at(1) == "-" {
                while index < scalars.count && scalars[index] != "\n" { index += 1 }
            } else if scalar == "/" && at(1) == "*" {
                var depth = 0
                repeat {
                    if scalars[index] == "/" && at(1) == "*" { depth += 1; index += 2 }
                    else if scalars[index] == "*" && at(1) == "/" { depth -= 1; index += 2 }
                    else { index += 1 }
                } while depth > 0 && index < scalars.count
                out.append(" ")
            } else if scalar == "'" || ((scalar == "e" || scalar == "E" || scalar == "b" || scalar == "B" || scalar == "x" || scalar == "X")
                && at(1) == "'" && !isWordScalar(index > 0 ? scalars[index - 1] : nil))
            {
                let escapes = scalar == "e" || scalar == "E"
                if scalar != "'" { index += 1 }
                index += 1
                while index < scalars.count {
                    if escapes && scalars[index] == "\\" { index += 2; continue }
                    if scalars[index] == "'" {
                        if at(1) == "'" { index += 2; continue }
                        index += 1
                        break
                    }
                    index += 1
                }
                out.append("?")
            } else if scalar == "\"" {
                // A quoted identifier, kept as written.
                out.append(scalar)
                index += 1
                while index < scalars.count {
                    out.append(scalars[index])
                    if scalars[index] == "\"" {
                        if at(1) == "\"" { out.append("\""); index += 2; continue }
                        index += 1
                        break
                    }
                    index += 1
                }
            } else if scalar == "$", !isWordScalar(index > 0 ? scalars[index - 1] : nil), let tagEnd = dollarTagEnd(scalars, from: index) {
                let tag = Array(scalars[index...tagEnd])
                index = tagEnd + 1
                while index < scalars.count {
                    if scalars[index] == "$", index + tag.count <= scalars.count, Array(scalars[index..<index + tag.count]) == tag {
                        index += tag.count
                        break
                    }
                    index += 1
                }
                out.append("?")
            } else if ("0"..."9").contains(scalar) || (scalar == "." && at(1).map { ("0"..."9").contains($0) } == true),
                !isWordScalar(index > 0 ? scalars[index - 1] : nil)
            {
                // A number: digits, a point, an exponent (1.5e-3), hex/underscores.
                while index < scalars.count, isWordScalar(scalars[index]) || scalars[index] == "." ||
                    ((scalars[index] == "-" || scalars[index] == "+") && (scalars[index - 1] == "e" || scalars[index - 1] == "E"))
                {
                    index += 1
                }
                out.append("?")
            } else {
                out.append(scalar)
                index += 1
            }
        }
        return String(out)
    }

    /// The index of the closing `$` of a dollar-quote tag opening at `start` (`$$`,
    /// `$tag$`); nil for a parameter (`$1`) or a lone `$`.
    private static func dollarTagEnd(_ scalars: [Unicode.Scalar], from start: Int) -> Int? {
        var index = start + 1
        while index < scalars.count {
            let scalar = scalars[index]
            if scalar == "$" { return index }
            if index == start + 1, ("0"..."9").contains(scalar) { return nil }
            guard scalar.properties.isAlphabetic || scalar == "_" || ("0"..."9").contains(scalar) else { return nil }
            index += 1
        }
        return nil
    }
}

/// The monitor's view as gauges, per node, after every round.
public final class MonitorGauges: Sendable {
    private let lagSeconds: [String: Gauge]
    private let lagBytes: [String: Gauge]
    private let up: [String: Gauge]
    private let primary: [String: Gauge]
    private let roundTime: CoreMetrics.Timer

    public init(nodes: [String], factory: any MetricsFactory) {
        func gauges(_ label: String) -> [String: Gauge] {
            Dictionary(uniqueKeysWithValues: nodes.map { ($0, Gauge(label: label, dimensions: [("node", $0)], factory: factory)) })
        }
        lagSeconds = gauges("switchyard_replica_lag_seconds")
        lagBytes = gauges("switchyard_replica_lag_bytes")
        up = gauges("switchyard_node_up")
        primary = gauges("switchyard_node_is_primary")
        roundTime = CoreMetrics.Timer(label: "switchyard_monitor_round_seconds", dimensions: [], factory: factory)
    }

    /// Sets every gauge from `topology`. A replica's lag is set while it is reachable and
    /// known; the primary's is 0 (it is no replica).
    public func publish(_ topology: Topology, round: Duration? = nil) {
        for node in topology.nodes {
            up[node.name]?.record(node.reachable ? 1 : 0)
            primary[node.name]?.record(node.reachable && node.role == .primary ? 1 : 0)
            if node.role == .primary && node.reachable {
                lagSeconds[node.name]?.record(0)
                lagBytes[node.name]?.record(0)
            } else if node.reachable, node.role == .replica {
                if let seconds = node.lagSeconds { lagSeconds[node.name]?.record(seconds) }
                if let bytes = node.lagBytes { lagBytes[node.name]?.record(Double(bytes)) }
            }
        }
        if let round { roundTime.recordNanoseconds(round.nanosecondsClamped) }
    }
}

extension Telemetry {
    /// What this telemetry adds to one routed statement, without the statement: its span
    /// opened and ended, its counter and histogram recorded — the work `Cluster` does
    /// around every statement — averaged over `iterations` (for `switchyard bench routing`).
    public func costPerStatement(iterations: Int = 100_000, node: NodeEndpoint) -> Duration {
        let instruments = Instruments(self, nodes: [node])
        let request = RouteRequest(operation: .read, table: "demo.customers", context: .public)
        let decision = RouteDecision(node: node.name, reason: .replica(context: "public", selection: .random, lagMs: 3))
        let sql = "select id, name, email from demo.customers where id = $1"
        let clock = ContinuousClock()
        // The median of five rounds: one round can meet a busy moment of the machine.
        var rounds: [Duration] = []
        for _ in 0..<5 {
            let started = clock.now
            for index in 0..<max(iterations, 1) {
                let span = instruments.tracingOn ? instruments.span(request, decision, sql: sql) : nil
                instruments.statement(
                    node: node.name, context: request.context?.name, operation: .read, duration: .microseconds(index % 500), error: nil)
                instruments.end(span)
            }
            rounds.append((clock.now - started) / max(iterations, 1))
        }
        return rounds.sorted()[2]
    }
}
