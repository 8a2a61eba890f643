/// A registry error as the distribution spec defines it: a code, a message and an optional detail.
///
/// Domain code throws these; only the HTTP layer turns them into a status line and the
/// `{"errors":[{"code","message","detail"}]}` body.
public struct RegistryError: Error, Sendable, Equatable, CustomStringConvertible {
    /// An error code. A struct with static members (not a frozen enum) so later work can add codes.
    public struct Code: Hashable, Sendable {
        /// The code string of the spec, e.g. `BLOB_UNKNOWN`.
        public let value: String
        /// The HTTP status the spec pairs with this code.
        public let status: Int
        /// The default message.
        public let message: String

        public init(_ value: String, status: Int, message: String) {
            self.value = value
            self.status = status
            self.message = message
        }

        public static let blobUnknown = Code("BLOB_UNKNOWN", status: 404, message: "blob unknown to registry")
        public static let blobUploadInvalid = Code("BLOB_UPLOAD_INVALID", status: 400, message: "blob upload invalid")
        public static let blobUploadUnknown = Code("BLOB_UPLOAD_UNKNOWN", status: 404, message: "blob upload unknown to registry")
        public static let digestInvalid = Code("DIGEST_INVALID", status: 400, message: "provided digest did not match uploaded content")
        public static let manifestBlobUnknown = Code("MANIFEST_BLOB_UNKNOWN", status: 404, message: "manifest references a manifest or blob unknown to registry")
        public static let manifestInvalid = Code("MANIFEST_INVALID", status: 400, message: "manifest invalid")
        public static let manifestUnknown = Code("MANIFEST_UNKNOWN", status: 404, message: "manifest unknown to registry")
        public static let nameInvalid = Code("NAME_INVALID", status: 400, message: "invalid repository name")
        public static let nameUnknown = Code("NAME_UNKNOWN", status: 404, message: "repository name not known to registry")
        public static let sizeInvalid = Code("SIZE_INVALID", status: 400, message: "provided length did not match content length")
        public static let tagInvalid = Code("TAG_INVALID", status: 400, message: "manifest tag did not match URI")
        public static let unauthorized = Code("UNAUTHORIZED", status: 401, message: "authentication required")
        public static let denied = Code("DENIED", status: 403, message: "requested access to the resource is denied")
        public static let unsupported = Code("UNSUPPORTED", status: 405, message: "the operation is unsupported")
        public static let tooManyRequests = Code("TOOMANYREQUESTS", status: 429, message: "too many requests")
        /// An upload chunk that does not continue where the upload stands.
        public static let rangeInvalid = Code("BLOB_UPLOAD_INVALID", status: 416, message: "requested range not satisfiable")
        /// A manifest over the size limit (413 as distribution answers).
        public static let manifestTooLarge = Code("MANIFEST_INVALID", status: 413, message: "manifest too large")
        public static let paginationInvalid = Code("PAGINATION_NUMBER_INVALID", status: 400, message: "invalid number of results requested")
        public static let unavailable = Code("UNAVAILABLE", status: 503, message: "service unavailable")
        public static let internalError = Code("UNKNOWN", status: 500, message: "unknown error")
    }

    public let code: Code
    public let message: String
    public let detail: String?

    public init(_ code: Code, _ message: String? = nil, detail: String? = nil) {
        self.code = code
        self.message = message ?? code.message
        self.detail = detail
    }

    public var description: String {
        detail.map { "\(code.value): \(message) (\($0))" } ?? "\(code.value): \(message)"
    }
}
