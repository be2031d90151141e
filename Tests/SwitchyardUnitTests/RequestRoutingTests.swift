import Foundation
import PostgresClient
import PropertyBased
import Testing

@testable import Switchyard

/// The framework-free request core: rules, paths, the token cookie, Server-Timing.
@Suite struct RequestRoutingTests {
    let routing = HTTPRouting()

    func facts(_ path: String, _ headers: [(String, String)] = [], https: Bool = false) -> RequestFacts {
        facts("GET", path, headers, https: https)
    }

    func facts(_ method: String, _ path: String, _ headers: [(String, String)] = [], https: Bool = false) -> RequestFacts {
        RequestFacts(method: method, path: path, headers: headers.map { (name: $0.0, value: $0.1) }, isHTTPS: https)
    }

    @Test func adminPathsAreAdminEverythingElsePublic() {
        #expect(routing.context(for: facts("/admin")) == .admin)
        #expect(routing.context(for: facts("/admin/customers/7")) == .admin)
        #expect(routing.context(for: facts("PUT", "/admin/customers/7?x=1")) == .admin)
        #expect(routing.context(for: facts("/administrator")) == .public)
        #expect(routing.context(for: facts("/api/customers/7")) == .public)
        #expect(routing.context(for: facts("/")) == .public)
        #expect(routing.context(for: facts("")) == .public)
    }

    @Test func disguisedAdminPathsStillCountAsAdmin() {
        for path in ["//admin/x", "/%61dmin/x", "/api/../admin/x", "/./admin", "/admin/./x", "/admin%2Fx", "/admin#frag", "/admin?q"] {
            #expect(routing.context(for: facts(path)) == .admin, "\(path)")
        }
        // Case matters in paths; `..` cannot climb above the root.
        #expect(routing.context(for: facts("/ADMIN/x")) == .public)
        #expect(routing.context(for: facts("/../../admin")) == .admin)
        // A broken escape is kept as written, not decoded into something else.
        #expect(routing.context(for: facts("/%zzadmin")) == .public)
    }

    @Test func rulesMatchMethodsAndHeadersAndTheFirstMatchWins() {
        let routing = HTTPRouting(
            rules: [
                HTTPRoutingRule(header: "X-Staff", headerValue: "yes", context: .admin),
                HTTPRoutingRule(methods: ["post", "PUT"], context: .admin),
                HTTPRoutingRule(pathPrefix: "/back-office/*", methods: ["GET"], context: .admin),
            ], defaultContext: .public)
        #expect(routing.context(for: facts("/shop", [("x-staff", " yes ")])) == .admin)
        #expect(routing.context(for: facts("/shop", [("X-Staff", "no")])) == .public)
        #expect(routing.context(for: facts("POST", "/shop")) == .admin)
        #expect(routing.context(for: facts("put", "/shop")) == .admin)
        #expect(routing.context(for: facts("GET", "/back-office/reports")) == .admin)
        #expect(routing.context(for: facts("HEAD", "/back-office/reports")) == .public)
        #expect(HTTPRouting(rules: [], defaultContext: .admin).context(for: facts("/x")) == .admin)
        #expect(routing.consultedHeaders == ["cookie", "x-staff"])
    }

    @Test func normalizedPathsAreStableAndPrefixMatchingIsBySegment() async {
        let segment = Gen<Character>.frequency(
            (6, Gen.character(in: "a"..."e")),
            (1, Gen.element(of: ["/", ".", "%", "2", "F", "?", "#", "é"]).map { $0! })
        ).string(of: 0...12)
        await propertyCheck(count: 3000, input: segment, segment) { raw, prefixText in
            let path = RequestPath(raw)
            // Normalizing twice changes nothing.
            #expect(RequestPath(path.description) == path, "\(raw)")
            #expect(!path.segments.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }))
            // A rule on a plain prefix matches exactly the paths whose segments start with its.
            let prefix = "/" + prefixText.filter { $0.isLetter }
            let rule = HTTPRoutingRule(pathPrefix: prefix, context: .admin)
            let routing = HTTPRouting(rules: [rule], defaultContext: .public)
            let expected = Array(path.segments.prefix(RequestPath(prefix).segments.count)) == RequestPath(prefix).segments
            #expect((routing.context(for: facts(raw)) == .admin) == expected, "\(raw) under \(prefix)")
        }
    }

    @Test func theTokenComesFromItsCookieAmongOthers() {
        let token = "sy1:0/3000148"
        let request = routing.begin(facts("/", [("Cookie", "a=1; switchyard_token=\(token); b=2")]))
        #expect(request.incomingToken?.description == token)
        #expect(request.context == .public)
        #expect(routing.begin(facts("/", [("cookie", "switchyard_token=\"\(token)\"")])).incomingToken?.description == token)
        // The first value that parses wins; garbage is no token but still a cookie to clear.
        let garbled = routing.begin(facts("/", [("Cookie", "switchyard_token=garbage"), ("Cookie", "switchyard_token=\(token)")]))
        #expect(garbled.incomingToken?.description == token)
        let bad = routing.begin(facts("/", [("Cookie", "switchyard_token=sy1:zz")]))
        #expect(bad.incomingToken == nil && bad.hadCookie)
        #expect(bad.setCookie?.contains("Max-Age=0") == true)
        let other = routing.begin(facts("/", [("Cookie", "xswitchyard_token=\(token)")]))
        #expect(other.incomingToken == nil && !other.hadCookie && other.setCookie == nil)
    }

    @Test func cookieHeadersOfAnyShapeNeverCrashAndFindAPlantedToken() async {
        let junk = NastyText.string
        await propertyCheck(count: 2000, input: junk, junk, Gen.int(in: 0...3)) { before, after, spaces in
            let pad = String(repeating: " ", count: spaces)
            let header = before.replacingOccurrences(of: "switchyard_token", with: "x") + ";" + pad + "switchyard_token=sy1:1/2;"
                + after.replacingOccurrences(of: "switchyard_token", with: "x")
            let request = routing.begin(facts("/", [("Cookie", header)]))
            #expect(request.incomingToken?.description == "sy1:1/2", "\(header.debugDescription)")
            _ = routing.begin(facts(before, [("Cookie", after)]))  // any text: no crash
        }
    }

    @Test func aNewTokenIsSetAsAnHttpOnlyLaxCookieSecureOnlyOverHTTPS() async throws {
        let plain = routing.begin(facts("PUT", "/api/customers/1"))
        await plain.run { plain.scope.session.recordWrite(LSN(0x3000148), at: .now) }
        let cookie = try #require(plain.setCookie)
        #expect(cookie == "switchyard_token=sy1:0/3000148; Path=/; Max-Age=900; HttpOnly; SameSite=Lax")
        let secure = routing.begin(facts("PUT", "/x", https: true))
        secure.scope.session.recordWrite(LSN(1), at: .now)
        #expect(secure.setCookie?.hasSuffix("; Secure") == true)
        // Behind a TLS proxy only when told to trust it.
        var trusting = HTTPRouting(cookieName: "t", cookieMaxAge: 60)
        let untrusted = trusting.begin(facts("PUT", "/x", [("X-Forwarded-Proto", "https")]))
        untrusted.scope.session.recordWrite(LSN(1), at: .now)
        #expect(untrusted.setCookie == "t=sy1:0/1; Path=/; Max-Age=60; HttpOnly; SameSite=Lax")
        trusting.trustForwardedProto = true
        let proxied = trusting.begin(facts("PUT", "/x", [("x-forwarded-proto", "HTTPS, http")]))
        proxied.scope.session.recordWrite(LSN(1), at: .now)
        #expect(proxied.setCookie?.hasSuffix("; Secure") == true)
        // An unchanged token is not sent again.
        let same = routing.begin(facts("/", [("Cookie", "switchyard_token=sy1:0/1")]))
        #expect(same.setCookie == nil)
        #expect(same.responseHeaders().isEmpty)
    }

    @Test func theContextIsBoundWhileTheHandlerRuns() async {
        let request = routing.begin(facts("/admin/x"))
        #expect(RoutingContext.current == nil)
        let inside = await request.run { RoutingContext.current }
        #expect(inside == .admin)
        #expect(RoutingContext.current == nil)
    }

    @Test func serverTimingNamesEachNodeOnceWithItsTotalTime() {
        var routing = HTTPRouting()
        #expect(routing.begin(facts("/")).serverTiming == nil)  // off by default
        routing.serverTiming = true
        let request = routing.begin(facts("/"))
        #expect(request.serverTiming == nil)  // no statement ran
        request.scope.trace?.add("pg2", .microseconds(410))
        request.scope.trace?.add("pg1", .milliseconds(2))
        request.scope.trace?.add("pg2", .microseconds(100))
        request.scope.trace?.add("we\"ird\\", .zero)
        #expect(request.serverTiming == #"db;desc="pg2";dur=0.51, db;desc="pg1";dur=2.00, db;desc="we\"ird\\";dur=0.00"#)
        #expect(RoutedRequest.serverTimingValue(.nan) == "0.00")
        #expect(RoutedRequest.serverTimingValue(-5) == "0.00")
        #expect(RoutedRequest.serverTimingValue(0.005) == "0.01")
    }

    @Test func cookieNamesMustBeTokens() {
        #expect(HTTPRouting.isValidCookieName("switchyard_token"))
        for bad in ["", "a b", "a;b", "a=b", "é", "a\u{1}", String(repeating: "a", count: 200)] {
            #expect(!HTTPRouting.isValidCookieName(bad), "\(bad.debugDescription)")
        }
    }
}

/// `[http]` in the config file.
@Suite struct HTTPConfigurationTests {
    static let head = """
        [[nodes]]
        name = "pg1"
        conninfo = "host=127.0.0.1 port=5432"

        """

    @Test func parsesRulesAndSettings() throws {
        let text = Self.head + """
            [http]
            default_context = "public"
            cookie_name = "sy"
            cookie_max_age_s = 120
            server_timing = true
            trust_forwarded_proto = true

            [[http.rules]]
            path_prefix = "/staff/*"
            context = "admin"

            [[http.rules]]
            methods = ["POST"]
            header = "X-Role"
            header_value = "staff"
            context = "admin"
            """
        let http = try ClusterConfiguration.parse(text, file: "s.toml").http
        #expect(http.cookieName == "sy" && http.cookieMaxAge == 120 && http.serverTiming && http.trustForwardedProto)
        #expect(http.rules.count == 2)
        #expect(http.rules[0].context == .admin)
        #expect(http.context(for: RequestFacts(method: "GET", path: "/staff/x")) == .admin)
        #expect(http.context(for: RequestFacts(method: "POST", path: "/", headers: [("x-role", "staff")])) == .admin)
        #expect(http.context(for: RequestFacts(method: "GET", path: "/admin")) == .public)  // rules replace the default
        #expect(try ClusterConfiguration.parse(Self.head, file: "s.toml").http == HTTPRouting())
    }

    @Test func mistakesNameTheFileAndLine() {
        func error(_ section: String) -> String {
            do {
                _ = try ClusterConfiguration.parse(Self.head + section, file: "s.toml")
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        #expect(error("[http]\ndefault_context = \"staff\"\n") == #"s.toml:5: [http] unknown context "staff" (known: admin, public)"#)
        #expect(error("[http]\ncookie_name = \"a b\"\n").hasPrefix("s.toml:5: [http] cookie_name must be"))
        #expect(error("[http]\ncookie_max_age_s = 0\n").hasPrefix("s.toml:5: [http] cookie_max_age_s must be at least 1"))
        #expect(error("[http]\nbogus = 1\n").hasPrefix("s.toml:5: unknown key \"bogus\" in [http]"))
        #expect(error("[[http.rules]]\ncontext = \"admin\"\n").hasPrefix("s.toml:4: [[http.rules]] needs at least one of"))
        #expect(error("[[http.rules]]\npath_prefix = \"admin\"\ncontext = \"admin\"\n").hasPrefix("s.toml:5: [[http.rules]] path_prefix must start with /"))
        #expect(error("[[http.rules]]\npath_prefix = \"/a\"\n").hasPrefix("s.toml:4: [[http.rules]] needs context"))
        #expect(error("[[http.rules]]\nheader_value = \"x\"\ncontext = \"admin\"\n").hasPrefix("s.toml:5: [[http.rules]] header_value needs header"))
        #expect(error("[[http.rules]]\nmethods = [1]\ncontext = \"admin\"\n").hasPrefix("s.toml:5: [http.rules] methods must be an array of strings"))
        #expect(error("[console]\nfollow = \"x\"\n").hasPrefix("s.toml:5: [console] follow must be an array of strings"))
    }

    @Test func followAndSourceAreRead() throws {
        let config = try ClusterConfiguration.parse(
            Self.head + "[console]\nfollow = [\"/var/log/app/*.jsonl\"]\n[query_log]\nsource = \"shop\"\n", file: "s.toml")
        #expect(config.consoleFollow == ["/var/log/app/*.jsonl"])
        #expect(config.queryLogSource == "shop")
    }
}
