import Crypto

/// A content digest, `algorithm:hex`, as defined by the OCI image spec.
///
/// Only registered algorithms with a fixed-length lowercase hex encoding are accepted
/// (`sha256`, `sha512`); anything else is ``RegistryError/Code/digestInvalid``.
public struct Digest: Hashable, Sendable, Comparable, CustomStringConvertible {
    public enum Algorithm: String, Sendable, CaseIterable {
        case sha256
        case sha512

        /// Length of the hex encoding.
        public var hexLength: Int { self == .sha256 ? 64 : 128 }
    }

    public let algorithm: Algorithm
    /// Lowercase hex encoding of the hash.
    public let hex: String

    public init(algorithm: Algorithm, hex: String) throws(RegistryError) {
        guard hex.utf8.count == algorithm.hexLength, hex.utf8.allSatisfy(Digest.isLowerHex) else {
            throw RegistryError(.digestInvalid, "invalid \(algorithm.rawValue) digest encoding")
        }
        self.algorithm = algorithm
        self.hex = hex
    }

    /// Parses `algorithm:encoded`.
    public init(parsing string: some StringProtocol) throws(RegistryError) {
        guard let colon = string.firstIndex(of: ":") else {
            throw RegistryError(.digestInvalid, "digest must be algorithm:hex", detail: String(string.prefix(200)))
        }
        let name = string[..<colon]
        guard let algorithm = Algorithm(rawValue: String(name)) else {
            throw RegistryError(.digestInvalid, "unsupported digest algorithm", detail: String(name.prefix(50)))
        }
        try self.init(algorithm: algorithm, hex: String(string[string.index(after: colon)...]))
    }

    /// Returns nil instead of throwing, for places where "not a digest" means "a tag".
    public static func parse(_ string: some StringProtocol) -> Digest? {
        try? Digest(parsing: string)
    }

    public var description: String { "\(algorithm.rawValue):\(hex)" }

    public static func < (lhs: Digest, rhs: Digest) -> Bool { lhs.description < rhs.description }

    /// Digest of a complete byte sequence (manifests, small payloads).
    public static func of(_ bytes: some Sequence<UInt8>, algorithm: Algorithm = .sha256) -> Digest {
        var hasher = DigestHasher(algorithm)
        let array = Array(bytes)
        array.withUnsafeBytes { hasher.update($0) }
        return hasher.finalize()
    }

    @inline(__always)
    static func isLowerHex(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "f"))
    }
}

/// An incremental hasher producing a ``Digest``; feed it the bytes as they stream by.
public struct DigestHasher: Sendable {
    private enum State: Sendable {
        case sha256(SHA256)
        case sha512(SHA512)
    }

    private var state: State
    public let algorithm: Digest.Algorithm

    public init(_ algorithm: Digest.Algorithm) {
        self.algorithm = algorithm
        switch algorithm {
        case .sha256: state = .sha256(SHA256())
        case .sha512: state = .sha512(SHA512())
        }
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        switch state {
        case .sha256(var h):
            h.update(bufferPointer: bytes)
            state = .sha256(h)
        case .sha512(var h):
            h.update(bufferPointer: bytes)
            state = .sha512(h)
        }
    }

    public func finalize() -> Digest {
        let bytes: [UInt8]
        switch state {
        case .sha256(let h): bytes = Array(h.finalize())
        case .sha512(let h): bytes = Array(h.finalize())
        }
        // The force-try cannot fail: the encoding is lowercase hex of the right length by construction.
        return try! Digest(algorithm: algorithm, hex: Hex.lowercase(bytes))
    }
}
