import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Files that may hold secrets: never readable by anyone else, not even for a moment.
public enum PrivateFile {
    /// Writes `data` to `path`: into a new file created 0600 with `O_EXCL` beside it (so
    /// never through a planted file or link), synced, then renamed over `path` — a reader
    /// sees the old contents or the new, and a link at `path` is replaced, not followed.
    /// `mode` is set on the new file before it takes `path`'s place (0600 unless a file
    /// others must read — an installed program, a metrics file — asks for more).
    public static func write(_ data: Data, to path: String, mode: mode_t = 0o600) throws {
        let directory = (path as NSString).deletingLastPathComponent
        var template = Array(((directory.isEmpty ? "." : directory) + "/.switchyard-XXXXXX").utf8CString)
        let descriptor = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard descriptor >= 0 else { throw failure("cannot create a file beside \(path)") }
        let temporary = String(cString: template)
        do {
            try writeAll(data, to: descriptor, path: path)
            guard fsync(descriptor) == 0 else { throw failure("cannot write \(path)") }
            if mode != 0o600 { guard fchmod(descriptor, mode) == 0 else { throw failure("cannot write \(path)") } }
            close(descriptor)
            guard rename(temporary, path) == 0 else { throw failure("cannot write \(path)") }
        } catch {
            close(descriptor)
            unlink(temporary)
            throw error
        }
    }

    /// Creates a new file at `path` (0600, `O_EXCL`: an existing file or link is an error,
    /// never reused) holding `data`.
    public static func create(_ data: Data, at path: String, mode: mode_t = 0o600) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard descriptor >= 0 else { throw failure("cannot create \(path)") }
        defer { close(descriptor) }
        do {
            try writeAll(data, to: descriptor, path: path)
        } catch {
            unlink(path)
            throw error
        }
    }

    /// A new directory only this user can enter (`mkdtemp`, 0700) under the system's
    /// temporary directory.
    public static func makeDirectory(prefix: String) throws -> URL {
        let base = FileManager.default.temporaryDirectory.path
        var template = Array((base + "/" + prefix + "-XXXXXX").utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw failure("cannot create a private directory in \(base)")
        }
        return URL(fileURLWithPath: String(cString: template), isDirectory: true)
    }

    private static func writeAll(_ data: Data, to descriptor: Int32, path: String) throws {
        try data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = Glibc.write(descriptor, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw failure("cannot write \(path)")
                }
                offset += written
            }
        }
    }

    private static func failure(_ what: String) -> LocalClusterError {
        LocalClusterError(.directoryNotUsable, "\(what): \(String(cString: strerror(errno)))")
    }
}
