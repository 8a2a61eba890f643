import BerthRegistry
import BerthStorage

/// What the identity of one request may read, for decisions inside a request (catalog entries, the source
/// of a cross-repository mount).
struct AccessCheck: Sendable {
    var policy: AccessPolicy
    var identity: AccessPolicy.Identity
    var token: RegistryToken?

    func canRead(_ image: ImageRef) -> Bool {
        if let token, token.grants("pull", repository: image.repository, image: image.image) { return true }
        return policy.allows(identity, .read, on: image.repository)
    }

    func canReadRepository(_ repository: String) -> Bool {
        if let token, token.access.contains(where: { $0.name.hasPrefix(repository + "/") && $0.actions.contains("pull") }) { return true }
        return policy.allows(identity, .read, on: repository)
    }
}
