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
    public func putManifest(_ bytes: [UInt8], contentType: String?, reference: Reference, in image: ImageRef) async throws -> ManifestPushResult {
        try validate(image)
        try requireWritable(image)
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
        let record = ManifestRecord(
            digest: digest, mediaType: info.mediaType, payload: bytes, subject: info.subject,
            artifactType: info.artifactType, annotationsJSON: Self.canonicalJSON(info.annotations))
        try await metadata.putManifest(record, blobs: info.blobs, manifests: info.manifests, tag: tag, in: image)
        return ManifestPushResult(digest: digest, subject: info.subject)
    }

    /// The manifest a tag or digest names, or `MANIFEST_UNKNOWN`.
    public func manifest(_ reference: Reference, in image: ImageRef) async throws -> ManifestRecord {
        try validate(image)
        let found: ManifestRecord?
        switch reference {
        case .digest(let d): found = try await metadata.manifest(d, in: image)
        case .tag(let t): found = try await metadata.manifest(tag: t, in: image)
        }
        guard let found else {
            throw RegistryError(.manifestUnknown, detail: reference.description)
        }
        return found
    }

    /// Deletes a manifest (by digest, with its tags) or only a tag.
    public func deleteManifest(_ reference: Reference, in image: ImageRef) async throws {
        try validate(image)
        try requireWritable(image)
        let deleted: Bool
        switch reference {
        case .digest(let d): deleted = try await metadata.deleteManifest(d, in: image)
        case .tag(let t): deleted = try await metadata.deleteTag(t, in: image)
        }
        guard deleted else {
            throw RegistryError(.manifestUnknown, detail: reference.description)
        }
    }

    /// A page of an image's tags, or `NAME_UNKNOWN` when the image has no manifests.
    public func tags(in image: ImageRef, after last: String?, limit: Int) async throws -> [String] {
        try validate(image)
        guard let tags = try await metadata.tags(in: image, after: last, limit: limit) else {
            throw RegistryError(.nameUnknown, detail: image.image)
        }
        return tags
    }

    /// Manifests that refer to `digest`, optionally only those of one artifact type.
    public func referrers(of digest: Digest, in image: ImageRef, artifactType: String?) async throws -> [ReferrerRecord] {
        try validate(image)
        let all = try await metadata.referrers(of: digest, in: image)
        guard let artifactType else { return all }
        return all.filter { $0.artifactType == artifactType }
    }

    /// A page of image names across repositories (or in one), in lexical order of `repository/image`.
    public func catalog(repository: String?, after last: String?, limit: Int) async throws -> [ImageRef] {
        if let repository { _ = try self.repository(repository) }
        return try await metadata.catalog(repository: repository, after: last, limit: limit)
    }

    /// JSON with sorted keys, so stored annotations compare and serve byte-stable.
    static func canonicalJSON(_ annotations: [String: String]?) -> String? {
        guard let annotations, !annotations.isEmpty else { return nil }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(annotations)).map { String(decoding: $0, as: UTF8.self) }
    }
}
