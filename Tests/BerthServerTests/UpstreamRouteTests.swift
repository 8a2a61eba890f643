import BerthCore
@testable import BerthServer
import Foundation
import HTTPTypes
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import Testing

/// `upstream:` routes in front of a real registry (a second Berth on a loopback port), as a client on a real event
/// loop sees them. Blob downloads take their own connection (`UpstreamBlobTarget`); everything else goes through
/// AsyncHTTPClient; both must look the same to the client.
@Suite("Upstream routes (real upstream)")
struct UpstreamRouteTests {
    /// Runs `body` with a client of a Berth whose `up.example.com` is an upstream route to `url`, its requests
    /// arriving on a real event loop.
    static func throughRoute(
        to url: String, readTimeoutSeconds: Int = 10, caFile: String? = nil, _ body: (DirectClient) async throws -> Void
    ) async throws {
        var side = try TestRegistry()
        side.frontDoor.routes = [
            .init(match: .host("up.example.com"), endpoint: .upstream(.init(
                url: url, connectTimeoutSeconds: 2, readTimeoutSeconds: readTimeoutSeconds, caFile: caFile)))
        ]
        defer { side.cleanUp() }
        let channel = try await loopChannel()
        defer { channel.close(promise: nil) }
        try await side.runDirect { (plain: DirectClient) async throws in
            var proxy = plain
            proxy.channel = channel
            try await body(proxy)
        }
    }

    /// A channel on a real event loop for the requests to arrive on.
    static func loopChannel() async throws -> any Channel {
        try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
    }

    @Test func blobDownloadsStreamOnTheirOwnConnection() async throws {
        let upstream = try TestRegistry()
        defer { upstream.cleanUp() }
        // Larger than one 1 MiB read, and not a multiple of it.
        let big = (0..<((3 << 20) + 12345)).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 17) }
        let digest = sha256(big)
        try await upstream.runLive { client, port in
            try await Pusher(client: client).blob("team/app", big)
            try await Self.throughRoute(to: "http://127.0.0.1:\(port)/repository/docker-hosted/") { proxy in
                let host = "up.example.com"
                let whole = try await proxy.execute("/v2/team/app/blobs/\(digest)", host: host)
                #expect(whole.status == .ok)
                #expect(whole.body.readableBytes == big.count)
                #expect(sha256(Array(whole.body.readableBytesView)) == digest)
                #expect(whole.headers[.contentLength] == String(big.count))
                #expect(whole.headers[.dockerContentDigest] == digest)
                #expect(proxy.responder.upstream.blobDownloads.withLockedValue { $0 } == 1, "the download took the blob path")

                // A range, as a resuming client asks for it.
                let part = try await proxy.execute("/v2/team/app/blobs/\(digest)", host: host, headers: [.range: "bytes=1048000-1049999"])
                #expect(part.status == .partialContent)
                #expect(Array(part.body.readableBytesView) == Array(big[1_048_000..<1_050_000]))
                #expect(part.headers[.contentRange] == "bytes 1048000-1049999/\(big.count)")

                // The upstream's OCI error comes through as it is.
                let missing = try await proxy.execute("/v2/team/app/blobs/\(sha256("nope"))", host: host)
                #expect(missing.status == .notFound)
                #expect(missing.errorCode == "BLOB_UNKNOWN")
                #expect(proxy.responder.upstream.blobDownloads.withLockedValue { $0 } == 3)

                // HEAD and manifests stay on the pooled client, with the same headers.
                let head = try await proxy.execute("/v2/team/app/blobs/\(digest)", .head, host: host)
                #expect(head.status == .ok)
                #expect(head.headers[.contentLength] == String(big.count))
                #expect(proxy.responder.upstream.blobDownloads.withLockedValue { $0 } == 3)

                // A client that goes away mid-blob: the write error ends the exchange, and the route still works.
                let abandoned = try await proxy.respond("/v2/team/app/blobs/\(digest)", host: host)
                await #expect(throws: ClientGone.self) { try await abandoned.body.write(FailingWriter()) }
                let again = try await proxy.execute("/v2/team/app/blobs/\(digest)", host: host)
                #expect(sha256(Array(again.body.readableBytesView)) == digest)
                // A response dropped before its body was written.
                _ = try await proxy.respond("/v2/team/app/blobs/\(digest)", host: host)
                // No upstream connection outlives its download.
                #expect(try await Self.eventually { proxy.responder.upstream.openBlobConnections.withLockedValue { $0 } == 0 })
            }
        }
    }

    @Test func blobDownloadFromAnUpstreamThatIsDownIsA502() async throws {
        // A port that was just free: nothing listens there, so the connection is refused at once.
        let probe = try await Self.loopChannel()
        let port = try #require(probe.localAddress?.port)
        try await probe.close()
        try await Self.throughRoute(to: "http://127.0.0.1:\(port)/") { proxy in
            let down = try await proxy.execute("/v2/team/app/blobs/\(sha256("x"))", host: "up.example.com")
            #expect(down.status == .badGateway)
            #expect(down.errorCode == "UNAVAILABLE")
            #expect(proxy.responder.upstream.blobDownloads.withLockedValue { $0 } == 1, "the attempt took the blob path")
        }
    }

    /// An upstream that accepts connections and never answers: over plain HTTP the read timeout (1 s here)
    /// applies; over https the handshake never completes, and the connect timeout (2 s) applies, not the read
    /// timeout (30 s).
    @Test(.timeLimit(.minutes(1)), arguments: [
        ("http", 1, "the upstream sent nothing within the read timeout", 5),
        ("https", 30, "did not complete the TLS handshake", 10),
    ])
    func silentUpstreamTimesOutWithA504(scheme: String, readTimeoutSeconds: Int, reason: String, withinSeconds: Int) async throws {
        let silent = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        defer { silent.close(promise: nil) }
        let port = try #require(silent.localAddress?.port)
        try await Self.throughRoute(to: "\(scheme)://127.0.0.1:\(port)/", readTimeoutSeconds: readTimeoutSeconds) { proxy in
            let started = ContinuousClock.now
            let late = try await proxy.execute("/v2/team/app/blobs/\(sha256("x"))", host: "up.example.com")
            #expect(late.status == .gatewayTimeout)
            #expect(late.errorCode == "UNAVAILABLE")
            #expect(late.text.contains(reason), "\(late.text)")
            #expect(ContinuousClock.now - started < .seconds(withinSeconds))
            #expect(try await Self.eventually { proxy.responder.upstream.openBlobConnections.withLockedValue { $0 } == 0 })
        }
    }

    /// Answers the way real upstreams (and networks) can: a head in two segments, chunk framing split across
    /// writes, a `100 Continue` first, a body that ends when the connection does.
    @Test func awkwardlyFramedAnswersArriveWhole() async throws {
        let upstream = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(ScriptedUpstream()) } }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { upstream.close(promise: nil) }
        let port = try #require(upstream.localAddress?.port)
        try await Self.throughRoute(to: "http://127.0.0.1:\(port)/", readTimeoutSeconds: 3) { proxy in
            for (script, body) in [("chunked", "hello, world"), ("continue", "after 100"), ("eof", "abcdef")] {
                let started = ContinuousClock.now
                let answer = try await proxy.execute("/v2/\(script)/blobs/sha256:1", host: "up.example.com")
                #expect(answer.status == .ok, "\(script)")
                #expect(answer.text == body, "\(script)")
                #expect(ContinuousClock.now - started < .seconds(2), "\(script): no wait for the read timeout")
            }
            #expect(proxy.responder.upstream.blobDownloads.withLockedValue { $0 } == 3)
            #expect(try await Self.eventually { proxy.responder.upstream.openBlobConnections.withLockedValue { $0 } == 0 })
        }
    }

    /// Polls `condition` for up to `seconds`.
    static func eventually(within seconds: Int = 5, _ condition: () -> Bool) async throws -> Bool {
        for _ in 0..<(seconds * 20) {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return condition()
    }

    /// An `https:` upstream whose certificate comes from a private CA: trusted with the route's `ca_file`, by name
    /// and by IP address, on the blob path and on the pooled client alike; refused without it.
    @Test(.timeLimit(.minutes(1))) func httpsUpstreamsAreCheckedAgainstTheRoutesCAFile() async throws {
        let certificates = try TestCertificates()
        defer { certificates.remove() }
        let big = (0..<((2 << 20) + 777)).map { UInt8(truncatingIfNeeded: $0 &* 97 &+ 5) }
        let digest = sha256(big)
        let serverContext = try NIOSSLContext(configuration: .makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certificates.serverCertificate).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: certificates.serverKey, format: .pem))))
        let upstream = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: serverContext))
                    try channel.pipeline.syncOperations.addHandler(OneBlobUpstream(blob: big, digest: digest))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { upstream.close(promise: nil) }
        let port = try #require(upstream.localAddress?.port)

        for host in ["localhost", "127.0.0.1"] {
            try await Self.throughRoute(to: "https://\(host):\(port)/", caFile: certificates.caFile) { proxy in
                let blob = try await proxy.execute("/v2/team/app/blobs/\(digest)", host: "up.example.com")
                #expect(blob.status == .ok, "\(host): \(blob.text.prefix(300))")
                #expect(blob.body.readableBytes == big.count)
                #expect(sha256(Array(blob.body.readableBytesView)) == digest)
                #expect(proxy.responder.upstream.blobDownloads.withLockedValue { $0 } == 1, "\(host): the blob path")
                let base = try await proxy.execute("/v2/", host: "up.example.com")
                #expect(base.status == .ok, "\(host): the pooled client trusts the same CA")
                #expect(try await Self.eventually { proxy.responder.upstream.openBlobConnections.withLockedValue { $0 } == 0 })

                // A client that goes away mid-blob: the connection closes without waiting for the upstream's
                // close_notify behind the rest of the blob.
                let abandoned = try await proxy.respond("/v2/team/app/blobs/\(digest)", host: "up.example.com")
                await #expect(throws: ClientGone.self) { try await abandoned.body.write(FailingWriter()) }
                #expect(try await Self.eventually(within: 2) { proxy.responder.upstream.openBlobConnections.withLockedValue { $0 } == 0 })
            }
        }
        // The CA file replaced in place (a rotated CA): exchanges after the next look at the file read it again.
        let other = try TestCertificates()
        defer { other.remove() }
        let original = try Data(contentsOf: URL(fileURLWithPath: certificates.caFile))
        try await Self.throughRoute(to: "https://localhost:\(port)/", caFile: certificates.caFile) { proxy in
            #expect(try await proxy.execute("/v2/", host: "up.example.com").status == .ok)
            try Data(contentsOf: URL(fileURLWithPath: other.caFile)).write(to: URL(fileURLWithPath: certificates.caFile))
            try await Task.sleep(for: .milliseconds(1100)) // the file is looked at again after a second
            for path in ["/v2/", "/v2/team/app/blobs/\(digest)"] {
                let refused = try await proxy.execute(path, host: "up.example.com")
                #expect(refused.status == .badGateway, "\(path)")
                #expect(refused.text.contains("could not be verified against the route's ca_file"), "\(refused.text)")
                #expect(!refused.text.contains(certificates.folder), "no server paths in answers")
            }
            try original.write(to: URL(fileURLWithPath: certificates.caFile))
            try await Task.sleep(for: .milliseconds(1100))
            #expect(try await proxy.execute("/v2/team/app/blobs/\(digest)", host: "up.example.com").status == .ok)
        }
        // The system's trust roots do not know the test CA.
        try await Self.throughRoute(to: "https://localhost:\(port)/") { proxy in
            let blob = try await proxy.execute("/v2/team/app/blobs/\(digest)", host: "up.example.com")
            #expect(blob.status == .badGateway)
            #expect(blob.errorCode == "UNAVAILABLE")
            #expect(blob.text.contains("could not be verified against the system's CAs"), "\(blob.text)")
            #expect(proxy.responder.upstream.blobDownloads.withLockedValue { $0 } == 1)
            let base = try await proxy.execute("/v2/", host: "up.example.com")
            #expect(base.status == .badGateway)
            #expect(base.text.contains("could not be verified against the system's CAs"), "\(base.text)")
        }
    }

    @Test func onlyBlobDownloadsTakeTheBlobPath() {
        func request(_ path: String, _ method: HTTPRequest.Method = .get, headers: HTTPFields = [:]) -> Request {
            Request(head: HTTPRequest(method: method, scheme: "http", authority: "x", path: path, headerFields: headers), body: RequestBody(buffer: ByteBuffer()))
        }
        #expect(UpstreamBlobTarget.isBlobDownload(request("/v2/team/app/blobs/sha256:abc")))
        #expect(UpstreamBlobTarget.isBlobDownload(request("/v2/a/blobs/sha256:abc?x=1")))
        #expect(!UpstreamBlobTarget.isBlobDownload(request("/v2/team/app/blobs/sha256:abc", .head)))
        #expect(!UpstreamBlobTarget.isBlobDownload(request("/v2/team/app/blobs/uploads/")))
        #expect(!UpstreamBlobTarget.isBlobDownload(request("/v2/team/app/blobs/uploads/3f1c")))
        #expect(!UpstreamBlobTarget.isBlobDownload(request("/v2/team/app/manifests/sha256:abc")))
        #expect(!UpstreamBlobTarget.isBlobDownload(request("/v2/team/app/blobs/sha256:abc", headers: [.contentLength: "3"])))

        let nexus = UpstreamBlobTarget(url: "http://nexus:8081/repository/docker-repo/")
        #expect(nexus?.host == "nexus" && nexus?.port == 8081)
        #expect(nexus?.basePath == "/repository/docker-repo" && nexus?.authority == "nexus:8081")
        #expect(UpstreamBlobTarget(url: "http://[::1]/")?.authority == "[::1]")
        #expect(UpstreamBlobTarget(url: "http://[::1]/")?.host == "::1")
        #expect(UpstreamBlobTarget(url: "http://[::1]:5000/")?.authority == "[::1]:5000")
        let hub = UpstreamBlobTarget(url: "https://registry.example.com/")
        #expect(hub?.tls == true && hub?.port == 443 && hub?.authority == "registry.example.com")
        #expect(hub?.serverHostname == "registry.example.com")
        #expect(UpstreamBlobTarget(url: "https://127.0.0.1:5000/")?.serverHostname == nil, "an IP address is no SNI name")
        #expect(UpstreamBlobTarget(url: "ftp://registry.example.com/") == nil)
    }
}

private struct ClientGone: Error {}

/// Plays one scripted answer, chosen by the request's path, in pieces 30 ms apart.
private final class ScriptedUpstream: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private var request = ""
    private var started = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        request += String(buffer: unwrapInboundIn(data))
        guard !started, request.contains("\r\n\r\n") else { return }
        started = true
        let pieces: [String]
        var closeAfter = false
        if request.hasPrefix("GET /v2/chunked/") {
            pieces = ["HTTP/1.1 200 OK\r\nContent-Type: application/octet-", "stream\r\nTransfer-Encoding: chunked\r\n\r\n",
                      "5\r\n", "hello\r\n", "7\r", "\n, world\r\n", "0\r", "\n\r\n"]
        } else if request.hasPrefix("GET /v2/continue/") {
            pieces = ["HTTP/1.1 100 Continue\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", "after", " 100"]
        } else {
            pieces = ["HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", "abc", "def"]
            closeAfter = true
        }
        let loop = context.eventLoop
        for (index, piece) in pieces.enumerated() {
            loop.scheduleTask(in: .milliseconds(Int64(30 * index))) {
                context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: piece)), promise: nil)
            }
        }
        if closeAfter {
            loop.scheduleTask(in: .milliseconds(Int64(30 * pieces.count))) { context.close(promise: nil) }
        }
    }
}

/// Serves one blob at any `/blobs/` path and `{}` elsewhere, one answer per connection.
private final class OneBlobUpstream: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let blob: [UInt8]
    let digest: String
    private var request = ""

    init(blob: [UInt8], digest: String) {
        self.blob = blob
        self.digest = digest
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !request.contains("\r\n\r\n") else { return }
        request += String(buffer: unwrapInboundIn(data))
        guard request.contains("\r\n\r\n") else { return }
        let isBlob = request.split(separator: "\r\n").first?.contains("/blobs/") == true
        let body = isBlob ? blob : Array("{}".utf8)
        let head = "HTTP/1.1 200 OK\r\nContent-Length: \(body.count)\r\nDocker-Content-Digest: \(digest)\r\nConnection: close\r\n\r\n"
        context.write(wrapOutboundOut(ByteBuffer(string: head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: body))).whenComplete { _ in context.close(promise: nil) }
    }
}

/// A CA and a server certificate for `localhost` and 127.0.0.1 signed by it, made with the openssl command.
struct TestCertificates {
    let folder = NSTemporaryDirectory() + "berth-tls-" + UUID().uuidString
    var caFile: String { folder + "/ca.crt" }
    var serverCertificate: String { folder + "/server.crt" }
    var serverKey: String { folder + "/server.key" }

    struct OpenSSLFailed: Error { var arguments: [String] }

    init() throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let p256 = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        try openssl(["req", "-x509"] + p256 + ["-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=Berth test CA",
                    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        try openssl(["req", "-new"] + p256 + ["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"])
        try Data("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n".utf8)
            .write(to: URL(fileURLWithPath: folder + "/server.ext"))
        try openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
                     "-extfile", "server.ext", "-out", "server.crt"])
    }

    private func openssl(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: folder)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw OpenSSLFailed(arguments: arguments) }
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: folder)
    }
}

private struct FailingWriter: ResponseBodyWriter {
    func write(_ buffer: ByteBuffer) async throws { throw ClientGone() }
    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}
