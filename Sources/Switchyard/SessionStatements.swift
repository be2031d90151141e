/// Statements that leave state behind on the server session, and statements that open or
/// close a transaction (pure; property-tested).
///
/// Behind a pooler in transaction mode (PgBouncer's `pool_mode = transaction`) the server
/// session is lent for one transaction: a `SET`, a prepared statement, a `LISTEN` or a
/// session advisory lock would stay with whichever client borrows that session next, and
/// the next statement of ours may run on another one. The router refuses such
/// statements for transaction-pooled nodes, with what to do instead.
public enum SessionStatements {
    /// Why `sql` cannot go through a transaction pooler, or nil when it can.
    public static func poolerRefusal(_ sql: String) -> String? {
        let tokens = SQLTokens.words(sql)
        let words = tokens.map { $0.lowercased() }
        if let first = words.first {
            let second = words.count > 1 ? words[1] : ""
            switch first {
            case "set":
                if second == "local" || second == "transaction" || second == "constraints" { break }
                return "SET changes the server session, which a transaction pooler lends to other clients: use SET LOCAL inside a transaction"
            case "reset", "discard":
                return "\(first.uppercased()) acts on the server session, which a transaction pooler lends to other clients"
            case "listen", "unlisten":
                return "LISTEN needs a session of its own: a transaction pooler hands the next transaction to another one; connect straight to the server (monitor_conninfo) for notifications"
            case "load":
                return "LOAD changes the server session, which a transaction pooler lends to other clients"
            case "prepare" where second != "transaction", "deallocate":
                return "named prepared statements live on one server session: through a transaction pooler send the statement with parameters (it goes unnamed)"
            case "declare" where words.contains("hold"):
                return "a cursor WITH HOLD outlives its transaction on one server session: through a transaction pooler, use it inside one transaction, without HOLD"
            case "create":
                let temporary = words.prefix(4).contains("temp") || words.prefix(4).contains("temporary")
                if temporary, !joined(words).contains("on commit drop") {
                    return "a temporary table lives on one server session: through a transaction pooler, create it inside a transaction with ON COMMIT DROP"
                }
            default:
                break
            }
        }
        for (index, word) in words.enumerated() {
            switch word {
            case "pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock", "pg_try_advisory_lock_shared":
                return "\(word)() holds its lock for the server session, which a transaction pooler lends to other clients: use \(word.replacingOccurrences(of: "advisory_lock", with: "advisory_xact_lock"))() inside a transaction"
            case "set_config":
                // set_config(name, value, is_local): only a literal true keeps it in the transaction.
                if !isTrue(argument(2, ofCallAt: index, in: words)) {
                    return "set_config(…, false) changes the server session, which a transaction pooler lends to other clients: use set_config(name, value, true) inside a transaction"
                }
            default:
                break
            }
        }
        return nil
    }

    /// Whether `sql` begins, ends or prepares a transaction: these need one connection for
    /// the whole transaction, which `Cluster.transaction` gives and single statements do not.
    public static func controlsTransaction(_ sql: String) -> Bool {
        // On the hot path (every routed statement): the first word read in place, without
        // lexing or allocating, unless the statement opens with a comment or `prepare`.
        var word: UInt64 = 0
        var length = 0
        for byte in sql.utf8 {
            if length == 0 && (byte == 0x20 || (0x09...0x0D).contains(byte)) { continue }
            let lower = byte | 0x20
            guard (0x61...0x7A).contains(lower) else {
                // Anything but a letter first (a comment, punctuation), or a word that goes
                // on (digits, `_`, `$`, non-ASCII letters): the lexer decides.
                if length == 0 { return lexedControlsTransaction(sql) }
                if byte >= 0x80 || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "$") || (0x30...0x39).contains(byte) {
                    return lexedControlsTransaction(sql)
                }
                break
            }
            guard length < 12 else { return false }
            word = word << 5 | UInt64(lower - 0x60)
            length += 1
        }
        if controlWords.contains(word) { return true }
        return word == preparePacked && lexedControlsTransaction(sql)
    }

    /// Up to 12 lowercase ASCII letters in one integer, 5 bits each, as the scan above
    /// builds it.
    private static func packed(_ word: String) -> UInt64 {
        word.utf8.prefix(12).reduce(0) { $0 << 5 | UInt64($1 - 0x60) }
    }

    private static let controlWords: Set<UInt64> = Set(
        ["begin", "start", "commit", "end", "rollback", "abort", "savepoint", "release"].map(packed))
    private static let preparePacked = packed("prepare")

    static func lexedControlsTransaction(_ sql: String) -> Bool {
        // The first two words are near the start (a comment longer than this before them
        // is not worth lexing a huge statement for).
        let words = SQLTokens.words(String(sql.unicodeScalars.prefix(4096)), limit: 2).map { $0.lowercased() }
        switch words.first {
        case "begin", "start", "commit", "end", "rollback", "abort", "savepoint", "release": return true
        case "prepare": return words.count > 1 && words[1] == "transaction"
        default: return false
        }
    }

    private static func joined(_ words: [String]) -> String { words.joined(separator: " ") }

    /// Whether `sql` is a plain read that a replica can serve: it starts with `SELECT`,
    /// `WITH`, `VALUES`, `TABLE` or `SHOW`, and names no writing statement, row lock,
    /// `INTO` or sequence change anywhere (a data-modifying CTE, `SELECT … FOR UPDATE`,
    /// `SELECT … INTO`, `nextval()`). What this cannot see — a function that writes — a
    /// replica refuses. For statements whose kind the caller does not say (raw SQL
    /// through an ORM); anything else is a write.
    public static func isRead(_ sql: String) -> Bool {
        let words = SQLTokens.words(sql).map { $0.lowercased() }
        guard let first = words.first, ["select", "with", "values", "table", "show"].contains(first) else { return false }
        for (index, word) in words.enumerated() {
            switch word {
            case "insert", "update", "delete", "merge", "into", "nextval", "setval", "lock", "truncate", "copy", "call", "do",
                "pg_advisory_lock", "pg_advisory_xact_lock", "pg_try_advisory_lock", "pg_try_advisory_xact_lock", "set_config":
                return false
            case "share" where index > 0 && (words[index - 1] == "for" || words[index - 1] == "key"):
                return false
            default:
                continue
            }
        }
        return true
    }

    /// The tokens of argument `position` (from 0) of the call whose name is at `index`.
    static func argument(_ position: Int, ofCallAt index: Int, in words: [String]) -> [String] {
        guard index + 1 < words.count, words[index + 1] == "(" else { return [] }
        var depth = 0
        var current = 0
        var tokens: [String] = []
        for word in words[(index + 1)...] {
            switch word {
            case "(":
                depth += 1
                if depth == 1 { continue }
            case ")":
                depth -= 1
                if depth == 0 { return current == position ? tokens : [] }
            case "," where depth == 1:
                if current == position { return tokens }
                current += 1
                continue
            default:
                break
            }
            if current == position { tokens.append(word) }
        }
        return []
    }

    private static func isTrue(_ tokens: [String]) -> Bool {
        tokens.count == 1 && ["true", "'t'", "'true'", "'on'", "'yes'", "'1'"].contains(tokens[0])
    }
}

/// A small SQL lexer: words (identifiers and keywords), and string literals as one token
/// each, with comments, quoted identifiers' quotes and punctuation dropped — so "set"
/// inside a literal or a comment is never taken for the keyword.
package enum SQLTokens {
    /// The tokens of `sql` that matter for ``SessionStatements``: bare words, and
    /// literals kept with their quotes (`'t'`) so a literal never reads as a keyword. The
    /// commas and parentheses of a call become `,` `(` `)` tokens.
    ///
    /// With `exact`, quoted names keep their doubled quotes (`"a""b"`), literals are kept
    /// whole, and `.` `*` `;` are tokens too: enough to name a statement's target table.
    package static func words(_ sql: String, limit: Int = .max, exact: Bool = false) -> [String] {
        let scalars = Array(sql.unicodeScalars)
        var tokens: [String] = []
        var index = 0
        func peek(_ offset: Int) -> Unicode.Scalar? { index + offset < scalars.count ? scalars[index + offset] : nil }
        while index < scalars.count, tokens.count < limit {
            let scalar = scalars[index]
            if scalar == "-" && peek(1) == "-" {
                while index < scalars.count && scalars[index] != "\n" && scalars[index] != "\r" { index += 1 }
            } else if scalar == "/" && peek(1) == "*" {
                // Block comments nest in PostgreSQL.
                var depth = 0
                repeat {
                    if scalars[index] == "/" && peek(1) == "*" { depth += 1; index += 2 }
                    else if scalars[index] == "*" && peek(1) == "/" { depth -= 1; index += 2 }
                    else { index += 1 }
                } while depth > 0 && index < scalars.count
            } else if scalar == "'" || ((scalar == "e" || scalar == "E") && peek(1) == "'") {
                let escapes = scalar != "'"
                if escapes { index += 1 }
                var text = "'"
                index += 1
                while index < scalars.count {
                    let current = scalars[index]
                    if escapes && current == "\\" { index += 2; continue }
                    if current == "'" {
                        if peek(1) == "'" {
                            if exact || text.unicodeScalars.count <= 9 { text.unicodeScalars.append("'") }
                            index += 2
                            continue
                        }
                        index += 1
                        break
                    }
                    if exact || text.unicodeScalars.count <= 9 { text.unicodeScalars.append(current) }
                    index += 1
                }
                if exact {
                    tokens.append(text + "'")
                    continue
                }
                // Only short literals matter (`'t'`, `'on'`); a long one is kept as `'…'`, so a
                // megabyte value is never copied.
                tokens.append(text.unicodeScalars.count <= 8 ? text.lowercased() + "'" : "'…'")
            } else if scalar == "\"" {
                var text = ""
                index += 1
                while index < scalars.count {
                    if scalars[index] == "\"" {
                        if peek(1) == "\"" {
                            if exact { text += "\"\"" }
                            index += 2
                            continue
                        }
                        index += 1
                        break
                    }
                    // Names are at most 63 bytes to the server; more is never needed here.
                    if exact || text.unicodeScalars.count < 64 { text.unicodeScalars.append(scalars[index]) }
                    index += 1
                }
                // A quoted identifier is a name, never a keyword.
                tokens.append("\"" + text + "\"")
            } else if scalar == "$", let tagEnd = dollarTagEnd(scalars, from: index) {
                let tag = Array(scalars[index...tagEnd])
                index = tagEnd + 1
                while index < scalars.count {
                    if scalars[index] == "$", index + tag.count <= scalars.count, Array(scalars[index..<(index + tag.count)]) == tag {
                        index += tag.count
                        break
                    }
                    index += 1
                }
                tokens.append("'$'")
            } else if scalar.properties.isAlphabetic || scalar == "_" {
                var word = ""
                while index < scalars.count,
                    scalars[index].properties.isAlphabetic || scalars[index] == "_" || ("0"..."9").contains(scalars[index])
                        || scalars[index] == "$"
                {
                    word.unicodeScalars.append(scalars[index])
                    index += 1
                }
                tokens.append(word)
            } else if scalar == "," || scalar == "(" || scalar == ")" || (exact && (scalar == "." || scalar == "*" || scalar == ";")) {
                tokens.append(String(scalar))
                index += 1
            } else if scalar == "$" || ("0"..."9").contains(scalar) {
                // A parameter ($3) or a number: one token, never true.
                var word = ""
                repeat {
                    word.unicodeScalars.append(scalars[index])
                    index += 1
                } while index < scalars.count && (("0"..."9").contains(scalars[index]) || scalars[index] == ".")
                tokens.append(word)
            } else {
                index += 1
            }
        }
        return tokens
    }

    /// The index of the closing `$` of a dollar-quote tag starting at `start` (`$$`,
    /// `$tag$`), or nil when the `$` starts no tag (a parameter like `$1`).
    private static func dollarTagEnd(_ scalars: [Unicode.Scalar], from start: Int) -> Int? {
        var index = start + 1
        while index < scalars.count {
            let scalar = scalars[index]
            if scalar == "$" { return index }
            guard scalar.properties.isAlphabetic || scalar == "_" || (index > start + 1 && ("0"..."9").contains(scalar)) else { return nil }
            index += 1
        }
        return nil
    }
}
