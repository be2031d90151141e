import ArgumentParser
import Console
import Foundation
import LocalCluster
import PostgresClient
import Storefront
import Switchyard

#if canImport(Glibc)
import Glibc
#endif

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Start the local cluster, load sample data once, start the sample storefront, send it traffic, and open the console.",
        discussion: """
            The storefront (`switchyard storefront`) runs as its own process and writes its query \
            log to a file the console follows, so the side pane shows the shop's requests — \
            public reads on replicas, visitors' read-backs, admin pages on the primary — next to \
            the console's own statements. Quitting the console stops the storefront; the cluster \
            keeps running.
            """)

    @OptionGroup var directory: ClusterDirectoryOption
    @Option(help: "Port of pg1; replicas take the following ports.") var port = 55432
    @Flag(help: "Do not send the storefront traffic (it still runs, for your own requests).") var noTraffic = false
    @Option(help: "Port of the storefront (0: any free port).") var storefrontPort = 0
    @Option(help: "Theme name (Themes/NAME.toml) or path to a theme file.") var theme: String?
    @Option(help: "Open this table at once, as SCHEMA.TABLE.") var table: String?
    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        try logging.bootstrap(fullScreen: true)
        let theme = try loadTheme(self.theme ?? "default")
        let cluster = directory.cluster
        print("starting the local cluster in \(cluster.directory.path)…")
        let statuses = try await cluster.up(basePort: port, replicas: 2) { print("  \($0)") }
        guard let primary = statuses.first(where: { $0.role == .primary }) else {
            throw LocalClusterError(.notRunning, "no running primary in \(cluster.directory.path)")
        }
        try await SampleShop.loadIfMissing(conninfo: cluster.conninfo(for: primary.node)) { print("  \($0)") }
        var configuration = try ClusterConfiguration.load(path: cluster.configURL.path)
        configuration.name = "demo"
        let queryLog = cluster.directory.appendingPathComponent("storefront.jsonl").path
        let storefront = try await StorefrontProcess.start(
            config: cluster.configURL.path, port: storefrontPort, queryLog: queryLog,
            output: cluster.directory.appendingPathComponent("storefront.log").path)
        print("storefront: \(storefront.baseURL.absoluteString) (its query log: \(queryLog))")
        let baseURL = storefront.baseURL
        var traffic: (@Sendable (Cluster) -> Task<Void, Never>)?
        if !noTraffic { traffic = { _ in ShopTraffic.start(baseURL: baseURL) } }
        do {
            try await runConsole(configuration: configuration, theme: theme, table: table, follow: [queryLog], beside: traffic)
        } catch {
            await storefront.stop()
            throw error
        }
        await storefront.stop()
        print("The demo cluster keeps running. Stop it with: switchyard cluster down --dir \(cluster.directory.path)")
    }
}

/// The storefront as a child process of the demo.
struct StorefrontProcess: Sendable {
    let process: Process
    let baseURL: URL

    /// Starts `switchyard storefront` (this same program) and waits until it listens.
    static func start(config: String, port: Int, queryLog: String, output: String) async throws -> StorefrontProcess {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try selfExecutable())
        process.arguments = [
            "storefront", "--config", config, "--port", String(port), "--query-log", queryLog, "--exit-with-parent",
        ]
        FileManager.default.createFile(atPath: output, contents: nil, attributes: [.posixPermissions: 0o600])
        guard let log = FileHandle(forWritingAtPath: output) else { throw UsageError("cannot write \(output)") }
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("listening on ") }),
                let url = URL(string: String(line.dropFirst("listening on ".count)))
            {
                return StorefrontProcess(process: process, baseURL: url)
            }
            if !process.isRunning {
                throw UsageError("the storefront stopped (status \(process.terminationStatus)): \(text.suffix(600))")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        process.terminate()
        throw UsageError("the storefront did not start listening within 60 s; see \(output)")
    }

    /// SIGTERM, then up to 10 s for a graceful stop, then SIGKILL.
    func stop() async {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = ContinuousClock.now + .seconds(10)
        while process.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    /// The path of the running program.
    static func selfExecutable() throws -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return CommandLine.arguments[0] }
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// The demo's site traffic, as real HTTP requests to the storefront: visitors browse
/// products (public reads), now and then one renames themself and reads the profile back
/// (a write, then a read-back that must see it: the token cookie at work), and staff
/// open a customer on the admin pages.
enum ShopTraffic {
    static func start(baseURL: URL) -> Task<Void, Never> {
        Task {
            let visitors = (0..<4).map { _ in StorefrontVisitor(baseURL: baseURL) }
            let staff = StorefrontVisitor(baseURL: baseURL)
            var tick = 0
            while !Task.isCancelled {
                tick += 1
                let visitor = visitors[tick % visitors.count]
                do {
                    _ = try await visitor.get("/api/products/\(Int.random(in: 1...2000))")
                    if tick % 4 == 0 { _ = try await visitor.get("/api/products?after=\(Int.random(in: 0...1900))&limit=20") }
                    if tick % 7 == 0 { _ = try await visitor.get("/api/customers/\(Int.random(in: 1...20000))/orders") }
                    if tick % 20 == 0 {
                        let id = Int.random(in: 1...20000)
                        _ = try await visitor.put("/api/customers/\(id)", json: ["name": "Visitor \(tick)"])
                        _ = try await visitor.get("/api/customers/\(id)")
                    }
                    if tick % 50 == 0 { _ = try await staff.get("/admin/customers/\(Int.random(in: 1...20000))") }
                } catch {
                    // The storefront answers errors as JSON; a refused connection just waits.
                }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }
}
