import BerthCore
import Testing

@Suite("DistributionRoute")
struct DistributionRouteTests {
    static let digest = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"

    static let cases: [(tail: String, expected: DistributionRoute?)] = [
        ("", .base),
        ("_catalog", .catalog),
        ("app/manifests/latest", .manifest(name: "app", reference: "latest")),
        ("team/app/manifests/v1.0", .manifest(name: "team/app", reference: "v1.0")),
        ("a/b/c/d/manifests/\(digest)", .manifest(name: "a/b/c/d", reference: digest)),
        ("team/app/blobs/\(digest)", .blob(name: "team/app", digest: digest)),
        ("team/app/blobs/uploads/", .uploadStart(name: "team/app")),
        ("team/app/blobs/uploads", .uploadStart(name: "team/app")),
        ("team/app/blobs/uploads/3f1c-42", .upload(name: "team/app", id: "3f1c-42")),
        ("team/app/tags/list", .tagsList(name: "team/app")),
        ("team/app/referrers/\(digest)", .referrers(name: "team/app", digest: digest)),
        // Names whose segments are endpoint words
        ("blobs/manifests/latest", .manifest(name: "blobs", reference: "latest")),
        ("team/manifests/manifests/1", .manifest(name: "team/manifests", reference: "1")),
        ("team/blobs/blobs/\(digest)", .blob(name: "team/blobs", digest: digest)),
        ("blobs/blobs/uploads/", .uploadStart(name: "blobs")),
        ("team/blobs/blobs/uploads", .uploadStart(name: "team/blobs")),
        ("team/blobs/blobs/uploads/x", .upload(name: "team/blobs", id: "x")),
        ("uploads/blobs/uploads/", .uploadStart(name: "uploads")),
        ("team/blobs/uploads/manifests/1", .manifest(name: "team/blobs/uploads", reference: "1")),
        ("team/blobs/uploads/tags/list", .tagsList(name: "team/blobs/uploads")),
        ("tags/tags/list", .tagsList(name: "tags")),
        ("tags/list/tags/list", .tagsList(name: "tags/list")),
        ("team/tags/manifests/list", .manifest(name: "team/tags", reference: "list")),
        ("referrers/referrers/\(digest)", .referrers(name: "referrers", digest: digest)),
        // No endpoint
        ("app", nil),
        ("app/manifests", nil),
        ("manifests/latest", nil),
        ("tags/list", nil),
        ("blobs/uploads/", nil),
        ("blobs/uploads/x", nil),
        ("app/manifests/", nil),
        ("app/tags/all", nil),
        ("app/other/x", nil),
        ("_catalog/", nil),
    ]

    @Test("parse(tail:)", arguments: cases)
    func parse(_ c: (tail: String, expected: DistributionRoute?)) {
        #expect(DistributionRoute.parse(tail: Substring(c.tail)) == c.expected)
    }

    @Test("name and renamed")
    func nameAndRenamed() {
        let routes: [DistributionRoute] = [
            .tagsList(name: "r/a"), .manifest(name: "r/a", reference: "1"), .blob(name: "r/a", digest: Self.digest),
            .uploadStart(name: "r/a"), .upload(name: "r/a", id: "u"), .referrers(name: "r/a", digest: Self.digest),
        ]
        let renamed: [DistributionRoute] = [
            .tagsList(name: "a"), .manifest(name: "a", reference: "1"), .blob(name: "a", digest: Self.digest),
            .uploadStart(name: "a"), .upload(name: "a", id: "u"), .referrers(name: "a", digest: Self.digest),
        ]
        #expect(routes.map(\.name) == Array(repeating: "r/a", count: 6))
        #expect(routes.map { $0.renamed("a") } == renamed)
        #expect(DistributionRoute.base.name == nil)
        #expect(DistributionRoute.catalog.name == nil)
        #expect(DistributionRoute.base.renamed("a") == .base)
        #expect(DistributionRoute.catalog.renamed("a") == .catalog)
    }
}
