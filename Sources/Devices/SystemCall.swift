#if canImport(Glibc)
internal import Glibc
#endif

/// An operating-system error number with its name and the kernel's text, e.g. `EBUSY (Device or resource busy)`.
public struct Errno: Error, Sendable, Hashable, CustomStringConvertible {
    /// The raw `errno` value.
    public var rawValue: Int32

    /// Wraps a raw errno value.
    public init(_ rawValue: Int32) { self.rawValue = rawValue }

    /// The current thread's `errno`.
    static var current: Errno { Errno(errno) }

    /// `EINTR`: interrupted by a signal; the call is retried.
    public static let interrupted = Errno(EINTR)
    /// `EAGAIN`: nothing to read/write now on a non-blocking descriptor.
    public static let wouldBlock = Errno(EAGAIN)
    /// `EBUSY`: the device is used by another program (the service, a second diagnose...).
    public static let busy = Errno(EBUSY)
    /// `ENODEV`: the device is gone (a USB camera or speakerphone was unplugged).
    public static let noDevice = Errno(ENODEV)
    /// `ENOENT`: no such device node.
    public static let noEntry = Errno(ENOENT)
    /// `EACCES`: the service user lacks the group (audio, video, gpio) for this device.
    public static let permissionDenied = Errno(EACCES)
    /// `EINVAL`: the driver refused a value (or an enumeration ended).
    public static let invalidArgument = Errno(EINVAL)
    /// `EPIPE`: an ALSA xrun.
    public static let brokenPipe = Errno(EPIPE)
    /// `ESTRPIPE`: an ALSA device was suspended.
    public static let suspended = Errno(ESTRPIPE)

    public var description: String {
        let text = String(cString: strerror(rawValue))
        return "\(Errno.names[rawValue] ?? "errno \(rawValue)") (\(text))"
    }

    private static let names: [Int32: String] = [
        EPERM: "EPERM", ENOENT: "ENOENT", EINTR: "EINTR", EIO: "EIO", ENXIO: "ENXIO", EBADF: "EBADF",
        EAGAIN: "EAGAIN", ENOMEM: "ENOMEM", EACCES: "EACCES", EFAULT: "EFAULT", EBUSY: "EBUSY",
        ENODEV: "ENODEV", EINVAL: "EINVAL", ENOTTY: "ENOTTY", EPIPE: "EPIPE", ESTRPIPE: "ESTRPIPE",
        ENOSPC: "ENOSPC", ETIMEDOUT: "ETIMEDOUT", EOPNOTSUPP: "EOPNOTSUPP",
    ]
}

/// The one place where the device layer calls the C libraries and the kernel: every call's result is
/// checked, `EINTR` is retried, errno becomes an `Errno`, and errnos that can only mean a bug in the
/// firmware (a bad descriptor or pointer, an ioctl sent to the wrong kind of file) stop the program
/// instead of being mistaken for a hardware fault.
enum SystemCall {
    /// Runs a call that returns -1 and sets errno on failure (open, ioctl, read...).
    @inline(__always)
    static func check<R: BinaryInteger>(retryOnInterrupt: Bool = true, _ body: () -> R) throws(Errno) -> R {
        while true {
            let result = body()
            if result != -1 { return result }
            let error = Errno.current
            if retryOnInterrupt && error == .interrupted { continue }
            preconditionIsNotProgrammerError(error)
            throw error
        }
    }

    /// Runs a call that returns a negative errno on failure (libasound, libgpiod v2 style).
    @inline(__always)
    static func checkNegative<R: BinaryInteger>(retryOnInterrupt: Bool = true, _ body: () -> R) throws(Errno) -> R {
        while true {
            let result = body()
            if result >= 0 { return result }
            let error = Errno(Int32(truncatingIfNeeded: -Int64(result)))
            if retryOnInterrupt && error == .interrupted { continue }
            preconditionIsNotProgrammerError(error)
            throw error
        }
    }

    /// `EBADF` and `EFAULT` mean the firmware passed a wrong descriptor or pointer: a bug, not the world.
    static func preconditionIsNotProgrammerError(_ error: Errno) {
        precondition(error.rawValue != EBADF && error.rawValue != EFAULT,
                     "system call failed with \(error): this is a bug in classbox, please report it")
    }
}
