import AsyncHTTPClient
import BerthCore
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// A client of a remote Docker v2 / OCI registry: anonymous, basic, or the Docker Bearer token flow
/// (tokens cached per scope until they expire), with streaming blob downloads.
public final class RegistryClient: Sendable {
    public struct Configuration: Sendable, Equatable {
        /// Base URL of the registry, e.g. `https://registry-1.docker.io` (a path prefix is kept).
        public var remote: String
        public var username: String?
        public var password: String?
        public var connectTimeoutSeconds: Int
        public var readTimeoutSeconds: Int

        public init(remote: String, username: String? = nil, password: String? = nil, connectTimeoutSeconds: Int = 30, readTimeoutSeconds: Int = 300) {
            self.remote = remote
            self.username = username
            self.password = password
            self.connectTimeoutSeconds = connectTimeoutSeconds
            self.readTimeoutSeconds = readTimeoutSeconds
        }
    }

    /// A manifest as the upstream describes it.
    public struct ManifestHead: Sendable, Equatable {
        public var digest: Digest?
        public var mediaType: String?
        public var size: Int64?
    }

    /// A blob download in progress.
    public struct BlobDownload: Sendable {
        /// Content-Length, when the upstream sends one.
        public var size: Int64?
        public var body: HTTPClientResponse.Body
    }

    /// Every manifest type Berth stores, so indexes come back as indexes.
    public static let manifestAccept = [MediaType.ociIndex, MediaType.ociManifest, MediaType.dockerManifestList, MediaType.dockerManifest].joined(separator: ", ")

    public let configuration: Configuration
    private let base: String
    private let client: HTTPClient
    private let logger: Logger
    /// Bearer tokens by scope, with their expiry (uptime nanoseconds).
    private let tokens = NIOLockedValueBox<[String: (token: String, expires: UInt64)]>([:])

    public init(_ configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        base = configuration.remote.hasSuffix("/") ? String(configuration.remote.dropLast()) : configuration.remote
        var http = HTTPClient.Configuration(
            redirectConfiguration: .follow(max: 5, allowCycles: false),
            timeout: .init(connect: .seconds(Int64(configuration.connectTimeoutSeconds)), read: .seconds(Int64(configuration.readTimeoutSeconds))),
            decompression: .disabled)
        http.httpVersion = .http1Only
        // Fail fast when the upstream is down: the cache answers instead, and the auto-block counts it.
        http.connectionPool.retryConnectionEstablishment = false
        http.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 64
        client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: http)
        self.logger = logger
    }

    public func shutdown() async {
        try? await client.shutdown()
    }

    /// Docker Hub's official images live under `library/`; its clients add that prefix, and so does Berth.
    public func upstreamName(_ name: String) -> String {
        let isDockerHub = base.contains("://registry-1.docker.io") || base.contains("://docker.io") || base.contains("://index.docker.io")
        return isDockerHub && !name.contains("/") ? "library/" + name : name
    }

    // MARK: Manifests

    /// `HEAD` of a manifest: its digest without spending a pull from quotas that count `GET`s.
    public func headManifest(_ name: String, _ reference: String) async throws(UpstreamError) -> ManifestHead {
        let response = try await send(.HEAD, "/v2/\(upstreamName(name))/manifests/\(reference)", name: name, accept: Self.manifestAccept)
        return ManifestHead(
            digest: response.headers.first(name: "Docker-Content-Digest").flatMap { Digest.parse($0) },
            mediaType: response.headers.first(name: "Content-Type").map { MediaType.essence($0) },
            size: response.headers.first(name: "Content-Length").flatMap { Int64($0) })
    }

    /// `GET` of a manifest: the exact bytes and type.
    public func getManifest(_ name: String, _ reference: String) async throws(UpstreamError) -> (bytes: [UInt8], mediaType: String?) {
        let response = try await send(.GET, "/v2/\(upstreamName(name))/manifests/\(reference)", name: name, accept: Self.manifestAccept)
        do {
            let body = try await response.body.collect(upTo: ManifestParser.maxSize)
            return (Array(body.readableBytesView), response.headers.first(name: "Content-Type").map { MediaType.essence($0) })
        } catch {
            throw .unavailable("reading manifest: \(error)")
        }
    }

    // MARK: Blobs

    public func headBlob(_ name: String, _ digest: Digest) async throws(UpstreamError) -> Int64? {
        let response = try await send(.HEAD, "/v2/\(upstreamName(name))/blobs/\(digest)", name: name)
        return response.headers.first(name: "Content-Length").flatMap { Int64($0) }
    }

    /// Starts a blob download; the caller streams `body`.
    public func getBlob(_ name: String, _ digest: Digest) async throws(UpstreamError) -> BlobDownload {
        let response = try await send(.GET, "/v2/\(upstreamName(name))/blobs/\(digest)", name: name)
        return BlobDownload(size: response.headers.first(name: "Content-Length").flatMap { Int64($0) }, body: response.body)
    }

    // MARK: Discovery

    /// All tags of an image (following `Link` pagination, bounded).
    public func tags(_ name: String) async throws(UpstreamError) -> [String] {
        var path = "/v2/\(upstreamName(name))/tags/list?n=1000"
        var all: [String] = []
        for _ in 0..<100 {
            let response = try await send(.GET, path, name: name)
            let body: ByteBuffer
            do { body = try await response.body.collect(upTo: 16 << 20) } catch { throw .unavailable("reading tags: \(error)") }
            struct Page: Decodable { var tags: [String]? }
            guard let page = try? JSONDecoder().decode(Page.self, from: Data(body.readableBytesView)) else {
                throw .unavailable("tags list is not JSON")
            }
            all += page.tags ?? []
            guard let link = response.headers.first(name: "Link"), let start = link.firstIndex(of: "<"), let end = link.firstIndex(of: ">") else { break }
            let next = String(link[link.index(after: start)..<end])
            path = next.hasPrefix("/") ? next : String(next.drop { $0 != "/" }.dropFirst(2).drop { $0 != "/" })
        }
        return all
    }

    /// The referrers index from the upstream's referrers API; nil when the upstream has no such API.
    public func referrers(_ name: String, _ digest: Digest, artifactType: String?) async throws(UpstreamError) -> [UInt8]? {
        var path = "/v2/\(upstreamName(name))/referrers/\(digest)"
        if let artifactType { path += "?artifactType=\(artifactType.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? artifactType)" }
        do {
            let response = try await send(.GET, path, name: name, accept: MediaType.ociIndex)
            guard response.headers.first(name: "Content-Type").map({ MediaType.essence($0) }) == MediaType.ociIndex else { return nil }
            return Array(try await response.body.collect(upTo: ManifestParser.maxSize).readableBytesView)
        } catch UpstreamError.notFound {
            return nil
        } catch let error as UpstreamError {
            throw error
        } catch {
            throw .unavailable("reading referrers: \(error)")
        }
    }

    // MARK: Requests and authentication

    /// Sends a request, answering a 401 challenge once (basic or bearer) and retrying.
    private func send(_ method: HTTPMethod, _ path: String, name: String, accept: String? = nil) async throws(UpstreamError) -> HTTPClientResponse {
        let scope = "repository:\(upstreamName(name)):pull"
        // Known credentials go with the first request (a basic-auth upstream then needs no 401 round trip).
        var authorization = cachedAuthorization(scope: scope) ?? basicCredentials()
        for attempt in 0..<2 {
            var request = HTTPClientRequest(url: base + path)
            request.method = method
            if let accept { request.headers.add(name: "Accept", value: accept) }
            if let authorization { request.headers.add(name: "Authorization", value: authorization) }
            request.headers.add(name: "User-Agent", value: "Berth")
            let response: HTTPClientResponse
            do {
                response = try await client.execute(request, timeout: .seconds(Int64(configuration.readTimeoutSeconds) * 4), logger: logger)
            } catch {
                throw .unavailable("\(error)")
            }
            switch response.status.code {
            case 200..<300:
                return response
            case 401 where attempt == 0:
                try? await drain(response)
                guard let header = response.headers.first(name: "WWW-Authenticate"), let challenge = Challenge(parsing: header) else {
                    throw .denied(status: 401)
                }
                authorization = try await answer(challenge, scope: scope)
            case 401, 403:
                try? await drain(response)
                throw .denied(status: Int(response.status.code))
            case 404:
                try? await drain(response)
                throw .notFound
            case 429:
                try? await drain(response)
                throw .tooManyRequests(retryAfter: response.headers.first(name: "Retry-After").flatMap { Int($0) })
            default:
                try? await drain(response)
                throw .unavailable("HTTP \(response.status.code)")
            }
        }
        throw .denied(status: 401)
    }

    private func drain(_ response: HTTPClientResponse) async throws {
        for try await _ in response.body {}
    }

    private func basicCredentials() -> String? {
        guard let username = configuration.username else { return nil }
        return "Basic " + Data("\(username):\(configuration.password ?? "")".utf8).base64EncodedString()
    }

    private func cachedAuthorization(scope: String) -> String? {
        let now = DispatchTime.now().uptimeNanoseconds
        if let entry = tokens.withLockedValue({ $0[scope] }), entry.expires > now {
            return "Bearer " + entry.token
        }
        return nil
    }

    /// Fetches a token for a Bearer challenge, or builds basic credentials.
    private func answer(_ challenge: Challenge, scope: String) async throws(UpstreamError) -> String {
        if challenge.scheme == "basic" {
            guard let basic = basicCredentials() else { throw .denied(status: 401) }
            return basic
        }
        guard challenge.scheme == "bearer", let realm = challenge.realm, var components = URLComponents(string: realm) else {
            throw .denied(status: 401)
        }
        var query = components.queryItems ?? []
        if let service = challenge.service { query.append(URLQueryItem(name: "service", value: service)) }
        query.append(URLQueryItem(name: "scope", value: challenge.scope ?? scope))
        components.queryItems = query
        guard let url = components.string else { throw .denied(status: 401) }
        var request = HTTPClientRequest(url: url)
        if let basic = basicCredentials() { request.headers.add(name: "Authorization", value: basic) }
        struct TokenResponse: Decodable {
            var token: String?
            var access_token: String?
            var expires_in: Int?
        }
        do {
            let response = try await client.execute(request, timeout: .seconds(Int64(configuration.readTimeoutSeconds)), logger: logger)
            let body = try await response.body.collect(upTo: 1 << 20)
            guard response.status.code == 200 else {
                throw UpstreamError.denied(status: Int(response.status.code))
            }
            let decoded = try JSONDecoder().decode(TokenResponse.self, from: Data(body.readableBytesView))
            guard let token = decoded.token ?? decoded.access_token else { throw UpstreamError.denied(status: 401) }
            // Refresh a little early; the spec's default lifetime is 60 s.
            let lifetime = UInt64(max(10, (decoded.expires_in ?? 60) - 5))
            let expires = DispatchTime.now().uptimeNanoseconds + lifetime * 1_000_000_000
            tokens.withLockedValue { $0[challenge.scope ?? scope] = (token, expires) }
            return "Bearer " + token
        } catch let error as UpstreamError {
            throw error
        } catch {
            throw .unavailable("token request: \(error)")
        }
    }
}
