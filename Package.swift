// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Switchyard",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Switchyard", targets: ["Switchyard"]),
        .library(name: "PostgresClient", targets: ["PostgresClient"]),
        .library(name: "LocalCluster", targets: ["LocalCluster"]),
        .library(name: "SwitchyardHummingbird", targets: ["SwitchyardHummingbird"]),
        // Fluent and Vapor: products of their own, which the `switchyard` command never builds.
        .library(name: "SwitchyardFluent", targets: ["SwitchyardFluent"]),
        .library(name: "SwitchyardVapor", targets: ["SwitchyardVapor"]),
        .executable(name: "switchyard-fluent-bench", targets: ["FluentBench"]),
        .executable(name: "switchyard", targets: ["SwitchyardCLI"]),
        .executable(name: "switchyard-fuzz", targets: ["SwitchyardFuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        // Only the web middleware and the sample storefront use it; without its optional
        // traits it does not pull swift-configuration in.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.20.0"),
        // Metrics and traces: the API packages only (no-op until an app bootstraps a backend).
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.3"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // Only SwitchyardFluent, SwitchyardVapor, their sample app and their tests use these.
        .package(url: "https://github.com/vapor/vapor", from: "4.122.3"),
        .package(url: "https://github.com/vapor/fluent", from: "4.13.0"),
        .package(url: "https://github.com/vapor/fluent-kit", from: "1.57.0"),
        .package(url: "https://github.com/vapor/sql-kit", from: "3.36.0"),
        .package(url: "https://github.com/vapor/postgres-kit", from: "2.17.0"),
        .package(url: "https://github.com/vapor/fluent-postgres-driver", from: "2.14.0"),
    ],
    targets: [
        // C libraries, through pkg-config.
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"]), .brew(["libpq"])]
        ),
        // ncursesw's pkg-config adds -D_XOPEN_SOURCE, which SwiftPM refuses; the headers
        // are on the default path and shim.h asks for the wide API itself.
        .systemLibrary(name: "CNCurses"),

        // One PostgreSQL connection: parameters, typed results, errors, cancel.
        .target(name: "PostgresClient", dependencies: ["CLibPQ"]),

        // Patroni's REST API: members, history, switchover and failover.
        .target(name: "PatroniREST"),

        // Routing context, routers, pools, monitor, query log, consistency tokens.
        .target(
            name: "Switchyard",
            dependencies: [
                "PostgresClient", "PatroniREST", .product(name: "TOMLKit", package: "TOMLKit"), .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"), .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]
        ),

        // Fluent's queries (SQLKit's PostgreSQL dialect) run through Switchyard's Cluster.
        .target(
            name: "SwitchyardFluent",
            dependencies: [
                "Switchyard", "PostgresClient", .product(name: "FluentKit", package: "fluent-kit"),
                .product(name: "FluentSQL", package: "fluent-kit"), .product(name: "SQLKit", package: "sql-kit"),
                .product(name: "PostgresKit", package: "postgres-kit"), .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Vapor middleware over the framework-free request core in Switchyard.
        .target(
            name: "SwitchyardVapor",
            dependencies: ["Switchyard", .product(name: "Vapor", package: "vapor")]
        ),
        // A small Vapor + Fluent shop (tests and the bench), and the bench that compares it
        // on Switchyard with the same app on FluentPostgresDriver.
        .target(
            name: "FluentShop",
            dependencies: [
                "Switchyard", "SwitchyardFluent", "SwitchyardVapor", .product(name: "Vapor", package: "vapor"),
                .product(name: "Fluent", package: "fluent"), .product(name: "FluentPostgresDriver", package: "fluent-postgres-driver"),
            ]
        ),
        .executableTarget(
            name: "FluentBench",
            dependencies: [
                "FluentShop", "Switchyard", "LocalCluster", .product(name: "Vapor", package: "vapor"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // Hummingbird 2 middleware over the framework-free request core in Switchyard.
        .target(
            name: "SwitchyardHummingbird",
            dependencies: [
                "Switchyard", .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"), .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // The sample web shop the demo drives over HTTP, and its sample schema.
        .target(
            name: "Storefront",
            dependencies: [
                "Switchyard", "SwitchyardHummingbird", "PostgresClient", .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"), .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Metrics", package: "swift-metrics"), .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            ]
        ),

        // Every parser of outside input as a fuzz target, and the fuzzer's executable
        // (libFuzzer when built with -sanitize=fuzzer -DFUZZING; a replayer otherwise).
        .target(name: "FuzzTargets", dependencies: ["Switchyard", "PostgresClient", "Console", "PatroniREST"]),
        .target(name: "CFuzzerDriver"),
        .executableTarget(name: "SwitchyardFuzz", dependencies: ["FuzzTargets", "CFuzzerDriver"]),

        // The admin console: pure state and rendering, a terminal driver, themes.
        .target(
            name: "Console",
            dependencies: [
                "Switchyard", "PostgresClient", "CNCurses", "LocalCluster", .product(name: "TOMLKit", package: "TOMLKit"),
            ]
        ),

        // Throw-away primary + streaming replicas from the machine's PostgreSQL.
        .target(
            name: "LocalCluster",
            dependencies: ["PostgresClient", "PatroniREST", .product(name: "Subprocess", package: "swift-subprocess")]
        ),

        // Starts one real cluster per test process; isolated schema per test.
        .target(
            name: "SwitchyardTestSupport",
            dependencies: ["LocalCluster", "PostgresClient", "PatroniREST"],
            path: "Tests/SwitchyardTestSupport"
        ),

        // `switchyard verify`: a randomized workload under faults, and its history checker.
        .target(
            name: "Verify",
            dependencies: [
                "Switchyard", "PostgresClient", "LocalCluster", "Storefront", .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ]),

        // The `switchyard` command (its folder differs from `Switchyard` by more than case).
        .executableTarget(
            name: "SwitchyardCLI",
            dependencies: [
                "PostgresClient",
                "Switchyard",
                "Console",
                "LocalCluster",
                "Storefront",
                "Verify",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"), .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ]
        ),

        // Pure logic, no server.
        .testTarget(
            name: "SwitchyardUnitTests",
            dependencies: [
                "PostgresClient", "Switchyard", "Console", "LocalCluster", "CNCurses", "SwitchyardHummingbird", "PatroniREST", "Verify", "FuzzTargets",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            exclude: ["Golden"]
        ),
        // Real cluster (primary + 2 replicas) started by SwitchyardTestSupport.
        .testTarget(
            name: "SwitchyardIntegrationTests",
            dependencies: [
                "PostgresClient", "Switchyard", "Console", "LocalCluster", "SwitchyardTestSupport", "SwitchyardCLI", "Storefront", "PatroniREST", "Verify",
                "SwitchyardHummingbird", .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                "SwitchyardFluent", "SwitchyardVapor", "FluentShop", .product(name: "Vapor", package: "vapor"),
                .product(name: "Fluent", package: "fluent"), .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"), .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ]
        ),
    ]
)
