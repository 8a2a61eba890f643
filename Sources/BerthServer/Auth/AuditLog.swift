import Foundation
import NIOConcurrencyHelpers

/// An append-only log of security-relevant events, one JSON object per line: who did what to which
/// repository, from where, with which result. Secrets never go in.
final class AuditLog: Sendable {
    private let handle: NIOLockedValueBox<FileHandle?>

    init(path: String) {
        if !FileManager.default.fileExists(atPath: path) {
            FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
        }
        let handle = FileHandle(forWritingAtPath: path)
        _ = try? handle?.seekToEnd()
        self.handle = NIOLockedValueBox(handle)
    }

    func record(actor: String, action: String, repository: String? = nil, target: String? = nil, client: String?, result: String) {
        var fields: [(String, String)] = [("time", ISO8601DateFormatter().string(from: Date())), ("actor", actor), ("action", action)]
        if let repository { fields.append(("repository", repository)) }
        if let target { fields.append(("target", target)) }
        fields.append(("client", client ?? "-"))
        fields.append(("result", result))
        let line = "{" + fields.map { "\(JSONText.quoted($0.0)):\(JSONText.quoted($0.1))" }.joined(separator: ",") + "}\n"
        handle.withLockedValue { handle in
            // O_APPEND semantics: always at the end, whatever else wrote.
            _ = try? handle?.seekToEnd()
            handle?.write(Data(line.utf8))
        }
    }
}
