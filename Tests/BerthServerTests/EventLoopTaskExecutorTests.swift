@testable import BerthServer
import NIOCore
import NIOPosix
import Testing

@Suite("Event-loop task executor")
struct EventLoopTaskExecutorTests {
    /// What `upstream:` routes rely on: with the preference set, the task and the nonisolated async code it calls
    /// (AsyncHTTPClient, the response writer) run on the client connection's event loop, not on the global pool.
    @Test func aPreferringTaskRunsOnTheLoopAcrossSuspensions() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let executor = EventLoopTaskExecutor(loop)
        let onLoop = await withTaskExecutorPreference(executor) {
            var seen: [Bool] = [loop.inEventLoop]
            for _ in 0..<3 {
                try? await Task.sleep(for: .milliseconds(1))
                seen.append(loop.inEventLoop)
            }
            // A child task inherits the preference.
            async let child = loop.inEventLoop
            seen.append(await child)
            return seen
        }
        #expect(onLoop == [true, true, true, true, true])
        // Without the preference, the same code runs elsewhere.
        #expect(!loop.inEventLoop)
    }
}
