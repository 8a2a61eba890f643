import BerthRegistry
import BerthStorage
import BerthStoragePostgres
import BerthStorageSQLite
import Foundation
import HummingbirdBcrypt
import Logging

/// User and service-token administration for the command line (`berth user …`, `berth token …`), working
/// on the same database as the server; every change goes to the audit log.
public struct Administration: Sendable {
    let store: any IdentityStore
    let audit: AuditLog
    let knownRoles: Set<String>

    /// Opens the metadata database of a configuration (the SQLite file, or the PostgreSQL every node shares).
    public static func open(_ config: BerthConfiguration) async throws -> Administration {
        let store: any IdentityStore
        switch config.metadata {
        case .sqlite(let path):
            guard FileManager.default.fileExists(atPath: path) else {
                throw AuthError(message: "no Berth database at \(path); start berth serve with the same --data/--config once first")
            }
            store = try SQLiteMetadataStore(path: path)
        case .postgres(let url, _):
            var logger = Logger(label: "berth")
            logger.logLevel = .warning
            store = try await PostgresMetadataStore(url: url, maxConnections: 2, logger: logger)
        }
        var roles: Set<String> = [AccessPolicy.adminRole.name]
        for role in config.auth?.roles ?? [] { roles.insert(role.name) }
        return Administration(store: store, audit: AuditLog(path: config.dataDirectory + "/audit.log"), knownRoles: roles)
    }

    /// A bcrypt hash for a `users:` entry of the configuration.
    public static func hash(_ password: String) -> String {
        Bcrypt.hash(password, cost: 12)
    }

    private func checkRoles(_ roles: [String]) throws {
        for role in roles where !knownRoles.contains(role) {
            throw AuthError(message: "role '\(role)' is not declared in the configuration's roles (known: \(knownRoles.sorted().joined(separator: ", ")))")
        }
    }

    private func record(_ action: String, _ target: String) {
        audit.record(actor: "cli:" + NSUserName(), action: action, target: target, client: "local", result: "ok")
    }

    public func addUser(_ name: String, password: String, roles: [String]) async throws {
        guard !name.isEmpty, !name.contains(":") else { throw AuthError(message: "user names are non-empty and have no ':'") }
        try checkRoles(roles)
        guard try await store.user(name) == nil else { throw AuthError(message: "user '\(name)' exists; use berth user passwd") }
        try await store.putUser(UserRecord(name: name, passwordHash: Self.hash(password), roles: roles))
        record("user-add", name)
    }

    public func setPassword(_ name: String, password: String) async throws {
        guard var user = try await store.user(name) else { throw AuthError(message: "no user '\(name)'") }
        user.passwordHash = Self.hash(password)
        try await store.putUser(user)
        record("user-passwd", name)
    }

    public func users() async throws -> [(name: String, roles: [String])] {
        try await store.users().map { ($0.name, $0.roles) }
    }

    public func removeUser(_ name: String) async throws {
        guard try await store.deleteUser(name) else { throw AuthError(message: "no user '\(name)'") }
        record("user-rm", name)
    }

    /// Creates a service token and returns its secret, which is shown once and stored only as a hash.
    public func createToken(_ name: String, roles: [String]) async throws -> (id: String, secret: String) {
        try checkRoles(roles)
        let id = Authenticator.randomHex(bytes: 6)
        let secret = Authenticator.servicePrefix + id + "_" + Authenticator.randomHex(bytes: 20)
        try await store.putServiceToken(ServiceTokenRecord(
            id: id, name: name, secretHash: Authenticator.sha256Hex(secret), roles: roles, createdAt: Int64(Date().timeIntervalSince1970)))
        record("token-create", "\(id) \(name)")
        return (id, secret)
    }

    public func tokens() async throws -> [(id: String, name: String, roles: [String], revoked: Bool)] {
        try await store.serviceTokens().map { ($0.id, $0.name, $0.roles, $0.revoked) }
    }

    public func revokeToken(_ id: String) async throws {
        guard try await store.revokeServiceToken(id: id) else { throw AuthError(message: "no active token '\(id)'") }
        record("token-revoke", id)
    }
}
