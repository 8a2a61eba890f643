@testable import BerthServer
import BerthCore
import BerthRegistry
import BerthStorage
import JWTKit
import Foundation
import HTTPTypes
import HummingbirdBcrypt
import NIOCore
import Testing

/// Nobody reads or writes where they do not belong, under any access method.
@Suite("Authorization")
struct AuthorizationTests {
    static let hash = Bcrypt.hash("secret", cost: 4)
    static let declaredSecret = "berth_deploy_0123456789abcdef0123456789abcdef"

    static func registry(throttle: Int = 1000, window: Int = 60) throws -> TestRegistry {
        var t = try TestRegistry()
        t.repositories = [
            .init(name: "team-a", kind: .hosted), .init(name: "team-a-staging", kind: .hosted),
            .init(name: "team-b", kind: .hosted), .init(name: "public", kind: .hosted),
        ]
        var auth = AuthConfiguration()
        auth.anonymousPull = false
        auth.anonymousPullByRepository = ["public": true]
        auth.throttleFailures = throttle
        auth.throttleWindowSeconds = window
        auth.roles = [
            .init(name: "a-reader", grants: [.init(repositories: ["team-a*"], privileges: [.read])]),
            .init(name: "a-writer", grants: [.init(repositories: ["team-a*"], privileges: [.read, .write])]),
            .init(name: "b-team", grants: [.init(repositories: ["team-b"], privileges: [.read, .write, .delete])]),
        ]
        auth.users = [
            .init(name: "reader", passwordHash: hash, roles: ["a-reader"]),
            .init(name: "writer", passwordHash: hash, roles: ["a-writer"]),
            .init(name: "other", passwordHash: hash, roles: ["b-team"]),
            .init(name: "boss", passwordHash: hash, roles: ["admin"]),
        ]
        auth.tokens = [.init(id: "deploy", name: "deploy", secretSHA256: Authenticator.sha256Hex(Self.declaredSecret), roles: ["a-reader"])]
        t.auth = auth
        t.frontDoor.routes = [
            .init(match: .host("a.example.com"), endpoint: .repository("team-a")),
            .init(match: .host("split.example.com"), endpoint: .split(pull: "team-a", push: "team-a-staging")),
            .init(match: .wildcard(suffix: ".docker.example.com"), endpoint: .subdomain),
        ]
        return t
    }

    static func basic(_ user: String, _ password: String = "secret") -> HTTPFields {
        [.authorization: "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()]
    }

    /// One way of reaching repository `team-a`: the host and the path prefix before the image name.
    struct Method: Sendable, CustomStringConvertible {
        var description: String
        var host: String
        var prefix: String
    }

    static let methods = [
        Method(description: "repository path", host: "localhost", prefix: "/v2/team-a/"),
        Method(description: "Nexus path", host: "localhost", prefix: "/repository/team-a/v2/"),
        Method(description: "host", host: "a.example.com", prefix: "/v2/"),
        Method(description: "subdomain", host: "team-a.docker.example.com", prefix: "/v2/"),
        Method(description: "pull/push split", host: "split.example.com", prefix: "/v2/"),
    ]

    @Test func matrix() async throws {
        let t = try Self.registry()
        defer { t.cleanUp() }
        try await t.runDirect { (client: DirectClient) async throws in
            // Content in team-a and team-a-staging (the split's push side), pushed by the admin.
            let admin = Self.basic("boss")
            let config = sha256("{}")
            for repo in ["team-a", "team-a-staging"] {
                #expect(try await client.execute("/v2/\(repo)/app/blobs/uploads/?digest=\(config)", .post, host: "localhost", headers: admin, body: "{}").status == .created)
            }
            let manifest = ociManifest(config: (config, 2), layers: [])
            // A revoked service token.
            let secret = "berth_0123456789ab_" + String(repeating: "f", count: 40)
            try await client.responder.authenticator!.store.putServiceToken(.init(
                id: "0123456789ab", name: "ci", secretHash: Authenticator.sha256Hex(secret), roles: ["admin"], createdAt: 0, revoked: true))

            let identities: [(String, HTTPFields)] = [
                ("anonymous", [:]), ("reader", Self.basic("reader")), ("writer", Self.basic("writer")),
                ("other team", Self.basic("other")), ("admin", admin), ("revoked token", Self.basic("ci", secret)),
            ]
            // Expected outcome per identity: pull, push, delete, catalog lists team-a.
            let expected: [String: (pull: Int, push: Int, delete: Int, catalog: Bool)] = [
                "anonymous": (401, 401, 401, false), "reader": (200, 403, 403, true), "writer": (200, 202, 403, true),
                "other team": (403, 403, 403, false), "admin": (200, 202, 202, true), "revoked token": (401, 401, 401, false),
            ]
            for method in Self.methods {
                for (who, headers) in identities {
                    let want = try #require(expected[who])
                    // Each identity pulls and deletes its own tag, so deletes do not interfere.
                    let tag = who.replacingOccurrences(of: " ", with: "-")
                    for repo in ["team-a", "team-a-staging"] {
                        _ = try await client.execute("/v2/\(repo)/app/manifests/\(tag)", .put, host: "localhost", headers: admin.merging([.contentType: MediaType.ociManifest]), body: manifest)
                    }
                    let pull = try await client.execute("\(method.prefix)app/manifests/\(tag)", host: method.host, headers: headers)
                    #expect(Int(pull.status.code) == want.pull, "\(method) \(who) pull: \(pull.text)")
                    if pull.status == .unauthorized {
                        let challenge = try #require(pull.headers[.wwwAuthenticate])
                        #expect(challenge.hasPrefix("Bearer realm=\""), "\(method)")
                        #expect(challenge.contains("scope=\"repository:\(method.prefix == "/v2/team-a/" ? "team-a/" : "")app:pull\""), "\(method): \(challenge)")
                    }
                    let push = try await client.execute("\(method.prefix)app/blobs/uploads/", .post, host: method.host, headers: headers)
                    #expect(Int(push.status.code) == want.push, "\(method) \(who) push: \(push.text)")
                    let delete = try await client.execute("\(method.prefix)app/manifests/\(tag)", .delete, host: method.host, headers: headers)
                    #expect(Int(delete.status.code) == want.delete, "\(method) \(who) delete: \(delete.text)")
                    let catalogPath = method.prefix == "/v2/team-a/" ? "/v2/_catalog" : "\(method.prefix)_catalog"
                    let catalog = try await client.execute(catalogPath, host: method.host, headers: headers)
                    let names = catalog.json["repositories"] as? [String] ?? []
                    #expect(names.contains { $0.hasSuffix("app") } == want.catalog, "\(method) \(who) catalog: \(catalog.status) \(names)")
                }
            }
            // A public repository is pullable anonymously, never pushable anonymously.
            #expect(try await client.execute("/v2/public/app/blobs/uploads/?digest=\(config)", .post, host: "localhost", headers: admin, body: "{}").status == .created)
            #expect(try await client.execute("/v2/public/app/blobs/\(config)", host: "localhost").status == .ok)
            #expect(try await client.execute("/v2/public/app/blobs/uploads/", .post, host: "localhost").status == .unauthorized)
        }
    }

    @Test func tokenRealm() async throws {
        let t = try Self.registry()
        defer { t.cleanUp() }
        try await t.runDirect { (client: DirectClient) async throws in
            // A token asked for on a host route names the Berth repository, so it works on every method.
            let response = try await client.execute("/v2/token?service=berth&scope=repository:app:pull,push&scope=repository:../team-b/x:pull", host: "a.example.com", headers: Self.basic("writer"))
            #expect(response.status == .ok)
            let token = try #require(response.json["token"] as? String)
            let bearer: HTTPFields = [.authorization: "Bearer " + token]
            let claims = try await client.responder.authenticator!.authenticate("Bearer " + token, client: nil)
            guard case .bearer(_, let payload) = claims else { Issue.record("not a bearer token"); return }
            #expect(payload.access == [.init(type: "repository", name: "team-a/app", actions: ["pull", "push"])])
            #expect(try await client.execute("/v2/app/blobs/uploads/", .post, host: "a.example.com", headers: bearer).status == .accepted)
            #expect(try await client.execute("/v2/team-a/app/blobs/uploads/", .post, host: "localhost", headers: bearer).status == .accepted)
            #expect(try await client.execute("/repository/team-a/v2/app/blobs/uploads/", .post, host: "localhost", headers: bearer).status == .accepted)
            // Never for another repository or image, and only the actions granted.
            #expect(try await client.execute("/v2/team-b/app/blobs/uploads/", .post, host: "localhost", headers: bearer).status == .forbidden)
            #expect(try await client.execute("/v2/team-a/other/blobs/uploads/", .post, host: "localhost", headers: bearer).status == .forbidden)
            #expect(try await client.execute("/v2/team-a/app/manifests/x", .delete, host: "localhost", headers: bearer).status == .forbidden)
            // Asking for more than allowed grants only the allowed part; anonymous tokens grant public pulls only.
            let reader = try await client.execute("/v2/token?scope=repository:team-a/app:pull,push", host: "localhost", headers: Self.basic("reader"))
            let readerToken = try #require(reader.json["token"] as? String)
            #expect(try await client.execute("/v2/team-a/app/blobs/uploads/", .post, host: "localhost", headers: [.authorization: "Bearer " + readerToken]).status == .forbidden)
            let anonymous = try await client.execute("/v2/token?scope=repository:public/app:pull&scope=repository:team-a/app:pull", host: "localhost")
            let anonymousToken = try #require(anonymous.json["token"] as? String)
            guard case .bearer(_, let anonymousClaims) = await client.responder.authenticator!.authenticate("Bearer " + anonymousToken, client: nil) else { Issue.record("no token"); return }
            #expect(anonymousClaims.access.map(\.name) == ["public/app"])
            // Tampered, wrong-key and garbage tokens are refused with 401.
            var parts = token.split(separator: ".").map(String.init)
            parts[1] = Data("{\"sub\":\"boss\",\"access\":[]}".utf8).base64EncodedString()
            for bad in [parts.joined(separator: "."), String(token.dropLast(3)) + "abc", "not.a.token"] {
                #expect(try await client.execute("/v2/team-a/app/manifests/x", host: "localhost", headers: [.authorization: "Bearer " + bad]).status == .unauthorized)
            }
            // Wrong credentials at the realm: 401.
            #expect(try await client.execute("/v2/token?scope=repository:team-a/app:pull", host: "localhost", headers: Self.basic("writer", "nope")).status == .unauthorized)
        }
    }

    @Test func expiredAndWrongAudienceTokensAreRefused() async throws {
        let t = try Self.registry()
        defer { t.cleanUp() }
        try await t.runDirect { (client: DirectClient) async throws in
            let auth = client.responder.authenticator!
            let identity = AccessPolicy.Identity(kind: .user, name: "writer", roles: [])
            let access = [RegistryToken.Access(type: "repository", name: "team-a/app", actions: ["pull"])]
            let now = Date()
            for (exp, aud) in [(now.addingTimeInterval(-10), "berth"), (now.addingTimeInterval(300), "someone-else")] {
                let claims = RegistryToken(iss: .init(value: "berth"), sub: .init(value: identity.name), aud: .init(value: [aud]), exp: .init(value: exp), iat: .init(value: now), jti: .init(value: "x"), access: access)
                let token = try await auth.signForTests(claims)
                #expect(try await client.execute("/v2/team-a/app/manifests/x", host: "localhost", headers: [.authorization: "Bearer " + token]).status == .unauthorized, "\(aud)")
            }
            // Valid claims signed with another key.
            let foreign = JWTKeyCollection()
            await foreign.add(hmac: HMACKey(from: Array(repeating: UInt8(7), count: 32)), digestAlgorithm: .sha256)
            let good = RegistryToken(iss: .init(value: "berth"), sub: .init(value: identity.name), aud: .init(value: ["berth"]), exp: .init(value: now.addingTimeInterval(300)), iat: .init(value: now), jti: .init(value: "y"), access: access)
            let wrongKey = try await foreign.sign(good)
            #expect(try await client.execute("/v2/team-a/app/manifests/x", host: "localhost", headers: [.authorization: "Bearer " + wrongKey]).status == .unauthorized)
            // The same claims with the right key pass (the check above fails for the key alone).
            #expect(try await client.execute("/v2/team-a/app/manifests/x", host: "localhost", headers: [.authorization: "Bearer " + (try await auth.signForTests(good))]).status == .notFound)
        }
    }

    @Test func declaredServiceTokensAndMountsNeedReadOnTheSource() async throws {
        let t = try Self.registry()
        defer { t.cleanUp() }
        try await t.runDirect { (client: DirectClient) async throws in
            let admin = Self.basic("boss")
            let blob = sha256("layer")
            #expect(try await client.execute("/v2/team-b/base/blobs/uploads/?digest=\(blob)", .post, host: "localhost", headers: admin, body: "layer").status == .created)
            #expect(try await client.execute("/v2/team-a/base/blobs/uploads/?digest=\(blob)", .post, host: "localhost", headers: admin, body: "layer").status == .created)
            // The token declared in the configuration works as a password, with its role's privileges only.
            let deploy = Self.basic("deploy", Self.declaredSecret)
            #expect(try await client.execute("/v2/team-a/base/blobs/\(blob)", host: "localhost", headers: deploy).status == .ok)
            #expect(try await client.execute("/v2/team-a/base/blobs/uploads/", .post, host: "localhost", headers: deploy).status == .forbidden)
            #expect(try await client.execute("/v2/team-a/base/blobs/\(blob)", host: "localhost", headers: Self.basic("deploy", Self.declaredSecret + "x")).status == .unauthorized)
            // A writer of team-a may mount from team-a, but not from team-b, which it cannot read: it uploads instead.
            let writer = Self.basic("writer")
            let fromB = try await client.execute("/v2/team-a/app/blobs/uploads/?mount=\(blob)&from=team-b/base", .post, host: "localhost", headers: writer)
            #expect(fromB.status == .accepted, "no mount without read access to the source")
            let fromA = try await client.execute("/v2/team-a/app/blobs/uploads/?mount=\(blob)&from=team-a/base", .post, host: "localhost", headers: writer)
            #expect(fromA.status == .created)
            #expect(try await client.execute("/v2/team-a/app/blobs/uploads/?mount=\(blob)&from=team-b/base", .post, host: "localhost", headers: admin).status == .created)
        }
    }

    @Test func failedLoginsAreThrottledAndRecover() async throws {
        let t = try Self.registry(throttle: 3, window: 1)
        defer { t.cleanUp() }
        try await t.runDirect { (client: DirectClient) async throws in
            for _ in 0..<3 {
                #expect(try await client.execute("/v2/team-a/app/manifests/x", host: "localhost", headers: Self.basic("reader", "wrong")).status == .unauthorized)
            }
            let throttled = try await client.execute("/v2/team-a/app/manifests/x", host: "localhost", headers: Self.basic("reader"))
            #expect(throttled.status == .tooManyRequests)
            #expect(throttled.errorCode == "TOOMANYREQUESTS")
            #expect(Int(throttled.headers[.retryAfter] ?? "") ?? 0 > 0)
            // Another user is not affected.
            #expect(try await client.execute("/v2/team-a/app/manifests/x", host: "localhost", headers: Self.basic("writer")).status == .notFound)
            // Once the window has passed, the right password works again.
            try await Task.sleep(for: .milliseconds(1100))
            #expect(try await client.execute("/v2/team-a/app/manifests/x", host: "localhost", headers: Self.basic("reader")).status == .notFound)
            // The audit log recorded the failures.
            let audit = try String(contentsOfFile: t.dataDirectory + "/audit.log", encoding: .utf8)
            #expect(audit.components(separatedBy: "\"action\":\"login\"").count - 1 >= 3)
            #expect(!audit.contains("wrong"), "no secrets in the audit log")
        }
        // The initial admin password is in the data folder and works.
        let password = try String(contentsOfFile: t.dataDirectory + "/admin.password", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(password.count >= 16)
    }
}

extension HTTPFields {
    func merging(_ other: HTTPFields) -> HTTPFields {
        var copy = self
        for field in other { copy[field.name] = field.value }
        return copy
    }
}
