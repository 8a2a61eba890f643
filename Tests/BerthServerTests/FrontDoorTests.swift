import BerthCore
import BerthServer
import Foundation
import HTTPTypes
import NIOCore
import Testing

@Suite("Front door routing by Host (in process)")
struct FrontDoorTests {
    static func registry() throws -> TestRegistry {
        var t = try TestRegistry()
        t.frontDoor.routes = [
            .init(match: .host("push.example.com"), endpoint: .repository("docker-hosted")),
            .init(match: .host("project.example.com"), endpoint: .split(pull: "other-hosted", push: "docker-hosted")),
            .init(match: .wildcard(suffix: ".docker.example.com"), endpoint: .subdomain),
            .init(match: .wildcard(suffix: ".wild.example.com"), endpoint: .repository("other-hosted")),
        ]
        t.frontDoor.nsMap = ["docker.io": "other-hosted"]
        return t
    }

    @Test func hostRoutesBindRepositories() async throws {
        let t = try Self.registry()
        defer { t.cleanUp() }
        try await t.runDirect { (client: DirectClient) async throws in
            let x = sha256("x")
            // Pushed through the exact host route (case and port ignored): lands in docker-hosted.
            let started = try await client.execute("/v2/team/app/blobs/uploads/", .post, host: "PUSH.example.com:443")
            #expect(started.status == .accepted)
            let location = try #require(started.headers[.location])
            #expect(location.hasPrefix("/v2/team/app/blobs/uploads/"), "no internal path leaks to a routed client")
            let done = try await client.execute("\(location)?digest=\(x)", .put, host: "push.example.com", body: "x")
            #expect(done.status == .created)
            #expect(done.headers[.location] == "/v2/team/app/blobs/\(x)")
            #expect(try await client.execute("/v2/docker-hosted/team/app/blobs/\(x)", host: "localhost").text == "x")

            // The subdomain names the repository.
            #expect(try await client.execute("/v2/team/app/blobs/\(x)", host: "docker-hosted.docker.example.com").text == "x")
            let other = try await client.execute("/v2/team/app/blobs/\(x)", host: "other-hosted.docker.example.com")
            #expect(other.status == .notFound, "another repository never answers with this one's content")
            #expect(other.errorCode == "BLOB_UNKNOWN")
            let unknown = try await client.execute("/v2/", host: "nope.docker.example.com")
            #expect(unknown.status == .notFound)
            #expect(unknown.errorCode == "NAME_UNKNOWN")
            // Exactly one label is captured.
            #expect(try await client.execute("/v2/team/app/blobs/\(x)", host: "a.docker-hosted.docker.example.com").status != .ok)
            #expect(try await client.execute("/v2/team/app/blobs/\(x)", host: "anything.wild.example.com").status == .notFound)

            // Catalog on a bound host lists that repository's images by their bare names.
            let config = sha256("{}")
            _ = try await client.execute("/v2/team/app/blobs/uploads/?digest=\(config)", .post, host: "push.example.com", body: "{}")
            let manifest = ociManifest(config: (config, 2), layers: [(x, 1)])
            let put = try await client.execute("/v2/team/app/manifests/1", .put, host: "push.example.com", headers: [.contentType: "application/vnd.oci.image.manifest.v1+json"], body: manifest)
            #expect(put.status == .created)
            #expect(put.headers[.location] == "/v2/team/app/manifests/\(sha256(manifest))")
            #expect(try await client.execute("/v2/_catalog", host: "push.example.com").json["repositories"] as? [String] == ["team/app"])
            #expect(try await client.execute("/v2/team/app/tags/list?n=1", host: "push.example.com").json["name"] as? String == "team/app")
        }
    }

    @Test func pullPushSplit() async throws {
        let t = try Self.registry()
        defer { t.cleanUp() }
        try await t.runDirect { (client: DirectClient) async throws in
            let host = "project.example.com"
            let digest = sha256("split")
            // Writes go to the push repository...
            #expect(try await client.execute("/v2/team/app/blobs/uploads/?digest=\(digest)", .post, host: host, body: "split").status == .created)
            #expect(try await client.execute("/v2/docker-hosted/team/app/blobs/\(digest)", .head, host: "localhost").status == .ok)
            // ... and a session's later requests (its GET status included) stay on the push side.
            let location = try #require(try await client.execute("/v2/team/app/blobs/uploads/", .post, host: host).headers[.location])
            #expect(try await client.execute(location, .get, host: host).status == .noContent)
            // Reads come from the pull repository.
            #expect(try await client.execute("/v2/team/app/blobs/\(digest)", .head, host: host).status == .notFound)
            #expect(try await client.execute("/v2/other-hosted/team/app/blobs/uploads/?digest=\(digest)", .post, host: "localhost", body: "split").status == .created)
            #expect(try await client.execute("/v2/team/app/blobs/\(digest)", host: host).text == "split")
        }
    }

    @Test func unknownHostsOnTheMainListenerKeepPathAccess() async throws {
        let t = try Self.registry()
        defer { t.cleanUp() }
        try await t.runDirect { (client: DirectClient) async throws in
            let p = sha256("p")
            #expect(try await client.execute("/v2/docker-hosted/a/blobs/uploads/?digest=\(p)", .post, host: "localhost:8081", body: "p").status == .created)
            #expect(try await client.execute("/repository/docker-hosted/v2/a/blobs/\(p)", host: "10.0.0.1").text == "p")
            // The regular surface of a routed host still serves the Nexus path (the guide's `location /`).
            #expect(try await client.execute("/repository/docker-hosted/v2/a/blobs/\(p)", host: "project.example.com").text == "p")
            #expect(try await client.execute("/", host: "project.example.com").status == .ok)
        }
    }

    @Test func containerdMirrorNamespaceMap() async throws {
        let t = try Self.registry()
        defer { t.cleanUp() }
        try await t.runDirect { (client: DirectClient) async throws in
            let m = sha256("m")
            #expect(try await client.execute("/v2/other-hosted/library/alpine/blobs/uploads/?digest=\(m)", .post, host: "localhost", body: "m").status == .created)
            #expect(try await client.execute("/v2/library/alpine/blobs/\(m)?ns=docker.io", host: "mirror.local").text == "m")
            let unmapped = try await client.execute("/v2/library/alpine/blobs/\(m)?ns=quay.io", host: "mirror.local")
            #expect(unmapped.status == .notFound, "an unmapped ns falls back to the repository path: `library` is unknown")
            #expect(unmapped.errorCode == "NAME_UNKNOWN")
        }
    }

    @Test func forwardedPrefixIsIgnoredFromUntrustedPeers() async throws {
        var t = try Self.registry()
        t.trustedProxies = ["127.0.0.1/32"]
        defer { t.cleanUp() }
        try await t.runDirect { (client: DirectClient) async throws in
            // The in-process request has no peer address, so it is no trusted proxy.
            let r = try await client.execute("/repository/docker-hosted/v2/a/blobs/uploads/", .post, host: "localhost", headers: [HTTPField.Name("X-Forwarded-Prefix")!: "/evil"])
            #expect(r.headers[.location]?.hasPrefix("/repository/docker-hosted/v2/a/blobs/uploads/") == true)
        }
    }
}
