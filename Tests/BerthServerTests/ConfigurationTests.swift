import BerthRegistry
import BerthServer
import BerthStorageS3
import BerthUpstream
import Testing

@Suite("Configuration files")
struct ConfigurationTests {
    @Test func fullConfigParses() throws {
        let config = try ConfigurationLoader.parse("""
            listen: 0.0.0.0:9000
            public_url: https://registry.example.com
            trusted_proxies: [127.0.0.1/32, "::1"]
            storage:
              blobs: { type: filesystem, path: /srv/berth/blobs }
              metadata: { type: sqlite, path: /srv/berth/berth.db }
            uploads: { max_age: 60 }
            server: { idle_timeout: 30 }
            repositories:
              - { name: docker-hosted-project, type: hosted }
              - name: team-b
            """, file: "berth.yml")
        #expect(config.listen == .init(host: "0.0.0.0", port: 9000))
        #expect(config.publicURL == "https://registry.example.com")
        #expect(config.trustedProxies == ["127.0.0.1/32", "::1"])
        #expect(config.blobs == .filesystem(path: "/srv/berth/blobs"))
        #expect(config.metadata == .sqlite(path: "/srv/berth/berth.db"))
        #expect(config.repositories.map(\.name) == ["docker-hosted-project", "team-b"])
        #expect(config.uploadMaxAgeMinutes == 60)
        #expect(config.idleTimeoutSeconds == 30)
    }

    @Test func scaleOutStorageParses() throws {
        let config = try ConfigurationLoader.parse("""
            storage:
              blobs: { type: s3, endpoint: "http://127.0.0.1:9000/", bucket: berth-blobs, prefix: /registry/,
                       access_key: AK, secret_key: SK, path_style: false, redirect: true, redirect_expiry: 60 }
              metadata: { type: postgres, url: "postgres://berth:pw@db:5432/berth", max_connections: 5 }
            """, file: "berth.yml")
        var s3 = S3BlobStore.Configuration(endpoint: "http://127.0.0.1:9000", region: "", bucket: "berth-blobs")
        s3.prefix = "registry/"
        s3.accessKey = "AK"
        s3.secretKey = "SK"
        s3.pathStyle = false
        s3.redirect = true
        s3.redirectExpiry = 60
        #expect(config.blobs == .s3(s3))
        #expect(config.metadata == .postgres(url: "postgres://berth:pw@db:5432/berth", maxConnections: 5))
        // What start-up logs: never the password.
        #expect("\(config.metadata)" == "postgres postgres://berth:****@db:5432/berth (pool of 5)")
    }

    @Test func emptyFileMeansDefaults() throws {
        let config = try ConfigurationLoader.parse("", file: "empty.yml", dataDirectory: "/d")
        #expect(config == BerthConfiguration.defaults(dataDirectory: "/d"))
        #expect(config.repositories.map(\.name) == ["docker-hosted", "docker-hub", "docker"])
    }

    @Test(arguments: [
        ("listen: 1.2.3.4:8081\nbogus: 1\n", "berth.yml:2:1: unknown key 'bogus'"),
        ("listen: nope\n", "berth.yml:1:9: listen must be HOST:PORT"),
        ("repositories:\n  - { name: a }\n  - { name: a }\n", "berth.yml:3:13: repository 'a' is declared twice"),
        ("repositories:\n  - { name: Bad }\n", "berth.yml:2:13: repository name 'Bad' is invalid"),
        ("repositories:\n  - { name: hub, type: proxy }\n", "berth.yml:2:5: a proxy repository needs remote"),
        ("repositories:\n  - { name: hub, type: proxy, remote: \"ftp://x\" }\n", "berth.yml:2:39: remote must be an http or https URL"),
        ("repositories:\n  - { name: g, type: group, members: [g2] }\n  - { name: g2, type: group, members: [g] }\n", "berth.yml:2:38: group 'g' contains itself: g → g2 → g"),
        ("repositories:\n  - { name: g, type: group, members: [nope] }\n", "berth.yml:2:38: group 'g' lists 'nope', which is not declared"),
        ("repositories:\n  - { name: h }\n  - { name: g, type: group, members: [h], writable_member: x }\n", "berth.yml:3:60: writable_member 'x' is not one of the group's members"),
        ("repositories:\n  - { name: p, type: proxy, remote: \"http://x\" }\n  - { name: g, type: group, members: [p], writable_member: p }\n", "berth.yml:3:38: writable_member 'p' of 'g' must be a hosted repository"),
        ("repositories:\n  - { name: x, type: weird }\n", "berth.yml:2:22: repository type 'weird' is unknown"),
        ("storage:\n  blobs: { type: s3, path: x }\n", "berth.yml:2:22: unknown key 'path'"),
        ("storage:\n  blobs: { type: s3, endpoint: \"http://x\" }\n", "berth.yml:2:10: storage.blobs of type s3 needs a bucket"),
        ("storage:\n  blobs: { type: s3, endpoint: x, bucket: b }\n", "berth.yml:2:32: storage.blobs.endpoint must be an http or https URL"),
        ("storage:\n  blobs: { type: s3, endpoint: \"http://x\", bucket: Bad_B }\n", "berth.yml:2:52: storage.blobs.bucket must be 3-63"),
        ("storage:\n  blobs: { type: gcs }\n", "berth.yml:2:18: storage.blobs.type 'gcs' is not supported (supported: filesystem, s3)"),
        ("trusted_proxies: [10.0.0.0/33]\n", "berth.yml:1:19: '10.0.0.0/33' is not an address or CIDR block"),
        ("listen: [unclosed\n", "berth.yml:2:1: invalid YAML"),
        ("auth: { anonymous_pull: maybe }\n", "berth.yml:1:25: anonymous_pull must be true or false"),
        ("roles: []\n", "berth.yml:1:8: roles, users, service_tokens and anonymous_pull need an auth: section"),
        ("auth: {}\nusers: [{ name: a, password_hash: secret }]\n", "berth.yml:2:35: password_hash must be a bcrypt hash"),
        ("auth: {}\nusers: [{ name: a, password_hash: \"$2b$04$x\", roles: [nope] }]\n", "berth.yml:2:55: role 'nope' is not declared in roles"),
        ("auth: {}\nroles: [{ name: r, privileges: [{ repositories: [a], actions: [fly] }] }]\n", "berth.yml:2:64: action 'fly' is unknown"),
        ("auth: {}\nservice_tokens: [{ id: ci, secret_sha256: abc }]\n", "berth.yml:2:43: secret_sha256 must be 64 hex digits"),
        ("service_tokens: []\n", "berth.yml:1:17: roles, users, service_tokens and anonymous_pull need an auth: section"),
        ("storage:\n  metadata: { type: postgres, path: x }\n", "berth.yml:2:31: unknown key 'path'"),
        ("storage:\n  metadata: { type: postgres }\n", "berth.yml:2:13: storage.metadata of type postgres needs a url"),
        ("storage:\n  metadata: { type: postgres, url: \"mysql://x/db\" }\n", "berth.yml:2:36: storage.metadata.url must look like postgres://"),
        ("storage:\n  metadata: { type: mysql }\n", "berth.yml:2:21: storage.metadata.type 'mysql' is not supported (supported: sqlite, postgres)"),
        ("- a\n- b\n", "berth.yml:1:1: the configuration must be a mapping"),
    ])
    func badConfigNamesFileLineAndReason(yaml: String, expected: String) {
        #expect {
            try ConfigurationLoader.parse(yaml, file: "berth.yml")
        } throws: { error in
            "\(error)".hasPrefix(expected)
        }
    }

    @Test func missingFileIsAClearError() {
        #expect {
            try ConfigurationLoader.load(path: "/nonexistent/berth.yml")
        } throws: { error in
            "\(error)".hasPrefix("/nonexistent/berth.yml: cannot read the file")
        }
    }
}

@Suite("Proxy and group configuration")
struct RepositoryKindsConfigurationTests {
    @Test func proxyAndGroupParse() throws {
        let config = try ConfigurationLoader.parse("""
            repositories:
              - { name: docker-hosted-project, type: hosted }
              - { name: docker-hub, type: proxy, remote: "https://registry-1.docker.io", metadata_max_age: 30, negative_cache_ttl: 5,
                  username: u, password: p, auto_block: false, connect_timeout: 3, read_timeout: 60, content_max_age: -1 }
              - { name: docker-group-project, type: group, members: [docker-hosted-project, docker-hub], writable_member: docker-hosted-project }
            """, file: "berth.yml")
        #expect(config.repositories.count == 3)
        guard case .proxy(let settings) = config.repositories[1].kind else { Issue.record("not a proxy"); return }
        #expect(settings.metadataMaxAge == 30 * 60)
        #expect(settings.negativeCacheTTL == 5 * 60)
        #expect(settings.autoBlock == false)
        #expect(settings.client.username == "u")
        #expect(settings.client.connectTimeoutSeconds == 3)
        #expect(config.repositories[2].kind == .group(members: ["docker-hosted-project", "docker-hub"], writableMember: "docker-hosted-project"))
    }
}
