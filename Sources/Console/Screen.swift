import PostgresClient
import Switchyard

/// One terminal cell: a character (with its display width) and what it is.
public struct Cell: Sendable, Equatable {
    public var character: Character
    public var role: StyleRole
    /// 2 for a wide character; the cell to its right is then a continuation (width 0).
    public var width: Int

    public static let blank = Cell(character: " ", role: .normal, width: 1)
}

/// A full screen of cells, drawn by the renderer and diffed by the driver.
public struct Screen: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public private(set) var cells: [Cell]

    public init(width: Int, height: Int) {
        self.width = max(width, 0)
        self.height = max(height, 0)
        cells = Array(repeating: .blank, count: self.width * self.height)
    }

    public subscript(x: Int, y: Int) -> Cell { cells[y * width + x] }

    /// Fills a rectangle's background with `role`.
    public mutating func fill(x: Int, y: Int, width: Int, height: Int, role: StyleRole) {
        // A rectangle partly or wholly off the screen draws what is on it, and nothing else.
        let left = max(x, 0), right = min(x + max(width, 0), self.width)
        let top = max(y, 0), bottom = min(y + max(height, 0), self.height)
        guard left < right, top < bottom else { return }
        let columns = left..<right
        for row in top..<bottom {
            clearBroken(row: row, from: columns.lowerBound, to: columns.upperBound)
            for column in columns {
                cells[row * self.width + column] = Cell(character: " ", role: role, width: 1)
            }
        }
    }

    /// Before columns `from..<to` of `row` are overwritten: a wide character of which only
    /// one half would be overwritten becomes a blank in the half that stays. Otherwise a
    /// terminal draws the wide character whole and everything after it shifts by one
    /// column (an overlay closing over `山田` left ` 田` behind).
    private mutating func clearBroken(row: Int, from: Int, to: Int) {
        let base = row * width
        if from > 0, from < width, cells[base + from].width == 0, cells[base + from - 1].width == 2 {
            cells[base + from - 1] = Cell(character: " ", role: cells[base + from - 1].role, width: 1)
        }
        if to > 0, to < width, cells[base + to].width == 0, cells[base + to - 1].width == 2 {
            cells[base + to] = Cell(character: " ", role: cells[base + to].role, width: 1)
        }
    }

    /// Writes `text` from (x, y), at most `limit` columns wide (to the right edge by
    /// default), cutting with `…` when it does not fit. Returns the columns used.
    @discardableResult
    public mutating func put(_ text: String, x: Int, y: Int, role: StyleRole, limit: Int? = nil) -> Int {
        guard y >= 0, y < height, x < width else { return 0 }
        let available = min(limit ?? (width - x), width - x)
        guard available > 0 else { return 0 }
        let fitted = Screen.fit(text, to: available)
        var column = x
        var used = 0
        for character in fitted {
            let w = Screen.displayWidth(character)
            guard column + w <= x + available else { break }
            used += w
            column += w
        }
        guard used > 0 else { return 0 }
        clearBroken(row: y, from: max(x, 0), to: min(x + used, width))
        column = x
        for character in fitted {
            let w = Screen.displayWidth(character)
            guard column + w <= x + available else { break }
            if column >= 0 {
                cells[y * width + column] = Cell(character: character, role: role, width: w)
                if w == 2 { cells[y * width + column + 1] = Cell(character: " ", role: role, width: 0) }
            } else if column + w > 0 {
                // A wide character cut by the left edge: its visible half is a blank.
                cells[y * width] = Cell(character: " ", role: role, width: 1)
            }
            column += w
        }
        return column - x
    }

    /// Text that fits in `columns`, cut with `…`; control, bidi and invisible characters
    /// shown as symbols (``TerminalText/visible(_:)``). Reads only as much of `text` as
    /// can show, so a megabyte-long value costs what a short one does.
    public static func fit(_ text: String, to columns: Int) -> String {
        guard columns > 0 else { return "" }
        var result = ""
        var used = 0
        var lastFitting = result.endIndex
        var usedAtLastFitting = 0
        for character in text {
            let shown = TerminalText.visible(character)
            let w = displayWidth(shown)
            if used + w > columns {
                // Too long: cut where there is room for the ellipsis.
                if usedAtLastFitting + 1 > columns { return "…" }
                return String(result[..<lastFitting]) + "…"
            }
            result.append(shown)
            used += w
            if used <= columns - 1 {
                lastFitting = result.endIndex
                usedAtLastFitting = used
            }
        }
        return result
    }

    /// Columns `character` takes in a terminal (1 or 2): East Asian wide and fullwidth
    /// characters and emoji take two. Independent of the process locale, so layouts are
    /// the same in tests and in the terminal.
    public static func displayWidth(_ character: Character) -> Int {
        guard let first = character.unicodeScalars.first else { return 0 }
        if first.isASCII { return 1 }
        if first.properties.isEmojiPresentation || character.unicodeScalars.contains(where: { $0.value == 0xFE0F }) { return 2 }
        return wideRanges.contains { $0.contains(first.value) } ? 2 : 1
    }

    static let wideRanges: [ClosedRange<UInt32>] = [
        0x1100...0x115F, 0x231A...0x231B, 0x2329...0x232A, 0x2E80...0x303E, 0x3041...0x33FF, 0x3400...0x4DBF,
        0x4E00...0x9FFF, 0xA000...0xA4CF, 0xA960...0xA97F, 0xAC00...0xD7A3, 0xF900...0xFAFF, 0xFE10...0xFE19,
        0xFE30...0xFE6F, 0xFF00...0xFF60, 0xFFE0...0xFFE6, 0x1F300...0x1F64F, 0x1F900...0x1F9FF,
        0x20000...0x2FFFD, 0x30000...0x3FFFD,
    ]

    public static func displayWidth(_ text: String) -> Int { text.reduce(0) { $0 + displayWidth($1) } }

    /// The screen as plain text, one line per row, trailing spaces kept (for golden files).
    public var text: String {
        (0..<height).map { row -> String in
            var line = ""
            for column in 0..<width {
                let cell = cells[row * width + column]
                if cell.width > 0 { line.append(cell.character) }
            }
            return line
        }.joined(separator: "\n")
    }

    /// Rows that differ from `other` (all rows when the sizes differ).
    public func changedRows(since other: Screen?) -> [Int] {
        guard let other, other.width == width, other.height == height else { return Array(0..<height) }
        return (0..<height).filter { row in
            cells[(row * width)..<((row + 1) * width)] != other.cells[(row * width)..<((row + 1) * width)]
        }
    }
}
