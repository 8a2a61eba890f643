import BerthCore
import BerthRegistry
import BerthStorage
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

extension BerthResponder {
    /// The result of checking a request against the access policy.
    enum Gate {
        case allowed(AccessCheck?)
        case refused(Response)
    }

    /// The privilege a distribution request needs, and Docker's name for it in a token scope.
    static func required(_ route: DistributionRoute, _ method: HTTPRequest.Method) -> (AccessPolicy.Privilege, String)? {
        switch (route, method) {
        case (.base, _), (.catalog, _): return nil
        case (.uploadStart, _), (.upload, _), (.manifest, .put): return (.write, "push")
        case (.manifest, .delete), (.blob, .delete): return (.delete, "delete")
        default: return (.read, "pull")
        }
    }

    /// Authenticates and authorizes a distribution request (when access control is on).
    func gate(_ route: DistributionRoute, _ namespace: ClientNamespace, _ request: Request, _ context: Context, origin: ClientOrigin) async -> Gate {
        guard let auth = authenticator else { return .allowed(nil) }
        let client = context.remoteAddress?.ipAddress
        let outcome = await auth.authenticate(request.headers[.authorization], client: client)
        var identity = AccessPolicy.Identity.anonymous
        var token: RegistryToken?
        switch outcome {
        case .throttled(let seconds):
            var response = registryError(RegistryError(.tooManyRequests, "too many failed logins; try again later"), request, context)
            response.headers[.retryAfter] = String(seconds)
            return .refused(response)
        case .refused(let why):
            return .refused(challenge(RegistryError(.unauthorized, why), route: route, namespace: namespace, request, context, origin: origin))
        case .anonymous:
            break
        case .identity(let who):
            identity = who
        case .bearer(let who, let claims):
            identity = who
            token = claims
        }
        let policy = auth.policy
        var check = AccessCheck(policy: policy, identity: identity, token: token)
        guard let (privilege, action) = Self.required(route, request.method), let name = route.name else {
            // `/v2/` tells clients whether they are logged in; the catalog is filtered to what they may read.
            if case .base = route, identity.kind == .anonymous {
                return .refused(challenge(RegistryError(.unauthorized), route: route, namespace: namespace, request, context, origin: origin))
            }
            if token != nil, identity.kind != .anonymous {
                check.identity.roles = await auth.roles(of: identity.name)
            }
            return .allowed(check)
        }
        var side = namespace
        side.access = privilege == .read ? .read : .write
        guard let image = try? side.image(name, registry: distribution.registry) else {
            // Malformed or unknown names get their own error from the controller.
            return .allowed(check)
        }
        let allowed: Bool
        if let token {
            allowed = token.grants(action, repository: image.repository, image: image.image)
        } else {
            allowed = policy.allows(identity, privilege, on: image.repository)
        }
        if allowed {
            if case .uploadStart = route, request.uri.queryParameters.get("mount") != nil, token != nil, identity.kind != .anonymous {
                check.identity.roles = await auth.roles(of: identity.name)
            }
            return .allowed(check)
        }
        if identity.kind == .anonymous {
            return .refused(challenge(RegistryError(.unauthorized), route: route, namespace: namespace, request, context, origin: origin))
        }
        auth.audit.record(actor: identity.name, action: action, repository: image.repository, target: image.image, client: client, result: "denied")
        return .refused(registryError(RegistryError(.denied, "\(identity.name) may not \(action) \(name)"), request, context))
    }

    /// A 401 whose `WWW-Authenticate` points the client at the token realm on the address it used.
    func challenge(_ error: RegistryError, route: DistributionRoute?, namespace: ClientNamespace, _ request: Request, _ context: Context, origin: ClientOrigin) -> Response {
        var response = registryError(error, request, context)
        guard let auth = authenticator else { return response }
        let realm = (origin.base ?? "") + namespace.v2Prefix + "token"
        var value = "Bearer realm=\"\(realm)\",service=\"\(auth.configuration.service)\""
        if let route, let name = route.name, let (privilege, _) = Self.required(route, request.method) {
            let actions = switch privilege {
            case .read: "pull"
            case .delete: "delete"
            default: "pull,push"
            }
            value += ",scope=\"repository:\(name):\(actions)\""
        }
        response.headers[.wwwAuthenticate] = value
        return response
    }

    /// `GET /v2/token?service=…&scope=repository:<name>:<actions>` (Docker's token realm).
    ///
    /// Names in scopes are resolved the way a request to this address would resolve them, so the token
    /// names Berth repositories; granted actions are those asked for that the identity holds.
    func token(_ namespace: ClientNamespace, _ request: Request, _ context: Context) async -> Response {
        guard let auth = authenticator else {
            return registryError(RegistryError(.unsupported, "access control is off: no token is needed"), request, context)
        }
        let client = context.remoteAddress?.ipAddress
        var identity = AccessPolicy.Identity.anonymous
        var credentialed = false
        switch await auth.authenticate(request.headers[.authorization], client: client) {
        case .throttled(let seconds):
            var response = registryError(RegistryError(.tooManyRequests, "too many failed logins; try again later"), request, context)
            response.headers[.retryAfter] = String(seconds)
            return response
        case .refused(let why):
            var response = registryError(RegistryError(.unauthorized, why), request, context)
            response.headers[.wwwAuthenticate] = "Basic realm=\"Berth\""
            return response
        case .anonymous:
            break
        case .identity(let who):
            identity = who
            credentialed = true
        case .bearer(let who, _):
            identity = who
        }
        let policy = auth.policy
        var grants: [String: Set<String>] = [:]
        for scope in request.uri.queryParameters.getAll("scope").flatMap({ $0.split(separator: " ") }) {
            let parts = scope.split(separator: ":")
            guard parts.count >= 3, parts[0] == "repository" else { continue }
            let name = parts[1..<(parts.count - 1)].joined(separator: ":")
            var wanted = Set(parts[parts.count - 1].split(separator: ",").map(String.init))
            if wanted.contains("*") { wanted = ["pull", "push", "delete"] }
            for action in wanted {
                let privilege: AccessPolicy.Privilege = action == "pull" ? .read : action == "push" ? .write : action == "delete" ? .delete : .admin
                guard privilege != .admin else { continue }
                var side = namespace
                side.access = privilege == .read ? .read : .write
                guard let image = try? side.image(name, registry: distribution.registry),
                      (try? distribution.registry.validate(image)) != nil,
                      policy.allows(identity, privilege, on: image.repository)
                else { continue }
                grants[image.description, default: []].insert(action)
            }
        }
        let access = grants.sorted { $0.key < $1.key }.map { RegistryToken.Access(type: "repository", name: $0.key, actions: $0.value.sorted()) }
        do {
            let issued = try await auth.issue(for: identity, access: access)
            if credentialed {
                auth.audit.record(actor: identity.name, action: "login", target: access.map { "\($0.name):\($0.actions.joined(separator: ","))" }.joined(separator: " "), client: client, result: "ok")
            }
            let now = ISO8601DateFormatter().string(from: Date())
            let body = "{\"token\":\(JSONText.quoted(issued.token)),\"access_token\":\(JSONText.quoted(issued.token)),\"expires_in\":\(issued.expiresIn),\"issued_at\":\(JSONText.quoted(now))}"
            return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(string: body)))
        } catch {
            return registryError(RegistryError(.internalError, "cannot sign the token"), request, context)
        }
    }

    /// Records pushes and deletes that succeeded or failed in the audit log.
    func auditWrite(_ route: DistributionRoute, _ namespace: ClientNamespace, _ request: Request, _ context: Context, actor: String, _ response: Response) {
        guard let auth = authenticator, let (privilege, action) = Self.required(route, request.method), privilege != .read else { return }
        switch route {
        case .manifest, .blob: break
        case .upload where request.method == .put: break
        default: return
        }
        guard let name = route.name else { return }
        var side = namespace
        side.access = .write
        let image = try? side.image(name, registry: distribution.registry)
        auth.audit.record(actor: actor, action: action, repository: image?.repository, target: "\(image?.image ?? name) \(route.reference ?? "")",
                          client: context.remoteAddress?.ipAddress, result: String(response.status.code))
    }
}

extension DistributionRoute {
    /// The tag, digest or upload a route names, for logs.
    var reference: String? {
        switch self {
        case .manifest(_, let r): r
        case .blob(_, let d), .referrers(_, let d): d
        case .upload(_, let id): id
        default: nil
        }
    }
}
