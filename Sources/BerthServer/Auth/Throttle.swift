import Dispatch
import NIOConcurrencyHelpers

/// Counts failed logins per key (a user name, a client address) in a sliding window; past the limit the
/// key is refused until its oldest failure leaves the window.
final class Throttle: Sendable {
    private let limit: Int
    private let window: UInt64
    private let failures = NIOLockedValueBox<[String: [UInt64]]>([:])

    init(limit: Int, windowSeconds: Int) {
        self.limit = limit
        self.window = UInt64(windowSeconds) * 1_000_000_000
    }

    private static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Seconds until `key` may try again, or nil when it may now.
    func retryAfter(_ key: String) -> Int? {
        let now = Self.now()
        return failures.withLockedValue { table in
            guard var times = table[key] else { return nil }
            times.removeAll { now - $0 >= window }
            table[key] = times.isEmpty ? nil : times
            guard times.count >= limit, let oldest = times.first else { return nil }
            return Int((window - (now - oldest)) / 1_000_000_000) + 1
        }
    }

    func recordFailure(_ key: String) {
        let now = Self.now()
        failures.withLockedValue { table in
            var times = table[key] ?? []
            times.removeAll { now - $0 >= window }
            times.append(now)
            // Only the newest `limit` matter.
            if times.count > limit { times.removeFirst(times.count - limit) }
            table[key] = times
        }
    }

    func reset(_ key: String) {
        _ = failures.withLockedValue { $0.removeValue(forKey: key) }
    }
}
