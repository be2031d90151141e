/// Durations as people read them, the same everywhere: `850 ms`, `1.5 s`.
public func formatMilliseconds(_ ms: Double) -> String {
    guard ms.isFinite else { return "unknown" }
    return ms >= 1000 ? "\((ms / 100).rounded() / 10) s" : "\(Int(ms.rounded())) ms"
}

/// A `Duration` as people read it (see ``formatMilliseconds(_:)``).
public func formatDuration(_ duration: Duration) -> String { formatMilliseconds(duration.milliseconds) }

extension Duration {
    /// The duration in (fractional) milliseconds.
    public var milliseconds: Double {
        let parts = components
        return Double(parts.seconds) * 1000 + Double(parts.attoseconds) / 1e15
    }

}
