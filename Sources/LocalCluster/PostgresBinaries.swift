import Foundation

/// Where the PostgreSQL server programs (initdb, pg_ctl, pg_basebackup, postgres) are.
public struct PostgresBinaries: Sendable, Equatable {
    public var directory: URL

    public static let required = ["initdb", "pg_ctl", "pg_basebackup", "postgres"]

    public init(directory: URL) { self.directory = directory }

    public func path(_ program: String) -> String { directory.appendingPathComponent(program).path }

    /// Finds the server programs: `$PG_BINDIR`, else `pg_config --bindir`, else the newest
    /// `/usr/lib/postgresql/*/bin`. A folder is taken only if it holds every program in
    /// ``required``; `$PG_BINDIR`, when set, is the only place looked at.
    public static func locate(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        searchRoot: String = "/usr/lib/postgresql"
    ) async throws -> PostgresBinaries {
        if let explicit = environment["PG_BINDIR"], !explicit.isEmpty {
            let candidate = PostgresBinaries(directory: URL(fileURLWithPath: explicit))
            if let missing = candidate.missingPrograms.first {
                throw LocalClusterError(
                    .binariesNotFound,
                    "PG_BINDIR=\(explicit) has no \(missing): point PG_BINDIR at the folder holding initdb and pg_ctl, "
                        + "or unset it")
            }
            return candidate
        }
        var looked: [String] = []
        if let bindir = await pgConfigBindir(environment: environment) {
            looked.append(bindir)
            let candidate = PostgresBinaries(directory: URL(fileURLWithPath: bindir))
            if candidate.missingPrograms.isEmpty { return candidate }
        }
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: searchRoot)) ?? []
        let sorted = versions.compactMap { name -> (Double, String)? in Double(name).map { ($0, name) } }.sorted { $0.0 > $1.0 }
        for (_, name) in sorted {
            let bin = "\(searchRoot)/\(name)/bin"
            looked.append(bin)
            let candidate = PostgresBinaries(directory: URL(fileURLWithPath: bin))
            if candidate.missingPrograms.isEmpty { return candidate }
        }
        if looked.isEmpty { looked.append("\(searchRoot)/*/bin") }
        throw LocalClusterError(
            .binariesNotFound,
            "PostgreSQL server programs (initdb, pg_ctl) not found (looked in \(looked.joined(separator: ", "))): "
                + "install them with `apt-get install postgresql` or set PG_BINDIR")
    }

    public var missingPrograms: [String] {
        Self.required.filter { !FileManager.default.isExecutableFile(atPath: path($0)) }
    }

    private static func pgConfigBindir(environment: [String: String]) async -> String? {
        let searchPath = (environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":")
        guard let pgConfig = searchPath.map({ "\($0)/pg_config" }).first(where: { FileManager.default.isExecutableFile(atPath: $0) })
        else { return nil }
        guard let result = try? await ChildProcess.run([pgConfig, "--bindir"], environment: environment), result.status == 0 else {
            return nil
        }
        let text = result.output.trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? nil : text
    }
}
