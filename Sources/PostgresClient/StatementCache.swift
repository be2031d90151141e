/// Which statements a connection has prepared on its server, by SQL text and parameter
/// types, least recently used first out.
///
/// A prepared statement is parsed and planned once per connection instead of on every
/// call. Pure bookkeeping: the connection sends the Parse, Execute and DEALLOCATE
/// messages this asks for.
public struct StatementCache: Sendable {
    public struct Key: Hashable, Sendable {
        public var sql: String
        public var types: [UInt32]

        public init(sql: String, types: [UInt32]) {
            self.sql = sql
            self.types = types
        }
    }

    /// What to send for a statement.
    public enum Plan: Equatable, Sendable {
        /// Not cached (the cache is off): send it unnamed, parsed and planned every time.
        case unnamed
        /// Prepared before under this name: execute it.
        case execute(name: String)
        /// New: prepare it under `name`, then execute; first drop `evicting` (the least
        /// recently used) from the server when the cache was full.
        case prepare(name: String, evicting: String?)
    }

    public let capacity: Int
    /// Longer statements are sent unnamed: keeping them would hold their text here and
    /// their plans on the server for statements that rarely repeat.
    public static let longestCached = 16 << 10
    private var entries: [Key: (name: String, used: UInt64)] = [:]
    private var clock: UInt64 = 0
    private var nextName: UInt64 = 0

    public init(capacity: Int) {
        self.capacity = max(capacity, 0)
    }

    public var count: Int { entries.count }

    /// The plan for `key`, noting the use. A `.prepare` is counted as cached at once; call
    /// ``forget(_:)`` if preparing it fails.
    public mutating func plan(_ key: Key) -> Plan {
        guard Self.caches(key, capacity: capacity) else { return .unnamed }
        clock += 1
        if let entry = entries[key] {
            entries[key] = (entry.name, clock)
            return .execute(name: entry.name)
        }
        var evicting: String?
        if entries.count >= capacity, let oldest = entries.min(by: { $0.value.used < $1.value.used }) {
            evicting = oldest.value.name
            entries.removeValue(forKey: oldest.key)
        }
        nextName += 1
        let name = "switchyard_\(nextName)"
        entries[key] = (name, clock)
        return .prepare(name: name, evicting: evicting)
    }

    /// Whether `key` is kept prepared at all: not when the cache is off, not for very long
    /// statements, and not for those that discard prepared statements themselves.
    static func caches(_ key: Key, capacity: Int) -> Bool {
        capacity > 0 && key.sql.utf8.count <= longestCached && !discardsPrepared(key.sql)
    }

    /// The name `key` is prepared under, noting the use; nil when it is not cached.
    public mutating func hit(_ key: Key) -> String? {
        guard let entry = entries[key] else { return nil }
        clock += 1
        entries[key] = (entry.name, clock)
        return entry.name
    }

    /// Drops `key` (its prepare failed, or the server no longer has it).
    public mutating func forget(_ key: Key) {
        entries.removeValue(forKey: key)
    }

    /// Drops everything (the session's prepared statements were discarded).
    public mutating func removeAll() {
        entries.removeAll()
    }

    /// Whether `sql` discards the session's prepared statements (`DISCARD ALL`,
    /// `DEALLOCATE ALL`), so the cache must forget them too.
    public static func discardsPrepared(_ sql: String) -> Bool {
        // On every statement: look at the first word only, byte by byte.
        var bytes = sql.utf8.makeIterator()
        var word: [UInt8] = []
        while let byte = bytes.next() {
            let lower = byte | 0x20
            if byte == 0x20 || byte == 0x0A || byte == 0x09 || byte == 0x0D {
                if word.isEmpty { continue }
                break
            }
            guard lower >= 0x61, lower <= 0x7A, word.count < 10 else { break }
            word.append(lower)
        }
        return word == Self.discard || word == Self.deallocate
    }

    private static let discard = Array("discard".utf8)
    private static let deallocate = Array("deallocate".utf8)
}
