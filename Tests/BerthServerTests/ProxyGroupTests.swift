import BerthCore
import BerthRegistry
import BerthServer
import BerthUpstream
import Foundation
import Logging
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing

/// A proxy repository in front of a real upstream: a second Berth listening on a loopback port.
@Suite("Proxy and group repositories")
struct ProxyGroupTests {
    static func proxySide(upstreamPort: Int, maxAge: Int64 = 3600) throws -> TestRegistry {
        var t = try TestRegistry()
        t.repositories = [
            .init(name: "docker-hosted", kind: .hosted),
            .init(name: "hub", kind: .proxy(ProxySettings(client: .init(remote: "http://127.0.0.1:\(upstreamPort)", connectTimeoutSeconds: 2, readTimeoutSeconds: 10), metadataMaxAge: maxAge, autoBlock: false))),
            .init(name: "docker", kind: .group(members: ["docker-hosted", "hub"], writableMember: "docker-hosted")),
            .init(name: "readonly-group", kind: .group(members: ["hub"], writableMember: nil)),
        ]
        return t
    }

    @Test func pullThroughCachesAndServesWhenUpstreamIsGone() async throws {
        let upstream = try TestRegistry()
        defer { upstream.cleanUp() }
        let big = (0..<(5 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let bigDigest = sha256(big)
        let (manifestDigest, side): (String, TestRegistry) = try await upstream.runLive { client, port in
            let push = Pusher(client: client)
            let digest = try await push.image("team/app", tag: "1", layer: "proxied layer")
            try await push.blob("team/app", big)
            let side = try Self.proxySide(upstreamPort: port)
            try await side.runDirect { (proxy: DirectClient) async throws in
                // Manifest by tag, through the proxy and through the group: the upstream's exact bytes.
                let upstreamBody = try await client.execute(uri: "/v2/docker-hosted/team/app/manifests/1", method: .get) { $0.text }
                let viaProxy = try await proxy.execute("/v2/hub/docker-hosted/team/app/manifests/1", host: "localhost")
                #expect(viaProxy.status == .ok)
                #expect(viaProxy.text == upstreamBody)
                #expect(viaProxy.headers[.dockerContentDigest] == digest)
                let viaGroup = try await proxy.execute("/v2/docker/docker-hosted/team/app/manifests/\(digest)", host: "localhost")
                #expect(viaGroup.text == upstreamBody)
                // A blob streamed while cached, by several clients at once: all get the same bytes.
                try await withThrowingTaskGroup(of: String.self) { group in
                    for _ in 0..<5 {
                        group.addTask { sha256(Array(try await proxy.execute("/v2/hub/docker-hosted/team/app/blobs/\(bigDigest)", host: "localhost").body.readableBytesView)) }
                    }
                    for try await got in group { #expect(got == bigDigest) }
                }
                #expect(try await proxy.execute("/v2/docker/docker-hosted/team/app/blobs/\(sha256("proxied layer"))", host: "localhost").text == "proxied layer")
                // Upstream tags, merged in the group with the hosted member's.
                let tags = try await proxy.execute("/v2/hub/docker-hosted/team/app/tags/list", host: "localhost")
                #expect(tags.json["tags"] as? [String] == ["1"])
                // Writes are refused on the proxy and on a group without a writable member.
                for repo in ["hub", "readonly-group"] {
                    let refused = try await proxy.execute("/v2/\(repo)/docker-hosted/team/app/blobs/uploads/", .post, host: "localhost")
                    #expect(refused.status == .methodNotAllowed, "\(repo)")
                    #expect(refused.errorCode == "UNSUPPORTED")
                }
                #expect(try await proxy.execute("/v2/hub/docker-hosted/team/app/manifests/\(digest)", .delete, host: "localhost").errorCode == "UNSUPPORTED")
                // Not upstream: MANIFEST_UNKNOWN, and remembered.
                #expect(try await proxy.execute("/v2/hub/docker-hosted/team/app/manifests/nope", host: "localhost").errorCode == "MANIFEST_UNKNOWN")
            }
            return (digest, side)
        }
        defer { side.cleanUp() }
        // The upstream is gone: cached content still pulls, uncached content gets a clear error.
        try await side.runDirect { (proxy: DirectClient) async throws in
            let cached = try await proxy.execute("/v2/hub/docker-hosted/team/app/manifests/1", host: "localhost")
            #expect(cached.status == .ok)
            #expect(cached.headers[.dockerContentDigest] == manifestDigest)
            #expect(try await proxy.execute("/v2/docker/docker-hosted/team/app/blobs/\(bigDigest)", host: "localhost").body.readableBytes == big.count)
            let uncached = try await proxy.execute("/v2/hub/docker-hosted/team/app/manifests/2", host: "localhost")
            #expect(uncached.status == .serviceUnavailable)
            #expect(uncached.errorCode == "UNAVAILABLE")
            #expect(try await proxy.execute("/v2/hub/docker-hosted/team/app/blobs/\(sha256("never"))", host: "localhost").status == .serviceUnavailable)
        }
    }

    @Test func groupPushesGoToTheWritableMember() async throws {
        let upstream = try TestRegistry()
        defer { upstream.cleanUp() }
        try await upstream.runLive { client, port in
            let shared = try await Pusher(client: client).blob("base", "base layer")
            let side = try Self.proxySide(upstreamPort: port)
            defer { side.cleanUp() }
            try await side.runDirect { (proxy: DirectClient) async throws in
                // The group answers HEAD for a blob another member holds: the client skips the upload...
                #expect(try await proxy.execute("/v2/docker/docker-hosted/base/blobs/\(shared)", .head, host: "localhost").status == .ok)
                _ = try await proxy.execute("/v2/docker/docker-hosted/base/blobs/\(shared)", host: "localhost")
                // ... pushes its own blobs and the manifest through the group...
                let config = sha256("{}")
                #expect(try await proxy.execute("/v2/docker/docker-hosted/base/blobs/uploads/?digest=\(config)", .post, host: "localhost", body: "{}").status == .created)
                let manifest = ociManifest(config: (config, 2), layers: [(shared, 10)])
                let put = try await proxy.execute("/v2/docker/docker-hosted/base/manifests/mine", .put, host: "localhost", headers: [.contentType: "application/vnd.oci.image.manifest.v1+json"], body: manifest)
                #expect(put.status == .created, "\(put.text)")
                // ... and it lands in the writable member, pullable there and through the group.
                #expect(try await proxy.execute("/v2/docker-hosted/docker-hosted/base/manifests/mine", host: "localhost").text == manifest)
                #expect(try await proxy.execute("/v2/docker-hosted/docker-hosted/base/blobs/\(shared)", host: "localhost").text == "base layer")
                #expect(try await proxy.execute("/v2/docker/docker-hosted/base/manifests/mine", host: "localhost").text == manifest)
                // A chunked session through the group stays on the writable member.
                let location = try #require(try await proxy.execute("/v2/docker/team/x/blobs/uploads/", .post, host: "localhost").headers[.location])
                #expect(location.hasPrefix("/v2/docker/team/x/blobs/uploads/"))
                #expect(try await proxy.execute(location, .patch, host: "localhost", body: "chunk").status == .accepted)
                #expect(try await proxy.execute("\(location)?digest=\(sha256("chunk"))", .put, host: "localhost").status == .created)
                #expect(try await proxy.execute("/v2/docker-hosted/team/x/blobs/\(sha256("chunk"))", host: "localhost").text == "chunk")
                // The group's catalog lists its members' images under its own name.
                let catalog = try await proxy.execute("/repository/docker/v2/_catalog", host: "localhost")
                #expect((catalog.json["repositories"] as? [String])?.contains("docker-hosted/base") == true)
            }
        }
    }
}

extension ProxyGroupTests {
    @Test func splitRouteOverAGroupReferrersAndCachePurge() async throws {
        let upstream = try TestRegistry()
        defer { upstream.cleanUp() }
        try await upstream.runLive { client, port in
            let push = Pusher(client: client)
            let subject = try await push.image("team/app", tag: "1", layer: "app layer")
            let subjectSize = try await client.execute(uri: "/v2/docker-hosted/team/app/manifests/1", method: .head) { Int($0.headers[.contentLength]!)! }
            let empty = try await push.blob("team/app", "{}")
            let sig = try await push.blob("team/app", "signature")
            let referrer = ociManifest(config: (empty, 2), layers: [(sig, 9)], subject: (subject, subjectSize), artifactType: "application/vnd.example.sig")
            try await push.manifestPut("team/app", sha256(referrer), referrer, type: "application/vnd.oci.image.manifest.v1+json")

            var side = try Self.proxySide(upstreamPort: port)
            side.frontDoor.routes = [.init(match: .host("project.example.com"), endpoint: .split(pull: "docker", push: "docker-hosted"))]
            defer { side.cleanUp() }
            try await side.runDirect { (proxy: DirectClient) async throws in
                let host = "project.example.com"
                // Reads through the split route come from the group (here: its proxy member)...
                let pulled = try await proxy.execute("/v2/docker-hosted/team/app/manifests/1", host: host)
                #expect(pulled.status == .ok)
                #expect(pulled.headers[.dockerContentDigest] == subject)
                // ... writes go to the hosted repository.
                #expect(try await proxy.execute("/v2/mine/blobs/uploads/?digest=\(sha256("x"))", .post, host: host, body: "x").status == .created)
                #expect(try await proxy.execute("/v2/docker-hosted/mine/blobs/\(sha256("x"))", host: "localhost").text == "x")
                #expect(try await proxy.execute("/v2/mine/blobs/\(sha256("x"))", host: host).text == "x", "the group reads its hosted member")
                // Referrers come from the upstream's referrers API, through the proxy and the group.
                for path in ["/v2/hub/docker-hosted/team/app/referrers/\(subject)", "/v2/docker/docker-hosted/team/app/referrers/\(subject)"] {
                    let referrers = try await proxy.execute(path, host: "localhost")
                    let manifests = referrers.json["manifests"] as? [[String: Any]] ?? []
                    #expect(manifests.map { $0["digest"] as? String } == [sha256(referrer)], "\(path)")
                    #expect(manifests.first?["artifactType"] as? String == "application/vnd.example.sig")
                }
                // The cache can be purged; the next pull fetches again.
                #expect(try await proxy.execute("/v2/hub/docker-hosted/team/app/manifests/1", host: "localhost").status == .ok)
                let purged = try await proxy.execute("/service/rest/v1/repositories/hub/cache", .delete, host: "localhost")
                #expect(purged.status == .ok)
                #expect((purged.json["removedManifests"] as? Int ?? 0) >= 1)
                #expect(try await proxy.execute("/service/rest/v1/repositories/docker-hosted/cache", .delete, host: "localhost").status == .methodNotAllowed)
                #expect(try await proxy.execute("/v2/hub/docker-hosted/team/app/manifests/1", host: "localhost").status == .ok)
            }
        }
    }
}

extension TestRegistry {
    /// Runs a real server on a loopback port for `body`, which gets a client and the port.
    func runLive<T: Sendable>(_ body: @Sendable (any TestClientProtocol, Int) async throws -> T) async throws -> T {
        var logger = Logger(label: "berth-upstream")
        logger.logLevel = .warning
        let registry = try await BerthApplication.buildRegistry(configuration, logger: logger)
        let app = try await BerthApplication.buildApplication(configuration, registry: registry, logger: logger)
        do {
            let result = try await app.test(.live) { client in
                try await body(client, try #require(client.port))
            }
            await registry.shutdown()
            return result
        } catch {
            await registry.shutdown()
            throw error
        }
    }
}
