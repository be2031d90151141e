import Foundation
import LocalCluster
import Testing

/// `switchyard install`: the executable itself, its manual page and its completions.
@Suite struct InstallTests {
    @Test func installPutsTheBinaryTheManualAndTheCompletionsInPlace() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("install-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let prefix = root.appendingPathComponent("prefix").path
        let executable = try CommandLineTests.executable.path

        // No manual page found from a folder without the plugin's output: refused, nothing said twice.
        let refused = try await ChildProcess.run([executable, "install", "--prefix", prefix], workingDirectory: root.path)
        #expect(refused.status != 0)
        #expect(refused.output.contains("swift package generate-manual"))

        let manual = root.appendingPathComponent("switchyard.1")
        try Data(".Dd December 5, 2026\n.Dt SWITCHYARD 1\n.Sh NAME\n.Nm switchyard\n".utf8).write(to: manual)
        let done = try await ChildProcess.run(
            [executable, "install", "--prefix", prefix, "--manual", manual.path], workingDirectory: root.path)
        #expect(done.status == 0, "\(done.output)")
        func attributes(_ path: String) throws -> (size: Int, mode: Int) {
            let found = try FileManager.default.attributesOfItem(atPath: prefix + "/" + path)
            return ((found[.size] as? NSNumber)?.intValue ?? 0, (found[.posixPermissions] as? NSNumber)?.intValue ?? 0)
        }
        #expect(try attributes("bin/switchyard").mode == 0o755)
        #expect(try attributes("bin/switchyard").size == (try FileManager.default.attributesOfItem(atPath: executable)[.size] as? NSNumber)?.intValue)
        #expect(try Data(contentsOf: URL(fileURLWithPath: prefix + "/share/man/man1/switchyard.1")) == Data(contentsOf: manual))
        let version = try await ChildProcess.run([prefix + "/bin/switchyard", "--version"])
        #expect(version.status == 0 && !version.output.isEmpty)

        let bash = prefix + "/share/bash-completion/completions/switchyard"
        let zsh = try String(contentsOfFile: prefix + "/share/zsh/site-functions/_switchyard", encoding: .utf8)
        let fish = try String(contentsOfFile: prefix + "/share/fish/vendor_completions.d/switchyard.fish", encoding: .utf8)
        #expect(try attributes("share/bash-completion/completions/switchyard").mode == 0o644)
        #expect(try await ChildProcess.run(["/bin/bash", "-n", bash]).status == 0, "the bash completion does not parse")
        #expect(try String(contentsOfFile: bash, encoding: .utf8).contains("storefront"))
        #expect(zsh.hasPrefix("#compdef switchyard") && zsh.contains("console"))
        #expect(fish.contains("complete -c 'switchyard'") && fish.contains("lag"))
        // Nothing but the installed files (no leftovers beside them).
        let leftovers = FileManager.default.enumerator(atPath: prefix)?.allObjects.compactMap { $0 as? String }.filter { $0.contains(".tmp") || $0.contains(".switchyard-") } ?? []
        #expect(leftovers.isEmpty)

        // A prefix that cannot be written names itself.
        let blocked = root.appendingPathComponent("file-not-folder")
        try Data("x".utf8).write(to: blocked)
        let failed = try await ChildProcess.run([executable, "install", "--prefix", blocked.path, "--without-manual"])
        #expect(failed.status != 0 && failed.output.contains(blocked.path), "\(failed.output)")
    }
}
