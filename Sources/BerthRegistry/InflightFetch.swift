import BerthCore
import BerthStorage
import BerthUpstream
import NIOConcurrencyHelpers
import NIOCore

/// One upstream blob download that is written to the cache while any number of clients read it.
///
/// The leader appends to an upload of the blob store and reports how many bytes are in the file; readers
/// wait for the bytes they need and read them back from the file, then from the committed blob once it is
/// there. A failed download fails its readers and is never committed.
final class InflightFetch: Sendable {
    enum Progress: Sendable {
        case writing(Int64)
        case committed
        case failed(String)
    }

    let uploadID: String
    let digest: Digest
    /// Known once the upstream answered (its Content-Length).
    let size: Int64
    private let state = NIOLockedValueBox<(progress: Progress, waiters: [(Int64, CheckedContinuation<Progress, Never>)])>((.writing(0), []))

    init(uploadID: String, digest: Digest, size: Int64) {
        self.uploadID = uploadID
        self.digest = digest
        self.size = size
    }

    /// Waits until byte `offset` is in the file, or the fetch ended.
    func wait(for offset: Int64) async -> Progress {
        await withCheckedContinuation { continuation in
            let ready: Progress? = state.withLockedValue { state in
                switch state.progress {
                case .writing(let written) where written <= offset:
                    state.waiters.append((offset, continuation))
                    return nil
                default:
                    return state.progress
                }
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    func update(_ progress: Progress) {
        let ready: [(CheckedContinuation<Progress, Never>)] = state.withLockedValue { state in
            state.progress = progress
            var ready: [CheckedContinuation<Progress, Never>] = []
            state.waiters.removeAll { offset, continuation in
                if case .writing(let written) = progress, written <= offset { return false }
                ready.append(continuation)
                return true
            }
            return ready
        }
        for continuation in ready { continuation.resume(returning: progress) }
    }
}

/// A download that is registered but may still be connecting: later requests wait here for its outcome.
final class PendingFetch: Sendable {
    private let state = NIOLockedValueBox<(result: Result<InflightFetch, UpstreamError>?, waiters: [CheckedContinuation<Result<InflightFetch, UpstreamError>, Never>])>((nil, []))

    func value() async throws(UpstreamError) -> InflightFetch {
        let result = await withCheckedContinuation { continuation in
            let ready: Result<InflightFetch, UpstreamError>? = state.withLockedValue { state in
                if let result = state.result { return result }
                state.waiters.append(continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
        return try result.get()
    }

    func resolve(_ result: Result<InflightFetch, UpstreamError>) {
        let waiters = state.withLockedValue { state in
            state.result = result
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: result) }
    }

    var resolvedSize: Int64? {
        state.withLockedValue { state in
            if case .success(let fetch)? = state.result { return fetch.size }
            return nil
        }
    }
}

/// Reads a blob that is still being fetched, as any blob handle.
struct InflightReadHandle: BlobReadHandle {
    let fetch: InflightFetch
    let blobs: any BlobStore

    var size: Int64 { fetch.size }

    func read(at offset: Int64, length: Int) async throws -> ByteBuffer {
        while true {
            switch await fetch.wait(for: offset) {
            case .failed(let why):
                throw RegistryError(.unavailable, "upstream transfer failed", detail: why)
            case .committed:
                return try await readCommitted(at: offset, length: length)
            case .writing(let written):
                do {
                    return try await blobs.readUpload(id: fetch.uploadID, at: offset, length: Int(min(Int64(length), written - offset)))
                } catch {
                    // The upload file is renamed on commit; the bytes are then in the blob.
                    if case .committed = await fetch.wait(for: Int64.max - 1) {
                        return try await readCommitted(at: offset, length: length)
                    }
                    throw error
                }
            }
        }
    }

    private func readCommitted(at offset: Int64, length: Int) async throws -> ByteBuffer {
        guard let handle = try await blobs.open(fetch.digest) else {
            throw RegistryError(.blobUnknown, detail: fetch.digest.description)
        }
        defer { Task { try? await handle.close() } }
        return try await handle.read(at: offset, length: length)
    }

    func close() async throws {}
}
