import Switchyard

/// What the SQL prompt (`:`) makes of one statement before running it: how to run it, and
/// for a single-table write, which table and how to show its rows before and after.
public struct PromptStatement: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case empty
        /// SELECT, VALUES, TABLE, WITH …: streamed through a cursor, a page at a time.
        case query
        case explain(analyze: Bool)
        /// BEGIN, COMMIT, SAVEPOINT…: the prompt holds the transaction itself.
        case transactionControl
        /// Anything else: run in a transaction, held for a `y` when it wrote.
        case other
    }

    /// The table a single-table INSERT, UPDATE or DELETE writes, as written.
    public struct Target: Sendable, Equatable {
        public var action: ChangeAudit.Action
        /// The name as the statement spells it (`public."Order"`), for `::regclass`.
        public var table: String
        /// How the statement names the row: its alias, else the table's last name part.
        public var reference: String
    }

    /// The statement without surrounding blanks and trailing semicolons.
    public let text: String
    public let kind: Kind
    /// Set for an INSERT, UPDATE or DELETE without RETURNING and without a WITH of its own.
    public let target: Target?
    /// More than one statement was typed.
    public let multiple: Bool
    /// Values of `$1`, `$2`… (statements the console builds, e.g. bulk actions); typed
    /// statements have none.
    public var parameters: [String?] = []
    /// How the prompt shows the statement, when not as its text (a bulk action).
    public var label: String?

    public init(_ sql: String, parameters: [String?], label: String) {
        self.init(sql)
        self.parameters = parameters
        self.label = label
    }

    public init(_ sql: String) {
        var text = Substring(sql)
        while let last = text.last, last == ";" || last.isWhitespace { text.removeLast() }
        while let first = text.first, first.isWhitespace { text.removeFirst() }
        self.text = String(text)
        let tokens = SQLTokens.words(self.text, exact: true)
        multiple = tokens.contains(";")
        let words = tokens.map { $0.lowercased() }
        guard let first = words.first else {
            kind = .empty
            target = nil
            return
        }
        switch first {
        case "select", "values", "table", "with":
            kind = .query
        case "explain":
            kind = .explain(analyze: Self.explainAnalyzes(Array(words.dropFirst())))
        default:
            kind = SessionStatements.controlsTransaction(self.text) || ["commit", "end", "abort", "rollback", "release"].contains(first)
                ? .transactionControl : .other
        }
        target = kind == .other && !multiple && !words.contains("returning") ? Self.target(tokens, words) : nil
    }

    /// Whether the words after EXPLAIN ask it to execute the statement.
    static func explainAnalyzes(_ words: [String]) -> Bool {
        guard let first = words.first else { return false }
        if first == "analyze" || first == "analyse" { return true }
        guard first == "(" else { return false }
        var index = 1
        while index < words.count, words[index] != ")" {
            if words[index] == "analyze" || words[index] == "analyse" {
                let value = index + 1 < words.count ? words[index + 1] : ")"
                return !["false", "off", "0", "'false'", "'off'", "'0'"].contains(value)
            }
            index += 1
        }
        return false
    }

    /// The target of `INSERT INTO t`, `UPDATE [ONLY] t [AS a]`, `DELETE FROM [ONLY] t [AS a]`.
    static func target(_ tokens: [String], _ words: [String]) -> Target? {
        let action: ChangeAudit.Action
        var index: Int
        switch words.first {
        case "insert" where words.count > 1 && words[1] == "into": action = .insert; index = 2
        case "update": action = .update; index = 1
        case "delete" where words.count > 1 && words[1] == "from": action = .delete; index = 2
        default: return nil
        }
        if index < words.count, words[index] == "only", action != .insert { index += 1 }
        func isName(_ at: Int) -> Bool {
            guard at < tokens.count else { return false }
            let token = tokens[at]
            return token.hasPrefix("\"") || (token.first.map { $0.isLetter || $0 == "_" } ?? false)
        }
        guard isName(index) else { return nil }
        var parts = [tokens[index]]
        index += 1
        while index + 1 < tokens.count, tokens[index] == ".", isName(index + 1) {
            parts.append(tokens[index + 1])
            index += 2
        }
        guard parts.count <= 3 else { return nil }
        if index < tokens.count, tokens[index] == "*", action != .insert { index += 1 }
        var alias: String?
        let following: Set<String> = action == .insert ? [] : (action == .update ? ["set"] : ["using", "where"])
        if index < words.count, words[index] == "as", isName(index + 1) {
            alias = tokens[index + 1]
        } else if action != .insert, index < words.count, isName(index), !following.contains(words[index]) {
            alias = tokens[index]
        }
        return Target(action: action, table: parts.joined(separator: "."), reference: alias ?? parts.last!)
    }
}
