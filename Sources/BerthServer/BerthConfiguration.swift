import BerthRegistry
import BerthStorage
import BerthStoragePostgres
import BerthStorageS3
import BerthUpstream

/// Everything `berth serve` needs, from the command line, a config file, or the embedded defaults.
public struct BerthConfiguration: Sendable, Equatable {
    /// A host and port to listen on.
    public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
        public var host: String
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        /// Parses `HOST:PORT`, `[V6]:PORT` or `:PORT` (all interfaces).
        public init?(parsing text: String) {
            var hostPart: Substring
            let portPart: Substring
            if text.hasPrefix("[") {
                guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
                hostPart = text[text.index(after: text.startIndex)..<close]
                portPart = text[text.index(close, offsetBy: 2)...]
            } else {
                guard let colon = text.lastIndex(of: ":") else { return nil }
                hostPart = text[..<colon]
                portPart = text[text.index(after: colon)...]
                if hostPart.contains(":") { return nil }
            }
            if hostPart.isEmpty { hostPart = "0.0.0.0" }
            guard let port = Int(portPart), (0...65535).contains(port) else { return nil }
            self.init(host: String(hostPart), port: port)
        }

        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    public enum BlobStorage: Sendable, Equatable, CustomStringConvertible {
        case filesystem(path: String)
        /// Empty credentials and region are taken from the `AWS_*` environment variables at start.
        case s3(S3BlobStore.Configuration)

        public var description: String {
            switch self {
            case .filesystem(let path): "filesystem \(path)"
            case .s3(let s): "s3 \(s.endpoint) bucket \(s.bucket)" + (s.prefix.isEmpty ? "" : " prefix \(s.prefix)")
            }
        }
    }


    public enum MetadataStorage: Sendable, Equatable, CustomStringConvertible {
        case sqlite(path: String)
        /// `url`: `postgres://user:password@host:port/database`.
        case postgres(url: String, maxConnections: Int)

        public var description: String {
            switch self {
            case .sqlite(let path): "sqlite \(path)"
            case .postgres(let url, let max): "postgres \(PostgresMetadataStore.redacted(url)) (pool of \(max))"
            }
        }
    }

    /// A repository declared in the configuration.
    public typealias Repository = RepositoryDefinition

    public var listen: ListenAddress
    public var publicURL: String?
    public var trustedProxies: [String]
    public var blobs: BlobStorage
    public var metadata: MetadataStorage
    public var repositories: [Repository]
    /// Upload sessions idle for longer than this many minutes are removed.
    public var uploadMaxAgeMinutes: Int
    /// Seconds a connection may stay silent before it is closed.
    public var idleTimeoutSeconds: Int
    /// Extra listeners, routes and the containerd `ns` map.
    public var frontDoor = FrontDoorConfiguration()
    /// Access control; nil serves without authentication.
    public var auth: AuthConfiguration?
    /// The `--data` folder: the token key, the initial admin password and the audit log live here.
    public var dataDirectory = BerthConfiguration.defaultDataDirectory

    public static let defaultListen = ListenAddress(host: "127.0.0.1", port: 8081)
    public static let defaultDataDirectory = "./berth-data"

    /// The repositories of the embedded defaults: the guide's hierarchy for one team.
    public static let defaultRepositories: [Repository] = [
        Repository(name: "docker-hosted", kind: .hosted),
        Repository(name: "docker-hub", kind: .proxy(ProxySettings(client: .init(remote: "https://registry-1.docker.io")))),
        Repository(name: "docker", kind: .group(members: ["docker-hosted", "docker-hub"], writableMember: "docker-hosted")),
    ]

    /// The embedded defaults: `127.0.0.1:8081`, data in `dataDirectory`, a hosted repository `docker-hosted`, a
    /// proxy of Docker Hub `docker-hub`, and a group `docker` of both that pushes to `docker-hosted`.
    public static func defaults(dataDirectory: String = defaultDataDirectory) -> BerthConfiguration {
        BerthConfiguration(
            listen: defaultListen, publicURL: nil, trustedProxies: [],
            blobs: .filesystem(path: dataDirectory + "/blobs"),
            metadata: .sqlite(path: dataDirectory + "/berth.db"),
            repositories: defaultRepositories,
            uploadMaxAgeMinutes: 1440, idleTimeoutSeconds: 300, dataDirectory: dataDirectory)
    }
}
