/// An error from PostgreSQL or from libpq, with everything the server said about it.
///
/// ``kind`` tells the classes apart that callers act on differently: a failed connection
/// attempt, a connection lost mid-statement (retry elsewhere), an error the server
/// reported for the statement (SQLSTATE set), a cancelled statement, or a value that
/// could not be decoded. No field ever carries a password.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The connection could not be established.
        case connectionFailed
        /// The connection broke (server gone, network down, admin shutdown).
        case connectionLost
        /// The server rejected the statement; see ``PostgresError/sqlState``.
        case server
        /// The statement was cancelled (SQLSTATE 57014).
        case cancelled
        /// The statement passed its bound (``ConnectOptions/statementBound``) and the server
        /// cancelled it (SQLSTATE 57014): it rolled back.
        case timedOut
        /// The connection was already closed by this process.
        case closed
        /// A result value could not be converted to the requested Swift type.
        case decoding
        /// A parameter or argument was unusable before anything was sent.
        case invalidArgument
    }

    public var kind: Kind
    /// Five-character SQLSTATE code, when the server sent one.
    public var sqlState: String?
    /// `ERROR`, `FATAL`, `PANIC` (non-localized), when known.
    public var severity: String?
    public var message: String
    public var detail: String?
    public var hint: String?
    /// Which node the error came from: a node name or a redacted `host:port`.
    public var node: String?
    /// True when the statement certainly never reached the server (the connection could
    /// not be made, or was found dead before sending): only then is running it again
    /// elsewhere safe. A connection lost after sending may have run it already.
    public var nothingSent: Bool

    public init(
        kind: Kind, message: String, sqlState: String? = nil, severity: String? = nil,
        detail: String? = nil, hint: String? = nil, node: String? = nil, nothingSent: Bool? = nil
    ) {
        self.nothingSent = nothingSent ?? (kind == .connectionFailed || kind == .closed || kind == .invalidArgument)
        self.kind = kind
        self.message = message
        self.sqlState = sqlState
        self.severity = severity
        self.detail = detail
        self.hint = hint
        self.node = node
    }

    /// The statement was sent and the connection broke before its answer came: whether
    /// it ran (a write: whether it committed) is unknown.
    public var outcomeUnknown: Bool { kind == .connectionLost && !nothingSent }

    /// True when the connection itself is unusable: failed, lost or closed.
    public var isConnectionError: Bool {
        kind == .connectionFailed || kind == .connectionLost || kind == .closed
    }

    static func closed(node: String? = nil) -> PostgresError {
        PostgresError(kind: .closed, message: "connection is closed", node: node)
    }

    /// The error as one text for people, safe to print to a terminal: control, bidi and
    /// zero-width characters the server or libpq sent are shown as `·`.
    public var description: String {
        TerminalText.sanitized(rawDescription, keepingLineBreaks: true)
    }

    private var rawDescription: String {
        var text = ""
        if let node { text += "\(node): " }
        if let severity { text += "\(severity): " }
        text += message
        if let sqlState { text += " (SQLSTATE \(sqlState))" }
        if let detail { text += "\nDETAIL: \(detail)" }
        if let hint { text += "\nHINT: \(hint)" }
        return text
    }
}
