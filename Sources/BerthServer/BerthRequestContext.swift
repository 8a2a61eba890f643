import Hummingbird
import NIOCore

/// Per-request context: Hummingbird's core storage plus what the front door needs to know of the connection.
public struct BerthRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The local port the request arrived on (picks port routes).
    public let localPort: Int?
    /// The peer's address (trusted-proxy decisions, audit).
    public let remoteAddress: SocketAddress?
    /// The connection's event loop (an `upstream:` route moves bodies on it, see `UpstreamProxy`).
    public let eventLoop: any EventLoop

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        localPort = source.channel.localAddress?.port
        remoteAddress = source.channel.remoteAddress
        eventLoop = source.channel.eventLoop
    }
}
