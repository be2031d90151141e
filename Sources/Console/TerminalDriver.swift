/// Input from the terminal.
public enum TerminalInput: Sendable, Equatable {
    case key(Key)
    case resize(width: Int, height: Int)
}

/// The terminal behind the console: ncurses for people, ``TextDriver`` for tests.
/// Called from one thread only.
public protocol TerminalDriver: AnyObject {
    var size: (width: Int, height: Int) { get }
    /// Shows `screen`, redrawing only what changed since the last call.
    func draw(_ screen: Screen)
    /// The next input, or nil when none came within `timeout`.
    func nextInput(timeout: Duration) -> TerminalInput?
    /// Gives the terminal back as it was.
    func shutdown()
    /// Lends the terminal to `body` (an external editor), then takes it back and redraws.
    func suspend(_ body: () -> Void)
    /// Forgets what the terminal shows: the next `draw` repaints every cell (Ctrl-L,
    /// after another program scribbled on the terminal).
    func invalidate()
    /// Puts text on the terminal's clipboard (OSC 52; the terminal, or tmux with
    /// `set-clipboard on`, must allow it).
    func setClipboard(_ text: String)
}

extension TerminalDriver {
    public func invalidate() {}
    public func setClipboard(_ text: String) {}
}

/// An in-memory terminal: keys are queued by the test, the last screen is kept as text.
public final class TextDriver: TerminalDriver {
    public var size: (width: Int, height: Int)
    public private(set) var screen: Screen?
    public private(set) var drawnRows = 0
    private var inputs: [TerminalInput] = []
    public private(set) var isShutDown = false

    public init(width: Int, height: Int) { size = (width, height) }

    public func enqueue(_ input: TerminalInput) { inputs.append(input) }

    public func draw(_ screen: Screen) {
        drawnRows += screen.changedRows(since: self.screen).count
        self.screen = screen
    }

    public func nextInput(timeout: Duration) -> TerminalInput? {
        guard !inputs.isEmpty else { return nil }
        let input = inputs.removeFirst()
        if case .resize(let width, let height) = input { size = (width, height) }
        return input
    }

    public func suspend(_ body: () -> Void) { body() }

    public func shutdown() { isShutDown = true }
}
