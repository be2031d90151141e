import Console
import Foundation
import PatroniREST
import PostgresClient
import Switchyard

/// Every parser and decoder that reads outside input, as a function of bytes: what the
/// fuzzer (`switchyard-fuzz`) runs and what the regression tests replay its corpus through.
/// Each returns normally for any input — an answer or a refusal; a broken invariant stops
/// the process (`preconditionFailure`), which the fuzzer reports as a crash.
public enum FuzzTargets {
    public static let all: [String: @Sendable (Data) -> Void] = [
        "conninfo": conninfo, "token": token, "cookie": cookie, "sql": sql, "jsonl": jsonl, "config": config, "theme": theme,
        "patroni": patroni,
    ]

    public static var names: [String] { all.keys.sorted() }

    static func text(_ data: Data) -> String { String(decoding: data, as: UTF8.self) }

    /// Connection strings and URIs: parsing, redaction, the endpoint shown, the service file.
    static func conninfo(_ data: Data) {
        let text = text(data)
        let pairs = Conninfo.parse(text)
        let redacted = Conninfo.redacted(text)
        _ = Conninfo.endpoint(text)
        if let pairs {
            for pair in pairs where pair.key == "password" && pair.value.count >= 6 && !redacted.contains(Conninfo.mask) {
                check(!redacted.contains(pair.value), "the password is in the redacted form of \(text.debugDescription)")
            }
        }
        if let file = Conninfo.serviceFile(text, name: "fuzz") {
            check(file.hasPrefix("[fuzz]\n") && file.hasSuffix("\n"), "a service file without its section: \(file.debugDescription)")
        }
    }

    /// The read-your-writes token: what parses prints back the same.
    static func token(_ data: Data) {
        let text = text(data)
        if let token = ConsistencyToken(text) { check(ConsistencyToken(token.description) == token, "\(text.debugDescription) does not round-trip") }
        if let lsn = LSN(text) { check(LSN(lsn.description) == lsn, "LSN \(text.debugDescription) does not round-trip") }
    }

    /// `Cookie` headers (one a line): every value found is a substring of its header.
    static func cookie(_ data: Data) {
        let headers = text(data).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for name in ["switchyard_token", headers.first ?? ""] where HTTPRouting.isValidCookieName(name) {
            for value in HTTPRouting.cookieValues(named: name, in: headers) {
                check(headers.contains { $0.containsBytes(value) }, "cookie value \(value.debugDescription) is in no header")
                _ = ConsistencyToken(value)
            }
        }
    }

    /// The lexer behind the pooler's refusals and the transaction tracking.
    static func sql(_ data: Data) {
        let text = text(data)
        let words = SQLTokens.words(text)
        check(SQLTokens.words(text, limit: 3) == Array(words.prefix(3)), "a limit changes the first words of \(text.debugDescription)")
        let exact = SQLTokens.words(text, exact: true)
        check(exact.filter { ![".", "*", ";"].contains($0) }.count == words.count, "exact lexing splits \(text.debugDescription) otherwise")
        _ = SessionStatements.poolerRefusal(text)
        _ = SessionStatements.controlsTransaction(text)
    }

    /// Followed query-log lines, fed in two pieces at every split point of the first 64 bytes.
    static func jsonl(_ data: Data) {
        let decoder = JSONDecoder()
        var whole = LineAssembler(maxLineBytes: 4096)
        let lines = whole.feed(data) + whole.feed([0x0A])
        for line in lines { _ = try? decoder.decode(QueryLogEntry.self, from: line) }
        for split in stride(from: 0, through: min(data.count, 64), by: 7) {
            var pieces = LineAssembler(maxLineBytes: 4096)
            let again = pieces.feed(data.prefix(split)) + pieces.feed(data.dropFirst(split)) + pieces.feed([0x0A])
            check(again == lines, "lines depend on how the bytes arrive")
        }
    }

    /// `switchyard.toml`: a configuration or an error that names the file.
    static func config(_ data: Data) {
        parsesOrNamesTheFile("fuzz.toml") { _ = try ClusterConfiguration.parse(text(data), file: $0) }
    }

    /// Theme files: a theme or an error that names the file.
    static func theme(_ data: Data) {
        parsesOrNamesTheFile("fuzz-theme.toml") { _ = try Theme.parse(text(data), file: $0) }
    }

    static func parsesOrNamesTheFile(_ file: String, _ parse: (String) throws -> Void) {
        do {
            try parse(file)
        } catch let error as ConfigurationError {
            check(error.description.contains(file), "an error that does not name the file: \(error)")
        } catch {
            preconditionFailure("not a ConfigurationError: \(error)")
        }
    }

    /// Patroni's REST answers.
    static func patroni(_ data: Data) {
        let decoder = JSONDecoder()
        _ = try? decoder.decode(PatroniClusterStatus.self, from: data)
        _ = try? decoder.decode(PatroniMemberStatus.self, from: data)
        _ = try? decoder.decode(PatroniDynamicConfiguration.self, from: data)
        _ = try? PatroniHistoryEntry.decodeList(data, from: URL(string: "http://fuzz:8008")!)
    }

    static func check(_ condition: Bool, _ message: @autoclosure () -> String) {
        if !condition { preconditionFailure(message()) }
    }
}
