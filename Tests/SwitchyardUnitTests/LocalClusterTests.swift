import CNCurses
import Foundation
import LocalCluster
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Local-cluster behaviour that is decided before any server starts.
@Suite struct LocalClusterTests {
    func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("sy-unit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test func missingBinariesNameThePackage() async throws {
        let empty = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: empty) }
        let error = await #expect(throws: LocalClusterError.self) {
            _ = try await PostgresBinaries.locate(environment: ["PATH": empty.path], searchRoot: empty.path)
        }
        #expect(error?.kind == .binariesNotFound)
        #expect(error?.message.contains("apt-get install postgresql") == true)
        let explicit = await #expect(throws: LocalClusterError.self) {
            _ = try await PostgresBinaries.locate(environment: ["PG_BINDIR": "/nonexistent/bin"])
        }
        #expect(explicit?.message.contains("PG_BINDIR=/nonexistent/bin") == true)
    }

    @Test func newestVersionFolderWins() async throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        for version in ["9.6", "15", "13"] {
            let bin = root.appendingPathComponent("\(version)/bin")
            try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
            for program in PostgresBinaries.required {
                let path = bin.appendingPathComponent(program).path
                _ = FileManager.default.createFile(atPath: path, contents: Data("#!/bin/sh\n".utf8), attributes: [.posixPermissions: 0o755])
            }
        }
        let found = try await PostgresBinaries.locate(environment: ["PATH": "/nonexistent"], searchRoot: root.path)
        #expect(found.directory.path.hasSuffix("/15/bin"))
    }

    @Test func portInUseIsNamed() async throws {
        // Hold a port with a listening socket.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Int32 in
                guard bind(fd, pointer, length) == 0 else { return -1 }
                return getsockname(fd, pointer, &length)
            }
        }
        #expect(bound == 0)
        #expect(listen(fd, 1) == 0)
        let port = Int(UInt16(bigEndian: address.sin_port))
        #expect(!PortCheck.isFree(port))

        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let cluster = LocalCluster(directory: directory.appendingPathComponent("c"))
        let error = await #expect(throws: LocalClusterError.self) {
            try await cluster.up(basePort: port, replicas: 1)
        }
        #expect(error?.kind == .portInUse)
        #expect(error?.message.contains("port \(port)") == true)
        #expect(error?.message.contains("pg1") == true)
        // Nothing was created for the refused cluster.
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("c/pg1").path))
    }

    @Test func unusableDirectoryIsNamed() async throws {
        let cluster = LocalCluster(directory: URL(fileURLWithPath: "/dev/null/cluster"))
        let free = try #require(PortCheck.freeRange(count: 2))
        let error = await #expect(throws: LocalClusterError.self) { try await cluster.up(basePort: free, replicas: 1) }
        #expect(error?.kind == .directoryNotUsable)
        #expect(error?.message.contains("/dev/null is not a directory") == true)
    }

    @Test func unknownNodeAndMissingClusterAreClear() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let cluster = LocalCluster(directory: directory)
        let missing = #expect(throws: LocalClusterError.self) { _ = try cluster.nodes() }
        #expect(missing?.kind == .noCluster)
        #expect(missing?.message.contains("switchyard cluster up") == true)

        let manifest = #"{"formatVersion":1,"database":"app","user":"postgres","host":"127.0.0.1","nodes":[{"name":"pg1","port":6000},{"name":"pg2","port":6001}]}"#
        try Data(manifest.utf8).write(to: directory.appendingPathComponent("cluster.json"))
        #expect(try cluster.nodes().map(\.name) == ["pg1", "pg2"])
        #expect(try cluster.conninfo(node: "pg2") == "host=127.0.0.1 port=6001 dbname=app user=postgres")
        let unknown = #expect(throws: LocalClusterError.self) { _ = try cluster.node(named: "pg9") }
        #expect(unknown?.kind == .unknownNode)
        #expect(unknown?.message.contains("pg1, pg2") == true)
    }

    @Test func defaultDirectoryFollowsXDG() {
        let url = LocalCluster.defaultDirectory(environment: ["XDG_STATE_HOME": "/srv/state", "HOME": "/home/u"])
        #expect(url.path == "/srv/state/switchyard/cluster")
    }

    @Test func ncursesIsLinked() {
        let version = String(cString: curses_version())
        #expect(version.hasPrefix("ncurses "))
    }
}
