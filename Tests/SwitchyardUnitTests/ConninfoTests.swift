@testable import PostgresClient
import Testing

@Suite struct ConninfoTests {
    @Test func redactsPasswordInKeyValueForm() {
        let text = Conninfo.redacted("host=db.example port=5433 dbname=app user=alice password=hunter2")
        #expect(text.contains("host=db.example"))
        #expect(text.contains("port=5433"))
        #expect(text.contains("password=\(Conninfo.mask)"))
        #expect(!text.contains("hunter2"))
    }

    @Test func redactsPasswordInURI() {
        let text = Conninfo.redacted("postgresql://alice:p%40ss%20word@db.example:5433/app?sslmode=require")
        #expect(!text.contains("p%40ss"))
        #expect(!text.contains("p@ss word"))
        #expect(text.contains("user=alice"))
        #expect(text.contains("sslmode=require"))
        #expect(text.contains("password=\(Conninfo.mask)"))
    }

    @Test func unparseableStringIsNeverEchoed() {
        let text = Conninfo.redacted("host=x password='unterminated")
        #expect(text == "(invalid connection string)")
    }

    @Test func scrubRemovesSecretsFromMessages() {
        let conninfo = "postgresql://bob:t0p%2Fsecret@h/db"
        let message = "could not parse t0p%2Fsecret or t0p/secret"
        let scrubbed = Conninfo.scrub(message, conninfo: conninfo)
        #expect(!scrubbed.contains("t0p"))
        let keyValue = Conninfo.scrub("bad value near 'abc def'", conninfo: "password='abc def' host=x")
        #expect(!keyValue.contains("abc def") || !keyValue.contains("abc"))
        #expect(Conninfo.scrub("password=xyz!", conninfo: "password=xyz! host=h") == "password=\(Conninfo.mask)")
    }

    /// Found by the fuzzer (Tests/Fuzz/Crashes/conninfo): Foundation's search trapped on
    /// a URI whose password holds NUL; masking now compares bytes.
    @Test func aPasswordHoldingNULIsMaskedWithoutTrapping() {
        let text = Conninfo.redacted("postgres://:x\u{0}@")
        #expect(!text.isEmpty)
        let combining = "password=\u{301}secretvalue host=h"
        #expect(!Conninfo.scrub("near e\u{301}secretvalue", conninfo: combining).contains("secretvalue"),
                "a secret starting with a combining mark is found by its bytes")
        #expect("a\u{0}b\u{0}".replacingBytes(of: "\u{0}", with: "_") == "a_b_")
        #expect("cookie=".containsBytes("") && !"abc".containsBytes("abd"))
    }

    /// Found by the fuzzer (Tests/Fuzz/Crashes/conninfo, a 922-byte input that took
    /// minutes): each nested `dbname` was redacted and quoted again, doubling the
    /// backslashes per level. libpq expands `dbname` one level; so does the redaction.
    @Test func nestedConnectionStringsAreRedactedInLinearSpace() {
        func nested(_ levels: Int) -> String {
            var conninfo = "postgresql://u:deepsecret@h/db"
            for level in 0..<levels { conninfo = "postgresql://u:pw\(level)xyz@h/\(conninfo)" }
            return conninfo
        }
        // Within the limit: shown, one level expanded (each level was quoted again before).
        let seven = nested(7)
        let text = Conninfo.redacted(seven)
        #expect(text.utf8.count <= 2 * seven.utf8.count + 64, "\(seven.utf8.count) bytes in, \(text.utf8.count) out")
        #expect(!text.contains("xyz") && !text.contains("deepsecret"), "\(text)")
        #expect(text.contains("dbname=(a connection string, not shown)"), "libpq hands the second level to the server as a name: \(text)")
        // Beyond it: not a real connection string, and finding its secrets costs quadratic time.
        let deep = nested(24)
        #expect(Conninfo.redacted(deep) == Conninfo.tangled)
        #expect(Conninfo.scrub("failed: pw0xyz", conninfo: deep) == "(not shown: \(Conninfo.tangled))")
    }

    @Test func endpointNamesHostAndPort() {
        #expect(Conninfo.endpoint("host=10.1.2.3 port=6000") == "10.1.2.3:6000")
        #expect(Conninfo.endpoint("postgresql://u@h:7000/db") == "h:7000")
    }

    @Test func valuesAreQuotedWhenNeeded() {
        #expect(Conninfo.quoted("plain") == "plain")
        #expect(Conninfo.quoted("two words") == "'two words'")
        #expect(Conninfo.quoted("it's") == "'it\\'s'")
        #expect(Conninfo.quoted("") == "''")
    }
}

@Suite struct ErrorTextTests {
    @Test func errorDescriptionsNeverCarryTerminalControls() {
        let error = PostgresError(
            kind: .server, message: "bad \u{1B}[2Jvalue \u{202E}txt", sqlState: "22P02", detail: "row \u{9B}31m", node: "pg1")
        let text = error.description
        #expect(!text.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x9B || $0.value == 0x202E })
        #expect(text.contains("\nDETAIL: row ·31m"), "line breaks between parts stay")
        #expect(error.message.contains("\u{1B}"), "the raw message is kept for programs")
    }
}
