import Foundation
import PostgresClient
import Switchyard
import SwitchyardTestSupport
import Testing

extension ClusterTests {
    /// The pool performing its state machine's actions against a real primary.
    @Suite struct PoolTests {
        func pool(max: Int = 1, timeout: Duration = .seconds(5)) throws -> ConnectionPool {
            ConnectionPool(node: "pg1", conninfo: try TestCluster.shared().conninfo("pg1"), maxConnections: max, checkoutTimeout: timeout)
        }

        @Test func aOneMillisecondCheckoutTimeoutIsNeverLost() async throws {
            let pool = try pool(max: 1, timeout: .milliseconds(1))
            let clock = ContinuousClock()
            try await pool.withConnection { _ in
                for _ in 0..<20 {
                    let started = clock.now
                    await #expect(throws: PostgresError.self) { try await pool.withConnection { _ in 1 } }
                    #expect(clock.now - started < .seconds(2), "the timeout fired late or never")
                }
            }
            #expect(try await pool.withConnection { try await $0.query("select 1").scalar(Int.self) } == 1)
            await pool.close()
        }

        @Test func aConnectionReturnedInsideATransactionIsDiscarded() async throws {
            let pool = try pool(max: 1)
            let first = try await pool.withConnection { connection -> Int in
                _ = try await connection.query("begin")
                return try await connection.query("select pg_backend_pid()").scalar(Int.self) ?? 0
            }
            try await pool.withConnection { connection in
                _ = try await connection.query("begin")
                _ = try? await connection.query("select 1/0")
                #expect(connection.transactionState == .failed)
            }
            let next = try await pool.withConnection { connection -> Int in
                #expect(connection.transactionState == .idle)
                return try await connection.query("select pg_backend_pid()").scalar(Int.self) ?? 0
            }
            #expect(first != next, "the connection left inside a transaction was handed out again")
            // The discarded session is gone from the server: no lingering open transaction.
            let gone = await TestCluster.eventually(timeout: .seconds(5)) {
                let count = try? await TestCluster.shared().withConnection("pg1") {
                    try await $0.query("select count(*)::int from pg_stat_activity where pid = $1", [first]).scalar(Int.self)
                }
                return count == 0
            }
            #expect(gone)
            await pool.close()
        }

        @Test func aCancelledWaiterLeavesTheQueueAndTheNextOneIsServed() async throws {
            let pool = try pool(max: 1, timeout: .seconds(30))
            let clock = ContinuousClock()
            try await pool.withConnection { _ in
                let waiter = Task { try await pool.withConnection { _ in 1 } }
                try await Task.sleep(for: .milliseconds(50))
                let started = clock.now
                waiter.cancel()
                await #expect(throws: CancellationError.self) { try await waiter.value }
                #expect(clock.now - started < .seconds(1))
            }
            #expect(try await pool.withConnection { try await $0.query("select 2").scalar(Int.self) } == 2)
            #expect(pool.openCount == 1)
            await pool.close()
        }
    }
}
