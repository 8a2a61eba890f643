import BerthCore
import BerthStorage
import Foundation
import NIOCore
import Yams

/// A configuration problem, located in its file.
public struct ConfigurationError: Error, CustomStringConvertible, Equatable {
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
        try reader.allowOnly(top, ["listen", "public_url", "trusted_proxies", "storage", "repositories", "uploads", "server", "auth", "listeners", "routes", "ns_map"])
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
                config.repositories = try repositories(value, reader)
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
            default:
                // Known keys of later features: refused rather than silently ignored, so nobody believes
                // that access control or routing is in force when it is not.
                throw reader.error(key, "'\(key.string ?? "")' is not supported by this version of Berth yet")
            }
        }
        return config
    }

    private static func storage(_ node: Node, _ reader: Reader, into config: inout BerthConfiguration) throws(ConfigurationError) {
        let map = try reader.mapping(node, "storage")
        try reader.allowOnly(map, ["blobs", "metadata"])
        if let blobs = map["blobs"] {
            let m = try reader.mapping(blobs, "storage.blobs")
            try reader.allowOnly(m, ["type", "path"])
            let type = try m["type"].map { n throws(ConfigurationError) in try reader.string(n, "storage.blobs.type") } ?? "filesystem"
            guard type == "filesystem" else {
                throw reader.error(m["type"] ?? blobs, "storage.blobs.type '\(type)' is not supported (supported: filesystem)")
            }
            guard let path = m["path"] else { throw reader.error(blobs, "storage.blobs needs a path") }
            config.blobs = .filesystem(path: try reader.string(path, "storage.blobs.path"))
        }
        if let metadata = map["metadata"] {
            let m = try reader.mapping(metadata, "storage.metadata")
            try reader.allowOnly(m, ["type", "path"])
            let type = try m["type"].map { n throws(ConfigurationError) in try reader.string(n, "storage.metadata.type") } ?? "sqlite"
            guard type == "sqlite" else {
                throw reader.error(m["type"] ?? metadata, "storage.metadata.type '\(type)' is not supported (supported: sqlite)")
            }
            guard let path = m["path"] else { throw reader.error(metadata, "storage.metadata needs a path") }
            config.metadata = .sqlite(path: try reader.string(path, "storage.metadata.path"))
        }
    }

    private static func repositories(_ node: Node, _ reader: Reader) throws(ConfigurationError) -> [BerthConfiguration.Repository] {
        var seen: Set<String> = []
        var result: [BerthConfiguration.Repository] = []
        for item in try reader.sequence(node, "repositories") {
            let m = try reader.mapping(item, "a repository")
            try reader.allowOnly(m, ["name", "type"])
            guard let nameNode = m["name"] else { throw reader.error(item, "a repository needs a name") }
            let name = try reader.string(nameNode, "name")
            guard Names.isValidRepositoryName(name) else {
                throw reader.error(nameNode, "repository name '\(name)' is invalid: use lowercase letters, digits, '-', '_' and '.', at most 64 characters")
            }
            guard seen.insert(name).inserted else { throw reader.error(nameNode, "repository '\(name)' is declared twice") }
            let type = try m["type"].map { n throws(ConfigurationError) in try reader.string(n, "type") } ?? "hosted"
            guard let kind = RepositoryRecord.Kind(rawValue: type) else {
                throw reader.error(m["type"]!, "repository type '\(type)' is unknown (hosted, proxy, group)")
            }
            guard kind == .hosted else {
                throw reader.error(m["type"]!, "repository type '\(type)' is not supported by this version of Berth yet (hosted only)")
            }
            result.append(.init(name: name, kind: kind))
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
