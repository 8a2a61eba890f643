import Foundation
import Logging
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// Gives back the pages of Berth's own executable that only start-up used.
///
/// Start-up runs code and reads tables that serving never touches again: argument and configuration parsing,
/// database migrations, the relocation and symbol tables the dynamic loader reads once. The kernel maps file
/// pages 64 KiB at a time, so by the time Berth serves, about 30 MiB of its executable count in its RSS. Unmapping
/// the executable's read-only, never-written mappings costs nothing lasting: the pages stay in the page cache,
/// and whatever code runs again is mapped back on its first use (a minor fault).
enum StartupPages {
    /// One mapping of `/proc/self/smaps`.
    struct Mapping: Equatable {
        var start: UInt
        var end: UInt
        var permissions: String
        var path: String
        /// Kilobytes mapped in.
        var residentKiB: Int
        /// Kilobytes that are private copies: pages this process wrote to (e.g. relocated at load).
        var anonymousKiB: Int
    }

    /// The mappings that may be dropped: the executable's own, not writable, and never written (no private
    /// copies, which `MADV_DONTNEED` would throw away, e.g. the relocated read-only data after RELRO).
    static func releasable(_ mappings: [Mapping], executable: String) -> [Mapping] {
        mappings.filter { $0.path == executable && !$0.permissions.contains("w") && $0.anonymousKiB == 0 }
    }

    /// Parses `/proc/<pid>/smaps` text.
    static func parse(smaps: String) -> [Mapping] {
        var mappings: [Mapping] = []
        for line in smaps.split(separator: "\n", omittingEmptySubsequences: true) {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let first = fields.first else { continue }
            if first.last == ":" {
                guard !mappings.isEmpty, fields.count >= 2, let kib = Int(fields[1]) else { continue }
                switch first {
                case "Rss:": mappings[mappings.count - 1].residentKiB = kib
                case "Anonymous:": mappings[mappings.count - 1].anonymousKiB = kib
                default: break
                }
                continue
            }
            // start-end perms offset dev inode [path]
            let range = first.split(separator: "-")
            guard range.count == 2, fields.count >= 5, let start = UInt(range[0], radix: 16), let end = UInt(range[1], radix: 16) else {
                continue
            }
            let path = fields.count >= 6 ? fields[5...].joined(separator: " ") : ""
            mappings.append(Mapping(start: start, end: end, permissions: String(fields[1]), path: path, residentKiB: 0, anonymousKiB: 0))
        }
        return mappings
    }

    /// Unmaps the releasable pages; returns how many resident KiB they held.
    @discardableResult
    static func release() -> Int {
        #if os(Linux)
        guard let smaps = try? String(contentsOfFile: "/proc/self/smaps", encoding: .utf8),
            let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        else { return 0 }
        var released = 0
        for mapping in releasable(parse(smaps: smaps), executable: executable) {
            guard let address = UnsafeMutableRawPointer(bitPattern: mapping.start) else { continue }
            if madvise(address, Int(mapping.end - mapping.start), MADV_DONTNEED) == 0 { released += mapping.residentKiB }
        }
        return released
        #else
        return 0
        #endif
    }

    /// A service that releases the start-up pages once the listeners are up and the first upload purge ran.
    struct Releaser: Service {
        let delay: Duration
        let logger: Logger

        func run() async throws {
            await cancelWhenGracefulShutdown { try? await Task.sleep(for: delay) }
            guard !Task.isCancelled, !Task.isShuttingDownGracefully else { return }
            let kib = StartupPages.release()
            logger.debug("released start-up pages of the executable", metadata: ["KiB": "\(kib)"])
            try? await gracefulShutdown()
        }
    }
}
