import NIOConcurrencyHelpers

/// Answers of recent reads (manifests, tags, blob links), so the flood of identical pulls — every node of a
/// cluster asking for the same tag — skips the database and its thread hops.
///
/// Coherent by construction, for a store that is the only writer of what it caches: every write bumps the
/// generation *after* it committed, and a read's answer is kept only if the generation it saw *before* it
/// read is still current. So an answer read before a commit never outlives that commit, whatever the
/// interleaving. Bounded by an approximate byte budget; over it, everything is dropped (cheap, and a cache
/// this small refills in milliseconds).
final class ReadCache<Value: Sendable>: Sendable {
    private struct State {
        var generation: UInt64 = 0
        var entries: [String: Value] = [:]
        var bytes = 0
    }

    private let state = NIOLockedValueBox(State())
    private let budget: Int

    init(budget: Int) {
        self.budget = budget
    }

    /// The cached answer for `key`, else `load()`'s, kept when no write happened meanwhile.
    func value(_ key: String, cost: (Value) -> Int, _ load: () async throws -> Value) async throws -> Value {
        let (hit, generation): (Value?, UInt64) = state.withLockedValue { state in
            (state.entries[key], state.generation)
        }
        if let hit { return hit }
        let value = try await load()
        let size = cost(value) + key.utf8.count + 64
        if size <= budget / 8 {
            state.withLockedValue { state in
                guard state.generation == generation, state.entries[key] == nil else { return }
                if state.bytes + size > budget {
                    state.entries.removeAll(keepingCapacity: true)
                    state.bytes = 0
                }
                state.entries[key] = value
                state.bytes += size
            }
        }
        return value
    }

    /// Called after every committed write that can change a cached answer.
    func invalidate() {
        state.withLockedValue { state in
            state.generation &+= 1
            if !state.entries.isEmpty {
                state.entries.removeAll(keepingCapacity: true)
                state.bytes = 0
            }
        }
    }
}
