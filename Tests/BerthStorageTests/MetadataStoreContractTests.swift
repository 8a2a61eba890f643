import BerthCore
import BerthStorage
import BerthStorageSQLite
import Testing

/// The ``MetadataStore`` contract, written once for every back end.
///
/// A back end plugs in with a factory that opens a store whose data lives in a given folder; calling it again
/// with the same folder reopens the same data. Each check gets a fresh folder.
enum MetadataStoreContract {
    typealias Factory = StoreContract<any MetadataStore>.Factory
    typealias Context = StoreContract<any MetadataStore>.Context
    typealias Check = StoreContract<any MetadataStore>.Check

    static func run(_ check: Check, factory: @escaping Factory) async throws {
        try await StoreContract.run(check, factory: factory, folder: "berth-metadata")
    }

    static let checks: [Check] = [
        Check("ensureRepository is idempotent and listed", repositories),
        Check("link, unlink and linkedBlobSize", blobLinks),
        Check("putManifest with a missing blob stores nothing", putMissingBlob),
        Check("put with a tag, get by tag and by digest", putAndGet),
        Check("re-tagging moves the tag", retag),
        Check("deleteTag leaves the manifest", deleteTag),
        Check("deleteManifest removes its tags and, last, the image", deleteManifest),
        Check("tags pagination in lexical order", tagsPagination),
        Check("catalog ordering and pagination", catalog),
        Check("referrers by subject", referrers),
        Check("an index requires its child manifests", indexChildren),
        Check("upload sessions", uploadSessions),
        Check("data persists after reopening", persistence),
        secretCheck,
    ]

    // MARK: Fixtures

    static let app = ImageRef(repository: "docker-hosted", image: "team/app")
    static let other = ImageRef(repository: "docker-hosted", image: "team/other")
    static let config = Digest.of(Array("config".utf8))
    static let layer = Digest.of(Array("layer".utf8))

    /// A distinct manifest record (the payload is JSON, its digest is real).
    static func manifest(_ seed: String, mediaType: String = MediaType.ociManifest, subject: Digest? = nil,
                         artifactType: String? = nil, annotationsJSON: String? = nil) -> ManifestRecord {
        let payload = Array(#"{"schemaVersion":2,"mediaType":"\#(mediaType)","seed":"\#(seed)"}"#.utf8)
        return ManifestRecord(digest: Digest.of(payload), mediaType: mediaType, payload: payload,
                              subject: subject, artifactType: artifactType, annotationsJSON: annotationsJSON)
    }

    /// Links config and layer in `image`, then stores `record` referencing them.
    static func put(_ store: any MetadataStore, _ record: ManifestRecord, tag: String?, in image: ImageRef = app) async throws {
        try await store.linkBlob(config, size: 10, in: image)
        try await store.linkBlob(layer, size: 20, in: image)
        try await store.putManifest(record, blobs: [config, layer], manifests: [], tag: tag, in: image)
    }

    static func expectBlobUnknown(_ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async {
        let error = await #expect(throws: RegistryError.self, sourceLocation: sourceLocation) { try await body() }
        #expect(error?.code == .manifestBlobUnknown, sourceLocation: sourceLocation)
    }

    // MARK: Checks

    static func repositories(_ c: Context) async throws {
        #expect(try await c.store.repositories() == [])
        try await c.store.ensureRepository(RepositoryRecord(name: "docker-hosted", kind: .hosted))
        try await c.store.ensureRepository(RepositoryRecord(name: "docker-hosted", kind: .hosted))
        try await c.store.ensureRepository(RepositoryRecord(name: "cache", kind: .proxy))
        try await c.store.ensureRepository(RepositoryRecord(name: "all", kind: .group))
        #expect(try await c.store.repositories().sorted { $0.name < $1.name } == [
            RepositoryRecord(name: "all", kind: .group),
            RepositoryRecord(name: "cache", kind: .proxy),
            RepositoryRecord(name: "docker-hosted", kind: .hosted),
        ])
    }

    static func blobLinks(_ c: Context) async throws {
        let elsewhere = ImageRef(repository: "other-hosted", image: "team/app")
        #expect(try await c.store.linkedBlobSize(layer, in: app) == nil)
        try await c.store.linkBlob(layer, size: 1234, in: app)
        try await c.store.linkBlob(layer, size: 1234, in: app)
        #expect(try await c.store.linkedBlobSize(layer, in: app) == 1234)
        // Links are per image.
        #expect(try await c.store.linkedBlobSize(layer, in: other) == nil)
        #expect(try await c.store.linkedBlobSize(layer, in: elsewhere) == nil)
        #expect(try await c.store.linkedBlobSize(config, in: app) == nil)
        try await c.store.linkBlob(layer, size: 1234, in: elsewhere)

        #expect(try await c.store.unlinkBlob(layer, in: app) == true)
        #expect(try await c.store.linkedBlobSize(layer, in: app) == nil)
        #expect(try await c.store.unlinkBlob(layer, in: app) == false)
        #expect(try await c.store.linkedBlobSize(layer, in: elsewhere) == 1234)
        // Blob links alone do not make an image.
        #expect(try await c.store.catalog(repository: nil, after: nil, limit: 100) == [])
    }

    static func putMissingBlob(_ c: Context) async throws {
        let record = manifest("missing")
        // Nothing linked.
        await expectBlobUnknown {
            try await c.store.putManifest(record, blobs: [config, layer], manifests: [], tag: "latest", in: app)
        }
        // One of two linked; the other linked in another image only.
        try await c.store.linkBlob(config, size: 10, in: app)
        try await c.store.linkBlob(layer, size: 20, in: other)
        await expectBlobUnknown {
            try await c.store.putManifest(record, blobs: [config, layer], manifests: [], tag: "latest", in: app)
        }
        #expect(try await c.store.manifest(record.digest, in: app) == nil)
        #expect(try await c.store.manifest(tag: "latest", in: app) == nil)
        #expect(try await c.store.tags(in: app, after: nil, limit: 100) == nil)
        #expect(try await c.store.catalog(repository: nil, after: nil, limit: 100) == [])
        #expect(try await c.store.catalog(repository: "docker-hosted", after: nil, limit: 100) == [])
    }

    static func putAndGet(_ c: Context) async throws {
        // Bytes as pushed: odd spacing and a non-ASCII annotation must come back untouched.
        let payload = Array("{\n  \"schemaVersion\": 2,\n  \"annotations\": {\"t\": \"caf\u{E9} \\u00e9\"}\n}\r\n".utf8) + [0xEF, 0xBB, 0xBF]
        let record = ManifestRecord(
            digest: Digest.of(payload), mediaType: MediaType.ociManifest, payload: payload,
            subject: nil, artifactType: "application/vnd.oci.image.config.v1+json", annotationsJSON: #"{"t":"café"}"#)
        try await put(c.store, record, tag: "latest")

        let byTag = try #require(try await c.store.manifest(tag: "latest", in: app))
        let byDigest = try #require(try await c.store.manifest(record.digest, in: app))
        #expect(byTag == record)
        #expect(byDigest == record)
        #expect(byTag.payload == payload)
        #expect(Digest.of(byDigest.payload) == record.digest)
        #expect(try await c.store.tags(in: app, after: nil, limit: 100) == ["latest"])
        // Scoped to the image and repository.
        #expect(try await c.store.manifest(record.digest, in: other) == nil)
        #expect(try await c.store.manifest(tag: "latest", in: other) == nil)
        #expect(try await c.store.manifest(record.digest, in: ImageRef(repository: "other-hosted", image: "team/app")) == nil)
        #expect(try await c.store.manifest(tag: "missing", in: app) == nil)
        #expect(try await c.store.catalog(repository: nil, after: nil, limit: 100) == [app])

        // Put without a tag: stored, reachable by digest only.
        let untagged = manifest("untagged", mediaType: MediaType.dockerManifest)
        try await put(c.store, untagged, tag: nil)
        #expect(try await c.store.manifest(untagged.digest, in: app) == untagged)
        #expect(try await c.store.tags(in: app, after: nil, limit: 100) == ["latest"])

        // Putting the same manifest again is harmless and may add a tag.
        try await put(c.store, record, tag: "stable")
        #expect(try await c.store.manifest(tag: "stable", in: app) == record)
        #expect(try await c.store.tags(in: app, after: nil, limit: 100) == ["latest", "stable"])
    }

    static func retag(_ c: Context) async throws {
        let v1 = manifest("v1")
        let v2 = manifest("v2")
        try await put(c.store, v1, tag: "latest")
        try await put(c.store, v2, tag: "latest")
        #expect(try await c.store.manifest(tag: "latest", in: app)?.digest == v2.digest)
        #expect(try await c.store.manifest(v1.digest, in: app) == v1)
        #expect(try await c.store.tags(in: app, after: nil, limit: 100) == ["latest"])
        try await put(c.store, v1, tag: "latest")
        #expect(try await c.store.manifest(tag: "latest", in: app)?.digest == v1.digest)
    }

    static func deleteTag(_ c: Context) async throws {
        let record = manifest("tagged")
        try await put(c.store, record, tag: "latest")
        try await put(c.store, record, tag: "v1")
        #expect(try await c.store.deleteTag("latest", in: app) == true)
        #expect(try await c.store.deleteTag("latest", in: app) == false)
        #expect(try await c.store.deleteTag("never", in: app) == false)
        #expect(try await c.store.manifest(tag: "latest", in: app) == nil)
        #expect(try await c.store.manifest(tag: "v1", in: app) == record)
        #expect(try await c.store.manifest(record.digest, in: app) == record)
        #expect(try await c.store.deleteTag("v1", in: app) == true)
        // The image still has a manifest: an empty tag list, not nil, and still in the catalog.
        #expect(try await c.store.tags(in: app, after: nil, limit: 100) == [])
        #expect(try await c.store.catalog(repository: nil, after: nil, limit: 100) == [app])
        #expect(try await c.store.manifest(record.digest, in: app) == record)
    }

    static func deleteManifest(_ c: Context) async throws {
        let first = manifest("first")
        let second = manifest("second")
        try await put(c.store, first, tag: "a")
        try await put(c.store, first, tag: "b")
        try await put(c.store, second, tag: "c")
        try await put(c.store, manifest("elsewhere"), tag: "a", in: other)

        #expect(try await c.store.deleteManifest(first.digest, in: app) == true)
        #expect(try await c.store.deleteManifest(first.digest, in: app) == false)
        #expect(try await c.store.manifest(first.digest, in: app) == nil)
        #expect(try await c.store.manifest(tag: "a", in: app) == nil)
        #expect(try await c.store.manifest(tag: "b", in: app) == nil)
        #expect(try await c.store.tags(in: app, after: nil, limit: 100) == ["c"])
        #expect(try await c.store.catalog(repository: nil, after: nil, limit: 100) == [app, other])

        #expect(try await c.store.deleteManifest(second.digest, in: app) == true)
        #expect(try await c.store.tags(in: app, after: nil, limit: 100) == nil)
        #expect(try await c.store.catalog(repository: nil, after: nil, limit: 100) == [other])
        #expect(try await c.store.catalog(repository: "docker-hosted", after: nil, limit: 100) == [other])
        // The other image is untouched.
        #expect(try await c.store.tags(in: other, after: nil, limit: 100) == ["a"])
        #expect(try await c.store.deleteManifest(Digest.of(Array("never".utf8)), in: app) == false)

        // The image comes back with a new manifest.
        try await put(c.store, first, tag: "again")
        #expect(try await c.store.tags(in: app, after: nil, limit: 100) == ["again"])
        #expect(try await c.store.catalog(repository: nil, after: nil, limit: 100) == [app, other])
    }

    static func tagsPagination(_ c: Context) async throws {
        let record = manifest("paged")
        let tags = ["v1.0", "latest", "b", "a", "V2", "1.0", "c", "_x", "a-b", "a.b"]
        for tag in tags { try await put(c.store, record, tag: tag) }
        let ordered = ["1.0", "V2", "_x", "a", "a-b", "a.b", "b", "c", "latest", "v1.0"]
        #expect(tags.sorted() == ordered)
        #expect(try await c.store.tags(in: app, after: nil, limit: 100) == ordered)
        #expect(try await c.store.tags(in: app, after: nil, limit: 3) == ["1.0", "V2", "_x"])
        #expect(try await c.store.tags(in: app, after: "_x", limit: 3) == ["a", "a-b", "a.b"])
        #expect(try await c.store.tags(in: app, after: "a.b", limit: 3) == ["b", "c", "latest"])
        #expect(try await c.store.tags(in: app, after: "latest", limit: 3) == ["v1.0"])
        #expect(try await c.store.tags(in: app, after: "v1.0", limit: 3) == [])
        // `after` need not be a tag.
        #expect(try await c.store.tags(in: app, after: "bb", limit: 100) == ["c", "latest", "v1.0"])
        #expect(try await c.store.tags(in: app, after: "", limit: 1) == ["1.0"])
        // Paging through with limit 4 yields everything once, in order.
        var pages: [String] = []
        var last: String?
        while let page = try await c.store.tags(in: app, after: last, limit: 4), !page.isEmpty {
            pages += page
            last = page.last
        }
        #expect(pages == ordered)
        #expect(try await c.store.tags(in: other, after: nil, limit: 100) == nil)
    }

    static func catalog(_ c: Context) async throws {
        let images = [
            ImageRef(repository: "docker-hosted", image: "team/app"),
            ImageRef(repository: "docker-hosted", image: "app"),
            ImageRef(repository: "docker-hosted", image: "team/app/sub"),
            ImageRef(repository: "docker-hosted-project", image: "app"),
            ImageRef(repository: "alpha", image: "z"),
            ImageRef(repository: "docker-hosted", image: "team-x/app"),
        ]
        for (i, image) in images.enumerated() { try await put(c.store, manifest("img-\(i)"), tag: "latest", in: image) }
        // Ordered by the `repository/image` string: '-' sorts before '/'.
        let ordered = [
            ImageRef(repository: "alpha", image: "z"),
            ImageRef(repository: "docker-hosted-project", image: "app"),
            ImageRef(repository: "docker-hosted", image: "app"),
            ImageRef(repository: "docker-hosted", image: "team-x/app"),
            ImageRef(repository: "docker-hosted", image: "team/app"),
            ImageRef(repository: "docker-hosted", image: "team/app/sub"),
        ]
        #expect(images.sorted { $0.description < $1.description } == ordered)
        #expect(try await c.store.catalog(repository: nil, after: nil, limit: 100) == ordered)
        #expect(try await c.store.catalog(repository: nil, after: nil, limit: 2) == Array(ordered[0..<2]))
        #expect(try await c.store.catalog(repository: nil, after: "docker-hosted-project/app", limit: 2) == Array(ordered[2..<4]))
        #expect(try await c.store.catalog(repository: nil, after: "docker-hosted/team/app", limit: 10) == [ordered[5]])
        #expect(try await c.store.catalog(repository: nil, after: "docker-hosted/team/app/sub", limit: 10) == [])
        #expect(try await c.store.catalog(repository: nil, after: "b", limit: 1) == [ordered[1]])

        let hosted = Array(ordered[2...])
        #expect(try await c.store.catalog(repository: "docker-hosted", after: nil, limit: 100) == hosted)
        #expect(try await c.store.catalog(repository: "docker-hosted", after: nil, limit: 1) == [hosted[0]])
        #expect(try await c.store.catalog(repository: "docker-hosted", after: "docker-hosted/app", limit: 2) == Array(hosted[1..<3]))
        #expect(try await c.store.catalog(repository: "docker-hosted-project", after: nil, limit: 100) == [ordered[1]])
        #expect(try await c.store.catalog(repository: "missing", after: nil, limit: 100) == [])
    }

    static func referrers(_ c: Context) async throws {
        let base = manifest("base")
        try await put(c.store, base, tag: "latest")
        // A non-ASCII payload: the size is counted in bytes.
        let sbom = manifest("sbom-caf\u{E9}-\u{1F4E6}", subject: base.digest, artifactType: "application/spdx+json",
                            annotationsJSON: #"{"org.opencontainers.image.created":"2024-05-01T12:00:00Z"}"#)
        let signature = manifest("sig", subject: base.digest, artifactType: "application/vnd.dev.cosign.artifact.sig.v1+json")
        let unrelated = manifest("unrelated", subject: Digest.of(Array("other".utf8)), artifactType: "x/y")
        for record in [sbom, signature, unrelated] { try await put(c.store, record, tag: nil) }
        // A referrer in another image is not listed.
        try await put(c.store, manifest("foreign", subject: base.digest, artifactType: "x/y"), tag: nil, in: other)

        let expected = [sbom, signature].map {
            ReferrerRecord(digest: $0.digest, mediaType: $0.mediaType, size: Int64($0.payload.count),
                           artifactType: $0.artifactType, annotationsJSON: $0.annotationsJSON)
        }.sorted { $0.digest < $1.digest }
        #expect(sbom.payload.count == String(decoding: sbom.payload, as: UTF8.self).count + 4)
        #expect(try await c.store.referrers(of: base.digest, in: app).sorted { $0.digest < $1.digest } == expected)
        #expect(try await c.store.referrers(of: sbom.digest, in: app) == [])
        #expect(try await c.store.manifest(sbom.digest, in: app)?.subject == base.digest)

        // The subject need not exist.
        let ghost = Digest.of(Array("not pushed yet".utf8))
        let early = manifest("early", subject: ghost, artifactType: "application/example")
        try await put(c.store, early, tag: nil)
        #expect(try await c.store.referrers(of: ghost, in: app).map(\.digest) == [early.digest])

        // A deleted referrer leaves the list.
        #expect(try await c.store.deleteManifest(sbom.digest, in: app) == true)
        #expect(try await c.store.referrers(of: base.digest, in: app).map(\.digest) == [signature.digest])
    }

    static func indexChildren(_ c: Context) async throws {
        let amd64 = manifest("amd64")
        let arm64 = manifest("arm64")
        let index = manifest("index", mediaType: MediaType.ociIndex)
        try await put(c.store, amd64, tag: nil)
        // arm64 is stored in another image only.
        try await put(c.store, arm64, tag: nil, in: other)
        await expectBlobUnknown {
            try await c.store.putManifest(index, blobs: [], manifests: [amd64.digest, arm64.digest], tag: "latest", in: app)
        }
        #expect(try await c.store.manifest(index.digest, in: app) == nil)
        #expect(try await c.store.manifest(tag: "latest", in: app) == nil)

        try await put(c.store, arm64, tag: nil)
        try await c.store.putManifest(index, blobs: [], manifests: [amd64.digest, arm64.digest], tag: "latest", in: app)
        #expect(try await c.store.manifest(tag: "latest", in: app) == index)
        #expect(try await c.store.tags(in: app, after: nil, limit: 10) == ["latest"])
    }

    static func uploadSessions(_ c: Context) async throws {
        let a = UploadRecord(id: "a", repository: "docker-hosted", image: "team/app", updatedAt: 1_000)
        let b = UploadRecord(id: "b", repository: "other-hosted", image: "x", updatedAt: 2_000)
        let d = UploadRecord(id: "d", repository: "docker-hosted", image: "team/app", updatedAt: 3_000)
        for record in [a, b, d] { try await c.store.createUpload(record) }
        #expect(try await c.store.upload(id: "a") == a)
        #expect(try await c.store.upload(id: "b") == b)
        #expect(try await c.store.upload(id: "missing") == nil)

        // Strictly before.
        #expect(try await c.store.uploads(updatedBefore: 1_000) == [])
        #expect(try await c.store.uploads(updatedBefore: 1_001) == [a])
        #expect(try await c.store.uploads(updatedBefore: 3_001).sorted { $0.id < $1.id } == [a, b, d])

        try await c.store.touchUpload(id: "a", at: 5_000)
        #expect(try await c.store.upload(id: "a")?.updatedAt == 5_000)
        #expect(try await c.store.uploads(updatedBefore: 3_001).sorted { $0.id < $1.id } == [b, d])

        try await c.store.deleteUpload(id: "b")
        #expect(try await c.store.upload(id: "b") == nil)
        try await c.store.deleteUpload(id: "b")
        #expect(try await c.store.uploads(updatedBefore: 10_000).map(\.id).sorted() == ["a", "d"])
    }

    static func persistence(_ c: Context) async throws {
        let record = manifest("persisted")
        try await c.store.ensureRepository(RepositoryRecord(name: "docker-hosted", kind: .hosted))
        try await put(c.store, record, tag: "latest")
        try await c.store.createUpload(UploadRecord(id: "u", repository: "docker-hosted", image: "team/app", updatedAt: 42))

        let reopened = try await c.reopen()
        #expect(try await reopened.repositories() == [RepositoryRecord(name: "docker-hosted", kind: .hosted)])
        #expect(try await reopened.manifest(tag: "latest", in: app) == record)
        #expect(try await reopened.linkedBlobSize(layer, in: app) == 20)
        #expect(try await reopened.catalog(repository: nil, after: nil, limit: 10) == [app])
        #expect(try await reopened.upload(id: "u")?.updatedAt == 42)
    }
}

@Suite("MetadataStore contract: SQLiteMetadataStore")
struct SQLiteMetadataStoreContractTests {
    @Test(arguments: MetadataStoreContract.checks)
    func contract(_ check: MetadataStoreContract.Check) async throws {
        try await MetadataStoreContract.run(check) { directory in
            try SQLiteMetadataStore(path: directory + "/metadata.sqlite")
        }
    }
}

extension MetadataStoreContract {
    /// Identity stores share secrets between nodes: the first value stored wins, and it survives a reopen.
    static let secretCheck = Check("secret: the first value stored wins, also after a reopen") { c in
        let store = try #require(c.store as? any IdentityStore)
        let first = try await store.secret(named: "token-signing-key", proposed: Array(repeating: 1, count: 32))
        #expect(first == Array(repeating: 1, count: 32))
        #expect(try await store.secret(named: "token-signing-key", proposed: Array(repeating: 2, count: 32)) == first)
        #expect(try await store.secret(named: "other", proposed: [7]) == [7])
        let reopened = try #require(try await c.reopen() as? any IdentityStore)
        #expect(try await reopened.secret(named: "token-signing-key", proposed: [3]) == first)
    }
}
