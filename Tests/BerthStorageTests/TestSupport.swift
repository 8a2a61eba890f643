import Testing
import Foundation
import NIOCore
import NIOConcurrencyHelpers
import BerthStorage

/// A fresh folder under the system temp dir, removed by ``remove()``.
struct TemporaryDirectory: Sendable {
    let path: String

    init(_ label: String = "berth-storage-test") throws {
        path = NSTemporaryDirectory() + "\(label)-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Deterministic pseudo-random bytes (xorshift64), so failures reproduce.
func testBytes(_ count: Int, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) -> [UInt8] {
    var x = seed | 1
    var out = [UInt8]()
    out.reserveCapacity(count)
    for _ in 0..<count {
        x ^= x << 13
        x ^= x >> 7
        x ^= x << 17
        out.append(UInt8(truncatingIfNeeded: x))
    }
    return out
}

extension ByteBuffer {
    var bytes: [UInt8] { Array(readableBytesView) }
}

extension Array where Element == UInt8 {
    var buffer: ByteBuffer { ByteBuffer(bytes: self) }
}

/// The plumbing every storage contract suite shares: a back end plugs in with a factory that opens a store
/// whose data lives in a given folder (calling it again with the same folder reopens the same data, as after
/// a restart), and each check gets a fresh folder.
enum StoreContract<Store: Sendable> {
    typealias Factory = @Sendable (_ directory: String) async throws -> Store

    /// What a check works with.
    struct Context: Sendable {
        let store: Store
        /// Opens the same data again, as after a restart.
        let reopen: @Sendable () async throws -> Store
    }

    struct Check: Sendable, CustomTestStringConvertible {
        let name: String
        let body: @Sendable (Context) async throws -> Void
        init(_ name: String, _ body: @escaping @Sendable (Context) async throws -> Void) {
            self.name = name
            self.body = body
        }
        var testDescription: String { name }
    }

    /// Runs one check against a fresh store from `factory`, in a fresh temp folder. Stores that hold
    /// connections (``StorageEngine``) are shut down afterwards, the reopened ones too.
    static func run(_ check: Check, factory: @escaping Factory, folder label: String) async throws {
        let directory = try TemporaryDirectory(label)
        defer { directory.remove() }
        let opened = NIOLockedValueBox<[Store]>([])
        let open: @Sendable () async throws -> Store = {
            let store = try await factory(directory.path)
            opened.withLockedValue { $0.append(store) }
            return store
        }
        let store = try await open()
        do {
            try await check.body(Context(store: store, reopen: open))
        } catch {
            await closeAll(opened.withLockedValue { $0 })
            throw error
        }
        await closeAll(opened.withLockedValue { $0 })
    }

    private static func closeAll(_ stores: [Store]) async {
        for store in stores {
            if let engine = store as? any StorageEngine { await engine.shutdown() }
        }
    }
}

/// Environment of the external engines, set by `scripts/test-services.sh` (the test script always starts
/// them; without it, the suites that need them are skipped and say so).
enum TestServices {
    static var postgresURL: String? { ProcessInfo.processInfo.environment["BERTH_TEST_POSTGRES_URL"] }
    static var s3Endpoint: String? { ProcessInfo.processInfo.environment["BERTH_TEST_S3_ENDPOINT"] }

    /// A short, stable name for a test folder (the same folder names the same database or bucket on reopen).
    static func name(for directory: String, prefix: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in directory.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return prefix + String(hash, radix: 16)
    }
}
