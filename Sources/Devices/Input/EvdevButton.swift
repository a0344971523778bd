public import BoxConfig
internal import CV4L2
#if canImport(Glibc)
internal import Glibc
#endif

/// An input device held open; closed when this value ends.
struct InputDeviceHandle: ~Copyable {
    let fd: Int32
    deinit { close(fd) }
}

/// The raise-hand button on a board that wires it as a key (`gpio-keys` in the device tree): the input
/// device found by name, presses and releases of the profile's key code, debounced in software as the
/// GPIO backend does (gpio-keys debounces too; a second window costs nothing).
public final class EvdevButton: RaiseHandButton {
    public let device: String
    private let handle: InputDeviceHandle
    private let keyCode: UInt16
    private var debouncer: ButtonDebouncer
    private var level = false
    private var queued: [ButtonEvent] = []

    /// Opens the input device named by the profile's `evdev_name`.
    public convenience init(spec: GPIOSpec) throws(GPIOError) {
        guard let name = spec.evdevName, let code = spec.evdevKeyCode else {
            throw GPIOError(kind: .notFound, device: "button", call: "profile", errno: nil,
                            detail: "the board profile's [gpio] needs evdev_name and evdev_key_code for the evdev backend")
        }
        let (fd, path) = try EvdevButton.open(named: name)
        self.init(fd: fd, device: "\(path) (\(name))", keyCode: code, debounceMs: spec.debounceMs)
    }

    /// Reads key events from an open descriptor (a device, or a pipe in tests); takes ownership of `fd`.
    init(fd: Int32, device: String, keyCode: Int, debounceMs: Int) {
        handle = InputDeviceHandle(fd: fd)
        self.device = device
        self.keyCode = UInt16(truncatingIfNeeded: keyCode)
        debouncer = ButtonDebouncer(windowNanoseconds: Int64(debounceMs) * 1_000_000, pressed: false)
        // Event times on CLOCK_MONOTONIC like the GPIO backend's (a pipe refuses: then read times are used).
        var clock = CLOCK_MONOTONIC
        _ = try? SystemCall.check { cb_ioctl(fd, cb_EVIOCSCLOCKID(), &clock) }
    }

    /// Input devices present now, by path and name.
    public static func devices() -> [(path: String, name: String)] {
        guard let dir = opendir("/dev/input") else { return [] }
        defer { closedir(dir) }
        var result: [(String, String)] = []
        while let entry = readdir(dir) {
            let file = cString(of: &entry.pointee.d_name)
            guard file.hasPrefix("event") else { continue }
            let path = "/dev/input/" + file
            guard let fd = try? SystemCall.check({ Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK) }) else { continue }
            defer { close(fd) }
            if let name = try? deviceName(fd) { result.append((path, name)) }
        }
        return result.sorted { $0.0 < $1.0 }
    }

    static func deviceName(_ fd: Int32) throws(Errno) -> String {
        var buffer = [UInt8](repeating: 0, count: 256)
        _ = try SystemCall.check { buffer.withUnsafeMutableBytes { cb_ioctl(fd, cb_EVIOCGNAME(255), $0.baseAddress) } }
        return String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self)
    }

    static func open(named name: String) throws(GPIOError) -> (Int32, String) {
        let found = devices()
        guard let match = found.first(where: { $0.name == name }) ?? found.first(where: { $0.name.contains(name) }) else {
            throw GPIOError(kind: .notFound, device: "input device \"\(name)\"", call: "EVIOCGNAME", errno: nil,
                            detail: "no input device has the board profile's evdev_name; devices present: "
                                + (found.isEmpty ? "none (or no permission: the service user needs the 'input' group)"
                                    : found.map { "\($0.path) \"\($0.name)\"" }.joined(separator: ", ")))
        }
        do {
            let fd = try SystemCall.check { Glibc.open(match.path, O_RDONLY | O_CLOEXEC | O_NONBLOCK) }
            return (fd, match.path)
        } catch {
            throw GPIOError.from(error, device: "\(match.path) (\(name))", call: "open", group: "input")
        }
    }

    public func next(timeoutNanoseconds: Int64) throws(GPIOError) -> ButtonEvent? {
        let end = SystemCall.monotonicNanoseconds() + max(0, timeoutNanoseconds)
        while true {
            if !queued.isEmpty { return queued.removeFirst() }
            let now = SystemCall.monotonicNanoseconds()
            if let deadline = debouncer.deadline, now >= deadline {
                if let event = debouncer.settle(level: level, at: now) { return event }
                continue
            }
            if now >= end { return nil }
            let until = min(end, debouncer.deadline ?? end)
            do {
                guard try SystemCall.waitReadable(handle.fd, timeoutMs: Int32(clamping: (until - now + 999_999) / 1_000_000)) else { continue }
                try readEvents()
            } catch {
                throw GPIOError.from(error, device: device, call: "read", group: "input")
            }
        }
    }

    private func readEvents() throws(Errno) {
        var events = [input_event](repeating: input_event(), count: 16)
        let size = MemoryLayout<input_event>.stride
        let fd = handle.fd
        let n = try SystemCall.check { events.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) } }
        if n == 0 { throw Errno.noDevice }  // the writer (or the device) went away
        for event in events.prefix(n / size) where event.type == UInt16(EV_KEY) && event.code == keyCode && event.value != 2 {
            level = event.value == 1
            // The quiet window runs on the time of reading: event times may be on another clock.
            if let accepted = debouncer.edge(GPIOEdge(rising: level, nanoseconds: SystemCall.monotonicNanoseconds())) {
                queued.append(accepted)
            }
        }
    }
}
