import Foundation

/// A content descriptor (OCI image spec), as it appears in manifests and the referrers index.
public struct Descriptor: Codable, Sendable, Equatable {
    public var mediaType: String
    public var digest: String
    public var size: Int64
    public var artifactType: String?
    public var annotations: [String: String]?
    public var urls: [String]?

    public init(mediaType: String, digest: String, size: Int64, artifactType: String? = nil, annotations: [String: String]? = nil) {
        self.mediaType = mediaType
        self.digest = digest
        self.size = size
        self.artifactType = artifactType
        self.annotations = annotations
        self.urls = nil
    }
}

/// What the registry needs to know of a manifest: its type and what it references.
///
/// The manifest bytes themselves are stored and served exactly as received; this is only an index of them.
public struct ManifestInfo: Sendable, Equatable {
    public var mediaType: String
    /// Blobs that must exist in the repository: config and layers (foreign layers with `urls` excluded).
    public var blobs: [Digest]
    /// Child manifests that must exist in the repository (index and manifest list entries).
    public var manifests: [Digest]
    /// The `subject` of an OCI 1.1 referrer; need not exist.
    public var subject: Digest?
    /// The artifact type shown in the referrers list: `artifactType`, else the config media type.
    public var artifactType: String?
    /// Annotations, for the referrers list.
    public var annotations: [String: String]?

    public init(mediaType: String, blobs: [Digest], manifests: [Digest], subject: Digest?, artifactType: String?, annotations: [String: String]?) {
        self.mediaType = mediaType
        self.blobs = blobs
        self.manifests = manifests
        self.subject = subject
        self.artifactType = artifactType
        self.annotations = annotations
    }

    public var isIndex: Bool { MediaType.isIndex(mediaType) }
}

/// Parses and validates manifests as pushed by clients.
public enum ManifestParser {
    /// The largest manifest accepted, as in distribution and the spec's recommendation.
    public static let maxSize = 4 * 1024 * 1024

    private struct Raw: Decodable {
        var schemaVersion: Int?
        var mediaType: String?
        var artifactType: String?
        var config: Descriptor?
        var layers: [Descriptor]?
        var manifests: [Descriptor]?
        var subject: Descriptor?
        var annotations: [String: String]?
        var fsLayers: [FSLayer]?
        struct FSLayer: Decodable {}
    }

    /// Validates a manifest body against the `Content-Type` it was pushed with.
    /// - Parameters:
    ///   - bytes: the exact body received.
    ///   - contentType: the request's `Content-Type`, if any.
    /// - Returns: the manifest's media type and references.
    /// - Throws: ``RegistryError`` with `MANIFEST_INVALID` (also for a malformed digest in a descriptor).
    public static func parse(_ bytes: [UInt8], contentType: String?) throws(RegistryError) -> ManifestInfo {
        guard bytes.count <= maxSize else {
            throw RegistryError(.manifestTooLarge, "manifest exceeds \(maxSize) bytes")
        }
        let raw: Raw
        do {
            raw = try JSONDecoder().decode(Raw.self, from: Data(bytes))
        } catch {
            throw RegistryError(.manifestInvalid, "manifest is not valid JSON of a known shape", detail: "\(error)".prefix(300).description)
        }
        let declared = contentType.map { MediaType.essence($0) }.flatMap { $0.isEmpty ? nil : $0 }
        let generic: Set<String> = ["application/json", "application/octet-stream"]
        let header = declared.flatMap { generic.contains($0) ? nil : $0 }

        if raw.schemaVersion == 1 || raw.fsLayers != nil
            || header == MediaType.dockerSchema1 || header == MediaType.dockerSchema1Signed
            || raw.mediaType == MediaType.dockerSchema1 || raw.mediaType == MediaType.dockerSchema1Signed {
            throw RegistryError(.manifestInvalid, "Docker schema1 manifests are not supported; push a schema2 or OCI manifest")
        }
        guard raw.schemaVersion == 2 else {
            throw RegistryError(.manifestInvalid, "schemaVersion must be 2")
        }
        if let field = raw.mediaType, let header, field != header {
            throw RegistryError(.manifestInvalid, "mediaType in manifest does not match Content-Type", detail: "\(field) vs \(header)")
        }
        // The type is the declared one, else inferred from the shape (OCI allows mediaType to be absent).
        let mediaType: String
        if let t = raw.mediaType ?? header {
            mediaType = t
        } else if raw.manifests != nil {
            mediaType = MediaType.ociIndex
        } else if raw.config != nil {
            mediaType = MediaType.ociManifest
        } else {
            throw RegistryError(.manifestInvalid, "cannot tell the manifest type: no mediaType, config or manifests")
        }
        guard MediaType.manifestTypes.contains(mediaType) else {
            throw RegistryError(.manifestInvalid, "unsupported manifest media type", detail: mediaType)
        }

        var info = ManifestInfo(mediaType: mediaType, blobs: [], manifests: [], subject: nil, artifactType: raw.artifactType, annotations: raw.annotations)
        if MediaType.isIndex(mediaType) {
            guard let children = raw.manifests else {
                throw RegistryError(.manifestInvalid, "an index must have a manifests array")
            }
            if raw.config != nil || raw.layers != nil {
                throw RegistryError(.manifestInvalid, "an index must not have config or layers")
            }
            for child in children {
                info.manifests.append(try descriptorDigest(child, role: "manifests"))
            }
        } else {
            guard let config = raw.config else {
                throw RegistryError(.manifestInvalid, "an image manifest must have a config descriptor")
            }
            if raw.manifests != nil {
                throw RegistryError(.manifestInvalid, "an image manifest must not have a manifests array")
            }
            info.blobs.append(try descriptorDigest(config, role: "config"))
            for layer in raw.layers ?? [] {
                let digest = try descriptorDigest(layer, role: "layers")
                // Foreign (non-distributable) layers live elsewhere, as their urls say.
                if let urls = layer.urls, !urls.isEmpty { continue }
                info.blobs.append(digest)
            }
            if info.artifactType == nil { info.artifactType = config.mediaType }
        }
        if let subject = raw.subject {
            info.subject = try descriptorDigest(subject, role: "subject")
        }
        return info
    }

    private static func descriptorDigest(_ d: Descriptor, role: String) throws(RegistryError) -> Digest {
        guard d.size >= 0 else {
            throw RegistryError(.manifestInvalid, "negative size in \(role) descriptor", detail: d.digest)
        }
        do {
            return try Digest(parsing: d.digest)
        } catch {
            throw RegistryError(.manifestInvalid, "invalid digest in \(role) descriptor", detail: String(d.digest.prefix(200)))
        }
    }

    /// Whether a client's `Accept` list allows a stored manifest type. No list (or a wildcard) allows all.
    public static func accepts(_ acceptValues: [String], mediaType: String) -> Bool {
        var sawAny = false
        for value in acceptValues {
            for item in value.split(separator: ",") {
                let essence = MediaType.essence(item)
                if essence.isEmpty { continue }
                sawAny = true
                if essence == mediaType || essence == "*/*" || essence == "application/*" || essence == "application/json" {
                    return true
                }
            }
        }
        return !sawAny
    }
}
