import BerthCore
import BerthStorage
import Foundation

/// The result of a manifest push.
public struct ManifestPushResult: Sendable, Equatable {
    public var digest: Digest
    /// The `subject` the manifest refers to (answered with `OCI-Subject`).
    public var subject: Digest?
}

extension Registry {
    /// Validates and stores a manifest under a tag or its digest.
    ///
    /// Pushed through a group, it lands in the writable member; blobs the client did not upload because
    /// another member already has them (the group answered its `HEAD`) are linked into that member.
    public func putManifest(_ bytes: [UInt8], contentType: String?, reference: Reference, in image: ImageRef) async throws -> ManifestPushResult {
        try validate(image)
        let target = try writeTarget(image)
        let info = try ManifestParser.parse(bytes, contentType: contentType)
        let digest: Digest
        let tag: String?
        switch reference {
        case .digest(let expected):
            digest = Digest.of(bytes, algorithm: expected.algorithm)
            guard digest == expected else {
                throw RegistryError(.digestInvalid, "manifest digest does not match the reference", detail: "reference \(expected), content \(digest)")
            }
            tag = nil
        case .tag(let name):
            digest = Digest.of(bytes)
            tag = name
        }
        if target != image {
            for blob in info.blobs where try await metadata.linkedBlobSize(blob, in: target) == nil {
                if let size = try await linkedSize(blob, in: image), try await blobs.stat(blob) != nil {
                    try await metadata.linkBlob(blob, size: size, in: target)
                }
            }
        }
        let record = ManifestRecord(
            digest: digest, mediaType: info.mediaType, payload: bytes, subject: info.subject,
            artifactType: info.artifactType, annotationsJSON: Self.canonicalJSON(info.annotations))
        try await metadata.putManifest(record, blobs: info.blobs, manifests: info.manifests, tag: tag, in: target)
        return ManifestPushResult(digest: digest, subject: info.subject)
    }

    /// The manifest a tag or digest names (for a group: from the first member that has it), or `MANIFEST_UNKNOWN`.
    public func manifest(_ reference: Reference, in image: ImageRef) async throws -> ManifestRecord {
        try validate(image)
        var failure: (any Error)?
        for (source, backing) in try readSources(image) {
            do {
                let found: ManifestRecord?
                switch (backing, reference) {
                case (.proxy(let proxy), _): found = try await proxyManifest(proxy, reference, in: source)
                case (_, .digest(let d)): found = try await metadata.manifest(d, in: source)
                case (_, .tag(let t)): found = try await metadata.manifest(tag: t, in: source)
                }
                if let found { return found }
            } catch let error as RegistryError where error.code != .manifestUnknown {
                // A failing member must not hide what a later member has; its error is kept for the end.
                failure = failure ?? error
            }
        }
        throw failure ?? RegistryError(.manifestUnknown, detail: reference.description)
    }

    /// Deletes a manifest (by digest, with its tags) or only a tag.
    public func deleteManifest(_ reference: Reference, in image: ImageRef) async throws {
        try validate(image)
        let target = try writeTarget(image)
        let deleted: Bool
        switch reference {
        case .digest(let d): deleted = try await metadata.deleteManifest(d, in: target)
        case .tag(let t): deleted = try await metadata.deleteTag(t, in: target)
        }
        guard deleted else {
            throw RegistryError(.manifestUnknown, detail: reference.description)
        }
    }

    /// A page of an image's tags (a group's merged across members), or `NAME_UNKNOWN` when no source has the image.
    public func tags(in image: ImageRef, after last: String?, limit: Int) async throws -> [String] {
        try validate(image)
        var merged: Set<String> = []
        var known = false
        var failure: (any Error)?
        for (source, backing) in try readSources(image) {
            do {
                let page: [String]?
                if case .proxy(let proxy) = backing {
                    page = try await proxyTags(proxy, in: source, after: last, limit: limit)
                } else {
                    page = try await metadata.tags(in: source, after: last, limit: limit)
                }
                if let page {
                    known = true
                    merged.formUnion(page)
                }
            } catch {
                failure = failure ?? error
            }
        }
        guard known else {
            if let failure { throw failure }
            throw RegistryError(.nameUnknown, detail: image.image)
        }
        // Each member gave its first `limit` after `last`; the merged first `limit` are therefore exact.
        return Array(merged.sorted().prefix(limit))
    }

    /// Manifests that refer to `digest` (merged across a group's members), optionally of one artifact type.
    public func referrers(of digest: Digest, in image: ImageRef, artifactType: String?) async throws -> [ReferrerRecord] {
        try validate(image)
        var seen: Set<Digest> = []
        var all: [ReferrerRecord] = []
        for (source, backing) in try readSources(image) {
            let found: [ReferrerRecord]
            if case .proxy(let proxy) = backing {
                found = try await proxyReferrers(proxy, of: digest, in: source, artifactType: artifactType)
            } else {
                found = try await metadata.referrers(of: digest, in: source)
            }
            for record in found where seen.insert(record.digest).inserted { all.append(record) }
        }
        guard let artifactType else { return all }
        return all.filter { $0.artifactType == artifactType }
    }

    /// A page of image names across repositories (or in one; a group lists its members' images as its own),
    /// in lexical order of `repository/image`.
    public func catalog(repository: String?, after last: String?, limit: Int) async throws -> [ImageRef] {
        guard let repository else {
            return try await metadata.catalog(repository: nil, after: last, limit: limit)
        }
        guard case .group = try entry(repository).backing else {
            return try await metadata.catalog(repository: repository, after: last, limit: limit)
        }
        let prefix = repository + "/"
        let lastImage = last.flatMap { $0.hasPrefix(prefix) ? String($0.dropFirst(prefix.count)) : nil }
        var names: Set<String> = []
        for (source, _) in try readSources(ImageRef(repository: repository, image: "")) {
            let key = lastImage.map { source.repository + "/" + $0 }
            for ref in try await metadata.catalog(repository: source.repository, after: key, limit: limit) {
                names.insert(ref.image)
            }
        }
        return names.sorted().prefix(limit).map { ImageRef(repository: repository, image: $0) }
    }

    /// JSON with sorted keys, so stored annotations compare and serve byte-stable.
    static func canonicalJSON(_ annotations: [String: String]?) -> String? {
        guard let annotations, !annotations.isEmpty else { return nil }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(annotations)).map { String(decoding: $0, as: UTF8.self) }
    }
}
