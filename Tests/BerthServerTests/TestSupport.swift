import BerthCore
import BerthServer
import BerthRegistry
import BerthStorage
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing

/// A fresh Berth (folder + SQLite in a temp dir) with repositories `docker-hosted` and `other-hosted`.
struct TestRegistry {
    let dataDirectory: String
    /// Front door settings for routing tests.
    var frontDoor = FrontDoorConfiguration()
    var trustedProxies: [String] = []
    /// Replaces the default test repositories.
    var repositories: [RepositoryDefinition]?
    /// Turns access control on.
    var auth: AuthConfiguration?
    /// Replaces the folder blob store (e.g. with S3 on the test's moto server).
    var blobs: BerthConfiguration.BlobStorage?

    init() throws {
        dataDirectory = NSTemporaryDirectory() + "berth-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
    }

    var configuration: BerthConfiguration {
        var config = BerthConfiguration.defaults(dataDirectory: dataDirectory)
        config.listen = .init(host: "127.0.0.1", port: 0)
        config.repositories = repositories ?? [.init(name: "docker-hosted", kind: .hosted), .init(name: "other-hosted", kind: .hosted)]
        config.frontDoor = frontDoor
        config.trustedProxies = trustedProxies
        config.auth = auth
        if let blobs { config.blobs = blobs }
        return config
    }

    /// Runs `body` against an in-process instance; call it again for a "restart" over the same data.
    func run<T: Sendable>(_ body: @Sendable (any TestClientProtocol) async throws -> T) async throws -> T {
        var logger = Logger(label: "berth-test")
        logger.logLevel = .warning
        let registry = try await BerthApplication.buildRegistry(configuration, logger: logger)
        let app = try await BerthApplication.buildApplication(configuration, registry: registry, logger: logger)
        do {
            let result = try await app.test(.router, body)
            await registry.shutdown()
            return result
        } catch {
            await registry.shutdown()
            throw error
        }
    }

    func cleanUp() {
        try? FileManager.default.removeItem(atPath: dataDirectory)
    }
}

extension TestResponse {
    var text: String { String(buffer: body) }

    /// The OCI error code of an error body.
    var errorCode: String? {
        guard let json = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
              let errors = json["errors"] as? [[String: Any]] else { return nil }
        return errors.first?["code"] as? String
    }

    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:]
    }
}

func sha256(_ bytes: [UInt8]) -> String { Digest.of(bytes).description }
func sha256(_ text: String) -> String { sha256(Array(text.utf8)) }

/// Client-side steps of a push, as a Docker client would do them.
struct Pusher {
    let client: any TestClientProtocol
    /// Path prefix up to the image name, e.g. `/v2/docker-hosted/` or `/repository/docker-hosted/v2/`.
    var prefix = "/v2/docker-hosted/"

    @discardableResult
    func blob(_ name: String, _ bytes: [UInt8]) async throws -> String {
        let digest = sha256(bytes)
        try await client.execute(uri: "\(prefix)\(name)/blobs/uploads/?digest=\(digest)", method: .post, body: ByteBuffer(bytes: bytes)) { r in
            #expect(r.status == .created, "monolithic push of \(digest)")
        }
        return digest
    }

    @discardableResult
    func blob(_ name: String, _ text: String) async throws -> String { try await blob(name, Array(text.utf8)) }

    /// Pushes a config and one layer and an OCI manifest referencing them; returns the manifest digest.
    @discardableResult
    func image(_ name: String, tag: String, layer: String = "layer", extra: String = "") async throws -> String {
        let config = "{\"architecture\":\"amd64\",\"os\":\"linux\"\(extra)}"
        let configDigest = try await blob(name, config)
        let layerDigest = try await blob(name, layer)
        let manifest = ociManifest(config: (configDigest, config.utf8.count), layers: [(layerDigest, layer.utf8.count)])
        return try await manifestPut(name, tag, manifest, type: "application/vnd.oci.image.manifest.v1+json")
    }

    @discardableResult
    func manifestPut(_ name: String, _ reference: String, _ body: String, type: String, expect: HTTPResponse.Status = .created) async throws -> String {
        try await client.execute(uri: "\(prefix)\(name)/manifests/\(reference)", method: .put, headers: [.contentType: type], body: ByteBuffer(string: body)) { r in
            #expect(r.status == expect, "manifest put \(name):\(reference): \(r.text)")
            return r.headers[.dockerContentDigest] ?? ""
        }
    }
}

func ociManifest(config: (String, Int), layers: [(String, Int)], subject: (String, Int)? = nil, artifactType: String? = nil, annotations: [String: String]? = nil) -> String {
    var s = "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\""
    if let artifactType { s += ",\"artifactType\":\"\(artifactType)\"" }
    s += ",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"\(config.0)\",\"size\":\(config.1)}"
    s += ",\"layers\":[" + layers.map { "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"\($0.0)\",\"size\":\($0.1)}" }.joined(separator: ",") + "]"
    if let subject { s += ",\"subject\":{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"\(subject.0)\",\"size\":\(subject.1)}" }
    if let annotations {
        s += ",\"annotations\":{" + annotations.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\"\($0.value)\"" }.joined(separator: ",") + "}"
    }
    return s + "}"
}

func ociIndex(_ children: [(String, Int)], mediaType: String = "application/vnd.oci.image.index.v1+json", childType: String = "application/vnd.oci.image.manifest.v1+json") -> String {
    "{\"schemaVersion\":2,\"mediaType\":\"\(mediaType)\",\"manifests\":[" + children.enumerated().map { i, c in
        "{\"mediaType\":\"\(childType)\",\"digest\":\"\(c.0)\",\"size\":\(c.1),\"platform\":{\"architecture\":\"\(i == 0 ? "amd64" : "arm64")\",\"os\":\"linux\"}}"
    }.joined(separator: ",") + "]}"
}
