import Foundation

/// The report as text for people.
public enum VerifyText {
    public static func render(_ report: VerifyReport) -> String {
        var lines: [String] = []
        let verdict = report.violations.isEmpty ? "OK" : "FAILED"
        lines.append(
            "\(verdict): \(report.operations) operations from \(report.clients) clients in \(Int(report.seconds)) s (seed \(report.seed)), "
                + "\(report.violations.count) violations, \(report.lostWrites.count) lost writes")
        let injected = report.faultsInjected.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
        lines.append("faults: \(injected.isEmpty ? "none" : injected)")
        let f = report.figures
        lines.append(String(
            format: "%.0f ops/s; %d reads (%d on replicas), %d writes; %d failed, %d writes of unknown outcome; read p99 %.1f ms, max %.1f ms",
            f.operationsPerSecond, f.reads, f.readsOnReplicas, f.writes, f.failedOperations, f.unknownWrites, f.p99ReadMilliseconds,
            f.maxReadMilliseconds))
        if let blackhole = f.maxReadDuringBlackholeMilliseconds {
            lines.append(String(format: "longest read begun during a blackhole: %.0f ms", blackhole))
        }
        if let window = f.lossWindowSeconds {
            lines.append(String(format: "acknowledged writes lost for %.2f s after the fault began (%d writes)", window, report.lostWrites.count))
        }
        for violation in report.violations.prefix(20) {
            lines.append("violation \(violation.kind.rawValue) (client \(violation.client), op \(violation.operation)): \(violation.message)"
                + (violation.faults.isEmpty ? "" : " during \(violation.faults.joined(separator: ", "))")
                + "; operations around: \(violation.around.map(String.init).joined(separator: " "))")
        }
        if report.violations.count > 20 { lines.append("… \(report.violations.count - 20) more (--json lists them all)") }
        for lost in report.lostWrites.prefix(10) {
            lines.append("lost write: key \(lost.key) value \(lost.value) (op \(lost.operation))\(lost.fault.map { " during \($0)" } ?? "")")
        }
        return lines.joined(separator: "\n")
    }
}
