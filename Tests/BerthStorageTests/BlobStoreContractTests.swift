import BerthCore
import BerthStorage
import BerthStorageFile
import Foundation
import NIOCore
import Testing

/// The ``BlobStore`` contract, written once for every back end.
///
/// A back end plugs in with a factory that opens a store whose data lives in a given folder; calling it again
/// with the same folder reopens the same data (a restart). Each check gets a fresh folder.
enum BlobStoreContract {
    typealias Factory = StoreContract<any BlobStore>.Factory
    typealias Context = StoreContract<any BlobStore>.Context
    typealias Check = StoreContract<any BlobStore>.Check

    static func run(_ check: Check, factory: @escaping Factory) async throws {
        try await StoreContract.run(check, factory: factory, folder: "berth-blobs")
    }

    static let checks: [Check] = [
        Check("a new upload is empty and listed", newUpload),
        Check("several writes, commit, then stat/open/read", writeCommitRead),
        Check("readUpload at offsets", readUploadAtOffsets),
        Check("a blob is invisible before commit", invisibleBeforeCommit),
        Check("the same digest committed twice", commitTwice),
        Check("deleteUpload, also of a missing upload", deleteUpload),
        Check("delete a blob", deleteBlob),
        Check("open/stat of a missing blob", missingBlob),
        Check("append continues at the current end", appendContinues),
        Check("abandon keeps what was written", abandonKeeps),
        Check("readableEnd: what readers of an upload in progress may read", readableEnd),
        Check("uploadLastModified: recent for data just written, nil for no upload", uploadLastModified),
        Check("only the readable bytes of a buffer are written", readableBytesOnly),
        Check("an empty blob", emptyBlob),
        Check("a sha512 blob", sha512Blob),
        Check("data survives reopening the store", persistence),
    ]

    // MARK: Helpers

    /// Writes `chunks` into a new upload through one handle and finishes it.
    static func upload(_ store: any BlobStore, id: String, _ chunks: [[UInt8]]) async throws {
        try await store.createUpload(id: id)
        let handle = try await store.appendToUpload(id: id)
        for chunk in chunks { try await handle.write(chunk.buffer) }
        try await handle.finish()
    }

    /// Reads a whole blob in `chunk`-sized positional reads.
    static func readAll(_ handle: any BlobReadHandle, chunk: Int = 300_000) async throws -> [UInt8] {
        var out: [UInt8] = []
        var offset: Int64 = 0
        while offset < handle.size {
            let part = try await handle.read(at: offset, length: chunk)
            #expect(part.readableBytes > 0)
            if part.readableBytes == 0 { break }
            out += part.bytes
            offset += Int64(part.readableBytes)
        }
        return out
    }

    /// Chunks that exercise gathering: a buffer over 1 MiB first, many small ones, then another large one
    /// arriving while small ones are pending, then a small tail.
    static func mixedChunks(_ data: [UInt8]) -> [[UInt8]] {
        var chunks: [[UInt8]] = []
        var offset = 0
        func take(_ n: Int) {
            let end = min(data.count, offset + n)
            chunks.append(Array(data[offset..<end]))
            offset = end
        }
        take((1 << 20) + 123)
        for i in 0..<400 { take(1 + (i * 37) % 97) }
        take(1_200_000)
        for i in 0..<50 { take(4096 + i) }
        while offset < data.count { take(1000) }
        return chunks
    }

    // MARK: Checks

    static func newUpload(_ c: Context) async throws {
        try await c.store.createUpload(id: "u-1")
        #expect(try await c.store.uploadSize(id: "u-1") == 0)
        #expect(try await c.store.uploadSize(id: "never-created") == nil)
        try await c.store.createUpload(id: "u-2")
        try await c.store.createUpload(id: "u-3")
        #expect(try await c.store.listUploads().sorted() == ["u-1", "u-2", "u-3"])
    }

    static func writeCommitRead(_ c: Context) async throws {
        let data = testBytes(2_600_000)
        let chunks = mixedChunks(data)
        #expect(chunks.count > 450)
        #expect(chunks.joined().elementsEqual(data))
        try await upload(c.store, id: "big", chunks)
        #expect(try await c.store.uploadSize(id: "big") == Int64(data.count))

        let digest = Digest.of(data)
        try await c.store.commitUpload(id: "big", as: digest)
        #expect(try await c.store.stat(digest) == BlobStat(size: Int64(data.count)))
        #expect(try await c.store.listUploads().contains("big") == false)
        #expect(try await c.store.uploadSize(id: "big") == nil)

        let handle = try #require(try await c.store.open(digest))
        #expect(handle.size == Int64(data.count))
        let all = try await readAll(handle)
        #expect(all.count == data.count)
        #expect(all == data)
        #expect(Digest.of(all) == digest)
        // Positional reads anywhere, in any order.
        for (offset, length) in [(0, 1), (1_048_575, 2), (1_048_699, 5000), (data.count - 10, 10), (17, 1 << 20), (2_000_000, 12_345)] {
            let part = try await handle.read(at: Int64(offset), length: length)
            #expect(part.bytes == Array(data[offset..<(offset + length)]), "read at \(offset)")
        }
        // Reads end at the end of the blob.
        #expect(try await handle.read(at: Int64(data.count - 3), length: 100).bytes == Array(data.suffix(3)))
        #expect(try await handle.read(at: Int64(data.count), length: 100).readableBytes == 0)
        try await handle.close()
    }

    static func readUploadAtOffsets(_ c: Context) async throws {
        let data = testBytes(1_500_000, seed: 7)
        try await upload(c.store, id: "r", mixedChunks(data))
        #expect(try await c.store.uploadSize(id: "r") == Int64(data.count))
        for (offset, length) in [(0, 10), (0, data.count), (1_048_570, 20), (999_999, 1), (data.count - 1, 1)] {
            let part = try await c.store.readUpload(id: "r", at: Int64(offset), length: length)
            #expect(part.bytes == Array(data[offset..<(offset + length)]), "readUpload at \(offset)")
        }
        #expect(try await c.store.readUpload(id: "r", at: Int64(data.count - 4), length: 64).bytes == Array(data.suffix(4)))
        #expect(try await c.store.readUpload(id: "r", at: Int64(data.count), length: 64).readableBytes == 0)
    }

    static func invisibleBeforeCommit(_ c: Context) async throws {
        let data = Array("not yet a blob".utf8)
        let digest = Digest.of(data)
        try await upload(c.store, id: "pending", [data])
        #expect(try await c.store.uploadSize(id: "pending") == Int64(data.count))
        #expect(try await c.store.stat(digest) == nil)
        #expect(try await c.store.open(digest) == nil)

        try await c.store.commitUpload(id: "pending", as: digest)
        #expect(try await c.store.stat(digest) == BlobStat(size: Int64(data.count)))
        let handle = try #require(try await c.store.open(digest))
        #expect(try await handle.read(at: 0, length: 1000).bytes == data)
        try await handle.close()
    }

    static func commitTwice(_ c: Context) async throws {
        let data = testBytes(70_000, seed: 3)
        let digest = Digest.of(data)
        try await upload(c.store, id: "first", [Array(data.prefix(100)), Array(data.dropFirst(100))])
        try await upload(c.store, id: "second", [data])
        try await c.store.commitUpload(id: "first", as: digest)
        try await c.store.commitUpload(id: "second", as: digest)
        #expect(try await c.store.stat(digest) == BlobStat(size: 70_000))
        #expect(try await c.store.listUploads() == [])
        let handle = try #require(try await c.store.open(digest))
        #expect(try await readAll(handle) == data)
        try await handle.close()
    }

    static func deleteUpload(_ c: Context) async throws {
        try await c.store.deleteUpload(id: "never-created")
        try await upload(c.store, id: "gone", [Array("abc".utf8)])
        try await c.store.createUpload(id: "kept")
        try await c.store.deleteUpload(id: "gone")
        #expect(try await c.store.uploadSize(id: "gone") == nil)
        #expect(try await c.store.listUploads() == ["kept"])
        try await c.store.deleteUpload(id: "gone")
        #expect(try await c.store.uploadSize(id: "kept") == 0)
    }

    static func deleteBlob(_ c: Context) async throws {
        let data = Array("delete me".utf8)
        let other = Array("keep me".utf8)
        let digest = Digest.of(data)
        try await upload(c.store, id: "d", [data])
        try await c.store.commitUpload(id: "d", as: digest)
        try await upload(c.store, id: "k", [other])
        try await c.store.commitUpload(id: "k", as: Digest.of(other))
        #expect(try await c.store.stat(digest) == BlobStat(size: 9))

        try await c.store.delete(digest)
        #expect(try await c.store.stat(digest) == nil)
        #expect(try await c.store.open(digest) == nil)
        #expect(try await c.store.stat(Digest.of(other)) == BlobStat(size: 7))
    }

    static func missingBlob(_ c: Context) async throws {
        let digest = Digest.of(Array("never stored".utf8))
        #expect(try await c.store.stat(digest) == nil)
        #expect(try await c.store.open(digest) == nil)
        let sha512 = Digest.of(Array("never stored".utf8), algorithm: .sha512)
        #expect(try await c.store.stat(sha512) == nil)
        #expect(try await c.store.open(sha512) == nil)
    }

    static func appendContinues(_ c: Context) async throws {
        try await c.store.createUpload(id: "resumed")
        let first = try await c.store.appendToUpload(id: "resumed")
        try await first.write(Array("hello".utf8).buffer)
        try await first.write(Array(" ".utf8).buffer)
        try await first.finish()
        #expect(try await c.store.uploadSize(id: "resumed") == 6)

        let second = try await c.store.appendToUpload(id: "resumed")
        try await second.write(Array("world".utf8).buffer)
        try await second.finish()
        #expect(try await c.store.uploadSize(id: "resumed") == 11)
        #expect(try await c.store.readUpload(id: "resumed", at: 0, length: 11).bytes == Array("hello world".utf8))

        // A third handle after a large write, to cross the gathering threshold.
        let big = testBytes((1 << 20) + 1, seed: 11)
        let third = try await c.store.appendToUpload(id: "resumed")
        try await third.write(big.buffer)
        try await third.finish()
        #expect(try await c.store.uploadSize(id: "resumed") == Int64(11 + big.count))
        #expect(try await c.store.readUpload(id: "resumed", at: 11, length: big.count).bytes == big)

        let digest = try Digest(parsing: "sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9")
        try await c.store.createUpload(id: "hw")
        for part in ["hel", "lo ", "wor", "ld"] {
            let handle = try await c.store.appendToUpload(id: "hw")
            try await handle.write(Array(part.utf8).buffer)
            try await handle.finish()
        }
        try await c.store.commitUpload(id: "hw", as: digest)
        let handle = try #require(try await c.store.open(digest))
        #expect(try await handle.read(at: 0, length: 64).bytes == Array("hello world".utf8))
        try await handle.close()
    }

    /// Not promised by the protocol's wording, but what resuming clients rely on with the embedded store.
    static func abandonKeeps(_ c: Context) async throws {
        try await c.store.createUpload(id: "dropped")
        let handle = try await c.store.appendToUpload(id: "dropped")
        let small = testBytes(1000, seed: 5)
        try await handle.write(Array(small[0..<400]).buffer)
        try await handle.write(Array(small[400...]).buffer)
        await handle.abandon()
        #expect(try await c.store.uploadSize(id: "dropped") == 1000)
        #expect(try await c.store.readUpload(id: "dropped", at: 0, length: 1000).bytes == small)
        // The upload can be resumed at its end.
        let resumed = try await c.store.appendToUpload(id: "dropped")
        try await resumed.write(Array("!".utf8).buffer)
        try await resumed.finish()
        #expect(try await c.store.uploadSize(id: "dropped") == 1001)
        #expect(try await c.store.readUpload(id: "dropped", at: 999, length: 2).bytes == [small[999], UInt8(ascii: "!")])
    }

    /// A proxy repository streams a blob to clients while writing it: readers read up to `readableEnd`.
    static func readableEnd(_ c: Context) async throws {
        try await c.store.createUpload(id: "streaming")
        let handle = try await c.store.appendToUpload(id: "streaming")
        #expect(await handle.readableEnd() == 0)
        let data = testBytes(20 << 20, seed: 9)
        var previous: Int64 = 0
        for start in stride(from: 0, to: data.count, by: 1 << 20) {
            try await handle.write(Array(data[start..<(start + (1 << 20))]).buffer)
            let end = await handle.readableEnd()
            #expect(end >= previous && end <= Int64(start + (1 << 20)))
            if end > previous {
                let read = try await c.store.readUpload(id: "streaming", at: previous, length: Int(end - previous))
                #expect(read.bytes == Array(data[Int(previous)..<Int(end)]))
            }
            previous = end
        }
        // However a store groups its writes, 20 MiB of 1 MiB writes make most of it readable before finish().
        #expect(previous >= 8 << 20)
        try await handle.finish()
        #expect(try await c.store.uploadSize(id: "streaming") == Int64(data.count))
    }

    static func uploadLastModified(_ c: Context) async throws {
        let now = Int64(Date().timeIntervalSince1970)
        #expect(try await c.store.uploadLastModified(id: "never") == nil)
        try await upload(c.store, id: "recent", [Array("abc".utf8)])
        let modified = try #require(try await c.store.uploadLastModified(id: "recent"))
        #expect(abs(modified - now) <= 60, "\(modified) vs \(now)")
        try await c.store.deleteUpload(id: "recent")
        #expect(try await c.store.uploadLastModified(id: "recent") == nil)
    }

    static func readableBytesOnly(_ c: Context) async throws {
        try await c.store.createUpload(id: "sliced")
        let handle = try await c.store.appendToUpload(id: "sliced")
        var small = ByteBuffer(string: "HEADERpayload")
        small.moveReaderIndex(forwardBy: 6)
        try await handle.write(small)
        let bigData = testBytes((1 << 20) + 10, seed: 13)
        var big = ByteBuffer(bytes: bigData)
        big.moveReaderIndex(forwardBy: 10)
        try await handle.write(big)
        try await handle.finish()
        #expect(small.readerIndex == 6)
        let expected = Array("payload".utf8) + Array(bigData.dropFirst(10))
        #expect(try await c.store.uploadSize(id: "sliced") == Int64(expected.count))
        #expect(try await c.store.readUpload(id: "sliced", at: 0, length: expected.count).bytes == expected)
    }

    static func emptyBlob(_ c: Context) async throws {
        let digest = try Digest(parsing: "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        try await c.store.createUpload(id: "empty")
        try await c.store.commitUpload(id: "empty", as: digest)
        #expect(try await c.store.stat(digest) == BlobStat(size: 0))
        let handle = try #require(try await c.store.open(digest))
        #expect(handle.size == 0)
        #expect(try await handle.read(at: 0, length: 10).readableBytes == 0)
        try await handle.close()
    }

    static func sha512Blob(_ c: Context) async throws {
        let data = Array("hello".utf8)
        let sha512 = Digest.of(data, algorithm: .sha512)
        try await upload(c.store, id: "s", [data])
        try await c.store.commitUpload(id: "s", as: sha512)
        #expect(try await c.store.stat(sha512) == BlobStat(size: 5))
        #expect(try await c.store.stat(Digest.of(data)) == nil)
        let handle = try #require(try await c.store.open(sha512))
        #expect(try await handle.read(at: 1, length: 3).bytes == Array("ell".utf8))
        try await handle.close()
    }

    static func persistence(_ c: Context) async throws {
        let data = testBytes(100_000, seed: 9)
        let digest = Digest.of(data)
        try await upload(c.store, id: "c", [data])
        try await c.store.commitUpload(id: "c", as: digest)
        try await upload(c.store, id: "in-progress", [Array("partial".utf8)])

        let reopened = try await c.reopen()
        #expect(try await reopened.stat(digest) == BlobStat(size: 100_000))
        let handle = try #require(try await reopened.open(digest))
        #expect(try await readAll(handle) == data)
        try await handle.close()
        #expect(try await reopened.listUploads() == ["in-progress"])
        #expect(try await reopened.uploadSize(id: "in-progress") == 7)
        let more = try await reopened.appendToUpload(id: "in-progress")
        try await more.write(Array(" data".utf8).buffer)
        try await more.finish()
        #expect(try await reopened.readUpload(id: "in-progress", at: 0, length: 100).bytes == Array("partial data".utf8))
    }
}

@Suite("BlobStore contract: FileBlobStore")
struct FileBlobStoreContractTests {
    @Test(arguments: BlobStoreContract.checks)
    func contract(_ check: BlobStoreContract.Check) async throws {
        try await BlobStoreContract.run(check) { directory in
            try await FileBlobStore(root: directory + "/blobs")
        }
    }
}
