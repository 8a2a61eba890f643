/// A parsed `WWW-Authenticate` challenge: `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`.
public struct Challenge: Equatable, Sendable {
    public var scheme: String
    public var parameters: [String: String]

    public var realm: String? { parameters["realm"] }
    public var service: String? { parameters["service"] }
    public var scope: String? { parameters["scope"] }

    /// Parses the first challenge of a header value (quoted strings may contain commas).
    public init?(parsing header: String) {
        var chars = Substring(header)
        chars = chars.drop { $0 == " " }
        let schemeEnd = chars.firstIndex(of: " ") ?? chars.endIndex
        scheme = String(chars[..<schemeEnd]).lowercased()
        guard !scheme.isEmpty else { return nil }
        chars = chars[schemeEnd...]
        parameters = [:]
        while !chars.isEmpty {
            chars = chars.drop { $0 == " " || $0 == "," }
            guard let eq = chars.firstIndex(of: "=") else { break }
            let key = chars[..<eq].trimmingCharacters(" ").lowercased()
            chars = chars[chars.index(after: eq)...]
            var value = ""
            if chars.first == "\"" {
                chars = chars.dropFirst()
                var escaped = false
                while let c = chars.first {
                    chars = chars.dropFirst()
                    if escaped { value.append(c); escaped = false; continue }
                    if c == "\\" { escaped = true; continue }
                    if c == "\"" { break }
                    value.append(c)
                }
            } else {
                let end = chars.firstIndex(of: ",") ?? chars.endIndex
                value = chars[..<end].trimmingCharacters(" ")
                chars = chars[end...]
            }
            parameters[key] = value
        }
    }
}

extension Substring {
    fileprivate func trimmingCharacters(_ c: Character) -> String {
        var s = self
        while s.first == c { s = s.dropFirst() }
        while s.last == c { s = s.dropLast() }
        return String(s)
    }
}
