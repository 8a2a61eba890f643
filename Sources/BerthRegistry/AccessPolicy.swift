/// What an identity may do, per repository: the access-control decisions, with no HTTP in them.
public struct AccessPolicy: Sendable, Equatable {
    public enum Privilege: String, Sendable, CaseIterable, Comparable {
        case read, write, delete, admin

        public static func < (a: Privilege, b: Privilege) -> Bool {
            allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
        }
    }

    /// Privileges on the repositories whose names match one of `repositories` (`*` matches any run of characters).
    public struct Grant: Sendable, Equatable {
        public var repositories: [String]
        public var privileges: Set<Privilege>

        public init(repositories: [String], privileges: Set<Privilege>) {
            self.repositories = repositories
            self.privileges = privileges
        }
    }

    public struct Role: Sendable, Equatable {
        public var name: String
        public var grants: [Grant]

        public init(name: String, grants: [Grant]) {
            self.name = name
            self.grants = grants
        }
    }

    /// Who is asking.
    public struct Identity: Sendable, Equatable {
        public enum Kind: Sendable, Equatable {
            case anonymous, user, serviceToken
        }

        public var kind: Kind
        public var name: String
        public var roles: [String]

        public init(kind: Kind, name: String, roles: [String]) {
            self.kind = kind
            self.name = name
            self.roles = roles
        }

        public static let anonymous = Identity(kind: .anonymous, name: "anonymous", roles: [])
    }

    /// The built-in role of the `admin` user: everything, everywhere.
    public static let adminRole = Role(name: "admin", grants: [Grant(repositories: ["*"], privileges: [.admin])])

    public var roles: [String: Role]
    /// Repositories anonymous clients may pull from (writes are never anonymous).
    public var anonymousPull: Set<String>

    public init(roles: [Role], anonymousPull: Set<String>) {
        var table = Dictionary(uniqueKeysWithValues: roles.map { ($0.name, $0) })
        table[Self.adminRole.name] = Self.adminRole
        self.roles = table
        self.anonymousPull = anonymousPull
    }

    /// Whether `identity` holds `privilege` on `repository`. `admin` implies every privilege; `write` and
    /// `delete` do not imply `read` (a CI token may push without being able to pull).
    public func allows(_ identity: Identity, _ privilege: Privilege, on repository: String) -> Bool {
        if identity.kind == .anonymous {
            return privilege == .read && anonymousPull.contains(repository)
        }
        for roleName in identity.roles {
            guard let role = roles[roleName] else { continue }
            for grant in role.grants where grant.privileges.contains(privilege) || grant.privileges.contains(.admin) {
                if grant.repositories.contains(where: { Self.matches($0, repository) }) { return true }
            }
        }
        // What anonymous clients may do, a logged-in one may do too.
        return privilege == .read && anonymousPull.contains(repository)
    }

    /// Glob match with `*` only.
    static func matches(_ pattern: String, _ name: String) -> Bool {
        let p = Array(pattern.utf8), n = Array(name.utf8)
        var pi = 0, ni = 0, star = -1, mark = 0
        while ni < n.count {
            if pi < p.count, p[pi] == UInt8(ascii: "*") {
                star = pi
                mark = ni
                pi += 1
            } else if pi < p.count, p[pi] == n[ni] {
                pi += 1
                ni += 1
            } else if star >= 0 {
                pi = star + 1
                mark += 1
                ni = mark
            } else {
                return false
            }
        }
        while pi < p.count, p[pi] == UInt8(ascii: "*") { pi += 1 }
        return pi == p.count
    }
}
