// Each mode interprets the commands of its key scopes on its own value; the reducer only
// turns the outcome into state changes and effects.

/// What an editor (cell or row form) asks for after a command.
enum EditorOutcome: Equatable {
    case stay, cancel, save, quit, external
}

extension CellEdit {
    mutating func handle(_ command: Command, key: Key) -> EditorOutcome {
        switch command {
        case .save: return .save
        case .cancel: return .cancel
        case .quit: return .quit
        case .externalEdit: return .external
        default:
            _ = field.handle(key)
            return .stay
        }
    }
}

extension RowForm {
    mutating func handle(_ command: Command, key: Key) -> EditorOutcome {
        if command != .cancel { discardArmed = false }
        switch command {
        case .cancel: return .cancel
        case .quit: return .quit
        case .save: return .save
        case .next:
            if key == .enter && cursor == fields.count - 1 { return .save }
            cursor = min(cursor + 1, max(fields.count - 1, 0))
        case .previous:
            cursor = max(cursor - 1, 0)
        default:
            // A value shown cut cannot be edited here (Enter on the cell fetches it whole).
            if fields.indices.contains(cursor), long[cursor] == nil, fields[cursor].handle(key) { touched.insert(cursor) }
        }
        return .stay
    }
}

extension FilterPrompt {
    enum Outcome: Equatable { case stay, cancel, apply }

    mutating func handle(_ command: Command, key: Key, columnCount: Int) -> Outcome {
        guard columnCount > 0 else { return command == .cancel || command == .save ? .cancel : .stay }
        let operators = FilterOperator.allCases
        let index = operators.firstIndex(of: op) ?? 0
        switch command {
        case .cancel: return .cancel
        case .save: return .apply
        case .previous: column = (column + columnCount - 1) % columnCount
        case .next: column = (column + 1) % columnCount
        case .nextOperator: op = operators[(index + 1) % operators.count]
        case .previousOperator: op = operators[(index + operators.count - 1) % operators.count]
        default: _ = field.handle(key)
        }
        return .stay
    }
}

extension FailoverView {
    enum Outcome: Equatable {
        case stay, close, rerun
        case promote(String)
        case message(String, error: Bool)
    }

    mutating func handle(_ command: Command, key: Key) -> Outcome {
        if var field = confirmation {
            switch command {
            case .cancel:
                confirmation = nil
                return .message("promotion cancelled", error: false)
            case .confirm:
                confirmation = nil
                let target = candidates.indices.contains(selected) ? candidates[selected].node : nil
                guard let target, field.value == target else {
                    return .message("the name does not match \(target ?? "a candidate"): nothing promoted", error: true)
                }
                return .promote(target)
            default:
                _ = field.handle(key)
                confirmation = field
                return .stay
            }
        }
        switch command {
        case .cancel: return .close
        case .rerun: return .rerun
        case .up: selected = max(selected - 1, 0)
        case .down: selected = min(selected + 1, max(candidates.count - 1, 0))
        case .promote:
            guard candidates.indices.contains(selected) else { return .message("no replica to promote", error: true) }
            confirmation = TextField("")
            return .message("type \(candidates[selected].node) and Enter to promote it; Esc cancels", error: false)
        default: break
        }
        return .stay
    }
}

extension HelpView {
    /// True while the help stays open.
    mutating func handle(_ command: Command, lineCount: Int, visible: Int) -> Bool {
        let most = max(lineCount - visible, 0)
        switch command {
        case .scrollUp: scroll = max(min(scroll, most) - 1, 0)
        case .scrollDown: scroll = min(scroll + 1, most)
        default: return false
        }
        return true
    }
}

extension HistoryView {
    enum Outcome: Equatable {
        case stay, close, reload
        case prepareRevert(ChangeAudit.Entry)
        case revert(RevertPlan)
        case message(String)
    }

    mutating func handle(_ command: Command) -> Outcome {
        if let plan = revert {
            revert = nil
            return command == .confirm ? .revert(plan) : .message("revert cancelled: nothing written")
        }
        if conflict != nil {
            conflict = nil
            return .stay
        }
        switch command {
        case .revert:
            if entries.indices.contains(selected) { return .prepareRevert(entries[selected]) }
        case .cancel:
            if detail {
                detail = false
                return .stay
            }
            return .close
        case .refresh: return .reload
        case .up: if !detail { selected = max(selected - 1, 0) }
        case .down: if !detail { selected = min(selected + 1, max(entries.count - 1, 0)) }
        case .open: if !entries.isEmpty { detail.toggle() }
        default: break
        }
        return .stay
    }
}

extension ReferencesView {
    enum Outcome: Equatable { case stay, close, open(Referencing) }

    mutating func handle(_ command: Command) -> Outcome {
        switch command {
        case .cancel: return .close
        case .up: selected = max(selected - 1, 0)
        case .down: selected = min(selected + 1, max(items.count - 1, 0))
        case .open: if items.indices.contains(selected) { return .open(items[selected]) }
        default: break
        }
        return .stay
    }
}

extension PickList {
    enum Outcome: Equatable { case stay, cancel, save(String?) }

    mutating func handle(_ command: Command) -> Outcome {
        switch command {
        case .cancel: return .cancel
        case .up: selected = max(selected - 1, 0)
        case .down: selected = min(selected + 1, max(choices.count - 1, 0))
        case .save: if choices.indices.contains(selected) { return .save(choices[selected]) }
        default: break
        }
        return .stay
    }
}
