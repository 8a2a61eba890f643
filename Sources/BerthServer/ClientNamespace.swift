import BerthCore
import BerthRegistry
import BerthStorage

/// How the client of one request addresses images, so that names and URLs go back to it in its own terms.
///
/// This is the one place that builds the paths Berth emits (upload `Location`, pagination `Link`): they are
/// relative, which the distribution spec allows, so scheme, host and port stay whatever the client used.
struct ClientNamespace: Sendable, Equatable {
    enum Kind: Sendable, Equatable {
        /// `/v2/<repo>/<image>`: the first segment of the name picks the repository.
        case repositoryPath
        /// `/repository/<repo>/v2/<image>`: the repository is in the path prefix.
        case nexusPath(repository: String)
        /// `/v2/<image>` on an address a route binds to repositories (port, host, subdomain): reads go to
        /// `pull`, writes to `push` (the same repository unless the route splits them).
        case bound(pull: String, push: String)
    }

    /// Whether a request reads or writes; decided once per request from the route and method.
    enum Access: Sendable {
        case read, write
    }

    var kind: Kind
    /// What the current request does (set once per request by the controller).
    var access: Access = .read
    /// `X-Forwarded-Prefix` of a trusted proxy: what the client sees in place of Berth's own prefix.
    var forwardedPrefix: String? = nil

    /// The path up to and including `v2/`, as the client sends it.
    var v2Prefix: String {
        if let forwardedPrefix {
            return (forwardedPrefix.hasSuffix("/") ? String(forwardedPrefix.dropLast()) : forwardedPrefix) + "/v2/"
        }
        switch kind {
        case .repositoryPath, .bound: return "/v2/"
        case .nexusPath(let repository): return "/repository/\(repository)/v2/"
        }
    }

    /// The repository whose images `_catalog` lists; nil lists all.
    var catalogRepository: String? {
        switch kind {
        case .repositoryPath: nil
        case .nexusPath(let repository): repository
        case .bound(let pull, _): pull
        }
    }

    /// The Berth repository and image a client-side name stands for.
    func image(_ name: String, registry: Registry) throws(RegistryError) -> ImageRef {
        switch kind {
        case .nexusPath(let repository):
            return ImageRef(repository: repository, image: name)
        case .bound(let pull, let push):
            return ImageRef(repository: access == .read ? pull : push, image: name)
        case .repositoryPath:
            guard let slash = name.firstIndex(of: "/") else {
                // A bare repository name: say what is wrong in the client's terms.
                _ = try registry.repository(name)
                throw RegistryError(.nameInvalid, "image names on this address are <repository>/<image>, e.g. \(name)/team/app", detail: name)
            }
            return ImageRef(repository: String(name[..<slash]), image: String(name[name.index(after: slash)...]))
        }
    }

    /// The name of an image as this client addresses it.
    func clientName(_ image: ImageRef) -> String {
        switch kind {
        case .repositoryPath: image.description
        case .nexusPath, .bound: image.image
        }
    }

    /// The `last` of a catalog page, turned into the store's `repository/image` order key.
    func catalogKey(_ clientLast: String) -> String {
        switch kind {
        case .repositoryPath: clientLast
        case .nexusPath(let repository), .bound(let repository, _): "\(repository)/\(clientLast)"
        }
    }

    func blobPath(_ name: String, _ digest: Digest) -> String { "\(v2Prefix)\(name)/blobs/\(digest)" }
    func uploadPath(_ name: String, _ id: String) -> String { "\(v2Prefix)\(name)/blobs/uploads/\(id)" }
    func manifestPath(_ name: String, _ digest: Digest) -> String { "\(v2Prefix)\(name)/manifests/\(digest)" }
    func tagsPath(_ name: String) -> String { "\(v2Prefix)\(name)/tags/list" }
    var catalogPath: String { "\(v2Prefix)_catalog" }
}
