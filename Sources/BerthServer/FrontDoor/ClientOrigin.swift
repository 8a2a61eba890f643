import BerthCore
import Foundation
import HTTPTypes
import Hummingbird

/// Scheme and authority as the client sees them: the one source for every absolute URL Berth emits.
///
/// `Forwarded` and `X-Forwarded-Proto/Host/Port` count only from a trusted proxy; otherwise the listener's
/// TLS and the `Host` header decide. A configured public URL overrides both (main listener only).
struct ClientOrigin: Sendable, Equatable {
    var scheme: String
    /// `host` or `host:port`, never with a doubled port.
    var authority: String?

    init(scheme: String, authority: String?) {
        self.scheme = scheme
        self.authority = authority
    }

    init(request: Request, listenerIsTLS: Bool, trustedPeer: Bool, publicURL: String?) {
        if let publicURL, let schemeEnd = publicURL.range(of: "://") {
            scheme = String(publicURL[..<schemeEnd.lowerBound]).lowercased()
            let rest = publicURL[schemeEnd.upperBound...]
            authority = String(rest.prefix { $0 != "/" })
            return
        }
        scheme = listenerIsTLS ? "https" : "http"
        authority = request.head.authority
        guard trustedPeer else { return }
        if let forwarded = request.headers[.forwarded], let first = forwarded.split(separator: ",").first {
            for pair in first.split(separator: ";") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                guard kv.count == 2 else { continue }
                let value = kv[1].trimmingBlanks().trimmingCharacters(in: ["\""])
                switch kv[0].trimmingBlanks().lowercased() {
                case "proto": scheme = value.lowercased()
                case "host": authority = value
                default: break
                }
            }
            return
        }
        if let proto = request.headers[.xForwardedProto]?.split(separator: ",").first {
            scheme = proto.trimmingBlanks().lowercased()
        }
        if let host = request.headers[.xForwardedHost]?.split(separator: ",").first {
            authority = host.trimmingBlanks()
        }
        if let port = request.headers[.xForwardedPort]?.split(separator: ",").first.map({ $0.trimmingBlanks() }), let host = authority {
            authority = Self.withPort(host, port: port, scheme: scheme)
        }
    }

    /// `scheme://authority`, or nil without a Host.
    var base: String? { authority.map { "\(scheme)://\($0)" } }

    /// Adds a port unless the host already has one (Nexus's `host:5001:5001` bug) or it is the scheme's default.
    static func withPort(_ host: String, port: String, scheme: String) -> String {
        let hasPort = host.hasPrefix("[") ? host.contains("]:") : host.contains(":")
        if hasPort || port.isEmpty { return host }
        if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") { return host }
        return "\(host):\(port)"
    }
}

extension HTTPField.Name {
    public static let forwarded = HTTPField.Name("Forwarded")!
    public static let xForwardedProto = HTTPField.Name("X-Forwarded-Proto")!
    public static let xForwardedHost = HTTPField.Name("X-Forwarded-Host")!
    public static let xForwardedPort = HTTPField.Name("X-Forwarded-Port")!
    public static let xForwardedFor = HTTPField.Name("X-Forwarded-For")!
    public static let xRealIP = HTTPField.Name("X-Real-IP")!
}

extension String {
    func trimmingCharacters(in set: Set<Character>) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
