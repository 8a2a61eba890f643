/// One endpoint of the distribution API, parsed from the path below `/v2/`.
///
/// OCI names have any number of segments, so the path is matched from its end: the endpoint
/// suffixes (`manifests/<ref>`, `blobs/<digest>`, `blobs/uploads/[<id>]`, `tags/list`,
/// `referrers/<digest>`) have a fixed number of segments, and what precedes them is the name.
public enum DistributionRoute: Equatable, Sendable {
    case base
    case catalog
    case tagsList(name: String)
    case manifest(name: String, reference: String)
    case blob(name: String, digest: String)
    case uploadStart(name: String)
    case upload(name: String, id: String)
    case referrers(name: String, digest: String)

    /// The image name the route addresses, if any.
    public var name: String? {
        switch self {
        case .base, .catalog: nil
        case .tagsList(let n), .manifest(let n, _), .blob(let n, _), .uploadStart(let n), .upload(let n, _), .referrers(let n, _): n
        }
    }

    /// The same route for another name (used after the access method strips the repository segment).
    public func renamed(_ newName: String) -> DistributionRoute {
        switch self {
        case .base, .catalog: self
        case .tagsList: .tagsList(name: newName)
        case .manifest(_, let r): .manifest(name: newName, reference: r)
        case .blob(_, let d): .blob(name: newName, digest: d)
        case .uploadStart: .uploadStart(name: newName)
        case .upload(_, let id): .upload(name: newName, id: id)
        case .referrers(_, let d): .referrers(name: newName, digest: d)
        }
    }

    /// Parses the part of the path after `/v2/` (no leading slash; may be empty).
    /// - Returns: nil when the path is no distribution endpoint.
    public static func parse(tail: Substring) -> DistributionRoute? {
        if tail.isEmpty { return .base }
        if tail == "_catalog" { return .catalog }
        let segments = tail.split(separator: "/", omittingEmptySubsequences: false)
        let n = segments.count
        func name(dropping k: Int) -> String? {
            guard n > k else { return nil }
            let parts = segments[0..<(n - k)]
            // Empty segments (a//b) are never part of a valid name; let the grammar reject them.
            return parts.joined(separator: "/")
        }
        if n >= 4, segments[n - 3] == "blobs", segments[n - 2] == "uploads" {
            guard let name = name(dropping: 3) else { return nil }
            return segments[n - 1].isEmpty ? .uploadStart(name: name) : .upload(name: name, id: String(segments[n - 1]))
        }
        if n >= 3, segments[n - 2] == "blobs", segments[n - 1] == "uploads" {
            guard let name = name(dropping: 2) else { return nil }
            return .uploadStart(name: name)
        }
        guard n >= 3 else { return nil }
        let last = String(segments[n - 1])
        // An empty last segment (`blobs/`, `referrers/`) is no endpoint.
        guard !last.isEmpty else { return nil }
        switch segments[n - 2] {
        case "blobs": return name(dropping: 2).map { .blob(name: $0, digest: last) }
        case "manifests": return name(dropping: 2).map { .manifest(name: $0, reference: last) }
        case "referrers": return name(dropping: 2).map { .referrers(name: $0, digest: last) }
        case "tags" where last == "list": return name(dropping: 2).map { .tagsList(name: $0) }
        default: return nil
        }
    }
}

/// How a request addressed a Berth repository on the main listener.
public struct AccessPath: Equatable, Sendable {
    /// The access methods that live in the path (the others are decided by the front door).
    public enum Method: Equatable, Sendable {
        /// `/v2/<repo>/<image>/…`: the first segment of the name is the repository.
        case repositoryPath
        /// `/repository/<repo>/v2/<image>/…`
        case nexusPath(repository: String)
    }

    public var method: Method
    /// The route with the OCI image name as the client sent it (the repository segment still included
    /// under ``Method/repositoryPath``).
    public var route: DistributionRoute

    public init(method: Method, route: DistributionRoute) {
        self.method = method
        self.route = route
    }

    /// Parses a request path on the main listener.
    ///
    /// Tolerates what proxies in front of Nexus produce: `//v2` (nginx's `proxy_pass …/$request_uri`) and a
    /// doubled `/repository/<repo>/repository/<repo>/` (a prefixed `Location` sent back through Apache's `ProxyPass`).
    public static func parse(path: Substring) -> AccessPath? {
        if path.hasPrefix("/v2") {
            guard let tail = v2Tail(path.dropFirst(3)) else { return nil }
            return DistributionRoute.parse(tail: tail).map { AccessPath(method: .repositoryPath, route: $0) }
        }
        guard path.hasPrefix("/repository/") else { return nil }
        var rest = path.dropFirst("/repository/".count)
        guard let slash = rest.firstIndex(of: "/") else { return nil }
        let repository = rest[..<slash]
        rest = rest[slash...]
        // The doubled prefix must name the same repository as a whole segment (`repository/r/`, not `repository/rv2`).
        let doubled = "repository/" + repository + "/"
        while true {
            rest = rest.drop(while: { $0 == "/" })
            if rest.hasPrefix(doubled) {
                rest = rest.dropFirst(doubled.count - 1)
                continue
            }
            break
        }
        guard rest.hasPrefix("v2") else { return nil }
        guard let tail = v2Tail(rest.dropFirst(2)) else { return nil }
        return DistributionRoute.parse(tail: tail).map { AccessPath(method: .nexusPath(repository: String(repository)), route: $0) }
    }

    /// After `v2`: empty, `/`, or `/<tail>`.
    public static func v2Tail(_ afterV2: Substring) -> Substring? {
        if afterV2.isEmpty { return afterV2 }
        guard afterV2.first == "/" else { return nil }
        return afterV2.dropFirst()
    }
}
