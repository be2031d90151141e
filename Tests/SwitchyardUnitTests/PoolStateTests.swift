import PropertyBased
import Switchyard
import Testing

/// The pool's rules, without a server: events in, actions out.
@Suite struct PoolStateTests {
    typealias Action = PoolState.Action

    @Test func opensUpToTheLimitThenQueuesWaitersFirstInFirstOut() {
        var pool = PoolState(maxConnections: 2)
        #expect(pool.checkout(1) == [.open(for: 1)])
        #expect(pool.connected(10, for: 1) == [.lease(10, to: 1)])
        #expect(pool.checkout(2) == [.open(for: 2)])
        #expect(pool.connected(11, for: 2) == [.lease(11, to: 2)])
        #expect(pool.checkout(3) == [.wait(3)])
        #expect(pool.checkout(4) == [.wait(4)])
        #expect(pool.openCount == 2)
        // Returned connections go to the waiters in arrival order.
        #expect(pool.release(11, health: .idle) == [.lease(11, to: 3)])
        #expect(pool.release(10, health: .idle) == [.lease(10, to: 4)])
        #expect(pool.waiters.isEmpty)
        // With nobody waiting, a returned connection is idle and reused next.
        #expect(pool.release(10, health: .idle) == [])
        #expect(pool.checkout(5) == [.lease(10, to: 5)])
    }

    @Test func checkoutWithoutWaitingNeverQueues() {
        var pool = PoolState(maxConnections: 1)
        #expect(pool.checkoutWithoutWaiting(1) == .open(for: 1))
        #expect(pool.connected(10, for: 1) == [.lease(10, to: 1)])
        // Full: nothing changes, nobody is queued.
        let before = pool
        #expect(pool.checkoutWithoutWaiting(2) == nil)
        #expect(pool.waiters.isEmpty)
        #expect(pool.openCount == before.openCount && pool.idle == before.idle)
        _ = pool.release(10, health: .idle)
        #expect(pool.checkoutWithoutWaiting(3) == .lease(10, to: 3))
        _ = pool.close()
        #expect(pool.checkoutWithoutWaiting(4) == .fail(4, .closed))
    }

    @Test func aTimeoutFailsOnlyAWaiterStillWaiting() {
        var pool = PoolState(maxConnections: 1)
        _ = pool.checkout(1)
        _ = pool.connected(10, for: 1)
        // A timer for a waiter the machine never queued (fired before registration, or
        // for a waiter already served) changes nothing.
        #expect(pool.timeout(2) == [])
        #expect(pool.checkout(2) == [.wait(2)])
        #expect(pool.timeout(2) == [.fail(2, .timeout)])
        #expect(pool.waiters.isEmpty)
        // Served before its timer fired: the late timer is ignored.
        #expect(pool.checkout(3) == [.wait(3)])
        #expect(pool.release(10, health: .idle) == [.lease(10, to: 3)])
        #expect(pool.timeout(3) == [])
    }

    @Test func cancelledWaitersLeaveTheQueue() {
        var pool = PoolState(maxConnections: 1)
        _ = pool.checkout(1)
        _ = pool.connected(10, for: 1)
        _ = pool.checkout(2)
        _ = pool.checkout(3)
        #expect(pool.cancel(2) == [.fail(2, .cancelled)])
        #expect(pool.cancel(2) == [])
        #expect(pool.release(10, health: .idle) == [.lease(10, to: 3)])
    }

    @Test func brokenConnectionsAreClosedAndTheirSlotGoesToTheFirstWaiter() {
        var pool = PoolState(maxConnections: 1)
        _ = pool.checkout(1)
        _ = pool.connected(10, for: 1)
        _ = pool.checkout(2)
        #expect(pool.release(10, health: .broken) == [.close(10), .open(for: 2)])
        #expect(pool.openCount == 1)
        #expect(pool.connected(11, for: 2) == [.lease(11, to: 2)])
    }

    @Test func connectionsReturnedInsideATransactionAreNeverHandedOutAgain() {
        var pool = PoolState(maxConnections: 2)
        _ = pool.checkout(1)
        _ = pool.connected(10, for: 1)
        #expect(pool.release(10, health: .inTransaction) == [.close(10)])
        #expect(pool.idle.isEmpty)
        #expect(pool.openCount == 0)
        #expect(pool.checkout(2) == [.open(for: 2)])
    }

    @Test func aDeadIdleConnectionFoundOnLeaseIsDiscarded() {
        var pool = PoolState(maxConnections: 1)
        _ = pool.checkout(1)
        _ = pool.connected(10, for: 1)
        _ = pool.release(10, health: .idle)
        #expect(pool.checkout(2) == [.lease(10, to: 2)])
        _ = pool.checkout(3)
        #expect(pool.discard(10) == [.close(10), .open(for: 3)])
    }

    @Test func aFailedConnectFreesTheSlotForTheNextWaiter() {
        var pool = PoolState(maxConnections: 1)
        #expect(pool.checkout(1) == [.open(for: 1)])
        #expect(pool.checkout(2) == [.wait(2)])
        #expect(pool.connectFailed() == [.open(for: 2)])
        #expect(pool.openCount == 1)
    }

    @Test func closeFailsWaitersClosesIdleAndLaterReturns() {
        var pool = PoolState(maxConnections: 2)
        _ = pool.checkout(1)
        _ = pool.connected(10, for: 1)
        _ = pool.checkout(2)
        _ = pool.connected(11, for: 2)
        _ = pool.release(11, health: .idle)
        _ = pool.checkout(3)
        _ = pool.checkout(4)
        let actions = pool.close()
        #expect(actions.contains(.fail(4, .closed)))
        #expect(!actions.contains(.fail(3, .closed)), "waiter 3 got the idle connection 11")
        #expect(pool.release(10, health: .idle) == [.close(10)])
        #expect(pool.checkout(5) == [.fail(5, .closed)])
        #expect(pool.close() == [])
        // A connection that finishes opening after close is closed, its waiter failed.
        var opening = PoolState(maxConnections: 1)
        _ = opening.checkout(1)
        _ = opening.close()
        #expect(opening.connected(10, for: 1) == [.close(10), .fail(1, .closed)])
    }

    /// Random event sequences: the limit holds, every waiter ends exactly once (served,
    /// failed or still queued), and no connection is leased twice.
    @Test func randomEventSequencesKeepTheInvariants() async {
        let events = Gen.int(in: 0...7).array(of: 1...200)
        await propertyCheck(count: 1000, input: Gen.int(in: 1...4), events) { limit, script in
            var pool = PoolState(maxConnections: limit)
            var nextWaiter: UInt64 = 0
            var nextConnection = 0
            var opening: [UInt64] = []  // waiters whose connection is being opened
            var holding: [Int] = []  // connections leased out
            var queued: [UInt64] = []
            var ended: Set<UInt64> = []
            func apply(_ actions: [Action]) {
                for action in actions {
                    switch action {
                    case .lease(let connection, let waiter):
                        #expect(!holding.contains(connection), "connection \(connection) leased twice")
                        #expect(ended.insert(waiter).inserted, "waiter \(waiter) served twice")
                        queued.removeAll { $0 == waiter }
                        holding.append(connection)
                    case .open(let waiter):
                        queued.removeAll { $0 == waiter }
                        opening.append(waiter)
                    case .wait(let waiter):
                        queued.append(waiter)
                    case .fail(let waiter, _):
                        #expect(ended.insert(waiter).inserted, "waiter \(waiter) ended twice")
                        queued.removeAll { $0 == waiter }
                    case .close(let connection):
                        holding.removeAll { $0 == connection }
                    }
                }
            }
            for event in script {
                switch event {
                case 0, 1:
                    nextWaiter += 1
                    apply(pool.checkout(nextWaiter))
                case 2 where !opening.isEmpty:
                    nextConnection += 1
                    let waiter = opening.removeFirst()
                    apply(pool.connected(nextConnection, for: waiter))
                case 3 where !opening.isEmpty:
                    ended.insert(opening.removeFirst())
                    apply(pool.connectFailed())
                case 4 where !holding.isEmpty:
                    let connection = holding.removeFirst()
                    apply(pool.release(connection, health: [.idle, .inTransaction, .broken][connection % 3]))
                case 5 where !queued.isEmpty:
                    apply(pool.timeout(queued[0]))
                case 6 where !queued.isEmpty:
                    apply(pool.cancel(queued.last!))
                case 7 where script.count % 5 == 0:
                    apply(pool.close())
                default:
                    break
                }
                #expect(pool.openCount <= limit)
                #expect(pool.openCount >= 0)
                #expect(pool.waiters == queued)
                #expect(Set(pool.leased).isSubset(of: Set(holding)) || pool.isClosed)
                if !pool.isClosed && pool.openCount < limit { #expect(pool.waiters.isEmpty, "a waiter waits while a slot is free") }
            }
        }
    }
}
