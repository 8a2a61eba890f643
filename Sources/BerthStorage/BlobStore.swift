import BerthCore
import NIOCore

/// What is known of a stored blob without reading it.
public struct BlobStat: Sendable, Equatable {
    public var size: Int64
    public init(size: Int64) { self.size = size }
}

/// An open, immutable blob being read. Reads are positional so one handle serves any `Range`.
public protocol BlobReadHandle: Sendable {
    var size: Int64 { get }
    /// Reads up to `length` bytes at `offset`; fewer only at the end of the blob.
    func read(at offset: Int64, length: Int) async throws -> ByteBuffer
    func close() async throws
}

/// Read side of a content-addressed blob store.
public protocol BlobReader: Sendable {
    func stat(_ digest: Digest) async throws -> BlobStat?
    /// Opens a blob for reading, or nil when it is not stored.
    func open(_ digest: Digest) async throws -> (any BlobReadHandle)?
}

/// The append side of an upload's data: written strictly in order.
public protocol UploadWriteHandle: Sendable {
    /// Appends the bytes (the handle may buffer them; ``finish()`` makes them durable).
    func write(_ buffer: ByteBuffer) async throws
    /// Where the upload's readable bytes end: ``BlobWriter/readUpload(id:at:length:)`` already returns every byte
    /// before it (the handle may still hold later ones). Readers of a blob still being written wait for it.
    func readableEnd() async -> Int64
    /// Flushes and closes; after it returns the upload's size includes every byte written.
    func finish() async throws
    /// Closes without promising anything of the bytes written (the client went away).
    func abandon() async
}

/// Ingest side: uploads are temporary objects, invisible to readers until committed under their digest.
public protocol BlobWriter: Sendable {
    /// Creates the empty data of a new upload.
    func createUpload(id: String) async throws
    /// Bytes stored so far for an upload, or nil when the store has no such upload.
    func uploadSize(id: String) async throws -> Int64?
    /// Opens an upload to append at its current end.
    func appendToUpload(id: String) async throws -> any UploadWriteHandle
    /// Reads back part of an upload (to rebuild a digest after a restart).
    func readUpload(id: String, at offset: Int64, length: Int) async throws -> ByteBuffer
    /// Makes the upload's bytes durable and visible as blob `digest`, atomically, and removes the upload.
    /// The caller has verified the digest; if the blob already exists the upload is simply discarded.
    func commitUpload(id: String, as digest: Digest) async throws
    /// Removes an upload's data; a missing upload is not an error.
    func deleteUpload(id: String) async throws
    /// Upload ids present in the store (for purging abandoned data).
    func listUploads() async throws -> [String]
    /// When the upload's data last changed (seconds since 1970), or nil when the store has no such upload.
    /// Several nodes purge one store: data another node is still writing is recent, so it is never taken
    /// for an orphan.
    func uploadLastModified(id: String) async throws -> Int64?
    /// Whether several nodes write this store (object storage), so upload data without a session may belong to
    /// a request on another node. A folder belongs to one node, whose own requests are known to it.
    var isShared: Bool { get }
}

/// Removal of committed blobs (garbage collection only: repositories unlink, they never delete bytes).
public protocol BlobDeleter: Sendable {
    func delete(_ digest: Digest) async throws
}

/// A complete blob store back end.
public typealias BlobStore = BlobReader & BlobWriter & BlobDeleter

/// A blob store whose committed blobs clients can fetch themselves (object storage with presigned URLs):
/// the registry answers a blob `GET` with a redirect instead of streaming the bytes through the node.
public protocol BlobRedirecting: Sendable {
    /// A short-lived URL the client can `GET` the blob from, or nil to stream it as usual.
    func redirectURL(for digest: Digest) -> String?
}

/// What an engine reports about itself on start and in health checks.
public protocol StorageEngine: Sendable {
    /// Throws a clear error when the engine cannot be reached.
    func checkReachable() async throws
    /// Releases connections; the store is not used afterwards.
    func shutdown() async
}
