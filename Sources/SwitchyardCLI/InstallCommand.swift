import ArgumentParser
import Foundation
import LocalCluster

#if canImport(Glibc)
import Glibc
#endif

/// Installs this very binary, its manual page and its shell completions under a prefix.
struct InstallCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "install",
        abstract: "Install this binary, its manual page and bash, zsh and fish completions under a prefix.",
        discussion: """
            Copies the running executable to PREFIX/bin/switchyard, the manual page made by \
            swift-argument-parser's manual plugin (`swift package generate-manual`) to \
            PREFIX/share/man/man1, and the completion scripts this binary writes to \
            PREFIX/share/bash-completion/completions/switchyard, \
            PREFIX/share/zsh/site-functions/_switchyard and \
            PREFIX/share/fish/vendor_completions.d/switchyard.fish. Each file is written \
            beside its place and renamed over it, so a running switchyard is never half \
            replaced. Build the binary with --static-swift-stdlib to need only libpq and \
            ncurses where it runs.
            """)

    @Option(help: "Where to install (bin/ and share/ below it).") var prefix = "/usr/local"
    @Option(
        help: ArgumentHelp(
            "The manual page (default: what `swift package generate-manual` left under .build/plugins/GenerateManual).",
            valueName: "file"))
    var manual: String?
    @Flag(help: "Install without a manual page when none is found.") var withoutManual = false

    func run() throws {
        let executable = try Self.runningExecutable()
        let prefix = URL(fileURLWithPath: prefix)
        var installed: [String] = []
        installed.append(try Self.place(contentsOf: executable, at: prefix.appendingPathComponent("bin/switchyard"), mode: 0o755))
        let manualPage = try manualPage()
        if let manualPage {
            installed.append(try Self.place(contentsOf: manualPage, at: prefix.appendingPathComponent("share/man/man1/switchyard.1"), mode: 0o644))
        }
        for (shell, path) in [
            (CompletionShell.bash, "share/bash-completion/completions/switchyard"),
            (CompletionShell.zsh, "share/zsh/site-functions/_switchyard"), (CompletionShell.fish, "share/fish/vendor_completions.d/switchyard.fish"),
        ] {
            let script = SwitchyardCommand.completionScript(for: shell)
            installed.append(try Self.place(Data(script.utf8), at: prefix.appendingPathComponent(path), mode: 0o644))
        }
        for path in installed { print("installed \(path)") }
        if manualPage == nil { print("no manual page installed (run `swift package generate-manual` first to have one)") }
    }

    /// The manual page to install: `--manual`, else the plugin's output found from the
    /// current directory; nil (with `--without-manual`) when there is none.
    func manualPage() throws -> URL? {
        if let manual {
            guard FileManager.default.isReadableFile(atPath: manual) else { throw UsageError("no manual page at \(manual)") }
            return URL(fileURLWithPath: manual)
        }
        let outputs = URL(fileURLWithPath: ".build/plugins/GenerateManual/outputs")
        let candidates = (FileManager.default.enumerator(at: outputs, includingPropertiesForKeys: nil)?.allObjects as? [URL] ?? [])
            .filter { $0.lastPathComponent == "switchyard.1" }
        if let found = candidates.first { return found }
        guard withoutManual else {
            throw UsageError(
                "no manual page under \(outputs.path): run `swift package generate-manual` in the package first, pass --manual FILE, or --without-manual")
        }
        return nil
    }

    /// The path of this process's executable.
    static func runningExecutable() throws -> URL {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        if length > 0 { return URL(fileURLWithPath: String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)) }
        guard let path = Bundle.main.executablePath else { throw UsageError("cannot tell where this executable is") }
        return URL(fileURLWithPath: path)
    }

    static func place(contentsOf source: URL, at target: URL, mode: mode_t) throws -> String {
        let data: Data
        do { data = try Data(contentsOf: source) } catch { throw UsageError("cannot read \(source.path): \((error as NSError).localizedDescription)") }
        return try place(data, at: target, mode: mode)
    }

    /// Writes `data` beside `target` with `mode` and renames it over `target`: a running
    /// switchyard keeps its old file, a reader never sees half of the new one.
    static func place(_ data: Data, at target: URL, mode: mode_t) throws -> String {
        do {
            try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
        } catch {
            throw UsageError("cannot install \(target.path): \((error as NSError).localizedDescription)")
        }
        do {
            try PrivateFile.write(data, to: target.path, mode: mode)
        } catch {
            throw UsageError("cannot install \(target.path): \(error)")
        }
        return target.path
    }
}
