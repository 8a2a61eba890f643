import BerthCore
import NIOConcurrencyHelpers

/// In-process state of uploads: the running digest of each session and which ids a request is working on.
///
/// The bytes themselves are in the blob store; this only saves re-reading them. After a restart (or a failed
/// request) the state is simply missing and the digest is rebuilt from the stored bytes.
final class UploadTracker: Sendable {
    /// The digest computed so far over the first `hashedBytes` bytes of an upload.
    struct HashState: Sendable {
        var hasher: DigestHasher
        var hashedBytes: Int64

        init(_ algorithm: Digest.Algorithm) {
            hasher = DigestHasher(algorithm)
            hashedBytes = 0
        }
    }

    private struct Entry {
        var hash: HashState?
        var busy: Bool
    }

    private let entries = NIOLockedValueBox<[String: Entry]>([:])

    /// Marks an upload busy for one request and hands over its hash state.
    /// - Returns: nil when another request is already working on this upload.
    func claim(_ id: String) -> HashState?? {
        entries.withLockedValue { entries in
            var entry = entries[id] ?? Entry(hash: nil, busy: false)
            guard !entry.busy else { return nil }
            entry.busy = true
            let hash = entry.hash
            entry.hash = nil
            entries[id] = entry
            return .some(hash)
        }
    }

    /// Ends a request's work on an upload, keeping the hash state for the next chunk (nil forgets it).
    func release(_ id: String, keeping hash: HashState?) {
        // An idle entry without state says nothing: drop it (a failed upload may already be gone).
        entries.withLockedValue { $0[id] = hash.map { Entry(hash: $0, busy: false) } }
    }

    /// Forgets an upload entirely (committed or cancelled).
    func remove(_ id: String) {
        entries.withLockedValue { _ = $0.removeValue(forKey: id) }
    }

    func isBusy(_ id: String) -> Bool {
        entries.withLockedValue { $0[id]?.busy ?? false }
    }
}
