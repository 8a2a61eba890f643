/// The front door's part of the configuration: extra listeners, routes and the containerd `ns` map.
public struct FrontDoorConfiguration: Sendable, Equatable {
    /// A certificate and key in PEM files; `names` (exact or `*.suffix`) default to the certificate's DNS names.
    public struct Certificate: Sendable, Equatable {
        public var cert: String
        public var key: String
        public var names: [String]?

        public init(cert: String, key: String, names: [String]? = nil) {
            self.cert = cert
            self.key = key
            self.names = names
        }
    }

    /// TLS on a listener: the first certificate is the default when SNI matches none.
    public struct TLS: Sendable, Equatable {
        public var certificates: [Certificate]

        public init(certificates: [Certificate]) {
            self.certificates = certificates
        }
    }

    /// An external registry a route forwards to, as a streaming reverse proxy.
    public struct Upstream: Sendable, Equatable {
        /// Base URL; the client's path is appended (`http://nexus:8081/repository/docker-repo/` + `v2/…`).
        public var url: String
        /// Send the client's `Host` (as the guide's `ProxyPreserveHost On` / `Host $host:$server_port`).
        public var preserveHost: Bool
        public var connectTimeoutSeconds: Int
        /// Longest silence while reading the upstream's answer (the guide's 300 s).
        public var readTimeoutSeconds: Int
        /// For an `https:` upstream: a PEM file of the CA certificates to trust instead of the system's (a registry
        /// with a certificate from an internal CA). Without it, the system's trust roots apply.
        public var caFile: String?

        public init(
            url: String, preserveHost: Bool = true, connectTimeoutSeconds: Int = 30, readTimeoutSeconds: Int = 300,
            caFile: String? = nil
        ) {
            self.url = url
            self.preserveHost = preserveHost
            self.connectTimeoutSeconds = connectTimeoutSeconds
            self.readTimeoutSeconds = readTimeoutSeconds
            self.caFile = caFile
        }

        /// An `https:` upstream: its certificate is checked (against `caFile` or the system's CAs).
        public var usesTLS: Bool { url.lowercased().hasPrefix("https:") }
    }

    /// Where a route sends Docker clients.
    public enum Endpoint: Sendable, Equatable {
        /// One repository for reads and writes.
        case repository(String)
        /// Reads from one repository, writes to another, on the same address.
        case split(pull: String, push: String)
        /// A streaming reverse proxy to an external registry.
        case upstream(Upstream)
        /// `{repo}.suffix`: the first DNS label names the repository.
        case subdomain
    }

    /// How a route matches requests.
    public enum Match: Sendable, Equatable, Hashable {
        /// Every request arriving on this listener port.
        case port(Int)
        /// One host name.
        case host(String)
        /// Any single label before `suffix` (stored with its leading dot: `.docker.example.com`).
        case wildcard(suffix: String)
    }

    public struct Route: Sendable, Equatable {
        public var match: Match
        public var endpoint: Endpoint
        /// For port routes: the address to listen on and its TLS.
        public var listen: BerthConfiguration.ListenAddress?
        public var tls: TLS?
        /// Where it was declared, for messages.
        public var line: Int?

        public init(match: Match, endpoint: Endpoint, listen: BerthConfiguration.ListenAddress? = nil, tls: TLS? = nil, line: Int? = nil) {
            self.match = match
            self.endpoint = endpoint
            self.listen = listen
            self.tls = tls
            self.line = line
        }
    }

    /// An extra listener not owned by one route (e.g. `:443` serving host routes by SNI).
    public struct Listener: Sendable, Equatable {
        public var listen: BerthConfiguration.ListenAddress
        public var tls: TLS?

        public init(listen: BerthConfiguration.ListenAddress, tls: TLS? = nil) {
            self.listen = listen
            self.tls = tls
        }
    }

    public var listeners: [Listener] = []
    public var routes: [Route] = []
    /// containerd mirror requests carry `?ns=<registry>`; this maps a registry name to a repository.
    public var nsMap: [String: String] = [:]

    public init() {}
}
