import BerthStorage
import Logging
import NIOCore

/// How many bytes a part holds, by where it starts: 8 MiB for the first 2000 parts, then doubling every 2000
/// parts up to 128 MiB. Ordinary blobs use 8 MiB parts (the memory a request holds); a huge one still fits in
/// S3's 10,000 parts per object (about 484 GiB at this scale).
enum PartSizing {
    static let base = 8 << 20
    static let partsPerTier: Int64 = 2000
    static let tiers = 5

    static func size(at offset: Int64) -> Int {
        var tierStart: Int64 = 0
        for tier in 0..<(tiers - 1) {
            let tierBytes = partsPerTier * Int64(base << tier)
            if offset < tierStart + tierBytes { return base << tier }
            tierStart += tierBytes
        }
        return base << (tiers - 1)
    }
}

/// Appends to an upload: every full part's worth of bytes becomes an object `part-<start offset>` under the
/// upload's prefix as soon as it is gathered, and ``finish()`` stores the rest as a last, shorter part.
///
/// Each part object is written by one `PUT`, which S3 makes visible whole or not at all, so the upload's
/// size (the contiguous parts) only ever grows by complete parts, whichever node reads it. Memory is one part
/// plus the buffer being written.
actor S3UploadAppender: UploadWriteHandle {
    private let connection: S3Connection
    private let layout: S3KeyLayout
    private let uploadID: String
    /// Where the bytes in `pending` start in the upload.
    private var offset: Int64
    private var pending = ByteBuffer()
    private var closed = false
    /// Names this handle's parts apart from any other writer's, so two requests racing at one offset (through
    /// two nodes) leave two objects, which ``S3BlobStore`` detects, instead of one silently replacing the other.
    private let writer = String(UInt32.random(in: 0...UInt32.max), radix: 16)

    init(connection: S3Connection, layout: S3KeyLayout, uploadID: String, offset: Int64) {
        self.connection = connection
        self.layout = layout
        self.uploadID = uploadID
        self.offset = offset
    }

    func write(_ buffer: ByteBuffer) async throws {
        guard !closed else {
            throw S3Error(operation: "AppendToUpload", status: 0, code: "HandleClosed", message: "write after finish or abandon", bucket: connection.bucket, key: layout.uploadPrefix(uploadID))
        }
        pending.writeImmutableBuffer(buffer)
        while pending.readableBytes >= PartSizing.size(at: offset) {
            let part = pending.readSlice(length: PartSizing.size(at: offset))!
            do {
                try await store(part)
            } catch {
                closed = true
                pending = ByteBuffer()
                throw error
            }
        }
        pending.discardReadBytes()
    }

    /// Parts are readable once stored; `offset` is where the bytes not yet stored begin.
    func readableEnd() -> Int64 { offset }

    func finish() async throws {
        guard !closed else { return }
        closed = true
        let rest = pending
        pending = ByteBuffer()
        if rest.readableBytes > 0 { try await store(rest) }
    }

    /// Keeps what was received, as the folder store does: a client that resumes continues from the real end.
    /// What cannot be stored is simply not part of the upload.
    func abandon() async {
        do {
            try await finish()
        } catch {
            connection.logger.debug("abandoned upload data not stored", metadata: ["upload": "\(uploadID)", "error": "\(error)"])
        }
    }

    private func store(_ part: ByteBuffer) async throws {
        try await connection.putObject(layout.partKey(uploadID, offset: offset, writer: writer), body: part)
        offset += Int64(part.readableBytes)
    }
}

/// Writes one object from a stream of buffers with bounded memory: an object that fits in one part is a
/// single `PUT`; a larger one becomes a multipart upload, completed by ``finish()`` (so the object appears
/// whole) or dropped by ``abort()``.
struct MultipartObjectWriter {
    let connection: S3Connection
    let key: String
    private var pending = ByteBuffer()
    private var uploadID: String?
    private var etags: [String] = []
    /// Bytes already sent as parts.
    private var sent: Int64 = 0

    init(connection: S3Connection, key: String) {
        self.connection = connection
        self.key = key
    }

    mutating func write(_ buffer: ByteBuffer) async throws {
        pending.writeImmutableBuffer(buffer)
        // A part leaves only once more than a part is held: the last part is never empty, and an object of
        // exactly one part stays a single PUT.
        while pending.readableBytes > PartSizing.size(at: sent) {
            try await sendPart(pending.readSlice(length: PartSizing.size(at: sent))!)
        }
        pending.discardReadBytes()
    }

    mutating func finish() async throws {
        guard let uploadID else {
            try await connection.putObject(key, body: pending)
            pending = ByteBuffer()
            return
        }
        if pending.readableBytes > 0 {
            try await sendPart(pending)
            pending = ByteBuffer()
        }
        try await connection.completeMultipartUpload(key, uploadID: uploadID, etags: etags)
        self.uploadID = nil
    }

    mutating func abort() async {
        pending = ByteBuffer()
        guard let uploadID else { return }
        self.uploadID = nil
        do {
            try await connection.abortMultipartUpload(key, uploadID: uploadID)
        } catch {
            connection.logger.warning("could not abort a multipart upload; a bucket lifecycle rule for incomplete uploads removes it", metadata: ["key": "\(key)", "error": "\(error)"])
        }
    }

    private mutating func sendPart(_ part: ByteBuffer) async throws {
        if uploadID == nil { uploadID = try await connection.createMultipartUpload(key) }
        etags.append(try await connection.uploadPart(key, uploadID: uploadID!, number: etags.count + 1, body: part))
        sent += Int64(part.readableBytes)
    }
}

/// A committed blob read by ranged `GET`s. The registry reads a blob front to back in steps of about 1 MiB,
/// so each `GET` fetches a larger window (8 MiB) and the following reads are served from it: few requests,
/// and memory bounded by one window per open handle.
actor S3BlobReadHandle: BlobReadHandle {
    nonisolated let size: Int64
    private let connection: S3Connection
    private let key: String
    private var window = ByteBuffer()
    private var windowStart: Int64 = 0

    static let windowSize = 8 << 20

    init(connection: S3Connection, key: String, size: Int64) {
        self.connection = connection
        self.key = key
        self.size = size
    }

    func read(at offset: Int64, length: Int) async throws -> ByteBuffer {
        guard offset >= 0, offset < size, length > 0 else { return ByteBuffer() }
        let end = min(size, offset + Int64(length))
        if offset < windowStart || end > windowStart + Int64(window.readableBytes) {
            let fetchEnd = min(size, offset + Int64(max(Self.windowSize, length)))
            let bytes = try await connection.getObject(key, range: offset..<fetchEnd)
            window = bytes
            windowStart = offset
        }
        return window.getSlice(at: window.readerIndex + Int(offset - windowStart), length: Int(end - offset))!
    }

    func close() async throws {
        window = ByteBuffer()
    }
}
