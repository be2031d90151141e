import Foundation
import PatroniREST
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A change sent to Patroni is sent once.
@Suite struct PatroniPostTests {
    /// A loopback HTTP listener that counts requests and answers each with `answer`, or
    /// never answers (`nil`: it reads the request and holds the connection).
    final class Listener: Sendable {
        let port: Int
        let requests = Atomic<Int>(0)
        private let socket: Int32

        init(answer: String?) throws {
            let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            self.socket = socket
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, length) }
            }
            guard bound == 0, listen(socket, 8) == 0 else { throw POSIXError(.EADDRINUSE) }
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) }
            }
            port = Int(UInt16(bigEndian: address.sin_port))
            Thread { [self] in
                while true {
                    let client = accept(socket, nil, nil)
                    guard client >= 0 else { return }
                    var buffer = [UInt8](repeating: 0, count: 4096)
                    _ = read(client, &buffer, buffer.count)
                    self.requests.add(1, ordering: .relaxed)
                    if let answer {
                        let bytes = Array("HTTP/1.1 \(answer)\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8)
                        _ = write(client, bytes, bytes.count)
                        close(client)
                    }
                }
            }.start()
        }

        var url: URL { URL(string: "http://127.0.0.1:\(port)")! }

        func stop() { shutdown(socket, Int32(SHUT_RDWR)); close(socket) }
    }

    /// A port nothing listens on.
    func closedPort() throws -> URL {
        let listener = try Listener(answer: nil)
        listener.stop()
        return URL(string: "http://127.0.0.1:\(listener.port)")!
    }

    @Test func aSwitchoverWithoutAnAnswerIsNotSentToTheNextMember() async throws {
        let silent = try Listener(answer: nil)
        let refusing = try Listener(answer: "412 Precondition Failed")
        defer { silent.stop(); refusing.stop() }
        let client = PatroniClient(endpoints: [silent.url, refusing.url], changeTimeout: .seconds(1))
        let error = await #expect(throws: PatroniError.self) { try await client.switchover(leader: "pg1", candidate: "pg2") }
        // Before: the timeout counted as "unreachable", the POST went to the next member,
        // and its 412 (the switchover had happened) was reported as Patroni refusing.
        #expect(error?.kind == .noAnswer)
        #expect(error?.message.contains("no answer") == true)
        #expect(silent.requests.load(ordering: .relaxed) == 1)
        #expect(refusing.requests.load(ordering: .relaxed) == 0, "the switchover was sent twice")
    }

    @Test func aMemberThatCannotBeReachedIsSkipped() async throws {
        let refusing = try Listener(answer: "412 Precondition Failed")
        defer { refusing.stop() }
        let client = PatroniClient(endpoints: [try closedPort(), refusing.url], changeTimeout: .seconds(5))
        let error = await #expect(throws: PatroniError.self) { try await client.failover(candidate: "pg2") }
        #expect(error?.kind == .refused(status: 412))
        #expect(refusing.requests.load(ordering: .relaxed) == 1)
    }
}
