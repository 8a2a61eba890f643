import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// The `Date` header value (RFC 9110 §5.6.7, IMF-fixdate), formatted once a second for every listener.
///
/// Why not one Hummingbird `Application` per listener, as the main listener has: each runs its own one-second
/// date timer, and 500 port routes then cost ~1 % of a core while Berth is idle (measured: 23 ticks in 20 s,
/// against 0 with one listener).
final class HTTPDateHeader: Service, Sendable {
    private let value: NIOLockedValueBox<String>

    init() {
        value = NIOLockedValueBox(Self.format(secondsSince1970: time(nil)))
    }

    var current: String { value.withLockedValue { $0 } }

    func run() async throws {
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            await cancelWhenGracefulShutdown { try? await Task.sleep(for: .seconds(1)) }
            let formatted = Self.format(secondsSince1970: time(nil))
            value.withLockedValue { $0 = formatted }
        }
    }

    private static let weekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// `Sun, 06 Nov 1994 08:49:37 GMT`.
    static func format(secondsSince1970 seconds: time_t) -> String {
        var t = seconds
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(weekdays[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}

/// A listener besides the main one (`listeners:` and routes with `listen`), serving the shared responder.
///
/// Does for its connections what Hummingbird's `Application` does (a request id in the logger, a 500 for an
/// unexpected error, the `Date` header), with the date from one shared `HTTPDateHeader`.
struct ExtraListener: Service {
    let address: BerthConfiguration.ListenAddress
    let server: HTTPServerBuilder
    let responder: BerthResponder
    let date: HTTPDateHeader
    let logger: Logger

    /// Thrown when writing a response meets a request parse error: the connection closes rather than answer twice.
    struct ParseErrorWhileWritingResponse: Error {}

    func run() async throws {
        let responder = responder, date = date, logger = logger
        let service = try server.buildServer(
            configuration: .init(address: .hostname(address.host, port: address.port), serverName: nil, backlog: 1024, reuseAddress: true),
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            logger: logger
        ) { (request, responseWriter: consuming ResponseWriter, channel) in
            var requestLogger = logger
            requestLogger[metadataKey: "hb.request.id"] = .stringConvertible(RequestID())
            let context = BerthRequestContext(source: .init(channel: channel, logger: requestLogger))
            var response: Response
            do {
                response = try await responder.respond(to: request, context: context)
            } catch let error as HTTPParserError {
                throw error
            } catch {
                requestLogger.debug("unrecognised error", metadata: ["error": "\(error)"])
                response = Response(status: .internalServerError, body: .init())
            }
            response.headers[.date] = date.current
            do {
                try await responseWriter.write(response: response.head, body: response.body)
            } catch is HTTPParserError {
                throw ParseErrorWhileWritingResponse()
            }
        }
        try await service.run()
    }
}
