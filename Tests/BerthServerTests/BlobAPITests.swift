import BerthCore
import BerthRegistry
import BerthServer
import BerthStorageS3
import BerthStorage
import Foundation
import HTTPTypes
import HummingbirdTesting
import Logging
import NIOCore
import Testing

@Suite("Blob endpoints")
struct BlobAPITests {
    @Test func baseEndpointAnswersUnderBothAccessMethods() async throws {
        let t = try TestRegistry()
        defer { t.cleanUp() }
        try await t.run { client in
            for path in ["/v2/", "/v2", "/repository/docker-hosted/v2/", "/repository/docker-hosted//v2/"] {
                try await client.execute(uri: path, method: .get) { r in
                    #expect(r.status == .ok, "\(path)")
                    #expect(r.headers[.dockerAPIVersion] == "registry/2.0")
                }
            }
            try await client.execute(uri: "/repository/nope/v2/", method: .get) { r in
                #expect(r.status == .notFound)
                #expect(r.errorCode == "NAME_UNKNOWN")
            }
        }
    }

    @Test func statusCheckReportsBothStores() async throws {
        let t = try TestRegistry()
        defer { t.cleanUp() }
        try await t.run { client in
            try await client.execute(uri: "/service/rest/v1/status/check", method: .get) { r in
                #expect(r.status == .ok)
                #expect(r.headers[.contentType] == "application/json")
                #expect(String(buffer: r.body) == #"{"blob store":{"healthy":true},"metadata store":{"healthy":true}}"#)
            }
        }
    }

    @Test func purgeTakesIdleSessionsAndOrphanDataButNotBusyUploads() async throws {
        let t = try TestRegistry()
        defer { t.cleanUp() }
        let registry = try await BerthApplication.buildRegistry(t.configuration, logger: Logger(label: "test"))
        let image = ImageRef(repository: "docker-hosted", image: "team/app")
        let session = try await registry.startUpload(in: image)
        // Data without a session, as a crash leaves it: in a node's own folder it goes at once.
        try await registry.blobs.createUpload(id: "0123456789abcdef0123456789abcdef")
        #expect(try await registry.purgeUploads(olderThan: 3600) == 1)
        #expect(try await registry.uploadStatus(session.id, in: image).size == 0)
        // The session is idle longer than -10 seconds: it goes too.
        #expect(try await registry.purgeUploads(olderThan: -10) == 1)
        #expect(try await registry.blobs.listUploads() == [])
        await #expect(throws: RegistryError.self) { _ = try await registry.uploadStatus(session.id, in: image) }
        await registry.shutdown()
    }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["BERTH_TEST_S3_ENDPOINT"] != nil, "needs BERTH_TEST_S3_ENDPOINT (scripts/test-services.sh)"))
    func purgeOnAStoreSeveralNodesShareKeepsFreshOrphans() async throws {
        var t = try TestRegistry()
        defer { t.cleanUp() }
        var s3 = S3BlobStore.Configuration(endpoint: ProcessInfo.processInfo.environment["BERTH_TEST_S3_ENDPOINT"]!, bucket: "berth-server-tests")
        s3.prefix = "purge-\(UUID().uuidString.lowercased())/"
        s3.accessKey = "test"
        s3.secretKey = "test"
        t.blobs = .s3(s3)
        let registry = try await BerthApplication.buildRegistry(t.configuration, logger: Logger(label: "test"))
        // Data without a session may be another node's monolithic upload in flight: recent, so it stays.
        try await registry.blobs.createUpload(id: "0123456789abcdef0123456789abcdef")
        #expect(try await registry.purgeUploads(olderThan: 3600) == 0)
        #expect(try await registry.blobs.listUploads() == ["0123456789abcdef0123456789abcdef"])
        #expect(try await registry.purgeUploads(olderThan: -10) == 1)
        #expect(try await registry.blobs.listUploads() == [])
        await registry.shutdown()
    }

    @Test func monolithicPushThenHeadGetAndRanges() async throws {
        let t = try TestRegistry()
        defer { t.cleanUp() }
        try await t.run { client in
            let bytes = Array("0123456789abcdefghij".utf8)
            let digest = try await Pusher(client: client).blob("team/app", bytes)
            try await client.execute(uri: "/v2/docker-hosted/team/app/blobs/\(digest)", method: .head) { r in
                #expect(r.status == .ok)
                #expect(r.headers[.contentLength] == "20")
                #expect(r.headers[.dockerContentDigest] == digest)
                #expect(r.headers[.eTag] == "\"\(digest)\"")
                #expect(r.body.readableBytes == 0)
            }
            try await client.execute(uri: "/v2/docker-hosted/team/app/blobs/\(digest)", method: .get) { r in
                #expect(r.status == .ok)
                #expect(Array(r.body.readableBytesView) == bytes)
            }
            try await client.execute(uri: "/v2/docker-hosted/team/app/blobs/\(digest)", method: .get, headers: [.range: "bytes=2-5"]) { r in
                #expect(r.status == .partialContent)
                #expect(r.headers[.contentRange] == "bytes 2-5/20")
                #expect(r.text == "2345")
            }
            // Resuming a download: several range requests in a row reassemble the blob.
            var reassembled = ""
            for start in stride(from: 0, to: 20, by: 7) {
                try await client.execute(uri: "/v2/docker-hosted/team/app/blobs/\(digest)", method: .get, headers: [.range: "bytes=\(start)-\(start + 6)"]) { r in
                    #expect(r.status == .partialContent)
                    reassembled += r.text
                }
            }
            #expect(reassembled == "0123456789abcdefghij")
            try await client.execute(uri: "/v2/docker-hosted/team/app/blobs/\(digest)", method: .get, headers: [.range: "bytes=0-1,18-"]) { r in
                #expect(r.status == .partialContent)
                let type = try #require(r.headers[.contentType])
                #expect(type.hasPrefix("multipart/byteranges; boundary="))
                #expect(r.text.contains("Content-Range: bytes 0-1/20\r\n\r\n01\r\n"))
                #expect(r.text.contains("Content-Range: bytes 18-19/20\r\n\r\nij\r\n"))
                #expect(r.headers[.contentLength] == String(r.body.readableBytes))
            }
            try await client.execute(uri: "/v2/docker-hosted/team/app/blobs/\(digest)", method: .get, headers: [.range: "bytes=20-"]) { r in
                #expect(r.status == .rangeNotSatisfiable)
                #expect(r.headers[.contentRange] == "bytes */20")
            }
        }
    }

    @Test func digestErrorsAreDigestInvalidAndStoreNothing() async throws {
        let t = try TestRegistry()
        defer { t.cleanUp() }
        try await t.run { client in
            let wrong = sha256("something else")
            try await client.execute(uri: "/v2/docker-hosted/a/blobs/uploads/?digest=\(wrong)", method: .post, body: ByteBuffer(string: "content")) { r in
                #expect(r.status == .badRequest)
                #expect(r.errorCode == "DIGEST_INVALID")
            }
            try await client.execute(uri: "/v2/docker-hosted/a/blobs/\(wrong)", method: .head) { r in
                #expect(r.status == .notFound)
            }
            for bad in ["sha256:abc", "md5:d41d8cd98f00b204e9800998ecf8427e", "nocolon", "sha256:" + String(repeating: "A", count: 64)] {
                try await client.execute(uri: "/v2/docker-hosted/a/blobs/\(bad)", method: .get) { r in
                    #expect(r.status == .badRequest, "\(bad)")
                    #expect(r.errorCode == "DIGEST_INVALID")
                }
                try await client.execute(uri: "/v2/docker-hosted/a/blobs/uploads/?digest=\(bad)", method: .post, body: ByteBuffer(string: "x")) { r in
                    #expect(r.errorCode == "DIGEST_INVALID", "\(bad)")
                }
            }
            // sha512 is a registered algorithm and works end to end.
            let content = Array("sha512 content".utf8)
            let d512 = Digest.of(content, algorithm: .sha512).description
            try await client.execute(uri: "/v2/docker-hosted/a/blobs/uploads/?digest=\(d512)", method: .post, body: ByteBuffer(bytes: content)) { r in
                #expect(r.status == .created)
            }
            try await client.execute(uri: "/v2/docker-hosted/a/blobs/\(d512)", method: .get) { r in
                #expect(Array(r.body.readableBytesView) == content)
            }
        }
    }

    @Test func chunkedUploadWithStatusOrderingAndCompletion() async throws {
        let t = try TestRegistry()
        defer { t.cleanUp() }
        try await t.run { client in
            let location = try await client.execute(uri: "/v2/docker-hosted/team/app/blobs/uploads/", method: .post) { r in
                #expect(r.status == .accepted)
                #expect(r.headers[.range] == "0-0")
                let id = try #require(r.headers[.dockerUploadUUID])
                let location = try #require(r.headers[.location])
                #expect(location == "/v2/docker-hosted/team/app/blobs/uploads/\(id)")
                return location
            }
            try await client.execute(uri: location, method: .patch, headers: [.contentRange: "0-4", .contentType: "application/octet-stream"], body: ByteBuffer(string: "hello")) { r in
                #expect(r.status == .accepted)
                #expect(r.headers[.range] == "0-4")
                #expect(r.headers[.location] == location)
            }
            // Out of order and overlapping chunks are refused with 416 and change nothing.
            for range in ["10-14", "0-4", "3-7"] {
                try await client.execute(uri: location, method: .patch, headers: [.contentRange: range], body: ByteBuffer(string: "XXXXX")) { r in
                    #expect(r.status == .rangeNotSatisfiable, "\(range)")
                }
            }
            try await client.execute(uri: location, method: .patch, headers: [.contentRange: "nonsense"], body: ByteBuffer(string: "x")) { r in
                #expect(r.status == .rangeNotSatisfiable)
            }
            // A streamed chunk without Content-Range appends.
            try await client.execute(uri: location, method: .patch, body: ByteBuffer(string: " wor")) { r in
                #expect(r.status == .accepted)
                #expect(r.headers[.range] == "0-8")
            }
            try await client.execute(uri: location, method: .get) { r in
                #expect(r.status == .noContent)
                #expect(r.headers[.range] == "0-8")
            }
            try await client.execute(uri: location, method: .put) { r in
                #expect(r.status == .badRequest, "PUT without digest")
                #expect(r.errorCode == "DIGEST_INVALID")
            }
            let digest = sha256("hello world")
            try await client.execute(uri: "\(location)?digest=\(digest)", method: .put, headers: [.contentRange: "9-10"], body: ByteBuffer(string: "ld")) { r in
                #expect(r.status == .created)
                #expect(r.headers[.location] == "/v2/docker-hosted/team/app/blobs/\(digest)")
                #expect(r.headers[.dockerContentDigest] == digest)
            }
            try await client.execute(uri: "/v2/docker-hosted/team/app/blobs/\(digest)", method: .get) { r in
                #expect(r.text == "hello world")
            }
            // The session is gone once completed.
            try await client.execute(uri: location, method: .get) { r in
                #expect(r.status == .notFound)
                #expect(r.errorCode == "BLOB_UPLOAD_UNKNOWN")
            }
        }
    }

    @Test func putWithoutFinalChunkAndDigestMismatchOnSession() async throws {
        let t = try TestRegistry()
        defer { t.cleanUp() }
        try await t.run { client in
            let location = try await client.execute(uri: "/v2/docker-hosted/a/blobs/uploads/", method: .post) { try #require($0.headers[.location]) }
            try await client.execute(uri: location, method: .patch, body: ByteBuffer(string: "abc")) { #expect($0.status == .accepted) }
            try await client.execute(uri: "\(location)?digest=\(sha256("abcd"))", method: .put) { r in
                #expect(r.status == .badRequest)
                #expect(r.errorCode == "DIGEST_INVALID")
            }
            try await client.execute(uri: "/v2/docker-hosted/a/blobs/\(sha256("abcd"))", method: .head) { #expect($0.status == .notFound) }
            try await client.execute(uri: "/v2/docker-hosted/a/blobs/\(sha256("abc"))", method: .head) { #expect($0.status == .notFound) }

            let second = try await client.execute(uri: "/v2/docker-hosted/a/blobs/uploads/", method: .post) { try #require($0.headers[.location]) }
            try await client.execute(uri: second, method: .patch, body: ByteBuffer(string: "abc")) { #expect($0.status == .accepted) }
            try await client.execute(uri: "\(second)?digest=\(sha256("abc"))", method: .put) { #expect($0.status == .created) }
            try await client.execute(uri: "/v2/docker-hosted/a/blobs/\(sha256("abc"))", method: .get) { #expect($0.text == "abc") }
        }
    }

    @Test func uploadCancelUnknownAndWrongImage() async throws {
        let t = try TestRegistry()
        defer { t.cleanUp() }
        try await t.run { client in
            let location = try await client.execute(uri: "/v2/docker-hosted/a/blobs/uploads", method: .post) { try #require($0.headers[.location]) }
            let id = String(location.split(separator: "/").last!)
            try await client.execute(uri: "/v2/docker-hosted/b/blobs/uploads/\(id)", method: .get) { r in
                #expect(r.status == .notFound, "a session is only visible under its own image")
                #expect(r.errorCode == "BLOB_UPLOAD_UNKNOWN")
            }
            try await client.execute(uri: location, method: .delete) { #expect($0.status == .noContent) }
            try await client.execute(uri: location, method: .get) { #expect($0.errorCode == "BLOB_UPLOAD_UNKNOWN") }
            try await client.execute(uri: location, method: .patch, body: ByteBuffer(string: "x")) { #expect($0.errorCode == "BLOB_UPLOAD_UNKNOWN") }
            for bogus in ["../../etc/passwd", "0123", String(repeating: "z", count: 32)] {
                try await client.execute(uri: "/v2/docker-hosted/a/blobs/uploads/\(bogus)", method: .get) { r in
                    #expect(r.status == .notFound, "\(bogus)")
                }
            }
        }
    }

    @Test func blobsAreIsolatedPerImageAndDeletable() async throws {
        let t = try TestRegistry()
        defer { t.cleanUp() }
        try await t.run { client in
            let digest = try await Pusher(client: client).blob("team/a", "private bytes")
            for other in ["/v2/docker-hosted/team/b", "/v2/other-hosted/team/a", "/repository/other-hosted/v2/team/a"] {
                try await client.execute(uri: "\(other)/blobs/\(digest)", method: .get) { r in
                    #expect(r.status == .notFound, "\(other)")
                    #expect(r.errorCode == "BLOB_UNKNOWN")
                }
            }
            try await client.execute(uri: "/v2/docker-hosted/team/a/blobs/\(digest)", method: .delete) { #expect($0.status == .accepted) }
            try await client.execute(uri: "/v2/docker-hosted/team/a/blobs/\(digest)", method: .head) { #expect($0.status == .notFound) }
            try await client.execute(uri: "/v2/docker-hosted/team/a/blobs/\(digest)", method: .delete) { r in
                #expect(r.status == .notFound)
                #expect(r.errorCode == "BLOB_UNKNOWN")
            }
        }
    }

    @Test func crossRepositoryMount() async throws {
        let t = try TestRegistry()
        defer { t.cleanUp() }
        try await t.run { client in
            let digest = try await Pusher(client: client).blob("base/img", "shared layer")
            // Within a Berth repository, and between Berth repositories (names as the client sees them).
            for (target, from) in [("docker-hosted/team/app", "docker-hosted/base/img"), ("other-hosted/x", "docker-hosted/base/img")] {
                try await client.execute(uri: "/v2/\(target)/blobs/uploads/?mount=\(digest)&from=\(from)", method: .post) { r in
                    #expect(r.status == .created, "\(target)")
                    #expect(r.headers[.location] == "/v2/\(target)/blobs/\(digest)")
                    #expect(r.headers[.dockerContentDigest] == digest)
                }
                try await client.execute(uri: "/v2/\(target)/blobs/\(digest)", method: .get) { #expect($0.text == "shared layer") }
            }
            // Under the Nexus path, `from` is an image of the same repository.
            try await client.execute(uri: "/repository/docker-hosted/v2/nexus/img/blobs/uploads/?mount=\(digest)&from=base/img", method: .post) { r in
                #expect(r.status == .created)
                #expect(r.headers[.location] == "/repository/docker-hosted/v2/nexus/img/blobs/\(digest)")
            }
            // A blob the source does not have: an ordinary session instead.
            try await client.execute(uri: "/v2/docker-hosted/team/app/blobs/uploads/?mount=\(sha256("nope"))&from=docker-hosted/base/img", method: .post) { r in
                #expect(r.status == .accepted)
                #expect(r.headers[.dockerUploadUUID] != nil)
            }
            try await client.execute(uri: "/v2/docker-hosted/team/app/blobs/uploads/?mount=\(digest)&from=no-such-repo/img", method: .post) { r in
                #expect(r.status == .accepted)
            }
        }
    }

    @Test func concurrentPushesOfTheSameBlobBothSucceed() async throws {
        let t = try TestRegistry()
        defer { t.cleanUp() }
        try await t.run { client in
            let bytes = [UInt8](repeating: 7, count: 3 << 20)
            let digest = sha256(bytes)
            try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for image in ["a", "b", "a", "c"] {
                    group.addTask {
                        try await client.execute(uri: "/v2/docker-hosted/\(image)/blobs/uploads/?digest=\(digest)", method: .post, body: ByteBuffer(bytes: bytes)) { $0.status }
                    }
                }
                for try await status in group { #expect(status == .created) }
            }
            for image in ["a", "b", "c"] {
                try await client.execute(uri: "/v2/docker-hosted/\(image)/blobs/\(digest)", method: .get) { r in
                    #expect(r.body.readableBytes == bytes.count)
                }
            }
        }
        // One copy on disk.
        let files = FileManager.default.enumerator(atPath: t.dataDirectory + "/blobs")!.compactMap { $0 as? String }.filter { $0.hasSuffix(String(sha256(Array(repeating: 7, count: 3 << 20)).dropFirst(7))) }
        #expect(files.count == 1)
    }

    @Test func uploadSessionSurvivesRestart() async throws {
        let t = try TestRegistry()
        defer { t.cleanUp() }
        let location = try await t.run { client in
            let location = try await client.execute(uri: "/v2/docker-hosted/a/blobs/uploads/", method: .post) { try #require($0.headers[.location]) }
            try await client.execute(uri: location, method: .patch, headers: [.contentRange: "0-5"], body: ByteBuffer(string: "first ")) { #expect($0.status == .accepted) }
            return location
        }
        try await t.run { client in
            try await client.execute(uri: location, method: .get) { r in
                #expect(r.status == .noContent)
                #expect(r.headers[.range] == "0-5")
            }
            try await client.execute(uri: location, method: .patch, headers: [.contentRange: "6-11"], body: ByteBuffer(string: "second")) { #expect($0.status == .accepted) }
            try await client.execute(uri: "\(location)?digest=\(sha256("first second"))", method: .put) { #expect($0.status == .created) }
            try await client.execute(uri: "/v2/docker-hosted/a/blobs/\(sha256("first second"))", method: .get) { #expect($0.text == "first second") }
        }
    }

    @Test func namesAndRepositoriesAreChecked() async throws {
        let t = try TestRegistry()
        defer { t.cleanUp() }
        try await t.run { client in
            try await client.execute(uri: "/v2/docker-hosted/Bad_Name/blobs/uploads/", method: .post) { r in
                #expect(r.status == .badRequest)
                #expect(r.errorCode == "NAME_INVALID")
            }
            try await client.execute(uri: "/v2/no-such-repo/app/blobs/uploads/", method: .post) { r in
                #expect(r.status == .notFound)
                #expect(r.errorCode == "NAME_UNKNOWN")
            }
            // An image directly under the repository segment has no image name.
            try await client.execute(uri: "/v2/docker-hosted/blobs/uploads/", method: .post) { r in
                #expect(r.status == .badRequest)
                #expect(r.errorCode == "NAME_INVALID")
            }
            try await client.execute(uri: "/v2/docker-hosted/a/blobs/uploads/", method: .options) { r in
                #expect(r.status == .methodNotAllowed)
                #expect(r.errorCode == "UNSUPPORTED")
            }
            try await client.execute(uri: "/v2/docker-hosted/a/unknown/endpoint", method: .get) { r in
                #expect(r.status == .notFound)
                #expect(r.errorCode != nil)
            }
        }
    }
}
