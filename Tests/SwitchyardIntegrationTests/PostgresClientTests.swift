import Foundation
import LocalCluster
import PostgresClient
import SwitchyardTestSupport
import Testing

extension ClusterTests {
    @Suite struct PostgresClientTests {
        let secret = "s3cret-Pa55word"

        @Test func closedPortGivesClearErrorWithoutSecret() async throws {
            let port = try #require(PortCheck.freeRange(count: 1))
            let conninfo = "host=127.0.0.1 port=\(port) dbname=app user=postgres password=\(secret) connect_timeout=3"
            let error = await #expect(throws: PostgresError.self) {
                _ = try await PostgresConnection.connect(conninfo)
            }
            #expect(error?.kind == .connectionFailed)
            #expect(error?.description.contains("\(port)") == true)
            #expect(error?.description.contains("refused") == true)
            #expect(error?.description.contains(secret) == false)
        }

        @Test func unknownDatabaseGivesClearError() async throws {
            let cluster = try TestCluster.shared()
            // The real password, given in the string: it gets past authentication and must
            // not appear in the error about the database.
            let password = try #require(cluster.local.password())
            let conninfo = try cluster.conninfo("pg1", database: "no_such_db") + " password=\(password)"
            let error = await #expect(throws: PostgresError.self) {
                _ = try await PostgresConnection.connect(conninfo, label: "pg1")
            }
            #expect(error?.kind == .connectionFailed)
            #expect(error?.message.contains("database \"no_such_db\" does not exist") == true)
            #expect(error?.node == "pg1")
            #expect(error?.description.contains(password) == false)
        }

        @Test func wrongPasswordGivesClearErrorWithoutSecret() async throws {
            let cluster = try TestCluster.shared()
            try await cluster.withConnection("pg1") { connection in
                _ = try await connection.query(
                    "select set_config('password_encryption', 'scram-sha-256', false)")
                let exists = try await connection.query("select 1 from pg_roles where rolname = 'pw_user'")
                if exists.rowCount == 0 {
                    _ = try await connection.query("create role pw_user login password 'right-password'")
                }
            }
            try await cluster.prependHBARule("host all pw_user 127.0.0.1/32 scram-sha-256", node: "pg1")
            let base = try cluster.conninfo("pg1")
            let wrong = base.replacingOccurrences(of: "user=postgres", with: "user=pw_user") + " password=\(secret)"
            let error = await #expect(throws: PostgresError.self) {
                _ = try await PostgresConnection.connect(wrong)
            }
            #expect(error?.message.contains("password authentication failed") == true)
            #expect(error?.description.contains(secret) == false)

            let uri = "postgresql://pw_user:\(secret)@127.0.0.1:\(try cluster.node("pg1").port)/app"
            let uriError = await #expect(throws: PostgresError.self) {
                _ = try await PostgresConnection.connect(uri)
            }
            #expect(uriError?.description.contains(secret) == false)

            let right = base.replacingOccurrences(of: "user=postgres", with: "user=pw_user") + " password=right-password"
            let connection = try await PostgresConnection.connect(right)
            #expect(connection.redactedConninfo.contains("right-password") == false)
            #expect(connection.redactedConninfo.contains("password=\(Conninfo.mask)"))
            #expect(try await connection.query("select current_user").scalar(String.self) == "pw_user")
            await connection.close()
        }

        @Test func injectionStringAsParameterIsStoredVerbatim() async throws {
            try await TestCluster.shared().withSchema { schema in
                let notes = try await schema.table("notes")
                _ = try await schema.primary.query("create table \(notes) (id serial primary key, body text)")
                let evil = "x'); drop table \(notes); -- \" $1 \\ ;"
                _ = try await schema.primary.query("insert into \(notes) (body) values ($1)", [evil])
                let stored = try await schema.primary.query("select body from \(notes) where body = $1", [evil])
                #expect(stored.rowCount == 1)
                #expect(try stored.scalar(String.self) == evil)
                let count = try await schema.primary.query("select count(*) from \(notes)").scalar(Int.self)
                #expect(count == 1)
            }
        }

        /// A read the router sent to a primary that has since become a standby (a
        /// switchover between two monitor rounds) still says how far what it saw reaches:
        /// the standby's replay position. Without it, a monotonic-reads session kept a token
        /// below what it had seen, and a lagging replica served it older data.
        @Test func aPositionComesBackFromAStandbyToo() async throws {
            let test = try TestCluster.shared()
            let standby = try await PostgresConnection.connect(try test.conninfo("pg2"))
            let (result, lsn) = try await standby.queryReturningCommitLSN("select 1")
            let replayed = try await standby.query("select pg_last_wal_replay_lsn()").scalar(LSN.self)
            await standby.close()
            #expect(try result.scalar(Int.self) == 1)
            #expect(lsn != nil && replayed != nil && lsn! <= replayed!, "\(String(describing: lsn)) vs \(String(describing: replayed))")
        }

        @Test func nullAndEmptyStringStayDistinct() async throws {
            try await TestCluster.shared().withSchema { schema in
                let table = try await schema.table("t")
                _ = try await schema.primary.query("create table \(table) (id int primary key, v text)")
                _ = try await schema.primary.query(
                    "insert into \(table) values (1, $1), (2, $2)", [String?.none, ""])
                let rows = try await schema.primary.query("select id, v from \(table) order by id").rows
                #expect(rows.count == 2)
                #expect(try rows[0].decode("v", as: String?.self) == nil)
                #expect(rows[0].isNull(1))
                #expect(try rows[1].decode("v", as: String?.self) == "")
                #expect(!rows[1].isNull(1))
                #expect(throws: PostgresError.self) { try rows[0].decode(1, as: String.self) }
            }
        }

        @Test func nonASCIIAndEmojiRoundTrip() async throws {
            let connection = try await TestCluster.shared().connect("pg1")
            let text = "Zoë Ångström — 東京 🚂👩🏽‍💻 ﷽"
            let result = try await connection.query("select $1::text, char_length($1::text)", [text])
            let row = try #require(result.first)
            #expect(try row.decode(0, as: String.self) == text)
            #expect(try row.decode(1, as: Int.self) == text.unicodeScalars.count)
            await connection.close()
        }

        @Test func byteaRoundTrip() async throws {
            try await TestCluster.shared().withSchema { schema in
                let table = try await schema.table("blobs")
                _ = try await schema.primary.query("create table \(table) (id int primary key, data bytea)")
                let bytes = (0...255).map { UInt8($0) } + [0, 0, 255]
                _ = try await schema.primary.query("insert into \(table) values (1, $1), (2, $2)", [bytes, [UInt8]()])
                let rows = try await schema.primary.query("select data, length(data) from \(table) order by id").rows
                #expect(try rows[0].decode(0, as: [UInt8].self) == bytes)
                #expect(try rows[0].decode(1, as: Int.self) == bytes.count)
                #expect(try rows[1].decode(0, as: [UInt8].self) == [])
                #expect(try rows[1].decode(0, as: Data.self) == Data())
            }
        }

        @Test func typedValuesColumnsAndOIDs() async throws {
            let connection = try await TestCluster.shared().connect("pg1")
            let moment = Date(timeIntervalSince1970: 1_764_200_000.123456)
            let result = try await connection.query(
                """
                select 42::int4 as answer, 2.5::float8 as ratio, true as yes, 'hi'::text as word,
                       $1::timestamptz as at, '2025-11-26'::date as day, 12.50::numeric as price,
                       '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0'::uuid as id, 9223372036854775807::int8 as big
                """, [moment])
            #expect(result.columns.map(\.name) == ["answer", "ratio", "yes", "word", "at", "day", "price", "id", "big"])
            #expect(result.columns.map(\.typeOID) == [23, 701, 16, 25, 1184, 1082, 1700, 2950, 20])
            let row = try #require(result.first)
            #expect(try row.decode("answer", as: Int.self) == 42)
            #expect(try row.decode("ratio", as: Double.self) == 2.5)
            #expect(try row.decode("yes", as: Bool.self))
            #expect(try row.decode("word", as: String.self) == "hi")
            let at = try row.decode("at", as: Date.self)
            #expect(abs(at.timeIntervalSince(moment)) < 0.000_001)
            #expect(try row.decode("day", as: Date.self) == Date(timeIntervalSince1970: 1_764_115_200))
            #expect(try row.decode("price", as: Decimal.self) == Decimal(string: "12.50"))
            #expect(try row.decode("id", as: UUID.self) == UUID(uuidString: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"))
            #expect(try row.decode("big", as: Int64.self) == .max)
            #expect(throws: PostgresError.self) { try row.decode("word", as: Int.self) }
            await connection.close()
        }

        @Test func serverErrorCarriesSQLStateDetailAndNode() async throws {
            try await TestCluster.shared().withSchema { schema in
                let table = try await schema.table("u")
                _ = try await schema.primary.query("create table \(table) (id int primary key)")
                _ = try await schema.primary.query("insert into \(table) values (1)")
                let duplicate = await #expect(throws: PostgresError.self) {
                    _ = try await schema.primary.query("insert into \(table) values ($1)", [1])
                }
                #expect(duplicate?.kind == .server)
                #expect(duplicate?.sqlState == "23505")
                #expect(duplicate?.severity == "ERROR")
                #expect(duplicate?.detail?.contains("(id)=(1)") == true)
                #expect(duplicate?.node == "pg1")
                let syntax = await #expect(throws: PostgresError.self) {
                    _ = try await schema.primary.query("select 1 from \(table) where id = $1", ["not a number"])
                }
                #expect(syntax?.sqlState == "22P02")
                // The connection is still usable after statement errors.
                #expect(try await schema.primary.query("select count(*) from \(table)").scalar(Int.self) == 1)
                #expect(schema.primary.isUsable)
            }
        }

        /// Also through PgBouncer, which forwards the cancel request to the server session
        /// that runs the statement.
        @Test(arguments: TestCluster.Path.allCases)
        func cancelStopsALongQueryFromAnotherTask(path: TestCluster.Path) async throws {
            let connection = try await TestCluster.shared().connect("pg1", path: path)
            let clock = ContinuousClock()
            let start = clock.now
            let sleeper = Task { try await connection.query("select pg_sleep(30)") }
            // Cancel once the statement is really running on the server.
            let running = try await TestCluster.eventually(timeout: .seconds(5)) {
                let probe = try await TestCluster.shared().connect("pg1")
                let active = try await probe.query(
                    "select count(*) from pg_stat_activity where query = 'select pg_sleep(30)' and state = 'active'"
                ).scalar(Int.self)
                await probe.close()
                return active == 1
            }
            #expect(running)
            let cancelAt = clock.now
            connection.cancel()
            let error = await #expect(throws: PostgresError.self) { _ = try await sleeper.value }
            let cancelLatency = clock.now - cancelAt
            #expect(error?.kind == .cancelled)
            #expect(error?.sqlState == "57014")
            #expect(clock.now - start < .seconds(10))
            #expect(cancelLatency < .seconds(2))
            // Still usable afterwards.
            #expect(try await connection.query("select 1").scalar(Int.self) == 1)

            // Cancelling the Swift task cancels the statement on the server too.
            let task = Task { try await connection.query("select pg_sleep(30)") }
            try await Task.sleep(for: .milliseconds(300))
            let taskCancelAt = clock.now
            task.cancel()
            let taskError = await #expect(throws: PostgresError.self) { _ = try await task.value }
            #expect(taskError?.kind == .cancelled)
            #expect(clock.now - taskCancelAt < .seconds(2))
            await connection.close()
        }

        @Test func connectionsWaitTogetherWithoutAThreadEach() async throws {
            let cluster = try TestCluster.shared()
            func threads() throws -> Int {
                let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
                let line = status.split(separator: "\n").first { $0.hasPrefix("Threads:") } ?? ""
                return Int(line.split(separator: "\t").last ?? "") ?? -1
            }
            let before = try threads()
            var connections: [PostgresConnection] = []
            for _ in 0..<24 { connections.append(try await cluster.connect("pg1")) }
            let clock = ContinuousClock()
            let started = clock.now
            let values = try await withThrowingTaskGroup(of: Int?.self) { group in
                for connection in connections {
                    group.addTask { try await connection.query("select 1 from pg_sleep(0.5)").scalar(Int.self) }
                }
                return try await group.reduce(into: [Int?]()) { $0.append($1) }
            }
            #expect(values == Array(repeating: 1, count: 24))
            // Waiting in parallel, not one after another (24 × 0.5 s = 12 s).
            #expect(clock.now - started < .seconds(4))
            // No thread per connection or per waiting statement.
            let after = try threads()
            #expect(after < before + 8, "threads grew from \(before) to \(after)")
            // Two tasks on one connection take turns; both get their own answer.
            let shared = connections[0]
            async let first = shared.query("select 'first' from pg_sleep(0.2)").scalar(String.self)
            async let second = shared.query("select 'second'").scalar(String.self)
            #expect(try await [first, second] == ["first", "second"])
            for connection in connections { await connection.close() }
        }

        @Test func preparedStatementsAreReusedEvictedAndRecoveredAfterDiscardOrASchemaChange() async throws {
            let cluster = try TestCluster.shared()
            try await cluster.withSchema { schema in
                let table = try await schema.table("cache")
                let connection = try await PostgresConnection.connect(
                    try cluster.conninfo("pg1"), label: "pg1", options: ConnectOptions(statementCacheCapacity: 2))
                try await connection.closing { connection in
                    func prepared() async throws -> [String] {
                        // Through the simple protocol's script path: not cached itself.
                        let result = try await connection.execute(script: "select name from pg_prepared_statements order by name")
                        return result.rows.compactMap { try? $0.decode(0, as: String.self) }
                    }
                    _ = try await connection.query("create table \(table) (id int primary key, a text)")
                    _ = try await connection.query("insert into \(table) values (1, 'one')")
                    let read = "select * from \(table) where id = $1"
                    for _ in 1...3 { #expect(try await connection.query(read, [1]).first?.decode(1, as: String.self) == "one") }
                    #expect(try await prepared().count == 2, "the insert and the read stay prepared")
                    // More distinct statements than the capacity: the oldest are deallocated.
                    for n in 1...5 { _ = try await connection.query("select $1::int + \(n)", [n]) }
                    #expect(try await prepared().count <= 2)
                    // A table that changes shape under a prepared `select *` is re-prepared.
                    _ = try await connection.query(read, [1])
                    _ = try await connection.query("alter table \(table) add column b text default 'bee'")
                    let after = try #require(try await connection.query(read, [1]).first)
                    #expect(try after.decode(2, as: String.self) == "bee")
                    // DISCARD ALL drops the server's statements; the cache follows.
                    _ = try await connection.query("discard all")
                    #expect(try await prepared().isEmpty)
                    #expect(try await connection.query(read, [1]).first?.decode(1, as: String.self) == "one")
                    // A syntax error is reported, never cached, and leaves the connection usable.
                    let syntax = await #expect(throws: PostgresError.self) { _ = try await connection.query("selec 1") }
                    #expect(syntax?.sqlState == "42601")
                    #expect(try await connection.query("select 41 + 1").scalar(Int.self) == 42)
                    // Two statements in one string stay refused, as without the cache.
                    await #expect(throws: PostgresError.self) { _ = try await connection.query("select 1; select 2") }
                }
                // With the cache off nothing is prepared.
                let plain = try await PostgresConnection.connect(
                    try cluster.conninfo("pg1"), label: "pg1", options: ConnectOptions(statementCacheCapacity: 0))
                try await plain.closing { plain in
                    for _ in 1...3 { _ = try await plain.query("select $1::int", [7]) }
                    #expect(try await plain.execute(script: "select count(*) from pg_prepared_statements").scalar(Int.self) == 0)
                }
            }
        }

        @Test func lostConnectionIsDistinguishableFromSQLErrors() async throws {
            let cluster = try TestCluster.shared()
            let victim = try await cluster.connect("pg1")
            let pid = try #require(try await victim.query("select pg_backend_pid()").scalar(Int.self))
            try await cluster.withConnection("pg1") { admin in
                _ = try await admin.query("select pg_terminate_backend($1)", [pid])
            }
            let error = await #expect(throws: PostgresError.self) { _ = try await victim.query("select 1") }
            #expect(error?.kind == .connectionLost)
            #expect(error?.isConnectionError == true)
            #expect(!victim.isUsable)
            await victim.close()
            let closedError = await #expect(throws: PostgresError.self) { _ = try await victim.query("select 1") }
            #expect(closedError?.kind == .closed)
        }

        @Test func serverIdentity() async throws {
            let cluster = try TestCluster.shared()
            let primary = try await cluster.withConnection("pg1") { try await $0.serverInfo() }
            #expect(!primary.inRecovery)
            #expect(primary.port == (try cluster.node("pg1").port))
            #expect(primary.host == "127.0.0.1")
            #expect(primary.serverVersionNumber >= 100_000)
            #expect(primary.serverVersion.contains("."))
            let replica = try await cluster.withConnection("pg2") { try await $0.serverInfo() }
            #expect(replica.inRecovery)
            #expect(replica.port == (try cluster.node("pg2").port))
        }

        @Test func identifiersAreQuotedByLibpq() async throws {
            try await TestCluster.shared().withSchema { schema in
                let odd = "Order \"Items\"; drop"
                let quoted = try await schema.primary.quoteIdentifier(odd)
                #expect(quoted == "\"Order \"\"Items\"\"; drop\"")
                _ = try await schema.primary.query("create table \(schema.quoted).\(quoted) (id int)")
                let found = try await schema.primary.query(
                    "select count(*) from pg_tables where schemaname = $1 and tablename = $2", [schema.name, odd])
                #expect(try found.scalar(Int.self) == 1)
            }
        }

        @Test func transactionRollsBackOnThrow() async throws {
            try await TestCluster.shared().withSchema { schema in
                let table = try await schema.table("tx")
                _ = try await schema.primary.query("create table \(table) (id int)")
                struct Boom: Error {}
                await #expect(throws: Boom.self) {
                    try await schema.primary.withTransaction { connection in
                        _ = try await connection.query("insert into \(table) values (1)")
                        throw Boom()
                    }
                }
                try await schema.primary.withTransaction { connection in
                    _ = try await connection.query("insert into \(table) values (2)")
                }
                let ids = try await schema.primary.query("select id from \(table)").rows.map { try $0.decode(0, as: Int.self) }
                #expect(ids == [2])
            }
        }
    }
}
