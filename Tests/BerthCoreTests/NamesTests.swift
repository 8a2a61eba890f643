import BerthCore
import Testing

@Suite("Names")
struct NamesTests {
    // MARK: Image names

    static let validImageNames: [String] = [
        "a",
        "0",
        "team/app",
        "a.b_c__d-e--f/g0",
        "library/ubuntu",
        "a/b/c/d/e",
        "a---------b",
        "a.b.c",
        "1a/2b",
        String(repeating: "a", count: 255),
        String(repeating: "a", count: 127) + "/" + String(repeating: "b", count: 127),
    ]

    @Test("valid image names", arguments: validImageNames)
    func validImageName(_ name: String) {
        #expect(Names.isValidImageName(name))
    }

    static let invalidImageNames: [String] = [
        "",
        "A",
        "Team/app",
        "team/App",
        "-a",
        "a-",
        "_a",
        "a_",
        ".a",
        "a.",
        "a//b",
        "a/",
        "/a",
        "/",
        "a___b",
        "a..b",
        "a._b",
        "a-.b",
        "a/-b",
        "a/_b",
        String(repeating: "a", count: 256),
        "a:b",
        "a b",
        "a@b",
        "caf\u{E9}",
        "a\n",
    ]

    @Test("invalid image names", arguments: invalidImageNames)
    func invalidImageName(_ name: String) {
        #expect(!Names.isValidImageName(name))
    }

    @Test("maximum name length is 255")
    func maxNameLength() {
        #expect(Names.maxNameLength == 255)
    }

    @Test("accepts a Substring")
    func imageNameSubstring() {
        let path = "/v2/team/app/manifests/latest"
        let name = path.dropFirst(4).prefix(8)
        #expect(name == "team/app")
        #expect(Names.isValidImageName(name))
    }

    // MARK: Tags

    static let validTags: [String] = [
        "latest",
        "_x",
        "v1.0-rc_1",
        "A",
        "LATEST",
        "1",
        "a..b",
        "x--",
        "sha256-abc.sig",
        String(repeating: "t", count: 128),
    ]

    @Test("valid tags", arguments: validTags)
    func validTag(_ tag: String) {
        #expect(Names.isValidTag(tag))
    }

    static let invalidTags: [String] = [
        "",
        ".x",
        "-x",
        String(repeating: "t", count: 129),
        "a/b",
        "a:b",
        "a b",
        "bad tag!",
        "caf\u{E9}",
        "a+b",
    ]

    @Test("invalid tags", arguments: invalidTags)
    func invalidTag(_ tag: String) {
        #expect(!Names.isValidTag(tag))
    }

    // MARK: Repository names

    static let validRepositoryNames: [String] = [
        "docker-hosted",
        "docker-hosted-project",
        "a",
        "0",
        "a.b_c-d",
        "a--",
        String(repeating: "r", count: 64),
    ]

    @Test("valid repository names", arguments: validRepositoryNames)
    func validRepositoryName(_ name: String) {
        #expect(Names.isValidRepositoryName(name))
    }

    static let invalidRepositoryNames: [String] = [
        "",
        "-a",
        "_a",
        ".a",
        "A",
        "Docker-hosted",
        "a/b",
        "a b",
        "a:b",
        String(repeating: "r", count: 65),
    ]

    @Test("invalid repository names", arguments: invalidRepositoryNames)
    func invalidRepositoryName(_ name: String) {
        #expect(!Names.isValidRepositoryName(name))
    }

    // MARK: References

    static let hex = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"

    @Test("a tag reference")
    func tagReference() throws {
        #expect(try Reference(parsing: "latest") == .tag("latest"))
        #expect(try Reference(parsing: "v1.0-rc_1") == .tag("v1.0-rc_1"))
        #expect(try Reference(parsing: "latest").description == "latest")
    }

    @Test("a digest reference")
    func digestReference() throws {
        let reference = try Reference(parsing: "sha256:\(Self.hex)")
        #expect(reference == .digest(try Digest(algorithm: .sha256, hex: Self.hex)))
        #expect(reference.description == "sha256:\(Self.hex)")
    }

    @Test("anything with a colon must be a valid digest",
          arguments: ["bad:digest", "sha256:\(hex.uppercased())", "sha256:", ":", "latest:1"])
    func badDigestReference(_ text: String) {
        let error = #expect(throws: RegistryError.self) { try Reference(parsing: text) }
        #expect(error?.code == .digestInvalid)
    }

    @Test("an invalid tag is TAG_INVALID",
          arguments: ["bad tag!", "", ".x", "-x", "a/b", String(repeating: "t", count: 129)])
    func badTagReference(_ text: String) {
        let error = #expect(throws: RegistryError.self) { try Reference(parsing: text) }
        #expect(error?.code == .tagInvalid)
        #expect(error?.code.value == "TAG_INVALID")
        #expect(error?.code.status == 400)
    }
}
