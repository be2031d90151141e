import Foundation
import LocalCluster

#if canImport(Glibc)
import Glibc
#endif

/// Edits a value in the user's editor: `$VISUAL`, else `$EDITOR`, else `vi`, given a
/// private temporary file (0600, removed afterwards). Runs on the console's UI thread,
/// with the terminal lent to the editor.
enum ExternalEditor {
    static func edit(_ text: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> ConsoleEvent {
        let editor = [environment["VISUAL"], environment["EDITOR"]].compactMap { $0 }.first { !$0.isEmpty } ?? "vi"
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-value-\(UUID().uuidString).txt").path
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            return .externallyEdited(nil, problem: "cannot create a file for the editor: \(String(cString: strerror(errno)))")
        }
        defer { unlink(path) }
        let original = text ?? ""
        let written = Data(original.utf8).withUnsafeBytes { raw in raw.isEmpty ? 0 : Glibc.write(descriptor, raw.baseAddress, raw.count) }
        close(descriptor)
        guard written == original.utf8.count else {
            return .externallyEdited(nil, problem: "cannot write the file for the editor: \(String(cString: strerror(errno)))")
        }
        // `sh -c` so that an editor given with arguments (`code --wait`) works as in git.
        let status = wait { try await ChildProcess.runAttached(["/bin/sh", "-c", "\(editor) \"$1\"", "switchyard-editor", path]) }
        guard let status else { return .externallyEdited(nil, problem: "cannot run the editor \(editor)") }
        guard status == 0 else { return .externallyEdited(nil, problem: "the editor \(editor) exited with status \(status): value unchanged") }
        guard let data = FileManager.default.contents(atPath: path), var edited = String(data: data, encoding: .utf8) else {
            return .externallyEdited(nil, problem: "the edited file is not UTF-8 text: value unchanged")
        }
        // Editors add a final newline; keep the value's own ending.
        if edited.hasSuffix("\n") && !original.hasSuffix("\n") { edited.removeLast() }
        return .externallyEdited(edited, problem: nil)
    }

    /// Waits on this (non-cooperative) thread for `body` to finish.
    private static func wait<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) -> T? {
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox<T>()
        Task {
            box.value = try? await body()
            done.signal()
        }
        done.wait()
        return box.value
    }

    private final class ResultBox<T>: @unchecked Sendable {
        var value: T?
    }
}
