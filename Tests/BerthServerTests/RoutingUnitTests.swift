@testable import BerthServer
import Foundation
import NIOCore
import Testing

@Suite("Route table, origins, trusted proxies")
struct RoutingUnitTests {
    @Test func resolutionOrderIsExactWildcardPort() {
        var config = FrontDoorConfiguration()
        config.routes = [
            .init(match: .port(8086), endpoint: .repository("by-port")),
            .init(match: .host("exact.example.com"), endpoint: .repository("by-host")),
            .init(match: .wildcard(suffix: ".example.com"), endpoint: .subdomain),
            .init(match: .wildcard(suffix: ".w.example.com"), endpoint: .split(pull: "g", push: "h")),
        ]
        let table = RouteTable(config)
        #expect(table.resolve(host: "exact.example.com", port: 8086) == .repository("by-host"))
        #expect(table.resolve(host: "team.example.com", port: 8086) == .repository("team"))
        #expect(table.resolve(host: "x.w.example.com", port: nil) == .split(pull: "g", push: "h"))
        #expect(table.resolve(host: "other.org", port: 8086) == .repository("by-port"))
        #expect(table.resolve(host: "other.org", port: 9999) == nil)
        #expect(table.resolve(host: "example.com", port: nil) == nil)
        #expect(table.resolve(host: nil, port: 8086) == .repository("by-port"))
    }

    @Test(arguments: [
        ("Registry.Example.com:443", "registry.example.com"), ("registry.example.com.", "registry.example.com"),
        ("[::1]:5000", "[::1]"), ("localhost", "localhost"),
    ])
    func hostNormalization(raw: String, normalized: String) {
        #expect(RouteTable.normalizeHost(raw) == normalized)
    }

    @Test func thousandsOfRoutesResolveInConstantSteps() {
        var config = FrontDoorConfiguration()
        for i in 0..<5000 { config.routes.append(.init(match: .host("team\(i).example.com"), endpoint: .repository("r\(i)"))) }
        for i in 0..<500 { config.routes.append(.init(match: .port(20000 + i), endpoint: .repository("p\(i)"))) }
        let table = RouteTable(config)
        #expect(table.resolve(host: "team4999.example.com", port: nil) == .repository("r4999"))
        #expect(table.resolve(host: "unknown", port: 20499) == .repository("p499"))
    }

    @Test func portsAreNeverDoubled() {
        #expect(ClientOrigin.withPort("host:5001", port: "5001", scheme: "https") == "host:5001")
        #expect(ClientOrigin.withPort("host", port: "5001", scheme: "https") == "host:5001")
        #expect(ClientOrigin.withPort("host", port: "443", scheme: "https") == "host")
        #expect(ClientOrigin.withPort("[::1]:8443", port: "8443", scheme: "https") == "[::1]:8443")
        #expect(ClientOrigin.withPort("[::1]", port: "8443", scheme: "https") == "[::1]:8443")
    }

    @Test func trustedProxyBlocks() throws {
        let trusted = TrustedProxies(["127.0.0.1/32", "10.1.0.0/16", "::1"])
        #expect(trusted.contains(try SocketAddress(ipAddress: "127.0.0.1", port: 1)))
        #expect(!trusted.contains(try SocketAddress(ipAddress: "127.0.0.2", port: 1)))
        #expect(trusted.contains(try SocketAddress(ipAddress: "10.1.200.3", port: 1)))
        #expect(!trusted.contains(try SocketAddress(ipAddress: "10.2.0.1", port: 1)))
        #expect(trusted.contains(try SocketAddress(ipAddress: "::1", port: 1)))
        #expect(trusted.contains(try SocketAddress(ipAddress: "::ffff:10.1.0.9", port: 1)), "IPv4-mapped IPv6 compares as IPv4")
        #expect(!trusted.contains(nil))
    }

    @Test func upstreamLocationsAndRealmsComeBackToTheClient() {
        let origin = ClientOrigin(scheme: "https", authority: "registry.example.com:8087")
        let base = "http://nexus:8081/repository/docker-repo"
        #expect(UpstreamProxy.rewrite("http://nexus:8081/repository/docker-repo/v2/a/blobs/uploads/1", base: base, origin: origin) == "/v2/a/blobs/uploads/1")
        #expect(UpstreamProxy.rewrite("/repository/docker-repo/v2/a/blobs/uploads/1", base: base, origin: origin) == "/v2/a/blobs/uploads/1")
        #expect(UpstreamProxy.rewrite("/v2/a/blobs/uploads/1", base: base, origin: origin) == "/v2/a/blobs/uploads/1")
        #expect(UpstreamProxy.rewriteRealm("Bearer realm=\"http://nexus:8081/repository/docker-repo/v2/token\",service=\"x\"", base: base, origin: origin)
            == "Bearer realm=\"https://registry.example.com:8087/v2/token\",service=\"x\"")
        #expect(UpstreamProxy.rewriteRealm("Bearer realm=\"https://auth.docker.io/token\"", base: base, origin: origin) == "Bearer realm=\"https://auth.docker.io/token\"")
    }
}

@Suite("Route configuration")
struct RouteConfigurationTests {
    static let certificateFolder: String = {
        let folder = NSTemporaryDirectory() + "berth-route-config"
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for file in ["a.crt", "a.key"] { FileManager.default.createFile(atPath: folder + "/" + file, contents: Data("x".utf8)) }
        return folder
    }()

    @Test func routesParse() throws {
        let config = try ConfigurationLoader.parse("""
            repositories: [{ name: hosted }, { name: group }]
            listeners:
              - { listen: 0.0.0.0:443, tls: { certificates: [ { cert: a.crt, key: a.key, names: ["*.docker.example.com"] } ] } }
            routes:
              - { listen: 0.0.0.0:8086, tls: { cert: a.crt, key: a.key }, repository: hosted }
              - { host: project.example.com, pull: group, push: hosted }
              - { host: "{repo}.docker.example.com" }
              - { host: "*.w.example.com", repository: group }
              - { listen: 0.0.0.0:9443, upstream: "http://nexus:8081/repository/docker-repo/", read_timeout: 600 }
            ns_map: { docker.io: group }
            """, file: Self.certificateFolder + "/berth.yml")
        let routes = config.frontDoor.routes
        #expect(routes.map(\.match) == [.port(8086), .host("project.example.com"), .wildcard(suffix: ".docker.example.com"), .wildcard(suffix: ".w.example.com"), .port(9443)])
        #expect(routes[0].tls?.certificates.first?.cert == Self.certificateFolder + "/a.crt", "relative to the config file")
        #expect(routes[1].endpoint == .split(pull: "group", push: "hosted"))
        #expect(routes[2].endpoint == .subdomain)
        #expect(routes[4].endpoint == .upstream(.init(url: "http://nexus:8081/repository/docker-repo/", readTimeoutSeconds: 600)))
        #expect(config.frontDoor.listeners.first?.tls?.certificates.first?.names == ["*.docker.example.com"])
        #expect(config.frontDoor.nsMap == ["docker.io": "group"])
    }

    @Test(arguments: [
        ("routes:\n  - { host: a.example.com, repository: nope }\n", ":2:40: route refers to repository 'nope'"),
        ("routes:\n  - { host: a.example.com }\n", ":2:5: a route needs repository"),
        ("routes:\n  - { listen: 0.0.0.0:1, host: a.example.com, repository: docker-hosted }\n", ":2:5: a route matches either listen or host"),
        ("routes:\n  - { host: a.example.com, repository: docker-hosted }\n  - { host: a.example.com, repository: docker-hosted }\n", ":3:5: this route matches the same host as the route on line 2"),
        ("routes:\n  - { listen: 127.0.0.1:8081, repository: docker-hosted }\n", ":2:15: port 8081 already has a listener"),
        ("routes:\n  - { host: \"{repo}.x.com\", repository: docker-hosted }\n", ":2:5: a {repo} route takes its repository from the host name"),
        ("routes:\n  - { host: \"bad host\", repository: docker-hosted }\n", ":2:13: 'bad host' is not a host name"),
        ("routes:\n  - { listen: 0.0.0.0:9, upstream: \"ftp://x\" }\n", ":2:36: upstream must be an http or https URL"),
        ("routes:\n  - { host: a.example.com, tls: { cert: a, key: b }, repository: docker-hosted }\n", ":2:33: tls belongs to a listener"),
        ("routes:\n  - { listen: 0.0.0.0:9, tls: { cert: missing.crt, key: a.key }, repository: docker-hosted }\n", ":2:39: cannot read"),
        ("ns_map: { docker.io: nope }\n", ":1:22: ns_map names repository 'nope'"),
        ("routes:\n  - { listen: 0.0.0.0:9, upstream: \"http://x/\", ca_file: a.crt }\n", ":2:58: ca_file sets the CAs an https upstream is checked against"),
        ("routes:\n  - { listen: 0.0.0.0:9, upstream: \"https://x/\", ca_file: missing.crt }\n", ":2:59: cannot read"),
        ("routes:\n  - { listen: 0.0.0.0:9, upstream: \"https://x/\", ca_file: a.crt }\n", ":2:59: '\(RouteConfigurationTests.certificateFolder)/a.crt' is not a PEM file of certificates"),
        ("routes:\n  - { host: a.example.com, repository: docker-hosted, ca_file: a.crt }\n", ":2:64: ca_file applies to upstream routes only"),
    ])
    func badRoutes(yaml: String, expected: String) {
        let file = Self.certificateFolder + "/berth.yml"
        #expect {
            try ConfigurationLoader.parse(yaml, file: file)
        } throws: { error in
            "\(error)".hasPrefix(file + expected)
        }
    }

    @Test func caFileIsReadWithTheConfiguration() throws {
        let certificates = try TestCertificates()
        defer { certificates.remove() }
        let config = try ConfigurationLoader.parse("""
            routes:
              - { listen: 0.0.0.0:9443, upstream: "https://registry.internal:5000/", ca_file: ca.crt }
            """, file: certificates.folder + "/berth.yml")
        #expect(config.frontDoor.routes.first?.endpoint == .upstream(.init(url: "https://registry.internal:5000/", caFile: certificates.caFile)))
    }

    @Test func proxyConfigsCheckHTTPSUpstreams() throws {
        var config = try ConfigurationLoader.parse("repositories: [{ name: hosted }]\n", file: Self.certificateFolder + "/berth.yml")
        config.frontDoor.routes = [
            .init(match: .port(9443), endpoint: .upstream(.init(url: "https://registry.internal/", caFile: "/etc/berth/internal-ca.crt"))),
            .init(match: .port(9444), endpoint: .upstream(.init(url: "https://registry-1.docker.io/"))),
            .init(match: .port(9445), endpoint: .upstream(.init(url: "http://nexus:8081/"))),
        ]
        let nginx = ProxyConfigGenerator.generate(config, flavor: .nginx, backend: "127.0.0.1:8081")
        for directive in ["proxy_ssl_verify on;", "proxy_ssl_server_name on;", "proxy_ssl_trusted_certificate /etc/berth/internal-ca.crt;",
                          "proxy_ssl_trusted_certificate \(ProxyConfigGenerator.systemCABundle);", "location / { proxy_pass https://registry.internal/; }"] {
            #expect(nginx.contains(directive), "nginx: \(directive)")
        }
        #expect(nginx.components(separatedBy: "proxy_ssl_verify on;").count == 3, "the http upstream gets no TLS settings")
        let apache = ProxyConfigGenerator.generate(config, flavor: .apache, backend: "127.0.0.1:8081")
        for directive in ["SSLProxyEngine on", "SSLProxyVerify require", "SSLProxyCACertificateFile /etc/berth/internal-ca.crt",
                          "SSLProxyCACertificateFile \(ProxyConfigGenerator.systemCABundle)"] {
            #expect(apache.contains(directive), "apache: \(directive)")
        }
        #expect(apache.components(separatedBy: "SSLProxyEngine on").count == 3)
        // Apache sends a preserved Host as SNI and checks the certificate against it.
        #expect(apache.components(separatedBy: "ProxyPreserveHost Off").count == 3, "https upstreams get their own name")
    }

    @Test func proxyConfigsCarryTheGuidesSettings() throws {
        let config = try ConfigurationLoader.parse("""
            repositories: [{ name: hosted }, { name: group }]
            routes:
              - { listen: 0.0.0.0:8086, repository: hosted }
              - { host: project.example.com, pull: group, push: hosted }
              - { host: "{repo}.docker.example.com" }
            """, file: Self.certificateFolder + "/berth.yml")
        let nginx = ProxyConfigGenerator.generate(config, flavor: .nginx, backend: "127.0.0.1:8081")
        for directive in ["listen 8086;", "client_max_body_size 0;", "proxy_request_buffering off;", "proxy_read_timeout 300;",
                          "proxy_set_header X-Forwarded-Proto $scheme;", "proxy_pass http://berth_backend/repository/hosted$request_uri;",
                          "1 group;", "default hosted;", "server_name ~^(?<berth_repo>[^.]+)\\.docker\\.example\\.com$;",
                          "proxy_pass http://berth_backend/repository/$berth_repo$request_uri;", "server 127.0.0.1:8081;"] {
            #expect(nginx.contains(directive), "nginx: \(directive)")
        }
        let apache = ProxyConfigGenerator.generate(config, flavor: .apache, backend: "127.0.0.1:8081")
        for directive in ["Listen 8086\n", "AllowEncodedSlashes NoDecode", "ProxyPreserveHost On", "ProxyTimeout 300",
                          "ProxyPass / http://127.0.0.1:8081/repository/hosted/ nocanon", "ProxyPassReverse / http://127.0.0.1:8081/repository/hosted/",
                          "RequestHeader set X-Forwarded-Proto", "RewriteCond %{REQUEST_METHOD} ^(GET|HEAD)$",
                          "ServerAlias *.docker.example.com", "http://127.0.0.1:8081/repository/%1/$1$2 [P,NE]"] {
            #expect(apache.contains(directive), "apache: \(directive)")
        }
    }
}
