import Testing
import Foundation
import NIOCore

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

    /// Runs one check against a fresh store from `factory`, in a fresh temp folder.
    static func run(_ check: Check, factory: @escaping Factory, folder label: String) async throws {
        let directory = try TemporaryDirectory(label)
        defer { directory.remove() }
        let store = try await factory(directory.path)
        try await check.body(Context(store: store, reopen: { try await factory(directory.path) }))
    }
}
