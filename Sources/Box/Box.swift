// Box: the running appliance: it composes the device, media, canceller and control parts for one board
// profile and configuration, and is the only module where they meet.
// It must never reach around a layer: hardware through Devices, sound processing through Media and
// EchoCancel, the lesson's state through Control.
import BoxConfig
public import Devices
internal import Media

/// What this firmware is and what it runs on, for `classbox version` and health reports.
public struct BuildInfo: Sendable, Codable, Equatable {
    /// Classbox's own version.
    public var classbox: String
    /// The Swift compiler that built it.
    public var swiftCompiler: String
    /// libopus at run time.
    public var opus: String
    /// The C libraries and kernel at run time.
    public var devices: DeviceLibraryVersions

    /// The firmware's version number.
    public static let version = "0.1.0"

    /// Collects the versions of the running firmware and its libraries.
    public static func current() -> BuildInfo {
        BuildInfo(classbox: version, swiftCompiler: compilerVersion, opus: opusVersion(), devices: .current())
    }

    static var compilerVersion: String {
        #if compiler(>=6.3)
        return ">= 6.3"
        #elseif compiler(>=6.2)
        return "6.2"
        #elseif compiler(>=6.1)
        return "6.1"
        #else
        return "6.0"
        #endif
    }
}
