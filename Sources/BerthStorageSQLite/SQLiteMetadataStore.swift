import BerthCore
import BerthStorage
import Foundation
import GRDB

/// Metadata in one SQLite file (WAL mode): the embedded default.
///
/// Writes are serialized by SQLite; reads run concurrently. `synchronous=FULL`: a commit is on disk
/// before the call returns, so an acknowledged push survives power loss.
///
/// Reads of manifests, tags and blob links go through a small ``ReadCache``: this process is the only writer
/// of them (the command line writes users and tokens only), and every write invalidates it after committing.
public final class SQLiteMetadataStore: MetadataStore, IdentityStore {
    private let pool: DatabasePool
    // One cache per kind of answer (no casts on the hot path); every write invalidates all of them.
    private let manifestCache = ReadCache<ManifestRecord?>(budget: 6 << 20)
    private let linkCache = ReadCache<Int64?>(budget: 512 << 10)
    private let tagListCache = ReadCache<[String]?>(budget: 1 << 20)
    private let tagCache = ReadCache<TagState?>(budget: 512 << 10)

    /// Opens (creating if needed) and migrates the database at `path`.
    public init(path: String) throws {
        var config = Configuration()
        config.busyMode = .timeout(10)
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        pool = try DatabasePool(path: path, configuration: config)
        try Self.migrator.migrate(pool)
    }

    /// Numbered migrations; each runs once, in order.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("1-initial") { db in
            try db.execute(sql: """
                CREATE TABLE repositories (
                    name TEXT PRIMARY KEY NOT NULL,
                    kind TEXT NOT NULL
                );
                CREATE TABLE blob_links (
                    repository TEXT NOT NULL, image TEXT NOT NULL, digest TEXT NOT NULL, size INTEGER NOT NULL,
                    PRIMARY KEY (repository, image, digest)
                ) WITHOUT ROWID;
                CREATE INDEX blob_links_digest ON blob_links (digest);
                CREATE TABLE images (
                    full_name TEXT PRIMARY KEY NOT NULL, repository TEXT NOT NULL, image TEXT NOT NULL
                ) WITHOUT ROWID;
                CREATE INDEX images_repository ON images (repository, full_name);
                CREATE TABLE manifests (
                    repository TEXT NOT NULL, image TEXT NOT NULL, digest TEXT NOT NULL,
                    media_type TEXT NOT NULL, payload BLOB NOT NULL, subject TEXT, artifact_type TEXT,
                    annotations TEXT, created_at INTEGER NOT NULL,
                    PRIMARY KEY (repository, image, digest)
                );
                CREATE INDEX manifests_subject ON manifests (repository, image, subject) WHERE subject IS NOT NULL;
                CREATE TABLE manifest_refs (
                    repository TEXT NOT NULL, image TEXT NOT NULL, manifest TEXT NOT NULL, ref TEXT NOT NULL,
                    is_manifest INTEGER NOT NULL,
                    PRIMARY KEY (repository, image, manifest, ref)
                ) WITHOUT ROWID;
                CREATE INDEX manifest_refs_ref ON manifest_refs (ref);
                CREATE TABLE tags (
                    repository TEXT NOT NULL, image TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL,
                    updated_at INTEGER NOT NULL,
                    PRIMARY KEY (repository, image, tag)
                ) WITHOUT ROWID;
                CREATE INDEX tags_digest ON tags (repository, image, digest);
                CREATE TABLE uploads (
                    id TEXT PRIMARY KEY NOT NULL, repository TEXT NOT NULL, image TEXT NOT NULL,
                    updated_at INTEGER NOT NULL
                );
                """)
        }
        migrator.registerMigration("2-identities") { db in
            try db.execute(sql: """
                CREATE TABLE users (
                    name TEXT PRIMARY KEY NOT NULL, password_hash TEXT NOT NULL, roles TEXT NOT NULL
                );
                CREATE TABLE service_tokens (
                    id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, secret_hash TEXT NOT NULL, roles TEXT NOT NULL,
                    created_at INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0
                );
                """)
        }
        migrator.registerMigration("3-secrets") { db in
            try db.execute(sql: "CREATE TABLE secrets (name TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL)")
        }
        return migrator
    }

    /// A write that can change cached answers: the cache is invalidated once it committed (or failed).
    private func write<T: Sendable>(_ updates: @Sendable (Database) throws -> T) async throws -> T {
        defer {
            manifestCache.invalidate()
            linkCache.invalidate()
            tagListCache.invalidate()
            tagCache.invalidate()
        }
        return try await pool.write(updates)
    }

    private static func key(_ parts: String...) -> String { parts.joined(separator: "\u{1F}") }

    // MARK: Repositories

    public func ensureRepository(_ record: RepositoryRecord) async throws {
        try await write { db in
            try db.execute(
                sql: "INSERT INTO repositories (name, kind) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET kind = excluded.kind",
                arguments: [record.name, record.kind.rawValue])
        }
    }

    public func repositories() async throws -> [RepositoryRecord] {
        try await pool.read { db in
            try Row.fetchAll(
                db.cachedStatement(sql: "SELECT name, kind FROM repositories ORDER BY name")).compactMap { row in
                RepositoryRecord.Kind(rawValue: row["kind"]).map { RepositoryRecord(name: row["name"], kind: $0) }
            }
        }
    }

    // MARK: Blob links

    public func linkBlob(_ digest: Digest, size: Int64, in image: ImageRef) async throws {
        try await write { db in
            try db.execute(
                sql: "INSERT INTO blob_links (repository, image, digest, size) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                arguments: [image.repository, image.image, digest.description, size])
        }
    }

    public func linkedBlobSize(_ digest: Digest, in image: ImageRef) async throws -> Int64? {
        try await linkCache.value(Self.key("link", image.repository, image.image, digest.description), cost: { _ in 16 }) {
            try await self.linkedBlobSizeUncached(digest, in: image)
        }
    }

    private func linkedBlobSizeUncached(_ digest: Digest, in image: ImageRef) async throws -> Int64? {
        try await pool.read { db in
            try Int64.fetchOne(
                db.cachedStatement(sql: "SELECT size FROM blob_links WHERE repository = ? AND image = ? AND digest = ?"),
                arguments: [image.repository, image.image, digest.description])
        }
    }

    public func unlinkBlob(_ digest: Digest, in image: ImageRef) async throws -> Bool {
        try await write { db in
            try db.execute(
                sql: "DELETE FROM blob_links WHERE repository = ? AND image = ? AND digest = ?",
                arguments: [image.repository, image.image, digest.description])
            return db.changesCount > 0
        }
    }

    // MARK: Manifests and tags

    public func putManifest(_ record: ManifestRecord, blobs: [Digest], manifests: [Digest], tag: String?, in image: ImageRef) async throws {
        let now = Self.now()
        try await write { db in
            let args: (Digest) -> StatementArguments = { [image.repository, image.image, $0.description] }
            for blob in blobs {
                guard try Bool.fetchOne(
                db.cachedStatement(sql: "SELECT 1 FROM blob_links WHERE repository = ? AND image = ? AND digest = ?"), arguments: args(blob)) != nil else {
                    throw RegistryError(.manifestBlobUnknown, "blob unknown to repository", detail: blob.description)
                }
            }
            for child in manifests {
                guard try Bool.fetchOne(
                db.cachedStatement(sql: "SELECT 1 FROM manifests WHERE repository = ? AND image = ? AND digest = ?"), arguments: args(child)) != nil else {
                    throw RegistryError(.manifestBlobUnknown, "manifest unknown to repository", detail: child.description)
                }
            }
            try db.execute(
                sql: """
                    INSERT INTO manifests (repository, image, digest, media_type, payload, subject, artifact_type, annotations, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING
                    """,
                arguments: [image.repository, image.image, record.digest.description, record.mediaType, Data(record.payload),
                            record.subject?.description, record.artifactType, record.annotationsJSON, now])
            for (ref, isManifest) in blobs.map({ ($0, false) }) + manifests.map({ ($0, true) }) {
                try db.execute(
                    sql: "INSERT INTO manifest_refs (repository, image, manifest, ref, is_manifest) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    arguments: [image.repository, image.image, record.digest.description, ref.description, isManifest])
            }
            try db.execute(
                sql: "INSERT INTO images (full_name, repository, image) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                arguments: [image.description, image.repository, image.image])
            if let tag {
                try db.execute(
                    sql: """
                        INSERT INTO tags (repository, image, tag, digest, updated_at) VALUES (?, ?, ?, ?, ?)
                        ON CONFLICT(repository, image, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at
                        """,
                    arguments: [image.repository, image.image, tag, record.digest.description, now])
            }
        }
    }

    private static let manifestColumns = "m.digest, m.media_type, m.payload, m.subject, m.artifact_type, m.annotations"

    private static func manifestRecord(_ row: Row) throws -> ManifestRecord {
        let payload: Data = row["payload"]
        let subject: String? = row["subject"]
        return ManifestRecord(
            digest: try Digest(parsing: row["digest"] as String),
            mediaType: row["media_type"],
            payload: [UInt8](payload),
            subject: subject.flatMap { Digest.parse($0) },
            artifactType: row["artifact_type"],
            annotationsJSON: row["annotations"])
    }

    public func manifest(_ digest: Digest, in image: ImageRef) async throws -> ManifestRecord? {
        try await manifestCache.value(Self.key("manifest", image.repository, image.image, digest.description), cost: Self.cost) {
            try await self.manifestUncached(digest, in: image)
        }
    }

    private static func cost(_ record: ManifestRecord?) -> Int {
        guard let record else { return 16 }
        return record.payload.count + record.mediaType.utf8.count + (record.annotationsJSON?.utf8.count ?? 0) + 128
    }

    private func manifestUncached(_ digest: Digest, in image: ImageRef) async throws -> ManifestRecord? {
        try await pool.read { db in
            try Row.fetchOne(
                db.cachedStatement(sql: "SELECT \(Self.manifestColumns) FROM manifests m WHERE m.repository = ? AND m.image = ? AND m.digest = ?"),
                arguments: [image.repository, image.image, digest.description]
            ).map(Self.manifestRecord)
        }
    }

    public func manifest(tag: String, in image: ImageRef) async throws -> ManifestRecord? {
        try await manifestCache.value(Self.key("tagged", image.repository, image.image, tag), cost: Self.cost) {
            try await self.manifestUncached(tag: tag, in: image)
        }
    }

    private func manifestUncached(tag: String, in image: ImageRef) async throws -> ManifestRecord? {
        try await pool.read { db in
            try Row.fetchOne(
                db.cachedStatement(sql: """
                    SELECT \(Self.manifestColumns) FROM tags t
                    JOIN manifests m ON m.repository = t.repository AND m.image = t.image AND m.digest = t.digest
                    WHERE t.repository = ? AND t.image = ? AND t.tag = ?
                    """),
                arguments: [image.repository, image.image, tag]
            ).map(Self.manifestRecord)
        }
    }

    public func deleteManifest(_ digest: Digest, in image: ImageRef) async throws -> Bool {
        try await write { db in
            let args: StatementArguments = [image.repository, image.image, digest.description]
            try db.execute(sql: "DELETE FROM manifests WHERE repository = ? AND image = ? AND digest = ?", arguments: args)
            guard db.changesCount > 0 else { return false }
            try db.execute(sql: "DELETE FROM tags WHERE repository = ? AND image = ? AND digest = ?", arguments: args)
            try db.execute(sql: "DELETE FROM manifest_refs WHERE repository = ? AND image = ? AND manifest = ?", arguments: args)
            try Self.dropImageIfEmpty(db, image)
            return true
        }
    }

    public func deleteTag(_ tag: String, in image: ImageRef) async throws -> Bool {
        try await write { db in
            try db.execute(sql: "DELETE FROM tags WHERE repository = ? AND image = ? AND tag = ?", arguments: [image.repository, image.image, tag])
            return db.changesCount > 0
        }
    }

    /// An image without manifests leaves the catalog.
    private static func dropImageIfEmpty(_ db: Database, _ image: ImageRef) throws {
        let any = try Bool.fetchOne(
                db.cachedStatement(sql: "SELECT 1 FROM manifests WHERE repository = ? AND image = ? LIMIT 1"), arguments: [image.repository, image.image])
        if any == nil {
            try db.execute(sql: "DELETE FROM images WHERE full_name = ?", arguments: [image.description])
        }
    }

    public func tags(in image: ImageRef, after last: String?, limit: Int) async throws -> [String]? {
        try await tagListCache.value(Self.key("tags", image.repository, image.image, last ?? "", String(limit)), cost: { tags in
            (tags ?? []).reduce(32) { $0 + $1.utf8.count + 16 }
        }) {
            try await self.tagsUncached(in: image, after: last, limit: limit)
        }
    }

    private func tagsUncached(in image: ImageRef, after last: String?, limit: Int) async throws -> [String]? {
        try await pool.read { db in
            guard try Bool.fetchOne(
                db.cachedStatement(sql: "SELECT 1 FROM images WHERE full_name = ?"), arguments: [image.description]) != nil else {
                return nil
            }
            return try String.fetchAll(
                db.cachedStatement(sql: "SELECT tag FROM tags WHERE repository = ? AND image = ? AND tag > ? ORDER BY tag LIMIT ?"),
                arguments: [image.repository, image.image, last ?? "", limit])
        }
    }

    public func tag(_ tag: String, in image: ImageRef) async throws -> (digest: Digest, updatedAt: Int64)? {
        let found: TagState? = try await tagCache.value(Self.key("tag", image.repository, image.image, tag), cost: { _ in 96 }) {
            try await self.tagUncached(tag, in: image).map { TagState(digest: $0.digest, updatedAt: $0.updatedAt) }
        }
        return found.map { ($0.digest, $0.updatedAt) }
    }

    struct TagState: Sendable {
        var digest: Digest
        var updatedAt: Int64
    }

    private func tagUncached(_ tag: String, in image: ImageRef) async throws -> (digest: Digest, updatedAt: Int64)? {
        try await pool.read { db in
            guard let row = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT digest, updated_at FROM tags WHERE repository = ? AND image = ? AND tag = ?"),
                arguments: [image.repository, image.image, tag])
            else { return nil }
            return (try Digest(parsing: row["digest"] as String), row["updated_at"])
        }
    }

    public func touchTag(_ tag: String, in image: ImageRef, at time: Int64) async throws {
        try await write { db in
            try db.execute(
                sql: "UPDATE tags SET updated_at = ? WHERE repository = ? AND image = ? AND tag = ?",
                arguments: [time, image.repository, image.image, tag])
        }
    }

    public func purge(repository: String, image: String?) async throws -> Int {
        try await write { db in
            let filter = image == nil ? "repository = ?" : "repository = ? AND image = ?"
            let args: StatementArguments = image.map { [repository, $0] } ?? [repository]
            try db.execute(sql: "DELETE FROM manifests WHERE \(filter)", arguments: args)
            let removed = db.changesCount
            for table in ["tags", "manifest_refs", "blob_links", "images"] {
                try db.execute(sql: "DELETE FROM \(table) WHERE \(filter)", arguments: args)
            }
            return removed
        }
    }

    public func referrers(of digest: Digest, in image: ImageRef) async throws -> [ReferrerRecord] {
        try await pool.read { db in
            try Row.fetchAll(
                db.cachedStatement(sql: """
                    SELECT digest, media_type, length(payload) AS size, artifact_type, annotations FROM manifests
                    WHERE repository = ? AND image = ? AND subject = ? ORDER BY digest
                    """),
                arguments: [image.repository, image.image, digest.description]
            ).map { row in
                ReferrerRecord(
                    digest: try Digest(parsing: row["digest"] as String), mediaType: row["media_type"], size: row["size"],
                    artifactType: row["artifact_type"], annotationsJSON: row["annotations"])
            }
        }
    }

    public func catalog(repository: String?, after last: String?, limit: Int) async throws -> [ImageRef] {
        try await pool.read { db in
            let rows: [Row]
            if let repository {
                rows = try Row.fetchAll(
                db.cachedStatement(sql: "SELECT repository, image FROM images WHERE repository = ? AND full_name > ? ORDER BY full_name LIMIT ?"),
                    arguments: [repository, last ?? "", limit])
            } else {
                rows = try Row.fetchAll(
                db.cachedStatement(sql: "SELECT repository, image FROM images WHERE full_name > ? ORDER BY full_name LIMIT ?"),
                    arguments: [last ?? "", limit])
            }
            return rows.map { ImageRef(repository: $0["repository"], image: $0["image"]) }
        }
    }

    // MARK: Upload sessions

    public func createUpload(_ record: UploadRecord) async throws {
        try await pool.write { db in
            try db.execute(
                sql: "INSERT INTO uploads (id, repository, image, updated_at) VALUES (?, ?, ?, ?)",
                arguments: [record.id, record.repository, record.image, record.updatedAt])
        }
    }

    public func upload(id: String) async throws -> UploadRecord? {
        try await pool.read { db in
            try Row.fetchOne(
                db.cachedStatement(sql: "SELECT id, repository, image, updated_at FROM uploads WHERE id = ?"), arguments: [id]).map {
                UploadRecord(id: $0["id"], repository: $0["repository"], image: $0["image"], updatedAt: $0["updated_at"])
            }
        }
    }

    public func touchUpload(id: String, at time: Int64) async throws {
        try await pool.write { db in
            try db.execute(sql: "UPDATE uploads SET updated_at = ? WHERE id = ?", arguments: [time, id])
        }
    }

    public func deleteUpload(id: String) async throws {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM uploads WHERE id = ?", arguments: [id])
        }
    }

    public func uploads(updatedBefore time: Int64) async throws -> [UploadRecord] {
        try await pool.read { db in
            try Row.fetchAll(
                db.cachedStatement(sql: "SELECT id, repository, image, updated_at FROM uploads WHERE updated_at < ?"), arguments: [time]).map {
                UploadRecord(id: $0["id"], repository: $0["repository"], image: $0["image"], updatedAt: $0["updated_at"])
            }
        }
    }

    // MARK: Identities

    private static func roles(_ text: String) -> [String] {
        text.split(separator: ",").map(String.init)
    }

    public func user(_ name: String) async throws -> UserRecord? {
        try await pool.read { db in
            try Row.fetchOne(
                db.cachedStatement(sql: "SELECT name, password_hash, roles FROM users WHERE name = ?"), arguments: [name]).map {
                UserRecord(name: $0["name"], passwordHash: $0["password_hash"], roles: Self.roles($0["roles"]))
            }
        }
    }

    public func users() async throws -> [UserRecord] {
        try await pool.read { db in
            try Row.fetchAll(
                db.cachedStatement(sql: "SELECT name, password_hash, roles FROM users ORDER BY name")).map {
                UserRecord(name: $0["name"], passwordHash: $0["password_hash"], roles: Self.roles($0["roles"]))
            }
        }
    }

    public func putUser(_ user: UserRecord) async throws {
        try await pool.write { db in
            try db.execute(
                sql: "INSERT INTO users (name, password_hash, roles) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET password_hash = excluded.password_hash, roles = excluded.roles",
                arguments: [user.name, user.passwordHash, user.roles.joined(separator: ",")])
        }
    }

    public func deleteUser(_ name: String) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM users WHERE name = ?", arguments: [name])
            return db.changesCount > 0
        }
    }

    private static func token(_ row: Row) -> ServiceTokenRecord {
        ServiceTokenRecord(
            id: row["id"], name: row["name"], secretHash: row["secret_hash"], roles: roles(row["roles"]),
            createdAt: row["created_at"], revoked: row["revoked"])
    }

    public func serviceToken(id: String) async throws -> ServiceTokenRecord? {
        try await pool.read { db in
            try Row.fetchOne(
                db.cachedStatement(sql: "SELECT * FROM service_tokens WHERE id = ?"), arguments: [id]).map(Self.token)
        }
    }

    public func serviceTokens() async throws -> [ServiceTokenRecord] {
        try await pool.read { db in
            try Row.fetchAll(
                db.cachedStatement(sql: "SELECT * FROM service_tokens ORDER BY created_at, id")).map(Self.token)
        }
    }

    public func putServiceToken(_ token: ServiceTokenRecord) async throws {
        try await pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO service_tokens (id, name, secret_hash, roles, created_at, revoked) VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT(id) DO UPDATE SET name = excluded.name, secret_hash = excluded.secret_hash, roles = excluded.roles, revoked = excluded.revoked
                    """,
                arguments: [token.id, token.name, token.secretHash, token.roles.joined(separator: ","), token.createdAt, token.revoked])
        }
    }

    public func revokeServiceToken(id: String) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: "UPDATE service_tokens SET revoked = 1 WHERE id = ? AND revoked = 0", arguments: [id])
            return db.changesCount > 0
        }
    }

    public func secret(named name: String, proposed: [UInt8]) async throws -> [UInt8] {
        try await pool.write { db in
            try db.execute(
                sql: "INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING", arguments: [name, Data(proposed)])
            let value = try Data.fetchOne(db, sql: "SELECT value FROM secrets WHERE name = ?", arguments: [name])
            return [UInt8](value ?? Data(proposed))
        }
    }

    static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec)
    }
}
