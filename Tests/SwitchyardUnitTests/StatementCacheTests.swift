import PostgresClient
import PropertyBased
import Testing

/// Which statements a connection keeps prepared: the rules, without a server.
@Suite struct StatementCacheTests {
    typealias Key = StatementCache.Key

    @Test func preparesOnceThenExecutesAndEvictsTheLeastRecentlyUsed() {
        var cache = StatementCache(capacity: 2)
        let a = Key(sql: "select 1", types: []), b = Key(sql: "select 2", types: []), c = Key(sql: "select 3", types: [])
        guard case .prepare(let nameA, nil) = cache.plan(a) else { Issue.record("a not prepared"); return }
        #expect(cache.plan(a) == .execute(name: nameA))
        guard case .prepare(let nameB, nil) = cache.plan(b) else { Issue.record("b not prepared"); return }
        #expect(nameA != nameB)
        _ = cache.hit(a)  // a is now the most recently used
        guard case .prepare(_, let evicted) = cache.plan(c) else { Issue.record("c not prepared"); return }
        #expect(evicted == nameB)
        #expect(cache.count == 2)
        #expect(cache.hit(b) == nil)
        #expect(cache.hit(a) == nameA)
    }

    @Test func theSameTextWithOtherParameterTypesIsAnotherStatement() {
        var cache = StatementCache(capacity: 8)
        guard case .prepare = cache.plan(Key(sql: "select $1", types: [0])),
            case .prepare = cache.plan(Key(sql: "select $1", types: [17]))
        else { Issue.record("types not part of the key"); return }
        #expect(cache.count == 2)
    }

    @Test func offMeansUnnamedAndForgetting() {
        var off = StatementCache(capacity: 0)
        #expect(off.plan(Key(sql: "select 1", types: [])) == .unnamed)
        #expect(off.count == 0)
        var cache = StatementCache(capacity: 4)
        let key = Key(sql: "select 1", types: [])
        _ = cache.plan(key)
        cache.forget(key)
        guard case .prepare = cache.plan(key) else { Issue.record("a forgotten statement is prepared again"); return }
        cache.removeAll()
        #expect(cache.count == 0)
    }

    @Test func longStatementsAndDiscardsAreSentUnnamed() {
        var cache = StatementCache(capacity: 8)
        let long = "select '" + String(repeating: "x", count: StatementCache.longestCached) + "'"
        #expect(cache.plan(Key(sql: long, types: [])) == .unnamed)
        #expect(cache.plan(Key(sql: "DISCARD ALL", types: [])) == .unnamed)
        #expect(cache.count == 0)
    }

    @Test func discardStatementsAreRecognised() {
        #expect(StatementCache.discardsPrepared("DISCARD ALL"))
        #expect(StatementCache.discardsPrepared("  deallocate all;"))
        #expect(StatementCache.discardsPrepared("Deallocate switchyard_3"))
        #expect(!StatementCache.discardsPrepared("select 'discard all'"))
        #expect(!StatementCache.discardsPrepared(""))
    }

    @Test func randomUseNeverExceedsCapacityAndNamesStayUnique() async {
        await propertyCheck(count: 1000, input: Gen.int(in: 1...6).array(of: 1...80), Gen.int(in: 1...5)) { picks, capacity in
            var cache = StatementCache(capacity: capacity)
            var live: [Key: String] = [:]
            for pick in picks {
                let key = Key(sql: "select \(pick)", types: [])
                switch cache.plan(key) {
                case .unnamed:
                    Issue.record("unnamed with capacity \(capacity)")
                case .execute(let name):
                    #expect(live[key] == name)
                case .prepare(let name, let evicting):
                    #expect(live[key] == nil)
                    #expect(!live.values.contains(name))
                    if let evicting {
                        #expect(live.values.contains(evicting))
                        live = live.filter { $0.value != evicting }
                    }
                    live[key] = name
                }
                #expect(cache.count <= capacity)
                #expect(cache.count == live.count)
            }
        }
    }
}
