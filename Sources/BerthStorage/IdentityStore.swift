/// A user who can log in: a name, a bcrypt hash, and the roles that grant privileges.
public struct UserRecord: Sendable, Equatable {
    public var name: String
    public var passwordHash: String
    public var roles: [String]

    public init(name: String, passwordHash: String, roles: [String]) {
        self.name = name
        self.passwordHash = passwordHash
        self.roles = roles
    }
}

/// A long-lived secret for CI, usable as a basic-auth password; only its SHA-256 is stored.
public struct ServiceTokenRecord: Sendable, Equatable {
    public var id: String
    public var name: String
    public var secretHash: String
    public var roles: [String]
    public var createdAt: Int64
    public var revoked: Bool

    public init(id: String, name: String, secretHash: String, roles: [String], createdAt: Int64, revoked: Bool = false) {
        self.id = id
        self.name = name
        self.secretHash = secretHash
        self.roles = roles
        self.createdAt = createdAt
        self.revoked = revoked
    }
}

/// Users and service tokens. Implemented by the metadata back ends.
public protocol IdentityStore: Sendable {
    func user(_ name: String) async throws -> UserRecord?
    func users() async throws -> [UserRecord]
    /// Inserts or replaces a user.
    func putUser(_ user: UserRecord) async throws
    func deleteUser(_ name: String) async throws -> Bool
    func serviceToken(id: String) async throws -> ServiceTokenRecord?
    func serviceTokens() async throws -> [ServiceTokenRecord]
    /// Inserts or replaces a service token.
    func putServiceToken(_ token: ServiceTokenRecord) async throws
    func revokeServiceToken(id: String) async throws -> Bool
    /// A named secret every node shares (the token signing key): stores `proposed` when the name is new and
    /// returns what is stored, so nodes starting together agree on one value.
    func secret(named name: String, proposed: [UInt8]) async throws -> [UInt8]
}
