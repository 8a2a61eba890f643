import Foundation
import JWTKit

/// The claims of a Berth Bearer token: who, until when, and exactly which repository actions.
///
/// `access` names Berth repositories and images (`repository/image`), not the names the client used, so a
/// token is honoured the same way under every access method that reaches that repository, and never for
/// another one.
struct RegistryToken: JWTPayload, Equatable {
    struct Access: Codable, Equatable, Sendable {
        var type: String
        /// `berth-repository/image`.
        var name: String
        /// Docker's action names: `pull`, `push`, `delete`.
        var actions: [String]
    }

    var iss: IssuerClaim
    var sub: SubjectClaim
    var aud: AudienceClaim
    var exp: ExpirationClaim
    var iat: IssuedAtClaim
    var jti: IDClaim
    var access: [Access]

    static let issuer = "berth"

    func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired()
        guard iss.value == Self.issuer else { throw JWTError.claimVerificationFailure(failedClaim: iss, reason: "wrong issuer") }
    }

    /// Whether the token grants `action` on `repository/image`.
    func grants(_ action: String, repository: String, image: String) -> Bool {
        let name = repository + "/" + image
        return access.contains { $0.type == "repository" && $0.name == name && $0.actions.contains(action) }
    }
}
