// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "secmail",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "secmail", targets: ["secmail"]),
        .executable(name: "secmail-relay", targets: ["secmail-relay"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        // Already a dependency of Hummingbird; named here for the HTTP part types the relay's
        // connection guard handles (NIOHTTPTypes).
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.34.1"),
        // Already a dependency of Hummingbird; named for the relay's log and its --log-level.
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // The relay's second storage engine, for several relays sharing one database (issue 15):
        // the ecosystem's PostgreSQL driver, on SwiftNIO like the relay, without libpq.
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // The system OpenSSL 3 (Debian: libssl-dev): libcrypto linked, libssl loaded when TLS is
        // first used (CLibSSL); our C shims over it (include/shim.h, bios.c). A C target rather
        // than a system library, whose headers SwiftPM assumes never change: a changed shim now
        // rebuilds the Swift that calls it.
        .target(name: "COpenSSL", linkerSettings: [.linkedLibrary("crypto")]),
        // libssl's functions under their own names, each loading libssl on first use.
        .target(name: "CLibSSL"),
        // Keys, AEAD, signatures, KDF, randomness and key files over the OpenSSL EVP API.
        .target(name: "SecmailCrypto", dependencies: ["COpenSSL"]),
        // TLS 1.3 on the system OpenSSL as a SwiftNIO channel handler, client and server.
        .target(
            name: "SecmailTLS",
            dependencies: ["COpenSSL", "CLibSSL", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")]
        ),
        // libpng, libjpeg-turbo, libdeflate, zopfli, zlib and libjxl (Debian: libpng-dev,
        // libjpeg62-turbo-dev, libdeflate-dev, libzopfli-dev, zlib1g-dev, libjxl-dev)
        // behind status codes: all setjmp/longjmp error handling stays in C.
        .target(
            name: "CImageCodecs",
            // None of them is linked: CImageCodecs loads them when images are first handled
            // (libraries.c, jxl.c), so that commands without images do not pay for their loading.
            linkerSettings: [.linkedLibrary("m")]
        ),
        // Lossless image normalisation: decoding, an optimising PNG encoder, JPEG metadata stripping
        // (SecmailCrypto for `concurrently`, which runs two encodings at once).
        .target(name: "SecmailImages", dependencies: ["CImageCodecs", "SecmailCrypto"]),
        // Linux calls the Glibc module leaves out (SO_PEERCRED, accept4, O_PATH, prctl), for the key agent.
        .target(name: "CSystemCalls"),
        // Identity bundles, envelopes, the transparency log's formats and proofs, the key agent's
        // messages, their canonical binary encoding; the file and socket calls they need.
        .target(name: "SecmailFormat", dependencies: ["SecmailCrypto", "CSystemCalls"]),
        // The relay's HTTP API as types: every request and response body, the error body and the
        // routes, shared by the relay and the client (docs/API.md describes exactly these).
        .target(name: "SecmailAPI"),
        // The relay's schema histories, one folder per engine: SQL files embedded in the binary (top-level migrations/).
        .target(
            name: "SecmailMigrations",
            path: "migrations",
            resources: [.embedInCode("sqlite/V001__directory.sql"), .embedInCode("sqlite/V002__mailboxes.sql"),
                        .embedInCode("sqlite/V003__mailbox_usage.sql"), .embedInCode("sqlite/V004__inline_envelopes.sql"),
                        .embedInCode("sqlite/V005__name_map.sql"), .embedInCode("sqlite/V006__name_skeletons.sql"),
                        .embedInCode("sqlite/V007__key_owners.sql"), .embedInCode("sqlite/V008__reader_features.sql"),
                        .embedInCode("sqlite/V009__sender_usage.sql"), .embedInCode("sqlite/V010__envelope_hash_dropped.sql"),
                        .embedInCode("postgres/V001__relay.sql"), .embedInCode("postgres/V002__envelope_hash_dropped.sql")]
        ),
        // The relay: key directory, transparency log and name map, mailboxes, sign-in and limits,
        // as a Hummingbird app behind SecmailTLS; SQLite or PostgreSQL storage.
        .target(
            name: "SecmailRelay",
            dependencies: [
                "SecmailAPI", "SecmailFormat", "SecmailCrypto", "SecmailMigrations", "SecmailTLS",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The user's side: keystore, key agent, pins, RelayClient (HTTP/1.1 over SecmailTLS), the
        // directory and mail clients, saving attachments.
        .target(
            name: "SecmailClient",
            dependencies: [
                "SecmailAPI", "SecmailCrypto", "SecmailFormat", "SecmailTLS", "SecmailImages",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // What both programs share from start to exit: parsing and reporting (one line, an exit
        // status), output for people (progress, untrusted text made safe), Ctrl-C, `--json`
        // answers, attachments in their wire form.
        .target(
            name: "SecmailCommandLine",
            dependencies: [
                "SecmailClient", "SecmailFormat", "SecmailCrypto", "SecmailImages",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The client: every command but `relay` and `demo`, which it hands to secmail-relay. It
        // links neither the relay nor Foundation (FoundationEssentials only), which makes each
        // command start in about half the time.
        .executableTarget(
            name: "secmail",
            dependencies: [
                "SecmailAPI", "SecmailClient", "SecmailCommandLine", "SecmailFormat", "SecmailCrypto", "SecmailImages",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            // Linked with --static-swift-stdlib (as README installs it), Swift's link arguments
            // export every symbol of the executable to the dynamic table, and the runtime's
            // start-up dladdr scans them: 0.5-0.9 ms of every command. Nothing looks our symbols
            // up by name (backtraces read the symbol table in the file). Linked by lld (in the
            // Swift toolchain) with its relative relocations packed (DT_RELR, glibc 2.36+): gold
            // wrote 54,781 of them as a 1.26 MB table that the loader read at every start, packed
            // they take 10.8 KB; `seal` took 0.22 ms less (median of 80 paired runs).
            linkerSettings: [.unsafeFlags(["-use-ld=lld", "-Xlinker", "--no-export-dynamic", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"])]
        ),
        // The relay's program: `serve` (the default), `status`, `invite`, `backup`, `new-log`,
        // and the end-to-end `demo` with an embedded relay.
        .executableTarget(
            name: "secmail-relay",
            dependencies: [
                "SecmailAPI", "SecmailClient", "SecmailCommandLine", "SecmailFormat", "SecmailCrypto", "SecmailRelay", "SecmailImages",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Release-mode throughput and memory benchmark; see scripts/bench-envelope.sh.
        .executableTarget(name: "secmail-bench", dependencies: ["SecmailClient", "SecmailFormat", "SecmailCrypto"]),
        // Release-mode TLS throughput and handshake benchmark; see scripts/bench-tls.sh.
        .executableTarget(
            name: "secmail-tls-bench",
            dependencies: ["SecmailTLS", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")]
        ),
        // Release-mode directory benchmark (registrations, verified lookups, a 100,000-leaf log); see scripts/bench-directory.sh.
        .executableTarget(
            name: "secmail-directory-bench",
            dependencies: [
                "SecmailClient", "SecmailRelay", "SecmailFormat", "SecmailCrypto", "SecmailTLS",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // libFuzzer harnesses for every parser of network and file bytes (scripts/fuzz.sh builds
        // them with -sanitize=fuzzer,address; a plain build replays files through them).
        .executableTarget(name: "secmail-fuzz", dependencies: ["SecmailAPI", "SecmailCrypto", "SecmailFormat", "SecmailImages"]),
        // Helpers shared by the test targets (hex, running openssl/python3/secmail).
        .target(name: "SecmailTestSupport", path: "Tests/SecmailTestSupport"),
        // A relay in the test process, and the committed throw-away identities, for relay and client tests.
        .target(
            name: "SecmailRelayTestSupport",
            dependencies: [
                "SecmailRelay", "SecmailTLS", "SecmailCrypto", "SecmailFormat", "SecmailTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Tests/SecmailRelayTestSupport"
        ),
        .testTarget(name: "SecmailCryptoTests", dependencies: ["SecmailCrypto", "SecmailTestSupport"]),
        .testTarget(name: "SecmailAPITests", dependencies: ["SecmailAPI"]),
        .testTarget(
            name: "SecmailTLSTests",
            dependencies: [
                "SecmailTLS", "SecmailCrypto", "SecmailTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        // Fixtures are read from the source tree (Tests/SecmailFormatTests/Fixtures).
        .testTarget(
            name: "SecmailFormatTests",
            dependencies: ["SecmailFormat", "SecmailCrypto", "SecmailTestSupport"],
            exclude: ["Fixtures"]
        ),
        .testTarget(name: "SecmailImagesTests", dependencies: ["SecmailImages", "SecmailTestSupport"]),
        // Fixtures are read from the source tree (Tests/SecmailCLITests/Fixtures).
        .testTarget(
            name: "SecmailCLITests",
            dependencies: [
                "secmail", "secmail-relay", "SecmailCommandLine", "SecmailTestSupport", "SecmailRelayTestSupport", "SecmailRelay", "SecmailClient",
                "SecmailFormat", "SecmailCrypto", "SecmailImages", "SecmailTLS", "SecmailAPI",
            ],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "SecmailClientTests",
            dependencies: [
                "SecmailAPI", "SecmailClient", "SecmailRelay", "SecmailFormat", "SecmailCrypto", "SecmailTLS", "SecmailTestSupport",
                "SecmailRelayTestSupport",
            ]
        ),
        .testTarget(
            name: "SecmailRelayTests",
            dependencies: [
                "SecmailAPI", "SecmailRelay", "SecmailMigrations", "SecmailFormat", "SecmailCrypto", "SecmailTLS", "SecmailTestSupport",
                "SecmailRelayTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
