import BerthRegistry
import BerthStorage

/// Access control settings (`auth:`, `roles:`, `users:` and each repository's `anonymous_pull`).
/// Without an `auth:` section Berth serves without authentication, as the embedded defaults on loopback do.
public struct AuthConfiguration: Sendable, Equatable {
    /// A user declared in the configuration (upserted on start and on reload).
    public typealias DeclaredUser = UserRecord

    /// A service token declared in the configuration: its secret is `berth_<id>_<anything>`, given here only
    /// as the SHA-256 (hex) of the whole secret.
    public struct DeclaredToken: Sendable, Equatable {
        public var id: String
        public var name: String
        public var secretSHA256: String
        public var roles: [String]
        public var revoked: Bool

        public init(id: String, name: String, secretSHA256: String, roles: [String], revoked: Bool = false) {
            self.id = id
            self.name = name
            self.secretSHA256 = secretSHA256
            self.roles = roles
            self.revoked = revoked
        }
    }

    public var tokens: [DeclaredToken] = []
    /// Whether repositories allow anonymous pulls unless they say otherwise.
    public var anonymousPull = true
    /// Lifetime of Bearer tokens in seconds.
    public var tokenTTLSeconds = 300
    /// The `service` of the token realm.
    public var service = "berth"
    public var roles: [AccessPolicy.Role] = []
    public var users: [DeclaredUser] = []
    /// Per-repository `anonymous_pull`.
    public var anonymousPullByRepository: [String: Bool] = [:]
    /// Failed logins allowed per user and per client address within `throttleWindowSeconds`.
    public var throttleFailures = 5
    public var throttleWindowSeconds = 60

    public init() {}

    /// The policy for a set of repositories.
    public func policy(repositories: [String]) -> AccessPolicy {
        let anonymous = repositories.filter { anonymousPullByRepository[$0] ?? anonymousPull }
        return AccessPolicy(roles: roles, anonymousPull: Set(anonymous))
    }
}
