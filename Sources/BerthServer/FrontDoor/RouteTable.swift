/// The routes of the front door, indexed for lookups whose cost does not grow with the number of routes:
/// one dictionary probe per step of the resolution order.
///
/// Resolution order (DESIGN.md §2): exact host → wildcard or subdomain host → port → (path-based access).
struct RouteTable: Sendable {
    /// A route's destination with any `{repo}` capture already applied.
    enum Destination: Sendable, Equatable {
        case repository(String)
        case split(pull: String, push: String)
        case upstream(FrontDoorConfiguration.Upstream)
    }

    private var ports: [Int: FrontDoorConfiguration.Endpoint] = [:]
    private var hosts: [String: FrontDoorConfiguration.Endpoint] = [:]
    private var wildcards: [String: FrontDoorConfiguration.Endpoint] = [:]
    private(set) var nsMap: [String: String] = [:]

    init(_ config: FrontDoorConfiguration) {
        for route in config.routes {
            switch route.match {
            case .port(let port): ports[port] = route.endpoint
            case .host(let host): hosts[host] = route.endpoint
            case .wildcard(let suffix): wildcards[suffix] = route.endpoint
            }
        }
        nsMap = config.nsMap
    }

    var isEmpty: Bool { ports.isEmpty && hosts.isEmpty && wildcards.isEmpty }

    /// The destination for a request's host name (already normalized) and local port, if any route matches.
    func resolve(host: String?, port: Int?) -> Destination? {
        if let host {
            if let endpoint = hosts[host] {
                return Self.destination(endpoint, label: nil)
            }
            if let dot = host.firstIndex(of: "."), dot != host.startIndex {
                let label = String(host[..<dot])
                if let endpoint = wildcards[String(host[dot...])] {
                    return Self.destination(endpoint, label: label)
                }
            }
        }
        if let port, let endpoint = ports[port] {
            return Self.destination(endpoint, label: nil)
        }
        return nil
    }

    private static func destination(_ endpoint: FrontDoorConfiguration.Endpoint, label: String?) -> Destination? {
        switch endpoint {
        case .repository(let r): .repository(r)
        case .split(let pull, let push): .split(pull: pull, push: push)
        case .upstream(let u): .upstream(u)
        case .subdomain: label.map { .repository($0) }
        }
    }

    /// Lowercases a `Host` value and strips its port and any trailing dot (`Registry.Example.com.:443`).
    static func normalizeHost(_ authority: String) -> String {
        var host = Substring(authority)
        if host.hasPrefix("[") {
            if let close = host.firstIndex(of: "]") { host = host[...close] }
        } else if let colon = host.lastIndex(of: ":") {
            host = host[..<colon]
        }
        if host.hasSuffix(".") { host = host.dropLast() }
        return host.lowercased()
    }
}
