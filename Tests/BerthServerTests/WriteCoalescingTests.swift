@testable import BerthServer
import NIOCore
import NIOEmbedded
import Testing

@Suite("TLS write coalescing")
struct WriteCoalescingTests {
    private func outbound(_ channel: EmbeddedChannel) throws -> [String] {
        var seen: [String] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
            seen.append(String(buffer: buffer))
        }
        return seen
    }

    @Test func smallWritesOfOneFlushLeaveAsOneBuffer() throws {
        let channel = EmbeddedChannel(handler: WriteCoalescingHandler())
        let head = channel.write(ByteBuffer(string: "HTTP/1.1 200 OK\r\n\r\n"))
        let body = channel.write(ByteBuffer(string: "{}"))
        #expect(try outbound(channel).isEmpty)
        channel.flush()
        #expect(try outbound(channel) == ["HTTP/1.1 200 OK\r\n\r\n{}"])
        // Each write's promise completes once the joined buffer is written.
        try head.wait()
        try body.wait()
        _ = try channel.finish()
    }

    @Test func largeWritesPassUntouchedAndKeepTheirOrder() throws {
        let channel = EmbeddedChannel(handler: WriteCoalescingHandler())
        let big = String(repeating: "b", count: WriteCoalescingHandler.limit + 1)
        channel.write(ByteBuffer(string: "head"), promise: nil)
        channel.write(ByteBuffer(string: big), promise: nil)
        channel.write(ByteBuffer(string: "tail"), promise: nil)
        channel.flush()
        #expect(try outbound(channel) == ["head", big, "tail"])
        _ = try channel.finish()
    }

    @Test func closeReleasesWhatIsHeld() throws {
        let channel = EmbeddedChannel(handler: WriteCoalescingHandler())
        let write = channel.write(ByteBuffer(string: "last words"))
        try channel.close().wait()
        #expect(try outbound(channel) == ["last words"])
        try write.wait()
    }
}
