import BerthCore
import BerthRegistry
import BerthStorage
import BerthStorageFile
import BerthStoragePostgres
import BerthStorageS3
import BerthStorageSQLite
import AsyncHTTPClient
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals

/// Builds the pieces of a running Berth from a configuration; `berth serve` and the tests use the same builders.
public enum BerthApplication {
    /// Opens the storage back ends and the registry over them.
    public static func buildRegistry(_ config: BerthConfiguration, logger: Logger) async throws -> Registry {
        var closers: [@Sendable () async -> Void] = []
        do {
            let blobs = try await openBlobStore(config.blobs, logger: logger, closers: &closers)
            let metadata: any MetadataStore
            switch config.metadata {
            case .sqlite(let path):
                let folder = (path as NSString).deletingLastPathComponent
                if !folder.isEmpty {
                    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                }
                metadata = try SQLiteMetadataStore(path: path)
            case .postgres(let url, let maxConnections):
                do {
                    metadata = try await PostgresMetadataStore(url: url, maxConnections: maxConnections, logger: logger)
                } catch {
                    throw StorageStartError(message: "cannot open the PostgreSQL metadata store at \(PostgresMetadataStore.redacted(url)): \(error)")
                }
            }
            let registry = try await Registry(blobs: blobs, metadata: metadata, repositories: config.repositories, logger: logger)
            for close in closers { registry.onShutdown(close) }
            logger.notice("storage engines", metadata: [
                "blobs": "\(config.blobs)", "metadata": "\(config.metadata)",
                "repositories": "\(registry.repositoryNames.joined(separator: ","))",
            ])
            return registry
        } catch {
            for close in closers { await close() }
            throw error
        }
    }

    private static func openBlobStore(_ storage: BerthConfiguration.BlobStorage, logger: Logger, closers: inout [@Sendable () async -> Void]) async throws -> any BlobStore {
        switch storage {
        case .filesystem(let path):
            return try await FileBlobStore(root: path)
        case .s3(let settings):
            let configuration = settings.fillingCredentialsFromEnvironment(ProcessInfo.processInfo.environment)
            var clientConfiguration = HTTPClient.Configuration()
            clientConfiguration.timeout = .init(connect: .seconds(10), read: .seconds(120))
            clientConfiguration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
            // The store retries idempotent requests itself; AsyncHTTPClient's own retries would turn a refused
            // connection into a wait of the whole connect timeout.
            clientConfiguration.connectionPool.retryConnectionEstablishment = false
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration)
            closers.append { try? await client.shutdown() }
            let store = S3BlobStore(configuration: configuration, httpClient: client, logger: logger)
            do {
                // Created when missing, as a first start of a new installation expects.
                try await store.ensureBucket()
            } catch {
                throw StorageStartError(message: "cannot reach the S3 bucket '\(settings.bucket)' at \(settings.endpoint): \(error)")
            }
            return store
        }
    }

    /// Access control for the configuration, or nil when it has no `auth:` section.
    static func buildAuthenticator(_ config: BerthConfiguration, registry: Registry, logger: Logger) async throws -> Authenticator? {
        guard let auth = config.auth else { return nil }
        guard let store = registry.metadata as? any IdentityStore else {
            throw AuthError(message: "the metadata store keeps no users")
        }
        return try await Authenticator.open(auth, store: store, dataDirectory: config.dataDirectory, repositories: registry.repositoryNames, logger: logger)
    }

    /// The application of the main listener alone (in-process tests use it).
    public static func buildApplication(
        _ config: BerthConfiguration, registry: Registry, logger: Logger,
        onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) async throws -> some ApplicationProtocol {
        let upstream = UpstreamProxy(logger: logger)
        let authenticator = try await buildAuthenticator(config, registry: registry, logger: logger)
        let responder = BerthResponder(registry: registry, frontDoor: FrontDoor(config), upstream: upstream, authenticator: authenticator, logger: logger)
        return application(config.listen, server: .http1(configuration: http1(config)), responder: responder,
                           services: [upstream, purger(config, registry, logger)], onServerRunning: onServerRunning, logger: logger)
    }

    /// Every listener of the configuration in one service group, with graceful shutdown on SIGTERM/SIGINT and
    /// configuration reload on SIGHUP when `configPath` is given.
    public static func run(_ config: BerthConfiguration, registry: Registry, configPath: String?, dataDirectory: String, logger: Logger) async throws {
        let frontDoor = FrontDoor(config)
        let upstream = UpstreamProxy(logger: logger)
        let authenticator = try await buildAuthenticator(config, registry: registry, logger: logger)
        if authenticator == nil {
            logger.notice("access control is off (no auth: section): anyone who reaches Berth may push and pull")
        }
        let responder = BerthResponder(registry: registry, frontDoor: frontDoor, upstream: upstream, authenticator: authenticator, logger: logger)
        var services: [any Service] = [upstream, purger(config, registry, logger), StartupPages.Releaser(delay: .seconds(3), logger: logger)]
        services.append(application(config.listen, server: .http1(configuration: http1(config)), responder: responder, services: [], logger: logger))
        var stores: [Int: CertificateStore] = [:]
        let listeners = extraListeners(config)
        let date = HTTPDateHeader()
        if !listeners.isEmpty { services.append(date) }
        for (address, tls) in listeners {
            var server = HTTPServerBuilder.http1(configuration: http1(config))
            if let tls {
                let store = try CertificateStore(tls)
                stores[address.port] = store
                server = .http1OverTLS(configuration: http1(config), tlsConfiguration: store.serverConfiguration())
            }
            services.append(ExtraListener(address: address, server: server, responder: responder, date: date, logger: logger))
        }
        if let configPath {
            services.append(ConfigReloader(
                path: configPath, dataDirectory: dataDirectory, current: config, registry: registry, frontDoor: frontDoor,
                authenticator: authenticator, certificates: stores, logger: logger))
        }
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            await registry.shutdown()
            throw error
        }
        await registry.shutdown()
    }

    /// Listeners besides the main one: `listeners:` and routes with `listen`.
    static func extraListeners(_ config: BerthConfiguration) -> [(BerthConfiguration.ListenAddress, FrontDoorConfiguration.TLS?)] {
        config.frontDoor.listeners.map { ($0.listen, $0.tls) }
            + config.frontDoor.routes.compactMap { route in route.listen.map { ($0, route.tls) } }
    }

    /// Loads every certificate the configuration names, so `config check` finds what `serve` would.
    public static func checkCertificates(_ config: BerthConfiguration) throws {
        for (_, tls) in extraListeners(config) {
            if let tls { _ = try CertificateStore(tls) }
        }
    }

    private static func http1(_ config: BerthConfiguration) -> HTTP1Channel.Configuration {
        .init(additionalChannelHandlers: [ExpectContinueHandler()], idleTimeout: .seconds(Int64(config.idleTimeoutSeconds)))
    }

    private static func purger(_ config: BerthConfiguration, _ registry: Registry, _ logger: Logger) -> UploadPurger {
        UploadPurger(
            registry: registry, maxAge: Int64(config.uploadMaxAgeMinutes) * 60,
            interval: .seconds(min(3600, max(60, config.uploadMaxAgeMinutes * 60 / 4))), logger: logger)
    }

    private static func application(
        _ address: BerthConfiguration.ListenAddress, server: HTTPServerBuilder, responder: BerthResponder, services: [any Service],
        onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }, logger: Logger
    ) -> Application<BerthResponder> {
        Application(
            responder: responder,
            server: server,
            configuration: .init(address: .hostname(address.host, port: address.port), serverName: nil, backlog: 1024, reuseAddress: true),
            services: services,
            onServerRunning: onServerRunning,
            logger: logger)
    }
}

/// A storage engine named in the configuration could not be opened; the message says which and why.
public struct StorageStartError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
