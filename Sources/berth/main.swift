import ArgumentParser
import BerthServer
import Foundation
import Hummingbird
import Logging

@main
struct Berth: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "berth",
        abstract: "Berth: a Docker/OCI repository manager and the front door that routes clients to it.",
        discussion: """
            Run `berth serve` to start on the embedded defaults: 127.0.0.1:8081, data in ./berth-data \
            (blobs in a folder, metadata in SQLite), one hosted repository `docker-hosted`.
            """,
        subcommands: [Serve.self, Config.self, ProxyConfig.self, User.self, Token.self])
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the registry.",
        discussion: """
            Images are addressed as HOST:PORT/<repository>/<image>:<tag> (repository path) or, behind a \
            reverse proxy, under /repository/<repository>/v2/ (Nexus path). SIGTERM or SIGINT stops \
            gracefully: requests in flight finish, and nothing half-written ever becomes visible.
            """)

    @Option(help: "Address to listen on, HOST:PORT (default 127.0.0.1:8081, or the config file's `listen`).")
    var listen: String?

    @Option(help: "Folder for blobs and the SQLite database when the config file does not say otherwise.")
    var data: String = BerthConfiguration.defaultDataDirectory

    @Option(help: "YAML configuration file (keys in the README).")
    var config: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func run() async throws {
        var configuration: BerthConfiguration
        do {
            configuration = try config.map { try ConfigurationLoader.load(path: $0, dataDirectory: data) } ?? .defaults(dataDirectory: data)
        } catch let error as ConfigurationError {
            printError("berth: \(error)")
            throw ExitCode(2)
        }
        if let listen {
            guard let address = BerthConfiguration.ListenAddress(parsing: listen) else {
                printError("berth: --listen must be HOST:PORT, got '\(listen)'")
                throw ExitCode(2)
            }
            configuration.listen = address
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = logLevel
            return handler
        }
        let logger = Logger(label: "berth")
        let registry = try await BerthApplication.buildRegistry(configuration, logger: logger)
        do {
            try BerthApplication.checkCertificates(configuration)
        } catch {
            printError("berth: \(config ?? "configuration"): \(error)")
            throw ExitCode(2)
        }
        try await BerthApplication.run(configuration, registry: registry, configPath: config, dataDirectory: data, logger: logger)
    }
}

struct Config: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Work with configuration files.",
        subcommands: [Check.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a configuration file and the certificates it names.",
            discussion: "Prints FILE: ok, or FILE:LINE:COLUMN: reason for the first problem and exits with status 2. Send SIGHUP to a running berth serve --config FILE to apply a changed file.")

        @Argument(help: "The YAML configuration file.")
        var file: String

        func run() async throws {
            do {
                let config = try ConfigurationLoader.load(path: file)
                do {
                    try BerthApplication.checkCertificates(config)
                } catch {
                    throw ConfigurationError(file: file, reason: "\(error)")
                }
                print("\(file): ok (listen \(config.listen), \(config.repositories.count) repositories, \(config.frontDoor.routes.count) routes)")
            } catch {
                printError("berth: \(error)")
                throw ExitCode(2)
            }
        }
    }
}

struct ProxyConfig: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy-config",
        abstract: "Print an nginx or Apache httpd configuration equivalent to Berth's routes.",
        discussion: """
            For those who keep an external reverse proxy in front of Berth: every port and host route of the \
            configuration becomes a server (nginx) or virtual host (Apache) that maps it to Berth's Nexus-path \
            URLs /repository/<repo>/ on the main listener, in the shape of Sonatype's reverse-proxy guide.
            """)

    @Argument(help: "nginx or apache")
    var flavor: String

    @Option(help: "Berth's YAML configuration file (its routes are translated).")
    var config: String

    @Option(help: "Address at which the proxy reaches Berth's main listener (default: the config's listen).")
    var backend: String?

    func run() async throws {
        guard let flavor = ProxyConfigGenerator.Flavor(rawValue: flavor) else {
            printError("berth: proxy-config takes nginx or apache, got '\(flavor)'")
            throw ExitCode(2)
        }
        let configuration: BerthConfiguration
        do {
            configuration = try ConfigurationLoader.load(path: config)
        } catch {
            printError("berth: \(error)")
            throw ExitCode(2)
        }
        var listen = configuration.listen
        if listen.host == "0.0.0.0" || listen.host == "::" { listen.host = "127.0.0.1" }
        print(ProxyConfigGenerator.generate(configuration, flavor: flavor, backend: backend ?? listen.description), terminator: "")
    }
}

/// `--config` and `--data`, as `berth serve` takes them, to find the database.
struct StoreOptions: ParsableArguments {
    @Option(help: "Berth's YAML configuration file.")
    var config: String?

    @Option(help: "Berth's data folder.")
    var data: String = BerthConfiguration.defaultDataDirectory

    func administration() async throws -> Administration {
        do {
            let configuration = try config.map { try ConfigurationLoader.load(path: $0, dataDirectory: data) } ?? .defaults(dataDirectory: data)
            return try await Administration.open(configuration)
        } catch {
            printError("berth: \(error)")
            throw ExitCode(2)
        }
    }
}

/// A password from standard input (first line), or a generated one that is printed.
func readPassword(fromStdin: Bool) throws -> (password: String, generated: Bool) {
    if fromStdin {
        guard let line = readLine(strippingNewline: true), !line.isEmpty else {
            printError("berth: no password on standard input")
            throw ExitCode(2)
        }
        return (line, false)
    }
    var rng = SystemRandomNumberGenerator()
    let alphabet = Array("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
    return (String((0..<20).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &rng)] }), true)
}

func fail(_ error: any Error) -> ExitCode {
    printError("berth: \(error)")
    return ExitCode(1)
}

struct User: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage users (with access control on: an auth: section in the configuration).",
        subcommands: [Add.self, Passwd.self, List.self, Remove.self, Hash.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a user; prints a generated password unless --password-stdin.")
        @Argument var name: String
        @Option(name: .customLong("role"), help: "A role from the configuration (repeatable); admin is built in.") var roles: [String] = []
        @Flag(help: "Read the password from the first line of standard input.") var passwordStdin = false
        @OptionGroup var store: StoreOptions

        func run() async throws {
            let admin = try await store.administration()
            let (password, generated) = try readPassword(fromStdin: passwordStdin)
            do { try await admin.addUser(name, password: password, roles: roles) } catch { throw fail(error) }
            print(generated ? "added \(name); password: \(password)" : "added \(name)")
        }
    }

    struct Passwd: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a user's password; prints a generated one unless --password-stdin.")
        @Argument var name: String
        @Flag(help: "Read the password from the first line of standard input.") var passwordStdin = false
        @OptionGroup var store: StoreOptions

        func run() async throws {
            let admin = try await store.administration()
            let (password, generated) = try readPassword(fromStdin: passwordStdin)
            do { try await admin.setPassword(name, password: password) } catch { throw fail(error) }
            print(generated ? "password of \(name): \(password)" : "password of \(name) changed")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users and their roles.")
        @OptionGroup var store: StoreOptions

        func run() async throws {
            let admin = try await store.administration()
            do {
                for user in try await admin.users() { print("\(user.name)\t\(user.roles.joined(separator: ","))") }
            } catch { throw fail(error) }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove a user.")
        @Argument var name: String
        @OptionGroup var store: StoreOptions

        func run() async throws {
            let admin = try await store.administration()
            do { try await admin.removeUser(name) } catch { throw fail(error) }
            print("removed \(name)")
        }
    }

    struct Hash: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the bcrypt hash of a password (from standard input) for a users: entry.")
        func run() async throws {
            let (password, _) = try readPassword(fromStdin: true)
            print(Administration.hash(password))
        }
    }
}

struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage service tokens for CI: long random secrets, usable as a basic-auth password, revocable.",
        subcommands: [Create.self, List.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a token; its secret is printed once and never stored.")
        @Argument var name: String
        @Option(name: .customLong("role"), help: "A role from the configuration (repeatable).") var roles: [String] = []
        @OptionGroup var store: StoreOptions

        func run() async throws {
            let admin = try await store.administration()
            do {
                let token = try await admin.createToken(name, roles: roles)
                print("token \(token.id) (\(name)): \(token.secret)")
            } catch { throw fail(error) }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tokens (never their secrets).")
        @OptionGroup var store: StoreOptions

        func run() async throws {
            let admin = try await store.administration()
            do {
                for token in try await admin.tokens() {
                    print("\(token.id)\t\(token.name)\t\(token.roles.joined(separator: ","))\t\(token.revoked ? "revoked" : "active")")
                }
            } catch { throw fail(error) }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token at once.")
        @Argument var id: String
        @OptionGroup var store: StoreOptions

        func run() async throws {
            let admin = try await store.administration()
            do { try await admin.revokeToken(id) } catch { throw fail(error) }
            print("revoked \(id)")
        }
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
