import HummingbirdCore
import Logging
import NIOCore
import NIOSSL

/// HTTP over TLS, with the small writes of one flush sealed into one TLS record.
///
/// The HTTP encoder writes a response's head and body as separate buffers, and the TLS handler seals each
/// buffer it is given into a record of its own: a manifest answer became two records, each with its own
/// encryption pass and header. `WriteCoalescingHandler`, between the two, joins them first.
struct CoalescingTLSChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value

    let base: Base
    let sslContext: NIOSSLContext

    init(_ base: Base, tlsConfiguration: TLSConfiguration) throws {
        self.base = base
        self.sslContext = try NIOSSLContext(configuration: tlsConfiguration)
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext))
            try channel.pipeline.syncOperations.addHandler(WriteCoalescingHandler())
        }.flatMap {
            base.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Base.Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 over TLS like Hummingbird's `.tls(.http1(…))`, with small writes joined into one record per flush.
    static func http1OverTLS(configuration: HTTP1Channel.Configuration, tlsConfiguration: TLSConfiguration) -> HTTPServerBuilder {
        .init { responder in
            try CoalescingTLSChannel(HTTP1Channel(responder: responder, configuration: configuration), tlsConfiguration: tlsConfiguration)
        }
    }
}

/// Holds small outbound buffers until the flush and passes them on as one buffer.
///
/// Only buffers below `limit` are held; a larger one (a blob chunk) first releases what is held, in order, and
/// then goes through untouched, so bodies are never copied and at most `limit` bytes wait here.
final class WriteCoalescingHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    static let limit = 16 << 10

    private var held: ByteBuffer?
    private var promises: [EventLoopPromise<Void>] = []

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .byteBuffer(var buffer) = unwrapOutboundIn(data),
              buffer.readableBytes + (held?.readableBytes ?? 0) <= Self.limit
        else {
            release(context: context)
            context.write(data, promise: promise)
            return
        }
        if held == nil {
            held = buffer
        } else {
            held!.writeBuffer(&buffer)
        }
        if let promise { promises.append(promise) }
    }

    func flush(context: ChannelHandlerContext) {
        release(context: context)
        context.flush()
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        // Held bytes were written before the close: send them rather than fail them.
        if held != nil {
            release(context: context)
            context.flush()
        }
        context.close(mode: mode, promise: promise)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        release(context: context)
    }

    /// Writes what is held as one buffer; its promise completes every write it joined.
    private func release(context: ChannelHandlerContext) {
        guard let buffer = held else { return }
        held = nil
        let waiting = promises
        promises = []
        let promise: EventLoopPromise<Void>? = waiting.isEmpty ? nil : context.eventLoop.makePromise()
        if let promise {
            promise.futureResult.whenComplete { result in
                for p in waiting { p.completeWith(result) }
            }
        }
        context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: promise)
    }
}
