import BerthCore
import BerthStorage
import CBerthLinux
import NIOCore
import NIOPosix
import _NIOFileSystem

#if canImport(Glibc)
import Glibc
#endif

/// Blobs in a folder: the embedded default.
///
/// Layout (this type is the only code that knows it):
/// ```
/// <root>/
///   sha256/ab/ab12…ef      committed blobs, immutable, named by their digest
///   sha512/cd/cd34…        (one folder per algorithm, fanned out by the first two hex digits)
///   _uploads/<id>          data of an upload in progress; never read as a blob
/// ```
/// A blob becomes visible only by `rename(2)` of a complete, fsynced upload file to its digest path, so a crash
/// at any point leaves either the whole blob or nothing, and `_uploads` never holds a committed blob. Durability: the upload file is fsynced before the
/// rename and the target folder after it, so an acknowledged push survives power loss.
public struct FileBlobStore: BlobStore {
    public let root: FilePath
    private let fileSystem: FileSystem

    public init(root: String) async throws {
        self.root = FilePath(root)
        self.fileSystem = .shared
        try await fileSystem.createDirectory(at: self.root.appending("_uploads"), withIntermediateDirectories: true)
    }

    func blobPath(_ digest: Digest) -> FilePath {
        root.appending(digest.algorithm.rawValue).appending(String(digest.hex.prefix(2))).appending(digest.hex)
    }

    func uploadPath(_ id: String) -> FilePath {
        root.appending("_uploads").appending(id)
    }

    // MARK: BlobReader

    public func stat(_ digest: Digest) async throws -> BlobStat? {
        guard let info = try await fileSystem.info(forFileAt: blobPath(digest)) else { return nil }
        return BlobStat(size: info.size)
    }

    public func open(_ digest: Digest) async throws -> (any BlobReadHandle)? {
        do {
            let handle = try await fileSystem.openFile(forReadingAt: blobPath(digest), options: .init())
            let size: Int64
            do {
                size = try await handle.info().size
            } catch {
                try? await handle.close()
                throw error
            }
            return FileReadHandle(handle: handle, size: size)
        } catch let error as FileSystemError where error.code == .notFound {
            return nil
        }
    }

    // MARK: BlobWriter

    public func createUpload(id: String) async throws {
        let handle = try await fileSystem.openFile(forWritingAt: uploadPath(id), options: .newFile(replaceExisting: true))
        try await handle.close()
    }

    public func uploadSize(id: String) async throws -> Int64? {
        try await fileSystem.info(forFileAt: uploadPath(id))?.size
    }

    public func appendToUpload(id: String) async throws -> any UploadWriteHandle {
        let path = uploadPath(id)
        let handle = try await fileSystem.openFile(forWritingAt: path, options: .modifyFile(createIfNecessary: false))
        let size = try await handle.info().size
        return FileUploadHandle(handle: handle, path: path.string, offset: size)
    }

    public func readUpload(id: String, at offset: Int64, length: Int) async throws -> ByteBuffer {
        try await fileSystem.withFileHandle(forReadingAt: uploadPath(id)) { handle in
            try await handle.readChunk(fromAbsoluteOffset: offset, length: .bytes(Int64(length)))
        }
    }

    public func commitUpload(id: String, as digest: Digest) async throws {
        let source = uploadPath(id)
        let target = blobPath(digest)
        let folder = target.removingLastComponent()
        try await fileSystem.createDirectory(at: folder, withIntermediateDirectories: true)
        // fsync the data, then publish it by rename, then fsync the folder so the name is durable too.
        let handle = try await fileSystem.openFile(forWritingAt: source, options: .modifyFile(createIfNecessary: false))
        do {
            try await handle.synchronize()
            try await handle.close()
        } catch {
            try? await handle.close()
            throw error
        }
        try await Self.renameAndSync(source.string, target.string, folder.string)
    }

    public func deleteUpload(id: String) async throws {
        try await fileSystem.removeItem(at: uploadPath(id), strategy: .sequential)
    }

    public var isShared: Bool { false }

    public func uploadLastModified(id: String) async throws -> Int64? {
        try await fileSystem.info(forFileAt: uploadPath(id)).map { Int64($0.lastDataModificationTime.seconds) }
    }

    public func listUploads() async throws -> [String] {
        try await fileSystem.withDirectoryHandle(atPath: root.appending("_uploads")) { dir in
            var ids: [String] = []
            for try await entry in dir.listContents() where entry.type == .regular {
                ids.append(entry.name.string)
            }
            return ids
        }
    }

    // MARK: BlobDeleter

    public func delete(_ digest: Digest) async throws {
        try await fileSystem.removeItem(at: blobPath(digest), strategy: .sequential)
    }

    /// `rename(2)` over any existing copy (same digest, same bytes), then `fsync(2)` of the folder.
    /// Runs on NIO's blocking pool: these are blocking system calls.
    private static func renameAndSync(_ source: String, _ target: String, _ folder: String) async throws {
        try await NIOThreadPool.singleton.runIfActive {
            guard rename(source, target) == 0 else {
                throw FileStoreError(operation: "rename", path: target, errno: errno)
            }
            let fd = Glibc.open(folder, O_RDONLY | O_DIRECTORY)
            guard fd >= 0 else { throw FileStoreError(operation: "open", path: folder, errno: errno) }
            defer { close(fd) }
            guard fsync(fd) == 0 else { throw FileStoreError(operation: "fsync", path: folder, errno: errno) }
        }
    }
}

/// A failed system call of the folder store, with the path it concerned.
struct FileStoreError: Error, CustomStringConvertible {
    var operation: String
    var path: String
    var errno: Int32
    var description: String { "\(operation) \(path): \(String(cString: strerror(errno)))" }
}

/// A blob open for positional reads.
struct FileReadHandle: BlobReadHandle {
    let handle: ReadFileHandle
    let size: Int64

    func read(at offset: Int64, length: Int) async throws -> ByteBuffer {
        try await handle.readChunk(fromAbsoluteOffset: offset, length: .bytes(Int64(length)))
    }

    func close() async throws {
        try await handle.close()
    }
}

/// Appends to an upload file: network buffers are gathered (by reference, not copied) into one `pwritev(2)` of
/// 512 KiB, and each written range is handed to the kernel's writeback at once, so the `fsync(2)` at commit
/// finds little left to write instead of the whole blob.
actor FileUploadHandle: UploadWriteHandle {
    private let handle: WriteFileHandle
    private let path: String
    /// Where the next gathered chunk goes.
    private var offset: Int64
    /// The end of the bytes already in the file (readers may read up to here).
    private var writtenEnd: Int64
    /// Buffers waiting for the next write, in order.
    private var pending: [ByteBuffer] = []
    private var pendingBytes = 0
    /// Small buffers are copied together instead, so a trickle of tiny reads neither pins many receive buffers nor
    /// makes a long vector.
    private var coalescing = ByteBuffer()
    /// The chunk being written: one write is in flight while the caller goes on (hashing the next bytes),
    /// so digesting and writing overlap instead of taking turns.
    private var inflight: Task<Int64, any Error>?
    private var closed = false

    /// Writes are issued once this much is gathered: fewer, larger system calls.
    static let gatherSize = 512 << 10
    /// Buffers smaller than this are copied into `coalescing`.
    static let copyBelow = 16 << 10
    /// At most this many buffers per write (well under `IOV_MAX`).
    static let maxVectors = 128

    init(handle: WriteFileHandle, path: String, offset: Int64) {
        self.handle = handle
        self.path = path
        self.offset = offset
        self.writtenEnd = offset
    }

    func write(_ buffer: ByteBuffer) async throws {
        guard buffer.readableBytes > 0 else { return }
        if buffer.readableBytes < Self.copyBelow {
            var buffer = buffer
            coalescing.writeBuffer(&buffer)
            if coalescing.readableBytes >= Self.copyBelow * 4 { moveCoalesced() }
        } else {
            moveCoalesced()
            pending.append(buffer)
            pendingBytes += buffer.readableBytes
        }
        if pendingBytes >= Self.gatherSize || pending.count >= Self.maxVectors {
            try await flush()
        }
    }

    func readableEnd() -> Int64 { writtenEnd }

    private func moveCoalesced() {
        guard coalescing.readableBytes > 0 else { return }
        pendingBytes += coalescing.readableBytes
        pending.append(coalescing)
        coalescing = ByteBuffer()
    }

    /// Waits for the write in flight, then starts writing what is pending without waiting for it.
    private func flush() async throws {
        moveCoalesced()
        guard pendingBytes > 0 else { return }
        try await settle()
        let chunks = pending
        let at = offset
        offset += Int64(pendingBytes)
        pending = []
        pendingBytes = 0
        inflight = Task { [handle, path] in
            try await handle.withUnsafeDescriptor { descriptor in
                let written = try PositionalWrite.write(chunks, to: descriptor.rawValue, at: at, path: path)
                // Only a hint: a failure here shows up at the fsync that makes the blob durable.
                _ = berth_start_writeback(descriptor.rawValue, at, written)
                return written
            }
        }
    }

    /// Waits for the write in flight, if any.
    private func settle() async throws {
        guard let task = inflight else { return }
        inflight = nil
        writtenEnd += try await task.value
    }

    func finish() async throws {
        guard !closed else { return }
        closed = true
        do {
            try await flush()
            try await settle()
            try await handle.close()
        } catch {
            try? await handle.close()
            throw error
        }
    }

    func abandon() async {
        guard !closed else { return }
        closed = true
        // What was gathered is written anyway: a client that resumes can continue from the real end.
        try? await flush()
        try? await settle()
        try? await handle.close()
    }
}

/// `pwritev(2)` of several buffers at an offset, until all of it is written.
enum PositionalWrite {
    /// - Parameter path: the file's path, for error messages.
    static func write(_ chunks: [ByteBuffer], to fd: CInt, at offset: Int64, path: String) throws -> Int64 {
        var vectors: [iovec] = []
        vectors.reserveCapacity(chunks.count)
        return try withVectors(chunks[...], &vectors) { vectors in
            var vectors = vectors
            let total = vectors.reduce(0) { $0 + $1.iov_len }
            var done = 0
            var first = 0
            while done < total {
                let count = vectors.count - first  // at most maxVectors, far below IOV_MAX (1024)
                let n = vectors.withUnsafeBufferPointer { pwritev(fd, $0.baseAddress! + first, CInt(count), off_t(offset) + off_t(done)) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw FileStoreError(operation: "pwritev", path: path, errno: errno)
                }
                // A regular file takes at least one byte or fails; never spin on a write that makes no progress.
                guard n > 0 else { throw FileStoreError(operation: "pwritev", path: path, errno: EIO) }
                done += n
                // Skip what this call wrote: whole vectors, then part of the next.
                var left = n
                while left > 0 {
                    if left >= vectors[first].iov_len {
                        left -= vectors[first].iov_len
                        first += 1
                    } else {
                        vectors[first].iov_base = vectors[first].iov_base.map { $0 + left }
                        vectors[first].iov_len -= left
                        left = 0
                    }
                }
            }
            return Int64(total)
        }
    }

    /// Calls `body` with one `iovec` per buffer, valid while it runs (each buffer's bytes stay pinned).
    private static func withVectors<R>(
        _ chunks: ArraySlice<ByteBuffer>, _ vectors: inout [iovec], _ body: ([iovec]) throws -> R
    ) throws -> R {
        guard let first = chunks.first else { return try body(vectors) }
        return try first.withUnsafeReadableBytes { bytes in
            vectors.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count))
            return try withVectors(chunks.dropFirst(), &vectors, body)
        }
    }
}
