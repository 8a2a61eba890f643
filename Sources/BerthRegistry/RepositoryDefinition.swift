import BerthStorage
import BerthUpstream

/// A repository as configured: its kind and the settings that kind needs.
public struct RepositoryDefinition: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case hosted
        case proxy(ProxySettings)
        /// Ordered members; pushes go to `writableMember` (a hosted member) or are refused.
        case group(members: [String], writableMember: String?)
    }

    public var name: String
    public var kind: Kind

    public init(name: String, kind: Kind) {
        self.name = name
        self.kind = kind
    }

    public var record: RepositoryRecord {
        switch kind {
        case .hosted: RepositoryRecord(name: name, kind: .hosted)
        case .proxy: RepositoryRecord(name: name, kind: .proxy)
        case .group: RepositoryRecord(name: name, kind: .group)
        }
    }
}

/// How a proxy repository talks to and caches its remote.
public struct ProxySettings: Sendable, Equatable {
    public var client: RegistryClient.Configuration
    /// A cached tag is served without asking the upstream for this many seconds.
    public var metadataMaxAge: Int64
    /// A tag or digest the upstream did not have is not asked for again for this many seconds.
    public var negativeCacheTTL: Int64
    /// Stop contacting an upstream after repeated failures, for a growing while.
    public var autoBlock: Bool

    public init(client: RegistryClient.Configuration, metadataMaxAge: Int64 = 1440 * 60, negativeCacheTTL: Int64 = 60 * 60, autoBlock: Bool = true) {
        self.client = client
        self.metadataMaxAge = metadataMaxAge
        self.negativeCacheTTL = negativeCacheTTL
        self.autoBlock = autoBlock
    }
}
