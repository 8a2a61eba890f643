import AsyncHTTPClient
import BerthCore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOSSL
import ServiceLifecycle

/// A streaming reverse proxy to external registries (`upstream:` routes).
///
/// Bodies flow through in both directions with backpressure and no size limit; nothing is buffered whole.
/// Headers follow the guide's proxies: `Host` preserved, `X-Forwarded-For/Proto/Host`, `X-Real-IP`. A
/// `Location` or token realm that points at the upstream is rewritten to the client's address.
final class UpstreamProxy: Service, Sendable {
    private struct ClientKey: Hashable {
        var connect: Int
        var read: Int
        var caFile: CAFileVersion?
        var eventLoop: ObjectIdentifier
    }

    /// A CA file as it is now: a file replaced in place (and a SIGHUP) gets new clients and contexts, not the old
    /// trust roots.
    private struct CAFileVersion: Hashable {
        var path: String
        var modified: Date?
        var size: Int?
    }

    /// Each CA file's version as last seen; looked at again at most once a second, so a request costs no stat.
    private let caFileVersions = NIOLockedValueBox<[String: (version: CAFileVersion, seen: NIODeadline)]>([:])

    private func version(ofCAFile path: String?) -> CAFileVersion? {
        guard let path else { return nil }
        let now = NIODeadline.now()
        if let known = caFileVersions.withLockedValue({ $0[path] }), now - known.seen < .seconds(1) { return known.version }
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        let version = CAFileVersion(
            path: path, modified: attributes?[.modificationDate] as? Date, size: (attributes?[.size] as? NSNumber)?.intValue)
        caFileVersions.withLockedValue { $0[path] = (version, now) }
        return version
    }

    private let clients = NIOLockedValueBox<[ClientKey: HTTPClient]>([:])
    /// TLS contexts of the blob connections, by CA file version (nil for the system's trust roots): building one
    /// loads the trust roots, so it is done once per version.
    private let tlsContexts = NIOLockedValueBox<[CAFileVersion?: NIOSSLContext]>([:])
    /// Blob downloads that took the dedicated-connection path, and their connections still open (for tests and
    /// diagnostics).
    let blobDownloads = NIOLockedValueBox(0)
    let openBlobConnections = NIOLockedValueBox(0)
    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    /// Hop-by-hop headers (RFC 9110 §7.6.1) and the ones set here; never forwarded.
    private static let dropped: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade", "host", "expect", "content-length",
    ]

    /// - Parameter eventLoop: the client connection's event loop. The exchange runs there (see
    ///   `EventLoopTaskExecutor`), so AsyncHTTPClient picks an upstream connection on the same loop and each body
    ///   buffer goes from one socket to the other without changing threads.
    func forward(
        _ request: Request, to upstream: FrontDoorConfiguration.Upstream, origin: ClientOrigin, peer: SocketAddress?,
        on eventLoop: any EventLoop
    ) async -> Response {
        let base = upstream.url.hasSuffix("/") ? String(upstream.url.dropLast()) : upstream.url
        var pathAndQuery = request.uri.path
        if let query = request.uri.query, !query.isEmpty { pathAndQuery += "?" + query }
        let headers = outboundHeaders(request, preserveHost: upstream.preserveHost, origin: origin, peer: peer)
        let executor = EventLoopTaskExecutor(eventLoop)

        if UpstreamBlobTarget.isBlobDownload(request), let target = UpstreamBlobTarget(url: upstream.url) {
            return await forwardBlobDownload(
                request, path: target.basePath + pathAndQuery, headers: headers, to: target, upstream: upstream,
                base: base, origin: origin, executor: executor)
        }

        var outbound = HTTPClientRequest(url: base + pathAndQuery)
        outbound.method = HTTPMethod(rawValue: request.method.rawValue)
        outbound.headers = headers
        if let length = request.headers[.contentLength].flatMap({ Int64($0) }) {
            if length > 0 { outbound.body = .stream(request.body, length: .known(length)) }
        } else if request.headers[.transferEncoding] != nil {
            outbound.body = .stream(request.body, length: .unknown)
        }

        let response: HTTPClientResponse
        do {
            let client = try client(for: upstream, on: eventLoop)
            response = try await withTaskExecutorPreference(executor) {
                try await client.execute(outbound, timeout: .hours(24), logger: logger)
            }
        } catch {
            return failure(error, upstream: upstream, request: request)
        }
        let status = HTTPResponse.Status(code: Int(response.status.code), reasonPhrase: response.status.reasonPhrase)
        let fields = Self.clientHeaders(response.headers, base: base, origin: origin)
        if request.method == .head || status == .noContent || status == .notModified {
            return Response(status: status, headers: fields)
        }
        let body = response.body
        return Response(status: status, headers: fields, body: ResponseBody { writer in
            try await withTaskExecutorPreference(executor) {
                for try await buffer in body { try await writer.write(buffer) }
            }
            try await writer.finish(nil)
        })
    }

    /// A blob download on a connection of its own (see `UpstreamBlobTarget`).
    private func forwardBlobDownload(
        _ request: Request, path: String, headers: HTTPHeaders, to target: UpstreamBlobTarget,
        upstream: FrontDoorConfiguration.Upstream, base: String, origin: ClientOrigin, executor: EventLoopTaskExecutor
    ) async -> Response {
        var headers = headers
        if !headers.contains(name: "Host") { headers.add(name: "Host", value: target.authority) }
        headers.replaceOrAdd(name: "Connection", value: "close")
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)
        let answer: (HTTPResponseHead, UpstreamResponseReader)
        do {
            answer = try await withTaskExecutorPreference(executor) {
                try await forwardBlob(head: head, to: target, upstream: upstream, on: executor.eventLoop)
            }
        } catch {
            return failure(error, upstream: upstream, request: request)
        }
        let (response, reader) = answer
        // Closes the connection if the body is never written (the response dropped before its body was sent).
        let closer = UpstreamResponseReader.CloseOnDeinit(reader)
        let status = HTTPResponse.Status(code: Int(response.status.code), reasonPhrase: response.status.reasonPhrase)
        return Response(status: status, headers: Self.clientHeaders(response.headers, base: base, origin: origin), body: ResponseBody { writer in
            defer { withExtendedLifetime(closer) {} }
            do {
                try await withTaskExecutorPreference(executor) {
                    while let part = try await reader.next() {
                        guard case .body(let buffer) = part else { break }
                        try await writer.write(buffer)
                    }
                }
            } catch {
                reader.close()
                throw error
            }
            reader.close()
            try await writer.finish(nil)
        })
    }

    /// The client's headers as the upstream gets them: hop-by-hop ones dropped, `Host` kept if asked, and the
    /// `X-Forwarded-*` / `X-Real-IP` set the guide's proxies send.
    private func outboundHeaders(_ request: Request, preserveHost: Bool, origin: ClientOrigin, peer: SocketAddress?) -> HTTPHeaders {
        var headers = HTTPHeaders()
        for field in request.headers where !Self.dropped.contains(field.name.canonicalName) {
            headers.add(name: field.name.rawName, value: field.value)
        }
        if preserveHost, let authority = request.head.authority {
            headers.replaceOrAdd(name: "Host", value: authority)
        }
        if let peerIP = peer?.ipAddress {
            let chain = request.headers[.xForwardedFor].map { "\($0), \(peerIP)" } ?? peerIP
            headers.replaceOrAdd(name: "X-Forwarded-For", value: chain)
            headers.replaceOrAdd(name: "X-Real-IP", value: peerIP)
        }
        headers.replaceOrAdd(name: "X-Forwarded-Proto", value: origin.scheme)
        if let authority = origin.authority { headers.replaceOrAdd(name: "X-Forwarded-Host", value: authority) }
        return headers
    }

    /// The upstream's response headers as the client gets them: hop-by-hop ones dropped (the length kept), and a
    /// `Location` or token realm pointing at the upstream rewritten to the client's address.
    private static func clientHeaders(_ upstreamHeaders: HTTPHeaders, base: String, origin: ClientOrigin) -> HTTPFields {
        var headers = HTTPFields()
        for (name, value) in upstreamHeaders where !dropped.contains(name.lowercased()) || name.lowercased() == "content-length" {
            guard let fieldName = HTTPField.Name(name) else { continue }
            switch fieldName {
            case .location: headers.append(HTTPField(name: fieldName, value: rewrite(value, base: base, origin: origin)))
            case .wwwAuthenticate: headers.append(HTTPField(name: fieldName, value: rewriteRealm(value, base: base, origin: origin)))
            default: headers.append(HTTPField(name: fieldName, value: value))
            }
        }
        return headers
    }

    /// An upstream URL (absolute, or a path under the upstream's base) as the client must see it.
    static func rewrite(_ value: String, base: String, origin: ClientOrigin) -> String {
        if value.hasPrefix(base + "/") || value == base {
            return "/" + value.dropFirst(base.count).drop { $0 == "/" }
        }
        let basePath = path(of: base)
        if !basePath.isEmpty, value.hasPrefix(basePath + "/") {
            return "/" + value.dropFirst(basePath.count).drop { $0 == "/" }
        }
        return value
    }

    /// `Bearer realm="<upstream>/token",…` → `realm="<client origin>/token"`.
    static func rewriteRealm(_ value: String, base: String, origin: ClientOrigin) -> String {
        guard let clientBase = origin.base, let start = value.range(of: "realm=\"") else { return value }
        guard let end = value[start.upperBound...].firstIndex(of: "\"") else { return value }
        let realm = String(value[start.upperBound..<end])
        let rewritten = rewrite(realm, base: base, origin: origin)
        guard rewritten != realm else { return value }
        return value.replacingCharacters(in: start.upperBound..<end, with: clientBase + rewritten)
    }

    /// The path part of an absolute URL without its trailing slash (`http://h:1/a/b/` → `/a/b`), as written.
    static func path(of url: String) -> String {
        guard let schemeEnd = url.range(of: "://") else { return "" }
        let rest = url[schemeEnd.upperBound...]
        guard let slash = rest.firstIndex(of: "/") else { return "" }
        var p = String(rest[slash...])
        while p.hasSuffix("/") { p.removeLast() }
        return p
    }

    private func failure(_ error: any Error, upstream: FrontDoorConfiguration.Upstream, request: Request) -> Response {
        let timedOut: Bool
        if let e = error as? HTTPClientError {
            timedOut = e == .readTimeout || e == .connectTimeout || e == .deadlineExceeded
        } else if let e = error as? UpstreamResponseReader.Failure {
            timedOut = e == .readTimeout || e == .handshakeTimeout
        } else {
            timedOut = "\(error)".lowercased().contains("timeout") || "\(error)".lowercased().contains("timed out")
        }
        logger.warning("upstream request failed", metadata: ["upstream": "\(upstream.url)", "error": "\(error)"])
        let code = timedOut ? Self.gatewayTimeout : Self.badGateway
        var response = RegistryError(code, detail: "\(upstream.url): \(Self.reason(error, upstream: upstream))").response(for: request)
        response.headers[.dockerAPIVersion] = "registry/2.0"
        return response
    }

    /// What a client is told about a failed exchange: TLS failures in words an operator can act on (BoringSSL's own
    /// text names source files; the log keeps it), everything else as it is.
    static func reason(_ error: any Error, upstream: FrontDoorConfiguration.Upstream) -> String {
        let text = "\(error)"
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            return upstream.caFile == nil
                ? "the upstream's TLS certificate could not be verified against the system's CAs (expired, or from a private CA: set the route's ca_file)"
                : "the upstream's TLS certificate could not be verified against the route's ca_file (expired, or signed by another CA)"
        }
        if let e = error as? NIOSSLExtraError, e == .failedToValidateHostname {
            return "the upstream's TLS certificate is not for this host name or address"
        }
        if let e = error as? NIOSSLError, case .handshakeFailed = e { return "the TLS handshake with the upstream failed" }
        return text
    }

    static let badGateway = RegistryError.Code("UNAVAILABLE", status: 502, message: "the upstream registry cannot be reached")
    static let gatewayTimeout = RegistryError.Code("UNAVAILABLE", status: 504, message: "the upstream registry did not answer in time")

    /// One client per event loop (and timeouts and CA file version): its connections live on that loop only, so an
    /// exchange never gets an idle upstream connection of another thread. A replaced CA file leaves its old client
    /// idle until shutdown.
    private func client(for upstream: FrontDoorConfiguration.Upstream, on eventLoop: any EventLoop) throws -> HTTPClient {
        let key = ClientKey(
            connect: upstream.connectTimeoutSeconds, read: upstream.readTimeoutSeconds, caFile: version(ofCAFile: upstream.caFile),
            eventLoop: ObjectIdentifier(eventLoop))
        return try clients.withLockedValue { clients in
            if let client = clients[key] { return client }
            var configuration = HTTPClient.Configuration(
                tlsConfiguration: try Self.tlsConfiguration(caFile: upstream.caFile),
                redirectConfiguration: .disallow,
                timeout: .init(connect: .seconds(Int64(key.connect)), read: .seconds(Int64(key.read))),
                decompression: .disabled)
            configuration.httpVersion = .http1Only
            // A refused connection is a 502 now, not after the connect timeout; and many clients stream at once.
            configuration.connectionPool.retryConnectionEstablishment = false
            configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 256
            let client = HTTPClient(eventLoopGroup: eventLoop, configuration: configuration)
            clients[key] = client
            return client
        }
    }

    /// How an `https:` upstream is checked: full verification of its certificate and name, against the system's
    /// trust roots or only the CAs of the route's `ca_file`.
    static func tlsConfiguration(caFile: String?) throws -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let caFile { configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile)) }
        return configuration
    }

    /// The blob connections' TLS: as the pooled client's, but a connection closed mid-body (the client went away)
    /// does not wait for the upstream's close_notify behind the unread rest of the blob.
    static func blobTLSConfiguration(caFile: String?) throws -> TLSConfiguration {
        var configuration = try tlsConfiguration(caFile: caFile)
        configuration.shutdownTimeout = .milliseconds(200)
        return configuration
    }

    /// The TLS context for blob connections to `upstream`, made once per CA file version.
    func tlsContext(for upstream: FrontDoorConfiguration.Upstream) throws -> NIOSSLContext {
        let key = version(ofCAFile: upstream.caFile)
        return try tlsContexts.withLockedValue { contexts in
            if let context = contexts[key] { return context }
            let context = try NIOSSLContext(configuration: Self.blobTLSConfiguration(caFile: upstream.caFile))
            contexts[key] = context
            return context
        }
    }

    /// Runs until shutdown, then closes the upstream connections.
    func run() async throws {
        try? await gracefulShutdown()
        await shutdown()
    }

    /// Closes the upstream connections of every pooled client.
    func shutdown() async {
        let all = clients.withLockedValue { clients in
            defer { clients = [:] }
            return Array(clients.values)
        }
        for client in all { try? await client.shutdown() }
    }
}

/// Runs a task's jobs on one NIO event loop. A proxied exchange runs there, so the upstream connection's reads
/// and the client connection's writes happen on the same thread, with no hop per buffer between threads.
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        eventLoop.execute { job.runSynchronously(on: executor) }
    }
}
