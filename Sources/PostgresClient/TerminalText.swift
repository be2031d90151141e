/// Text from a server or a table, made safe to show in a terminal: nothing in it can move
/// the cursor, change colours, reorder what follows, or hide itself.
public enum TerminalText {
    /// The character a terminal shows for `character`: `↵` for line breaks, `→` for tabs,
    /// `·` for C0 and C1 controls (ESC, CSI …), bidirectional overrides and isolates, and
    /// zero-width characters; anything else unchanged.
    public static func visible(_ character: Character) -> Character {
        switch character {
        case "\n", "\r\n", "\r": return "↵"
        case "\t": return "→"
        default:
            for scalar in character.unicodeScalars where isHidden(scalar) { return "·" }
            return character
        }
    }

    /// `text` with every character made ``visible(_:)``; with `keepingLineBreaks`, line
    /// breaks stay (multi-line output such as an error with its DETAIL line).
    public static func sanitized(_ text: String, keepingLineBreaks: Bool = false) -> String {
        guard text.unicodeScalars.contains(where: { isHidden($0) || $0 == "\t" || $0 == "\n" || $0 == "\r" }) else { return text }
        return String(text.map { character in keepingLineBreaks && character == "\n" ? character : visible(character) })
    }

    /// Controls, bidi controls and invisible formatting characters. The zero-width joiner
    /// inside an emoji sequence is kept: it is part of one visible character.
    static func isHidden(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F: return true  // C0, DEL, C1
        case 0x200B, 0x200C, 0x200E, 0x200F: return true  // zero width space / non-joiner, LRM, RLM
        case 0x202A...0x202E, 0x2066...0x2069: return true  // embeddings, overrides, isolates
        case 0x2060...0x2064, 0xFEFF, 0x061C, 0x180E: return true  // word joiner, invisible operators, BOM, ALM, MVS
        default: return false
        }
    }
}
