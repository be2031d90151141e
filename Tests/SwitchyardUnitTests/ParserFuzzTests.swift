@testable import Console
import PostgresClient
import PropertyBased
@testable import Switchyard
import Testing

/// Every parser of outside text, on generated input: an answer or an error, never a crash.
@Suite struct ParserFuzzTests {
    /// Text shaped like what each parser expects, with hostile characters mixed in.
    static let lsnLike = Gen.element(of: ["0/3000148", "FFFFFFFF/FFFFFFFF", "sy1:", "/", "1/", "{", "[", "=", "\"", "\n"])
        .map { $0! }.array(of: 0...6).map { $0.joined() }
    static let mixed = Gen<String>.frequency((1, NastyText.string), (1, Self.lsnLike))

    @Test func lsnsTokensConninfosAndSummariesNeverCrash() async {
        await propertyCheck(count: 2000, input: Self.mixed) { text in
            if let lsn = LSN(text) { #expect(LSN(lsn.description) == lsn, "an LSN does not round-trip: \(text.debugDescription)") }
            if let token = ConsistencyToken(text) { #expect(ConsistencyToken(token.description) == token) }
            _ = Conninfo.redacted(text)
            _ = Conninfo.endpoint(text)
            _ = LongValue.parse(text, columns: 5)
            _ = TerminalText.sanitized(text)
        }
    }

    @Test func configAndThemeFilesNeverCrash() async {
        let keys = Gen.element(of: ["[cluster]", "[[nodes]]", "[routing]", "[monitor]", "[styles]", "name = ", "conninfo = ",
                                    "interval_ms = ", "header = { fg = ", "max_bytes = ", "\"", "=", "\n", "9223372036854775807", "-1"])
            .map { $0! }
        let document = Gen<String>.frequency((3, keys), (1, NastyText.string)).array(of: 0...30).map { $0.joined() }
        await propertyCheck(count: 1000, input: document) { text in
            _ = try? ClusterConfiguration.parse(text, file: "fuzz.toml")
            _ = try? Theme.parse(text, file: "fuzz.toml")
        }
    }

    /// Inputs the fuzzing found that made the TOML parser abort the process.
    @Test func textThatCrashedTheTOMLParserIsRefusedWithItsLine() {
        for (text, line) in [("[#", 1), ("name = \"x\"\n[\u{2}x]", 2), ("[\u{19D}y]", 1), ("a = 1\n\u{85} = 2", 2), ("[]", 1),
                             ("name = \"local\"\n\n[\r\r\rdes]]\n", 3), ("a = 1\rb = 2", 1),
                             ("a = 1\nb = [ }", 2), ("b = [1,\n # c\n } ]", 3), ("a = { b = [ } }", 1)] {
            let error = #expect(throws: ConfigurationError.self) { try ClusterConfiguration.parse(text, file: "f.toml") }
            #expect(error?.line == line, "\(text.debugDescription): \(error?.description ?? "")")
            #expect(throws: ConfigurationError.self) { try Theme.parse(text, file: "t.toml") }
        }
        // Quoted names and non-ASCII inside strings and comments stay fine.
        #expect(throws: Never.self) { try ConfigurationError.screen("[\"naïve\"] # ça\nname = \"Zoë\"\n", file: "f.toml") }
        // CRLF files, arrays over several lines and brackets inside strings are fine too.
        #expect(throws: Never.self) {
            try ConfigurationError.screen("[cluster]\r\nname = \"a ] }\"\r\n[console]\r\nfollow = [\r\n  \"x\", # ]\r\n  \"y\",\r\n]\r\nt = { a = [1, { b = 2 }] }\r\n", file: "f.toml")
        }
        let crlf = try? ClusterConfiguration.parse(
            "[cluster]\r\nname = \"crlf\"\r\n\r\n[[nodes]]\r\nname = \"pg1\"\r\nconninfo = \"host=h\"\r\n", file: "f.toml")
        #expect(crlf?.name == "crlf" && crlf?.nodes.count == 1)
    }
}
