import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// One S3 request to make. Bodies are always held in memory and bounded (at most a part, or a small XML
/// document), so a request can be retried as it is.
struct S3Call: Sendable {
    /// The S3 operation's name, for errors and logs.
    var operation: String
    var method: HTTPMethod
    /// The object key, or nil for the bucket itself.
    var key: String?
    var query: [(String, String)] = []
    var headers: [(String, String)] = []
    var body: ByteBuffer?
    /// Hex SHA-256 of `body`: ``SigV4Signer/emptyPayloadHash`` without one; ``SigV4Signer/unsignedPayload`` for
    /// object data, whose integrity TLS and the registry's digest check already cover (hashing it twice costs CPU).
    var payloadHash = SigV4Signer.emptyPayloadHash
    /// Whether sending it twice does no harm, so a request that got no answer is sent again.
    var idempotent = true
}

/// The HTTP side of the store: where a request goes (path style or virtual-hosted), signing, sending, retrying
/// transient failures, and turning S3's error documents into ``S3Error``.
struct S3Connection: Sendable {
    let httpClient: HTTPClient
    let signer: SigV4Signer
    let bucket: String
    let scheme: String
    /// `host[:port]` of the endpoint, without a default port (the `Host` header signed and sent).
    let authority: String
    let pathStyle: Bool
    let requestTimeout: TimeAmount
    let logger: Logger

    /// A request that failed with a 5xx answer or no answer is tried this many times in all.
    static let attempts = 3

    /// Splits `scheme://host[:port][/]`; nil when the endpoint is not such a URL.
    static func parseEndpoint(_ endpoint: String) -> (scheme: String, authority: String)? {
        guard let separator = endpoint.firstRange(of: "://") else { return nil }
        let scheme = endpoint[..<separator.lowerBound].lowercased()
        guard scheme == "http" || scheme == "https" else { return nil }
        var authority = String(endpoint[separator.upperBound...])
        while authority.hasSuffix("/") { authority.removeLast() }
        guard !authority.isEmpty, !authority.contains("/"), !authority.contains("?"), !authority.contains("@") else { return nil }
        let defaultPort = scheme == "https" ? ":443" : ":80"
        if authority.hasSuffix(defaultPort) { authority.removeLast(defaultPort.count) }
        return (scheme, authority)
    }

    /// The `Host` and the raw (not yet encoded) path of a key, or of the bucket when `key` is nil.
    func location(_ key: String?) -> (host: String, path: String) {
        if pathStyle {
            return (authority, "/" + bucket + (key.map { "/" + $0 } ?? ""))
        }
        return (bucket + "." + authority, "/" + (key ?? ""))
    }

    func url(host: String, path: String, query: String) -> String {
        scheme + "://" + host + SigV4Signer.encodePath(path) + (query.isEmpty ? "" : "?" + query)
    }

    /// A presigned `GET` URL of an object.
    func presignedGetURL(_ key: String, expires: Int, now: Date = Date()) -> String {
        let (host, path) = location(key)
        return url(host: host, path: path, query: signer.presignedQuery(method: "GET", host: host, path: path, date: now, expires: expires))
    }

    func error(_ call: S3Call, status: Int, code: String, message: String) -> S3Error {
        S3Error(operation: call.operation, status: status, code: code, message: message, bucket: bucket, key: call.key)
    }

    /// Sends a call and returns the response when its status is 2xx or in `accepting` (the caller reads or drains
    /// its body). Any other answer becomes an ``S3Error`` built from S3's error document.
    func send(_ call: S3Call, accepting: Set<UInt> = []) async throws -> HTTPClientResponse {
        var attempt = 1
        while true {
            let (host, path) = location(call.key)
            let signed = signer.sign(
                method: call.method.rawValue, host: host, path: path, query: call.query, headers: call.headers,
                payloadHash: call.payloadHash, date: Date())
            var request = HTTPClientRequest(url: url(host: host, path: path, query: SigV4Signer.canonicalQuery(call.query)))
            request.method = call.method
            for header in signed.headers { request.headers.add(name: header.name, value: header.value) }
            if let body = call.body { request.body = .bytes(body) }

            let response: HTTPClientResponse
            do {
                response = try await httpClient.execute(request, timeout: requestTimeout, logger: logger)
            } catch {
                guard call.idempotent, attempt < Self.attempts, !Task.isCancelled else {
                    throw self.error(call, status: 0, code: "NoResponse", message: "\(error)")
                }
                logger.debug("S3 request got no answer; retrying", metadata: ["operation": "\(call.operation)", "error": "\(error)"])
                try await backOff(attempt)
                attempt += 1
                continue
            }
            let status = response.status.code
            if (200..<300).contains(status) || accepting.contains(status) { return response }
            let document = (try? await response.body.collect(upTo: 1 << 20)).map { String(buffer: $0) } ?? ""
            if status >= 500, attempt < Self.attempts, !Task.isCancelled {
                logger.debug("S3 answered with a server error; retrying", metadata: ["operation": "\(call.operation)", "status": "\(status)"])
                try await backOff(attempt)
                attempt += 1
                continue
            }
            throw errorFromDocument(call, status: Int(status), document: document[...])
        }
    }

    /// Sends a call and collects its whole (small) response body.
    func sendCollecting(_ call: S3Call, limit: Int = 16 << 20) async throws -> ByteBuffer {
        let response = try await send(call)
        return try await response.body.collect(upTo: limit)
    }

    /// Reads and drops a response body, so its connection goes back to the pool.
    func drain(_ response: HTTPClientResponse) async throws {
        for try await _ in response.body {}
    }

    /// The ``S3Error`` an error document describes; status-derived when there is no document (`HEAD`).
    func errorFromDocument(_ call: S3Call, status: Int, document: Substring) -> S3Error {
        let code = S3XML.text("Code", in: document) ?? Self.codeForStatus(status)
        let message = S3XML.text("Message", in: document) ?? ""
        return error(call, status: status, code: code, message: message)
    }

    /// A 200 answer whose body is an `<Error>` document (CopyObject, UploadPartCopy and CompleteMultipartUpload
    /// report failures found after they started answering that way).
    func checkNoErrorDocument(_ call: S3Call, _ body: ByteBuffer) throws {
        let document = String(buffer: body)
        if !S3XML.elements("Error", in: document[...]).isEmpty {
            throw errorFromDocument(call, status: 200, document: document[...])
        }
    }

    static func codeForStatus(_ status: Int) -> String {
        switch status {
        case 301, 307: "WrongEndpointOrRegion"
        case 400: "BadRequest"
        case 403: "AccessDenied"
        case 404: "NotFound"
        case 409: "Conflict"
        case 412: "PreconditionFailed"
        case 416: "InvalidRange"
        default: "HTTP\(status)"
        }
    }

    private func backOff(_ attempt: Int) async throws {
        try await Task.sleep(nanoseconds: UInt64(100_000_000) << UInt64(2 * (attempt - 1)))
    }
}

// MARK: - Operations

/// An object as a listing shows it.
struct S3Object: Sendable, Equatable {
    var key: String
    var size: Int64
    /// `LastModified`, seconds since 1970 (nil when the listing had none we could read).
    var lastModified: Int64? = nil
}

extension S3Connection {
    /// The size of an object, or nil when there is none.
    func headObject(_ key: String) async throws -> Int64? {
        let response = try await send(S3Call(operation: "HeadObject", method: .HEAD, key: key), accepting: [404])
        try await drain(response)
        guard response.status != .notFound else { return nil }
        guard let length = response.headers.first(name: "content-length").flatMap({ Int64($0) }) else {
            throw error(S3Call(operation: "HeadObject", method: .HEAD, key: key), status: Int(response.status.code), code: "MissingContentLength", message: "no Content-Length in the answer")
        }
        return length
    }

    /// The bytes `range` of an object (a ranged `GET`; the range must lie within the object).
    func getObject(_ key: String, range: Range<Int64>) async throws -> ByteBuffer {
        guard !range.isEmpty else { return ByteBuffer() }
        let call = S3Call(operation: "GetObject", method: .GET, key: key, headers: [("range", "bytes=\(range.lowerBound)-\(range.upperBound - 1)")])
        let response = try await send(call)
        let bytes = try await response.body.collect(upTo: range.count)
        guard bytes.readableBytes == range.count else {
            throw error(call, status: Int(response.status.code), code: "ShortRead", message: "asked for \(range.count) bytes at \(range.lowerBound), got \(bytes.readableBytes)")
        }
        return bytes
    }

    func putObject(_ key: String, body: ByteBuffer) async throws {
        let response = try await send(S3Call(operation: "PutObject", method: .PUT, key: key, body: body, payloadHash: SigV4Signer.unsignedPayload))
        try await drain(response)
    }

    /// Server-side copy of a whole object (at most 5 GiB), the bytes never passing through this node.
    func copyObject(from source: String, to key: String) async throws {
        let call = S3Call(operation: "CopyObject", method: .PUT, key: key, headers: [("x-amz-copy-source", copySource(source))])
        try checkNoErrorDocument(call, try await sendCollecting(call))
    }

    /// Deletes an object; a missing one is no error (S3 answers 204 either way; some servers 404).
    func deleteObject(_ key: String) async throws {
        let response = try await send(S3Call(operation: "DeleteObject", method: .DELETE, key: key), accepting: [404])
        try await drain(response)
    }

    /// Every object under `prefix` (ListObjectsV2, all pages). With a delimiter, also the common prefixes.
    func listObjects(prefix: String, delimiter: String? = nil) async throws -> (objects: [S3Object], commonPrefixes: [String]) {
        var objects: [S3Object] = []
        var prefixes: [String] = []
        var continuation: String?
        repeat {
            var query = [("list-type", "2"), ("prefix", prefix)]
            if let delimiter { query.append(("delimiter", delimiter)) }
            if let continuation { query.append(("continuation-token", continuation)) }
            let body = try await sendCollecting(S3Call(operation: "ListObjectsV2", method: .GET, key: nil, query: query))
            let document = String(buffer: body)[...]
            for entry in S3XML.elements("Contents", in: document) {
                guard let key = S3XML.text("Key", in: entry), let size = S3XML.text("Size", in: entry).flatMap({ Int64($0) }) else { continue }
                objects.append(S3Object(key: key, size: size, lastModified: S3XML.text("LastModified", in: entry).flatMap(Self.epochSeconds)))
            }
            for entry in S3XML.elements("CommonPrefixes", in: document) {
                if let prefix = S3XML.text("Prefix", in: entry) { prefixes.append(prefix) }
            }
            let truncated = S3XML.text("IsTruncated", in: document) == "true"
            continuation = truncated ? S3XML.text("NextContinuationToken", in: document) : nil
        } while continuation != nil
        return (objects, prefixes)
    }

    /// `2026-11-29T07:35:42.000Z` → seconds since 1970 (S3 listings are always UTC).
    static func epochSeconds(_ text: String) -> Int64? {
        let digits = Array(text.utf8)
        func number(_ from: Int, _ count: Int) -> Int64? {
            guard from + count <= digits.count else { return nil }
            var value: Int64 = 0
            for c in digits[from..<(from + count)] {
                guard c >= 48, c <= 57 else { return nil }
                value = value * 10 + Int64(c - 48)
            }
            return value
        }
        guard let year = number(0, 4), let month = number(5, 2), let day = number(8, 2),
              let hour = number(11, 2), let minute = number(14, 2), let second = number(17, 2),
              (1...12).contains(month), (1...31).contains(day)
        else { return nil }
        return UTCCalendar.days(year: year, month: month, day: day) * 86_400 + hour * 3600 + minute * 60 + second
    }

    // MARK: Multipart uploads

    func createMultipartUpload(_ key: String) async throws -> String {
        let call = S3Call(operation: "CreateMultipartUpload", method: .POST, key: key, query: [("uploads", "")], idempotent: false)
        let document = String(buffer: try await sendCollecting(call))
        guard let id = S3XML.text("UploadId", in: document[...]), !id.isEmpty else {
            throw errorFromDocument(call, status: 200, document: document[...])
        }
        return id
    }

    /// Uploads one part; returns its ETag.
    func uploadPart(_ key: String, uploadID: String, number: Int, body: ByteBuffer) async throws -> String {
        let call = S3Call(
            operation: "UploadPart", method: .PUT, key: key, query: [("partNumber", String(number)), ("uploadId", uploadID)],
            body: body, payloadHash: SigV4Signer.unsignedPayload)
        let response = try await send(call)
        try await drain(response)
        guard let etag = response.headers.first(name: "etag") else {
            throw error(call, status: Int(response.status.code), code: "MissingETag", message: "no ETag for part \(number)")
        }
        return etag
    }

    /// Fills one part with bytes `range` of another object, server-side; returns the part's ETag.
    func uploadPartCopy(_ key: String, uploadID: String, number: Int, source: String, range: Range<Int64>) async throws -> String {
        let call = S3Call(
            operation: "UploadPartCopy", method: .PUT, key: key, query: [("partNumber", String(number)), ("uploadId", uploadID)],
            headers: [("x-amz-copy-source", copySource(source)), ("x-amz-copy-source-range", "bytes=\(range.lowerBound)-\(range.upperBound - 1)")])
        let body = try await sendCollecting(call)
        try checkNoErrorDocument(call, body)
        guard let etag = S3XML.text("ETag", in: String(buffer: body)[...]) else {
            throw error(call, status: 200, code: "MissingETag", message: "no ETag for copied part \(number)")
        }
        return etag
    }

    /// Completes a multipart upload from its parts' ETags, in part-number order: the object appears whole.
    func completeMultipartUpload(_ key: String, uploadID: String, etags: [String]) async throws {
        var xml = "<CompleteMultipartUpload>"
        for (index, etag) in etags.enumerated() {
            xml += "<Part><PartNumber>\(index + 1)</PartNumber><ETag>\(S3XML.escape(etag))</ETag></Part>"
        }
        xml += "</CompleteMultipartUpload>"
        let body = ByteBuffer(string: xml)
        let call = S3Call(
            operation: "CompleteMultipartUpload", method: .POST, key: key, query: [("uploadId", uploadID)],
            headers: [("content-type", "application/xml")], body: body,
            payloadHash: SigV4Signer.payloadHash(body.readableBytesView), idempotent: false)
        try checkNoErrorDocument(call, try await sendCollecting(call))
    }

    /// Drops a multipart upload and its parts; one already gone is no error.
    func abortMultipartUpload(_ key: String, uploadID: String) async throws {
        let response = try await send(
            S3Call(operation: "AbortMultipartUpload", method: .DELETE, key: key, query: [("uploadId", uploadID)]), accepting: [404])
        try await drain(response)
    }

    // MARK: Bucket

    /// `HEAD` of the bucket: its status (200 when it exists and is ours to use).
    func headBucket() async throws -> UInt {
        let response = try await send(S3Call(operation: "HeadBucket", method: .HEAD, key: nil), accepting: [301, 400, 403, 404])
        try await drain(response)
        return response.status.code
    }

    /// Creates the bucket in the signer's region. A conflict (another node created it meanwhile, or the name is
    /// taken) is left to the caller's next `HEAD` to tell apart.
    func createBucket() async throws {
        var call = S3Call(operation: "CreateBucket", method: .PUT, key: nil)
        if signer.region != "us-east-1" {
            // Outside us-east-1, S3 wants the region restated in the body.
            let body = ByteBuffer(string: "<CreateBucketConfiguration><LocationConstraint>\(S3XML.escape(signer.region))</LocationConstraint></CreateBucketConfiguration>")
            call.body = body
            call.payloadHash = SigV4Signer.payloadHash(body.readableBytesView)
        }
        let response = try await send(call, accepting: [409])
        try await drain(response)
    }

    /// `x-amz-copy-source`: the source bucket and key, URI-encoded.
    private func copySource(_ key: String) -> String {
        SigV4Signer.encodePath("/" + bucket + "/" + key)
    }
}
