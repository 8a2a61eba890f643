@testable import BerthStorageSQLite
import Testing

@Suite("ReadCache")
struct ReadCacheTests {
    @Test("a hit skips the load; a write drops everything")
    func hitsAndInvalidation() async throws {
        let cache = ReadCache<String>(budget: 1 << 20)
        var loads = 0
        for _ in 0..<3 {
            let value = try await cache.value("k", cost: { _ in 8 }) { loads += 1; return "v1" }
            #expect(value == "v1")
        }
        #expect(loads == 1)
        cache.invalidate()
        #expect(try await cache.value("k", cost: { _ in 8 }) { "v2" } == "v2")
    }

    @Test("an answer read before a write committed is not kept after it")
    func readRacingAWrite() async throws {
        let cache = ReadCache<String>(budget: 1 << 20)
        // The load sees the old value, and the write's invalidation lands while the load is still running.
        let stale = try await cache.value("tag", cost: { _ in 8 }) { () async -> String in
            cache.invalidate()
            return "old"
        }
        #expect(stale == "old")
        #expect(try await cache.value("tag", cost: { _ in 8 }) { "new" } == "new")
    }

    @Test("the budget bounds what is kept")
    func budget() async throws {
        let cache = ReadCache<Int>(budget: 8 << 10)
        var loads = 0
        for i in 0..<100 {
            _ = try await cache.value("k\(i)", cost: { _ in 900 }) { loads += 1; return i }
        }
        // Entries over an eighth of the budget are never kept; smaller ones are, until the budget is spent.
        _ = try await cache.value("big", cost: { _ in 2 << 10 }) { loads += 1; return 0 }
        _ = try await cache.value("big", cost: { _ in 2 << 10 }) { loads += 1; return 0 }
        #expect(loads == 102)
        _ = try await cache.value("k99", cost: { _ in 900 }) { loads += 1; return 99 }
        #expect(loads == 102)
    }
}
