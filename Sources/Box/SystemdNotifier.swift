#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Foundation

/// Tells systemd how the service is doing with the `sd_notify` protocol: newline-separated
/// `KEY=VALUE` assignments (`READY=1`, `WATCHDOG=1`, `STATUS=...`) sent as one datagram to the
/// `AF_UNIX` socket named by `NOTIFY_SOCKET` (a path, or an abstract name written with a leading `@`).
/// Outside systemd (no `NOTIFY_SOCKET`) every call does nothing, so the firmware runs the same on a
/// developer's machine. The watchdog interval comes from `WATCHDOG_USEC` (for this process only, when
/// `WATCHDOG_PID` names another process the watchdog is someone else's).
public struct SystemdNotifier: Sendable {
    /// The notification socket's address (`/run/systemd/notify`, or `@name` for an abstract socket);
    /// nil when the process does not run under systemd.
    public let socketPath: String?
    /// How often systemd expects `WATCHDOG=1`; nil when the unit has no watchdog.
    public let watchdogTimeout: Duration?

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from `environment` (the process's own
    /// by default); `pid` is this process's id, compared with `WATCHDOG_PID`.
    public init(environment: [String: String]? = nil, pid: Int32? = nil) {
        let environment = environment ?? ProcessInfo.processInfo.environment
        let pid = pid ?? getpid()
        let path = environment["NOTIFY_SOCKET"] ?? ""
        socketPath = path.isEmpty ? nil : path
        watchdogTimeout = SystemdNotifier.watchdogTimeout(usec: environment["WATCHDOG_USEC"],
                                                          watchdogPID: environment["WATCHDOG_PID"], pid: pid)
    }

    /// True when notifications go somewhere.
    public var isActive: Bool { socketPath != nil }

    /// When to send `WATCHDOG=1`: half the timeout, as systemd recommends; nil without a watchdog.
    public var keepAliveInterval: Duration? { watchdogTimeout.map { $0 / 2 } }

    /// Parses `WATCHDOG_USEC` (a positive count of microseconds). A `WATCHDOG_PID` naming another process
    /// means the watchdog is not this process's; malformed or zero values mean no watchdog.
    public static func watchdogTimeout(usec: String?, watchdogPID: String?, pid: Int32) -> Duration? {
        guard let usec, let value = UInt64(usec.trimmingCharacters(in: .whitespaces)), value > 0 else { return nil }
        if let watchdogPID, !watchdogPID.isEmpty {
            guard let owner = Int32(watchdogPID.trimmingCharacters(in: .whitespaces)), owner == pid else { return nil }
        }
        return .microseconds(Int64(clamping: value))
    }

    /// The service finished starting; `status` is shown by `systemctl status`.
    public func ready(status: String? = nil) throws(SystemdNotifyError) {
        try send(["READY=1"] + (status.map { ["STATUS=\($0)"] } ?? []))
    }

    /// Keeps the watchdog from restarting the service.
    public func watchdog() throws(SystemdNotifyError) { try send(["WATCHDOG=1"]) }

    /// A one-line status for `systemctl status` (newlines are replaced: one datagram, one line per key).
    public func status(_ text: String) throws(SystemdNotifyError) { try send(["STATUS=\(text)"]) }

    /// The service is stopping.
    public func stopping() throws(SystemdNotifyError) { try send(["STOPPING=1"]) }

    /// Sends assignments (`KEY=VALUE`) as one datagram; does nothing outside systemd.
    public func send(_ assignments: [String]) throws(SystemdNotifyError) {
        guard let socketPath else { return }
        let message = assignments.map { $0.replacingOccurrences(of: "\n", with: " ") }.joined(separator: "\n")
        try SystemdNotifier.sendDatagram(Array(message.utf8), to: socketPath)
    }

    /// The socket address bytes for `path`: a leading `@` marks an abstract name (first byte NUL,
    /// no terminator); a file path is NUL-terminated. Nil when it does not fit `sun_path`.
    static func addressBytes(for path: String) -> [UInt8]? {
        var bytes = Array(path.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 } else { bytes.append(0) }
        let capacity = MemoryLayout.size(ofValue: sockaddr_un().sun_path)
        guard !bytes.isEmpty, bytes.count <= capacity, path.hasPrefix("@") || path.hasPrefix("/") else { return nil }
        return bytes
    }

    private static func sendDatagram(_ payload: [UInt8], to path: String) throws(SystemdNotifyError) {
        guard let pathBytes = addressBytes(for: path) else { throw SystemdNotifyError(socket: path, call: "address", errno: EINVAL) }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemdNotifyError(socket: path, call: "socket", errno: errno) }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in pathBytes.enumerated() { raw[i] = b }
        }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + pathBytes.count)
        var result: Int
        repeat {
            result = payload.withUnsafeBytes { body in
                withUnsafePointer(to: &address) { pointer in
                    pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, body.baseAddress, body.count, Int32(MSG_NOSIGNAL), $0, length) }
                }
            }
        } while result < 0 && errno == EINTR
        guard result == payload.count else { throw SystemdNotifyError(socket: path, call: "sendto", errno: result < 0 ? errno : EMSGSIZE) }
    }
}

/// A notification that could not reach systemd; the service keeps running (systemd will notice a
/// missing `READY=1` or `WATCHDOG=1` itself and restart it).
public struct SystemdNotifyError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The `NOTIFY_SOCKET` address.
    public var socket: String
    /// The call that failed (`socket`, `sendto`, or `address` for an unusable address).
    public var call: String
    /// The C error number.
    public var errno: Int32

    public var description: String {
        let reason = call == "address"
            ? "NOTIFY_SOCKET must be an absolute path or an @abstract name of at most 107 bytes"
            : String(cString: strerror(errno))
        return "systemd notification to \(socket) failed in \(call): \(reason); check the unit's NotifyAccess= and that systemd's notify socket exists"
    }
}
