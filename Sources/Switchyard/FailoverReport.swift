import Foundation
import PostgresClient

/// The outcome of one check, Nagios-style.
public enum CheckStatus: String, Sendable, Codable, Comparable {
    case pass = "PASS", warn = "WARN", fail = "FAIL", unknown = "UNKNOWN"

    var severity: Int {
        switch self {
        case .pass: return 0
        case .warn: return 1
        case .unknown: return 2
        case .fail: return 3
        }
    }

    public static func < (lhs: CheckStatus, rhs: CheckStatus) -> Bool { lhs.severity < rhs.severity }
}

/// One check's verdict with a one-line explanation and the figures behind it.
public struct CheckResult: Sendable, Codable, Equatable {
    public var check: String
    public var node: String?
    public var status: CheckStatus
    public var summary: String
    public var figures: [String: String]

    public init(check: String, node: String? = nil, status: CheckStatus, summary: String, figures: [String: String] = [:]) {
        self.check = check
        self.node = node
        self.status = status
        self.summary = summary
        self.figures = figures
    }
}

/// A replica as a promotion candidate: how much it would lose if promoted now.
public struct Candidate: Sendable, Codable, Equatable {
    public var node: String
    public var reachable: Bool
    public var receiveLSN: LSN?
    public var replayLSN: LSN?
    /// WAL the primary had that this replica has not received (nil: primary unknown).
    public var missingBytes: UInt64?
    public var lagSeconds: Double?
    /// Why the HA engine would not promote it (`nofailover` tag, lag over
    /// `maximum_lag_on_failover`); nil when it would.
    public var ineligible: String?
}

/// Everything `switchyard check` reports.
public struct FailoverReport: Sendable, Codable {
    public var cluster: String
    public var primary: String?
    public var testedFrom: String
    public var durationMs: Double
    public var results: [CheckResult]
    /// Best first.
    public var candidates: [Candidate]

    /// The worst status of all results.
    public var status: CheckStatus { results.map(\.status).max() ?? .unknown }

    /// Nagios exit code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    public var exitCode: Int32 {
        switch status {
        case .pass: return 0
        case .warn: return 1
        case .fail: return 2
        case .unknown: return 3
        }
    }

    /// The first line monitoring systems read.
    public var summaryLine: String {
        let word = ["OK", "WARNING", "CRITICAL", "UNKNOWN"][Int(exitCode)]
        let problems = results.filter { $0.status != .pass }.sorted { $0.status > $1.status }
        let text = problems.isEmpty
            ? "\(results.count) checks passed, primary \(primary ?? "none")"
            : problems.prefix(3).map { ($0.node.map { "\($0): " } ?? "") + $0.summary }.joined(separator: "; ")
                + (problems.count > 3 ? "; +\(problems.count - 3) more" : "")
        let best = candidates.first.map { ", best candidate \($0.node)" } ?? ""
        return "SWITCHYARD \(word) - \(text)\(best)"
    }
}
