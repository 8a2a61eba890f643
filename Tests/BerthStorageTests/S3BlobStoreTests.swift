import AsyncHTTPClient
import BerthCore
import BerthStorage
import BerthStorageS3
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Testing

/// The S3 server the tests talk to (moto, started by `scripts/test-services.sh`), from `BERTH_TEST_S3_ENDPOINT`.
enum S3TestServer {
    static let endpoint = ProcessInfo.processInfo.environment["BERTH_TEST_S3_ENDPOINT"]
    /// Without the variable the S3 suites are skipped (visibly, as disabled); the project's test script sets it.
    static var isAvailable: Bool { endpoint != nil }
    static let bucket = "berth-tests"

    /// moto accepts any credentials unless told to check signatures; then it needs keys it issued, given in the
    /// `AWS_*` variables.
    static func configuration(prefix: String, redirect: Bool = false) -> S3BlobStore.Configuration {
        var environment = ProcessInfo.processInfo.environment
        if environment["AWS_ACCESS_KEY_ID"] == nil || environment["AWS_SECRET_ACCESS_KEY"] == nil {
            environment["AWS_ACCESS_KEY_ID"] = "testing"
            environment["AWS_SECRET_ACCESS_KEY"] = "testing-secret"
        }
        return S3BlobStore.Configuration(endpoint: endpoint ?? "", bucket: bucket, prefix: prefix, redirect: redirect)
            .fillingCredentialsFromEnvironment(environment)
    }

    /// A store on the test bucket under `prefix` (the bucket is created on first use).
    static func store(prefix: String, redirect: Bool = false) async throws -> S3BlobStore {
        let store = S3BlobStore(configuration: configuration(prefix: prefix, redirect: redirect), httpClient: .shared, logger: Logger(label: "berth.test.s3"))
        try await store.ensureBucket()
        return store
    }

    /// A prefix no other test uses.
    static func freshPrefix(_ label: String) -> String {
        "\(label)/\(UUID().uuidString.lowercased())"
    }
}

@Suite("BlobStore contract: S3BlobStore", .enabled(if: S3TestServer.isAvailable, "BERTH_TEST_S3_ENDPOINT is not set (scripts/test-services.sh starts moto)"))
struct S3BlobStoreContractTests {
    @Test(arguments: BlobStoreContract.checks)
    func contract(_ check: BlobStoreContract.Check) async throws {
        try await BlobStoreContract.run(check) { directory in
            // The fresh folder's name (unique per check) is the key prefix: the same folder reopens the same data.
            try await S3TestServer.store(prefix: "contract/" + (directory.split(separator: "/").last.map(String.init) ?? directory))
        }
    }
}

/// AWS Signature Version 4 against the examples of the S3 API reference ("Signature Calculations for the
/// Authorization Header" and "Authenticating Requests: Using Query Parameters"): credentials, date and
/// requests are AWS's, and so are the expected signatures.
@Suite("SigV4Signer")
struct SigV4SignerTests {
    static let signer = SigV4Signer(accessKey: "AKIAIOSFODNN7EXAMPLE", secretKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", region: "us-east-1")
    /// 2013-05-24T00:00:00Z.
    static let date = Date(timeIntervalSince1970: 1_369_353_600)
    static let host = "examplebucket.s3.amazonaws.com"

    @Test("GET object with a Range header")
    func getObject() {
        let signed = Self.signer.sign(method: "GET", host: Self.host, path: "/test.txt", headers: [("Range", "bytes=0-9")], payloadHash: SigV4Signer.emptyPayloadHash, date: Self.date)
        #expect(signed.canonicalRequest == """
            GET
            /test.txt

            host:examplebucket.s3.amazonaws.com
            range:bytes=0-9
            x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            x-amz-date:20130524T000000Z

            host;range;x-amz-content-sha256;x-amz-date
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            """)
        #expect(signed.stringToSign == """
            AWS4-HMAC-SHA256
            20130524T000000Z
            20130524/us-east-1/s3/aws4_request
            7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972
            """)
        #expect(signed.signature == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
        #expect(signed.authorization == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
        let sent = Dictionary(uniqueKeysWithValues: signed.headers.map { ($0.name.lowercased(), $0.value) })
        #expect(sent["x-amz-date"] == "20130524T000000Z")
        #expect(sent["x-amz-content-sha256"] == SigV4Signer.emptyPayloadHash)
        #expect(sent["host"] == Self.host)
        #expect(sent["x-amz-security-token"] == nil)
    }

    @Test("PUT object: a key with `$`, a signed payload, a Date header")
    func putObject() {
        let body = Array("Welcome to Amazon S3.".utf8)
        let hash = SigV4Signer.payloadHash(body)
        #expect(hash == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        let signed = Self.signer.sign(
            method: "PUT", host: Self.host, path: "/test$file.text",
            headers: [("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-storage-class", "REDUCED_REDUNDANCY")],
            payloadHash: hash, date: Self.date)
        #expect(signed.canonicalRequest.hasPrefix("PUT\n/test%24file.text\n\n"))
        #expect(signed.signature == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")
    }

    @Test("GET bucket lifecycle: a valueless query parameter")
    func getLifecycle() {
        let signed = Self.signer.sign(method: "GET", host: Self.host, path: "/", query: [("lifecycle", "")], payloadHash: SigV4Signer.emptyPayloadHash, date: Self.date)
        #expect(signed.canonicalRequest.hasPrefix("GET\n/\nlifecycle=\n"))
        #expect(signed.signature == "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")
    }

    @Test("GET bucket (list objects): query parameters sorted")
    func listObjects() {
        let signed = Self.signer.sign(method: "GET", host: Self.host, path: "/", query: [("prefix", "J"), ("max-keys", "2")], payloadHash: SigV4Signer.emptyPayloadHash, date: Self.date)
        #expect(signed.canonicalRequest.hasPrefix("GET\n/\nmax-keys=2&prefix=J\n"))
        #expect(signed.signature == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
    }

    @Test("presigned GET URL, valid 86400 seconds")
    func presigned() {
        let query = Self.signer.presignedQuery(method: "GET", host: Self.host, path: "/test.txt", date: Self.date, expires: 86400)
        #expect(query == "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")
    }

    @Test("a session token is sent and signed")
    func sessionToken() {
        var signer = Self.signer
        signer.sessionToken = "token/with+chars="
        let signed = signer.sign(method: "GET", host: Self.host, path: "/test.txt", payloadHash: SigV4Signer.emptyPayloadHash, date: Self.date)
        #expect(signed.canonicalRequest.contains("\nx-amz-security-token:token/with+chars=\n"))
        #expect(signed.authorization.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,"))
        #expect(signed.signature != Self.signer.sign(method: "GET", host: Self.host, path: "/test.txt", payloadHash: SigV4Signer.emptyPayloadHash, date: Self.date).signature)
        let query = signer.presignedQuery(method: "GET", host: Self.host, path: "/test.txt", date: Self.date, expires: 60)
        #expect(query.contains("&X-Amz-Security-Token=token%2Fwith%2Bchars%3D&"))
    }

    @Test("URI encoding: unreserved characters kept, everything else %XX uppercase, `/` kept in paths")
    func encoding() {
        #expect(SigV4Signer.uriEncode("AZaz09-_.~", encodeSlash: true) == "AZaz09-_.~")
        #expect(SigV4Signer.uriEncode("a b+c=d&e*f!'()$:@,;", encodeSlash: true) == "a%20b%2Bc%3Dd%26e%2Af%21%27%28%29%24%3A%40%2C%3B")
        #expect(SigV4Signer.uriEncode("é/ü", encodeSlash: true) == "%C3%A9%2F%C3%BC")
        #expect(SigV4Signer.uriEncode("é/ü", encodeSlash: false) == "%C3%A9/%C3%BC")
        #expect(SigV4Signer.encodePath("/bucket/a b/c%d") == "/bucket/a%20b/c%25d")
        #expect(SigV4Signer.canonicalQuery([("b", "2"), ("a", "x/y"), ("a", "1"), ("uploads", "")]) == "a=1&a=x%2Fy&b=2&uploads=")
    }

    @Test("timestamps in UTC, across leap days and centuries")
    func timestamps() {
        #expect(SigV4Signer.timestamp(Date(timeIntervalSince1970: 0)) == "19700101T000000Z")
        #expect(SigV4Signer.timestamp(Date(timeIntervalSince1970: 951_782_400)) == "20000229T000000Z")
        #expect(SigV4Signer.timestamp(Date(timeIntervalSince1970: 1_709_251_199.9)) == "20240229T235959Z")
        #expect(SigV4Signer.timestamp(Date(timeIntervalSince1970: 4_102_444_799)) == "20991231T235959Z")
    }
}

/// What needs no server: configuration, and where presigned URLs point.
@Suite("S3BlobStore configuration")
struct S3BlobStoreConfigurationTests {
    static let digest = Digest.of(Array("hello".utf8))

    @Test("the prefix is normalised")
    func prefix() {
        #expect(S3BlobStore.Configuration(endpoint: "http://x", bucket: "b", prefix: "").prefix == "")
        #expect(S3BlobStore.Configuration(endpoint: "http://x", bucket: "b", prefix: "/team/registry").prefix == "team/registry/")
        #expect(S3BlobStore.Configuration(endpoint: "http://x", bucket: "b", prefix: "team/").prefix == "team/")
    }

    @Test("credentials and region from the environment fill only what is empty")
    func environment() {
        let environment = ["AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK", "AWS_SESSION_TOKEN": "TOKEN", "AWS_DEFAULT_REGION": "eu-west-3"]
        let filled = S3BlobStore.Configuration(endpoint: "http://x", region: "", bucket: "b").fillingCredentialsFromEnvironment(environment)
        #expect(filled.accessKey == "AK" && filled.secretKey == "SK" && filled.sessionToken == "TOKEN" && filled.region == "eu-west-3")
        let explicit = S3BlobStore.Configuration(endpoint: "http://x", region: "us-west-2", bucket: "b", accessKey: "mine", secretKey: "secret")
            .fillingCredentialsFromEnvironment(environment.merging(["AWS_REGION": "ap-south-1"]) { a, _ in a })
        #expect(explicit.accessKey == "mine" && explicit.secretKey == "secret" && explicit.sessionToken == nil && explicit.region == "us-west-2")
        #expect(S3BlobStore.Configuration(endpoint: "http://x", region: "", bucket: "b").fillingCredentialsFromEnvironment(["AWS_REGION": "ca-central-1", "AWS_DEFAULT_REGION": "x"]).region == "ca-central-1")
    }

    @Test("presigned URLs: path style, virtual-hosted style, off unless redirect is set")
    func presignedURLs() throws {
        let key = "blobs/sha256/2c/\(Self.digest.hex)"
        let pathStyle = S3BlobStore(
            configuration: .init(endpoint: "http://127.0.0.1:9000", bucket: "reg", prefix: "p", accessKey: "a", secretKey: "s", redirect: true, redirectExpiry: 120),
            httpClient: .shared, logger: Logger(label: "test"))
        let url = try #require(pathStyle.presignedURL(for: Self.digest))
        #expect(url.hasPrefix("http://127.0.0.1:9000/reg/p/\(key)?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a%2F"))
        #expect(url.contains("&X-Amz-Expires=120&X-Amz-SignedHeaders=host&X-Amz-Signature="))

        let virtualHosted = S3BlobStore(
            configuration: .init(endpoint: "https://s3.eu-west-1.amazonaws.com:443/", region: "eu-west-1", bucket: "reg", accessKey: "a", secretKey: "s", pathStyle: false, redirect: true),
            httpClient: .shared, logger: Logger(label: "test"))
        let virtualURL = try #require(virtualHosted.presignedURL(for: Self.digest))
        #expect(virtualURL.hasPrefix("https://reg.s3.eu-west-1.amazonaws.com/\(key)?"))
        #expect(virtualURL.contains("%2Feu-west-1%2Fs3%2Faws4_request&"))

        let noRedirect = S3BlobStore(configuration: .init(endpoint: "http://127.0.0.1:9000", bucket: "reg"), httpClient: .shared, logger: Logger(label: "test"))
        #expect(noRedirect.presignedURL(for: Self.digest) == nil)
    }

    @Test("an endpoint that is not http(s)://host[:port] fails every operation clearly")
    func invalidEndpoint() async throws {
        let store = S3BlobStore(configuration: .init(endpoint: "ftp://example", bucket: "reg"), httpClient: .shared, logger: Logger(label: "test"))
        let error = await #expect(throws: S3Error.self) { try await store.checkReachable() }
        #expect(error?.code == "InvalidEndpoint")
        #expect(error.map { "\($0)" }?.contains("ftp://example") == true)
    }
}

/// What the object store adds to the contract: multi-part streaming, several nodes, the layout, redirects.
@Suite("S3BlobStore on an S3 server", .enabled(if: S3TestServer.isAvailable, "BERTH_TEST_S3_ENDPOINT is not set (scripts/test-services.sh starts moto)"))
struct S3BlobStoreTests {
    static let mebibyte = 1 << 20

    /// Streams `data` into a new upload through one handle, in uneven network-sized chunks.
    static func stream(_ data: [UInt8], into store: S3BlobStore, id: String) async throws {
        let handle = try await store.appendToUpload(id: id)
        var offset = 0
        var step = 0
        while offset < data.count {
            let end = min(data.count, offset + 65_536 + (step * 7919) % 300_000)
            try await handle.write(ByteBuffer(bytes: data[offset..<end]))
            offset = end
            step += 1
        }
        try await handle.finish()
    }

    /// A plain HTTP GET (of a presigned URL): status and body.
    static func fetch(_ url: String, range: String? = nil) async throws -> (status: UInt, body: [UInt8]) {
        var request = HTTPClientRequest(url: url)
        if let range { request.headers.add(name: "Range", value: range) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 64 << 20)
        return (response.status.code, Array(body.readableBytesView))
    }

    @Test("a 20 MiB upload streamed in parts, committed server-side, read back whole and in ranges")
    func multiPartUpload() async throws {
        let store = try await S3TestServer.store(prefix: S3TestServer.freshPrefix("multipart"))
        let data = testBytes(20 * Self.mebibyte + 12_345, seed: 21)
        let digest = Digest.of(data)
        try await store.createUpload(id: "big")
        try await Self.stream(data, into: store, id: "big")
        #expect(try await store.uploadSize(id: "big") == Int64(data.count))
        #expect(try await store.readUpload(id: "big", at: Int64(8 * Self.mebibyte - 10), length: 20).bytes == Array(data[(8 * Self.mebibyte - 10)..<(8 * Self.mebibyte + 10)]))

        try await store.commitUpload(id: "big", as: digest)
        #expect(try await store.stat(digest) == BlobStat(size: Int64(data.count)))
        #expect(try await store.uploadSize(id: "big") == nil)
        #expect(try await store.listUploads() == [])

        let handle = try #require(try await store.open(digest))
        #expect(Digest.of(try await BlobStoreContract.readAll(handle, chunk: Self.mebibyte)) == digest)
        // Ranges in the middle, across the 8 MiB part boundaries and the read window's.
        for (offset, length) in [(10 * Self.mebibyte + 3, 1000), (8 * Self.mebibyte - 5, 10), (16 * Self.mebibyte - 1, 2 * Self.mebibyte), (data.count - 7, 100)] {
            let part = try await handle.read(at: Int64(offset), length: length)
            let expected = data[offset..<min(data.count, offset + length)]
            let same = part.bytes.elementsEqual(expected)
            #expect(same, "read of \(length) at \(offset): got \(part.readableBytes) bytes")
        }
        try await handle.close()
    }

    @Test("small chunks (parts under 5 MiB) are assembled by streaming them into the blob")
    func smallChunksStreamed() async throws {
        let store = try await S3TestServer.store(prefix: S3TestServer.freshPrefix("chunks"))
        let data = testBytes(11 * Self.mebibyte + 77, seed: 22)
        let digest = Digest.of(data)
        try await store.createUpload(id: "chunked")
        // PATCH-sized chunks of 3 MiB, then the rest: parts 3, 3, 3 MiB and 2 MiB + 77 bytes.
        var offset = 0
        while offset < data.count {
            let end = min(data.count, offset + 3 * Self.mebibyte)
            try await Self.stream(Array(data[offset..<end]), into: store, id: "chunked")
            offset = end
            #expect(try await store.uploadSize(id: "chunked") == Int64(offset))
        }
        try await store.commitUpload(id: "chunked", as: digest)
        let handle = try #require(try await store.open(digest))
        #expect(handle.size == Int64(data.count))
        #expect(Digest.of(try await BlobStoreContract.readAll(handle, chunk: Self.mebibyte)) == digest)
        try await handle.close()
        #expect(try await store.listUploads() == [])
    }

    @Test("an upload continued by another node and committed by a third")
    func severalNodes() async throws {
        let prefix = S3TestServer.freshPrefix("nodes")
        let nodeA = try await S3TestServer.store(prefix: prefix)
        let nodeB = try await S3TestServer.store(prefix: prefix)
        let nodeC = try await S3TestServer.store(prefix: prefix)
        let data = testBytes(9 * Self.mebibyte + 5, seed: 23)
        let digest = Digest.of(data)
        let split = 9 * Self.mebibyte / 2

        try await nodeA.createUpload(id: "shared")
        try await Self.stream(Array(data[..<split]), into: nodeA, id: "shared")
        #expect(try await nodeB.uploadSize(id: "shared") == Int64(split))
        try await Self.stream(Array(data[split...]), into: nodeB, id: "shared")
        #expect(try await nodeA.uploadSize(id: "shared") == Int64(data.count))
        #expect(try await nodeC.listUploads() == ["shared"])
        #expect(try await nodeC.readUpload(id: "shared", at: Int64(split - 3), length: 6).bytes == Array(data[(split - 3)..<(split + 3)]))

        try await nodeC.commitUpload(id: "shared", as: digest)
        #expect(try await nodeA.uploadSize(id: "shared") == nil)
        let handle = try #require(try await nodeB.open(digest))
        #expect(Digest.of(try await BlobStoreContract.readAll(handle, chunk: Self.mebibyte)) == digest)
        try await handle.close()
    }

    @Test("two nodes appending at the same offset at once: the upload is refused, never committed with either's bytes")
    func racingWriters() async throws {
        let prefix = S3TestServer.freshPrefix("race")
        let nodeA = try await S3TestServer.store(prefix: prefix)
        let nodeB = try await S3TestServer.store(prefix: prefix)
        try await nodeA.createUpload(id: "raced")
        // Both open at offset 0 before either has stored anything, as two PATCHes through two nodes would.
        let first = try await nodeA.appendToUpload(id: "raced")
        let second = try await nodeB.appendToUpload(id: "raced")
        try await first.write(Array("the bytes node A hashed".utf8).buffer)
        try await second.write(Array("other bytes from B".utf8).buffer)
        try await first.finish()
        try await second.finish()
        await #expect(throws: S3Error.self) { _ = try await nodeA.uploadSize(id: "raced") }
        await #expect(throws: S3Error.self) { try await nodeB.commitUpload(id: "raced", as: Digest.of(Array("the bytes node A hashed".utf8))) }
        #expect(try await nodeA.stat(Digest.of(Array("the bytes node A hashed".utf8))) == nil)
        try await nodeA.deleteUpload(id: "raced")
        #expect(try await nodeB.uploadSize(id: "raced") == nil)
    }

    @Test("full parts become readable while a long append is still arriving; abandon keeps what arrived")
    func partsVisibleAndAbandon() async throws {
        let store = try await S3TestServer.store(prefix: S3TestServer.freshPrefix("abandon"))
        try await store.createUpload(id: "dropped")

        // A handle abandoned before any byte changes nothing.
        let idle = try await store.appendToUpload(id: "dropped")
        await idle.abandon()
        #expect(try await store.uploadSize(id: "dropped") == 0)

        let data = testBytes(9 * Self.mebibyte, seed: 24)
        let handle = try await store.appendToUpload(id: "dropped")
        try await handle.write(ByteBuffer(bytes: data[..<(5 * Self.mebibyte)]))
        #expect(try await store.uploadSize(id: "dropped") == 0, "nothing stored before a full part")
        try await handle.write(ByteBuffer(bytes: data[(5 * Self.mebibyte)...]))
        #expect(try await store.uploadSize(id: "dropped") == Int64(8 * Self.mebibyte), "the first full part is stored")
        await handle.abandon()
        #expect(try await store.uploadSize(id: "dropped") == Int64(data.count))
        #expect(try await store.readUpload(id: "dropped", at: Int64(data.count - 4), length: 4).bytes == Array(data.suffix(4)))
        // Writing after abandon is refused, and stores nothing.
        await #expect(throws: S3Error.self) { try await handle.write(ByteBuffer(bytes: [1, 2, 3])) }
        #expect(try await store.uploadSize(id: "dropped") == Int64(data.count))
    }

    @Test("nothing is under the blob key before commit; the presigned URL serves the blob after")
    func presignedAndInvisibleBeforeCommit() async throws {
        let store = try await S3TestServer.store(prefix: S3TestServer.freshPrefix("redirect"), redirect: true)
        let data = testBytes(300_000, seed: 25)
        let digest = Digest.of(data)
        let url = try #require(store.presignedURL(for: digest))
        #expect(url.contains("/blobs/sha256/\(digest.hex.prefix(2))/\(digest.hex)?"))

        try await store.createUpload(id: "u")
        try await Self.stream(data, into: store, id: "u")
        #expect(try await Self.fetch(url).status == 404)
        #expect(try await store.stat(digest) == nil)

        try await store.commitUpload(id: "u", as: digest)
        let whole = try await Self.fetch(url)
        #expect(whole.status == 200)
        #expect(Digest.of(whole.body) == digest)
        let ranged = try await Self.fetch(url, range: "bytes=1000-1999")
        #expect(ranged.status == 206)
        #expect(Digest.of(ranged.body) == Digest.of(data[1000..<2000]))
    }

    @Test("the bucket: reachable, and a missing one is reported clearly")
    func bucket() async throws {
        let store = try await S3TestServer.store(prefix: "")
        try await store.checkReachable()
        var configuration = S3TestServer.configuration(prefix: "")
        configuration.bucket = "berth-no-such-bucket"
        let missing = S3BlobStore(configuration: configuration, httpClient: .shared, logger: Logger(label: "test"))
        let error = await #expect(throws: S3Error.self) { try await missing.checkReachable() }
        #expect(error?.status == 404)
        #expect(error.map { "\($0)" }?.contains("berth-no-such-bucket") == true)
        #expect(error.map { "\($0)" }?.contains(configuration.secretKey) == false, "no secret in errors")
    }

    @Test("listUploads follows the listing's pages (S3 answers at most 1000 entries at a time)")
    func listingPages() async throws {
        let store = try await S3TestServer.store(prefix: S3TestServer.freshPrefix("pages"))
        let ids = (0..<1003).map { "u-\($0)" }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for batch in stride(from: 0, to: ids.count, by: 100) {
                group.addTask {
                    for id in ids[batch..<min(ids.count, batch + 100)] { try await store.createUpload(id: id) }
                }
            }
            try await group.waitForAll()
        }
        let listed = try await store.listUploads()
        #expect(listed.count == ids.count)
        #expect(Set(listed) == Set(ids))
    }

    @Test("commit of an unknown upload fails with NoSuchUpload")
    func commitUnknown() async throws {
        let store = try await S3TestServer.store(prefix: S3TestServer.freshPrefix("unknown"))
        let error = await #expect(throws: S3Error.self) { try await store.commitUpload(id: "nope", as: Digest.of(Array("x".utf8))) }
        #expect(error?.code == "NoSuchUpload")
        await #expect(throws: S3Error.self) { try await store.appendToUpload(id: "nope") }
        await #expect(throws: S3Error.self) { try await store.createUpload(id: "../escape") }
    }
}
