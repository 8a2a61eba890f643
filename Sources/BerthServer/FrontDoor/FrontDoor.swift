import NIOConcurrencyHelpers

/// The routing state shared by every listener, swapped whole on reload so a request sees one consistent view.
public final class FrontDoor: Sendable {
    /// What a listener is for.
    struct Listener: Sendable, Equatable {
        /// The main listener keeps the path-based access methods for unknown hosts.
        var isMain: Bool
        var isTLS: Bool
    }

    struct State: Sendable {
        var routes: RouteTable
        var trustedProxies: TrustedProxies
        var publicURL: String?
        /// By local port.
        var listeners: [Int: Listener]
    }

    private let box: NIOLockedValueBox<State>

    init(_ state: State) {
        box = NIOLockedValueBox(state)
    }

    convenience init(_ config: BerthConfiguration) {
        self.init(Self.state(config))
    }

    var state: State { box.withLockedValue { $0 } }

    /// Replaces routes, proxies and public URL (listeners are fixed for the life of the process).
    func replace(with config: BerthConfiguration) {
        let new = Self.state(config)
        box.withLockedValue { $0 = new }
    }

    static func state(_ config: BerthConfiguration) -> State {
        var listeners: [Int: Listener] = [config.listen.port: Listener(isMain: true, isTLS: false)]
        for extra in config.frontDoor.listeners {
            listeners[extra.listen.port] = Listener(isMain: false, isTLS: extra.tls != nil)
        }
        for route in config.frontDoor.routes {
            if let listen = route.listen { listeners[listen.port] = Listener(isMain: false, isTLS: route.tls != nil) }
        }
        return State(
            routes: RouteTable(config.frontDoor), trustedProxies: TrustedProxies(config.trustedProxies),
            publicURL: config.publicURL, listeners: listeners)
    }
}
