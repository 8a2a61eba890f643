import BerthCore
import BerthStorage
import Logging
import NIOCore

/// Where an upload session stands.
public struct UploadStatus: Sendable, Equatable {
    public var id: String
    /// Bytes received so far; the next chunk starts here.
    public var size: Int64
}

extension Registry {
    /// Opens an upload session.
    public func startUpload(in image: ImageRef) async throws -> UploadStatus {
        try validate(image)
        let image = try writeTarget(image)
        let id = Self.newUploadID()
        // The tracker marks the id busy until the record exists, so the purger never takes the data for an orphan.
        _ = tracker.claim(id)
        defer { tracker.release(id, keeping: nil) }
        try await blobs.createUpload(id: id)
        try await metadata.createUpload(UploadRecord(id: id, repository: image.repository, image: image.image, updatedAt: Self.now()))
        return UploadStatus(id: id, size: 0)
    }

    /// The session, checked to belong to the image it is addressed under (a group's writes: its writable member).
    private func session(_ id: String, in image: ImageRef) async throws -> UploadRecord {
        try validate(image)
        let image = try writeTarget(image)
        guard Self.isValidUploadID(id), let record = try await metadata.upload(id: id),
              record.repository == image.repository, record.image == image.image
        else {
            throw RegistryError(.blobUploadUnknown, detail: String(id.prefix(100)))
        }
        return record
    }

    public func uploadStatus(_ id: String, in image: ImageRef) async throws -> UploadStatus {
        _ = try await session(id, in: image)
        guard let size = try await blobs.uploadSize(id: id) else {
            throw RegistryError(.blobUploadUnknown, detail: id)
        }
        return UploadStatus(id: id, size: size)
    }

    /// Appends a chunk (`PATCH`). With `range`, the chunk must start where the upload stands (else 416).
    public func appendUpload<Body: AsyncSequence & Sendable>(
        _ id: String, in image: ImageRef, range: ClosedRange<Int64>?, body: Body
    ) async throws -> UploadStatus where Body.Element == ByteBuffer {
        _ = try await session(id, in: image)
        return try await withClaim(id) { hash in
            let size = try await self.currentSize(id)
            if let range, range.lowerBound != size {
                throw RegistryError(.rangeInvalid, "chunk does not start at the end of the upload", detail: "upload is at \(size), chunk starts at \(range.lowerBound)")
            }
            hash = try await self.catchUp(id, hash, algorithm: hash?.hasher.algorithm ?? .sha256, to: size)
            let received = try await self.append(id, body: body, hash: &hash)
            if let range, Int64(received) != range.upperBound - range.lowerBound + 1 {
                self.logger.notice("upload chunk length differs from its Content-Range", metadata: ["upload": "\(id)", "received": "\(received)"])
            }
            try await self.metadata.touchUpload(id: id, at: Self.now())
            return UploadStatus(id: id, size: size + Int64(received))
        }
    }

    /// Completes a session (`PUT ?digest=`), with an optional final chunk.
    /// - Returns: the committed digest. A mismatch stores nothing and throws `DIGEST_INVALID`.
    public func finishUpload<Body: AsyncSequence & Sendable>(
        _ id: String, in image: ImageRef, digest: Digest, range: ClosedRange<Int64>?, body: Body?
    ) async throws -> Digest where Body.Element == ByteBuffer {
        let record = try await session(id, in: image)
        let image = ImageRef(repository: record.repository, image: record.image)
        try await withClaim(id) { hash in
            let size = try await self.currentSize(id)
            if let range, range.lowerBound != size {
                throw RegistryError(.rangeInvalid, "chunk does not start at the end of the upload", detail: "upload is at \(size), chunk starts at \(range.lowerBound)")
            }
            hash = try await self.catchUp(id, hash, algorithm: digest.algorithm, to: size)
            var total = size
            if let body {
                total += Int64(try await self.append(id, body: body, hash: &hash))
            }
            try await self.commit(id, hash: hash!, expected: digest, size: total, in: image)
        }
        tracker.remove(id)
        try await metadata.deleteUpload(id: id)
        return digest
    }

    /// A whole blob in one request (`POST ?digest=` with a body).
    public func monolithicUpload<Body: AsyncSequence & Sendable>(
        in image: ImageRef, digest: Digest, body: Body
    ) async throws -> Digest where Body.Element == ByteBuffer {
        try validate(image)
        let image = try writeTarget(image)
        let id = Self.newUploadID()
        _ = tracker.claim(id)
        defer { tracker.remove(id) }
        try await blobs.createUpload(id: id)
        do {
            var hash: UploadTracker.HashState? = .init(digest.algorithm)
            let size = try await append(id, body: body, hash: &hash)
            try await commit(id, hash: hash!, expected: digest, size: Int64(size), in: image)
        } catch {
            try? await blobs.deleteUpload(id: id)
            throw error
        }
        return digest
    }

    /// Abandons a session and its data (`DELETE`).
    public func cancelUpload(_ id: String, in image: ImageRef) async throws {
        _ = try await session(id, in: image)
        guard tracker.claim(id) != nil else {
            throw RegistryError(.blobUploadInvalid, "upload is busy with another request", detail: id)
        }
        tracker.remove(id)
        try await blobs.deleteUpload(id: id)
        try await metadata.deleteUpload(id: id)
    }

    /// Deletes sessions idle for longer than `maxAge` seconds, and upload data no session owns.
    /// - Returns: how many uploads were removed.
    @discardableResult
    public func purgeUploads(olderThan maxAge: Int64) async throws -> Int {
        var removed = 0
        for record in try await metadata.uploads(updatedBefore: Self.now() - maxAge) where !tracker.isBusy(record.id) {
            try await blobs.deleteUpload(id: record.id)
            try await metadata.deleteUpload(id: record.id)
            tracker.remove(record.id)
            removed += 1
        }
        // Data without a session: a crash between creating and recording it, or a monolithic upload that died.
        // In a store several nodes write it may also be another node's upload in flight, so there only data
        // idle as long as a session may be is taken; in a node's own folder, its busy uploads are known.
        for id in try await blobs.listUploads() where !tracker.isBusy(id) {
            guard try await metadata.upload(id: id) == nil, !tracker.isBusy(id) else { continue }
            if blobs.isShared {
                guard let modified = try await blobs.uploadLastModified(id: id), modified < Self.now() - maxAge else { continue }
            }
            try await blobs.deleteUpload(id: id)
            removed += 1
        }
        if removed > 0 { logger.info("purged abandoned uploads", metadata: ["count": "\(removed)"]) }
        return removed
    }

    // MARK: Internals

    /// Runs `work` with exclusive use of an upload and its hash state; a failure forgets the state.
    private func withClaim<T>(_ id: String, _ work: (inout UploadTracker.HashState?) async throws -> T) async throws -> T {
        guard let claimed = tracker.claim(id) else {
            throw RegistryError(.rangeInvalid, "upload is busy with another request", detail: id)
        }
        var hash = claimed
        do {
            let result = try await work(&hash)
            tracker.release(id, keeping: hash)
            return result
        } catch {
            // The stored bytes are the truth; the digest is rebuilt from them next time.
            tracker.release(id, keeping: nil)
            throw error
        }
    }

    private func currentSize(_ id: String) async throws -> Int64 {
        guard let size = try await blobs.uploadSize(id: id) else {
            throw RegistryError(.blobUploadUnknown, detail: id)
        }
        return size
    }

    /// Brings the digest state up to `size` bytes, re-reading stored bytes it has not seen: all of them after a
    /// restart, a failed request, or when the final digest uses another algorithm; only the tail when other
    /// nodes appended chunks since this node last hashed (the stored bytes are append-only, so the prefix this
    /// node hashed is still the upload's prefix).
    private func catchUp(_ id: String, _ hash: UploadTracker.HashState?, algorithm: Digest.Algorithm, to size: Int64) async throws -> UploadTracker.HashState {
        var state = hash.flatMap { $0.hasher.algorithm == algorithm && $0.hashedBytes <= size ? $0 : nil } ?? .init(algorithm)
        let step = 1 << 20
        while state.hashedBytes < size {
            let chunk = try await blobs.readUpload(id: id, at: state.hashedBytes, length: Int(min(Int64(step), size - state.hashedBytes)))
            guard chunk.readableBytes > 0 else { break }
            chunk.withUnsafeReadableBytes { state.hasher.update($0) }
            state.hashedBytes += Int64(chunk.readableBytes)
        }
        return state
    }

    /// Streams a request body into the upload, hashing as it goes. Returns the bytes received.
    private func append<Body: AsyncSequence & Sendable>(
        _ id: String, body: Body, hash: inout UploadTracker.HashState?
    ) async throws -> Int where Body.Element == ByteBuffer {
        let writer = try await blobs.appendToUpload(id: id)
        var received = 0
        do {
            for try await buffer in body {
                buffer.withUnsafeReadableBytes { hash!.hasher.update($0) }
                received += buffer.readableBytes
                try await writer.write(buffer)
            }
            try await writer.finish()
        } catch {
            await writer.abandon()
            throw error
        }
        hash!.hashedBytes += Int64(received)
        return received
    }

    /// Verifies the digest and makes the blob visible in the image.
    private func commit(_ id: String, hash: UploadTracker.HashState, expected: Digest, size: Int64, in image: ImageRef) async throws {
        let actual = hash.hasher.finalize()
        guard actual == expected else {
            try await blobs.deleteUpload(id: id)
            try? await metadata.deleteUpload(id: id)
            tracker.remove(id)
            throw RegistryError(.digestInvalid, detail: "expected \(expected), content is \(actual)")
        }
        try await blobs.commitUpload(id: id, as: expected)
        try await metadata.linkBlob(expected, size: size, in: image)
    }

    static func newUploadID() -> String {
        Hex.random(bytes: 16)
    }

    /// Upload ids are ours: 32 lowercase hex digits. Anything else never reaches the store (no path tricks).
    static func isValidUploadID(_ id: String) -> Bool {
        id.utf8.count == 32 && id.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }
}
