import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// Peers whose `Forwarded`/`X-Forwarded-*` headers are believed (`trusted_proxies`).
struct TrustedProxies: Sendable {
    private struct Block: Sendable {
        var bytes: [UInt8]
        var prefix: Int
    }

    private let blocks: [Block]

    /// - Parameter cidrs: addresses or CIDR blocks, already validated by the configuration loader.
    init(_ cidrs: [String]) {
        blocks = cidrs.compactMap { text in
            let parts = text.split(separator: "/")
            guard let bytes = Self.bytes(String(parts[0])) else { return nil }
            let prefix = parts.count > 1 ? Int(parts[1]) ?? bytes.count * 8 : bytes.count * 8
            return Block(bytes: bytes, prefix: prefix)
        }
    }

    var isEmpty: Bool { blocks.isEmpty }

    func contains(_ address: SocketAddress?) -> Bool {
        guard let address, var bytes = Self.bytes(address) else { return false }
        // IPv4-mapped IPv6 (::ffff:a.b.c.d) compares as IPv4.
        if bytes.count == 16, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff {
            bytes = Array(bytes[12...])
        }
        return blocks.contains { block in
            guard block.bytes.count == bytes.count else { return false }
            var remaining = block.prefix
            for i in 0..<bytes.count where remaining > 0 {
                let bits = min(8, remaining)
                let mask: UInt8 = bits == 8 ? 0xff : ~(0xff >> UInt8(bits))
                if bytes[i] & mask != block.bytes[i] & mask { return false }
                remaining -= bits
            }
            return true
        }
    }

    private static func bytes(_ address: SocketAddress) -> [UInt8]? {
        guard let text = address.ipAddress else { return nil }
        return bytes(text)
    }

    /// The network-order bytes of an IPv4 or IPv6 address in text form.
    static func bytes(_ text: String) -> [UInt8]? {
        let isV6 = text.contains(":")
        var buffer = [UInt8](repeating: 0, count: isV6 ? 16 : 4)
        let ok = buffer.withUnsafeMutableBytes { inet_pton(isV6 ? AF_INET6 : AF_INET, text, $0.baseAddress) == 1 }
        return ok ? buffer : nil
    }
}
