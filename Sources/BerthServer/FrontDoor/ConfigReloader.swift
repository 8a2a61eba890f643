import BerthRegistry
import BerthStorage
import Logging
import ServiceLifecycle
import UnixSignals

/// Re-reads the configuration on SIGHUP and applies routes, trusted proxies, certificates and new
/// repositories without dropping connections. A bad file, or one that changes the set of listeners or the
/// storage, is refused with its reason and the running configuration stays.
struct ConfigReloader: Service {
    let path: String
    /// The `--data` folder of the running process: storage defaults of the reloaded file resolve against it.
    let dataDirectory: String
    let current: BerthConfiguration
    let registry: Registry
    let frontDoor: FrontDoor
    let authenticator: Authenticator?
    let certificates: [Int: CertificateStore]
    let logger: Logger

    func run() async throws {
        var active = current
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            do {
                let next = try await reload(from: active)
                active = next
                logger.info("configuration reloaded", metadata: ["file": "\(path)", "routes": "\(next.frontDoor.routes.count)"])
            } catch {
                logger.error("configuration reload refused; the running configuration stays", metadata: ["reason": "\(error)"])
            }
        }
    }

    private func reload(from active: BerthConfiguration) async throws -> BerthConfiguration {
        var next = try ConfigurationLoader.load(path: path, dataDirectory: dataDirectory)
        // Command-line overrides of the running process stay in force.
        next.listen = active.listen
        guard (next.auth == nil) == (authenticator == nil) else {
            throw ReloadError(reason: "turning access control on or off needs a restart")
        }
        guard next.blobs == active.blobs, next.metadata == active.metadata else {
            throw ReloadError(reason: "storage settings changed; restart berth to apply them")
        }
        let before = BerthApplication.extraListeners(active).map { "\($0.0)|\($0.1 != nil)" }.sorted()
        let after = BerthApplication.extraListeners(next).map { "\($0.0)|\($0.1 != nil)" }.sorted()
        guard before == after else {
            throw ReloadError(reason: "the set of listening ports changed; restart berth to open or close ports")
        }
        // Load every certificate before touching anything, so a bad file changes nothing.
        var newTLS: [Int: FrontDoorConfiguration.TLS] = [:]
        for (address, tls) in BerthApplication.extraListeners(next) {
            if let tls {
                _ = try CertificateStore(tls)
                newTLS[address.port] = tls
            }
        }
        for (port, tls) in newTLS { try certificates[port]?.replace(tls) }
        registry.addRepositories(next.repositories)
        if let authenticator, let auth = next.auth {
            try await Authenticator.declare(auth, in: authenticator.store)
            authenticator.replacePolicy(auth.policy(repositories: registry.repositoryNames))
        }
        frontDoor.replace(with: next)
        return next
    }
}

struct ReloadError: Error, CustomStringConvertible {
    var reason: String
    var description: String { reason }
}
