import BerthCore
import BerthStorage
import Foundation
import Logging
import NIOCore
import NIOSSL
import PostgresNIO

/// Metadata in PostgreSQL: what several stateless Berth nodes share.
///
/// Same contract as ``SQLiteMetadataStore``: every method is one transaction, nothing is cached in the node, so a
/// write through one node is what the next read through any other node sees. Durability is PostgreSQL's own: a
/// commit returns after the server has flushed its WAL (`synchronous_commit=on`, the server default).
public final class PostgresMetadataStore: MetadataStore, IdentityStore, StorageEngine {
    private let client: PostgresClient
    private let runner: Task<Void, Never>
    private let logger: Logger

    /// Connects (the pool opens connections on demand) and runs the migrations this database lacks.
    ///
    /// - Parameter url: `postgres://user:password@host:port/database?sslmode=disable|prefer|require`.
    public init(url: String, maxConnections: Int = 20, logger: Logger) async throws {
        var configuration = try Self.configuration(url)
        configuration.options.maximumConnections = maxConnections
        configuration.options.connectTimeout = .seconds(10)
        // Migrations run on one plain connection before the pool exists: the pool would retry a refused
        // connection or a wrong password forever, while a node that cannot reach its database should stop at
        // once and say why.
        try await Self.withSingleConnection(url, logger: logger) { connection in
            try await Self.migrate(connection, logger: logger)
        }
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        self.logger = logger
        runner = Task { await client.run() }
    }

    /// Closes the pool.
    public func shutdown() async {
        runner.cancel()
        _ = await runner.value
    }

    deinit { runner.cancel() }

    /// Checks that the database answers (health endpoint).
    public func checkReachable() async throws {
        try await run { db in try await db.query("SELECT 1", logger: self.logger) }
    }

    /// What a `postgres://` URL says.
    struct Target {
        var host: String
        var port: Int
        var username: String
        var password: String?
        var database: String?
        /// disable, prefer or require.
        var sslmode: String
    }

    static func target(_ url: String) throws -> Target {
        guard let components = URLComponents(string: url), ["postgres", "postgresql"].contains(components.scheme ?? ""),
              let host = components.host, !host.isEmpty
        else {
            throw PostgresStoreError("not a PostgreSQL URL (expected postgres://user:password@host:port/database): \(Self.redacted(url))")
        }
        let database = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        var sslmode = components.queryItems?.first { $0.name == "sslmode" }?.value ?? "prefer"
        switch sslmode {
        case "disable": break
        case "prefer", "allow": sslmode = "prefer"
        case "require", "verify-ca", "verify-full": sslmode = "require"
        default: throw PostgresStoreError("sslmode '\(sslmode)' is not one of disable, prefer, require")
        }
        return Target(
            host: host, port: components.port ?? 5432, username: components.user ?? "postgres",
            password: components.password, database: database.isEmpty ? nil : database, sslmode: sslmode)
    }

    static func configuration(_ url: String) throws -> PostgresClient.Configuration {
        let t = try target(url)
        let tls: PostgresClient.Configuration.TLS = switch t.sslmode {
        case "disable": .disable
        case "require": .require(.makeClientConfiguration())
        default: .prefer(.makeClientConfiguration())
        }
        return PostgresClient.Configuration(host: t.host, port: t.port, username: t.username, password: t.password, database: t.database, tls: tls)
    }

    private static func withSingleConnection(_ url: String, logger: Logger, _ body: (PostgresConnection) async throws -> Void) async throws {
        let t = try target(url)
        let tls: PostgresConnection.Configuration.TLS = switch t.sslmode {
        case "disable": .disable
        case "require": .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
        default: .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
        }
        var configuration = PostgresConnection.Configuration(
            host: t.host, port: t.port, username: t.username, password: t.password, database: t.database, tls: tls)
        configuration.options.connectTimeout = .seconds(10)
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
        } catch let error as PSQLError {
            throw PostgresStoreError(error)
        }
        do {
            try await body(connection)
        } catch {
            try? await connection.close()
            if let error = error as? PSQLError { throw PostgresStoreError(error) }
            throw error
        }
        try await connection.close()
    }

    /// The URL without its password, for messages.
    public static func redacted(_ url: String) -> String {
        guard var components = URLComponents(string: url), components.password != nil else { return url }
        components.password = "****"
        return components.string ?? url
    }

    // MARK: Migrations

    /// Numbered migrations, applied in order, each exactly once. Several nodes may start together: the first to
    /// take the advisory lock migrates, the others wait for it and then find nothing left to do.
    static let migrations: [(version: Int, name: String, sql: [PostgresQuery])] = [
        (1, "initial", [
            """
            CREATE TABLE repositories (name TEXT PRIMARY KEY, kind TEXT NOT NULL)
            """,
            """
            CREATE TABLE blob_links (
                repository TEXT NOT NULL, image TEXT NOT NULL, digest TEXT NOT NULL, size BIGINT NOT NULL,
                PRIMARY KEY (repository, image, digest))
            """,
            "CREATE INDEX blob_links_digest ON blob_links (digest)",
            """
            CREATE TABLE images (full_name TEXT COLLATE "C" PRIMARY KEY, repository TEXT NOT NULL, image TEXT NOT NULL)
            """,
            "CREATE INDEX images_repository ON images (repository, full_name)",
            """
            CREATE TABLE manifests (
                repository TEXT NOT NULL, image TEXT NOT NULL, digest TEXT NOT NULL,
                media_type TEXT NOT NULL, payload BYTEA NOT NULL, subject TEXT, artifact_type TEXT,
                annotations TEXT, created_at BIGINT NOT NULL,
                PRIMARY KEY (repository, image, digest))
            """,
            "CREATE INDEX manifests_subject ON manifests (repository, image, subject) WHERE subject IS NOT NULL",
            """
            CREATE TABLE manifest_refs (
                repository TEXT NOT NULL, image TEXT NOT NULL, manifest TEXT NOT NULL, ref TEXT NOT NULL,
                is_manifest BOOLEAN NOT NULL,
                PRIMARY KEY (repository, image, manifest, ref))
            """,
            "CREATE INDEX manifest_refs_ref ON manifest_refs (ref)",
            """
            CREATE TABLE tags (
                repository TEXT NOT NULL, image TEXT NOT NULL, tag TEXT COLLATE "C" NOT NULL, digest TEXT NOT NULL,
                updated_at BIGINT NOT NULL,
                PRIMARY KEY (repository, image, tag))
            """,
            "CREATE INDEX tags_digest ON tags (repository, image, digest)",
            """
            CREATE TABLE uploads (id TEXT PRIMARY KEY, repository TEXT NOT NULL, image TEXT NOT NULL, updated_at BIGINT NOT NULL)
            """,
            "CREATE INDEX uploads_updated ON uploads (updated_at)",
        ]),
        (2, "identities", [
            "CREATE TABLE users (name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, roles TEXT NOT NULL)",
            """
            CREATE TABLE service_tokens (
                id TEXT PRIMARY KEY, name TEXT NOT NULL, secret_hash TEXT NOT NULL, roles TEXT NOT NULL,
                created_at BIGINT NOT NULL, revoked BOOLEAN NOT NULL DEFAULT FALSE)
            """,
        ]),
        (3, "secrets", [
            "CREATE TABLE secrets (name TEXT PRIMARY KEY, value BYTEA NOT NULL)",
        ]),
    ]

    /// An arbitrary constant naming Berth's migration lock among the database's advisory locks.
    private static let migrationLock: Int64 = 0x4265_7274_684D_6967 // "BerthMig"

    private static func migrate(_ db: PostgresConnection, logger: Logger) async throws {
        try await inTransaction(db) { db in
            try await db.query("SELECT pg_advisory_xact_lock(\(migrationLock))", logger: logger)
            try await db.query("""
                CREATE TABLE IF NOT EXISTS berth_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)
                """, logger: logger)
            var applied = Set<Int>()
            for try await version in try await db.query("SELECT version FROM berth_migrations", logger: logger).decode(Int.self) {
                applied.insert(version)
            }
            for migration in migrations where !applied.contains(migration.version) {
                for statement in migration.sql {
                    try await db.query(statement, logger: logger)
                }
                try await db.query("""
                    INSERT INTO berth_migrations (version, name, applied_at) VALUES (\(migration.version), \(migration.name), \(now()))
                    """, logger: logger)
                logger.notice("database migrated", metadata: ["migration": "\(migration.version)-\(migration.name)"])
            }
        }
    }

    // MARK: Plumbing

    /// Runs `body` in one transaction on `db`; errors come back as they were thrown (a ``RegistryError`` stays
    /// one, where postgres-nio's own `withTransaction` would wrap it).
    private static func inTransaction<T: Sendable>(_ db: PostgresConnection, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        let logger = Logger(label: "berth.postgres")
        try await db.query("BEGIN", logger: logger)
        do {
            let result = try await body(db)
            try await db.query("COMMIT", logger: logger)
            return result
        } catch {
            _ = try? await db.query("ROLLBACK", logger: logger)
            throw error
        }
    }

    /// Runs `body` in one transaction on a pooled connection.
    private static func transaction<T: Sendable>(_ client: PostgresClient, _ body: @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        do {
            return try await client.withConnection { db in try await inTransaction(db, body) }
        } catch let error as PSQLError {
            throw PostgresStoreError(error)
        }
    }

    private func transaction<T: Sendable>(_ body: @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await Self.transaction(client, body)
    }

    /// Runs single statements outside an explicit transaction (each is its own), with readable errors.
    private func run<T: Sendable>(_ body: (PostgresClient) async throws -> T) async throws -> T {
        do {
            return try await body(client)
        } catch let error as PSQLError {
            throw PostgresStoreError(error)
        }
    }

    /// The number of rows a statement changed (its command tag), for "was it there" answers.
    private func changed(_ query: PostgresQuery) async throws -> Int {
        try await run { client in
            try await client.withConnection { db in
                let rows = try await db.query(query, logger: self.logger)
                var count = 0
                for try await _ in rows { count += 1 }
                return count
            }
        }
    }

    /// Throws `MANIFEST_BLOB_UNKNOWN` naming the first of `digests` that `table` (`blob_links` or `manifests`,
    /// never client input) does not hold for the image; one query for all of them.
    private static func requirePresent(
        _ digests: [Digest], table: String, what: String, in image: ImageRef, db: PostgresConnection, logger: Logger
    ) async throws {
        guard !digests.isEmpty else { return }
        let wanted = digests.map(\.description)
        let found = Set(try await collect(db.query("""
            SELECT digest FROM \(unescaped: table) WHERE repository = \(image.repository) AND image = \(image.image) AND digest = ANY(\(wanted))
            """, logger: logger), String.self))
        if let missing = wanted.first(where: { !found.contains($0) }) {
            throw RegistryError(.manifestBlobUnknown, "\(what) unknown to repository", detail: missing)
        }
    }

    private static func collect<Row: Sendable>(_ rows: PostgresRowSequence, _ type: Row.Type) async throws -> [Row] where Row: PostgresDecodable {
        var out: [Row] = []
        for try await value in rows.decode(Row.self) { out.append(value) }
        return out
    }

    // MARK: Repositories

    public func ensureRepository(_ record: RepositoryRecord) async throws {
        try await run { db in
            try await db.query("""
                INSERT INTO repositories (name, kind) VALUES (\(record.name), \(record.kind.rawValue))
                ON CONFLICT (name) DO UPDATE SET kind = excluded.kind
                """, logger: self.logger)
        }
    }

    public func repositories() async throws -> [RepositoryRecord] {
        try await run { db in
            var out: [RepositoryRecord] = []
            for try await (name, kind) in try await db.query("SELECT name, kind FROM repositories ORDER BY name", logger: self.logger)
                .decode((String, String).self) {
                if let kind = RepositoryRecord.Kind(rawValue: kind) { out.append(RepositoryRecord(name: name, kind: kind)) }
            }
            return out
        }
    }

    // MARK: Blob links

    public func linkBlob(_ digest: Digest, size: Int64, in image: ImageRef) async throws {
        try await run { db in
            try await db.query("""
                INSERT INTO blob_links (repository, image, digest, size) VALUES (\(image.repository), \(image.image), \(digest.description), \(size))
                ON CONFLICT DO NOTHING
                """, logger: self.logger)
        }
    }

    public func linkedBlobSize(_ digest: Digest, in image: ImageRef) async throws -> Int64? {
        try await run { db in
            try await Self.collect(db.query("""
                SELECT size FROM blob_links WHERE repository = \(image.repository) AND image = \(image.image) AND digest = \(digest.description)
                """, logger: self.logger), Int64.self).first
        }
    }

    public func unlinkBlob(_ digest: Digest, in image: ImageRef) async throws -> Bool {
        try await changed("""
            DELETE FROM blob_links WHERE repository = \(image.repository) AND image = \(image.image) AND digest = \(digest.description)
            RETURNING 1
            """) > 0
    }

    // MARK: Manifests and tags

    public func putManifest(_ record: ManifestRecord, blobs: [Digest], manifests: [Digest], tag: String?, in image: ImageRef) async throws {
        let now = Self.now()
        let logger = self.logger
        try await transaction { db in
            try await Self.requirePresent(blobs, table: "blob_links", what: "blob", in: image, db: db, logger: logger)
            try await Self.requirePresent(manifests, table: "manifests", what: "manifest", in: image, db: db, logger: logger)
            try await db.query("""
                INSERT INTO manifests (repository, image, digest, media_type, payload, subject, artifact_type, annotations, created_at)
                VALUES (\(image.repository), \(image.image), \(record.digest.description), \(record.mediaType), \(ByteBuffer(bytes: record.payload)),
                        \(record.subject?.description), \(record.artifactType), \(record.annotationsJSON), \(now))
                ON CONFLICT DO NOTHING
                """, logger: logger)
            let refs = blobs.map(\.description) + manifests.map(\.description)
            if !refs.isEmpty {
                let kinds = blobs.map { _ in false } + manifests.map { _ in true }
                try await db.query("""
                    INSERT INTO manifest_refs (repository, image, manifest, ref, is_manifest)
                    SELECT \(image.repository), \(image.image), \(record.digest.description), r.ref, r.is_manifest
                    FROM unnest(\(refs)::text[], \(kinds)::boolean[]) AS r(ref, is_manifest)
                    ON CONFLICT DO NOTHING
                    """, logger: logger)
            }
            try await db.query("""
                INSERT INTO images (full_name, repository, image) VALUES (\(image.description), \(image.repository), \(image.image))
                ON CONFLICT DO NOTHING
                """, logger: logger)
            if let tag {
                try await db.query("""
                    INSERT INTO tags (repository, image, tag, digest, updated_at)
                    VALUES (\(image.repository), \(image.image), \(tag), \(record.digest.description), \(now))
                    ON CONFLICT (repository, image, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at
                    """, logger: logger)
            }
        }
    }

    private typealias ManifestRow = (String, String, ByteBuffer, String?, String?, String?)

    private static func manifestRecord(_ row: ManifestRow) throws -> ManifestRecord {
        ManifestRecord(
            digest: try Digest(parsing: row.0), mediaType: row.1, payload: Array(row.2.readableBytesView),
            subject: row.3.flatMap { Digest.parse($0) }, artifactType: row.4, annotationsJSON: row.5)
    }

    public func manifest(_ digest: Digest, in image: ImageRef) async throws -> ManifestRecord? {
        try await run { db in
            for try await row in try await db.query("""
                SELECT digest, media_type, payload, subject, artifact_type, annotations FROM manifests
                WHERE repository = \(image.repository) AND image = \(image.image) AND digest = \(digest.description)
                """, logger: self.logger).decode(ManifestRow.self) {
                return try Self.manifestRecord(row)
            }
            return nil
        }
    }

    public func manifest(tag: String, in image: ImageRef) async throws -> ManifestRecord? {
        try await run { db in
            for try await row in try await db.query("""
                SELECT m.digest, m.media_type, m.payload, m.subject, m.artifact_type, m.annotations FROM tags t
                JOIN manifests m ON m.repository = t.repository AND m.image = t.image AND m.digest = t.digest
                WHERE t.repository = \(image.repository) AND t.image = \(image.image) AND t.tag = \(tag)
                """, logger: self.logger).decode(ManifestRow.self) {
                return try Self.manifestRecord(row)
            }
            return nil
        }
    }

    public func deleteManifest(_ digest: Digest, in image: ImageRef) async throws -> Bool {
        let logger = self.logger
        return try await transaction { db in
            var deleted = 0
            for try await _ in try await db.query("""
                DELETE FROM manifests WHERE repository = \(image.repository) AND image = \(image.image) AND digest = \(digest.description)
                RETURNING 1
                """, logger: logger) { deleted += 1 }
            guard deleted > 0 else { return false }
            try await db.query("""
                DELETE FROM tags WHERE repository = \(image.repository) AND image = \(image.image) AND digest = \(digest.description)
                """, logger: logger)
            try await db.query("""
                DELETE FROM manifest_refs WHERE repository = \(image.repository) AND image = \(image.image) AND manifest = \(digest.description)
                """, logger: logger)
            // An image without manifests leaves the catalog.
            try await db.query("""
                DELETE FROM images WHERE full_name = \(image.description)
                AND NOT EXISTS (SELECT 1 FROM manifests WHERE repository = \(image.repository) AND image = \(image.image))
                """, logger: logger)
            return true
        }
    }

    public func deleteTag(_ tag: String, in image: ImageRef) async throws -> Bool {
        try await changed("""
            DELETE FROM tags WHERE repository = \(image.repository) AND image = \(image.image) AND tag = \(tag) RETURNING 1
            """) > 0
    }

    public func tags(in image: ImageRef, after last: String?, limit: Int) async throws -> [String]? {
        try await run { db in
            // One statement: the image's existence and the page are read from the same snapshot.
            var exists = false
            var tags: [String] = []
            for try await tag in try await db.query("""
                SELECT t.tag FROM images i
                LEFT JOIN LATERAL (
                    SELECT tag FROM tags WHERE repository = \(image.repository) AND image = \(image.image) AND tag > \(last ?? "")
                    ORDER BY tag LIMIT \(limit)) t ON TRUE
                WHERE i.full_name = \(image.description)
                """, logger: self.logger).decode(String?.self) {
                exists = true
                if let tag { tags.append(tag) }
            }
            return exists ? tags : nil
        }
    }

    public func tag(_ tag: String, in image: ImageRef) async throws -> (digest: Digest, updatedAt: Int64)? {
        try await run { db in
            for try await (digest, updatedAt) in try await db.query("""
                SELECT digest, updated_at FROM tags WHERE repository = \(image.repository) AND image = \(image.image) AND tag = \(tag)
                """, logger: self.logger).decode((String, Int64).self) {
                return (try Digest(parsing: digest), updatedAt)
            }
            return nil
        }
    }

    public func touchTag(_ tag: String, in image: ImageRef, at time: Int64) async throws {
        try await run { db in
            try await db.query("""
                UPDATE tags SET updated_at = \(time) WHERE repository = \(image.repository) AND image = \(image.image) AND tag = \(tag)
                """, logger: self.logger)
        }
    }

    public func purge(repository: String, image: String?) async throws -> Int {
        let logger = self.logger
        return try await transaction { db in
            let filter: PostgresQuery = image.map { "repository = \(repository) AND image = \($0)" } ?? "repository = \(repository)"
            var removed = 0
            for try await _ in try await db.query(Self.query("DELETE FROM manifests WHERE ", filter, " RETURNING 1"), logger: logger) {
                removed += 1
            }
            for table in ["tags", "manifest_refs", "blob_links", "images"] {
                try await db.query(Self.query("DELETE FROM \(table) WHERE ", filter, ""), logger: logger)
            }
            return removed
        }
    }

    /// `prefix + filter + suffix` with the filter's bound values kept.
    private static func query(_ prefix: String, _ filter: PostgresQuery, _ suffix: String) -> PostgresQuery {
        PostgresQuery(unsafeSQL: prefix + filter.sql + suffix, binds: filter.binds)
    }

    public func referrers(of digest: Digest, in image: ImageRef) async throws -> [ReferrerRecord] {
        try await run { db in
            var out: [ReferrerRecord] = []
            for try await row in try await db.query("""
                SELECT digest, media_type, octet_length(payload)::bigint, artifact_type, annotations FROM manifests
                WHERE repository = \(image.repository) AND image = \(image.image) AND subject = \(digest.description)
                ORDER BY digest
                """, logger: self.logger).decode((String, String, Int64, String?, String?).self) {
                out.append(ReferrerRecord(digest: try Digest(parsing: row.0), mediaType: row.1, size: row.2, artifactType: row.3, annotationsJSON: row.4))
            }
            return out
        }
    }

    public func catalog(repository: String?, after last: String?, limit: Int) async throws -> [ImageRef] {
        try await run { db in
            let rows: PostgresRowSequence
            if let repository {
                rows = try await db.query("""
                    SELECT repository, image FROM images WHERE repository = \(repository) AND full_name > \(last ?? "")
                    ORDER BY full_name LIMIT \(limit)
                    """, logger: self.logger)
            } else {
                rows = try await db.query("""
                    SELECT repository, image FROM images WHERE full_name > \(last ?? "") ORDER BY full_name LIMIT \(limit)
                    """, logger: self.logger)
            }
            var out: [ImageRef] = []
            for try await (repository, image) in rows.decode((String, String).self) {
                out.append(ImageRef(repository: repository, image: image))
            }
            return out
        }
    }

    // MARK: Upload sessions

    public func createUpload(_ record: UploadRecord) async throws {
        try await run { db in
            try await db.query("""
                INSERT INTO uploads (id, repository, image, updated_at) VALUES (\(record.id), \(record.repository), \(record.image), \(record.updatedAt))
                """, logger: self.logger)
        }
    }

    public func upload(id: String) async throws -> UploadRecord? {
        try await run { db in
            for try await (id, repository, image, updatedAt) in try await db.query("""
                SELECT id, repository, image, updated_at FROM uploads WHERE id = \(id)
                """, logger: self.logger).decode((String, String, String, Int64).self) {
                return UploadRecord(id: id, repository: repository, image: image, updatedAt: updatedAt)
            }
            return nil
        }
    }

    public func touchUpload(id: String, at time: Int64) async throws {
        try await run { db in
            try await db.query("UPDATE uploads SET updated_at = \(time) WHERE id = \(id)", logger: self.logger)
        }
    }

    public func deleteUpload(id: String) async throws {
        try await run { db in
            try await db.query("DELETE FROM uploads WHERE id = \(id)", logger: self.logger)
        }
    }

    public func uploads(updatedBefore time: Int64) async throws -> [UploadRecord] {
        try await run { db in
            var out: [UploadRecord] = []
            for try await (id, repository, image, updatedAt) in try await db.query("""
                SELECT id, repository, image, updated_at FROM uploads WHERE updated_at < \(time)
                """, logger: self.logger).decode((String, String, String, Int64).self) {
                out.append(UploadRecord(id: id, repository: repository, image: image, updatedAt: updatedAt))
            }
            return out
        }
    }

    // MARK: Identities

    private static func roles(_ text: String) -> [String] {
        text.split(separator: ",").map(String.init)
    }

    public func user(_ name: String) async throws -> UserRecord? {
        try await run { db in
            for try await (name, hash, roles) in try await db.query("""
                SELECT name, password_hash, roles FROM users WHERE name = \(name)
                """, logger: self.logger).decode((String, String, String).self) {
                return UserRecord(name: name, passwordHash: hash, roles: Self.roles(roles))
            }
            return nil
        }
    }

    public func users() async throws -> [UserRecord] {
        try await run { db in
            var out: [UserRecord] = []
            for try await (name, hash, roles) in try await db.query("SELECT name, password_hash, roles FROM users ORDER BY name", logger: self.logger)
                .decode((String, String, String).self) {
                out.append(UserRecord(name: name, passwordHash: hash, roles: Self.roles(roles)))
            }
            return out
        }
    }

    public func putUser(_ user: UserRecord) async throws {
        try await run { db in
            try await db.query("""
                INSERT INTO users (name, password_hash, roles) VALUES (\(user.name), \(user.passwordHash), \(user.roles.joined(separator: ",")))
                ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash, roles = excluded.roles
                """, logger: self.logger)
        }
    }

    public func deleteUser(_ name: String) async throws -> Bool {
        try await changed("DELETE FROM users WHERE name = \(name) RETURNING 1") > 0
    }

    private typealias TokenRow = (String, String, String, String, Int64, Bool)

    private static func token(_ row: TokenRow) -> ServiceTokenRecord {
        ServiceTokenRecord(id: row.0, name: row.1, secretHash: row.2, roles: roles(row.3), createdAt: row.4, revoked: row.5)
    }

    public func serviceToken(id: String) async throws -> ServiceTokenRecord? {
        try await run { db in
            for try await row in try await db.query("""
                SELECT id, name, secret_hash, roles, created_at, revoked FROM service_tokens WHERE id = \(id)
                """, logger: self.logger).decode(TokenRow.self) {
                return Self.token(row)
            }
            return nil
        }
    }

    public func serviceTokens() async throws -> [ServiceTokenRecord] {
        try await run { db in
            var out: [ServiceTokenRecord] = []
            for try await row in try await db.query("""
                SELECT id, name, secret_hash, roles, created_at, revoked FROM service_tokens ORDER BY created_at, id
                """, logger: self.logger).decode(TokenRow.self) {
                out.append(Self.token(row))
            }
            return out
        }
    }

    public func putServiceToken(_ token: ServiceTokenRecord) async throws {
        try await run { db in
            try await db.query("""
                INSERT INTO service_tokens (id, name, secret_hash, roles, created_at, revoked)
                VALUES (\(token.id), \(token.name), \(token.secretHash), \(token.roles.joined(separator: ",")), \(token.createdAt), \(token.revoked))
                ON CONFLICT (id) DO UPDATE SET name = excluded.name, secret_hash = excluded.secret_hash, roles = excluded.roles, revoked = excluded.revoked
                """, logger: self.logger)
        }
    }

    public func revokeServiceToken(id: String) async throws -> Bool {
        try await changed("UPDATE service_tokens SET revoked = TRUE WHERE id = \(id) AND NOT revoked RETURNING 1") > 0
    }

    public func secret(named name: String, proposed: [UInt8]) async throws -> [UInt8] {
        try await run { db in
            // Insert-if-absent, then read: every node ends up with the value the first one stored.
            try await db.query("""
                INSERT INTO secrets (name, value) VALUES (\(name), \(ByteBuffer(bytes: proposed))) ON CONFLICT DO NOTHING
                """, logger: self.logger)
            for try await value in try await db.query("SELECT value FROM secrets WHERE name = \(name)", logger: self.logger).decode(ByteBuffer.self) {
                return Array(value.readableBytesView)
            }
            throw PostgresStoreError("secret '\(name)' vanished after it was stored")
        }
    }

    static func now() -> Int64 { Int64(Date().timeIntervalSince1970) }
}

/// A PostgreSQL failure with the server's own message (postgres-nio hides it by default, to keep queries'
/// values out of logs; the message and SQLSTATE carry none).
public struct PostgresStoreError: Error, CustomStringConvertible {
    public let description: String

    init(_ message: String) { description = message }

    init(_ error: PSQLError) {
        if let info = error.serverInfo {
            let message = info[.message] ?? "error"
            let state = info[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
            description = "PostgreSQL: \(message)\(state)"
        } else {
            // The underlying error names the cause (e.g. connection refused); the PSQLError itself only its kind.
            description = "PostgreSQL: " + (error.underlying.map { "\($0)" } ?? "\(error.code)")
        }
    }
}
