import BerthCore
import BerthStorage
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

    /// The size of each positional read when serving a blob.
    public static let readChunkSize = 1 << 20

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
        let handle = try await fileSystem.openFile(forWritingAt: uploadPath(id), options: .modifyFile(createIfNecessary: false))
        let size = try await handle.info().size
        return FileUploadHandle(handle: handle, offset: size)
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

/// Appends to an upload file, gathering small network buffers into larger writes.
actor FileUploadHandle: UploadWriteHandle {
    private let handle: WriteFileHandle
    /// Where the next gathered chunk goes.
    private var offset: Int64
    /// The end of the bytes already in the file (readers may read up to here).
    private var writtenEnd: Int64
    private var pending: ByteBuffer
    /// The chunk being written: one write is in flight while the caller goes on (hashing the next bytes),
    /// so digesting and writing overlap instead of taking turns.
    private var inflight: Task<Int64, any Error>?
    private var closed = false

    /// Writes are issued once this much is gathered: fewer, larger system calls.
    static let gatherSize = 1 << 20

    init(handle: WriteFileHandle, offset: Int64) {
        self.handle = handle
        self.offset = offset
        self.writtenEnd = offset
        self.pending = ByteBuffer()
    }

    func write(_ buffer: ByteBuffer) async throws {
        if pending.readableBytes == 0 && buffer.readableBytes >= Self.gatherSize {
            try await flush(buffer)
            return
        }
        var buffer = buffer
        pending.writeBuffer(&buffer)
        if pending.readableBytes >= Self.gatherSize {
            let chunk = pending
            pending = ByteBuffer()
            try await flush(chunk)
        }
    }

    func readableEnd() -> Int64 { writtenEnd }

    /// Waits for the write in flight, then starts writing `chunk` without waiting for it.
    private func flush(_ chunk: ByteBuffer) async throws {
        try await settle()
        let at = offset
        offset += Int64(chunk.readableBytes)
        inflight = Task { [handle] in
            try await handle.write(contentsOf: chunk.readableBytesView, toAbsoluteOffset: at)
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
            if pending.readableBytes > 0 {
                let chunk = pending
                pending = ByteBuffer()
                try await flush(chunk)
            }
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
        if pending.readableBytes > 0 {
            let chunk = pending
            pending = ByteBuffer()
            try? await flush(chunk)
        }
        try? await settle()
        try? await handle.close()
    }
}
