/// A request to the object store that failed: S3's answer (status, `Code`, `Message`) or, with status 0, no
/// answer at all. Never carries credentials or signatures.
public struct S3Error: Error, CustomStringConvertible, Sendable {
    /// The S3 operation, e.g. `PutObject`.
    public var operation: String
    /// HTTP status; 0 when the request got no HTTP answer (connection refused, timeout…).
    public var status: Int
    /// S3's error code (`NoSuchKey`, `AccessDenied`…), or a name of ours when S3 gave none.
    public var code: String
    public var message: String
    public var bucket: String
    /// The object key concerned, nil for bucket-level operations.
    public var key: String?

    public init(operation: String, status: Int, code: String, message: String, bucket: String, key: String?) {
        self.operation = operation
        self.status = status
        self.code = code
        self.message = message
        self.bucket = bucket
        self.key = key
    }

    public var isNotFound: Bool { status == 404 || code == "NoSuchKey" || code == "NoSuchUpload" }

    public var description: String {
        let target = key.map { "s3://\(bucket)/\($0)" } ?? "bucket \(bucket)"
        let answer = status == 0 ? "no answer" : "HTTP \(status)"
        return "S3 \(operation) on \(target) failed: \(answer) \(code)" + (message.isEmpty ? "" : ": \(message)")
    }
}
