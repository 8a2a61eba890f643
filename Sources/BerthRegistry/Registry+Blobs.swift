import BerthCore
import BerthStorage
import BerthUpstream
import Logging
import NIOCore

extension Registry {
    /// Size of a blob readable in the image (for a group: in any member), or `BLOB_UNKNOWN`.
    public func blobStat(_ digest: Digest, in image: ImageRef) async throws -> BlobStat {
        try validate(image)
        var failure: RegistryError?
        for (source, backing) in try readSources(image) {
            if let size = try await metadata.linkedBlobSize(digest, in: source) {
                return BlobStat(size: size)
            }
            guard case .proxy(let proxy) = backing else { continue }
            if let size = proxy.inflightSize(digest) { return BlobStat(size: size) }
            if proxy.isKnownMissing(source.image, digest.description) { continue }
            do {
                let size = try await proxy.call { () async throws(UpstreamError) in try await proxy.client.headBlob(source.image, digest) }
                if let size { return BlobStat(size: size) }
            } catch .notFound {
                proxy.rememberMissing(source.image, digest.description)
            } catch {
                failure = failure ?? Self.registryError(error, what: digest.description)
            }
        }
        throw failure ?? RegistryError(.blobUnknown, detail: digest.description)
    }

    /// A URL to send the client to for a blob stored in this image, when the blob store serves clients itself
    /// (presigned object-storage URLs); nil means stream it. Blobs a proxy has not cached yet are never redirected.
    public func blobRedirect(_ digest: Digest, in image: ImageRef) async throws -> String? {
        guard let redirecting = blobs as? any BlobRedirecting else { return nil }
        try validate(image)
        for (source, _) in try readSources(image) where try await metadata.linkedBlobSize(digest, in: source) != nil {
            return redirecting.redirectURL(for: digest)
        }
        return nil
    }

    /// Opens a blob for reading, or throws `BLOB_UNKNOWN`. A proxy repository that does not have it yet streams
    /// it from the upstream while caching it.
    public func openBlob(_ digest: Digest, in image: ImageRef) async throws -> any BlobReadHandle {
        try validate(image)
        var failure: RegistryError?
        for (source, backing) in try readSources(image) {
            if try await metadata.linkedBlobSize(digest, in: source) != nil {
                if let handle = try await blobs.open(digest) { return handle }
                logger.error("linked blob missing from blob store", metadata: ["digest": "\(digest)", "image": "\(source)"])
            }
            guard case .proxy(let proxy) = backing, !proxy.isKnownMissing(source.image, digest.description) else { continue }
            do {
                let fetch = try await proxy.fetch(digest, image: source, blobs: blobs, metadata: metadata, tracker: tracker)
                return InflightReadHandle(fetch: fetch, blobs: blobs)
            } catch .notFound {
                proxy.rememberMissing(source.image, digest.description)
            } catch {
                failure = failure ?? Self.registryError(error, what: digest.description)
            }
        }
        throw failure ?? RegistryError(.blobUnknown, detail: digest.description)
    }

    /// Removes a blob from the image (its bytes stay until garbage collection; other images keep theirs).
    public func deleteBlob(_ digest: Digest, in image: ImageRef) async throws {
        try validate(image)
        let target = try writeTarget(image)
        guard try await metadata.unlinkBlob(digest, in: target) else {
            throw RegistryError(.blobUnknown, detail: digest.description)
        }
    }

    /// Cross-repository mount: links a blob of `source` (or of any member, for a group) into `target`.
    /// - Returns: false when the source does not have the blob (the client then uploads it).
    public func mountBlob(_ digest: Digest, from source: ImageRef, to target: ImageRef) async throws -> Bool {
        try validate(target)
        let target = try writeTarget(target)
        guard (try? validate(source)) != nil, let size = try await linkedSize(digest, in: source), try await blobs.stat(digest) != nil else {
            return false
        }
        try await metadata.linkBlob(digest, size: size, in: target)
        return true
    }

    /// The size of a blob already stored for the image or any member of it (no upstream call).
    func linkedSize(_ digest: Digest, in image: ImageRef) async throws -> Int64? {
        for (source, _) in try readSources(image) {
            if let size = try await metadata.linkedBlobSize(digest, in: source) { return size }
        }
        return nil
    }

    /// An upstream failure as the client should see it: a rate limit stays a rate limit.
    static func registryError(_ error: UpstreamError, what: String) -> RegistryError {
        switch error {
        case .notFound: RegistryError(.blobUnknown, detail: what)
        case .tooManyRequests(let retryAfter):
            RegistryError(.tooManyRequests, "the upstream registry's rate limit was reached and nothing is cached", detail: retryAfter.map { "retry after \($0) s" })
        case .denied(let status): RegistryError(.unavailable, "the upstream registry refused access (HTTP \(status)); check the proxy's credentials", detail: what)
        case .unavailable(let why): RegistryError(.unavailable, "the upstream registry is unavailable and nothing is cached", detail: why)
        case .blocked: RegistryError(.unavailable, "the upstream registry is blocked after repeated failures and nothing is cached", detail: what)
        }
    }
}
