import NIOConcurrencyHelpers
import NIOCore
import NIOSSL

/// The certificates of one TLS listener, chosen per connection by SNI (exact name, then `*.suffix`, then
/// the first certificate), replaceable at run time for reloads.
final class CertificateStore: Sendable {
    struct Entry: Sendable {
        var chain: [NIOSSLCertificate]
        var key: NIOSSLPrivateKey
    }

    private struct Table: Sendable {
        var exact: [String: Entry] = [:]
        var wildcard: [String: Entry] = [:]
        var fallback: Entry
    }

    private let table: NIOLockedValueBox<Table>

    init(_ tls: FrontDoorConfiguration.TLS) throws {
        table = NIOLockedValueBox(try Self.load(tls))
    }

    func replace(_ tls: FrontDoorConfiguration.TLS) throws {
        let new = try Self.load(tls)
        table.withLockedValue { $0 = new }
    }

    /// The certificate for a client's server name.
    func select(_ serverName: String?) -> Entry {
        table.withLockedValue { table in
            guard let name = serverName?.lowercased() else { return table.fallback }
            if let entry = table.exact[name] { return entry }
            if let dot = name.firstIndex(of: "."), let entry = table.wildcard[String(name[dot...])] { return entry }
            return table.fallback
        }
    }

    /// A server TLS configuration whose handshake asks this store for the certificate.
    func serverConfiguration() -> TLSConfiguration {
        let fallback = select(nil)
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: fallback.chain.map { .certificate($0) }, privateKey: .privateKey(fallback.key))
        configuration.applicationProtocols = ["http/1.1"]
        configuration.sslContextCallback = { [self] values, promise in
            let entry = self.select(values.serverHostname)
            var override = NIOSSLContextConfigurationOverride()
            override.certificateChain = entry.chain.map { .certificate($0) }
            override.privateKey = .privateKey(entry.key)
            promise.succeed(override)
        }
        return configuration
    }

    private static func load(_ tls: FrontDoorConfiguration.TLS) throws -> Table {
        var table: Table?
        for certificate in tls.certificates {
            let chain: [NIOSSLCertificate]
            let key: NIOSSLPrivateKey
            do {
                chain = try NIOSSLCertificate.fromPEMFile(certificate.cert)
                key = try NIOSSLPrivateKey(file: certificate.key, format: .pem)
            } catch {
                throw TLSLoadError(message: "cannot load certificate \(certificate.cert) with key \(certificate.key): \(error)")
            }
            guard let leaf = chain.first else {
                throw TLSLoadError(message: "\(certificate.cert) holds no certificate")
            }
            let entry = Entry(chain: chain, key: key)
            if table == nil { table = Table(fallback: entry) }
            for name in certificate.names ?? dnsNames(leaf) {
                let lower = name.lowercased()
                if lower.hasPrefix("*.") {
                    table!.wildcard[String(lower.dropFirst())] = table!.wildcard[String(lower.dropFirst())] ?? entry
                } else {
                    table!.exact[lower] = table!.exact[lower] ?? entry
                }
            }
        }
        guard let table else { throw TLSLoadError(message: "a TLS listener needs at least one certificate") }
        return table
    }

    /// The DNS names of a certificate's subjectAltName extension.
    private static func dnsNames(_ certificate: NIOSSLCertificate) -> [String] {
        certificate._subjectAlternativeNames().compactMap { name in
            guard name.nameType == .dnsName else { return nil }
            return String(decoding: name.contents, as: UTF8.self)
        }
    }
}

struct TLSLoadError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
