import BerthCore
import BerthStorage
import BerthUpstream
import Logging
import NIOConcurrencyHelpers
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// The repository manager: repositories over one blob store and one metadata store.
///
/// All rules of the distribution spec that do not concern HTTP live here; handlers translate requests
/// into these calls and ``RegistryError``s into responses.
public final class Registry: Sendable {
    public let blobs: any BlobStore
    public let metadata: any MetadataStore
    let tracker = UploadTracker()
    let logger: Logger
    let repositoryTable: NIOLockedValueBox<[String: Entry]>
    private let shutdownHooks = NIOLockedValueBox<[@Sendable () async -> Void]>([])

    /// What serves a repository's content.
    enum Backing: Sendable {
        case hosted
        case proxy(ProxyRepository)
        case group(members: [String], writableMember: String?)
    }

    struct Entry: Sendable {
        var record: RepositoryRecord
        var backing: Backing
    }

    /// Creates the registry and makes sure the given repositories exist. Repositories recorded earlier but no
    /// longer configured stay served as what they were (hosted data is never dropped silently).
    public init(blobs: any BlobStore, metadata: any MetadataStore, repositories declared: [RepositoryDefinition], logger: Logger) async throws {
        self.blobs = blobs
        self.metadata = metadata
        self.logger = logger
        for definition in declared {
            try await metadata.ensureRepository(definition.record)
        }
        var table: [String: Entry] = [:]
        for record in try await metadata.repositories() where record.kind == .hosted {
            table[record.name] = Entry(record: record, backing: .hosted)
        }
        for definition in declared {
            table[definition.name] = Self.entry(definition, logger: logger)
        }
        repositoryTable = NIOLockedValueBox(table)
    }

    static func entry(_ definition: RepositoryDefinition, logger: Logger) -> Entry {
        switch definition.kind {
        case .hosted:
            return Entry(record: definition.record, backing: .hosted)
        case .proxy(let settings):
            return Entry(record: definition.record, backing: .proxy(ProxyRepository(name: definition.name, settings: settings, logger: logger)))
        case .group(let members, let writable):
            return Entry(record: definition.record, backing: .group(members: members, writableMember: writable))
        }
    }

    /// The repository named, or `NAME_UNKNOWN`.
    public func repository(_ name: String) throws(RegistryError) -> RepositoryRecord {
        try entry(name).record
    }

    func entry(_ name: String) throws(RegistryError) -> Entry {
        guard let entry = repositoryTable.withLockedValue({ $0[name] }) else {
            throw RegistryError(.nameUnknown, "repository not known to Berth", detail: String(name.prefix(100)))
        }
        return entry
    }

    /// Where reads of an image look, in order: the image itself, or a group's members (depth first, each once).
    func readSources(_ image: ImageRef) throws(RegistryError) -> [(ImageRef, Backing)] {
        var result: [(ImageRef, Backing)] = []
        var seen: Set<String> = []
        func visit(_ name: String) throws(RegistryError) {
            guard seen.insert(name).inserted else { return }
            let entry = try entry(name)
            switch entry.backing {
            case .group(let members, _):
                for member in members { try visit(member) }
            default:
                result.append((ImageRef(repository: name, image: image.image), entry.backing))
            }
        }
        try visit(image.repository)
        return result
    }

    /// Where writes to an image go: the image itself if hosted, a group's writable member; else refused.
    func writeTarget(_ image: ImageRef) throws(RegistryError) -> ImageRef {
        let entry = try entry(image.repository)
        switch entry.backing {
        case .hosted:
            return image
        case .proxy:
            throw RegistryError(.unsupported, "repository \(image.repository) is a proxy repository: it caches its remote and does not accept pushes or deletes")
        case .group(_, let writable?):
            return try writeTarget(ImageRef(repository: writable, image: image.image))
        case .group:
            throw RegistryError(.unsupported, "group repository \(image.repository) has no writable member: push to one of its hosted members")
        }
    }

    public var repositoryNames: [String] {
        repositoryTable.withLockedValue { Array($0.keys).sorted() }
    }

    /// Checks that `image` addresses an existing repository and a valid image name.
    public func validate(_ image: ImageRef) throws(RegistryError) {
        _ = try repository(image.repository)
        guard Names.isValidImageName(image.image) else {
            throw RegistryError(.nameInvalid, "invalid image name", detail: String(image.image.prefix(300)))
        }
    }

    static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec)
    }
}

extension Registry {
    /// Adds repositories declared by a reloaded configuration (existing ones are kept as they are).
    public func addRepositories(_ definitions: [RepositoryDefinition]) {
        Task { [metadata, logger] in
            for definition in definitions {
                do { try await metadata.ensureRepository(definition.record) } catch {
                    logger.error("cannot record repository", metadata: ["repository": "\(definition.name)", "error": "\(error)"])
                }
            }
        }
        repositoryTable.withLockedValue { table in
            for definition in definitions where table[definition.name] == nil { table[definition.name] = Self.entry(definition, logger: logger) }
        }
    }

    /// Closes upstream connections.
    public func shutdown() async {
        let proxies = repositoryTable.withLockedValue { table in
            table.values.compactMap { entry -> ProxyRepository? in
                if case .proxy(let p) = entry.backing { return p }
                return nil
            }
        }
        for proxy in proxies { await proxy.client.shutdown() }
        if let engine = blobs as? any StorageEngine { await engine.shutdown() }
        if let engine = metadata as? any StorageEngine { await engine.shutdown() }
        for hook in shutdownHooks.withLockedValue({ $0 }) { await hook() }
    }

    /// Runs `hook` at ``shutdown()`` (after the stores closed): releases what the builder opened for them.
    public func onShutdown(_ hook: @escaping @Sendable () async -> Void) {
        shutdownHooks.withLockedValue { $0.append(hook) }
    }

    /// One line per store on whether it answers: what `GET /service/rest/v1/status/check` reports.
    public func checkStorage() async -> [(name: String, error: String?)] {
        async let blobsError = Self.probe {
            if let engine = self.blobs as? any StorageEngine { try await engine.checkReachable() } else { _ = try await self.blobs.listUploads() }
        }
        async let metadataError = Self.probe {
            if let engine = self.metadata as? any StorageEngine { try await engine.checkReachable() } else { _ = try await self.metadata.repositories() }
        }
        return [("blob store", await blobsError), ("metadata store", await metadataError)]
    }

    private static func probe(_ check: @Sendable () async throws -> Void) async -> String? {
        do {
            try await check()
            return nil
        } catch {
            return "\(error)"
        }
    }
}
