@testable import Console
import PropertyBased
import Testing

/// Wide characters on the cell grid: a wide character is always whole (its right half a
/// continuation), whatever is drawn over part of it.
@Suite struct ScreenCellTests {
    static func consistent(_ screen: Screen) -> Bool {
        for y in 0..<screen.height {
            for x in 0..<screen.width {
                let cell = screen[x, y]
                if cell.width == 2 && (x + 1 >= screen.width || screen[x + 1, y].width != 0) { return false }
                if cell.width == 0 && (x == 0 || screen[x - 1, y].width != 2) { return false }
            }
        }
        return true
    }

    @Test func anOverlayOverHalfAWideCharacterLeavesNoHalfBehind() {
        var screen = Screen(width: 12, height: 2)
        screen.put("山田 10", x: 0, y: 0, role: .normal)
        // A box edge over the right half of 山, then over the left half of 田.
        screen.put("│", x: 1, y: 0, role: .border)
        #expect(screen[0, 0].character == " " && screen[0, 0].width == 1)
        screen.fill(x: 2, y: 0, width: 1, height: 1, role: .border)
        #expect(screen[3, 0].width == 1 && screen[3, 0].character == " ")
        #expect(Self.consistent(screen))
        // Redrawn whole, the row is the text again.
        screen.put("山田 10", x: 0, y: 0, role: .normal)
        #expect((0..<6).map { screen[$0, 0].character } == ["山", " ", "田", " ", " ", "1"])
    }

    @Test func anyDrawingKeepsEveryWideCharacterWhole() async {
        let text = Gen.element(of: ["山田", "a", "😀", "é", "e\u{301}", " ", "│", "東京タワー", "x山"]).map { $0! }.array(of: 1...4).map { $0.joined() }
        let step = zip(text, Gen.int(in: -2...14), Gen.int(in: 0...2), Gen.int(in: 0...3), Gen.int(in: 0...1))
        await propertyCheck(count: 3000, input: step.array(of: 1...12)) { steps in
            var screen = Screen(width: 12, height: 3)
            for (text, x, y, width, kind) in steps {
                if kind == 0 {
                    screen.put(text, x: x, y: y, role: .normal)
                } else {
                    screen.fill(x: x, y: y, width: width, height: 1, role: .border)
                }
                #expect(Self.consistent(screen), "\(steps)")
            }
        }
    }
}
