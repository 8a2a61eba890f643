import BerthCore
import HTTPTypes
import Hummingbird
import NIOCore

extension RegistryError: HTTPResponseError {
    public var status: HTTPResponse.Status { .init(code: code.status) }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        response(for: request)
    }

    /// The error as a response to `request` (no body for `HEAD`).
    func response(for request: Request) -> Response {
        var headers: HTTPFields = [.contentType: "application/json; charset=utf-8", .dockerAPIVersion: "registry/2.0"]
        if code == .unauthorized {
            headers[.wwwAuthenticate] = "Basic realm=\"Berth\""
        }
        let body = ByteBuffer(string: jsonBody)
        headers[.contentLength] = String(body.readableBytes)
        return Response(status: status, headers: headers, body: request.method == .head ? ResponseBody() : ResponseBody(byteBuffer: body))
    }

    /// `{"errors":[{"code":…,"message":…,"detail":…}]}` as the distribution spec defines it.
    var jsonBody: String {
        var out = "{\"errors\":[{\"code\":"
        out += JSONText.quoted(code.value)
        out += ",\"message\":"
        out += JSONText.quoted(message)
        out += ",\"detail\":"
        out += detail.map(JSONText.quoted) ?? "null"
        out += "}]}"
        return out
    }
}

/// Small JSON writing helpers: responses are built by hand so key order is fixed and nothing is re-encoded.
enum JSONText {
    static func quoted(_ s: String) -> String {
        var out = "\""
        out.reserveCapacity(s.utf8.count + 2)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let c where c.value < 0x20:
                let hex = String(c.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
        return out
    }

    static func array(_ items: [String]) -> String {
        "[" + items.map(quoted).joined(separator: ",") + "]"
    }
}
