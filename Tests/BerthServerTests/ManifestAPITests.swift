import BerthCore
import BerthServer
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing

@Suite("Manifest, tag, catalog and referrers endpoints")
struct ManifestAPITests {
    static let oci = "application/vnd.oci.image.manifest.v1+json"
    static let docker = "application/vnd.docker.distribution.manifest.v2+json"

    @Test func putGetHeadByTagAndDigest() async throws {
        let t = try TestRegistry()
        defer { t.cleanUp() }
        try await t.run { client in
            let push = Pusher(client: client)
            let config = try await push.blob("team/app", "{}")
            let layer = try await push.blob("team/app", "layer")
            let body = ociManifest(config: (config, 2), layers: [(layer, 5)])
            let digest = try await client.execute(uri: "/v2/docker-hosted/team/app/manifests/1", method: .put, headers: [.contentType: Self.oci], body: ByteBuffer(string: body)) { r in
                #expect(r.status == .created)
                let digest = try #require(r.headers[.dockerContentDigest])
                #expect(digest == sha256(body))
                #expect(r.headers[.location] == "/v2/docker-hosted/team/app/manifests/\(digest)")
                return digest
            }
            for ref in ["1", digest] {
                try await client.execute(uri: "/v2/docker-hosted/team/app/manifests/\(ref)", method: .get, headers: [.accept: Self.oci]) { r in
                    #expect(r.status == .ok)
                    #expect(r.text == body, "bytes served exactly as pushed")
                    #expect(r.headers[.contentType] == Self.oci)
                    #expect(r.headers[.dockerContentDigest] == digest)
                }
                try await client.execute(uri: "/v2/docker-hosted/team/app/manifests/\(ref)", method: .head) { r in
                    #expect(r.status == .ok)
                    #expect(r.headers[.contentLength] == String(body.utf8.count))
                    #expect(r.headers[.dockerContentDigest] == digest)
                    #expect(r.body.readableBytes == 0)
                }
            }
            // A client that accepts only Docker types is told, not given bytes it cannot parse.
            try await client.execute(uri: "/v2/docker-hosted/team/app/manifests/1", method: .get, headers: [.accept: Self.docker]) { r in
                #expect(r.status == .notFound)
                #expect(r.errorCode == "MANIFEST_UNKNOWN")
            }
            try await client.execute(uri: "/v2/docker-hosted/team/app/manifests/2", method: .get) { r in
                #expect(r.status == .notFound)
                #expect(r.errorCode == "MANIFEST_UNKNOWN")
            }
            // The same manifest under the Nexus path.
            try await client.execute(uri: "/repository/docker-hosted//v2/team/app/manifests/1", method: .get) { r in
                #expect(r.status == .ok)
                #expect(r.text == body)
            }
        }
    }

    @Test func pushByDigestChecksTheDigest() async throws {
        let t = try TestRegistry()
        defer { t.cleanUp() }
        try await t.run { client in
            let push = Pusher(client: client)
            let config = try await push.blob("a", "{}")
            let body = ociManifest(config: (config, 2), layers: [])
            try await push.manifestPut("a", sha256(body), body, type: Self.oci)
            try await client.execute(uri: "/v2/docker-hosted/a/manifests/\(sha256("other"))", method: .put, headers: [.contentType: Self.oci], body: ByteBuffer(string: body)) { r in
                #expect(r.status == .badRequest)
                #expect(r.errorCode == "DIGEST_INVALID")
            }
            // Pushed by digest only: not tagged.
            try await client.execute(uri: "/v2/docker-hosted/a/tags/list", method: .get) { r in
                #expect(r.json["tags"] as? [String] == [])
            }
        }
    }

    @Test func validationErrors() async throws {
        let t = try TestRegistry()
        defer { t.cleanUp() }
        try await t.run { client in
            let push = Pusher(client: client)
            let config = try await push.blob("a", "{}")
            let missing = sha256("never pushed")
            let cases: [(String, String, String, HTTPResponse.Status)] = [
                (ociManifest(config: (config, 2), layers: [(missing, 12)]), Self.oci, "MANIFEST_BLOB_UNKNOWN", .notFound),
                (ociManifest(config: (missing, 2), layers: []), Self.oci, "MANIFEST_BLOB_UNKNOWN", .notFound),
                (ociManifest(config: (config, 2), layers: []), Self.docker, "MANIFEST_INVALID", .badRequest),
                ("{not json", Self.oci, "MANIFEST_INVALID", .badRequest),
                ("{\"schemaVersion\":1,\"name\":\"a\",\"tag\":\"1\",\"fsLayers\":[]}", "application/vnd.docker.distribution.manifest.v1+prettyjws", "MANIFEST_INVALID", .badRequest),
                (ociIndex([(missing, 100)]), "application/vnd.oci.image.index.v1+json", "MANIFEST_BLOB_UNKNOWN", .notFound),
                ("{\"schemaVersion\":2,\"mediaType\":\"\(Self.oci)\",\"config\":{\"mediaType\":\"x\",\"digest\":\"sha256:zz\",\"size\":1},\"layers\":[]}", Self.oci, "MANIFEST_INVALID", .badRequest),
            ]
            for (body, type, code, status) in cases {
                try await client.execute(uri: "/v2/docker-hosted/a/manifests/latest", method: .put, headers: [.contentType: type], body: ByteBuffer(string: body)) { r in
                    #expect(r.status == status, "\(body.prefix(60))")
                    #expect(r.errorCode == code, "\(body.prefix(60))")
                }
            }
            // Nothing of the failed pushes is visible.
            try await client.execute(uri: "/v2/docker-hosted/a/manifests/latest", method: .get) { #expect($0.status == .notFound) }
            let huge = "{\"schemaVersion\":2,\"pad\":\"" + String(repeating: "x", count: 4 * 1024 * 1024) + "\"}"
            try await client.execute(uri: "/v2/docker-hosted/a/manifests/big", method: .put, headers: [.contentType: Self.oci], body: ByteBuffer(string: huge)) { r in
                #expect(r.status == .contentTooLarge)
                #expect(r.errorCode == "MANIFEST_INVALID")
            }
            for badTag in ["-bad", "a%20b", String(repeating: "t", count: 129)] {
                try await client.execute(uri: "/v2/docker-hosted/a/manifests/\(badTag)", method: .put, headers: [.contentType: Self.oci], body: ByteBuffer(string: "{}")) { r in
                    #expect(r.status == .badRequest, "\(badTag)")
                    #expect(r.errorCode == "TAG_INVALID")
                }
            }
        }
    }

    @Test func indexesAndDockerTypes() async throws {
        let t = try TestRegistry()
        defer { t.cleanUp() }
        try await t.run { client in
            let push = Pusher(client: client)
            let amd = try await push.image("multi", tag: "amd64", layer: "amd64 layer")
            let arm = try await push.image("multi", tag: "arm64", layer: "arm64 layer", extra: ",\"variant\":\"v8\"")
            let size = { (d: String) async throws -> Int in
                try await client.execute(uri: "/v2/docker-hosted/multi/manifests/\(d)", method: .head) { Int($0.headers[.contentLength]!)! }
            }
            let index = ociIndex([(amd, try await size(amd)), (arm, try await size(arm))])
            let indexDigest = try await push.manifestPut("multi", "latest", index, type: "application/vnd.oci.image.index.v1+json")
            try await client.execute(uri: "/v2/docker-hosted/multi/manifests/latest", method: .get) { r in
                #expect(r.headers[.contentType] == "application/vnd.oci.image.index.v1+json")
                #expect(r.headers[.dockerContentDigest] == indexDigest)
            }
            // Docker schema2 manifest and manifest list.
            let config = try await push.blob("docker", "{\"os\":\"linux\"}")
            let layer = try await push.blob("docker", "docker layer")
            let dockerManifest = "{\"schemaVersion\":2,\"mediaType\":\"\(Self.docker)\",\"config\":{\"mediaType\":\"application/vnd.docker.container.image.v1+json\",\"digest\":\"\(config)\",\"size\":14},\"layers\":[{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar.gzip\",\"digest\":\"\(layer)\",\"size\":12}]}"
            let dm = try await push.manifestPut("docker", "v2", dockerManifest, type: Self.docker)
            let list = ociIndex([(dm, dockerManifest.utf8.count)], mediaType: "application/vnd.docker.distribution.manifest.list.v2+json", childType: Self.docker)
            try await push.manifestPut("docker", "list", list, type: "application/vnd.docker.distribution.manifest.list.v2+json")
            try await client.execute(uri: "/v2/docker-hosted/docker/manifests/list", method: .get, headers: [.accept: "application/vnd.docker.distribution.manifest.list.v2+json, \(Self.docker)"]) { r in
                #expect(r.status == .ok)
                #expect(r.headers[.contentType] == "application/vnd.docker.distribution.manifest.list.v2+json")
            }
        }
    }

    @Test func deleteByTagAndByDigest() async throws {
        let t = try TestRegistry()
        defer { t.cleanUp() }
        try await t.run { client in
            let digest = try await Pusher(client: client).image("a", tag: "one")
            try await Pusher(client: client).manifestPut("a", "two", try await client.execute(uri: "/v2/docker-hosted/a/manifests/one", method: .get) { $0.text }, type: Self.oci)
            try await client.execute(uri: "/v2/docker-hosted/a/manifests/one", method: .delete) { #expect($0.status == .accepted) }
            try await client.execute(uri: "/v2/docker-hosted/a/manifests/one", method: .get) { #expect($0.status == .notFound) }
            try await client.execute(uri: "/v2/docker-hosted/a/manifests/\(digest)", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v2/docker-hosted/a/manifests/\(digest)", method: .delete) { #expect($0.status == .accepted) }
            try await client.execute(uri: "/v2/docker-hosted/a/manifests/two", method: .get) { #expect($0.status == .notFound, "tags of a deleted manifest go with it") }
            try await client.execute(uri: "/v2/docker-hosted/a/manifests/\(digest)", method: .delete) { r in
                #expect(r.status == .notFound)
                #expect(r.errorCode == "MANIFEST_UNKNOWN")
            }
            try await client.execute(uri: "/v2/docker-hosted/a/tags/list", method: .get) { r in
                #expect(r.status == .notFound, "an image without manifests is unknown")
                #expect(r.errorCode == "NAME_UNKNOWN")
            }
        }
    }

    @Test func tagsListPagination() async throws {
        let t = try TestRegistry()
        defer { t.cleanUp() }
        try await t.run { client in
            let push = Pusher(client: client)
            let body = try await client.execute(uri: "/v2/docker-hosted/a/manifests/\(try await push.image("a", tag: "v3"))", method: .get) { $0.text }
            for tag in ["v1", "latest", "v10", "V2", "v2"] { try await push.manifestPut("a", tag, body, type: Self.oci) }
            let all = ["V2", "latest", "v1", "v10", "v2", "v3"]
            try await client.execute(uri: "/v2/docker-hosted/a/tags/list", method: .get) { r in
                #expect(r.json["name"] as? String == "docker-hosted/a")
                #expect(r.json["tags"] as? [String] == all)
                #expect(r.headers[.link] == nil)
            }
            try await client.execute(uri: "/v2/docker-hosted/a/tags/list?n=2", method: .get) { r in
                #expect(r.json["tags"] as? [String] == ["V2", "latest"])
                #expect(r.headers[.link] == "</v2/docker-hosted/a/tags/list?n=2&last=latest>; rel=\"next\"")
            }
            try await client.execute(uri: "/v2/docker-hosted/a/tags/list?n=2&last=v10", method: .get) { r in
                #expect(r.json["tags"] as? [String] == ["v2", "v3"])
                #expect(r.headers[.link] == nil)
            }
            try await client.execute(uri: "/v2/docker-hosted/a/tags/list?last=v2", method: .get) { r in
                #expect(r.json["tags"] as? [String] == ["v3"])
            }
            try await client.execute(uri: "/v2/docker-hosted/a/tags/list?n=0", method: .get) { r in
                #expect(r.json["tags"] as? [String] == [])
            }
            try await client.execute(uri: "/v2/docker-hosted/a/tags/list?n=-1", method: .get) { r in
                #expect(r.status == .badRequest)
                #expect(r.errorCode == "PAGINATION_NUMBER_INVALID")
            }
            try await client.execute(uri: "/repository/docker-hosted/v2/a/tags/list?n=1", method: .get) { r in
                #expect(r.json["name"] as? String == "a")
                #expect(r.headers[.link] == "</repository/docker-hosted/v2/a/tags/list?n=1&last=V2>; rel=\"next\"")
            }
            try await client.execute(uri: "/v2/docker-hosted/nothing/tags/list", method: .get) { #expect($0.errorCode == "NAME_UNKNOWN") }
        }
    }

    @Test func catalogAcrossRepositoriesAndPerRepository() async throws {
        let t = try TestRegistry()
        defer { t.cleanUp() }
        try await t.run { client in
            try await Pusher(client: client).image("team/b", tag: "1")
            try await Pusher(client: client).image("team/a", tag: "1")
            try await Pusher(client: client, prefix: "/v2/other-hosted/").image("x", tag: "1")
            try await client.execute(uri: "/v2/_catalog", method: .get) { r in
                #expect(r.json["repositories"] as? [String] == ["docker-hosted/team/a", "docker-hosted/team/b", "other-hosted/x"])
            }
            try await client.execute(uri: "/v2/_catalog?n=1", method: .get) { r in
                #expect(r.json["repositories"] as? [String] == ["docker-hosted/team/a"])
                #expect(r.headers[.link] == "</v2/_catalog?n=1&last=docker-hosted/team/a>; rel=\"next\"")
            }
            try await client.execute(uri: "/v2/_catalog?n=1&last=docker-hosted/team/a", method: .get) { r in
                #expect(r.json["repositories"] as? [String] == ["docker-hosted/team/b"])
            }
            try await client.execute(uri: "/repository/docker-hosted/v2/_catalog", method: .get) { r in
                #expect(r.json["repositories"] as? [String] == ["team/a", "team/b"])
            }
            try await client.execute(uri: "/repository/docker-hosted/v2/_catalog?n=1&last=team/a", method: .get) { r in
                #expect(r.json["repositories"] as? [String] == ["team/b"])
                #expect(r.headers[.link] == nil)
            }
        }
    }

    @Test func referrersWithSubjectAndArtifactTypeFilter() async throws {
        let t = try TestRegistry()
        defer { t.cleanUp() }
        try await t.run { client in
            let push = Pusher(client: client)
            let subject = try await push.image("app", tag: "1")
            let subjectSize = try await client.execute(uri: "/v2/docker-hosted/app/manifests/1", method: .head) { Int($0.headers[.contentLength]!)! }
            try await client.execute(uri: "/v2/docker-hosted/app/referrers/\(subject)", method: .get) { r in
                #expect(r.status == .ok)
                #expect(r.headers[.contentType] == "application/vnd.oci.image.index.v1+json")
                #expect((r.json["manifests"] as? [Any])?.count == 0)
            }
            let empty = try await push.blob("app", "{}")
            let sig = try await push.blob("app", "signature")
            let sbom = try await push.blob("app", "sbom")
            for (blob, type, size) in [(sig, "application/vnd.example.signature", 9), (sbom, "application/spdx+json", 4)] {
                let body = ociManifest(config: (empty, 2), layers: [(blob, size)], subject: (subject, subjectSize), artifactType: type, annotations: ["org.example.kind": type])
                try await client.execute(uri: "/v2/docker-hosted/app/manifests/\(sha256(body))", method: .put, headers: [.contentType: Self.oci], body: ByteBuffer(string: body)) { r in
                    #expect(r.status == .created)
                    #expect(r.headers[.ociSubject] == subject)
                }
            }
            try await client.execute(uri: "/v2/docker-hosted/app/referrers/\(subject)", method: .get) { r in
                let manifests = r.json["manifests"] as? [[String: Any]] ?? []
                #expect(manifests.count == 2)
                #expect(Set(manifests.compactMap { $0["artifactType"] as? String }) == ["application/vnd.example.signature", "application/spdx+json"])
                #expect(manifests.allSatisfy { ($0["annotations"] as? [String: String])?["org.example.kind"] == $0["artifactType"] as? String })
                #expect(r.headers[.ociFiltersApplied] == nil)
            }
            try await client.execute(uri: "/v2/docker-hosted/app/referrers/\(subject)?artifactType=application/spdx%2Bjson", method: .get) { r in
                let manifests = r.json["manifests"] as? [[String: Any]] ?? []
                #expect(manifests.count == 1)
                #expect(manifests.first?["artifactType"] as? String == "application/spdx+json")
                #expect(r.headers[.ociFiltersApplied] == "artifactType")
            }
            // A subject that does not exist (yet) is allowed; its referrers list is empty, not an error.
            try await client.execute(uri: "/v2/docker-hosted/app/referrers/\(sha256("nothing"))", method: .get) { r in
                #expect(r.status == .ok)
            }
            try await client.execute(uri: "/v2/docker-hosted/app/referrers/sha256:bad", method: .get) { #expect($0.errorCode == "DIGEST_INVALID") }
        }
    }

    @Test func nexusPathPushUsesNexusLocations() async throws {
        let t = try TestRegistry()
        defer { t.cleanUp() }
        try await t.run { client in
            let prefix = "/repository/docker-hosted//v2/"
            let location = try await client.execute(uri: "\(prefix)team/app/blobs/uploads/", method: .post) { r in
                #expect(r.status == .accepted)
                return try #require(r.headers[.location])
            }
            #expect(location.hasPrefix("/repository/docker-hosted/v2/team/app/blobs/uploads/"))
            // What nginx's `proxy_pass …/repository/r/$request_uri` sends back for that Location.
            try await client.execute(uri: "/repository/docker-hosted/" + location, method: .patch, body: ByteBuffer(string: "data")) { #expect($0.status == .accepted) }
            try await client.execute(uri: "\(location)?digest=\(sha256("data"))", method: .put) { #expect($0.status == .created) }
            try await Pusher(client: client, prefix: prefix).image("team/app", tag: "1")
            try await client.execute(uri: "/v2/docker-hosted/team/app/manifests/1", method: .get) { #expect($0.status == .ok) }
        }
    }
}
