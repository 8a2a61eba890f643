import AsyncHTTPClient
import BerthCore
import BerthStorage
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// Blobs in an S3-compatible bucket: the scale-out store, shared by any number of stateless Berth nodes.
///
/// Layout (this type is the only code that knows it):
/// ```
/// <prefix>blobs/sha256/ab/ab12…ef             committed blobs, immutable, named by their digest
/// <prefix>blobs/sha512/cd/cd34…               (fanned out by algorithm and the first two hex digits)
/// <prefix>_uploads/<id>/created               an upload exists (empty marker object)
/// <prefix>_uploads/<id>/part-00000000000000000000-<w>   its bytes from offset 0, …
/// <prefix>_uploads/<id>/part-00000000000008388608-<w>   … from offset 8388608, and so on
///                                             (<w>: the writing request's id, so racing writers never overwrite)
/// ```
///
/// All upload state is in the bucket, none in memory, so a chunked upload begun on one node continues on any
/// other. An upload is its marker plus immutable part objects named by their start offset (20 digits, so names
/// sort by offset): its size is the end of the chain of contiguous parts from 0, read with one listing. An
/// append writes a part object for each full part of data it receives (8 MiB; larger far into huge uploads,
/// see `PartSizing`) and one for the rest when it finishes. A `PUT` is atomic, so a part is there whole or not
/// at all, a request never holds more than a part in memory, and bytes become readable part by part while a
/// long request is still arriving. (One multipart upload per request would instead show nothing until the
/// request ends, and leave a hidden multipart upload behind when a node dies mid-request.)
///
/// Nothing appears under a blob key before ``commitUpload(id:as:)``, which the registry calls only after
/// verifying the digest. The blob is assembled server-side when S3 allows it: one part is a `CopyObject`;
/// parts of at least 5 MiB each (the usual case: full parts, then a short last one) become a multipart upload
/// whose parts are `UploadPartCopy`s. Otherwise (many small chunks of a chunked push) the parts are read back
/// and streamed into a multipart upload, a window at a time. Either way the blob appears whole, at once. Then
/// the upload's objects are removed, marker first, so an interrupted removal leaves an upload that is already
/// unknown (`uploadSize` is nil) and that `listUploads` still shows to the purger.
///
/// A multipart upload on a blob key that a crash interrupts stays hidden in the bucket: give the bucket a
/// lifecycle rule that aborts incomplete multipart uploads after a day.
public final class S3BlobStore: BlobStore {
    /// Where the bucket is and how to sign for it.
    public struct Configuration: Sendable, Equatable {
        /// `http(s)://host[:port]`: e.g. `http://127.0.0.1:9000`, or `https://s3.<region>.amazonaws.com`.
        /// Empty: AWS's endpoint for the region.
        public var endpoint: String
        /// Empty: `AWS_REGION`/`AWS_DEFAULT_REGION` through ``fillingCredentialsFromEnvironment(_:)``, else us-east-1.
        public var region: String
        public var bucket: String
        /// Prepended to every key, so several registries can share a bucket; normalised to end with `/`.
        public var prefix: String
        public var accessKey: String
        public var secretKey: String
        /// Temporary credentials' token (`x-amz-security-token`).
        public var sessionToken: String?
        /// `endpoint/bucket/key` when true; `bucket.endpoint-host/key` (virtual-hosted, AWS's default) when false.
        public var pathStyle: Bool
        /// Whether ``S3BlobStore/presignedURL(for:)`` hands out presigned URLs for blob downloads.
        public var redirect: Bool
        /// How long a presigned URL stays valid, in seconds (S3 accepts at most 7 days).
        public var redirectExpiry: Int
        /// The longest one request to S3 may take, in seconds (a part of at most 128 MiB, or a listing).
        public var requestTimeout: Int

        public init(
            endpoint: String, region: String = "us-east-1", bucket: String, prefix: String = "",
            accessKey: String = "", secretKey: String = "", sessionToken: String? = nil, pathStyle: Bool = true,
            redirect: Bool = false, redirectExpiry: Int = 300, requestTimeout: Int = 300
        ) {
            self.endpoint = endpoint
            self.region = region
            self.bucket = bucket
            self.prefix = Self.normalizedPrefix(prefix)
            self.accessKey = accessKey
            self.secretKey = secretKey
            self.sessionToken = sessionToken
            self.pathStyle = pathStyle
            self.redirect = redirect
            self.redirectExpiry = redirectExpiry
            self.requestTimeout = requestTimeout
        }

        /// The configuration with what it leaves empty taken from the standard AWS variables:
        /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` (or `AWS_DEFAULT_REGION`).
        /// The key pair is taken together, so a key from the file never meets a secret from the environment.
        public func fillingCredentialsFromEnvironment(_ environment: [String: String]) -> Configuration {
            var filled = self
            func value(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
            if filled.accessKey.isEmpty && filled.secretKey.isEmpty {
                filled.accessKey = value("AWS_ACCESS_KEY_ID") ?? ""
                filled.secretKey = value("AWS_SECRET_ACCESS_KEY") ?? ""
                if filled.sessionToken?.isEmpty ?? true { filled.sessionToken = value("AWS_SESSION_TOKEN") }
            }
            if filled.region.isEmpty {
                filled.region = value("AWS_REGION") ?? value("AWS_DEFAULT_REGION") ?? ""
            }
            return filled
        }

        /// Leading slashes dropped; a trailing one added when not empty.
        static func normalizedPrefix(_ prefix: String) -> String {
            var prefix = Substring(prefix)
            while prefix.hasPrefix("/") { prefix = prefix.dropFirst() }
            return prefix.isEmpty || prefix.hasSuffix("/") ? String(prefix) : prefix + "/"
        }
    }

    public let configuration: Configuration
    let layout: S3KeyLayout
    private let logger: Logger
    /// The connection, or why the configuration cannot make one (reported by every operation).
    private let connectionResult: Result<S3Connection, S3Error>

    /// Uploads' part objects are copied this many at a time when a blob is assembled, and deleted as many at a time.
    static let concurrentRequests = 8
    /// S3's limits for server-side assembly: a copied object or part is at most 5 GiB, every part but the
    /// last is at least 5 MiB, and an object has at most 10,000 parts.
    static let maxCopySize: Int64 = 5 << 30
    static let minPartSize: Int64 = 5 << 20
    static let maxParts = 10_000

    /// - Parameter httpClient: owned by the caller, who shuts it down after the store's last use.
    public init(configuration: Configuration, httpClient: HTTPClient, logger: Logger) {
        let region = configuration.region.isEmpty ? "us-east-1" : configuration.region
        var configuration = configuration
        configuration.region = region
        configuration.prefix = Configuration.normalizedPrefix(configuration.prefix)
        if configuration.endpoint.isEmpty { configuration.endpoint = "https://s3.\(region).amazonaws.com" }
        self.configuration = configuration
        self.layout = S3KeyLayout(prefix: configuration.prefix)
        self.logger = logger
        if let endpoint = S3Connection.parseEndpoint(configuration.endpoint) {
            connectionResult = .success(S3Connection(
                httpClient: httpClient,
                signer: SigV4Signer(
                    accessKey: configuration.accessKey, secretKey: configuration.secretKey,
                    sessionToken: configuration.sessionToken, region: region),
                bucket: configuration.bucket, scheme: endpoint.scheme, authority: endpoint.authority,
                pathStyle: configuration.pathStyle, requestTimeout: .seconds(Int64(max(1, configuration.requestTimeout))),
                logger: logger))
        } else {
            connectionResult = .failure(S3Error(
                operation: "Configure", status: 0, code: "InvalidEndpoint",
                message: "the endpoint '\(configuration.endpoint)' is not http(s)://host[:port]", bucket: configuration.bucket, key: nil))
        }
    }

    private func connection() throws -> S3Connection {
        try connectionResult.get()
    }

    // MARK: Bucket

    /// Creates the bucket when it does not exist (a first start, or a test); fails clearly when it cannot be used.
    public func ensureBucket() async throws {
        let connection = try connection()
        var status = try await connection.headBucket()
        if status == 404 {
            logger.notice("creating the S3 bucket", metadata: ["bucket": "\(configuration.bucket)"])
            try await connection.createBucket()
            status = try await connection.headBucket()
        }
        guard status == 200 else { throw bucketError(status, connection) }
    }

    /// Throws a clear error unless the bucket answers and is ours to use (health checks).
    public func checkReachable() async throws {
        let connection = try connection()
        let status = try await connection.headBucket()
        guard status == 200 else { throw bucketError(status, connection) }
    }

    private func bucketError(_ status: UInt, _ connection: S3Connection) -> S3Error {
        let why = switch status {
        case 404: "the bucket does not exist"
        case 403: "access denied: check the access key, secret key and the bucket's policy"
        case 301, 400: "the bucket is in another region than '\(configuration.region)', or the endpoint is wrong"
        default: "unexpected answer"
        }
        return connection.error(S3Call(operation: "HeadBucket", method: .HEAD), status: Int(status), code: S3Connection.codeForStatus(Int(status)), message: why)
    }

    // MARK: Redirects

    /// A presigned `GET` URL of a committed blob, valid ``Configuration/redirectExpiry`` seconds; nil unless
    /// ``Configuration/redirect`` is set. The URL is not checked: the caller knows the blob exists.
    public func presignedURL(for digest: Digest) -> String? {
        guard configuration.redirect, let connection = try? connection() else { return nil }
        return connection.presignedGetURL(layout.blobKey(digest), expires: configuration.redirectExpiry)
    }

    // MARK: BlobReader

    public func stat(_ digest: Digest) async throws -> BlobStat? {
        try await connection().headObject(layout.blobKey(digest)).map(BlobStat.init(size:))
    }

    public func open(_ digest: Digest) async throws -> (any BlobReadHandle)? {
        let connection = try connection()
        let key = layout.blobKey(digest)
        guard let size = try await connection.headObject(key) else { return nil }
        return S3BlobReadHandle(connection: connection, key: key, size: size)
    }

    // MARK: BlobWriter

    /// Upload ids are fresh (the registry draws 128 random bits), so an existing one is never re-created.
    public func createUpload(id: String) async throws {
        try check(id)
        try await connection().putObject(layout.markerKey(id), body: ByteBuffer())
    }

    public func uploadSize(id: String) async throws -> Int64? {
        try check(id)
        return try await contents(of: id)?.size
    }

    public func appendToUpload(id: String) async throws -> any UploadWriteHandle {
        try check(id)
        guard let contents = try await contents(of: id) else { throw missingUpload(id, "AppendToUpload") }
        return S3UploadAppender(connection: try connection(), layout: layout, uploadID: id, offset: contents.size)
    }

    public func readUpload(id: String, at offset: Int64, length: Int) async throws -> ByteBuffer {
        try check(id)
        guard let contents = try await contents(of: id) else { throw missingUpload(id, "ReadUpload") }
        let connection = try connection()
        let end = min(contents.size, offset + Int64(max(0, length)))
        guard offset >= 0, offset < end else { return ByteBuffer() }
        var bytes = ByteBuffer()
        bytes.reserveCapacity(Int(end - offset))
        for part in contents.parts where part.offset < end && part.end > offset {
            let range = (max(offset, part.offset) - part.offset)..<(min(end, part.end) - part.offset)
            var chunk = try await connection.getObject(part.key, range: range)
            bytes.writeBuffer(&chunk)
        }
        return bytes
    }

    public func commitUpload(id: String, as digest: Digest) async throws {
        try check(id)
        let connection = try connection()
        let blobKey = layout.blobKey(digest)
        if try await connection.headObject(blobKey) == nil {
            guard let contents = try await contents(of: id) else { throw missingUpload(id, "CommitUpload") }
            try await assemble(contents, into: blobKey, connection)
        }
        try await deleteUpload(id: id)
    }

    public func deleteUpload(id: String) async throws {
        try check(id)
        let connection = try connection()
        let objects = try await connection.listObjects(prefix: layout.uploadPrefix(id)).objects
        let marker = layout.markerKey(id)
        // The marker first: from then on the upload is unknown, however far removing its parts gets.
        if objects.contains(where: { $0.key == marker }) { try await connection.deleteObject(marker) }
        let parts = objects.map(\.key).filter { $0 != marker }
        _ = try await Self.concurrentMap(parts, width: Self.concurrentRequests) { try await connection.deleteObject($0) }
    }

    public var isShared: Bool { true }

    public func uploadLastModified(id: String) async throws -> Int64? {
        try check(id)
        // Without its marker the upload is gone, but objects left under its prefix (a writer that lost a race
        // with the removal) are still data to purge: they count too.
        let objects = try await connection().listObjects(prefix: layout.uploadPrefix(id)).objects
        guard !objects.isEmpty else { return nil }
        return objects.compactMap(\.lastModified).max() ?? 0
    }

    public func listUploads() async throws -> [String] {
        let uploads = layout.uploadsPrefix
        return try await connection().listObjects(prefix: uploads, delimiter: "/").commonPrefixes.compactMap { prefix in
            guard prefix.hasPrefix(uploads), prefix.hasSuffix("/") else { return nil }
            let id = String(prefix.dropFirst(uploads.count).dropLast())
            return id.isEmpty ? nil : id
        }
    }

    // MARK: BlobDeleter

    public func delete(_ digest: Digest) async throws {
        try await connection().deleteObject(layout.blobKey(digest))
    }

    // MARK: Uploads

    /// An upload as the bucket holds it: the chain of contiguous parts from offset 0.
    struct UploadContents: Sendable, Equatable {
        var parts: [StoredPart]
        var size: Int64 { parts.last?.end ?? 0 }
    }

    struct StoredPart: Sendable, Equatable {
        var key: String
        var offset: Int64
        var size: Int64
        var end: Int64 { offset + size }
    }

    /// The upload's parts, or nil when its marker is absent (never created, or deleted).
    func contents(of id: String) async throws -> UploadContents? {
        let objects = try await connection().listObjects(prefix: layout.uploadPrefix(id)).objects
        guard objects.contains(where: { $0.key == layout.markerKey(id) }) else { return nil }
        let parts = objects.compactMap { object in
            layout.partOffset(object.key, uploadID: id).map { StoredPart(key: object.key, offset: $0, size: object.size) }
        }.sorted { $0.offset < $1.offset }
        var chain: [StoredPart] = []
        var end: Int64 = 0
        for part in parts where part.size > 0 {
            // Only a part starting at the current end extends the upload; a gap ends it. A part behind the end
            // means two requests wrote at one offset at once (through two nodes): which bytes the client meant
            // is unknowable, and a node's running digest may cover the other writer's bytes, so the upload is
            // refused rather than committed with content its digest was not computed over.
            if part.offset > end { break }
            guard part.offset == end else {
                throw S3Error(
                    operation: "UploadSize", status: 409, code: "ConflictingChunks",
                    message: "two requests wrote to this upload at offset \(part.offset) at the same time; start the upload again",
                    bucket: configuration.bucket, key: layout.uploadPrefix(id))
            }
            chain.append(part)
            end = part.end
        }
        return UploadContents(parts: chain)
    }

    /// Writes the upload's bytes as one object at `key`, server-side when S3's limits allow it.
    private func assemble(_ contents: UploadContents, into key: String, _ connection: S3Connection) async throws {
        let parts = contents.parts
        if parts.isEmpty {
            try await connection.putObject(key, body: ByteBuffer())
        } else if parts.count == 1 && parts[0].size <= Self.maxCopySize {
            try await connection.copyObject(from: parts[0].key, to: key)
        } else if parts.count <= Self.maxParts,
                  parts.dropLast().allSatisfy({ $0.size >= Self.minPartSize }),
                  parts.allSatisfy({ $0.size <= Self.maxCopySize }) {
            let uploadID = try await connection.createMultipartUpload(key)
            do {
                let etags = try await Self.concurrentMap(Array(parts.enumerated()), width: Self.concurrentRequests) { index, part in
                    try await connection.uploadPartCopy(key, uploadID: uploadID, number: index + 1, source: part.key, range: 0..<part.size)
                }
                try await connection.completeMultipartUpload(key, uploadID: uploadID, etags: etags)
            } catch {
                try? await connection.abortMultipartUpload(key, uploadID: uploadID)
                throw error
            }
        } else {
            var writer = MultipartObjectWriter(connection: connection, key: key)
            do {
                for part in parts {
                    var at: Int64 = 0
                    while at < part.size {
                        let next = min(part.size, at + Int64(S3BlobReadHandle.windowSize))
                        try await writer.write(try await connection.getObject(part.key, range: at..<next))
                        at = next
                    }
                }
                try await writer.finish()
            } catch {
                await writer.abort()
                throw error
            }
        }
    }

    /// Ids become key segments: one that could escape its folder is refused.
    private func check(_ id: String) throws {
        guard !id.isEmpty, id.utf8.count <= 200, !id.contains("/"), id != ".", id != ".." else {
            throw S3Error(operation: "Upload", status: 0, code: "InvalidUploadID", message: "upload id '\(id.prefix(64))' cannot name a key", bucket: configuration.bucket, key: nil)
        }
    }

    private func missingUpload(_ id: String, _ operation: String) -> S3Error {
        S3Error(operation: operation, status: 404, code: "NoSuchUpload", message: "no upload '\(id)'", bucket: configuration.bucket, key: layout.uploadPrefix(id))
    }

    /// `transform` over `items`, at most `width` at a time, results in the items' order.
    static func concurrentMap<Item: Sendable, Result: Sendable>(
        _ items: [Item], width: Int, _ transform: @escaping @Sendable (Item) async throws -> Result
    ) async throws -> [Result] {
        try await withThrowingTaskGroup(of: (Int, Result).self) { group in
            var results = [Result?](repeating: nil, count: items.count)
            var next = 0
            func startNext() {
                let index = next
                let item = items[index]
                group.addTask { (index, try await transform(item)) }
                next += 1
            }
            while next < min(width, items.count) { startNext() }
            while let (index, result) = try await group.next() {
                results[index] = result
                if next < items.count { startNext() }
            }
            return results.map { $0! }
        }
    }
}

/// The keys of the layout ``S3BlobStore`` documents.
struct S3KeyLayout: Sendable {
    /// Empty, or ending with `/`.
    let prefix: String

    func blobKey(_ digest: Digest) -> String {
        "\(prefix)blobs/\(digest.algorithm.rawValue)/\(digest.hex.prefix(2))/\(digest.hex)"
    }

    var uploadsPrefix: String { "\(prefix)_uploads/" }

    func uploadPrefix(_ id: String) -> String { "\(uploadsPrefix)\(id)/" }

    func markerKey(_ id: String) -> String { "\(uploadPrefix(id))created" }

    /// `part-`, the start offset in 20 digits (so that names sort by offset), and the writing handle's id.
    func partKey(_ id: String, offset: Int64, writer: String) -> String {
        let digits = String(offset)
        return "\(uploadPrefix(id))part-" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + "-" + writer
    }

    /// The start offset of a part object of the upload, or nil for any other key.
    func partOffset(_ key: String, uploadID: String) -> Int64? {
        let start = uploadPrefix(uploadID) + "part-"
        guard key.hasPrefix(start) else { return nil }
        let name = key.dropFirst(start.count)
        let digits = name.prefix(20)
        guard digits.count == 20, digits.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        let rest = name.dropFirst(20)
        guard rest.isEmpty || (rest.first == "-" && rest.count > 1) else { return nil }
        return Int64(digits)
    }
}
