import BerthCore
import BerthStorage
import BerthUpstream
import Foundation
import Logging

extension Registry {
    /// A manifest from a proxy repository: cached, or fetched and cached. Nil when the upstream does not have it.
    ///
    /// By digest: the cache is final (content never changes). By tag: the cache answers for `metadata_max_age`;
    /// then a `HEAD` asks the upstream for the tag's digest (free of Docker Hub's pull quota) and a `GET` by
    /// digest happens only when it changed. When the upstream fails, the cached (stale) tag is served.
    func proxyManifest(_ proxy: ProxyRepository, _ reference: Reference, in image: ImageRef) async throws -> ManifestRecord? {
        switch reference {
        case .digest(let digest):
            if let cached = try await metadata.manifest(digest, in: image) { return cached }
            if proxy.isKnownMissing(image.image, digest.description) { return nil }
            let fetched: (bytes: [UInt8], mediaType: String?)
            do throws(UpstreamError) {
                fetched = try await proxy.call { () async throws(UpstreamError) in try await proxy.client.getManifest(image.image, digest.description) }
            } catch .notFound {
                proxy.rememberMissing(image.image, digest.description)
                return nil
            } catch {
                throw Self.manifestError(error, reference)
            }
            return try await cacheManifest(fetched.bytes, fetched.mediaType, expected: digest, tag: nil, in: image)
        case .tag(let tag):
            let cached = try await metadata.tag(tag, in: image)
            let now = Self.now()
            if let cached, now - cached.updatedAt < proxy.settings.metadataMaxAge, let record = try await metadata.manifest(cached.digest, in: image) {
                return record
            }
            if cached == nil, proxy.isKnownMissing(image.image, tag) { return nil }
            do throws(UpstreamError) {
                let head = try await proxy.call { () async throws(UpstreamError) in try await proxy.client.headManifest(image.image, tag) }
                if let cached, head.digest == cached.digest {
                    try? await metadata.touchTag(tag, in: image, at: now)
                    if let record = try? await metadata.manifest(cached.digest, in: image) { return record }
                }
                let fetched = try await proxy.call { () async throws(UpstreamError) in
                    try await proxy.client.getManifest(image.image, head.digest?.description ?? tag)
                }
                do {
                    return try await cacheManifest(fetched.bytes, fetched.mediaType, expected: head.digest, tag: tag, in: image)
                } catch {
                    throw UpstreamError.unavailable("caching the upstream manifest failed: \(error)")
                }
            } catch {
                if let cached, let record = try await metadata.manifest(cached.digest, in: image) {
                    logger.notice("serving cached tag; upstream check failed", metadata: [
                        "repository": "\(image.repository)", "image": "\(image.image)", "tag": "\(tag)", "error": "\(error)",
                    ])
                    return record
                }
                if case .notFound = error {
                    proxy.rememberMissing(image.image, tag)
                    return nil
                }
                throw Self.manifestError(error, reference)
            }
        }
    }

    /// Validates and stores a manifest fetched from upstream, exactly as received.
    private func cacheManifest(_ bytes: [UInt8], _ mediaType: String?, expected: Digest?, tag: String?, in image: ImageRef) async throws -> ManifestRecord {
        let info = try ManifestParser.parse(bytes, contentType: mediaType)
        let digest = Digest.of(bytes, algorithm: expected?.algorithm ?? .sha256)
        if let expected, expected != digest {
            throw RegistryError(.unavailable, "the upstream's manifest does not match its digest", detail: "expected \(expected), got \(digest)")
        }
        let record = ManifestRecord(
            digest: digest, mediaType: info.mediaType, payload: bytes, subject: info.subject,
            artifactType: info.artifactType, annotationsJSON: Self.canonicalJSON(info.annotations))
        // A cache holds what the upstream has, not what it references: children and blobs come on demand.
        try await metadata.putManifest(record, blobs: [], manifests: [], tag: tag, in: image)
        return record
    }

    static func manifestError(_ error: UpstreamError, _ reference: Reference) -> RegistryError {
        if case .notFound = error { return RegistryError(.manifestUnknown, detail: reference.description) }
        return registryError(error, what: reference.description)
    }

    /// Tags of a proxied image: the upstream's list, or the cached tags when it cannot answer.
    func proxyTags(_ proxy: ProxyRepository, in image: ImageRef, after last: String?, limit: Int) async throws -> [String]? {
        do throws(UpstreamError) {
            let all = try await proxy.call { () async throws(UpstreamError) in try await proxy.client.tags(image.image) }
            return Array(Set(all).filter { last == nil || $0 > last! }.sorted().prefix(limit))
        } catch {
            if let cached = try await metadata.tags(in: image, after: last, limit: limit) {
                logger.notice("serving cached tags; upstream failed", metadata: ["image": "\(image)", "error": "\(error)"])
                return cached
            }
            if case .notFound = error { return nil }
            throw Self.registryError(error, what: image.image)
        }
    }

    /// Referrers of a proxied manifest: the upstream's referrers API, else its `sha256-<hex>` tag (the
    /// spec's fallback schema), else what is cached.
    func proxyReferrers(_ proxy: ProxyRepository, of digest: Digest, in image: ImageRef, artifactType: String?) async throws -> [ReferrerRecord] {
        struct Index: Decodable { var manifests: [Descriptor]? }
        func records(_ bytes: [UInt8]) -> [ReferrerRecord] {
            let index = try? JSONDecoder().decode(Index.self, from: Data(bytes))
            return (index?.manifests ?? []).compactMap { d in
                Digest.parse(d.digest).map {
                    ReferrerRecord(digest: $0, mediaType: d.mediaType, size: d.size, artifactType: d.artifactType, annotationsJSON: Self.canonicalJSON(d.annotations))
                }
            }
        }
        do throws(UpstreamError) {
            if let bytes = try await proxy.call({ () async throws(UpstreamError) in try await proxy.client.referrers(image.image, digest, artifactType: artifactType) }) {
                return records(bytes)
            }
            let fallbackTag = "\(digest.algorithm.rawValue)-\(digest.hex)"
            let fetched = try await proxy.call { () async throws(UpstreamError) in try await proxy.client.getManifest(image.image, fallbackTag) }
            return records(fetched.bytes)
        } catch .notFound {
            return try await metadata.referrers(of: digest, in: image)
        } catch {
            logger.notice("serving cached referrers; upstream failed", metadata: ["image": "\(image)", "error": "\(error)"])
            return try await metadata.referrers(of: digest, in: image)
        }
    }

    /// Drops what a proxy repository cached (all of it, or one image), and its negative cache.
    public func purgeCache(repository: String, image: String?) async throws -> Int {
        guard case .proxy(let proxy) = try entry(repository).backing else {
            throw RegistryError(.unsupported, "only proxy repositories have a cache to purge", detail: repository)
        }
        proxy.clearCaches()
        return try await metadata.purge(repository: repository, image: image)
    }
}
