import BerthCore
import BerthStorage
import BerthStorageFile
import Foundation
import NIOCore
import Testing

/// What is specific to the folder back end: the on-disk layout its documentation promises.
@Suite("FileBlobStore layout")
struct FileBlobStoreTests {
    @Test("the blob file appears only at commit, and the upload file goes")
    func blobFileOnlyAfterCommit() async throws {
        let directory = try TemporaryDirectory("berth-file-layout")
        defer { directory.remove() }
        let root = directory.path + "/blobs"
        let store = try await FileBlobStore(root: root)
        var isDirectory: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: root + "/_uploads", isDirectory: &isDirectory) && isDirectory.boolValue)

        let data = Array("hello".utf8)
        let digest = Digest.of(data)
        let blobFile = "\(root)/sha256/2c/\(digest.hex)"
        let uploadFile = "\(root)/_uploads/u-1"

        try await store.createUpload(id: "u-1")
        #expect(FileManager.default.fileExists(atPath: uploadFile))
        let handle = try await store.appendToUpload(id: "u-1")
        try await handle.write(ByteBuffer(bytes: data))
        try await handle.finish()
        #expect(!FileManager.default.fileExists(atPath: blobFile))
        #expect(try await store.stat(digest) == nil)

        try await store.commitUpload(id: "u-1", as: digest)
        #expect(FileManager.default.fileExists(atPath: blobFile))
        #expect(!FileManager.default.fileExists(atPath: uploadFile))
        #expect(FileManager.default.contents(atPath: blobFile) == Data(data))

        let sha512 = Digest.of(data, algorithm: .sha512)
        try await store.createUpload(id: "u-2")
        try await store.commitUpload(id: "u-2", as: sha512)
        #expect(FileManager.default.fileExists(atPath: "\(root)/sha512/9b/\(sha512.hex)"))

        try await store.delete(digest)
        #expect(!FileManager.default.fileExists(atPath: blobFile))
    }

    @Test("listUploads ignores anything but regular files")
    func listUploadsRegularOnly() async throws {
        let directory = try TemporaryDirectory("berth-file-layout")
        defer { directory.remove() }
        let root = directory.path + "/blobs"
        let store = try await FileBlobStore(root: root)
        try await store.createUpload(id: "a")
        try FileManager.default.createDirectory(atPath: root + "/_uploads/not-an-upload", withIntermediateDirectories: false)
        #expect(try await store.listUploads() == ["a"])
    }

    @Test("reopening an existing root keeps its data")
    func reopenExistingRoot() async throws {
        let directory = try TemporaryDirectory("berth-file-layout")
        defer { directory.remove() }
        let first = try await FileBlobStore(root: directory.path)
        try await first.createUpload(id: "x")
        let second = try await FileBlobStore(root: directory.path)
        #expect(try await second.uploadSize(id: "x") == 0)
    }
}
