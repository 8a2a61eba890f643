import BerthCore
import BerthStorage
import BerthStorageS3

/// The object store as the registry sees it: health check, and presigned redirects when configured.
extension S3BlobStore: StorageEngine, BlobRedirecting {
    public func redirectURL(for digest: Digest) -> String? {
        presignedURL(for: digest)
    }

    /// The HTTP client belongs to whoever built the store; it is closed by that owner.
    public func shutdown() async {}
}
