import BerthCore
import Testing

@Suite("Digest")
struct DigestTests {
    static let helloSHA256 = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    /// `printf hello | sha512sum`
    static let helloSHA512 = "9b71d224bd62f3785d96d46ad3ea3d73319bfbc2890caadae2dff72519673ca72323c3d99ba5c11d7c7acc6e14b8c5da0c4663475c2e5c3adef46f73bcdec043"
    /// `printf '' | sha256sum`
    static let emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    /// `printf 'hello world' | sha256sum`
    static let helloWorldSHA256 = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"

    // MARK: Parsing

    @Test("parses a valid sha256 digest")
    func parsesSHA256() throws {
        let digest = try Digest(parsing: "sha256:\(Self.helloSHA256)")
        #expect(digest.algorithm == .sha256)
        #expect(digest.hex == Self.helloSHA256)
        #expect(digest.description == "sha256:\(Self.helloSHA256)")
    }

    @Test("parses a valid sha512 digest")
    func parsesSHA512() throws {
        let digest = try Digest(parsing: "sha512:\(Self.helloSHA512)")
        #expect(digest.algorithm == .sha512)
        #expect(digest.hex == Self.helloSHA512)
        #expect(digest.description == "sha512:\(Self.helloSHA512)")
    }

    @Test("parses from a Substring")
    func parsesSubstring() throws {
        let text = "/v2/a/blobs/sha256:\(Self.helloSHA256)"
        let tail = text[text.index(text.startIndex, offsetBy: 12)...]
        #expect(try Digest(parsing: tail) == Digest(algorithm: .sha256, hex: Self.helloSHA256))
    }

    @Test("hex lengths per algorithm")
    func hexLengths() {
        #expect(Digest.Algorithm.sha256.hexLength == 64)
        #expect(Digest.Algorithm.sha512.hexLength == 128)
        #expect(Digest.Algorithm.allCases == [.sha256, .sha512])
    }

    static let invalidDigests: [String] = [
        "",
        "sha256",
        helloSHA256, // missing algorithm and colon
        ":\(helloSHA256)",
        "sha256:",
        "sha256:\(helloSHA256.uppercased())",
        "sha256:2CF24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", // one uppercase pair
        "sha256:\(helloSHA256.dropLast())", // 63
        "sha256:\(helloSHA256)0", // 65
        "sha256:\(helloSHA512)", // sha512 length under sha256
        "sha512:\(helloSHA256)", // sha256 length under sha512
        "sha256:\(helloSHA256.dropLast())g", // non-hex character
        "md5:5d41402abc4b2a76b9719d911017c592",
        "SHA256:\(helloSHA256)",
        "sha384:\(helloSHA512.prefix(96))",
        " sha256:\(helloSHA256)",
        "sha256:\(helloSHA256) ",
        "sha256:\(helloSHA256)\n",
        "sha256::\(helloSHA256.dropLast())",
        "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564",
    ]

    @Test("rejects malformed digests with DIGEST_INVALID", arguments: invalidDigests)
    func rejectsInvalid(_ text: String) {
        let error = #expect(throws: RegistryError.self) { try Digest(parsing: text) }
        #expect(error?.code == .digestInvalid)
        #expect(error?.code.value == "DIGEST_INVALID")
        #expect(error?.code.status == 400)
        #expect(Digest.parse(text) == nil)
    }

    @Test("init(algorithm:hex:) validates the encoding")
    func initValidates() throws {
        #expect(try Digest(algorithm: .sha256, hex: Self.helloSHA256).description == "sha256:\(Self.helloSHA256)")
        let error = #expect(throws: RegistryError.self) { try Digest(algorithm: .sha512, hex: Self.helloSHA256) }
        #expect(error?.code == .digestInvalid)
        #expect(throws: RegistryError.self) { try Digest(algorithm: .sha256, hex: Self.helloSHA256.uppercased()) }
    }

    @Test("parse returns the digest for a valid string")
    func parseNonThrowing() {
        #expect(Digest.parse("sha256:\(Self.helloSHA256)")?.hex == Self.helloSHA256)
        #expect(Digest.parse("latest") == nil)
    }

    // MARK: Hashing

    @Test("sha256 of known inputs")
    func sha256Known() {
        #expect(Digest.of(Array("hello".utf8)).description == "sha256:\(Self.helloSHA256)")
        #expect(Digest.of(Array("hello".utf8), algorithm: .sha256).hex == Self.helloSHA256)
        #expect(Digest.of([UInt8]()).hex == Self.emptySHA256)
        #expect(Digest.of("hello world".utf8).hex == Self.helloWorldSHA256)
    }

    @Test("sha512 of hello")
    func sha512Known() {
        let digest = Digest.of(Array("hello".utf8), algorithm: .sha512)
        #expect(digest.algorithm == .sha512)
        #expect(digest.description == "sha512:\(Self.helloSHA512)")
    }

    @Test("incremental hashing of hello world in three chunks")
    func incrementalKnown() {
        var hasher = DigestHasher(.sha256)
        for chunk in ["hello", " ", "world"] {
            Array(chunk.utf8).withUnsafeBytes { hasher.update($0) }
        }
        #expect(hasher.algorithm == .sha256)
        #expect(hasher.finalize().hex == Self.helloWorldSHA256)
    }

    /// Deterministic bytes (xorshift), so a failure is reproducible.
    static func bytes(_ count: Int, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) -> [UInt8] {
        var x = seed
        return (0..<count).map { _ in
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            return UInt8(truncatingIfNeeded: x)
        }
    }

    @Test("incremental hashing over split chunks equals one-shot",
          arguments: [Digest.Algorithm.sha256, .sha512], [[1], [7, 64, 1000], [0, 0, 128], [4095, 1], [10_000]])
    func incrementalEqualsOneShot(_ algorithm: Digest.Algorithm, _ chunkSizes: [Int]) {
        let data = Self.bytes(10_001)
        var hasher = DigestHasher(algorithm)
        var offset = 0
        var i = 0
        while offset < data.count {
            let size = chunkSizes[i % chunkSizes.count]
            let end = min(data.count, offset + size)
            data[offset..<end].withUnsafeBytes { hasher.update($0) }
            offset = end
            i += 1
        }
        let oneShot = Digest.of(data, algorithm: algorithm)
        #expect(hasher.finalize() == oneShot)
        #expect(oneShot.algorithm == algorithm)
        #expect(oneShot.hex.count == algorithm.hexLength)
    }

    @Test("finalize does not consume the hasher")
    func finalizeTwice() {
        var hasher = DigestHasher(.sha256)
        Array("hello".utf8).withUnsafeBytes { hasher.update($0) }
        #expect(hasher.finalize().hex == Self.helloSHA256)
        #expect(hasher.finalize().hex == Self.helloSHA256)
        Array(" world".utf8).withUnsafeBytes { hasher.update($0) }
        #expect(hasher.finalize().hex == Self.helloWorldSHA256)
    }

    // MARK: Value semantics

    @Test("equality, hashing and ordering follow the string form")
    func valueSemantics() throws {
        let a = try Digest(parsing: "sha256:\(Self.helloSHA256)")
        let b = Digest.of(Array("hello".utf8))
        let c = Digest.of(Array("hello".utf8), algorithm: .sha512)
        let d = try Digest(parsing: "sha256:\(Self.emptySHA256)")
        #expect(a == b)
        #expect(Set([a, b, c, d]).count == 3)
        #expect(a < d) // "2cf…" < "e3b…"
        #expect(d < c) // "sha256:…" < "sha512:…"
        #expect([c, d, a].sorted() == [a, d, c])
    }
}
