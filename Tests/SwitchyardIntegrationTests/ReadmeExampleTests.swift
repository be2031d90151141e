import Foundation
import Hummingbird
import Logging
import Storefront
import Switchyard
import SwitchyardHummingbird
import SwitchyardTestSupport
import Synchronization
import Testing

extension ClusterTests {
    /// The README's middleware example, as written there, against the real cluster.
    @Suite struct ReadmeExampleTests {
        @Test func theReadmeMiddlewareExampleReadsBackWhatItSaved() async throws {
            let test = try TestCluster.shared()
            try await test.withSchema { schema in
                _ = try await schema.primary.execute(script: """
                    create table \(schema.quoted).items (id int primary key, name text);
                    insert into \(schema.quoted).items values (1, 'lamp');
                    """)
                var configuration = ClusterConfiguration(
                    name: "readme", nodes: try test.nodes.map { NodeEndpoint(name: $0.name, conninfo: try test.conninfo($0.name)) })
                configuration.monitorInterval = .milliseconds(250)
                let cluster = try Cluster(configuration: configuration)
                await cluster.start()
                let items = "\(schema.quoted).items"
                // From here: the README's lines (the table name qualified, port 0 for the test).
                let router = Router()
                router.add(middleware: SwitchyardMiddleware(routing: cluster.configuration.http))
                router.get("/items/{id}") { _, context -> String in
                    let id = try context.parameters.require("id", as: Int.self)
                    return try await cluster.query("select name from \(items) where id = $1", [id]).scalar(String.self) ?? "?"
                }
                struct Rename: Decodable { let name: String }
                router.put("/items/{id}") { request, context -> HTTPResponse.Status in
                    let id = try context.parameters.require("id", as: Int.self)
                    let rename = try await request.decode(as: Rename.self, context: context)
                    try await cluster.execute("update \(items) set name = $1 where id = $2", [rename.name, id])
                    return .ok
                }
                let port = Mutex<Int?>(nil)
                let app = Application(
                    router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                    onServerRunning: { channel in port.withLock { $0 = channel.localAddress?.port } })
                let running = Task { try await app.run() }
                defer { running.cancel() }
                #expect(try await TestCluster.eventually { port.withLock { $0 } != nil })
                let visitor = StorefrontVisitor(baseURL: URL(string: "http://127.0.0.1:\(port.withLock { $0 }!)")!)
                for round in 1...20 {
                    let saved = try await visitor.put("/items/1", json: ["name": "lamp \(round)"])
                    #expect(saved.status == 200)
                    #expect(saved.headers["set-cookie"]?.hasPrefix("switchyard_token=sy1:") == true)
                    let read = try await visitor.get("/items/1")
                    #expect(String(decoding: read.body, as: UTF8.self) == "lamp \(round)")
                }
                running.cancel()
                _ = await running.result
                await cluster.shutdown()
            }
        }

        @Test func anyErrorAfterAWriteStillCarriesTheCookieAndStreamedBodiesRunInTheContext() async throws {
            let test = try TestCluster.shared()
            try await test.withSchema { schema in
                _ = try await schema.primary.execute(script: "create table \(schema.quoted).items (id int primary key, name text);")
                var configuration = ClusterConfiguration(
                    name: "errors", nodes: try test.nodes.map { NodeEndpoint(name: $0.name, conninfo: try test.conninfo($0.name)) })
                configuration.monitorInterval = .milliseconds(250)
                let cluster = try Cluster(configuration: configuration)
                await cluster.start()
                let items = "\(schema.quoted).items"
                struct NotHTTP: Error {}
                let router = Router()
                router.add(middleware: SwitchyardMiddleware(routing: cluster.configuration.http))
                // Commits, then fails with an error that is no HTTPResponseError.
                router.post("/boom") { _, _ -> String in
                    try await cluster.execute("insert into \(items) values (1, 'x')")
                    throw NotHTTP()
                }
                // The body is written after the handler returned: its statements keep the context.
                router.get("/stream") { _, _ -> Response in
                    Response(status: .ok, body: ResponseBody { writer in
                        let routed = try await cluster.run(.read, "select name from \(items) where id = 1")
                        let text = "\(RoutingContext.current?.name ?? "none") \(routed.reason.description)"
                        try await writer.write(ByteBuffer(string: text))
                        try await writer.finish(nil)
                    })
                }
                let port = Mutex<Int?>(nil)
                var logger = Logger(label: "test.middleware")
                logger.logLevel = .critical
                let app = Application(
                    router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                    onServerRunning: { channel in port.withLock { $0 = channel.localAddress?.port } }, logger: logger)
                let running = Task { try await app.run() }
                try await ensuring {
                    #expect(try await TestCluster.eventually { port.withLock { $0 } != nil })
                    let visitor = StorefrontVisitor(baseURL: URL(string: "http://127.0.0.1:\(port.withLock { $0 }!)")!)
                    let boom = try await visitor.send("POST", "/boom", body: nil)
                    #expect(boom.status == 500)
                    #expect(boom.headers["set-cookie"]?.hasPrefix("switchyard_token=sy1:") == true, "the committed write's token was lost")
                    let streamed = try await visitor.get("/stream")
                    let text = String(decoding: streamed.body, as: UTF8.self)
                    #expect(text.hasPrefix("public "), "\(text)")
                    #expect(!text.contains("no context"), "\(text)")
                } finally: {
                    running.cancel()
                    _ = await running.result
                    await cluster.shutdown()
                }
            }
        }
    }
}
