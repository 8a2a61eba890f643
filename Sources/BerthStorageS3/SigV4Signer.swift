import BerthCore
import Crypto
import Foundation

/// AWS Signature Version 4 for S3, as a pure function of the request: no clock, no I/O, so it is checked
/// against the examples AWS publishes.
///
/// Paths are given raw (`/bucket/some key`); the signer encodes each segment the way S3 expects, and
/// ``encodePath(_:)`` gives the same encoding for the URL actually sent, so the two cannot disagree.
public struct SigV4Signer: Sendable {
    public var accessKey: String
    public var secretKey: String
    /// Temporary credentials' token, sent (and signed) as `x-amz-security-token`.
    public var sessionToken: String?
    public var region: String
    public var service: String

    public static let algorithm = "AWS4-HMAC-SHA256"
    /// The payload hash of a body that is not hashed (streamed, or a presigned URL's).
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"
    /// SHA-256 of no bytes: the payload hash of a request without a body.
    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    public init(accessKey: String, secretKey: String, sessionToken: String? = nil, region: String, service: String = "s3") {
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.sessionToken = sessionToken
        self.region = region
        self.service = service
    }

    /// The result of signing, with the intermediate strings (what a `SignatureDoesNotMatch` is debugged with).
    public struct Signed: Sendable {
        /// Every header to send: the caller's, `host`, `x-amz-date`, `x-amz-content-sha256`, the session token
        /// when there is one, and `authorization`.
        public var headers: [(name: String, value: String)]
        public var canonicalRequest: String
        public var stringToSign: String
        public var signature: String
        public var authorization: String
    }

    /// Signs a request for the `Authorization` header.
    /// - Parameters:
    ///   - path: the raw path (`/examplebucket/my key`), not yet URI-encoded.
    ///   - query: raw names and values, in any order (a valueless parameter has the value "").
    ///   - headers: the headers to send besides `host` and the `x-amz-*` ones added here; all are signed.
    ///   - payloadHash: hex SHA-256 of the body, or ``unsignedPayload``.
    public func sign(
        method: String, host: String, path: String, query: [(String, String)] = [],
        headers: [(String, String)] = [], payloadHash: String, date: Date
    ) -> Signed {
        let timestamp = Self.timestamp(date)
        var all = headers.map { (name: $0.0, value: $0.1) }
        all.append((name: "host", value: host))
        all.append((name: "x-amz-date", value: timestamp))
        all.append((name: "x-amz-content-sha256", value: payloadHash))
        if let sessionToken, !sessionToken.isEmpty { all.append((name: "x-amz-security-token", value: sessionToken)) }

        let (canonicalHeaders, signedHeaders) = Self.canonicalHeaders(all)
        let canonicalRequest = [
            method, Self.encodePath(path), Self.canonicalQuery(query), canonicalHeaders, signedHeaders, payloadHash,
        ].joined(separator: "\n")
        let (stringToSign, signature) = finish(canonicalRequest, timestamp: timestamp)
        let authorization = "\(Self.algorithm) Credential=\(accessKey)/\(scope(timestamp)), SignedHeaders=\(signedHeaders), Signature=\(signature)"
        all.append((name: "authorization", value: authorization))
        return Signed(headers: all, canonicalRequest: canonicalRequest, stringToSign: stringToSign, signature: signature, authorization: authorization)
    }

    /// The query string of a presigned URL (everything after `?`, signature included): only `host` is signed,
    /// and the payload is ``unsignedPayload``.
    /// - Parameter query: further parameters of the request itself, signed with the rest.
    public func presignedQuery(
        method: String, host: String, path: String, query: [(String, String)] = [], date: Date, expires: Int
    ) -> String {
        let timestamp = Self.timestamp(date)
        var parameters = query
        parameters.append(("X-Amz-Algorithm", Self.algorithm))
        parameters.append(("X-Amz-Credential", "\(accessKey)/\(scope(timestamp))"))
        parameters.append(("X-Amz-Date", timestamp))
        parameters.append(("X-Amz-Expires", String(expires)))
        parameters.append(("X-Amz-SignedHeaders", "host"))
        if let sessionToken, !sessionToken.isEmpty { parameters.append(("X-Amz-Security-Token", sessionToken)) }
        let canonicalQuery = Self.canonicalQuery(parameters)
        let canonicalRequest = [
            method, Self.encodePath(path), canonicalQuery, "host:\(Self.trimmed(host))\n", "host", Self.unsignedPayload,
        ].joined(separator: "\n")
        let signature = finish(canonicalRequest, timestamp: timestamp).signature
        return canonicalQuery + "&X-Amz-Signature=" + signature
    }

    // MARK: Pieces

    /// `yyyymmdd/region/service/aws4_request`.
    func scope(_ timestamp: String) -> String {
        "\(timestamp.prefix(8))/\(region)/\(service)/aws4_request"
    }

    /// The string to sign and its signature, for a canonical request.
    private func finish(_ canonicalRequest: String, timestamp: String) -> (stringToSign: String, signature: String) {
        let stringToSign = [
            Self.algorithm, timestamp, scope(timestamp), Hex.lowercase(SHA256.hash(data: Array(canonicalRequest.utf8))),
        ].joined(separator: "\n")
        // The signing key is derived from the secret through the date, region and service, in that order.
        var key = SymmetricKey(data: Array("AWS4\(secretKey)".utf8))
        for part in [String(timestamp.prefix(8)), region, service, "aws4_request"] {
            key = SymmetricKey(data: Array(HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key)))
        }
        let signature = Hex.lowercase(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: key))
        return (stringToSign, signature)
    }

    /// Lowercase names sorted, values trimmed with inner runs of spaces folded, repeated names joined by commas.
    /// Returns the canonical header block (each line ending in a newline) and the signed-headers list.
    static func canonicalHeaders(_ headers: [(name: String, value: String)]) -> (String, String) {
        var byName: [String: [String]] = [:]
        for header in headers {
            byName[header.name.lowercased(), default: []].append(trimmed(header.value))
        }
        let names = byName.keys.sorted()
        let block = names.map { "\($0):\(byName[$0]!.joined(separator: ","))\n" }.joined()
        return (block, names.joined(separator: ";"))
    }

    /// Encodes and sorts query parameters (by name, then value), `name=value` joined by `&`.
    public static func canonicalQuery(_ parameters: [(String, String)]) -> String {
        // Encoded text is ASCII, so String order is byte order, as S3 sorts.
        let encoded: [(name: String, value: String)] = parameters.map { parameter in
            (uriEncode(parameter.0, encodeSlash: true), uriEncode(parameter.1, encodeSlash: true))
        }
        let sorted = encoded.sorted { a, b in a.name == b.name ? a.value < b.value : a.name < b.name }
        return sorted.map { "\($0.name)=\($0.value)" }.joined(separator: "&")
    }

    /// Each segment of a raw path URI-encoded, slashes kept: both the canonical URI and the URL's path.
    public static func encodePath(_ path: String) -> String {
        let encoded = uriEncode(path, encodeSlash: false)
        return encoded.hasPrefix("/") ? encoded : "/" + encoded
    }

    /// S3's UriEncode: the unreserved characters `A-Z a-z 0-9 - _ . ~` stay, every other byte of the UTF-8
    /// becomes `%XX` with uppercase hex digits; `/` stays only when `encodeSlash` is false (object key paths).
    public static func uriEncode(_ string: String, encodeSlash: Bool) -> String {
        let digits = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(string.utf8.count)
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.append(byte)
            case UInt8(ascii: "/") where !encodeSlash:
                out.append(byte)
            default:
                out.append(UInt8(ascii: "%"))
                out.append(digits[Int(byte >> 4)])
                out.append(digits[Int(byte & 0x0F)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `20130524T000000Z`: the ISO 8601 basic form in UTC that SigV4 uses, computed without a calendar object.
    public static func timestamp(_ date: Date) -> String {
        let seconds = Int64(date.timeIntervalSince1970.rounded(.down))
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        let (year, month, day) = UTCCalendar.date(fromDays: days)
        func pad(_ value: Int64, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return pad(year, 4) + pad(month, 2) + pad(day, 2) + "T"
            + pad(secondOfDay / 3600, 2) + pad(secondOfDay % 3600 / 60, 2) + pad(secondOfDay % 60, 2) + "Z"
    }

    /// Hex SHA-256 of a body the caller holds (the payload hash of a signed payload).
    public static func payloadHash(_ bytes: some Sequence<UInt8>) -> String {
        Hex.lowercase(SHA256.hash(data: Array(bytes)))
    }

    /// Leading and trailing spaces removed, inner runs of spaces folded to one (SigV4's header value rule).
    static func trimmed(_ value: String) -> String {
        var out = ""
        var pendingSpace = false
        for character in value {
            if character == " " || character == "\t" {
                pendingSpace = !out.isEmpty
            } else {
                if pendingSpace { out.append(" ") }
                pendingSpace = false
                out.append(character)
            }
        }
        return out
    }
}
