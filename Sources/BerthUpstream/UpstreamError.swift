/// Why an upstream registry did not give what was asked.
public enum UpstreamError: Error, Equatable, Sendable, CustomStringConvertible {
    /// 404: the upstream does not have it.
    case notFound
    /// 429: the upstream's rate limit (Docker Hub's pull quota); `retryAfter` in seconds when given.
    case tooManyRequests(retryAfter: Int?)
    /// 401/403 even after authenticating.
    case denied(status: Int)
    /// Unreachable, timing out, 5xx, or a broken answer.
    case unavailable(String)
    /// The upstream is blocked after repeated failures until the block expires.
    case blocked

    public var description: String {
        switch self {
        case .notFound: "not found upstream"
        case .tooManyRequests(let r): "upstream rate limit (429)" + (r.map { ", retry after \($0) s" } ?? "")
        case .denied(let s): "upstream refused access (\(s))"
        case .unavailable(let why): "upstream unavailable: \(why)"
        case .blocked: "upstream blocked after repeated failures"
        }
    }
}
