import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Whether a TCP port on 127.0.0.1 can be bound right now.
public enum PortCheck {
    public static func isFree(_ port: Int, host: String = "127.0.0.1") -> Bool {
        guard (1...65535).contains(port) else { return false }
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var reuse: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &address.sin_addr)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return bound == 0
    }

    /// A base port `p` such that `p ..< p + count` are all free, chosen at random in
    /// `range`; for tests and throw-away clusters.
    public static func freeRange(count: Int, in range: ClosedRange<Int> = 20000...60000) -> Int? {
        for _ in 0..<200 {
            let base = Int.random(in: range.lowerBound...(range.upperBound - count))
            if (base..<(base + count)).allSatisfy({ isFree($0) }) { return base }
        }
        return nil
    }
}
