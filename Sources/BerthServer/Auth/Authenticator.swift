import BerthCore
import BerthRegistry
import BerthStorage
import Crypto
import Foundation
import HummingbirdBcrypt
import JWTKit
import Logging
import NIOConcurrencyHelpers

/// Who a request comes from: basic credentials (user password or service token), a Bearer token from the
/// realm, or nobody. Owns the token signing key, the failed-login throttle and the audit log.
final class Authenticator: Sendable {
    enum Outcome: Sendable {
        case anonymous
        case identity(AccessPolicy.Identity)
        case bearer(AccessPolicy.Identity, RegistryToken)
        /// Credentials were given and are wrong (or the token is invalid, expired, revoked).
        case refused(String)
        /// Too many failed logins: retry after this many seconds.
        case throttled(Int)
    }

    let configuration: AuthConfiguration
    let store: any IdentityStore
    private let policyBox: NIOLockedValueBox<AccessPolicy>
    private let keys: JWTKeyCollection
    private let users: Throttle
    private let clients: Throttle
    let audit: AuditLog
    /// Passwords already checked with bcrypt (keyed by a hash of name, password and stored hash) → expiry:
    /// bcrypt is deliberately slow, and clients that use basic auth send it with every request.
    private let checked = NIOLockedValueBox<[String: UInt64]>([:])
    private let logger: Logger
    /// A hash to check against for unknown users, so their login costs what a real one does.
    private let decoyHash: String

    static let servicePrefix = "berth_"

    private init(configuration: AuthConfiguration, store: any IdentityStore, policy: AccessPolicy, keys: JWTKeyCollection, audit: AuditLog, logger: Logger) {
        self.decoyHash = Bcrypt.hash(Self.randomHex(bytes: 8), cost: 12)
        self.configuration = configuration
        self.store = store
        self.policyBox = NIOLockedValueBox(policy)
        self.keys = keys
        self.users = Throttle(limit: configuration.throttleFailures, windowSeconds: configuration.throttleWindowSeconds)
        self.clients = Throttle(limit: configuration.throttleFailures * 4, windowSeconds: configuration.throttleWindowSeconds)
        self.audit = audit
        self.logger = logger
    }

    /// Opens the key, creates the built-in `admin` user on first start (its generated password goes to
    /// `<data>/admin.password`, never to the log) and records the users the configuration declares.
    static func open(_ configuration: AuthConfiguration, store: any IdentityStore, dataDirectory: String, repositories: [String], logger: Logger) async throws -> Authenticator {
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        // The signing key lives in the metadata store, so every node sharing it verifies every node's tokens.
        // A key file from an earlier version is adopted, so tokens already issued stay valid.
        let legacyKey = FileManager.default.contents(atPath: dataDirectory + "/token.key").flatMap { $0.count >= 32 ? [UInt8]($0) : nil }
        let secret = try await store.secret(
            named: "token-signing-key", proposed: legacyKey ?? SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) })
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)

        if try await store.user("admin") == nil {
            // Nodes starting together agree on one initial password through the store.
            let password = String(decoding: try await store.secret(
                named: "admin-initial-password", proposed: Array(randomHex(bytes: 12).utf8)), as: UTF8.self)
            try await store.putUser(UserRecord(name: "admin", passwordHash: Bcrypt.hash(password, cost: 12), roles: ["admin"]))
            let path = dataDirectory + "/admin.password"
            FileManager.default.createFile(atPath: path, contents: Data((password + "\n").utf8), attributes: [.posixPermissions: 0o600])
            logger.notice("created the admin user; its initial password is in the data folder", metadata: ["file": "\(path)"])
        }
        try await declare(configuration, in: store)
        let audit = AuditLog(path: dataDirectory + "/audit.log")
        return Authenticator(configuration: configuration, store: store, policy: configuration.policy(repositories: repositories),
                             keys: keys, audit: audit, logger: logger)
    }

    /// Records the users and service tokens a configuration declares (on start and on reload).
    static func declare(_ configuration: AuthConfiguration, in store: any IdentityStore) async throws {
        for user in configuration.users {
            try await store.putUser(user)
        }
        for token in configuration.tokens {
            let existing = try await store.serviceToken(id: token.id)
            try await store.putServiceToken(ServiceTokenRecord(
                id: token.id, name: token.name, secretHash: token.secretSHA256, roles: token.roles,
                createdAt: existing?.createdAt ?? Int64(Date().timeIntervalSince1970), revoked: token.revoked))
        }
    }

    var policy: AccessPolicy { policyBox.withLockedValue { $0 } }

    func replacePolicy(_ policy: AccessPolicy) {
        policyBox.withLockedValue { $0 = policy }
    }

    // MARK: Authentication

    /// Reads the `Authorization` header.
    func authenticate(_ authorization: String?, client: String?) async -> Outcome {
        guard let authorization, let space = authorization.firstIndex(of: " ") else { return .anonymous }
        let scheme = authorization[..<space].lowercased()
        let value = authorization[authorization.index(after: space)...].trimmingBlanks()
        switch scheme {
        case "bearer":
            do {
                let token = try await keys.verify(value, as: RegistryToken.self)
                guard token.aud.value.contains(configuration.service) else { return .refused("token for another service") }
                let kind: AccessPolicy.Identity.Kind = token.sub.value == AccessPolicy.Identity.anonymous.name ? .anonymous : .user
                return .bearer(AccessPolicy.Identity(kind: kind, name: token.sub.value, roles: []), token)
            } catch {
                return .refused("invalid or expired token")
            }
        case "basic":
            guard let decoded = Data(base64Encoded: value).map({ String(decoding: $0, as: UTF8.self) }),
                  let colon = decoded.firstIndex(of: ":")
            else { return .refused("malformed basic credentials") }
            return await login(String(decoded[..<colon]), password: String(decoded[decoded.index(after: colon)...]), client: client)
        default:
            return .refused("unsupported authorization scheme")
        }
    }

    /// Checks a user's password or a service token, with the failed-login throttle.
    func login(_ name: String, password: String, client: String?) async -> Outcome {
        let userKey = "user:" + name
        let clientKey = "client:" + (client ?? "-")
        if let wait = users.retryAfter(userKey) ?? clients.retryAfter(clientKey) {
            return .throttled(wait)
        }
        let identity: AccessPolicy.Identity?
        do {
            identity = password.hasPrefix(Self.servicePrefix) ? try await serviceToken(password) : try await user(name, password: password)
        } catch {
            logger.error("identity store failed", metadata: ["error": "\(error)"])
            return .refused("identity store unavailable")
        }
        guard let identity else {
            users.recordFailure(userKey)
            clients.recordFailure(clientKey)
            audit.record(actor: name, action: "login", client: client, result: "failed")
            return .refused("wrong user name or password")
        }
        users.reset(userKey)
        return .identity(identity)
    }

    private func user(_ name: String, password: String) async throws -> AccessPolicy.Identity? {
        guard let record = try await store.user(name) else {
            // Spend the same time as a real check, so user names cannot be probed by timing.
            _ = Bcrypt.verify(password, hash: decoyHash)
            return nil
        }
        let key = Self.sha256Hex(name + "\u{0}" + password + "\u{0}" + record.passwordHash)
        let now = DispatchTime.now().uptimeNanoseconds
        if let expiry = checked.withLockedValue({ $0[key] }), expiry > now {
            return AccessPolicy.Identity(kind: .user, name: name, roles: record.roles)
        }
        guard Bcrypt.verify(password, hash: record.passwordHash) else { return nil }
        checked.withLockedValue { table in
            if table.count > 10_000 { table = [:] }
            table[key] = now + 60_000_000_000
        }
        return AccessPolicy.Identity(kind: .user, name: name, roles: record.roles)
    }

    /// `berth_<id>_<secret>`: looked up by id, compared by SHA-256 in constant time.
    private func serviceToken(_ secret: String) async throws -> AccessPolicy.Identity? {
        let parts = secret.dropFirst(Self.servicePrefix.count).split(separator: "_", maxSplits: 1)
        guard parts.count == 2, let record = try await store.serviceToken(id: String(parts[0])), !record.revoked else { return nil }
        guard Self.constantTimeEqual(Self.sha256Hex(secret), record.secretHash) else { return nil }
        return AccessPolicy.Identity(kind: .serviceToken, name: "token:" + record.name, roles: record.roles)
    }

    /// Roles of the subject of a Bearer token (for decisions a token's access list does not cover).
    func roles(of subject: String) async -> [String] {
        if subject.hasPrefix("token:") { return [] }
        return (try? await store.user(subject))?.roles ?? []
    }

    // MARK: Tokens

    /// Signs a token for `identity` granting exactly `access`.
    func issue(for identity: AccessPolicy.Identity, access: [RegistryToken.Access]) async throws -> (token: String, expiresIn: Int) {
        let now = Date()
        let claims = RegistryToken(
            iss: .init(value: RegistryToken.issuer), sub: .init(value: identity.name), aud: .init(value: [configuration.service]),
            exp: .init(value: now.addingTimeInterval(TimeInterval(configuration.tokenTTLSeconds))), iat: .init(value: now),
            jti: .init(value: Self.randomHex(bytes: 16)), access: access)
        return (try await keys.sign(claims), configuration.tokenTTLSeconds)
    }

    /// Signs arbitrary claims (tests make expired and foreign tokens with it).
    func signForTests(_ claims: RegistryToken) async throws -> String {
        try await keys.sign(claims)
    }

    // MARK: Helpers

    static func randomHex(bytes: Int) -> String {
        Hex.random(bytes: bytes)
    }

    static func sha256Hex(_ text: String) -> String {
        Digest.of(Array(text.utf8)).hex
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for i in 0..<x.count { difference |= x[i] ^ y[i] }
        return difference == 0
    }
}

struct AuthError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
