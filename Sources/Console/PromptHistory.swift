import Foundation
import LocalCluster

/// The SQL prompt's statements across sessions: `$XDG_STATE_HOME/switchyard/sql_history`
/// (`~/.local/state/…` without it), one JSON string per line, newest last, created 0600 in
/// a 0700 directory — statements can carry data worth keeping private.
public struct PromptHistory: Sendable {
    public let path: String
    /// Entries kept; older ones are dropped when the file is written.
    public var limit = ConsoleState.promptHistoryLimit
    /// Longer statements are not kept (a pasted dump is not history).
    public static let longestKept = 64 << 10

    public init(path: String) { self.path = path }

    /// Where the history lives for this user.
    public static func standard(environment: [String: String] = ProcessInfo.processInfo.environment) -> PromptHistory {
        let base: String
        if let state = environment["XDG_STATE_HOME"], state.hasPrefix("/") {
            base = state
        } else {
            base = (environment["HOME"] ?? NSHomeDirectory()) + "/.local/state"
        }
        return PromptHistory(path: base + "/switchyard/sql_history")
    }

    /// The statements, oldest first; lines that are not JSON strings are skipped.
    public func load() -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        let decoder = JSONDecoder()
        return data.split(separator: UInt8(ascii: "\n")).compactMap { line in try? decoder.decode(String.self, from: Data(line)) }
            .suffix(limit).map { $0 }
    }

    /// Appends `statement` (a repeat of the newest is not added twice) and rewrites the file
    /// atomically, keeping the newest ``limit``. Throws with the path when it cannot.
    public func append(_ statement: String) throws {
        guard !statement.isEmpty, statement.utf8.count <= Self.longestKept else { return }
        var entries = load()
        if entries.last == statement { return }
        entries.append(statement)
        let directory = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let encoder = JSONEncoder()
        var data = Data()
        for entry in entries.suffix(limit) {
            data.append(try encoder.encode(entry))
            data.append(UInt8(ascii: "\n"))
        }
        try PrivateFile.write(data, to: path)
    }
}
