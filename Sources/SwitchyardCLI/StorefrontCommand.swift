import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Metrics
import Prometheus
import Storefront
import Switchyard

#if canImport(Glibc)
import Glibc
#endif

struct StorefrontCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "storefront",
        abstract: "Serve the sample shop as JSON over HTTP, every request routed by the Switchyard middleware.",
        discussion: """
            Routes: GET /health; GET /metrics (Prometheus text format); GET and PUT /api/customers/{id} (public context; a PUT sets the \
            token cookie); GET and PUT /admin/customers/{id} (admin context); GET /api/products, \
            /api/products/{id}, /api/customers/{id}/orders, /api/orders/{id}. The sample schema \
            is loaded first if missing. Stops on SIGINT or SIGTERM.
            """)

    @OptionGroup var config: ConfigOption
    @OptionGroup var logging: LoggingOptions
    @Option(help: "Port to listen on (0: any free port; the line 'listening on' tells which).") var port = 8080
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(
        name: .customLong("query-log"),
        help: ArgumentHelp("Append every statement to this JSON Lines file (as [query_log] file does).", valueName: "file"))
    var queryLog: String?
    @Option(help: "Schema of the sample data.") var schema = "demo"
    @Option(help: "Rows of the sample events table when the schema has to be loaded.") var events = 1_000_000
    @Option(help: "Milliseconds a request's database work may take before it is answered 503.") var requestTimeoutMs = 5000
    @Flag(help: "Run the handlers in a fixed public context instead of through the middleware (to measure it).")
    var withoutMiddleware = false
    @Flag(help: .hidden) var exitWithParent = false

    func validate() throws {
        guard (1...3_600_000).contains(requestTimeoutMs) else { throw ValidationError("--request-timeout-ms must be 1 to 3600000") }
        guard (0...65_535).contains(port) else { throw ValidationError("--port must be 0 to 65535") }
        guard events >= 0 else { throw ValidationError("--events must be 0 or more") }
    }

    func run() async throws {
        // A server outlives whoever reads its output: a closed pipe (`| head`) is an error
        // to ignore, not the end of the process.
        signal(SIGPIPE, SIG_IGN)
        try logging.bootstrap(fullScreen: false)
        var configuration = try config.load()
        if let queryLog { configuration.queryLogFile = queryLog }
        if configuration.queryLogSource == nil { configuration.queryLogSource = "storefront" }
        // Metrics for /metrics: bootstrapped before the cluster is made, as swift-metrics asks.
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let cluster = try Cluster(configuration: configuration)
        await cluster.start()
        do {
            let storefront = try await Storefront(
                cluster: cluster, schema: schema, middleware: !withoutMiddleware, requestDeadline: .milliseconds(requestTimeoutMs),
                metrics: registry)
            try await storefront.loadSampleData(events: events) { Self.say($0) }
            if exitWithParent { Self.exitWhenOrphaned() }
            var logger = Logger(label: "switchyard.storefront")
            logger.logLevel = .warning
            let app = storefront.application(host: host, port: port, logger: logger) { port in
                Self.say("listening on http://\(host.contains(":") ? "[\(host)]" : host):\(port)")
            }
            try await app.runService()
        } catch {
            await cluster.shutdown()
            throw error
        }
        await cluster.shutdown()
    }

    /// A line on standard output at once (it may be a file a parent is watching).
    static func say(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) }
            if written < 0, errno == EINTR { continue }
            guard written > 0 else { return }  // nobody reads any more: the line is dropped
            offset += written
        }
    }

    /// Started by `demo`: ends with the process that started it, even if that one was
    /// killed and could not stop it.
    static func exitWhenOrphaned() {
        let parent = getppid()
        Thread.detachNewThread {
            while getppid() == parent { Thread.sleep(forTimeInterval: 0.5) }
            kill(getpid(), SIGTERM)
        }
    }
}
