import AsyncHTTPClient
import BerthCore
import BerthStorage
import BerthUpstream
import Dispatch
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// A pull-through cache of a remote registry: the upstream is one more reader in front of the local cache.
///
/// Cached content lives in the shared blob store and the metadata store under this repository's name, like a
/// hosted repository's; this type decides when to ask the upstream, shares concurrent downloads, remembers
/// what the upstream did not have, and stops asking an upstream that keeps failing.
final class ProxyRepository: Sendable {
    let name: String
    let settings: ProxySettings
    let client: RegistryClient
    private let logger: Logger
    /// Negative cache: "image@reference" → expiry (uptime ns).
    private let missing = NIOLockedValueBox<[String: UInt64]>([:])
    /// Consecutive failures and the uptime until which the upstream is blocked.
    private let health = NIOLockedValueBox<(failures: Int, blockedUntil: UInt64)>((0, 0))
    /// Downloads in progress (or connecting), by digest.
    private let inflight = NIOLockedValueBox<[Digest: PendingFetch]>([:])

    init(name: String, settings: ProxySettings, logger: Logger) {
        self.name = name
        self.settings = settings
        self.client = RegistryClient(settings.client, logger: logger)
        self.logger = logger
    }

    static func uptime() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    // MARK: Negative cache and auto-block

    func isKnownMissing(_ image: String, _ reference: String) -> Bool {
        let key = image + "@" + reference
        return missing.withLockedValue { table in
            guard let expiry = table[key] else { return false }
            if expiry > Self.uptime() { return true }
            table[key] = nil
            return false
        }
    }

    func rememberMissing(_ image: String, _ reference: String) {
        guard settings.negativeCacheTTL > 0 else { return }
        missing.withLockedValue { $0[image + "@" + reference] = Self.uptime() + UInt64(settings.negativeCacheTTL) * 1_000_000_000 }
    }

    func clearCaches() {
        missing.withLockedValue { $0 = [:] }
        health.withLockedValue { $0 = (0, 0) }
    }

    /// Runs an upstream call, counting failures for the auto-block and refusing while blocked.
    func call<T>(_ work: () async throws(UpstreamError) -> T) async throws(UpstreamError) -> T {
        if settings.autoBlock, health.withLockedValue({ $0.blockedUntil }) > Self.uptime() {
            throw .blocked
        }
        do {
            let value = try await work()
            health.withLockedValue { $0.failures = 0 }
            return value
        } catch {
            if case .unavailable = error, settings.autoBlock {
                health.withLockedValue { health in
                    health.failures += 1
                    if health.failures >= 3 {
                        // 1 min after the third failure in a row, doubling up to an hour.
                        let minutes = min(60, 1 << min(6, health.failures - 3))
                        health.blockedUntil = Self.uptime() + UInt64(minutes) * 60_000_000_000
                        logger.warning("upstream blocked after repeated failures", metadata: ["repository": "\(name)", "minutes": "\(minutes)"])
                    }
                }
            }
            throw error
        }
    }

    // MARK: Blob downloads

    /// Joins the download of `digest` in progress, or starts one. The first request registers the download
    /// before it even connects, so every request that arrives meanwhile waits for that one upstream `GET`.
    /// The download runs to its end even when the client that started it goes away, so the cache and the
    /// other readers still get the blob.
    func fetch(_ digest: Digest, image: ImageRef, blobs: any BlobStore, metadata: any MetadataStore, tracker: UploadTracker) async throws(UpstreamError) -> InflightFetch {
        let (pending, leader) = inflight.withLockedValue { table -> (PendingFetch, Bool) in
            if let running = table[digest] { return (running, false) }
            let pending = PendingFetch()
            table[digest] = pending
            return (pending, true)
        }
        guard leader else { return try await pending.value() }
        let download: RegistryClient.BlobDownload
        do throws(UpstreamError) {
            download = try await call { () async throws(UpstreamError) in try await client.getBlob(image.image, digest) }
            guard download.size != nil else {
                Task { for try await _ in download.body {} }
                throw UpstreamError.unavailable("the upstream sent no Content-Length for \(digest)")
            }
        } catch {
            _ = inflight.withLockedValue { $0.removeValue(forKey: digest) }
            pending.resolve(.failure(error))
            throw error
        }
        let id = Registry.newUploadID()
        let fetch = InflightFetch(uploadID: id, digest: digest, size: download.size!)
        pending.resolve(.success(fetch))
        // Marked busy so the purger of abandoned uploads leaves the download's file alone.
        _ = tracker.claim(id)
        Task {
            defer { tracker.remove(id) }
            do {
                try await self.download(download, into: fetch, image: image, blobs: blobs, metadata: metadata)
                fetch.update(.committed)
            } catch {
                self.logger.warning("upstream blob transfer failed; nothing cached", metadata: ["repository": "\(self.name)", "digest": "\(digest)", "error": "\(error)"])
                try? await blobs.deleteUpload(id: id)
                fetch.update(.failed("\(error)"))
            }
            _ = self.inflight.withLockedValue { $0.removeValue(forKey: digest) }
        }
        return fetch
    }

    /// Writes the upstream body to an upload in 1 MiB steps, telling readers after each; verifies and commits.
    private func download(_ download: RegistryClient.BlobDownload, into fetch: InflightFetch, image: ImageRef, blobs: any BlobStore, metadata: any MetadataStore) async throws {
        try await blobs.createUpload(id: fetch.uploadID)
        let writer = try await blobs.appendToUpload(id: fetch.uploadID)
        var hasher = DigestHasher(fetch.digest.algorithm)
        var written: Int64 = 0
        var pending = ByteBuffer()
        let step = 1 << 20
        do {
            for try await buffer in download.body {
                buffer.withUnsafeReadableBytes { hasher.update($0) }
                var b = buffer
                pending.writeBuffer(&b)
                if pending.readableBytes >= step {
                    let chunk = pending
                    pending = ByteBuffer()
                    try await writer.write(chunk)
                    written += Int64(chunk.readableBytes)
                    // Readers may read what the store can return already (a folder: all of it; object storage:
                    // whole parts), not merely what was handed over.
                    fetch.update(.writing(await writer.readableEnd()))
                }
            }
            if pending.readableBytes > 0 {
                try await writer.write(pending)
                written += Int64(pending.readableBytes)
            }
            try await writer.finish()
        } catch {
            await writer.abandon()
            throw error
        }
        fetch.update(.writing(written))
        guard written == fetch.size else {
            throw UpstreamError.unavailable("upstream sent \(written) of \(fetch.size) bytes")
        }
        let actual = hasher.finalize()
        guard actual == fetch.digest else {
            throw UpstreamError.unavailable("upstream content of \(fetch.digest) hashes to \(actual)")
        }
        try await blobs.commitUpload(id: fetch.uploadID, as: fetch.digest)
        try await metadata.linkBlob(fetch.digest, size: written, in: image)
    }

    func inflightSize(_ digest: Digest) -> Int64? {
        inflight.withLockedValue { $0[digest] }?.resolvedSize
    }
}
