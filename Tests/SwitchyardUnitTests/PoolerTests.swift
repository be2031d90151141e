import PostgresClient
import PropertyBased
@testable import Switchyard
import Testing

/// What may go through a transaction pooler, and the config that says a node is behind one.
@Suite struct PoolerTests {
    @Test func sessionStateIsRefusedWithWhatToDoInstead() {
        let refused = [
            "set search_path = app", "SET SESSION statement_timeout = 0", "  /* hi */ -- x\n set work_mem = '64MB'", "reset all",
            "DISCARD ALL", "listen orders", "UNLISTEN *", "load 'auto_explain'", "prepare q(int) as select $1", "deallocate q",
            "declare c cursor with hold for select 1", "create temp table t (id int)", "CREATE TEMPORARY TABLE t AS SELECT 1",
            "create global temporary table t (id int)", "select pg_advisory_lock(42)", "select pg_try_advisory_lock_shared(1, 2)",
            "select set_config('search_path', 'x', false)", "select set_config('a.b', $1, $2)", "select SET_CONFIG('a.b', 'x' || 'y', false)",
        ]
        for sql in refused {
            let why = SessionStatements.poolerRefusal(sql)
            #expect(why != nil, "\(sql) should be refused")
        }
        #expect(SessionStatements.poolerRefusal("set search_path = app")?.contains("SET LOCAL") == true)
        #expect(SessionStatements.poolerRefusal("select pg_advisory_lock(42)")?.contains("pg_advisory_xact_lock") == true)
        let allowed = [
            "select 1", "set local statement_timeout = '1s'", "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            "set constraints all deferred", "select 'set x = 1', \"set\" from t", "-- set x\nselect 1", "/* set /* nested */ x */ select 1",
            "select set_config('a.b', $1, true)", "select set_config('a.b', upper($1), 't')", "select pg_advisory_xact_lock(1)",
            "create temp table t (id int) on commit drop", "insert into t values ('listen', $$set x$$)", "declare c cursor for select 1",
            "prepare transaction 'x'", "select E'it\\'s set_config(1,2,false)'",
        ]
        for sql in allowed {
            #expect(SessionStatements.poolerRefusal(sql) == nil, "\(sql) should pass: \(SessionStatements.poolerRefusal(sql) ?? "")")
        }
    }

    @Test func transactionControlIsRecognised() {
        for sql in ["begin", "BEGIN ISOLATION LEVEL SERIALIZABLE", " start transaction", "commit", "END", "rollback", "abort",
                    "savepoint a", "release savepoint a", "prepare transaction 'x'", "/* c */ begin", "-- c\ncommit"] {
            #expect(SessionStatements.controlsTransaction(sql), "\(sql)")
        }
        for sql in ["select 1", "insert into begin values (1)", "\"begin\"", "prepare q as select 1", "update t set a = 'commit'", ""] {
            #expect(!SessionStatements.controlsTransaction(sql), "\(sql)")
        }
    }

    /// The allocation-free first-word scan says what the lexer says, on any text.
    @Test func theFastScanAgreesWithTheLexer() async {
        let word = Gen.element(of: ["begin", "BEGIN", "commit", "end", "savepoint", "release", "prepare transaction", "prepare q", "select",
                                    "rollback", "abort", "start", "starts", "begin_x", "beginé", "end1", "--c\n", "/*c*/", " ", "\t", ";"]).map { $0! }
        let text = Gen<String>.frequency((3, word.array(of: 1...4).map { $0.joined(separator: " ") }), (1, NastyText.string))
        await propertyCheck(count: 3000, input: text) { sql in
            #expect(SessionStatements.controlsTransaction(sql) == SessionStatements.lexedControlsTransaction(sql), "\(sql.debugDescription)")
        }
    }

    /// Any text: an answer, never a crash; a statement that is refused stays refused with
    /// comments and whitespace around it, and text inside a literal, a quoted identifier
    /// or a comment never makes a safe statement refused.
    @Test func theLexerHoldsOnAnyText() async {
        let keyword = Gen.element(of: ["set", "listen", "pg_advisory_lock(1)", "set_config('a','b',false)", "begin", "commit"]).map { $0! }
        let text = Gen<String>.frequency((2, NastyText.string), (1, keyword))
        await propertyCheck(count: 3000, input: text, keyword) { noise, dangerous in
            _ = SessionStatements.poolerRefusal(noise)
            _ = SessionStatements.controlsTransaction(noise)
            let literal = "\(noise) \(dangerous)".replacingOccurrences(of: "'", with: "''")
            let line = noise.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\r", with: " ")
            let hidden = "select 1 from t where a = '\(literal)' -- \(line) \(dangerous)"
            #expect(SessionStatements.poolerRefusal(hidden) == nil, "\(hidden.debugDescription)")
            #expect(!SessionStatements.controlsTransaction(hidden))
            let wrapped = "/* \(noise.replacingOccurrences(of: "*", with: "x")) */\n  set x = 1"
            #expect(SessionStatements.poolerRefusal(wrapped) != nil, "\(wrapped.debugDescription)")
        }
    }

    @Test func nodesBehindAPoolerAreConfigured() throws {
        let config = try ClusterConfiguration.parse(
            """
            [[nodes]]
            name = "pg1"
            conninfo = "host=127.0.0.1 port=6432 dbname=app"
            monitor_conninfo = "host=127.0.0.1 port=5432 dbname=app"
            pool_mode = "transaction"

            [[nodes]]
            name = "pg2"
            conninfo = "host=127.0.0.1 port=5433 dbname=app"

            [monitor]
            strategy = "every-node"
            replica_probe_interval_ms = 2000
            """, file: "c.toml")
        #expect(config.nodes[0].monitorConninfo == "host=127.0.0.1 port=5432 dbname=app")
        #expect(config.nodes[0].poolMode == .transaction)
        #expect(config.nodes[1].monitorConninfo == config.nodes[1].conninfo)
        #expect(config.nodes[1].poolMode == .session)
        #expect(config.monitorStrategy == .everyNode)
        #expect(config.replicaProbeInterval == .seconds(2))
        let bad = #expect(throws: ConfigurationError.self) {
            try ClusterConfiguration.parse("[[nodes]]\nname = \"pg1\"\nconninfo = \"x\"\npool_mode = \"statement\"\n", file: "c.toml")
        }
        #expect(bad?.line == 4)
        #expect(bad?.description.contains("session, transaction") == true)
        let strategy = #expect(throws: ConfigurationError.self) {
            try ClusterConfiguration.parse("[[nodes]]\nname = \"pg1\"\nconninfo = \"x\"\n[monitor]\nstrategy = \"sometimes\"\n", file: "c.toml")
        }
        #expect(strategy?.line == 5)
    }
}
