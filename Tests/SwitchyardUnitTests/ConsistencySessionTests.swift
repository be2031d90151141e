import Foundation
import PostgresClient
import PropertyBased
import Testing

@testable import Switchyard

/// Carried-in tokens: several candidates (a planted cookie beside the real one), settled
/// against the primary's position or by a write.
@Suite struct ConsistencySessionTests {
    let routing = HTTPRouting()

    func cookie(_ values: String...) -> RequestFacts {
        RequestFacts(method: "GET", path: "/", headers: values.map { (name: "Cookie", value: "switchyard_token=\($0)") })
    }

    @Test func theHighestCandidateThePrimaryReachedWinsWhateverTheOrder() {
        let real = ConsistencyToken(lsn: LSN(0x3000148))
        for planted in ["sy1:FFFFFFFF/FFFFFFFF", "sy1:0/0", "sy1:0/1"] {
            for order in [[planted, real.description], [real.description, planted]] {
                let request = routing.begin(RequestFacts(
                    method: "GET", path: "/", headers: order.map { (name: "Cookie", value: "switchyard_token=\($0)") }))
                // Before anything settled them, routing honours the highest (the safe side).
                #expect(request.scope.session.snapshot.token == request.incomingTokens.max { $0.lsn < $1.lsn })
                #expect(request.setCookie == nil, "nothing learned yet: nothing to set or clear")
                request.scope.session.settle(primaryAt: LSN(0x4000000))
                #expect(request.token == real, "\(order)")
                // The visitor's real cookie is never cleared because a planted one came along.
                #expect(request.setCookie?.contains("Max-Age=0") != true, "\(order)")
            }
        }
    }

    @Test func onlyWhenNoIncomingTokenSurvivesIsTheCookieCleared() {
        let request = routing.begin(cookie("sy1:FFFFFFFF/FFFFFFFF", "sy1:FFFFFFFF/FFFFFFFE", "garbage"))
        request.scope.session.settle(primaryAt: LSN(0x4000000))
        #expect(request.token == nil)
        #expect(request.setCookie?.contains("Max-Age=0") == true)
        let alone = routing.begin(cookie("sy1:0/10"))
        alone.scope.session.settle(primaryAt: LSN(0x4000000))
        #expect(alone.token?.description == "sy1:0/10" && alone.setCookie == nil)
    }

    @Test func aWriteSettlesUncheckedCandidatesWithThePrimarysOwnPosition() {
        // A forged token ahead of the primary must not hide the write's position.
        let session = ConsistencySession(candidates: [ConsistencyToken(lsn: LSN(UInt64.max)), ConsistencyToken(lsn: LSN(5))])
        session.recordWrite(LSN(0x100), at: .now)
        #expect(session.token?.lsn == LSN(0x100))
        #expect(session.uncheckedToken == nil)
        session.recordWrite(LSN(0x50), at: .now)
        #expect(session.token?.lsn == LSN(0x100), "tokens only move forward once settled")
        // A write whose position is unknown settles nothing.
        let unknown = ConsistencySession(token: ConsistencyToken(lsn: LSN(7)))
        unknown.recordWrite(nil, at: .now)
        #expect(unknown.uncheckedToken?.lsn == LSN(7))
    }

    @Test func settlingKeepsTheHighestCandidateAtOrBelowThePrimary() async {
        let lsn = Gen.int(in: 0...1_000).map { UInt64($0) }
        await propertyCheck(count: 3000, input: lsn.array(of: 0...6), lsn) { candidates, primary in
            let session = ConsistencySession(candidates: candidates.map { ConsistencyToken(lsn: LSN($0)) })
            let dropped = session.settle(primaryAt: LSN(primary))
            let expected = candidates.filter { $0 <= primary }.max()
            #expect(session.token?.lsn == expected.map { LSN($0) })
            #expect(Set(dropped.map(\.lsn)) == Set(candidates.filter { $0 > primary }.map { LSN($0) }))
            #expect(session.uncheckedToken == nil)
        }
    }
}
