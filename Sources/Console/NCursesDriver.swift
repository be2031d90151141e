import CNCurses
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The real terminal, through ncursesw: wide characters, 256/8/no colours, diffed redraws.
public final class NCursesDriver: TerminalDriver {
    private let theme: Theme
    private let useColor: Bool
    private let basicColorsOnly: Bool
    private var pairs: [PairKey: Int16] = [:]
    private var previous: Screen?
    private var active = false

    private struct PairKey: Hashable {
        var foreground: TerminalColor
        var background: TerminalColor
    }

    /// Takes over the terminal. `NO_COLOR` (any value) turns colour off; attributes stay.
    public init(theme: Theme, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.theme = theme
        setlocale(LC_ALL, "")
        initscr()
        raw()
        noecho()
        nonl()
        keypad(sy_stdscr(), true)
        curs_set(0)
        set_escdelay(25)
        let wantsColor = environment["NO_COLOR"] == nil && has_colors()
        if wantsColor {
            start_color()
            use_default_colors()
        }
        useColor = wantsColor
        basicColorsOnly = sy_colors() < 256
        active = true
        NCursesDriver.installCrashHandlers()
    }

    public var size: (width: Int, height: Int) { (Int(sy_getmaxx(sy_stdscr())), Int(sy_getmaxy(sy_stdscr()))) }

    public func invalidate() {
        previous = nil
        clearok(sy_stdscr(), true)
    }

    /// OSC 52 straight to the terminal, outside curses (it moves no cursor and draws
    /// nothing). Inside tmux it takes `set-clipboard on`.
    public func setClipboard(_ text: String) {
        let sequence = Array("\u{1B}]52;c;\(Data(text.utf8).base64EncodedString())\u{07}".utf8)
        sequence.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = write(STDOUT_FILENO, bytes.baseAddress! + offset, bytes.count - offset)
                if written <= 0 { break }
                offset += written
            }
        }
    }

    public func draw(_ screen: Screen) {
        let rows = screen.changedRows(since: previous)
        guard !rows.isEmpty else { return }
        if previous == nil || previous?.width != screen.width || previous?.height != screen.height { erase() }
        for y in rows {
            var x = 0
            while x < screen.width {
                let role = screen[x, y].role
                var text: [wchar_t] = []
                let start = x
                while x < screen.width, screen[x, y].role == role {
                    let cell = screen[x, y]
                    if cell.width > 0 {
                        for scalar in cell.character.unicodeScalars { text.append(wchar_t(bitPattern: scalar.value)) }
                    }
                    x += 1
                }
                let (attributes, pair) = attributes(for: theme.style(role))
                text.withUnsafeBufferPointer { buffer in
                    _ = sy_draw(Int32(y), Int32(start), buffer.baseAddress, Int32(buffer.count), attributes, pair)
                }
            }
        }
        refresh()
        previous = screen
    }

    private func attributes(for style: Style) -> (attr_t, Int16) {
        var attributes = sy_a_normal()
        if style.bold { attributes |= sy_a_bold() }
        if style.italic { attributes |= sy_a_italic() }
        if style.underline { attributes |= sy_a_underline() }
        if style.dim { attributes |= sy_a_dim() }
        if style.reverse { attributes |= sy_a_reverse() }
        guard useColor else {
            // Without colour, keep highlighted roles visible.
            if style.background != .terminalDefault { attributes |= sy_a_reverse() }
            return (attributes, 0)
        }
        var foreground = style.foreground
        var background = style.background
        if basicColorsOnly {
            if case .index(let index) = foreground, index >= 8, index < 16 { attributes |= sy_a_bold() }
            foreground = foreground.basic
            background = background.basic
        }
        let key = PairKey(foreground: foreground, background: background)
        if let pair = pairs[key] { return (attributes, pair) }
        let number = Int16(pairs.count + 1)
        guard Int32(number) < sy_color_pairs() else { return (attributes, 0) }
        func code(_ color: TerminalColor) -> Int16 {
            if case .index(let index) = color { return Int16(index) }
            return -1
        }
        init_pair(number, code(foreground), code(background))
        pairs[key] = number
        return (attributes, number)
    }

    public func nextInput(timeout wait: Duration) -> TerminalInput? {
        timeout(Int32(wait.milliseconds.rounded()))
        var key: Int32 = 0
        var isFunctionKey: Int32 = 0
        let result = sy_get_wch(&key, &isFunctionKey)
        guard result != ERR else { return nil }
        if isFunctionKey != 0 {
            switch key {
            case KEY_RESIZE:
                previous = nil
                let (width, height) = size
                return .resize(width: width, height: height)
            case KEY_UP: return .key(.up)
            case KEY_DOWN: return .key(.down)
            case KEY_LEFT: return .key(.left)
            case KEY_RIGHT: return .key(.right)
            case KEY_PPAGE: return .key(.pageUp)
            case KEY_NPAGE: return .key(.pageDown)
            case KEY_HOME: return .key(.home)
            case KEY_END: return .key(.end)
            case KEY_BACKSPACE: return .key(.backspace)
            case KEY_DC: return .key(.delete)
            case KEY_BTAB: return .key(.backTab)
            case KEY_ENTER: return .key(.enter)
            case KEY_F0 + 1...KEY_F0 + 12: return .key(.function(Int(key - KEY_F0)))
            default: return nil
            }
        }
        switch key {
        case 27: return .key(.escape)
        case 9: return .key(.tab)
        case 10, 13: return .key(.enter)
        case 8, 127: return .key(.backspace)
        case 1...26: return .key(.control(Character(UnicodeScalar(UInt8(key) + 96))))
        default:
            guard let scalar = UnicodeScalar(UInt32(bitPattern: key)) else { return nil }
            return .key(.character(Character(scalar)))
        }
    }

    public func suspend(_ body: () -> Void) {
        def_prog_mode()
        endwin()
        body()
        reset_prog_mode()
        previous = nil
        clear()
        refresh()
    }

    public func shutdown() {
        guard active else { return }
        active = false
        endwin()
    }

    /// On a crash, put the terminal back before the process dies.
    static func installCrashHandlers() {
        for signalNumber in [SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGABRT, SIGFPE] {
            signal(signalNumber) { number in
                endwin()
                signal(number, SIG_DFL)
                raise(number)
            }
        }
    }
}
