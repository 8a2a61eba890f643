import BerthCore
import BerthRegistry
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// The single responder of every listener: the front door decides which surface and repository a request is
/// for, then hands it to the distribution controller, the upstream proxy or the regular surface.
///
/// The route table of the distribution API is ``AccessPath``/``DistributionRoute`` (pure, table-tested);
/// the front door's is ``RouteTable``. This type only glues them to HTTP.
public struct BerthResponder: HTTPResponder {
    public typealias Context = BerthRequestContext

    let distribution: DistributionController
    let frontDoor: FrontDoor
    let upstream: UpstreamProxy
    /// Access control; nil when the configuration has no `auth:` section.
    let authenticator: Authenticator?
    let logger: Logger

    init(registry: Registry, frontDoor: FrontDoor, upstream: UpstreamProxy, authenticator: Authenticator? = nil, logger: Logger) {
        distribution = DistributionController(registry: registry)
        self.frontDoor = frontDoor
        self.upstream = upstream
        self.authenticator = authenticator
        self.logger = logger
    }

    public func respond(to request: Request, context: Context) async throws -> Response {
        let state = frontDoor.state
        let listener = context.localPort.flatMap { state.listeners[$0] } ?? .init(isMain: true, isTLS: false)
        let path = Self.decodedPath(request.uri.path)
        let host = request.head.authority.map(RouteTable.normalizeHost)

        var destination = state.routes.resolve(host: host, port: context.localPort)
        if let ns = request.uri.queryParameters.get("ns"), let repository = state.routes.nsMap[String(ns)] {
            // A containerd mirror request names the registry it mirrors; the map picks the repository.
            destination = .repository(repository)
        }
        let trustedPeer = state.trustedProxies.contains(context.remoteAddress)
        let origin = ClientOrigin(request: request, listenerIsTLS: listener.isTLS, trustedPeer: trustedPeer, publicURL: listener.isMain && destination == nil ? state.publicURL : nil)

        switch destination {
        case .upstream(let target):
            // A pure reverse-proxy route forwards every path, so the upstream's own token realm works too.
            return await upstream.forward(request, to: target, origin: origin, peer: context.remoteAddress, on: context.eventLoop)
        case .repository(let r) where Self.isDockerPath(path):
            return await docker(path, .bound(pull: r, push: r), request, context, trustedPeer: trustedPeer, origin: origin)
        case .split(let pull, let push) where Self.isDockerPath(path):
            return await docker(path, .bound(pull: pull, push: push), request, context, trustedPeer: trustedPeer, origin: origin)
        case nil where !listener.isMain && Self.isDockerPath(path):
            return registryError(RegistryError(.nameUnknown, "no repository is routed for this host name", detail: host), request, context)
        default:
            break
        }
        if let access = AccessPath.parse(path: path[...]) {
            switch access.method {
            case .repositoryPath:
                return await distribution(access.route, ClientNamespace(kind: .repositoryPath, forwardedPrefix: forwardedPrefix(request, trustedPeer)), request, context, origin: origin)
            case .nexusPath(let repository):
                return await distribution(access.route, ClientNamespace(kind: .nexusPath(repository: repository), forwardedPrefix: forwardedPrefix(request, trustedPeer)), request, context, repository: repository, origin: origin)
            }
        }
        if let kind = Self.tokenNamespace(path) {
            return await token(ClientNamespace(kind: kind, forwardedPrefix: forwardedPrefix(request, trustedPeer)), request, context)
        }
        return await regularSurface(path, request: request, context: context, origin: origin)
    }

    /// `/v2` and `/v1` requests on an address bound to repositories.
    private func docker(_ path: String, _ kind: ClientNamespace.Kind, _ request: Request, _ context: Context, trustedPeer: Bool, origin: ClientOrigin) async -> Response {
        if path == "/v2/token" {
            return await token(ClientNamespace(kind: kind, forwardedPrefix: forwardedPrefix(request, trustedPeer)), request, context)
        }
        guard path.hasPrefix("/v2"), let tail = AccessPath.v2Tail(path.dropFirst(3)), let route = DistributionRoute.parse(tail: tail) else {
            return registryError(RegistryError(.nameUnknown, "no such registry endpoint", detail: String(path.prefix(200))), request, context)
        }
        let namespace = ClientNamespace(kind: kind, forwardedPrefix: forwardedPrefix(request, trustedPeer))
        if case .bound(let pull, let push) = kind {
            // Both sides must exist, whichever this request uses: a misrouted push must not fall elsewhere.
            do {
                _ = try distribution.registry.repository(pull)
                _ = try distribution.registry.repository(push)
            } catch {
                return registryError(error, request, context)
            }
        }
        return await distribution(route, namespace, request, context, origin: origin)
    }

    private func distribution(_ route: DistributionRoute, _ namespace: ClientNamespace, _ request: Request, _ context: Context, repository: String? = nil, origin: ClientOrigin) async -> Response {
        var response: Response
        do {
            if let repository { _ = try distribution.registry.repository(repository) }
            let check: AccessCheck?
            switch await gate(route, namespace, request, context, origin: origin) {
            case .refused(let refusal): return refusal
            case .allowed(let allowed): check = allowed
            }
            response = try await distribution.respond(route, namespace: namespace, request: request, access: check)
            if let check { auditWrite(route, namespace, request, context, actor: check.identity.name, response) }
        } catch let error as RegistryError {
            return registryError(error, request, context)
        } catch {
            logger.error("request failed", metadata: ["error": "\(error)", "path": "\(request.uri.path)"])
            return registryError(RegistryError(.internalError, "internal error"), request, context)
        }
        response.headers[.dockerAPIVersion] = "registry/2.0"
        return response
    }

    func registryError(_ error: RegistryError, _ request: Request, _ context: Context) -> Response {
        if error.code.status >= 500 { logger.error("request failed", metadata: ["error": "\(error)", "path": "\(request.uri.path)"]) }
        var response = error.response(for: request)
        response.headers[.dockerAPIVersion] = "registry/2.0"
        return response
    }

    private func forwardedPrefix(_ request: Request, _ trustedPeer: Bool) -> String? {
        guard trustedPeer, let prefix = request.headers[HTTPField.Name("X-Forwarded-Prefix")!] else { return nil }
        return prefix.trimmingBlanks()
    }

    /// Everything that is not the distribution API: status and administration endpoints.
    private func regularSurface(_ path: String, request: Request, context: Context, origin: ClientOrigin) async -> Response {
        if request.method == .delete, path.hasPrefix("/service/rest/v1/repositories/"), path.hasSuffix("/cache") {
            if let auth = authenticator {
                let repository = String(path.dropFirst("/service/rest/v1/repositories/".count).dropLast("/cache".count))
                let who: AccessPolicy.Identity?
                switch await auth.authenticate(request.headers[.authorization], client: context.remoteAddress?.ipAddress) {
                case .identity(let identity): who = identity
                case .bearer(let identity, _): who = AccessPolicy.Identity(kind: identity.kind, name: identity.name, roles: await auth.roles(of: identity.name))
                default: who = nil
                }
                guard let who, auth.policy.allows(who, .admin, on: repository) else {
                    var response = registryError(RegistryError(who == nil ? .unauthorized : .denied, "purging a cache needs the admin privilege"), request, context)
                    if who == nil { response.headers[.wwwAuthenticate] = "Basic realm=\"Berth\"" }
                    return response
                }
                auth.audit.record(actor: who.name, action: "purge-cache", repository: repository, client: context.remoteAddress?.ipAddress, result: "ok")
            }
            return await purgeCache(path, request: request, context: context)
        }
        switch path {
        case "/service/rest/v1/status/check":
            return await statusCheck()
        case "/", "/service/rest/v1/status":
            let body = path == "/" ? "Berth Docker/OCI repository manager. The registry API is at /v2/.\n" : ""
            return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8", .contentLength: String(body.utf8.count)], body: .init(byteBuffer: ByteBuffer(string: body)))
        default:
            if Self.isDockerPath(path) || path.hasPrefix("/repository/") {
                // Under the registry's paths, unknown endpoints answer in the registry's error format.
                return registryError(RegistryError(.nameUnknown, "no such registry endpoint", detail: String(path.prefix(200))), request, context)
            }
            return Response(status: .notFound, headers: [.contentType: "text/plain; charset=utf-8", .contentLength: "10"], body: .init(byteBuffer: ByteBuffer(string: "not found\n")))
        }
    }

    /// `GET /service/rest/v1/status/check`: whether each store answers (Nexus's path and shape: one entry per
    /// check with `healthy` and `message`); 503 when one does not, so a load balancer can take the node out.
    private func statusCheck() async -> Response {
        struct Check: Encodable { var healthy: Bool; var message: String? }
        var checks: [String: Check] = [:]
        for (name, error) in await distribution.registry.checkStorage() {
            checks[name] = Check(healthy: error == nil, message: error)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let body = (try? encoder.encode(checks)).map { ByteBuffer(bytes: $0) } ?? ByteBuffer(string: "{}")
        let healthy = checks.values.allSatisfy(\.healthy)
        return Response(
            status: healthy ? .ok : .serviceUnavailable,
            headers: [.contentType: "application/json", .contentLength: String(body.readableBytes), .cacheControl: "no-store"],
            body: .init(byteBuffer: body))
    }

    /// `DELETE /service/rest/v1/repositories/<proxy>/cache[?image=<image>]`: drops what a proxy cached.
    private func purgeCache(_ path: String, request: Request, context: Context) async -> Response {
        let name = String(path.dropFirst("/service/rest/v1/repositories/".count).dropLast("/cache".count))
        let image = request.uri.queryParameters.get("image").map { String($0) }
        do {
            let removed = try await distribution.registry.purgeCache(repository: name, image: image)
            logger.notice("proxy cache purged", metadata: ["repository": "\(name)", "image": "\(image ?? "*")", "manifests": "\(removed)"])
            let body = "{\"repository\":\(JSONText.quoted(name)),\"removedManifests\":\(removed)}"
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
        } catch let error as RegistryError {
            return registryError(error, request, context)
        } catch {
            return registryError(RegistryError(.internalError, "\(error)"), request, context)
        }
    }

    /// `/v2/token` on the main listener, or `/repository/<repo>/v2/token` (also with `//v2`): the token realm.
    static func tokenNamespace(_ path: String) -> ClientNamespace.Kind? {
        if path == "/v2/token" { return .repositoryPath }
        guard path.hasPrefix("/repository/"), path.hasSuffix("/v2/token") else { return nil }
        let middle = path.dropFirst("/repository/".count).dropLast("/v2/token".count)
        let repository = middle.prefix { $0 != "/" }
        guard !repository.isEmpty, middle.dropFirst(repository.count).allSatisfy({ $0 == "/" }) else { return nil }
        return .nexusPath(repository: String(repository))
    }

    /// `/v2…` and `/v1…`: the paths the guide's nginx example sends to the Docker repository.
    static func isDockerPath(_ path: String) -> Bool {
        for prefix in ["/v2", "/v1"] where path.hasPrefix(prefix) {
            let rest = path.dropFirst(3)
            if rest.isEmpty || rest.first == "/" { return true }
        }
        return false
    }

    /// Percent-decodes the path (some clients encode the `:` of digests); plain paths pass untouched.
    static func decodedPath(_ raw: String) -> String {
        guard raw.utf8.contains(UInt8(ascii: "%")) else { return raw }
        return raw.removingPercentEncoding ?? raw
    }
}
