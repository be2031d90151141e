import Foundation
@testable import PostgresClient
import PropertyBased
@testable import Switchyard
import Testing

/// Generated connection strings with secrets, through every path that prints them: the
/// secret never appears.
@Suite struct SecretsTests {
    /// A secret: a marker that no other part of the string contains, then hostile text.
    static let secret = NastyText.name.map { "Zq9" + $0.filter { $0 != "\u{0}" } }

    enum Form: CaseIterable {
        case uriRaw, uriEncoded, keyValue, sslPassword, dbnameURI, dbnameKeyValue
    }

    static func conninfo(_ form: Form, secret: String, port: Int) -> String {
        let encoded = secret.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? secret
        let quoted = Conninfo.quoted(secret)
        switch form {
        case .uriRaw: return "postgresql://app:\(secret)@127.0.0.1:\(port)/app"
        case .uriEncoded: return "postgresql://app:\(encoded)@127.0.0.1:\(port)/app?connect_timeout=2"
        case .keyValue: return "host=127.0.0.1 port=\(port) dbname=app user=app password=\(quoted)"
        case .sslPassword: return "host=127.0.0.1 port=\(port) dbname=app sslpassword=\(quoted)"
        case .dbnameURI: return "dbname=postgresql://app:\(encoded)@127.0.0.1:\(port)/app"
        case .dbnameKeyValue: return "dbname=\(Conninfo.quoted("host=127.0.0.1 port=\(port) password=\(quoted)"))"
        }
    }

    /// The parts of `secret` that could still identify it: itself and, for passwords a URI
    /// parser cuts, each piece of three or more characters.
    static func leaks(_ secret: String, in text: String) -> Bool {
        if text.contains(secret) { return true }
        return secret.split(whereSeparator: { "/@:?#& ".contains($0) }).contains { $0.count >= 3 && $0.hasPrefix("Zq9") && text.contains($0) }
    }

    @Test func redactionScrubbingAndEndpointsNeverShowTheSecret() async {
        await propertyCheck(count: 1000, input: Self.secret, Gen.element(of: Form.allCases).map { $0! }) { secret, form in
            let conninfo = Self.conninfo(form, secret: secret, port: 1)
            for (path, text) in [
                ("redacted", Conninfo.redacted(conninfo)),
                ("endpoint", Conninfo.endpoint(conninfo)),
                ("scrubbed libpq text", Conninfo.scrub("could not parse \"\(conninfo)\": \(secret)", conninfo: conninfo)),
            ] {
                #expect(!Self.leaks(secret, in: text), "\(form) \(path): \(text)")
            }
        }
    }

    @Test func connectErrorsNeverShowTheSecret() async throws {
        // A closed port on loopback: libpq fails at once, quoting what it parsed.
        let port = 1
        await propertyCheck(count: 1000, input: Self.secret, Gen.element(of: Form.allCases).map { $0! }) { secret, form in
            let conninfo = Self.conninfo(form, secret: secret, port: port)
            do {
                let connection = try await PostgresConnection.connect(conninfo, options: ConnectOptions(connectTimeout: .seconds(2)))
                await connection.close()
                Issue.record("connected to port \(port)?")
            } catch {
                #expect(!Self.leaks(secret, in: "\(error)"), "\(form): \(error)")
            }
        }
    }

    @Test func aPasswordWithASlashNeverReachesTheMonitorsError() async {
        let secret = "s3cr3tZq9/x"
        let node = NodeEndpoint(name: "pg1", conninfo: "postgresql://app:\(secret)@127.0.0.1:1/app")
        let monitor = ClusterMonitor(nodes: [node], settings: ClusterMonitor.Settings(interval: .milliseconds(100)))
        let topology = await monitor.probeNow()
        await monitor.stop()
        let state = topology.nodes[0]
        #expect(!state.reachable)
        let text = "\(state.error ?? "") \(state.configuredUpstream ?? "") \(state.upstream ?? "")"
        #expect(!text.contains("s3cr3t"), "\(text)")
        #expect(!text.contains("Zq9"), "\(text)")
    }
}

extension SecretsTests {
    @Test func aServiceFileCarriesEveryParameterAndTheArgumentListNone() async {
        await propertyCheck(count: 1000, input: Self.secret, Gen.element(of: Form.allCases).map { $0! }) { secret, form in
            let conninfo = Self.conninfo(form, secret: secret, port: 5433)
            guard let file = Conninfo.serviceFile(conninfo, name: "switchyard") else {
                // (A raw URI whose password holds `/`, `@` or `=` is a mistyped one libpq may not read.)
                if form != .uriRaw {
                    #expect(Conninfo.parse(conninfo) == nil || secret.contains(where: \.isNewline), "\(form): refused \(conninfo.debugDescription)")
                }
                return
            }
            let lines = file.split(separator: "\n").map(String.init)
            #expect(lines.first == "[switchyard]")
            let pairs = lines.dropFirst().map { line -> (String, String) in
                let parts = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                return (String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
            }
            let values = Dictionary(pairs, uniquingKeysWith: { _, last in last })
            // The secret travels as libpq reads it (a raw URI cuts some passwords short).
            let read = (Conninfo.parse(conninfo) ?? []).flatMap { pair in
                pair.key == "dbname" && Conninfo.isConnectionString(pair.value) ? Conninfo.parse(pair.value) ?? [] : [pair]
            }
            for key in ["password", "sslpassword", "port", "host"] {
                #expect(values[key] == read.last { $0.key == key }?.value, "\(form): \(key) did not travel")
            }
            if form != .uriRaw { #expect(values["password"] != nil || values["sslpassword"] != nil, "\(form): no secret in \(file)") }
            #expect(!(values["dbname"].map(Conninfo.isConnectionString) ?? false), "\(form): dbname left unexpanded")
        }
    }
}
