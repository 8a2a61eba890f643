import BerthCore
import Testing

@Suite("AccessPath")
struct AccessPathTests {
    static let digest = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"

    /// What a parsed ``AccessPath`` holds (its memberwise initializer is internal).
    struct Parsed: Equatable, Sendable {
        var method: AccessPath.Method
        var route: DistributionRoute

        init(method: AccessPath.Method, route: DistributionRoute) {
            self.method = method
            self.route = route
        }

        init(_ path: AccessPath) {
            self.init(method: path.method, route: path.route)
        }
    }

    static func repo(_ route: DistributionRoute) -> Parsed { Parsed(method: .repositoryPath, route: route) }
    static func nexus(_ repository: String, _ route: DistributionRoute) -> Parsed {
        Parsed(method: .nexusPath(repository: repository), route: route)
    }

    static let cases: [(path: String, expected: Parsed?)] = [
        // /v2/<repo>/<image>/…
        ("/v2/", repo(.base)),
        ("/v2", repo(.base)),
        ("/v2/_catalog", repo(.catalog)),
        ("/v2/docker-hosted/team/app/manifests/latest", repo(.manifest(name: "docker-hosted/team/app", reference: "latest"))),
        ("/v2/docker-hosted/app/blobs/\(digest)", repo(.blob(name: "docker-hosted/app", digest: digest))),
        ("/v2/docker-hosted/app/blobs/uploads/", repo(.uploadStart(name: "docker-hosted/app"))),
        ("/v2/docker-hosted/app/blobs/uploads", repo(.uploadStart(name: "docker-hosted/app"))),
        ("/v2/docker-hosted/app/blobs/uploads/9b1e", repo(.upload(name: "docker-hosted/app", id: "9b1e"))),
        ("/v2/docker-hosted/app/tags/list", repo(.tagsList(name: "docker-hosted/app"))),
        ("/v2/docker-hosted/app/referrers/\(digest)", repo(.referrers(name: "docker-hosted/app", digest: digest))),
        ("/v2/r/blobs/manifests/1", repo(.manifest(name: "r/blobs", reference: "1"))),
        ("/v2/r/uploads/blobs/uploads/", repo(.uploadStart(name: "r/uploads"))),
        ("/v2/r/tags/tags/list", repo(.tagsList(name: "r/tags"))),
        ("/v2/r/manifests/manifests/1", repo(.manifest(name: "r/manifests", reference: "1"))),
        // /repository/<repo>/v2/<image>/…
        ("/repository/docker-hosted/v2/team/app/manifests/1", nexus("docker-hosted", .manifest(name: "team/app", reference: "1"))),
        ("/repository/docker-hosted/v2/", nexus("docker-hosted", .base)),
        ("/repository/docker-hosted/v2", nexus("docker-hosted", .base)),
        ("/repository/docker-hosted/v2/_catalog", nexus("docker-hosted", .catalog)),
        ("/repository/r/v2/app/blobs/uploads/", nexus("r", .uploadStart(name: "app"))),
        ("/repository/r/v2/app/blobs/uploads", nexus("r", .uploadStart(name: "app"))),
        ("/repository/r/v2/app/blobs/uploads/u-1", nexus("r", .upload(name: "app", id: "u-1"))),
        ("/repository/r/v2/team/blobs/blobs/\(digest)", nexus("r", .blob(name: "team/blobs", digest: digest))),
        // nginx `proxy_pass …/$request_uri`: a doubled slash
        ("/repository/docker-hosted//v2/team/app/manifests/1", nexus("docker-hosted", .manifest(name: "team/app", reference: "1"))),
        ("/repository/docker-hosted//v2/team/app/blobs/uploads/", nexus("docker-hosted", .uploadStart(name: "team/app"))),
        // A prefixed Location sent back through a proxy: the prefix doubled
        ("/repository/r/repository/r/v2/team/app/manifests/1", nexus("r", .manifest(name: "team/app", reference: "1"))),
        ("/repository/r/repository/r/v2/app/blobs/uploads/u-1", nexus("r", .upload(name: "app", id: "u-1"))),
        ("/repository/r//repository/r//v2/app/tags/list", nexus("r", .tagsList(name: "app"))),
        // Not registry paths
        ("/repository/r/other", nil),
        ("/repository/r/v2x/app/manifests/1", nil),
        ("/repository/r", nil),
        ("/repository/", nil),
        ("/repository/r/v3/app/manifests/1", nil),
        ("/repository/r/repository/s/v2/app/manifests/1", nil),
        ("/repository/r/repository/r-other/v2/app/manifests/1", nil),
        // The doubled prefix is matched as whole segments: `repository/rv2/…` is not `repository/r` + `v2/…`.
        ("/repository/r/repository/rv2/app/manifests/1", nil),
        ("/v3/x", nil),
        ("/v2x", nil),
        ("/v2x/app/manifests/1", nil),
        ("/v2/app", nil),
        ("/v2/app/manifests/", nil),
        ("/", nil),
        ("", nil),
        ("/repo/r/v2/", nil),
        ("v2/", nil),
    ]

    @Test("parse(path:)", arguments: cases)
    func parse(_ c: (path: String, expected: Parsed?)) {
        #expect(AccessPath.parse(path: Substring(c.path)).map(Parsed.init) == c.expected)
    }

    @Test("v2Tail")
    func v2Tail() {
        #expect(AccessPath.v2Tail("") == "")
        #expect(AccessPath.v2Tail("/") == "")
        #expect(AccessPath.v2Tail("/a/tags/list") == "a/tags/list")
        #expect(AccessPath.v2Tail("x") == nil)
        #expect(AccessPath.v2Tail("x/") == nil)
    }
}
