import BerthCore
import BerthRegistry
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// The single responder of every listener: decides which surface a request is for and hands it over.
///
/// The route table of the distribution API is ``AccessPath``/``DistributionRoute`` (pure, table-tested);
/// this type only glues them to HTTP.
public struct BerthResponder: HTTPResponder {
    public typealias Context = BerthRequestContext

    let distribution: DistributionController
    let logger: Logger

    public init(registry: Registry, logger: Logger) {
        distribution = DistributionController(registry: registry)
        self.logger = logger
    }

    public func respond(to request: Request, context: Context) async throws -> Response {
        let path = Self.decodedPath(request.uri.path)
        if let access = AccessPath.parse(path: path[...]) {
            let namespace: ClientNamespace
            switch access.method {
            case .repositoryPath: namespace = ClientNamespace(kind: .repositoryPath)
            case .nexusPath(let repository): namespace = ClientNamespace(kind: .nexusPath(repository: repository))
            }
            var response: Response
            do {
                if case .nexusPath(let repository) = access.method {
                    _ = try distribution.registry.repository(repository)
                }
                response = try await distribution.respond(access.route, namespace: namespace, request: request)
            } catch let error as RegistryError {
                if error.code.status >= 500 { logger.error("request failed", metadata: ["error": "\(error)", "path": "\(path)"]) }
                response = try error.response(from: request, context: context)
            }
            response.headers[.dockerAPIVersion] = "registry/2.0"
            return response
        }
        return try regularSurface(path, request: request, context: context)
    }

    /// Everything that is not the distribution API: status endpoints for now.
    private func regularSurface(_ path: String, request: Request, context: Context) throws -> Response {
        switch path {
        case "/", "/service/rest/v1/status":
            let body = path == "/" ? "Berth Docker/OCI repository manager. The registry API is at /v2/.\n" : ""
            return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8", .contentLength: String(body.utf8.count)], body: .init(byteBuffer: ByteBuffer(string: body)))
        default:
            if path.hasPrefix("/v2") || path.hasPrefix("/repository/") {
                // Under the registry's paths, unknown endpoints answer in the registry's error format.
                var response = try RegistryError(.nameUnknown, "no such registry endpoint", detail: String(path.prefix(200))).response(from: request, context: context)
                response.headers[.dockerAPIVersion] = "registry/2.0"
                return response
            }
            return Response(status: .notFound, headers: [.contentType: "text/plain; charset=utf-8", .contentLength: "10"], body: .init(byteBuffer: ByteBuffer(string: "not found\n")))
        }
    }

    /// Percent-decodes the path (some clients encode the `:` of digests); plain paths pass untouched.
    static func decodedPath(_ raw: String) -> String {
        guard raw.utf8.contains(UInt8(ascii: "%")) else { return raw }
        return raw.removingPercentEncoding ?? raw
    }
}
