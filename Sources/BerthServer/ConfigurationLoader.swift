import BerthCore
import BerthRegistry
import BerthStorage
import BerthStorageS3
import BerthUpstream
import Foundation
import NIOCore
import NIOSSL
import Yams

/// A configuration problem, located in its file.
public struct ConfigurationError: Error, CustomStringConvertible, Equatable {
    public init(file: String, line: Int? = nil, column: Int? = nil, reason: String) {
        self.file = file
        self.line = line
        self.column = column
        self.reason = reason
    }

    public var file: String
    public var line: Int?
    public var column: Int?
    public var reason: String

    public var description: String {
        switch (line, column) {
        case (let l?, let c?): "\(file):\(l):\(c): \(reason)"
        case (let l?, nil): "\(file):\(l): \(reason)"
        default: "\(file): \(reason)"
        }
    }
}

/// Reads a YAML configuration file into ``BerthConfiguration``, refusing unknown keys and bad values with
/// the file, line and reason.
public enum ConfigurationLoader {
    /// Loads `path`; `dataDirectory` gives the storage defaults the file does not override.
    public static func load(path: String, dataDirectory: String = BerthConfiguration.defaultDataDirectory) throws(ConfigurationError) -> BerthConfiguration {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigurationError(file: path, reason: "cannot read the file: \(error.localizedDescription)")
        }
        return try parse(text, file: path, dataDirectory: dataDirectory)
    }

    public static func parse(_ text: String, file: String, dataDirectory: String = BerthConfiguration.defaultDataDirectory) throws(ConfigurationError) -> BerthConfiguration {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw yamlError(error, file: file)
        } catch {
            throw ConfigurationError(file: file, reason: "not valid YAML: \(error)")
        }
        var config = BerthConfiguration.defaults(dataDirectory: dataDirectory)
        guard let root else { return config }
        let reader = Reader(file: file)
        let top = try reader.mapping(root, "the configuration")
        var routesNode: Node?
        var nsMapNode: Node?
        try reader.allowOnly(top, ["listen", "public_url", "trusted_proxies", "storage", "repositories", "uploads", "server", "auth", "roles", "users", "service_tokens", "listeners", "routes", "ns_map"])
        var anonymousPull: [String: Bool] = [:]
        var authNode: Node?
        var rolesNode: Node?
        var usersNode: Node?
        var tokensNode: Node?
        for (key, value) in top {
            switch key.string ?? "" {
            case "listen":
                let text = try reader.string(value, "listen")
                guard let address = BerthConfiguration.ListenAddress(parsing: text) else {
                    throw reader.error(value, "listen must be HOST:PORT, e.g. 127.0.0.1:8081")
                }
                config.listen = address
            case "public_url":
                let text = try reader.string(value, "public_url")
                guard let url = URL(string: text), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
                    throw reader.error(value, "public_url must be an http or https URL")
                }
                config.publicURL = text
            case "trusted_proxies":
                config.trustedProxies = try reader.sequence(value, "trusted_proxies").map { node throws(ConfigurationError) in
                    let cidr = try reader.string(node, "a trusted proxy")
                    guard Self.isCIDR(cidr) else { throw reader.error(node, "'\(cidr)' is not an address or CIDR block") }
                    return cidr
                }
            case "storage":
                try storage(value, reader, into: &config)
            case "repositories":
                config.repositories = try repositories(value, reader, anonymousPull: &anonymousPull)
            case "auth":
                authNode = value
            case "roles":
                rolesNode = value
            case "users":
                usersNode = value
            case "service_tokens":
                tokensNode = value
            case "uploads":
                let map = try reader.mapping(value, "uploads")
                try reader.allowOnly(map, ["max_age"])
                if let age = map["max_age"] {
                    config.uploadMaxAgeMinutes = try reader.integer(age, "uploads.max_age", min: 1)
                }
            case "server":
                let map = try reader.mapping(value, "server")
                try reader.allowOnly(map, ["idle_timeout"])
                if let timeout = map["idle_timeout"] {
                    config.idleTimeoutSeconds = try reader.integer(timeout, "server.idle_timeout", min: 1)
                }
            case "listeners":
                config.frontDoor.listeners = try reader.sequence(value, "listeners").map { node throws(ConfigurationError) in
                    let m = try reader.mapping(node, "a listener")
                    try reader.allowOnly(m, ["listen", "tls"])
                    guard let listen = m["listen"] else { throw reader.error(node, "a listener needs listen: HOST:PORT") }
                    return .init(listen: try address(listen, reader), tls: try m["tls"].map { n throws(ConfigurationError) in try tls(n, reader) })
                }
            case "routes":
                routesNode = value
            case "ns_map":
                let m = try reader.mapping(value, "ns_map")
                for (k, v) in m {
                    config.frontDoor.nsMap[try reader.string(k, "a registry name").lowercased()] = try reader.string(v, "a repository name")
                }
                nsMapNode = value
            default:
                throw reader.error(key, "'\(key.string ?? "")' is not supported by this version of Berth yet")
            }
        }
        if authNode != nil || rolesNode != nil || usersNode != nil || tokensNode != nil || !anonymousPull.isEmpty {
            guard let authNode else {
                throw reader.error(rolesNode ?? usersNode ?? tokensNode ?? root, "roles, users, service_tokens and anonymous_pull need an auth: section (which turns access control on)")
            }
            config.auth = try auth(authNode, roles: rolesNode, users: usersNode, anonymousPull: anonymousPull, reader)
            if let tokensNode {
                config.auth!.tokens = try serviceTokens(tokensNode, roles: Set(config.auth!.roles.map(\.name) + ["admin"]), reader)
            }
        }
        // Routes last: they refer to repositories and ports declared anywhere in the file.
        if let routesNode {
            config.frontDoor.routes = try routes(routesNode, reader, config: config)
        }
        let known = Set(config.repositories.map(\.name))
        if let nsMapNode, case .mapping(let m) = nsMapNode {
            for (_, v) in m where !known.contains(v.string ?? "") {
                throw reader.error(v, "ns_map names repository '\(v.string ?? "")', which is not declared in repositories")
            }
        }
        var listenerPorts: Set<Int> = [config.listen.port]
        for listener in config.frontDoor.listeners where !listenerPorts.insert(listener.listen.port).inserted {
            throw ConfigurationError(file: file, reason: "port \(listener.listen.port) has two listeners (listen and listeners must use distinct ports)")
        }
        return config
    }

    private static func address(_ node: Node, _ reader: Reader) throws(ConfigurationError) -> BerthConfiguration.ListenAddress {
        let text = try reader.string(node, "listen")
        guard let address = BerthConfiguration.ListenAddress(parsing: text) else {
            throw reader.error(node, "listen must be HOST:PORT, e.g. 0.0.0.0:8086")
        }
        return address
    }

    /// `{cert, key}` or `{certificates: [{cert, key, names}]}`.
    private static func tls(_ node: Node, _ reader: Reader) throws(ConfigurationError) -> FrontDoorConfiguration.TLS {
        let m = try reader.mapping(node, "tls")
        try reader.allowOnly(m, ["cert", "key", "names", "certificates"])
        func certificate(_ m: Node.Mapping, _ at: Node) throws(ConfigurationError) -> FrontDoorConfiguration.Certificate {
            guard let certNode = m["cert"], let keyNode = m["key"] else { throw reader.error(at, "a certificate needs cert and key (PEM files)") }
            let cert = reader.resolve(try reader.string(certNode, "cert"))
            let key = reader.resolve(try reader.string(keyNode, "key"))
            for (path, n) in [(cert, certNode), (key, keyNode)] where !FileManager.default.isReadableFile(atPath: path) {
                throw reader.error(n, "cannot read '\(path)'")
            }
            let names = try m["names"].map { n throws(ConfigurationError) in
                try reader.sequence(n, "names").map { x throws(ConfigurationError) in try reader.string(x, "a host name").lowercased() }
            }
            return .init(cert: cert, key: key, names: names)
        }
        if let list = m["certificates"] {
            guard m["cert"] == nil, m["key"] == nil else { throw reader.error(node, "use either cert/key or certificates, not both") }
            let items = try reader.sequence(list, "certificates")
            guard !items.isEmpty else { throw reader.error(list, "certificates must list at least one certificate") }
            return .init(certificates: try items.map { n throws(ConfigurationError) in try certificate(try reader.mapping(n, "a certificate"), n) })
        }
        return .init(certificates: [try certificate(m, node)])
    }

    /// A PEM file of CA certificates, read now so that a wrong file fails the configuration, not the first pull.
    private static func caFile(_ node: Node, _ reader: Reader) throws(ConfigurationError) -> String {
        let path = reader.resolve(try reader.string(node, "ca_file"))
        guard FileManager.default.isReadableFile(atPath: path) else { throw reader.error(node, "cannot read '\(path)'") }
        let certificates: [NIOSSLCertificate]
        do {
            certificates = try NIOSSLCertificate.fromPEMFile(path)
        } catch {
            throw reader.error(node, "'\(path)' is not a PEM file of certificates (\(error))")
        }
        guard !certificates.isEmpty else { throw reader.error(node, "'\(path)' holds no PEM certificate") }
        return path
    }

    private static func routes(_ node: Node, _ reader: Reader, config: BerthConfiguration) throws(ConfigurationError) -> [FrontDoorConfiguration.Route] {
        let known = Set(config.repositories.map(\.name))
        func repository(_ n: Node) throws(ConfigurationError) -> String {
            let name = try reader.string(n, "a repository")
            guard known.contains(name) else { throw reader.error(n, "route refers to repository '\(name)', which is not declared in repositories") }
            return name
        }
        var seen: [FrontDoorConfiguration.Match: Int] = [:]
        var listenPorts: Set<Int> = [config.listen.port]
        for listener in config.frontDoor.listeners { listenPorts.insert(listener.listen.port) }
        var result: [FrontDoorConfiguration.Route] = []
        for item in try reader.sequence(node, "routes") {
            let m = try reader.mapping(item, "a route")
            try reader.allowOnly(m, ["listen", "host", "tls", "repository", "pull", "push", "upstream", "preserve_host", "connect_timeout", "read_timeout", "ca_file"])
            var route: FrontDoorConfiguration.Route
            var captures = false
            switch (m["listen"], m["host"]) {
            case (let listen?, nil):
                let address = try address(listen, reader)
                guard listenPorts.insert(address.port).inserted else {
                    throw reader.error(listen, "port \(address.port) already has a listener; a route with listen owns its port")
                }
                route = .init(match: .port(address.port), endpoint: .subdomain, listen: address, tls: try m["tls"].map { n throws(ConfigurationError) in try tls(n, reader) })
            case (nil, let hostNode?):
                if let t = m["tls"] { throw reader.error(t, "tls belongs to a listener: put it on a route with listen, or in listeners") }
                let pattern = try reader.string(hostNode, "host").lowercased()
                let match: FrontDoorConfiguration.Match
                if pattern.hasPrefix("{repo}.") {
                    match = .wildcard(suffix: String(pattern.dropFirst(6)))
                    captures = true
                } else if pattern.hasPrefix("*.") {
                    match = .wildcard(suffix: String(pattern.dropFirst(1)))
                } else {
                    match = .host(pattern)
                }
                let bare: String
                switch match {
                case .wildcard(let suffix): bare = String(suffix.dropFirst())
                case .host(let h): bare = h
                case .port: bare = ""
                }
                guard Self.isHostName(bare) else {
                    throw reader.error(hostNode, "'\(pattern)' is not a host name, *.suffix or {repo}.suffix")
                }
                route = .init(match: match, endpoint: .subdomain)
            case (nil, nil):
                throw reader.error(item, "a route needs listen (a port) or host (a host name)")
            case (_?, _?):
                throw reader.error(item, "a route matches either listen or host, not both (host routes apply on every listener)")
            }
            route.line = item.mark?.line
            let targets = ["repository", "pull", "upstream"].filter { m[$0] != nil }
            if captures {
                guard targets.isEmpty, m["push"] == nil else {
                    throw reader.error(item, "a {repo} route takes its repository from the host name; remove repository/pull/push/upstream")
                }
            } else if let r = m["repository"] {
                guard targets.count == 1, m["push"] == nil else { throw reader.error(item, "a route has one of repository, pull+push or upstream") }
                route.endpoint = .repository(try repository(r))
            } else if let pull = m["pull"] {
                guard targets.count == 1, let push = m["push"] else { throw reader.error(item, "pull needs push (and neither repository nor upstream)") }
                route.endpoint = .split(pull: try repository(pull), push: try repository(push))
            } else if let u = m["upstream"] {
                guard targets.count == 1, m["push"] == nil else { throw reader.error(item, "a route has one of repository, pull+push or upstream") }
                let url = try reader.string(u, "upstream")
                guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme ?? ""), parsed.host != nil else {
                    throw reader.error(u, "upstream must be an http or https URL, e.g. http://nexus:8081/repository/docker-repo/")
                }
                var upstream = FrontDoorConfiguration.Upstream(url: url)
                if let p = m["preserve_host"] {
                    guard let b = p.bool else { throw reader.error(p, "preserve_host must be true or false") }
                    upstream.preserveHost = b
                }
                if let c = m["connect_timeout"] { upstream.connectTimeoutSeconds = try reader.integer(c, "connect_timeout", min: 1) }
                if let r = m["read_timeout"] { upstream.readTimeoutSeconds = try reader.integer(r, "read_timeout", min: 1) }
                if let c = m["ca_file"] {
                    guard parsed.scheme == "https" else {
                        throw reader.error(c, "ca_file sets the CAs an https upstream is checked against; this upstream is \(parsed.scheme ?? "")")
                    }
                    upstream.caFile = try caFile(c, reader)
                }
                route.endpoint = .upstream(upstream)
            } else {
                throw reader.error(item, "a route needs repository, pull+push or upstream (or a {repo}.suffix host)")
            }
            if !targets.contains("upstream") {
                for key in ["preserve_host", "connect_timeout", "read_timeout", "ca_file"] where m[key] != nil {
                    throw reader.error(m[key]!, "\(key) applies to upstream routes only")
                }
            }
            if let first = seen.updateValue(item.mark?.line ?? 0, forKey: route.match) {
                throw reader.error(item, "this route matches the same \(route.listen == nil ? "host" : "port") as the route on line \(first)")
            }
            result.append(route)
        }
        return result
    }

    /// Letters, digits, `-` and `.`, with at least one dot-separated label.
    static func isHostName(_ text: String) -> Bool {
        guard !text.isEmpty, text.count <= 253 else { return false }
        return text.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            !label.isEmpty && label.count <= 63 && label.first != "-" && label.last != "-"
                && label.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 }
        }
    }

    private static func storage(_ node: Node, _ reader: Reader, into config: inout BerthConfiguration) throws(ConfigurationError) {
        let map = try reader.mapping(node, "storage")
        try reader.allowOnly(map, ["blobs", "metadata"])
        if let blobs = map["blobs"] {
            let m = try reader.mapping(blobs, "storage.blobs")
            let type = try m["type"].map { n throws(ConfigurationError) in try reader.string(n, "storage.blobs.type") } ?? "filesystem"
            switch type {
            case "filesystem":
                try reader.allowOnly(m, ["type", "path"])
                guard let path = m["path"] else { throw reader.error(blobs, "storage.blobs needs a path") }
                config.blobs = .filesystem(path: try reader.string(path, "storage.blobs.path"))
            case "s3":
                config.blobs = .s3(try s3(m, blobs, reader))
            default:
                throw reader.error(m["type"] ?? blobs, "storage.blobs.type '\(type)' is not supported (supported: filesystem, s3)")
            }
        }
        if let metadata = map["metadata"] {
            let m = try reader.mapping(metadata, "storage.metadata")
            let type = try m["type"].map { n throws(ConfigurationError) in try reader.string(n, "storage.metadata.type") } ?? "sqlite"
            switch type {
            case "sqlite":
                try reader.allowOnly(m, ["type", "path"])
                guard let path = m["path"] else { throw reader.error(metadata, "storage.metadata needs a path") }
                config.metadata = .sqlite(path: try reader.string(path, "storage.metadata.path"))
            case "postgres", "postgresql":
                try reader.allowOnly(m, ["type", "url", "max_connections"])
                guard let urlNode = m["url"] else { throw reader.error(metadata, "storage.metadata of type postgres needs a url (postgres://user:password@host:port/database)") }
                let url = try reader.string(urlNode, "storage.metadata.url")
                guard let components = URLComponents(string: url), ["postgres", "postgresql"].contains(components.scheme ?? ""),
                      components.host?.isEmpty == false
                else {
                    throw reader.error(urlNode, "storage.metadata.url must look like postgres://user:password@host:port/database")
                }
                let max = try m["max_connections"].map { n throws(ConfigurationError) in try reader.integer(n, "storage.metadata.max_connections", min: 1) } ?? 20
                config.metadata = .postgres(url: url, maxConnections: max)
            default:
                throw reader.error(m["type"] ?? metadata, "storage.metadata.type '\(type)' is not supported (supported: sqlite, postgres)")
            }
        }
    }

    private static func s3(_ m: Node.Mapping, _ node: Node, _ reader: Reader) throws(ConfigurationError) -> S3BlobStore.Configuration {
        try reader.allowOnly(m, ["type", "endpoint", "region", "bucket", "prefix", "access_key", "secret_key", "path_style", "redirect", "redirect_expiry"])
        guard let endpointNode = m["endpoint"] else { throw reader.error(node, "storage.blobs of type s3 needs an endpoint (e.g. https://s3.eu-west-1.amazonaws.com)") }
        let endpoint = try reader.string(endpointNode, "storage.blobs.endpoint")
        guard let url = URLComponents(string: endpoint), ["http", "https"].contains(url.scheme ?? ""), url.host?.isEmpty == false,
              url.path.isEmpty || url.path == "/"
        else {
            throw reader.error(endpointNode, "storage.blobs.endpoint must be an http or https URL without a path")
        }
        guard let bucketNode = m["bucket"] else { throw reader.error(node, "storage.blobs of type s3 needs a bucket") }
        let bucket = try reader.string(bucketNode, "storage.blobs.bucket")
        guard (3...63).contains(bucket.count), bucket.utf8.allSatisfy({ ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 || $0 == 46 }) else {
            throw reader.error(bucketNode, "storage.blobs.bucket must be 3-63 lowercase letters, digits, '-' or '.'")
        }
        // An empty region is filled from AWS_REGION / AWS_DEFAULT_REGION at start, else us-east-1.
        var s3 = S3BlobStore.Configuration(
            endpoint: endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint, region: "", bucket: bucket,
            prefix: try m["prefix"].map { n throws(ConfigurationError) in try reader.string(n, "storage.blobs.prefix") } ?? "")
        if let n = m["region"] { s3.region = try reader.string(n, "storage.blobs.region") }
        if let n = m["access_key"] { s3.accessKey = try reader.string(n, "storage.blobs.access_key") }
        if let n = m["secret_key"] { s3.secretKey = try reader.string(n, "storage.blobs.secret_key") }
        if let n = m["path_style"] {
            guard let b = n.bool else { throw reader.error(n, "path_style must be true or false") }
            s3.pathStyle = b
        }
        if let n = m["redirect"] {
            guard let b = n.bool else { throw reader.error(n, "redirect must be true or false") }
            s3.redirect = b
        }
        if let n = m["redirect_expiry"] {
            s3.redirectExpiry = try reader.integer(n, "storage.blobs.redirect_expiry (seconds)", min: 1)
            guard s3.redirectExpiry <= 604_800 else { throw reader.error(n, "storage.blobs.redirect_expiry is at most 604800 seconds (7 days, S3's limit)") }
        }
        return s3
    }

    private static func auth(_ node: Node, roles rolesNode: Node?, users usersNode: Node?, anonymousPull: [String: Bool], _ reader: Reader) throws(ConfigurationError) -> AuthConfiguration {
        var auth = AuthConfiguration()
        auth.anonymousPullByRepository = anonymousPull
        let m = try reader.mapping(node, "auth")
        try reader.allowOnly(m, ["anonymous_pull", "token_ttl", "service", "throttle_failures", "throttle_window"])
        if let n = m["anonymous_pull"] {
            guard let b = n.bool else { throw reader.error(n, "anonymous_pull must be true or false") }
            auth.anonymousPull = b
        }
        if let n = m["token_ttl"] { auth.tokenTTLSeconds = try reader.integer(n, "token_ttl", min: 10) }
        if let n = m["service"] { auth.service = try reader.string(n, "service") }
        if let n = m["throttle_failures"] { auth.throttleFailures = try reader.integer(n, "throttle_failures", min: 1) }
        if let n = m["throttle_window"] { auth.throttleWindowSeconds = try reader.integer(n, "throttle_window", min: 1) }
        var roleNames: Set<String> = [AccessPolicy.adminRole.name]
        if let rolesNode {
            for item in try reader.sequence(rolesNode, "roles") {
                let r = try reader.mapping(item, "a role")
                try reader.allowOnly(r, ["name", "privileges"])
                guard let nameNode = r["name"] else { throw reader.error(item, "a role needs a name") }
                let name = try reader.string(nameNode, "name")
                guard roleNames.insert(name).inserted else { throw reader.error(nameNode, "role '\(name)' is declared twice (admin is built in)") }
                var grants: [AccessPolicy.Grant] = []
                for grantNode in try r["privileges"].map({ n throws(ConfigurationError) in try reader.sequence(n, "privileges") }) ?? [] {
                    let g = try reader.mapping(grantNode, "a privilege")
                    try reader.allowOnly(g, ["repositories", "actions"])
                    guard let reposNode = g["repositories"], let actionsNode = g["actions"] else {
                        throw reader.error(grantNode, "a privilege needs repositories (names or patterns with *) and actions (read, write, delete, admin)")
                    }
                    let repos = try reader.sequence(reposNode, "repositories").map { n throws(ConfigurationError) in try reader.string(n, "a repository pattern") }
                    var privileges: Set<AccessPolicy.Privilege> = []
                    for a in try reader.sequence(actionsNode, "actions") {
                        let text = try reader.string(a, "an action")
                        guard let p = AccessPolicy.Privilege(rawValue: text) else { throw reader.error(a, "action '\(text)' is unknown (read, write, delete, admin)") }
                        privileges.insert(p)
                    }
                    grants.append(.init(repositories: repos, privileges: privileges))
                }
                auth.roles.append(.init(name: name, grants: grants))
            }
        }
        if let usersNode {
            var seen: Set<String> = []
            for item in try reader.sequence(usersNode, "users") {
                let u = try reader.mapping(item, "a user")
                try reader.allowOnly(u, ["name", "password_hash", "roles"])
                guard let nameNode = u["name"], let hashNode = u["password_hash"] else {
                    throw reader.error(item, "a user needs name and password_hash (a bcrypt hash, e.g. from `berth user hash`)")
                }
                let name = try reader.string(nameNode, "name")
                guard seen.insert(name).inserted else { throw reader.error(nameNode, "user '\(name)' is declared twice") }
                let hash = try reader.string(hashNode, "password_hash")
                guard hash.hasPrefix("$2") else { throw reader.error(hashNode, "password_hash must be a bcrypt hash ($2b$…), never a plain password") }
                let roles = try u["roles"].map { n throws(ConfigurationError) in try reader.sequence(n, "roles").map { x throws(ConfigurationError) in try reader.string(x, "a role") } } ?? []
                for (role, node) in zip(roles, try u["roles"].map { n throws(ConfigurationError) in try reader.sequence(n, "roles") } ?? []) where !roleNames.contains(role) {
                    throw reader.error(node, "role '\(role)' is not declared in roles")
                }
                auth.users.append(.init(name: name, passwordHash: hash, roles: roles))
            }
        }
        return auth
    }

    private static func serviceTokens(_ node: Node, roles known: Set<String>, _ reader: Reader) throws(ConfigurationError) -> [AuthConfiguration.DeclaredToken] {
        var seen: Set<String> = []
        var result: [AuthConfiguration.DeclaredToken] = []
        for item in try reader.sequence(node, "service_tokens") {
            let m = try reader.mapping(item, "a service token")
            try reader.allowOnly(m, ["id", "name", "secret_sha256", "roles", "revoked"])
            guard let idNode = m["id"], let hashNode = m["secret_sha256"] else {
                throw reader.error(item, "a service token needs id and secret_sha256 (the secret is berth_<id>_<random>; give its sha256 in hex)")
            }
            let id = try reader.string(idNode, "id")
            guard id.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 122) || $0 == 45 }), !id.isEmpty else {
                throw reader.error(idNode, "a token id has lowercase letters, digits and '-' only")
            }
            guard seen.insert(id).inserted else { throw reader.error(idNode, "token '\(id)' is declared twice") }
            let hash = try reader.string(hashNode, "secret_sha256").lowercased()
            guard hash.utf8.count == 64, hash.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else {
                throw reader.error(hashNode, "secret_sha256 must be 64 hex digits (e.g. printf %s \"$SECRET\" | sha256sum)")
            }
            let roleNodes = try m["roles"].map { n throws(ConfigurationError) in try reader.sequence(n, "roles") } ?? []
            var roles: [String] = []
            for n in roleNodes {
                let role = try reader.string(n, "a role")
                guard known.contains(role) else { throw reader.error(n, "role '\(role)' is not declared in roles") }
                roles.append(role)
            }
            var revoked = false
            if let n = m["revoked"] {
                guard let b = n.bool else { throw reader.error(n, "revoked must be true or false") }
                revoked = b
            }
            let name = try m["name"].map { n throws(ConfigurationError) in try reader.string(n, "name") } ?? id
            result.append(.init(id: id, name: name, secretSHA256: hash, roles: roles, revoked: revoked))
        }
        return result
    }

    private static func repositories(_ node: Node, _ reader: Reader, anonymousPull: inout [String: Bool]) throws(ConfigurationError) -> [BerthConfiguration.Repository] {
        var seen: Set<String> = []
        var result: [BerthConfiguration.Repository] = []
        var memberNodes: [String: Node] = [:]
        for item in try reader.sequence(node, "repositories") {
            let m = try reader.mapping(item, "a repository")
            guard let nameNode = m["name"] else { throw reader.error(item, "a repository needs a name") }
            let name = try reader.string(nameNode, "name")
            guard Names.isValidRepositoryName(name) else {
                throw reader.error(nameNode, "repository name '\(name)' is invalid: use lowercase letters, digits, '-', '_' and '.', at most 64 characters")
            }
            guard seen.insert(name).inserted else { throw reader.error(nameNode, "repository '\(name)' is declared twice") }
            let type = try m["type"].map { n throws(ConfigurationError) in try reader.string(n, "type") } ?? "hosted"
            if let n = m["anonymous_pull"] {
                guard let b = n.bool else { throw reader.error(n, "anonymous_pull must be true or false") }
                anonymousPull[name] = b
            }
            switch type {
            case "hosted":
                try reader.allowOnly(m, ["name", "type", "anonymous_pull"])
                result.append(.init(name: name, kind: .hosted))
            case "proxy":
                try reader.allowOnly(m, ["name", "type", "anonymous_pull", "remote", "username", "password", "metadata_max_age", "content_max_age",
                                         "negative_cache_ttl", "auto_block", "connect_timeout", "read_timeout"])
                guard let remoteNode = m["remote"] else { throw reader.error(item, "a proxy repository needs remote: the registry URL it caches") }
                let remote = try reader.string(remoteNode, "remote")
                guard let url = URL(string: remote), ["http", "https"].contains(url.scheme ?? ""), url.host != nil else {
                    throw reader.error(remoteNode, "remote must be an http or https URL, e.g. https://registry-1.docker.io")
                }
                var client = RegistryClient.Configuration(remote: remote)
                client.username = try m["username"].map { n throws(ConfigurationError) in try reader.string(n, "username") }
                client.password = try m["password"].map { n throws(ConfigurationError) in try reader.string(n, "password") }
                if (client.username == nil) != (client.password == nil) {
                    throw reader.error(item, "username and password go together")
                }
                if let n = m["connect_timeout"] { client.connectTimeoutSeconds = try reader.integer(n, "connect_timeout", min: 1) }
                if let n = m["read_timeout"] { client.readTimeoutSeconds = try reader.integer(n, "read_timeout", min: 1) }
                var settings = ProxySettings(client: client)
                if let n = m["metadata_max_age"] { settings.metadataMaxAge = Int64(try reader.integer(n, "metadata_max_age", min: 0)) * 60 }
                if let n = m["negative_cache_ttl"] { settings.negativeCacheTTL = Int64(try reader.integer(n, "negative_cache_ttl", min: 0)) * 60 }
                // Content is addressed by digest and never changes, so its age never makes it stale.
                if let n = m["content_max_age"] { _ = try reader.integer(n, "content_max_age", min: -1) }
                if let n = m["auto_block"] {
                    guard let b = n.bool else { throw reader.error(n, "auto_block must be true or false") }
                    settings.autoBlock = b
                }
                result.append(.init(name: name, kind: .proxy(settings)))
            case "group":
                try reader.allowOnly(m, ["name", "type", "anonymous_pull", "members", "writable_member"])
                guard let membersNode = m["members"] else { throw reader.error(item, "a group repository needs members: [repository, …]") }
                let members = try reader.sequence(membersNode, "members").map { n throws(ConfigurationError) in try reader.string(n, "a member") }
                guard !members.isEmpty else { throw reader.error(membersNode, "a group needs at least one member") }
                guard Set(members).count == members.count else { throw reader.error(membersNode, "a member is listed twice") }
                let writable = try m["writable_member"].map { n throws(ConfigurationError) in try reader.string(n, "writable_member") }
                if let writable, !members.contains(writable) {
                    throw reader.error(m["writable_member"]!, "writable_member '\(writable)' is not one of the group's members")
                }
                memberNodes[name] = membersNode
                result.append(.init(name: name, kind: .group(members: members, writableMember: writable)))
            default:
                throw reader.error(m["type"]!, "repository type '\(type)' is unknown (hosted, proxy, group)")
            }
        }
        // Members must exist, groups must not contain themselves, and a writable member must take pushes.
        let byName = Dictionary(uniqueKeysWithValues: result.map { ($0.name, $0) })
        for repository in result {
            guard case .group(let members, let writable) = repository.kind, let node = memberNodes[repository.name] else { continue }
            for member in members where byName[member] == nil {
                throw reader.error(node, "group '\(repository.name)' lists '\(member)', which is not declared in repositories")
            }
            var path: [String] = []
            func visit(_ name: String) throws(ConfigurationError) {
                if path.contains(name) {
                    throw reader.error(node, "group '\(repository.name)' contains itself: \((path + [name]).joined(separator: " → "))")
                }
                path.append(name)
                if case .group(let members, _)? = byName[name]?.kind {
                    for member in members { try visit(member) }
                }
                path.removeLast()
            }
            try visit(repository.name)
            if let writable {
                switch byName[writable]?.kind {
                case .hosted?: break
                case .group(_, _?)?: break
                default: throw reader.error(node, "writable_member '\(writable)' of '\(repository.name)' must be a hosted repository (or a group with a writable member)")
                }
            }
        }
        return result
    }

    /// `a.b.c.d`, `a.b.c.d/n`, an IPv6 address or `v6/n`.
    static func isCIDR(_ text: String) -> Bool {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = parts.first else { return false }
        let isV6 = address.contains(":")
        if parts.count == 2 {
            guard let bits = Int(parts[1]), bits >= 0, bits <= (isV6 ? 128 : 32) else { return false }
        }
        guard let parsed = try? SocketAddress(ipAddress: String(address), port: 0) else { return false }
        switch parsed {
        case .v6: return isV6
        case .v4: return !isV6
        default: return false
        }
    }

    private static func yamlError(_ error: YamlError, file: String) -> ConfigurationError {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return ConfigurationError(file: file, line: mark.line, column: mark.column, reason: "invalid YAML: \(problem)")
        default:
            return ConfigurationError(file: file, reason: "invalid YAML: \(error)")
        }
    }

    /// Typed access to YAML nodes with located errors.
    struct Reader {
        let file: String

        /// A path relative to the configuration file's folder (certificates sit next to the config).
        func resolve(_ path: String) -> String {
            guard !path.hasPrefix("/") else { return path }
            var folder = (file as NSString).deletingLastPathComponent
            if !folder.hasPrefix("/") {
                // Absolute, so that files generated from this config (proxy-config) work from anywhere.
                let cwd = FileManager.default.currentDirectoryPath
                folder = folder.isEmpty ? cwd : cwd + "/" + folder
            }
            return folder + "/" + path
        }

        func error(_ node: Node, _ reason: String) -> ConfigurationError {
            ConfigurationError(file: file, line: node.mark?.line, column: node.mark?.column, reason: reason)
        }

        func mapping(_ node: Node, _ what: String) throws(ConfigurationError) -> Node.Mapping {
            guard case .mapping(let m) = node else { throw error(node, "\(what) must be a mapping of keys to values") }
            return m
        }

        func sequence(_ node: Node, _ what: String) throws(ConfigurationError) -> [Node] {
            guard case .sequence(let s) = node else { throw error(node, "\(what) must be a list") }
            return Array(s)
        }

        func string(_ node: Node, _ what: String) throws(ConfigurationError) -> String {
            guard case .scalar(let s) = node, !s.string.isEmpty else { throw error(node, "\(what) must be a non-empty string") }
            return s.string
        }

        func integer(_ node: Node, _ what: String, min: Int) throws(ConfigurationError) -> Int {
            guard case .scalar(let s) = node, let value = Int(s.string), value >= min else {
                throw error(node, "\(what) must be a whole number of at least \(min)")
            }
            return value
        }

        func allowOnly(_ map: Node.Mapping, _ keys: Set<String>) throws(ConfigurationError) {
            for (key, _) in map {
                guard let name = key.string, keys.contains(name) else {
                    throw error(key, "unknown key '\(key.string ?? "?")' (allowed here: \(keys.sorted().joined(separator: ", ")))")
                }
            }
        }
    }
}
