// swift-tools-version:6.0
// Classbox: the firmware of the classroom box for synchronous blended classes.
// Layers (arrows point down only; see ../shared/DESIGN.md §2):
//   classbox -> Box, Diagnostics, Provisioning -> Control, Media -> Devices, EchoCancel, BoxConfig -> C*
import PackageDescription

// swift-log's only version in the package mirror (1.16.2) needs tools 6.2, but the image is built with
// Debian trixie's Swift 6.0.3. Toolchains older than 6.2 get `Compat/Logging`, a small source-compatible
// subset of swift-log's API, so every module can `import Logging` either way.
// CLASSBOX_LOGGING_COMPAT=1 builds the compat module with a newer toolchain too (to check it here).
#if compiler(>=6.2)
let useLoggingCompat = Context.environment["CLASSBOX_LOGGING_COMPAT"] == "1"
#else
let useLoggingCompat = true
#endif
let loggingDependency: [Package.Dependency]
let logging: Target.Dependency
let compatTargets: [Target]
if useLoggingCompat {
    loggingDependency = []
    logging = "Logging"
    compatTargets = [.target(name: "Logging", path: "Compat/Logging")]
} else {
    loggingDependency = [.package(url: "https://github.com/apple/swift-log", from: "1.6.0")]
    logging = .product(name: "Logging", package: "swift-log")
    compatTargets = []
}

// classbox-libfuzz (scripts/fuzz --libfuzzer) calls libFuzzer's driver, which only a -sanitize=fuzzer link
// provides, so the target exists only when that build asks for it.
let libFuzzerTargets: [Target] = Context.environment["CLASSBOX_LIBFUZZER"] == "1"
    ? [.systemLibrary(name: "CLibFuzzer"), .executableTarget(name: "LibFuzz", dependencies: ["Media", "CLibFuzzer"])]
    : []
let libFuzzerProducts: [Product] = libFuzzerTargets.isEmpty ? [] : [.executable(name: "classbox-libfuzz", targets: ["LibFuzz"])]

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]
// The signal processing is optimised in debug builds too: `classbox diagnose` (cross-correlations over
// 2^17-point FFTs, the echo canceller over seconds of audio) runs the debug binary in the kernel-driver
// VM under software emulation, where unoptimised DSP (generic SIMD code above all) is 20-50x slower.
let optimisedDSP: [SwiftSetting] = [.unsafeFlags(["-O"], .when(configuration: .debug))]

// The manifest is built from typed pieces: Swift 6.0.3 (the image's toolchain) gives up type-checking
// one large `Package(...)` expression ("unable to type-check this expression in reasonable time").
let productList: [Product] = [
    .executable(name: "classbox", targets: ["classbox"]),
    .executable(name: "classbox-bench", targets: ["Bench"]),
    .executable(name: "classbox-fuzz", targets: ["Fuzz"]),
]
let dependencyList: [Package.Dependency] = loggingDependency + [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
]
let moduleTargets: [Target] = [
    // System libraries. Each module map also carries a header-only shim (static inline functions
    // and constants) for what Swift cannot import: variadic calls and function-like macros.
    .systemLibrary(name: "CAlsa", pkgConfig: "alsa", providers: [.apt(["libasound2-dev"])]),
    .systemLibrary(name: "CV4L2", pkgConfig: "libv4l2", providers: [.apt(["libv4l-dev"])]),
    .systemLibrary(name: "CGpiod", pkgConfig: "libgpiod", providers: [.apt(["libgpiod-dev"])]),
    .systemLibrary(name: "COpus", pkgConfig: "opus", providers: [.apt(["libopus-dev"])]),
    .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),

    // Bottom layer: pure logic and hardware, no network.
    .target(name: "BoxConfig", dependencies: [.product(name: "TOMLKit", package: "TOMLKit")],
            swiftSettings: strict),
    .target(name: "EchoCancel", swiftSettings: strict + optimisedDSP),
    .target(name: "Devices", dependencies: ["BoxConfig", "CAlsa", "CV4L2", "CGpiod", logging], swiftSettings: strict),

    // Middle layer.
    .target(name: "Media", dependencies: ["Devices", "EchoCancel", "COpus", "CCrypto", logging], swiftSettings: strict + optimisedDSP),
    .target(name: "Control", dependencies: ["BoxConfig", logging], swiftSettings: strict),

    // Top layer: where the parts meet.
    .target(name: "Box", dependencies: ["BoxConfig", "Devices", "EchoCancel", "Media", "Control", logging],
            swiftSettings: strict),
    .target(name: "Diagnostics", dependencies: ["Box", "BoxConfig", "Devices", "Media", "EchoCancel", logging],
            swiftSettings: strict + optimisedDSP),
    .target(name: "Provisioning", dependencies: ["BoxConfig", logging], swiftSettings: strict),
    .executableTarget(
        name: "classbox",
        dependencies: [
            "Box", "BoxConfig", "Diagnostics", "Provisioning", logging,
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ],
        swiftSettings: strict),
]
let toolTargets: [Target] = [
    // Development tool: the audio path's benchmark (scripts/bench-audio); not in the image.
    .executableTarget(name: "Bench", dependencies: ["Devices", "Media"], swiftSettings: strict),
    // Development tool: bounded-time mutation fuzzing of the media parsers (scripts/fuzz); not in the image.
    .executableTarget(name: "Fuzz", dependencies: ["Media"], swiftSettings: strict),

    // Test support only: counts the calling thread's allocations (never linked into the firmware).
    .target(name: "CAllocationCounter", path: "Sources/CAllocationCounter"),
]
let testTargets: [Target] = [
    .testTarget(name: "BoxConfigTests", dependencies: ["BoxConfig"], swiftSettings: strict),
    .testTarget(name: "EchoCancelTests", dependencies: ["EchoCancel", "CAllocationCounter"], swiftSettings: strict),
    .testTarget(name: "DevicesTests", dependencies: ["Devices", "BoxConfig", "CV4L2", "CGpiod", "CAlsa"], swiftSettings: strict),
    .testTarget(name: "MediaTests", dependencies: ["Media", "Devices", "BoxConfig", "COpus", "CAllocationCounter"], swiftSettings: strict),
    .testTarget(name: "BoxTests", dependencies: ["Box", "BoxConfig", "Devices", "Media"], swiftSettings: strict),
    .testTarget(name: "ProvisioningTests", dependencies: ["Provisioning", "BoxConfig"], swiftSettings: strict),
    .testTarget(name: "DiagnosticsTests", dependencies: ["Diagnostics", "Box", "BoxConfig", "Devices", "Media"], swiftSettings: strict),
    .testTarget(name: "ClassboxCLITests", dependencies: ["BoxConfig"], swiftSettings: strict),
    .testTarget(name: "ArchitectureTests", swiftSettings: strict),
    // Run by scripts/vm-test inside a QEMU VM with the kernel's test drivers (CLASSBOX_VM_LANE=1).
    .testTarget(name: "VMLaneTests", dependencies: ["Devices", "BoxConfig", "Media", "Box", "Diagnostics", "CV4L2"], swiftSettings: strict),
]

let package = Package(
    name: "classbox",
    products: productList + libFuzzerProducts,
    dependencies: dependencyList,
    targets: compatTargets + libFuzzerTargets + moduleTargets + toolTargets + testTargets,
    swiftLanguageModes: [.v6]
)
