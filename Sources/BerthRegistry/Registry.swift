import BerthCore
import BerthStorage
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
    let repositoryTable: NIOLockedValueBox<[String: RepositoryRecord]>

    /// Creates the registry and makes sure the given repositories exist.
    public init(blobs: any BlobStore, metadata: any MetadataStore, repositories declared: [RepositoryRecord], logger: Logger) async throws {
        self.blobs = blobs
        self.metadata = metadata
        self.logger = logger
        for record in declared {
            try await metadata.ensureRepository(record)
        }
        let all = try await metadata.repositories()
        repositoryTable = NIOLockedValueBox(Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) }))
    }

    /// The repository named, or `NAME_UNKNOWN`.
    public func repository(_ name: String) throws(RegistryError) -> RepositoryRecord {
        guard let record = repositoryTable.withLockedValue({ $0[name] }) else {
            throw RegistryError(.nameUnknown, "repository not known to Berth", detail: String(name.prefix(100)))
        }
        return record
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

    /// Checks that the repository accepts pushes and deletes.
    func requireWritable(_ image: ImageRef) throws(RegistryError) {
        let record = try repository(image.repository)
        guard record.kind == .hosted else {
            throw RegistryError(.unsupported, "repository \(record.name) is a \(record.kind.rawValue) repository and does not accept writes")
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
    public func addRepositories(_ records: [RepositoryRecord]) {
        Task { [metadata, logger] in
            for record in records {
                do { try await metadata.ensureRepository(record) } catch {
                    logger.error("cannot record repository", metadata: ["repository": "\(record.name)", "error": "\(error)"])
                }
            }
        }
        repositoryTable.withLockedValue { table in
            for record in records where table[record.name] == nil { table[record.name] = record }
        }
    }
}
