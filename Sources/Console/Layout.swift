/// A rectangle of the screen.
public struct Rect: Sendable, Equatable {
    public var x: Int, y: Int, width: Int, height: Int
}

/// Where each part of the console goes at a given terminal size: header, tables on the
/// left, record grid in the centre, nodes and query log on the right, hints and status
/// at the bottom. Bigger terminals give the side panes more room.
public struct Layout: Sendable, Equatable {
    public let width: Int
    public let height: Int
    /// The table list on the left and the nodes-and-log pane on the right; each can be
    /// hidden (`[` and `]`) to give the grid their room.
    public let showTables: Bool
    public let showPane: Bool

    public init(width: Int, height: Int, showTables: Bool = true, showPane: Bool = true) {
        self.width = width
        self.height = height
        self.showTables = showTables
        self.showPane = showPane
    }

    public var header: Rect { Rect(x: 0, y: 0, width: width, height: 1) }
    public var hints: Rect { Rect(x: 0, y: height - 2, width: width, height: 1) }
    public var status: Rect { Rect(x: 0, y: height - 1, width: width, height: 1) }
    var bodyHeight: Int { max(height - 3, 0) }

    public var tables: Rect {
        Rect(x: 0, y: 1, width: showTables ? (width >= 160 ? 28 : width >= 120 ? 24 : 18) : 0, height: bodyHeight)
    }

    public var pane: Rect {
        let paneWidth = showPane ? (width >= 160 ? 52 : width >= 120 ? 40 : 27) : 0
        return Rect(x: width - paneWidth, y: 1, width: paneWidth, height: bodyHeight)
    }

    public var grid: Rect {
        Rect(x: tables.width, y: 1, width: max(pane.x - tables.width, 0), height: bodyHeight)
    }

    /// Data rows of the grid: below its title, column names and types.
    public var gridBody: Rect {
        Rect(x: grid.x, y: grid.y + 3, width: grid.width, height: max(grid.height - 3, 0))
    }
}
