import BerthCore

/// A Berth repository as recorded in the metadata store.
public struct RepositoryRecord: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case hosted, proxy, group
    }

    public var name: String
    public var kind: Kind

    public init(name: String, kind: Kind) {
        self.name = name
        self.kind = kind
    }
}

/// A stored manifest: the exact bytes received plus what was learned when validating them.
public struct ManifestRecord: Sendable, Equatable {
    public var digest: Digest
    public var mediaType: String
    public var payload: [UInt8]
    public var subject: Digest?
    public var artifactType: String?
    /// Annotations as canonical JSON (sorted keys), for the referrers list.
    public var annotationsJSON: String?

    public init(digest: Digest, mediaType: String, payload: [UInt8], subject: Digest? = nil, artifactType: String? = nil, annotationsJSON: String? = nil) {
        self.digest = digest
        self.mediaType = mediaType
        self.payload = payload
        self.subject = subject
        self.artifactType = artifactType
        self.annotationsJSON = annotationsJSON
    }
}

/// A referrer of a manifest, as listed by the referrers API.
public struct ReferrerRecord: Sendable, Equatable {
    public var digest: Digest
    public var mediaType: String
    public var size: Int64
    public var artifactType: String?
    public var annotationsJSON: String?

    public init(digest: Digest, mediaType: String, size: Int64, artifactType: String?, annotationsJSON: String?) {
        self.digest = digest
        self.mediaType = mediaType
        self.size = size
        self.artifactType = artifactType
        self.annotationsJSON = annotationsJSON
    }
}

/// An upload session: which repository and image it belongs to. Its bytes live in the blob store.
public struct UploadRecord: Sendable, Equatable {
    public var id: String
    public var repository: String
    public var image: String
    /// Seconds since 1970, when the session last received data (for purging abandoned sessions).
    public var updatedAt: Int64

    public init(id: String, repository: String, image: String, updatedAt: Int64) {
        self.id = id
        self.repository = repository
        self.image = image
        self.updatedAt = updatedAt
    }
}

/// Coordinates of an image inside a Berth repository.
public struct ImageRef: Hashable, Sendable, CustomStringConvertible {
    public var repository: String
    public var image: String

    public init(repository: String, image: String) {
        self.repository = repository
        self.image = image
    }

    public var description: String { "\(repository)/\(image)" }
}

/// The single source of truth for repositories, images, tags, manifests, blob links and upload sessions.
///
/// Every method is one transaction. Implementations: SQLite (embedded), PostgreSQL (scale-out).
public protocol MetadataStore: Sendable {
    // Repositories
    func ensureRepository(_ record: RepositoryRecord) async throws
    func repositories() async throws -> [RepositoryRecord]

    // Blob links: a blob is readable in an image only once linked there (pushed or mounted).
    func linkBlob(_ digest: Digest, size: Int64, in image: ImageRef) async throws
    /// The size of a linked blob, or nil when the image has no such link.
    func linkedBlobSize(_ digest: Digest, in image: ImageRef) async throws -> Int64?
    /// Removes a link; returns false when there was none.
    func unlinkBlob(_ digest: Digest, in image: ImageRef) async throws -> Bool

    // Manifests and tags
    /// Stores a manifest and (optionally) moves a tag to it, atomically. Every blob in `blobs` must be
    /// linked in the image and every digest in `manifests` stored there, else it throws
    /// `MANIFEST_BLOB_UNKNOWN` and stores nothing.
    func putManifest(_ record: ManifestRecord, blobs: [Digest], manifests: [Digest], tag: String?, in image: ImageRef) async throws
    func manifest(_ digest: Digest, in image: ImageRef) async throws -> ManifestRecord?
    func manifest(tag: String, in image: ImageRef) async throws -> ManifestRecord?
    /// Deletes a manifest and every tag pointing to it; false when it was not there.
    func deleteManifest(_ digest: Digest, in image: ImageRef) async throws -> Bool
    /// Deletes one tag (the manifest stays); false when it was not there.
    func deleteTag(_ tag: String, in image: ImageRef) async throws -> Bool
    /// Tags of an image in lexical order, after `last`, at most `limit`. Nil when the image has no manifests.
    func tags(in image: ImageRef, after last: String?, limit: Int) async throws -> [String]?
    /// A tag's manifest digest and when it was last set or confirmed (seconds since 1970).
    func tag(_ tag: String, in image: ImageRef) async throws -> (digest: Digest, updatedAt: Int64)?
    /// Records that a tag was confirmed unchanged at `time` (proxy repositories' metadata age).
    func touchTag(_ tag: String, in image: ImageRef, at time: Int64) async throws
    /// Removes everything recorded for a repository (or one image of it): manifests, tags, blob links.
    /// Returns the number of manifests removed. Blob bytes stay for garbage collection.
    func purge(repository: String, image: String?) async throws -> Int
    /// Manifests whose `subject` is `digest`.
    func referrers(of digest: Digest, in image: ImageRef) async throws -> [ReferrerRecord]
    /// Image names (`repository/image`) in lexical order, after `last`, at most `limit`,
    /// optionally only those of one repository.
    func catalog(repository: String?, after last: String?, limit: Int) async throws -> [ImageRef]

    // Upload sessions
    func createUpload(_ record: UploadRecord) async throws
    func upload(id: String) async throws -> UploadRecord?
    func touchUpload(id: String, at time: Int64) async throws
    func deleteUpload(id: String) async throws
    /// Sessions not touched since `time`.
    func uploads(updatedBefore time: Int64) async throws -> [UploadRecord]
}
