import Foundation
import Switchyard

/// The query log full screen (`Q`): the whole retained log, newest first, with filters, a
/// search in the SQL and one entry shown whole.
public struct QueryLogView: Sendable, Equatable {
    /// Where an entry is in the log whatever arrives after it: sources number their own
    /// entries.
    public struct EntryKey: Sendable, Equatable {
        public var source: String?
        public var pid: Int32?
        public var id: UInt64

        init(_ entry: QueryLogEntry) {
            source = entry.source
            pid = entry.pid
            id = entry.id
        }
    }

    /// The selected entry; nil follows the newest.
    public var selected: EntryKey?
    /// The entry on the first line of the list (nil: the newest).
    public var top: EntryKey?
    /// Showing the selected entry whole.
    public var detail = false
    /// `admin`, `public` (A, P) or nil.
    public var context: String?
    /// A source (``ConsoleState/localLogSource`` for this console) or nil (S).
    public var source: String?
    /// A node or nil (N).
    public var node: String?
    /// Only entries whose SQL contains this (case-insensitive); empty: all.
    public var search = ""
    /// The search being typed after `/`.
    public var searchInput: TextField?

    public init() {}

    /// The entries the filters keep, newest first.
    public func entries(_ log: [QueryLogEntry]) -> [QueryLogEntry] {
        let needle = search.lowercased()
        var kept: [QueryLogEntry] = []
        for entry in log.reversed() {
            if let context, entry.context != context { continue }
            if let source, (entry.source ?? ConsoleState.localLogSource) != source { continue }
            if let node, entry.node != node { continue }
            if !needle.isEmpty, !entry.sql.lowercased().contains(needle) { continue }
            kept.append(entry)
        }
        return kept
    }

    /// The selected entry's place in `entries` (0 when it is gone or none is chosen).
    func selectedIndex(_ entries: [QueryLogEntry]) -> Int {
        guard let selected else { return 0 }
        return entries.firstIndex { EntryKey($0) == selected } ?? 0
    }

    /// The first line shown, keeping the selection on screen.
    func topIndex(_ entries: [QueryLogEntry], rows: Int) -> Int {
        let selection = selectedIndex(entries)
        var first = top.flatMap { key in entries.firstIndex { EntryKey($0) == key } } ?? 0
        if selection < first { first = selection }
        if selection >= first + rows { first = selection - rows + 1 }
        return max(first, 0)
    }

    /// What the filters say, for the title.
    var filterLabel: String {
        var parts: [String] = []
        if let context { parts.append(context) }
        if let source { parts.append("source \(source)") }
        if let node { parts.append("node \(node)") }
        if !search.isEmpty { parts.append("SQL contains \"\(search)\"") }
        return parts.joined(separator: ", ")
    }

    /// Applies a command; false closes the view.
    mutating func handle(_ command: Command, key: Key, log: [QueryLogEntry], nodes: [String], sources: [String], rows: Int) -> Bool {
        if var input = searchInput {
            switch command {
            case .save:
                search = input.value ?? ""
                searchInput = nil
                selected = nil
                top = nil
            case .cancel:
                searchInput = nil
            default:
                _ = input.handle(key)
                searchInput = input
            }
            return true
        }
        let entries = entries(log)
        let selection = selectedIndex(entries)
        func select(_ index: Int) {
            guard !entries.isEmpty else { return }
            let index = min(max(index, 0), entries.count - 1)
            selected = index == 0 ? nil : EntryKey(entries[index])
            var first = topIndex(entries, rows: rows)
            if index < first { first = index }
            if index >= first + rows { first = index - rows + 1 }
            top = first == 0 ? nil : EntryKey(entries[first])
        }
        switch command {
        case .cancel:
            if detail { detail = false; return true }
            return false
        case .open:
            detail.toggle()
            if detail, !entries.isEmpty { selected = EntryKey(entries[selection]) }
        case .up: select(selection - 1)
        case .down: select(selection + 1)
        case .pageUp: select(selection - rows)
        case .pageDown: select(selection + rows)
        case .first: select(0)
        case .last: select(entries.count - 1)
        case .filter:
            searchInput = TextField(search)
        case .logAdminOnly: context = context == "admin" ? nil : "admin"
        case .logPublicOnly: context = context == "public" ? nil : "public"
        case .logNextSource: source = Self.next(after: source, in: sources)
        case .logNextNode: node = Self.next(after: node, in: nodes)
        default: break
        }
        return true
    }

    /// The first choice, then each in turn, then nil (all).
    static func next(after current: String?, in choices: [String]) -> String? {
        guard let current, let index = choices.firstIndex(of: current) else { return choices.first }
        return index + 1 < choices.count ? choices[index + 1] : nil
    }
}

extension QueryLogEntry {
    /// The entry whole, for the detail view: one (label, text) per field.
    var detailFields: [(String, String)] {
        var fields: [(String, String)] = [
            ("time", time.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))),
            ("source", (source ?? ConsoleState.localLogSource) + (pid.map { " (pid \($0))" } ?? "") + (file.map { ", from \($0)" } ?? "")),
            ("context", context ?? "none"),
            ("operation", operation.rawValue),
            ("node", node),
            ("reason", reason + (code.map { "  [\($0)]" } ?? "")),
        ]
        switch code {
        case "guarded":
            fields.append(("guard", "a replay guard ran on \(node) with the read: it had replayed the token, so it served it"))
        case "guard-fb":
            fields.append(("guard", "a replay guard ran on the replica with the read and found it behind the token; "
                           + "the primary (\(node)) served it instead"))
        default: break
        }
        if tokenBefore != nil || tokenAfter != nil {
            fields.append(("token", "before \(tokenBefore ?? "none"), after \(tokenAfter ?? "none")"))
        }
        fields.append(("duration", formatMilliseconds(durationMs)))
        fields.append(("rows", rows.map(String.init) ?? "-"))
        if let error { fields.append(("error", error)) }
        return fields
    }
}
