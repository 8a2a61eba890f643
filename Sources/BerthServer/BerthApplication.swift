import BerthCore
import BerthRegistry
import BerthStorage
import BerthStorageFile
import BerthStorageSQLite
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// Builds the pieces of a running Berth from a configuration; `berth serve` and the tests use the same builders.
public enum BerthApplication {
    /// Opens the storage back ends and the registry over them.
    public static func buildRegistry(_ config: BerthConfiguration, logger: Logger) async throws -> Registry {
        let blobs: any BlobStore
        switch config.blobs {
        case .filesystem(let path):
            blobs = try await FileBlobStore(root: path)
        }
        let metadata: any MetadataStore
        switch config.metadata {
        case .sqlite(let path):
            let folder = (path as NSString).deletingLastPathComponent
            if !folder.isEmpty {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            }
            metadata = try SQLiteMetadataStore(path: path)
        }
        let repositories = config.repositories.map { RepositoryRecord(name: $0.name, kind: $0.kind) }
        let registry = try await Registry(blobs: blobs, metadata: metadata, repositories: repositories, logger: logger)
        logger.info("storage ready", metadata: [
            "blobs": "\(config.blobs)", "metadata": "\(config.metadata)",
            "repositories": "\(registry.repositoryNames.joined(separator: ","))",
        ])
        return registry
    }

    /// The HTTP application of the main listener.
    public static func buildApplication(
        _ config: BerthConfiguration, registry: Registry, logger: Logger,
        onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let responder = BerthResponder(registry: registry, logger: logger)
        let purger = UploadPurger(
            registry: registry, maxAge: Int64(config.uploadMaxAgeMinutes) * 60,
            interval: .seconds(min(3600, max(60, config.uploadMaxAgeMinutes * 60 / 4))), logger: logger)
        return Application(
            responder: responder,
            server: .http1(configuration: .init(
                additionalChannelHandlers: [ExpectContinueHandler()],
                idleTimeout: .seconds(Int64(config.idleTimeoutSeconds)))),
            configuration: .init(
                address: .hostname(config.listen.host, port: config.listen.port),
                serverName: nil,
                backlog: 1024,
                reuseAddress: true),
            services: [purger],
            onServerRunning: onServerRunning,
            logger: logger)
    }
}
