/// The OCI grammar for image names and tags, checked by hand (no regex on the request path).
public enum Names {
    /// Maximum length of an image name, as the distribution spec recommends.
    public static let maxNameLength = 255

    /// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`
    public static func isValidImageName(_ name: some StringProtocol) -> Bool {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= maxNameLength else { return false }
        var i = 0
        while true {
            // One path component.
            guard i < bytes.count, isAlnum(bytes[i]) else { return false }
            while i < bytes.count, isAlnum(bytes[i]) { i += 1 }
            while i < bytes.count, bytes[i] != UInt8(ascii: "/") {
                // A separator, then alphanumerics again.
                let c = bytes[i]
                if c == UInt8(ascii: ".") {
                    i += 1
                } else if c == UInt8(ascii: "_") {
                    i += 1
                    if i < bytes.count, bytes[i] == UInt8(ascii: "_") { i += 1 }
                } else if c == UInt8(ascii: "-") {
                    while i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
                } else {
                    return false
                }
                guard i < bytes.count, isAlnum(bytes[i]) else { return false }
                while i < bytes.count, isAlnum(bytes[i]) { i += 1 }
            }
            if i == bytes.count { return true }
            i += 1 // the slash
        }
    }

    /// `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`
    public static func isValidTag(_ tag: some StringProtocol) -> Bool {
        let bytes = tag.utf8
        guard let first = bytes.first, bytes.count <= 128 else { return false }
        guard isAlnum(first) || isUpper(first) || first == UInt8(ascii: "_") else { return false }
        return bytes.allSatisfy { isAlnum($0) || isUpper($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }

    /// Berth repository names (the Nexus-style `docker-hosted-project`): lowercase letters, digits, `-`, `_`, `.`,
    /// starting with a letter or digit, at most 64 characters. They never contain `/`.
    public static func isValidRepositoryName(_ name: some StringProtocol) -> Bool {
        let bytes = name.utf8
        guard let first = bytes.first, bytes.count <= 64, isAlnum(first) else { return false }
        return bytes.allSatisfy { isAlnum($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") }
    }

    @inline(__always)
    static func isAlnum(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
    }

    @inline(__always)
    static func isUpper(_ c: UInt8) -> Bool { c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z") }
}

/// A manifest reference: a tag or a digest.
public enum Reference: Hashable, Sendable, CustomStringConvertible {
    case tag(String)
    case digest(Digest)

    /// Parses a reference from a URL path segment: anything with a `:` must be a valid digest.
    public init(parsing string: some StringProtocol) throws(RegistryError) {
        if string.contains(":") {
            self = .digest(try Digest(parsing: string))
        } else if Names.isValidTag(string) {
            self = .tag(String(string))
        } else {
            throw RegistryError(.tagInvalid, "invalid tag", detail: String(string.prefix(200)))
        }
    }

    public var description: String {
        switch self {
        case .tag(let t): t
        case .digest(let d): d.description
        }
    }
}
