import BerthCore
import BerthStorage
import BerthStoragePostgres
import Foundation
import Logging
import PostgresNIO
import Testing

/// Creates a database named after the test folder (once), so each check starts empty and a reopen sees the same data.
private func database(for directory: String, base: String) async throws -> String {
    let name = TestServices.name(for: directory, prefix: "berth_test_")
    var configuration = try #require(URLComponents(string: base))
    let admin = PostgresClient(
        configuration: .init(host: configuration.host ?? "127.0.0.1", port: configuration.port ?? 5432,
                             username: configuration.user ?? "postgres", password: configuration.password,
                             database: String(configuration.path.dropFirst()), tls: .disable),
        backgroundLogger: Logger(label: "test"))
    let runner = Task { await admin.run() }
    defer { runner.cancel() }
    do {
        try await admin.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"))
    } catch let error as PSQLError where error.serverInfo?[.sqlState] == "42P04" {
        // Already created by an earlier open of the same folder.
    }
    configuration.path = "/" + name
    return configuration.string!
}

@Suite("MetadataStore contract: PostgresMetadataStore", .enabled(if: TestServices.postgresURL != nil, "needs BERTH_TEST_POSTGRES_URL (scripts/test-services.sh)"))
struct PostgresMetadataStoreContractTests {
    @Test(arguments: MetadataStoreContract.checks)
    func contract(_ check: MetadataStoreContract.Check) async throws {
        let base = try #require(TestServices.postgresURL)
        try await MetadataStoreContract.run(check) { directory in
            try await PostgresMetadataStore(url: try await database(for: directory, base: base), maxConnections: 4, logger: Logger(label: "test"))
        }
    }
}

@Suite("PostgresMetadataStore", .enabled(if: TestServices.postgresURL != nil, "needs BERTH_TEST_POSTGRES_URL (scripts/test-services.sh)"))
struct PostgresMetadataStoreTests {
    @Test("nodes starting at once against an empty database migrate it once")
    func concurrentMigration() async throws {
        let directory = try TemporaryDirectory("berth-pg-migrate")
        defer { directory.remove() }
        let url = try await database(for: directory.path, base: try #require(TestServices.postgresURL))
        let stores = try await withThrowingTaskGroup(of: PostgresMetadataStore.self) { group in
            for _ in 0..<6 {
                group.addTask { try await PostgresMetadataStore(url: url, maxConnections: 2, logger: Logger(label: "test")) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(stores.count == 6)
        // Each node sees the other's writes at once: no cache in between.
        let image = ImageRef(repository: "docker-hosted", image: "team/app")
        try await stores[0].ensureRepository(RepositoryRecord(name: "docker-hosted", kind: .hosted))
        #expect(try await stores[5].repositories().map(\.name) == ["docker-hosted"])
        try await stores[1].linkBlob(Digest.of(Array("x".utf8)), size: 1, in: image)
        #expect(try await stores[2].linkedBlobSize(Digest.of(Array("x".utf8)), in: image) == 1)
        for store in stores { await store.shutdown() }
    }

    @Test("a bad URL and an unreachable server give clear errors")
    func badURL() async throws {
        await #expect(throws: PostgresStoreError.self) {
            _ = try await PostgresMetadataStore(url: "mysql://x@127.0.0.1/db", logger: Logger(label: "test"))
        }
        let error = await #expect(throws: (any Error).self) {
            _ = try await PostgresMetadataStore(url: "postgres://berth:secret@127.0.0.1:1/berth", logger: Logger(label: "test"))
        }
        let message = "\(error.map { "\($0)" } ?? "")"
        #expect(message.contains("refused"), "\(message)")
        #expect(!message.contains("secret"))
    }
}
