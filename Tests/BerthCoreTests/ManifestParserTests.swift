import BerthCore
import Testing

@Suite("ManifestParser")
struct ManifestParserTests {
    // Valid digests of distinct contents, so every descriptor is addressable.
    static let config = Digest.of(Array("config".utf8))
    static let layer1 = Digest.of(Array("layer-1".utf8))
    static let layer2 = Digest.of(Array("layer-2".utf8))
    static let foreign = Digest.of(Array("foreign".utf8))
    static let child1 = Digest.of(Array("child-amd64".utf8))
    static let child2 = Digest.of(Array("child-arm64".utf8))
    static let subject = Digest.of(Array("subject".utf8))
    /// The OCI empty descriptor `{}`.
    static let empty = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

    static func parse(_ json: String, contentType: String?) throws(RegistryError) -> ManifestInfo {
        try ManifestParser.parse(Array(json.utf8), contentType: contentType)
    }

    static func expectInvalid(_ json: String, contentType: String?, sourceLocation: SourceLocation = #_sourceLocation) -> RegistryError? {
        let error = #expect(throws: RegistryError.self, sourceLocation: sourceLocation) {
            try parse(json, contentType: contentType)
        }
        #expect(error?.code == .manifestInvalid, sourceLocation: sourceLocation)
        #expect(error?.code.status == 400, sourceLocation: sourceLocation)
        return error
    }

    // MARK: Fixtures

    static let ociManifest = """
        {
          "schemaVersion": 2,
          "mediaType": "application/vnd.oci.image.manifest.v1+json",
          "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": "\(config)",
            "size": 7023
          },
          "layers": [
            {
              "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
              "digest": "\(layer1)",
              "size": 32654
            },
            {
              "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
              "digest": "\(layer2)",
              "size": 16724
            }
          ],
          "annotations": {
            "com.example.key1": "value1",
            "org.opencontainers.image.created": "2024-01-01T00:00:00Z"
          }
        }
        """

    static let ociIndex = """
        {
          "schemaVersion": 2,
          "mediaType": "application/vnd.oci.image.index.v1+json",
          "manifests": [
            {
              "mediaType": "application/vnd.oci.image.manifest.v1+json",
              "digest": "\(child1)",
              "size": 7143,
              "platform": { "architecture": "amd64", "os": "linux" }
            },
            {
              "mediaType": "application/vnd.oci.image.manifest.v1+json",
              "digest": "\(child2)",
              "size": 7682,
              "platform": { "architecture": "arm64", "os": "linux", "variant": "v8" }
            }
          ],
          "annotations": { "com.example.index": "yes" }
        }
        """

    static let dockerManifest = """
        {
           "schemaVersion": 2,
           "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
           "config": {
              "mediaType": "application/vnd.docker.container.image.v1+json",
              "size": 1469,
              "digest": "\(config)"
           },
           "layers": [
              {
                 "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                 "size": 2814446,
                 "digest": "\(layer1)"
              }
           ]
        }
        """

    static let dockerManifestList = """
        {
          "schemaVersion": 2,
          "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
          "manifests": [
            {
              "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
              "size": 528,
              "digest": "\(child1)",
              "platform": { "architecture": "amd64", "os": "linux" }
            },
            {
              "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
              "size": 528,
              "digest": "\(child2)",
              "platform": { "architecture": "arm", "os": "linux", "variant": "v7" }
            }
          ]
        }
        """

    static let schema1 = """
        {
           "schemaVersion": 1,
           "name": "team/app",
           "tag": "latest",
           "architecture": "amd64",
           "fsLayers": [ { "blobSum": "\(layer1)" } ],
           "history": [ { "v1Compatibility": "{\\"id\\":\\"e45a5af57b00862e5ef5782a9925979a02ba2b12dff832fd0991335f4a11e5c5\\"}" } ],
           "signatures": [ { "header": { "alg": "ES256" }, "signature": "abc", "protected": "def" } ]
        }
        """

    // MARK: Accepted manifests

    @Test("OCI image manifest")
    func ociImageManifest() throws {
        let info = try Self.parse(Self.ociManifest, contentType: MediaType.ociManifest)
        #expect(info == ManifestInfo(
            mediaType: MediaType.ociManifest,
            blobs: [Self.config, Self.layer1, Self.layer2],
            manifests: [],
            subject: nil,
            artifactType: "application/vnd.oci.image.config.v1+json",
            annotations: ["com.example.key1": "value1", "org.opencontainers.image.created": "2024-01-01T00:00:00Z"]))
        #expect(!info.isIndex)
    }

    @Test("OCI image index")
    func ociImageIndex() throws {
        let info = try Self.parse(Self.ociIndex, contentType: MediaType.ociIndex)
        #expect(info == ManifestInfo(
            mediaType: MediaType.ociIndex, blobs: [], manifests: [Self.child1, Self.child2],
            subject: nil, artifactType: nil, annotations: ["com.example.index": "yes"]))
        #expect(info.isIndex)
    }

    @Test("Docker schema2 manifest")
    func dockerSchema2() throws {
        let info = try Self.parse(Self.dockerManifest, contentType: MediaType.dockerManifest)
        #expect(info == ManifestInfo(
            mediaType: MediaType.dockerManifest, blobs: [Self.config, Self.layer1], manifests: [],
            subject: nil, artifactType: "application/vnd.docker.container.image.v1+json", annotations: nil))
        #expect(!info.isIndex)
    }

    @Test("Docker manifest list")
    func dockerManifestList() throws {
        let info = try Self.parse(Self.dockerManifestList, contentType: MediaType.dockerManifestList)
        #expect(info == ManifestInfo(
            mediaType: MediaType.dockerManifestList, blobs: [], manifests: [Self.child1, Self.child2],
            subject: nil, artifactType: nil, annotations: nil))
        #expect(info.isIndex)
    }

    @Test("Content-Type parameters, case and blanks are ignored",
          arguments: [
            "application/vnd.oci.image.manifest.v1+json; charset=utf-8",
            "  Application/VND.OCI.Image.Manifest.v1+JSON  ",
            "application/vnd.oci.image.manifest.v1+json;",
          ])
    func contentTypeEssence(_ contentType: String) throws {
        #expect(try Self.parse(Self.ociManifest, contentType: contentType).mediaType == MediaType.ociManifest)
    }

    @Test("a generic or absent Content-Type defers to the mediaType field",
          arguments: [nil, "", "application/json", "application/octet-stream", "application/json; charset=utf-8"] as [String?])
    func genericContentType(_ contentType: String?) throws {
        #expect(try Self.parse(Self.dockerManifest, contentType: contentType).mediaType == MediaType.dockerManifest)
        #expect(try Self.parse(Self.ociIndex, contentType: contentType).mediaType == MediaType.ociIndex)
    }

    // MARK: Media type

    @Test("Content-Type that differs from mediaType is MANIFEST_INVALID")
    func contentTypeMismatch() {
        let error = Self.expectInvalid(Self.ociManifest, contentType: MediaType.dockerManifest)
        #expect(error?.message == "mediaType in manifest does not match Content-Type")
        _ = Self.expectInvalid(Self.ociIndex, contentType: MediaType.ociManifest)
        _ = Self.expectInvalid(Self.dockerManifestList, contentType: MediaType.ociIndex)
    }

    static let manifestWithoutMediaType = """
        {"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"\(config)","size":2},\
        "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"\(layer1)","size":3}]}
        """

    static let indexWithoutMediaType = """
        {"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"\(child1)","size":5}]}
        """

    @Test("type inferred from the shape when mediaType is absent and Content-Type generic",
          arguments: [nil, "application/json", "application/octet-stream"] as [String?])
    func inferredType(_ contentType: String?) throws {
        let manifest = try Self.parse(Self.manifestWithoutMediaType, contentType: contentType)
        #expect(manifest == ManifestInfo(
            mediaType: MediaType.ociManifest, blobs: [Self.config, Self.layer1], manifests: [],
            subject: nil, artifactType: "application/vnd.oci.image.config.v1+json", annotations: nil))
        let index = try Self.parse(Self.indexWithoutMediaType, contentType: contentType)
        #expect(index == ManifestInfo(
            mediaType: MediaType.ociIndex, blobs: [], manifests: [Self.child1],
            subject: nil, artifactType: nil, annotations: nil))
    }

    @Test("a specific Content-Type gives the type when mediaType is absent")
    func typeFromContentType() throws {
        #expect(try Self.parse(Self.manifestWithoutMediaType, contentType: MediaType.dockerManifest).mediaType == MediaType.dockerManifest)
        #expect(try Self.parse(Self.indexWithoutMediaType, contentType: MediaType.dockerManifestList).mediaType == MediaType.dockerManifestList)
    }

    @Test("no mediaType, config or manifests: the type cannot be told")
    func shapeless() {
        _ = Self.expectInvalid(#"{"schemaVersion":2}"#, contentType: nil)
        _ = Self.expectInvalid(#"{"schemaVersion":2,"layers":[]}"#, contentType: "application/json")
    }

    @Test("unsupported manifest media types",
          arguments: ["application/vnd.example.thing+json", MediaType.ociEmptyJSON, "application/vnd.oci.image.config.v1+json"])
    func unsupportedMediaType(_ type: String) {
        let body = #"{"schemaVersion":2,"mediaType":"\#(type)","config":{"mediaType":"a/b","digest":"\#(Self.config)","size":1}}"#
        let error = Self.expectInvalid(body, contentType: nil)
        #expect(error?.detail == type)
        _ = Self.expectInvalid(Self.manifestWithoutMediaType, contentType: type)
    }

    // MARK: Schema 1

    @Test("schema1 manifests are refused")
    func schema1Refused() {
        let error = Self.expectInvalid(Self.schema1, contentType: MediaType.dockerSchema1Signed)
        #expect(error?.message.contains("schema1") == true)
        let plain = Self.expectInvalid(Self.schema1, contentType: nil)
        #expect(plain?.message.contains("schema1") == true)
    }

    @Test("the schema1 media types are refused whatever the body",
          arguments: [MediaType.dockerSchema1, MediaType.dockerSchema1Signed])
    func schema1MediaTypes(_ type: String) {
        // A schema2-shaped body pushed as schema1.
        let header = Self.expectInvalid(Self.manifestWithoutMediaType, contentType: type)
        #expect(header?.message.contains("schema1") == true)
        // schema1 named in the body.
        let body = #"{"schemaVersion":2,"mediaType":"\#(type)","config":{"mediaType":"a/b","digest":"\#(Self.config)","size":1}}"#
        let field = Self.expectInvalid(body, contentType: nil)
        #expect(field?.message.contains("schema1") == true)
    }

    @Test("fsLayers alone marks schema1")
    func fsLayersSchema1() {
        let error = Self.expectInvalid(#"{"schemaVersion":2,"fsLayers":[]}"#, contentType: nil)
        #expect(error?.message.contains("schema1") == true)
    }

    static let wrongSchemaVersions = [
        #"{"schemaVersion":3,"config":{"mediaType":"a/b","digest":"\#(config)","size":1}}"#,
        #"{"schemaVersion":0,"config":{"mediaType":"a/b","digest":"\#(config)","size":1}}"#,
        #"{"config":{"mediaType":"a/b","digest":"\#(config)","size":1}}"#,
    ]

    @Test("schemaVersion other than 2", arguments: wrongSchemaVersions)
    func wrongSchemaVersion(_ body: String) {
        let error = Self.expectInvalid(body, contentType: MediaType.ociManifest)
        #expect(error?.message == "schemaVersion must be 2")
    }

    // MARK: Malformed

    @Test("invalid JSON and wrong shapes",
          arguments: ["", "{", "{not json}", "[]", "null", "\"manifest\"", #"{"schemaVersion":"2"}"#,
                      #"{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"sha256:x"}}"#,
                      #"{"schemaVersion":2,"layers":{}}"#])
    func invalidJSON(_ body: String) {
        _ = Self.expectInvalid(body, contentType: MediaType.ociManifest)
    }

    @Test("an image manifest without config")
    func missingConfig() {
        let body = #"{"schemaVersion":2,"mediaType":"\#(MediaType.ociManifest)","layers":[]}"#
        let error = Self.expectInvalid(body, contentType: MediaType.ociManifest)
        #expect(error?.message == "an image manifest must have a config descriptor")
        _ = Self.expectInvalid(#"{"schemaVersion":2,"layers":[]}"#, contentType: MediaType.dockerManifest)
    }

    @Test("an image manifest with a manifests array")
    func manifestWithManifests() {
        let body = """
            {"schemaVersion":2,"mediaType":"\(MediaType.ociManifest)",\
            "config":{"mediaType":"a/b","digest":"\(Self.config)","size":1},"manifests":[]}
            """
        _ = Self.expectInvalid(body, contentType: nil)
    }

    @Test("an index with config or layers")
    func indexWithConfig() {
        let withConfig = """
            {"schemaVersion":2,"mediaType":"\(MediaType.ociIndex)","manifests":[],\
            "config":{"mediaType":"a/b","digest":"\(Self.config)","size":1}}
            """
        let error = Self.expectInvalid(withConfig, contentType: MediaType.ociIndex)
        #expect(error?.message == "an index must not have config or layers")
        _ = Self.expectInvalid(#"{"schemaVersion":2,"mediaType":"\#(MediaType.ociIndex)","manifests":[],"layers":[]}"#, contentType: nil)
        // Inferred as an index from `manifests`, then refused for its config.
        _ = Self.expectInvalid(#"{"schemaVersion":2,"manifests":[],"config":{"mediaType":"a/b","digest":"\#(Self.config)","size":1}}"#, contentType: nil)
    }

    @Test("an index without manifests")
    func indexWithoutManifests() {
        let error = Self.expectInvalid(#"{"schemaVersion":2,"mediaType":"\#(MediaType.dockerManifestList)"}"#, contentType: nil)
        #expect(error?.message == "an index must have a manifests array")
    }

    @Test("an empty index is valid")
    func emptyIndex() throws {
        let info = try Self.parse(#"{"schemaVersion":2,"mediaType":"\#(MediaType.ociIndex)","manifests":[]}"#, contentType: nil)
        #expect(info == ManifestInfo(mediaType: MediaType.ociIndex, blobs: [], manifests: [], subject: nil, artifactType: nil, annotations: nil))
    }

    static let badDigests = ["sha256:abc", "md5:5d41402abc4b2a76b9719d911017c592", "", "SHA256:\(config.hex)", "sha256:\(config.hex.uppercased())"]

    @Test("an invalid digest in a descriptor is MANIFEST_INVALID", arguments: badDigests)
    func invalidDescriptorDigest(_ bad: String) {
        let inConfig = """
            {"schemaVersion":2,"mediaType":"\(MediaType.ociManifest)","config":{"mediaType":"a/b","digest":"\(bad)","size":1}}
            """
        #expect(Self.expectInvalid(inConfig, contentType: nil)?.detail == bad)
        let inLayer = """
            {"schemaVersion":2,"mediaType":"\(MediaType.ociManifest)","config":{"mediaType":"a/b","digest":"\(Self.config)","size":1},\
            "layers":[{"mediaType":"a/b","digest":"\(Self.layer1)","size":1},{"mediaType":"a/b","digest":"\(bad)","size":1}]}
            """
        #expect(Self.expectInvalid(inLayer, contentType: nil)?.detail == bad)
        let inIndex = """
            {"schemaVersion":2,"mediaType":"\(MediaType.ociIndex)","manifests":[{"mediaType":"a/b","digest":"\(bad)","size":1}]}
            """
        #expect(Self.expectInvalid(inIndex, contentType: nil)?.detail == bad)
        let inSubject = """
            {"schemaVersion":2,"mediaType":"\(MediaType.ociManifest)","config":{"mediaType":"a/b","digest":"\(Self.config)","size":1},\
            "subject":{"mediaType":"\(MediaType.ociManifest)","digest":"\(bad)","size":1}}
            """
        #expect(Self.expectInvalid(inSubject, contentType: nil)?.detail == bad)
        // A foreign layer is still validated.
        let inForeign = """
            {"schemaVersion":2,"mediaType":"\(MediaType.ociManifest)","config":{"mediaType":"a/b","digest":"\(Self.config)","size":1},\
            "layers":[{"mediaType":"a/b","digest":"\(bad)","size":1,"urls":["https://example.com/x"]}]}
            """
        #expect(Self.expectInvalid(inForeign, contentType: nil)?.detail == bad)
    }

    @Test("a negative size in a descriptor is MANIFEST_INVALID")
    func negativeSize() {
        let body = """
            {"schemaVersion":2,"mediaType":"\(MediaType.ociManifest)","config":{"mediaType":"a/b","digest":"\(Self.config)","size":-1}}
            """
        let error = Self.expectInvalid(body, contentType: nil)
        #expect(error?.message == "negative size in config descriptor")
    }

    // MARK: References

    @Test("foreign layers with urls are not required blobs")
    func foreignLayers() throws {
        let body = """
            {
              "schemaVersion": 2,
              "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
              "config": { "mediaType": "application/vnd.docker.container.image.v1+json", "size": 1, "digest": "\(Self.config)" },
              "layers": [
                {
                  "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar",
                  "size": 1718332879,
                  "digest": "\(Self.foreign)",
                  "urls": ["https://mcr.microsoft.com/v2/windows/servercore/blobs/\(Self.foreign)"]
                },
                { "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 2, "digest": "\(Self.layer1)" },
                { "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 3, "digest": "\(Self.layer2)", "urls": [] }
              ]
            }
            """
        let info = try Self.parse(body, contentType: MediaType.dockerManifest)
        #expect(info.blobs == [Self.config, Self.layer1, Self.layer2])
    }

    static let referrer = """
        {
          "schemaVersion": 2,
          "mediaType": "application/vnd.oci.image.manifest.v1+json",
          "artifactType": "application/vnd.example.sbom.v1+json",
          "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": "\(empty)", "size": 2 },
          "layers": [ { "mediaType": "application/spdx+json", "digest": "\(layer1)", "size": 1234 } ],
          "subject": { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "\(subject)", "size": 1000 },
          "annotations": { "org.opencontainers.image.created": "2024-05-01T12:00:00Z" }
        }
        """

    @Test("subject and artifactType of a referrer")
    func referrerManifest() throws {
        let info = try Self.parse(Self.referrer, contentType: MediaType.ociManifest)
        #expect(info == ManifestInfo(
            mediaType: MediaType.ociManifest,
            blobs: [try Digest(parsing: Self.empty), Self.layer1],
            manifests: [],
            subject: Self.subject,
            artifactType: "application/vnd.example.sbom.v1+json",
            annotations: ["org.opencontainers.image.created": "2024-05-01T12:00:00Z"]))
    }

    @Test("artifactType falls back to the config media type")
    func artifactTypeFallback() throws {
        let body = """
            {"schemaVersion":2,"mediaType":"\(MediaType.ociManifest)",\
            "config":{"mediaType":"application/vnd.example.config.v1+json","digest":"\(Self.config)","size":1},\
            "subject":{"mediaType":"\(MediaType.ociManifest)","digest":"\(Self.subject)","size":1}}
            """
        let info = try Self.parse(body, contentType: nil)
        #expect(info.artifactType == "application/vnd.example.config.v1+json")
        #expect(info.subject == Self.subject)
        #expect(info.blobs == [Self.config])
    }

    @Test("an index keeps its artifactType and subject")
    func indexArtifact() throws {
        let body = """
            {"schemaVersion":2,"mediaType":"\(MediaType.ociIndex)","artifactType":"application/vnd.example.bundle",\
            "manifests":[{"mediaType":"\(MediaType.ociManifest)","digest":"\(Self.child1)","size":1}],\
            "subject":{"mediaType":"\(MediaType.ociManifest)","digest":"\(Self.subject)","size":1}}
            """
        let info = try Self.parse(body, contentType: MediaType.ociIndex)
        #expect(info == ManifestInfo(
            mediaType: MediaType.ociIndex, blobs: [], manifests: [Self.child1], subject: Self.subject,
            artifactType: "application/vnd.example.bundle", annotations: nil))
    }

    // MARK: Size

    @Test("the size limit is 4 MiB, inclusive")
    func sizeLimit() throws {
        #expect(ManifestParser.maxSize == 4 * 1024 * 1024)
        var body = Array(Self.ociManifest.utf8)
        body += [UInt8](repeating: UInt8(ascii: " "), count: ManifestParser.maxSize - body.count)
        #expect(body.count == ManifestParser.maxSize)
        #expect(try ManifestParser.parse(body, contentType: MediaType.ociManifest).blobs.count == 3)

        body.append(UInt8(ascii: " "))
        let error = #expect(throws: RegistryError.self) { try ManifestParser.parse(body, contentType: MediaType.ociManifest) }
        #expect(error?.code == .manifestTooLarge)
        #expect(error?.code.status == 413)
        #expect(error?.code.value == "MANIFEST_INVALID")
    }

    // MARK: Accept

    static let acceptCases: [(accept: [String], mediaType: String, accepted: Bool)] = [
        ([], MediaType.ociManifest, true),
        ([""], MediaType.ociManifest, true),
        ([" , "], MediaType.ociIndex, true),
        ([MediaType.ociManifest], MediaType.ociManifest, true),
        ([MediaType.ociManifest], MediaType.dockerManifest, false),
        ([MediaType.dockerManifest, MediaType.dockerManifestList], MediaType.dockerManifestList, true),
        ([MediaType.dockerManifest, MediaType.dockerManifestList], MediaType.ociIndex, false),
        (["\(MediaType.dockerManifest), \(MediaType.ociIndex)"], MediaType.ociIndex, true),
        (["\(MediaType.dockerManifest),\(MediaType.ociIndex)"], MediaType.ociManifest, false),
        (["*/*"], MediaType.ociIndex, true),
        (["application/*"], MediaType.dockerManifest, true),
        (["text/*"], MediaType.dockerManifest, false),
        (["application/json"], MediaType.ociManifest, true),
        (["text/plain"], MediaType.ociManifest, false),
        (["\(MediaType.ociManifest); q=0.5"], MediaType.ociManifest, true),
        (["text/html;q=0.9, */*;q=0.8"], MediaType.dockerManifestList, true),
        (["Application/VND.OCI.Image.Manifest.v1+JSON"], MediaType.ociManifest, true),
        (["  \(MediaType.ociIndex)  "], MediaType.ociIndex, true),
        (["", MediaType.dockerManifest], MediaType.ociManifest, false),
    ]

    @Test("accepts() with lists, wildcards and parameters", arguments: acceptCases)
    func accepts(_ c: (accept: [String], mediaType: String, accepted: Bool)) {
        #expect(ManifestParser.accepts(c.accept, mediaType: c.mediaType) == c.accepted)
    }
}
