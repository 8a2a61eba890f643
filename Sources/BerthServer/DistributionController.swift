import BerthCore
import BerthRegistry
import BerthStorage
import HTTPTypes
import Hummingbird
import NIOCore

/// The distribution API: one method per endpoint, each a thin translation between HTTP and ``Registry``.
struct DistributionController: Sendable {
    let registry: Registry

    /// Bytes read per step when streaming a blob out: large enough for few file-system round trips, small
    /// enough that many slow clients hold little memory.
    static let downloadChunk = 512 << 10

    func respond(_ route: DistributionRoute, namespace: ClientNamespace, request: Request, access: AccessCheck? = nil) async throws -> Response {
        var namespace = namespace
        namespace.access = Self.access(route, request.method)
        switch (route, request.method) {
        case (.base, .get), (.base, .head):
            return Response(status: .ok, headers: [.contentType: "application/json", .contentLength: "2"], body: request.method == .head ? ResponseBody() : .init(byteBuffer: ByteBuffer(string: "{}")))
        case (.catalog, .get):
            return try await catalog(namespace: namespace, request: request, access: access)
        case (.tagsList(let name), .get):
            return try await tags(name, namespace: namespace, request: request)
        case (.manifest(let name, let ref), .get), (.manifest(let name, let ref), .head):
            return try await getManifest(name, ref, namespace: namespace, request: request)
        case (.manifest(let name, let ref), .put):
            return try await putManifest(name, ref, namespace: namespace, request: request)
        case (.manifest(let name, let ref), .delete):
            try await registry.deleteManifest(try Reference(parsing: ref), in: try image(name, namespace))
            return Response(status: .accepted, headers: [.contentLength: "0"])
        case (.blob(let name, let digest), .get), (.blob(let name, let digest), .head):
            return try await getBlob(name, try Digest(parsing: digest), namespace: namespace, request: request)
        case (.blob(let name, let digest), .delete):
            try await registry.deleteBlob(try Digest(parsing: digest), in: try image(name, namespace))
            return Response(status: .accepted, headers: [.contentLength: "0"])
        case (.uploadStart(let name), .post):
            return try await startUpload(name, namespace: namespace, request: request, access: access)
        case (.upload(let name, let id), .patch):
            return try await patchUpload(name, id, namespace: namespace, request: request)
        case (.upload(let name, let id), .put):
            return try await putUpload(name, id, namespace: namespace, request: request)
        case (.upload(let name, let id), .get):
            let status = try await registry.uploadStatus(id, in: try image(name, namespace))
            return uploadResponse(.noContent, name, status, namespace)
        case (.upload(let name, let id), .delete):
            try await registry.cancelUpload(id, in: try image(name, namespace))
            return Response(status: .noContent)
        case (.referrers(let name, let digest), .get):
            return try await referrers(name, try Digest(parsing: digest), namespace: namespace, request: request)
        default:
            throw RegistryError(.unsupported, "method \(request.method) is not supported here")
        }
    }

    /// The one place that maps a request to read or write: uploads and every non-GET/HEAD method write.
    static func access(_ route: DistributionRoute, _ method: HTTPRequest.Method) -> ClientNamespace.Access {
        switch route {
        case .uploadStart, .upload: .write
        default: method == .get || method == .head ? .read : .write
        }
    }

    private func image(_ name: String, _ namespace: ClientNamespace) throws(RegistryError) -> ImageRef {
        let ref = try namespace.image(name, registry: registry)
        try registry.validate(ref)
        return ref
    }

    // MARK: Blobs

    private func getBlob(_ name: String, _ digest: Digest, namespace: ClientNamespace, request: Request) async throws -> Response {
        let ref = try image(name, namespace)
        let etag = "\"\(digest)\""
        var headers: HTTPFields = [
            .dockerContentDigest: digest.description, .eTag: etag, .acceptRanges: "bytes",
            .contentType: "application/octet-stream", .cacheControl: "max-age=31536000",
        ]
        if request.method == .head {
            let stat = try await registry.blobStat(digest, in: ref)
            headers[.contentLength] = String(stat.size)
            return Response(status: .ok, headers: headers)
        }
        if let match = request.headers[.ifNoneMatch], match == etag || match == "*" {
            _ = try await registry.blobStat(digest, in: ref)
            return Response(status: .notModified, headers: headers)
        }
        if let url = try await registry.blobRedirect(digest, in: ref) {
            // Object storage serves the bytes; a 307 keeps the method and Range, as the spec allows for blob GETs.
            return Response(status: .temporaryRedirect, headers: [.location: url, .dockerContentDigest: digest.description, .contentLength: "0"])
        }
        let handle = try await registry.openBlob(digest, in: ref)
        let size = handle.size
        switch ByteRange.select(request.headers[.range], size: size) {
        case .full:
            headers[.contentLength] = String(size)
            return Response(status: .ok, headers: headers, body: Self.stream(handle, ranges: [0...(size - 1)], size: size))
        case .unsatisfiable:
            try? await handle.close()
            return Response(status: .rangeNotSatisfiable, headers: [.contentRange: "bytes */\(size)", .contentLength: "0"])
        case .ranges(let ranges) where ranges.count == 1:
            let r = ranges[0]
            headers[.contentRange] = "bytes \(r.lowerBound)-\(r.upperBound)/\(size)"
            headers[.contentLength] = String(r.upperBound - r.lowerBound + 1)
            return Response(status: .partialContent, headers: headers, body: Self.stream(handle, ranges: ranges, size: size))
        case .ranges(let ranges):
            let boundary = "berth-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
            headers[.contentType] = "multipart/byteranges; boundary=\(boundary)"
            let parts = ranges.map { r in
                "\r\n--\(boundary)\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes \(r.lowerBound)-\(r.upperBound)/\(size)\r\n\r\n"
            }
            let closing = "\r\n--\(boundary)--\r\n"
            let length = zip(parts, ranges).reduce(Int64(closing.utf8.count)) { $0 + Int64($1.0.utf8.count) + $1.1.upperBound - $1.1.lowerBound + 1 }
            headers[.contentLength] = String(length)
            return Response(status: .partialContent, headers: headers, body: Self.stream(handle, ranges: ranges, size: size, partHeaders: parts, closing: closing))
        }
    }

    /// Streams ranges of a blob, one bounded chunk at a time; the handle is closed at the end.
    private static func stream(_ handle: any BlobReadHandle, ranges: [ClosedRange<Int64>], size: Int64, partHeaders: [String]? = nil, closing: String? = nil) -> ResponseBody {
        if size == 0 {
            return ResponseBody { writer in
                try? await handle.close()
                try await writer.finish(nil)
            }
        }
        return ResponseBody { writer in
            do {
                for (index, range) in ranges.enumerated() {
                    if let partHeaders { try await writer.write(ByteBuffer(string: partHeaders[index])) }
                    var offset = range.lowerBound
                    while offset <= range.upperBound {
                        let length = Int(min(Int64(downloadChunk), range.upperBound - offset + 1))
                        let chunk = try await handle.read(at: offset, length: length)
                        guard chunk.readableBytes > 0 else { throw RegistryError(.internalError, "blob shorter than recorded") }
                        offset += Int64(chunk.readableBytes)
                        try await writer.write(chunk)
                    }
                }
                if let closing { try await writer.write(ByteBuffer(string: closing)) }
                try await handle.close()
                try await writer.finish(nil)
            } catch {
                try? await handle.close()
                throw error
            }
        }
    }

    // MARK: Uploads

    private func startUpload(_ name: String, namespace: ClientNamespace, request: Request, access: AccessCheck?) async throws -> Response {
        let ref = try image(name, namespace)
        let query = request.uri.queryParameters
        if let mount = query.get("mount") {
            let digest = try Digest(parsing: mount)
            if let from = query.get("from"), try await mountBlob(digest, from: from, to: ref, namespace, access: access) {
                return Response(status: .created, headers: [
                    .location: namespace.blobPath(name, digest), .dockerContentDigest: digest.description, .contentLength: "0",
                ])
            }
            // Not mountable: the client gets a normal session and uploads the blob.
        }
        if let digestParam = query.get("digest") {
            let digest = try Digest(parsing: digestParam)
            _ = try await registry.monolithicUpload(in: ref, digest: digest, body: request.body)
            return Response(status: .created, headers: [
                .location: namespace.blobPath(name, digest), .dockerContentDigest: digest.description, .contentLength: "0",
            ])
        }
        let status = try await registry.startUpload(in: ref)
        return uploadResponse(.accepted, name, status, namespace)
    }

    /// Mounts from `from` as the client names it; on a split endpoint the push side is tried, then the pull side.
    private func mountBlob(_ digest: Digest, from: String, to target: ImageRef, _ namespace: ClientNamespace, access: AccessCheck?) async throws -> Bool {
        var sides = [namespace]
        if case .bound = namespace.kind {
            var readSide = namespace
            readSide.access = .read
            sides.append(readSide)
        }
        for side in sides {
            // Mounting reads the source: without read access there, the client uploads instead.
            if let source = try? side.image(from, registry: registry), access?.canRead(source) ?? true,
               try await registry.mountBlob(digest, from: source, to: target) {
                return true
            }
        }
        return false
    }

    private func patchUpload(_ name: String, _ id: String, namespace: ClientNamespace, request: Request) async throws -> Response {
        let ref = try image(name, namespace)
        let range = try Self.contentRange(request)
        let status = try await registry.appendUpload(id, in: ref, range: range, body: request.body)
        return uploadResponse(.accepted, name, status, namespace)
    }

    private func putUpload(_ name: String, _ id: String, namespace: ClientNamespace, request: Request) async throws -> Response {
        let ref = try image(name, namespace)
        guard let digestParam = request.uri.queryParameters.get("digest") else {
            throw RegistryError(.digestInvalid, "the digest query parameter is required to complete an upload")
        }
        let digest = try Digest(parsing: digestParam)
        let range = try Self.contentRange(request)
        // The body is the last chunk; an empty one simply adds nothing.
        _ = try await registry.finishUpload(id, in: ref, digest: digest, range: range, body: request.body)
        return Response(status: .created, headers: [
            .location: namespace.blobPath(name, digest), .dockerContentDigest: digest.description, .contentLength: "0",
        ])
    }

    private static func contentRange(_ request: Request) throws(RegistryError) -> ClosedRange<Int64>? {
        guard let header = request.headers[.contentRange] else { return nil }
        guard let range = ByteRange.parseUploadContentRange(header) else {
            throw RegistryError(.rangeInvalid, "malformed Content-Range", detail: String(header.prefix(100)))
        }
        return range
    }

    private func uploadResponse(_ status: HTTPResponse.Status, _ name: String, _ upload: UploadStatus, _ namespace: ClientNamespace) -> Response {
        // Distribution's convention: `0-0` for an empty upload, else `0-<last byte>`.
        let end = max(0, upload.size - 1)
        return Response(status: status, headers: [
            .location: namespace.uploadPath(name, upload.id), .range: "0-\(end)", .dockerUploadUUID: upload.id,
            .contentLength: "0", .ociChunkMinLength: "0",
        ])
    }

    // MARK: Manifests

    private func getManifest(_ name: String, _ ref: String, namespace: ClientNamespace, request: Request) async throws -> Response {
        let reference = try Reference(parsing: ref)
        let record = try await registry.manifest(reference, in: try image(name, namespace))
        let accept = request.headers[values: .accept]
        guard ManifestParser.accepts(accept, mediaType: record.mediaType) else {
            throw RegistryError(.manifestUnknown, "manifest is \(record.mediaType), which the Accept header does not allow", detail: reference.description)
        }
        let etag = "\"\(record.digest)\""
        var headers: HTTPFields = [
            .contentType: record.mediaType, .dockerContentDigest: record.digest.description,
            .contentLength: String(record.payload.count), .eTag: etag,
        ]
        if let subject = record.subject { headers[.ociSubject] = subject.description }
        if request.method == .head {
            return Response(status: .ok, headers: headers)
        }
        if let match = request.headers[.ifNoneMatch], match == etag {
            return Response(status: .notModified, headers: headers)
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: record.payload)))
    }

    private func putManifest(_ name: String, _ ref: String, namespace: ClientNamespace, request: Request) async throws -> Response {
        let reference = try Reference(parsing: ref)
        let target = try image(name, namespace)
        var bytes: [UInt8] = []
        for try await buffer in request.body {
            guard bytes.count + buffer.readableBytes <= ManifestParser.maxSize else {
                throw RegistryError(.manifestTooLarge, "manifest exceeds \(ManifestParser.maxSize) bytes")
            }
            bytes.append(contentsOf: buffer.readableBytesView)
        }
        let result = try await registry.putManifest(bytes, contentType: request.headers[.contentType], reference: reference, in: target)
        var headers: HTTPFields = [
            .location: namespace.manifestPath(name, result.digest), .dockerContentDigest: result.digest.description, .contentLength: "0",
        ]
        if let subject = result.subject { headers[.ociSubject] = subject.description }
        return Response(status: .created, headers: headers)
    }

    // MARK: Discovery

    /// `n` and `last` of a paginated list; without `n` the whole list.
    private static func page(_ request: Request) throws(RegistryError) -> (limit: Int, last: String?, explicit: Bool) {
        let query = request.uri.queryParameters
        let last = query.get("last").flatMap { $0.isEmpty ? nil : $0 }
        guard let n = query.get("n") else { return (1_000_000, last, false) }
        guard let limit = Int(n), limit >= 0 else {
            throw RegistryError(.paginationInvalid, detail: String(n.prefix(20)))
        }
        return (min(limit, 1_000_000), last, true)
    }

    /// The `Link` header of a page that may have a successor.
    private static func nextLink(_ path: String, limit: Int, last: String) -> String {
        "<\(path)?n=\(limit)&last=\(percentEncodeQuery(last))>; rel=\"next\""
    }

    private func tags(_ name: String, namespace: ClientNamespace, request: Request) async throws -> Response {
        let ref = try image(name, namespace)
        let page = try Self.page(request)
        // One extra row says whether a next page exists.
        var tags = page.limit == 0 ? [] : try await registry.tags(in: ref, after: page.last, limit: page.limit + 1)
        if page.limit == 0 { _ = try await registry.tags(in: ref, after: nil, limit: 1) }
        var headers: HTTPFields = [.contentType: "application/json"]
        if tags.count > page.limit {
            tags.removeLast(tags.count - page.limit)
            headers[.link] = Self.nextLink(namespace.tagsPath(name), limit: page.limit, last: tags.last!)
        }
        let body = "{\"name\":\(JSONText.quoted(name)),\"tags\":\(JSONText.array(tags))}"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    private func catalog(namespace: ClientNamespace, request: Request, access: AccessCheck?) async throws -> Response {
        let page = try Self.page(request)
        var images: [ImageRef] = []
        var after = page.last.map(namespace.catalogKey)
        // Entries the client may not read are left out; pages are refilled from further on (bounded).
        for _ in 0..<20 where page.limit > 0 && images.count <= page.limit {
            let batch = try await registry.catalog(repository: namespace.catalogRepository, after: after, limit: page.limit + 1)
            images += batch.filter { access?.canReadRepository($0.repository) ?? true }
            guard batch.count > page.limit, let last = batch.last else { break }
            after = last.description
        }
        var headers: HTTPFields = [.contentType: "application/json"]
        if images.count > page.limit {
            images.removeLast(images.count - page.limit)
            headers[.link] = Self.nextLink(namespace.catalogPath, limit: page.limit, last: namespace.clientName(images.last!))
        }
        let body = "{\"repositories\":\(JSONText.array(images.map(namespace.clientName)))}"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    private func referrers(_ name: String, _ digest: Digest, namespace: ClientNamespace, request: Request) async throws -> Response {
        let ref = try image(name, namespace)
        let artifactType = request.uri.queryParameters.get("artifactType").flatMap { $0.isEmpty ? nil : $0 }
        let list = try await registry.referrers(of: digest, in: ref, artifactType: artifactType)
        let descriptors = list.map { r in
            var d = "{\"mediaType\":\(JSONText.quoted(r.mediaType)),\"digest\":\(JSONText.quoted(r.digest.description)),\"size\":\(r.size)"
            if let t = r.artifactType { d += ",\"artifactType\":\(JSONText.quoted(t))" }
            if let a = r.annotationsJSON { d += ",\"annotations\":\(a)" }
            return d + "}"
        }
        let body = "{\"schemaVersion\":2,\"mediaType\":\"\(MediaType.ociIndex)\",\"manifests\":[\(descriptors.joined(separator: ","))]}"
        var headers: HTTPFields = [.contentType: MediaType.ociIndex]
        if artifactType != nil { headers[.ociFiltersApplied] = "artifactType" }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

/// Percent-encodes a query value (tags and names need little, but `last` may come from anywhere).
func percentEncodeQuery(_ value: String) -> String {
    var out = ""
    for byte in value.utf8 {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "/"), UInt8(ascii: ":"):
            out.unicodeScalars.append(Unicode.Scalar(byte))
        default:
            let hex = String(byte, radix: 16, uppercase: true)
            out += "%" + (hex.count == 1 ? "0" + hex : hex)
        }
    }
    return out
}
