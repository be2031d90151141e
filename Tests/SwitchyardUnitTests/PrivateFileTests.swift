import Foundation
import LocalCluster
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Files that may hold secrets: private from their first byte, never through a planted file.
@Suite struct PrivateFileTests {
    func mode(_ path: String) -> Int? {
        (try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int).map { $0 & 0o777 }
    }

    @Test func aPlantedFileOrLinkIsNeverUsedAndNewFilesArePrivate() throws {
        let directory = try PrivateFile.makeDirectory(prefix: "sy-private-test")
        defer { try? FileManager.default.removeItem(at: directory) }
        #expect(mode(directory.path) == 0o700)
        let planted = directory.appendingPathComponent("script.lua").path
        try Data("os.execute('touch /tmp/owned')".utf8).write(to: URL(fileURLWithPath: planted))
        #expect(throws: LocalClusterError.self) { try PrivateFile.create(Data("mine".utf8), at: planted) }
        #expect(try String(contentsOfFile: planted, encoding: .utf8).hasPrefix("os.execute"), "the planted file was changed")

        let target = directory.appendingPathComponent("elsewhere").path
        let link = directory.appendingPathComponent("link").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        #expect(throws: LocalClusterError.self) { try PrivateFile.create(Data("mine".utf8), at: link) }
        #expect(!FileManager.default.fileExists(atPath: target), "created through a link")

        // `write` replaces a link with a private file; the link's target is untouched.
        try Data("theirs".utf8).write(to: URL(fileURLWithPath: target))
        try PrivateFile.write(Data("secret".utf8), to: link)
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "theirs")
        #expect(try String(contentsOfFile: link, encoding: .utf8) == "secret")
        #expect(mode(link) == 0o600)
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: link)) == nil, "still a link")
        let fresh = directory.appendingPathComponent("fresh").path
        try PrivateFile.create(Data("x".utf8), at: fresh)
        #expect(mode(fresh) == 0o600)
        // Nothing left beside the files.
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted() == ["elsewhere", "fresh", "link", "script.lua"])
    }

    @Test func aSecretFileIsNeverReadableByOthersEvenWhileWritten() throws {
        let directory = try PrivateFile.makeDirectory(prefix: "sy-private-test")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("pgpass").path
        // A permissive umask: the old write-then-chmod left a window at 0644.
        let previous = umask(0)
        defer { umask(previous) }
        try PrivateFile.write(Data(String(repeating: "x", count: 1 << 20).utf8), to: path)
        #expect(mode(path) == 0o600)
    }
}
