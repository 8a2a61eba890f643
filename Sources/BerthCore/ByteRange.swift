/// Byte ranges: `Range` on blob downloads (RFC 9110) and `Content-Range` on upload chunks (distribution spec).
public enum ByteRange {
    /// The outcome of a `Range` header against a resource of known size.
    public enum Selection: Equatable, Sendable {
        /// No usable `Range`: serve the whole body (a malformed header is ignored, as RFC 9110 says).
        case full
        /// Serve these inclusive ranges (206); more than one is a multipart answer.
        case ranges([ClosedRange<Int64>])
        /// None of the ranges overlaps the resource (416).
        case unsatisfiable
    }

    /// The most ranges honoured in one request; more are treated as malformed (served in full).
    public static let maxRanges = 64

    /// Evaluates a `Range` header value such as `bytes=0-99,200-`.
    public static func select(_ header: String?, size: Int64) -> Selection {
        guard let header else { return .full }
        let value = header.trimmingBlanks()
        guard value.lowercased().hasPrefix("bytes=") else { return .full }
        let specs = value.dropFirst(6).split(separator: ",", omittingEmptySubsequences: false)
        guard !specs.isEmpty, specs.count <= maxRanges else { return .full }
        var ranges: [ClosedRange<Int64>] = []
        for rawSpec in specs {
            let spec = rawSpec.trimmingBlanks()
            guard let dash = spec.firstIndex(of: "-") else { return .full }
            let first = spec[..<dash]
            let last = spec[spec.index(after: dash)...]
            if first.isEmpty {
                // Suffix range: the last N bytes.
                guard let n = Int64(last), n >= 0 else { return .full }
                if n == 0 || size == 0 { continue }
                ranges.append(max(0, size - n)...(size - 1))
            } else {
                guard let start = Int64(first), start >= 0 else { return .full }
                var end = size - 1
                if !last.isEmpty {
                    guard let e = Int64(last), e >= start else { return .full }
                    end = min(e, size - 1)
                }
                if start >= size { continue }
                ranges.append(start...end)
            }
        }
        return ranges.isEmpty ? .unsatisfiable : .ranges(ranges)
    }

    /// Parses an upload chunk's `Content-Range: <start>-<end>` (a `bytes ` or `bytes=` prefix is tolerated).
    /// - Returns: the inclusive range, or nil when malformed.
    public static func parseUploadContentRange(_ header: String) -> ClosedRange<Int64>? {
        var value = Substring(header.trimmingBlanks())
        if value.lowercased().hasPrefix("bytes") {
            value = value.dropFirst(5).drop(while: { $0 == " " || $0 == "=" })
        }
        // A `/total` suffix (RFC form) is allowed and ignored.
        if let slash = value.firstIndex(of: "/") { value = value[..<slash] }
        let parts = value.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let start = Int64(parts[0]), let end = Int64(parts[1]), start >= 0, end >= start else {
            return nil
        }
        return start...end
    }
}
