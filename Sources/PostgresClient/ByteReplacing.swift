extension String {
    /// Every occurrence of `target`'s UTF-8 bytes replaced by `replacement`, left to right.
    /// Byte-exact where Foundation's `replacingOccurrences` compares by characters (a secret
    /// that starts with a combining mark, or one holding NUL, is found wherever its bytes
    /// are — and Foundation's search traps on some of those inputs).
    package func replacingBytes(of target: String, with replacement: String) -> String {
        let needle = Array(target.utf8)
        let haystack = Array(utf8)
        guard !needle.isEmpty, needle.count <= haystack.count else { return self }
        var result: [UInt8] = []
        result.reserveCapacity(haystack.count)
        var index = 0
        var changed = false
        while index < haystack.count {
            if haystack[index] == needle[0], index + needle.count <= haystack.count,
               haystack[index..<index + needle.count].elementsEqual(needle) {
                result.append(contentsOf: replacement.utf8)
                index += needle.count
                changed = true
            } else {
                result.append(haystack[index])
                index += 1
            }
        }
        return changed ? String(decoding: result, as: UTF8.self) : self
    }
}

extension String {
    /// Whether `other`'s UTF-8 bytes occur in this string's (the empty string always does).
    package func containsBytes(_ other: String) -> Bool {
        other.isEmpty || replacingBytes(of: other, with: "") != self
    }
}
