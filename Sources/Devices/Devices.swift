// Devices: the classroom's hardware as Swift values: ALSA sound, the V4L2 camera and M2M encoder, the GPIO
// raise-hand button and LED, plus the in-process simulated classroom that stands in for all of them.
// It must never know about the network or the lesson; every C call goes through `SystemCall` and
// comes back as a typed error that names the device and says what to do.
internal import CAlsa
internal import CGpiod
#if canImport(Glibc)
internal import Glibc
#endif

/// Versions of the C libraries and kernel the firmware runs on, for `classbox version` and diagnostics.
public struct DeviceLibraryVersions: Sendable, Equatable, Codable {
    /// libasound as loaded at run time.
    public var alsa: String
    /// libasound's headers at build time.
    public var alsaHeaders: String
    /// libgpiod as loaded at run time.
    public var gpiod: String
    /// The libgpiod API generation the firmware was built for (1 or 2).
    public var gpiodAPI: Int
    /// The running kernel's release (`uname -r`).
    public var kernel: String
    /// The machine's architecture (`uname -m`).
    public var machine: String

    /// Reads the versions from the loaded libraries and the kernel.
    public static func current() -> DeviceLibraryVersions {
        var name = utsname()
        _ = uname(&name)
        return DeviceLibraryVersions(
            alsa: String(cString: snd_asoundlib_version()),
            alsaHeaders: String(cString: cb_alsa_header_version()),
            gpiod: String(cString: cb_gpiod_version_string()),
            gpiodAPI: Int(cb_gpiod_api_version()),
            kernel: cString(of: &name.release),
            machine: cString(of: &name.machine))
    }
}

/// A fixed-size C character array (imported as a tuple) as a Swift string.
func cString<T>(of tuple: inout T) -> String {
    withUnsafeBytes(of: &tuple) { raw in
        let bytes = raw.prefix { $0 != 0 }
        return String(decoding: bytes, as: UTF8.self)
    }
}
