import BerthCore
import BerthStorage
import Logging
import NIOCore

extension Registry {
    /// Size of a blob linked in the image, or `BLOB_UNKNOWN`.
    public func blobStat(_ digest: Digest, in image: ImageRef) async throws -> BlobStat {
        try validate(image)
        guard let size = try await metadata.linkedBlobSize(digest, in: image) else {
            throw RegistryError(.blobUnknown, detail: digest.description)
        }
        return BlobStat(size: size)
    }

    /// Opens a blob linked in the image for reading, or throws `BLOB_UNKNOWN`.
    public func openBlob(_ digest: Digest, in image: ImageRef) async throws -> any BlobReadHandle {
        _ = try await blobStat(digest, in: image)
        guard let handle = try await blobs.open(digest) else {
            logger.error("linked blob missing from blob store", metadata: ["digest": "\(digest)", "image": "\(image)"])
            throw RegistryError(.blobUnknown, detail: digest.description)
        }
        return handle
    }

    /// Removes a blob from the image (its bytes stay until garbage collection; other images keep theirs).
    public func deleteBlob(_ digest: Digest, in image: ImageRef) async throws {
        try validate(image)
        try requireWritable(image)
        guard try await metadata.unlinkBlob(digest, in: image) else {
            throw RegistryError(.blobUnknown, detail: digest.description)
        }
    }

    /// Cross-repository mount: links a blob of `source` into `target` without moving bytes.
    /// - Returns: false when the source does not have the blob (the client then uploads it).
    public func mountBlob(_ digest: Digest, from source: ImageRef, to target: ImageRef) async throws -> Bool {
        try validate(target)
        try requireWritable(target)
        guard (try? validate(source)) != nil,
              let size = try await metadata.linkedBlobSize(digest, in: source),
              try await blobs.stat(digest) != nil
        else { return false }
        try await metadata.linkBlob(digest, size: size, in: target)
        return true
    }
}
