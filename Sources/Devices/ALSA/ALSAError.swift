/// A sound device refused something or failed, said so that a technician can act on it: which
/// device, which direction, what was asked, what the device offers instead, and what to do.
public struct ALSAError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of failure this is, for code that must react (reopen, retry, give up).
    public enum Kind: Sendable, Equatable {
        /// No card or PCM of that name.
        case notFound
        /// Another program holds the device.
        case busy
        /// The user lacks the `audio` group.
        case permissionDenied
        /// The device refused a parameter (rate, channels, format, period, buffer).
        case refusedParameter(String)
        /// The device disappeared (USB unplugged).
        case gone
        /// Anything else the library reported.
        case failed
    }

    /// The kind of failure.
    public var kind: Kind
    /// The ALSA device name, e.g. `hw:CARD=Device,DEV=0`.
    public var device: String
    /// Capture or playback.
    public var stream: PCMStream
    /// The libasound call that failed.
    public var call: String
    /// The error number libasound returned, when it returned one.
    public var errno: Errno?
    /// What happened and what to do.
    public var detail: String

    /// An error about `device`.
    public init(kind: Kind, device: String, stream: PCMStream, call: String, errno: Errno?, detail: String) {
        self.kind = kind
        self.device = device
        self.stream = stream
        self.call = call
        self.errno = errno
        self.detail = detail
    }

    public var description: String {
        var text = "\(device) (\(stream.rawValue)): \(detail)"
        if let errno { text += " [\(call): \(errno)]" }
        return text
    }

    static func from(_ errno: Errno, device: String, stream: PCMStream, call: String) -> ALSAError {
        switch errno.rawValue {
        case Errno.busy.rawValue:
            return .init(kind: .busy, device: device, stream: stream, call: call, errno: errno,
                         detail: "the device is in use by another program; stop it (e.g. the classbox service) or share the device")
        case Errno.permissionDenied.rawValue:
            return .init(kind: .permissionDenied, device: device, stream: stream, call: call, errno: errno,
                         detail: "permission denied; run as a member of the 'audio' group")
        case Errno.noDevice.rawValue, Errno.noEntry.rawValue:
            return .init(kind: .gone, device: device, stream: stream, call: call, errno: errno,
                         detail: "the device is not there (unplugged, or the card name is wrong); check `classbox devices`")
        default:
            return .init(kind: .failed, device: device, stream: stream, call: call, errno: errno, detail: "the sound device failed")
        }
    }
}

/// The direction of a PCM.
public enum PCMStream: String, Sendable, Codable, CaseIterable {
    /// Microphone: frames come from the device.
    case capture
    /// Loudspeaker: frames go to the device.
    case playback
}
