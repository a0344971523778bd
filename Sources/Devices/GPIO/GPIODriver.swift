internal import CGpiod
import Synchronization
#if canImport(Glibc)
internal import Glibc
#endif

/// A GPIO chip as the kernel names it: the label is what board profiles match (stable across kernels,
/// unlike `gpiochipN`).
public struct GPIOChipInfo: Sendable, Equatable, Codable {
    /// The character device, e.g. `/dev/gpiochip0`.
    public var path: String
    /// The kernel's name, e.g. `gpiochip0`.
    public var name: String
    /// The driver's label, e.g. `pinctrl-bcm2711`, `classbox-sim`.
    public var label: String
    /// The chip's lines, by offset.
    public var lines: [GPIOLineInfo]

    /// A chip from its values.
    public init(path: String, name: String, label: String, lines: [GPIOLineInfo]) {
        self.path = path
        self.name = name
        self.label = label
        self.lines = lines
    }
}

/// One line of a GPIO chip as the kernel reports it.
public struct GPIOLineInfo: Sendable, Equatable, Codable {
    /// The line's offset on its chip.
    public var offset: Int
    /// The line's name from the device tree or driver (often empty).
    public var name: String
    /// Who holds it (`classbox`, a kernel driver), empty when free.
    public var consumer: String
    /// Whether some program or driver holds it.
    public var used: Bool
    /// Whether it is configured as an output.
    public var output: Bool
    /// Whether it is configured active-low.
    public var activeLow: Bool

    /// A line from its values.
    public init(offset: Int, name: String, consumer: String, used: Bool, output: Bool, activeLow: Bool) {
        self.offset = offset
        self.name = name
        self.consumer = consumer
        self.used = used
        self.output = output
        self.activeLow = activeLow
    }
}

/// An edge on a requested input line: `rising` means it became active (active-low already applied).
public struct GPIOEdge: Sendable, Equatable {
    /// True when the line became active, false when it became inactive.
    public var rising: Bool
    /// When, on CLOCK_MONOTONIC, in nanoseconds.
    public var nanoseconds: Int64

    /// An edge from its values.
    public init(rising: Bool, nanoseconds: Int64) {
        self.rising = rising
        self.nanoseconds = nanoseconds
    }
}

/// A requested line, as the driver numbers it.
public struct GPIORequestID: Sendable, Hashable {
    /// The driver's number for the request.
    public var rawValue: Int
    /// Wraps a driver's number.
    public init(rawValue: Int) { self.rawValue = rawValue }
}

/// The kernel's GPIO interface as the button and LED use it: the lowest seam, where tests put a
/// scripted fake and the firmware puts libgpiod (v1 or v2, chosen when it is built). Times are
/// CLOCK_MONOTONIC nanoseconds, so a fake can run a manual clock.
public protocol GPIODriver: AnyObject, Sendable {
    /// Paths of the GPIO chips present now.
    func chipPaths() -> [String]
    /// A chip's label, name and lines.
    func chipInfo(path: String) throws(Errno) -> GPIOChipInfo
    /// Requests an input reporting both edges; returns the request and whether the kernel debounces.
    func requestEvents(path: String, offset: Int, consumer: String, activeLow: Bool, debounceMicroseconds: Int) throws(Errno)
        -> (request: GPIORequestID, kernelDebounce: Bool)
    /// Requests an output driven to `value` (logical level).
    func requestOutput(path: String, offset: Int, consumer: String, activeLow: Bool, value: Bool) throws(Errno) -> GPIORequestID
    /// Gives a line back to the kernel.
    func release(_ request: GPIORequestID)
    /// The line's logical value.
    func value(_ request: GPIORequestID) throws(Errno) -> Bool
    /// Drives an output line to a logical value.
    func setValue(_ request: GPIORequestID, _ value: Bool) throws(Errno)
    /// Waits up to `timeoutNanoseconds` for edges and returns those queued (empty on timeout).
    func waitEdges(_ request: GPIORequestID, timeoutNanoseconds: Int64) throws(Errno) -> [GPIOEdge]
    /// The driver's clock (CLOCK_MONOTONIC for the real one).
    func now() -> Int64
}

/// libgpiod through the `CGpiod` shim: v1 (bookworm's 1.6) or v2 (trixie's 2.x), whichever the firmware
/// was built against; every call goes through `SystemCall`.
public final class LibgpiodDriver: GPIODriver {
    private struct Request: @unchecked Sendable {
        // Both pointers are owned by this driver and used under its lock.
        var chip: OpaquePointer
        var handle: UnsafeMutableRawPointer
        var offset: UInt32
    }
    private let requests = Mutex<(next: Int, open: [Int: Request])>((0, [:]))

    /// A driver over the GPIO chips in `/dev`.
    public init() {}

    /// The libgpiod API generation this firmware was built for (1 or 2).
    public static var apiVersion: Int { Int(cb_gpiod_api_version()) }

    public func chipPaths() -> [String] {
        guard let dir = opendir("/dev") else { return [] }
        defer { closedir(dir) }
        var paths: [String] = []
        while let entry = readdir(dir) {
            let name = cString(of: &entry.pointee.d_name)
            if name.hasPrefix("gpiochip") { paths.append("/dev/" + name) }
        }
        return paths.sorted { $0.count != $1.count ? $0.count < $1.count : $0 < $1 }
    }

    public func chipInfo(path: String) throws(Errno) -> GPIOChipInfo {
        let chip = try SystemCall.checkHandle { cb_gpio_chip_open(path) }
        defer { cb_gpio_chip_close(chip) }
        var label = [CChar](repeating: 0, count: 64), name = [CChar](repeating: 0, count: 64)
        var count: UInt32 = 0
        _ = try SystemCall.check { cb_gpio_chip_info(chip, &label, 64, &name, 64, &count) }
        var lines: [GPIOLineInfo] = []
        for offset in 0..<count {
            var info = cb_gpio_line_info()
            _ = try SystemCall.check { cb_gpio_get_line_info(chip, offset, &info) }
            lines.append(GPIOLineInfo(offset: Int(offset), name: cString(of: &info.name), consumer: cString(of: &info.consumer),
                                      used: info.used != 0, output: info.output != 0, activeLow: info.active_low != 0))
        }
        return GPIOChipInfo(path: path, name: String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self),
                            label: String(decoding: label.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self),
                            lines: lines)
    }

    public func requestEvents(path: String, offset: Int, consumer: String, activeLow: Bool, debounceMicroseconds: Int) throws(Errno)
        -> (request: GPIORequestID, kernelDebounce: Bool) {
        let chip = try SystemCall.checkHandle { cb_gpio_chip_open(path) }
        var kernelDebounce: Int32 = 0
        let handle: UnsafeMutableRawPointer
        do {
            handle = try SystemCall.checkHandle {
                cb_gpio_request_events(chip, UInt32(offset), consumer, activeLow ? 1 : 0, UInt(debounceMicroseconds), &kernelDebounce)
            }
        } catch {
            cb_gpio_chip_close(chip)
            throw error
        }
        return (store(Request(chip: chip, handle: handle, offset: UInt32(offset))), kernelDebounce != 0)
    }

    public func requestOutput(path: String, offset: Int, consumer: String, activeLow: Bool, value: Bool) throws(Errno) -> GPIORequestID {
        let chip = try SystemCall.checkHandle { cb_gpio_chip_open(path) }
        let handle: UnsafeMutableRawPointer
        do {
            handle = try SystemCall.checkHandle { cb_gpio_request_output(chip, UInt32(offset), consumer, activeLow ? 1 : 0, value ? 1 : 0) }
        } catch {
            cb_gpio_chip_close(chip)
            throw error
        }
        return store(Request(chip: chip, handle: handle, offset: UInt32(offset)))
    }

    private func store(_ request: Request) -> GPIORequestID {
        requests.withLock { state in
            state.next += 1
            state.open[state.next] = request
            return GPIORequestID(rawValue: state.next)
        }
    }

    private func lookup(_ id: GPIORequestID) -> Request {
        guard let request = requests.withLock({ $0.open[id.rawValue] }) else {
            preconditionFailure("GPIO request \(id.rawValue) used after release: this is a bug in classbox")
        }
        return request
    }

    public func release(_ id: GPIORequestID) {
        guard let request = requests.withLock({ $0.open.removeValue(forKey: id.rawValue) }) else { return }
        cb_gpio_release(request.handle)
        cb_gpio_chip_close(request.chip)
    }

    public func value(_ id: GPIORequestID) throws(Errno) -> Bool {
        let request = lookup(id)
        return try SystemCall.check { cb_gpio_get_value(request.handle, request.offset) } != 0
    }

    public func setValue(_ id: GPIORequestID, _ value: Bool) throws(Errno) {
        let request = lookup(id)
        _ = try SystemCall.check { cb_gpio_set_value(request.handle, request.offset, value ? 1 : 0) }
    }

    public func waitEdges(_ id: GPIORequestID, timeoutNanoseconds: Int64) throws(Errno) -> [GPIOEdge] {
        let request = lookup(id)
        let fd = try SystemCall.check { cb_gpio_request_fd(request.handle) }
        let timeoutMs = Int32(clamping: max(0, (timeoutNanoseconds + 999_999) / 1_000_000))
        guard try SystemCall.waitReadable(fd, timeoutMs: timeoutMs) else { return [] }
        var edges: [GPIOEdge] = []
        repeat {
            var edge = cb_gpio_edge()
            _ = try SystemCall.check { cb_gpio_read_edge(request.handle, &edge) }
            edges.append(GPIOEdge(rising: edge.rising != 0, nanoseconds: Int64(truncatingIfNeeded: edge.timestamp_ns)))
        } while try SystemCall.waitReadable(fd, timeoutMs: 0)
        return edges
    }

    public func now() -> Int64 { SystemCall.monotonicNanoseconds() }
}
