#if canImport(Glibc)
internal import Glibc
#endif
/// The camera or the video encoder failed, said so that a technician can act on it: which device, what
/// was asked, what it offers instead, and what to do.
public struct CameraError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of failure this is, for code that must react (reopen, choose another mode, give up).
    public enum Kind: Sendable, Equatable {
        /// No video device matches the board profile.
        case notFound
        /// Another program is streaming from the camera.
        case busy
        /// The service user lacks the `video` group.
        case permissionDenied
        /// The camera was unplugged (or its driver unbound).
        case gone
        /// The camera refused a format, size, rate or control value.
        case refused
        /// The camera lacks what is needed (streaming, the profile's formats, a control).
        case unsupported
        /// No frame arrived in time.
        case timedOut
        /// Anything else the driver reported.
        case failed
    }

    /// The kind of failure.
    public var kind: Kind
    /// The device node and card, e.g. `/dev/video0 (HD Webcam C615)`.
    public var device: String
    /// The ioctl or step that failed.
    public var call: String
    /// The error number, when there was one.
    public var errno: Errno?
    /// What happened and what to do.
    public var detail: String

    /// An error about `device`.
    public init(kind: Kind, device: String, call: String, errno: Errno? = nil, detail: String) {
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

    static func from(_ errno: Errno, device: String, call: String, refused: String = "the driver refused the request") -> CameraError {
        switch errno.rawValue {
        case Errno.busy.rawValue:
            return .init(kind: .busy, device: device, call: call, errno: errno,
                         detail: "the camera is in use by another program; stop it (e.g. the classbox service, a browser) and retry")
        case Errno.permissionDenied.rawValue:
            return .init(kind: .permissionDenied, device: device, call: call, errno: errno,
                         detail: "permission denied; run as a member of the 'video' group")
        case Errno.noDevice.rawValue, Errno.noEntry.rawValue, Errno(ENXIO).rawValue:
            return .init(kind: .gone, device: device, call: call, errno: errno,
                         detail: "the camera is gone (unplugged?); check the cable, then `classbox devices`")
        case Errno.invalidArgument.rawValue:
            return .init(kind: .refused, device: device, call: call, errno: errno, detail: refused)
        case Errno(ENOTTY).rawValue:
            return .init(kind: .unsupported, device: device, call: call, errno: errno, detail: "the driver does not support \(call)")
        default:
            return .init(kind: .failed, device: device, call: call, errno: errno, detail: "the video device failed")
        }
    }
}
