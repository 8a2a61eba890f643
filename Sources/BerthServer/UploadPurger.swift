import BerthRegistry
import Logging
import ServiceLifecycle

/// Removes abandoned upload sessions periodically (and once at start, for data a crash left behind).
struct UploadPurger: Service {
    let registry: Registry
    /// Sessions idle for longer than this many seconds are removed.
    let maxAge: Int64
    let interval: Duration
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await registry.purgeUploads(olderThan: maxAge)
                } catch {
                    logger.warning("upload purge failed", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: interval)
            }
        }
    }
}
