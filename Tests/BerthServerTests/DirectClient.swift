import BerthRegistry
@testable import BerthServer
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOEmbedded

/// Calls the responder directly with any `Host` (HummingbirdTesting's clients always send `localhost`),
/// as a request arriving on the main listener.
struct DirectClient: Sendable {
    struct Response {
        var status: HTTPResponse.Status
        var headers: HTTPFields
        var body: ByteBuffer
        var text: String { String(buffer: body) }
        var errorCode: String? {
            guard let json = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
                  let errors = json["errors"] as? [[String: Any]] else { return nil }
            return errors.first?["code"] as? String
        }
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:] }
    }

    let responder: BerthResponder
    /// The connection requests seem to arrive on; its event loop runs the exchange. Upstream routes connect out
    /// on it, so they need a real loop rather than the default embedded one.
    var channel: (any Channel)? = nil

    func execute(_ uri: String, _ method: HTTPRequest.Method = .get, host: String, headers: HTTPFields = [:], body: String? = nil) async throws -> Response {
        let response = try await respond(uri, method, host: host, headers: headers, body: body)
        let collector = Collector()
        try await response.body.write(collector)
        return Response(status: response.status, headers: response.headers, body: collector.buffer)
    }

    /// The responder's answer, its body not yet written.
    func respond(_ uri: String, _ method: HTTPRequest.Method = .get, host: String, headers: HTTPFields = [:], body: String? = nil) async throws -> Hummingbird.Response {
        var headers = headers
        if let body { headers[.contentLength] = String(body.utf8.count) }
        let request = Request(
            head: HTTPRequest(method: method, scheme: "http", authority: host, path: uri, headerFields: headers),
            body: RequestBody(buffer: ByteBuffer(string: body ?? "")))
        let context = BerthRequestContext(source: .init(channel: channel ?? EmbeddedChannel(), logger: Logger(label: "test")))
        return try await responder.respond(to: request, context: context)
    }

    private final class Collector: ResponseBodyWriter {
        var buffer = ByteBuffer()
        func write(_ buffer: ByteBuffer) async throws {
            var b = buffer
            self.buffer.writeBuffer(&b)
        }
        consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
    }
}

extension TestRegistry {
    /// Runs `body` with a client that can set the `Host` header.
    func runDirect<T: Sendable>(_ body: (DirectClient) async throws -> T) async throws -> T {
        var logger = Logger(label: "berth-test")
        logger.logLevel = .warning
        let registry = try await BerthApplication.buildRegistry(configuration, logger: logger)
        let authenticator = try await BerthApplication.buildAuthenticator(configuration, registry: registry, logger: logger)
        let responder = BerthResponder(registry: registry, frontDoor: FrontDoor(configuration), upstream: UpstreamProxy(logger: logger), authenticator: authenticator, logger: logger)
        do {
            let result = try await body(DirectClient(responder: responder))
            await responder.upstream.shutdown()
            await registry.shutdown()
            return result
        } catch {
            await responder.upstream.shutdown()
            await registry.shutdown()
            throw error
        }
    }
}
