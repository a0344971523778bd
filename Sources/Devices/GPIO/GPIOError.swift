/// The raise-hand button or its LED failed, said so that a technician can act on it: which chip and
/// line (or input device), what was asked, and what to do.
public struct GPIOError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of failure this is, for code that must react (retry, fall back to no button).
    public enum Kind: Sendable, Equatable {
        /// No GPIO chip (or input device) matches the board profile.
        case notFound
        /// Another program holds the line (a second classbox, a stale `gpioset`).
        case busy
        /// The service user lacks the `gpio` (or `input`) group.
        case permissionDenied
        /// The line offset does not exist on the chip, or the driver refused the settings.
        case refused
        /// The chip or device vanished.
        case gone
        /// Anything else.
        case failed
    }

    /// The kind of failure.
    public var kind: Kind
    /// The chip label and line (`classbox-sim line 0`), or the input device.
    public var device: String
    /// The call that failed.
    public var call: String
    /// The error number, when there was one.
    public var errno: Errno?
    /// What happened and what to do.
    public var detail: String

    /// An error about `device`.
    public init(kind: Kind, device: String, call: String, errno: Errno?, detail: String) {
        self.kind = kind
        self.device = device
        self.call = call
        self.errno = errno
        self.detail = detail
    }

    public var description: String {
        var text = "\(device): \(detail)"
        if let errno { text += " [\(call): \(errno)]" }
        return text
    }

    static func from(_ errno: Errno, device: String, call: String, group: String = "gpio") -> GPIOError {
        switch errno.rawValue {
        case Errno.busy.rawValue:
            return .init(kind: .busy, device: device, call: call, errno: errno,
                         detail: "the line is held by another program; stop it (see `gpioinfo` for the holder) or the other classbox instance")
        case Errno.permissionDenied.rawValue:
            return .init(kind: .permissionDenied, device: device, call: call, errno: errno,
                         detail: "permission denied; run as a member of the '\(group)' group")
        case Errno.noDevice.rawValue, Errno.noEntry.rawValue:
            return .init(kind: .gone, device: device, call: call, errno: errno,
                         detail: "the device is not there; check the board profile and `classbox devices`")
        case Errno.invalidArgument.rawValue:
            return .init(kind: .refused, device: device, call: call, errno: errno,
                         detail: "the driver refused the request (wrong line offset in the board profile, or settings the chip cannot do)")
        default:
            return .init(kind: .failed, device: device, call: call, errno: errno, detail: "the GPIO device failed")
        }
    }
}
