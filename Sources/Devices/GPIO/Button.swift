public import BoxConfig

/// A press or release of the raise-hand button, after debouncing.
public struct ButtonEvent: Sendable, Equatable, CustomStringConvertible {
    /// Which way the button went.
    public enum Kind: String, Sendable, Equatable { case pressed, released }
    /// Which way the button went.
    public var kind: Kind
    /// When it was accepted, CLOCK_MONOTONIC nanoseconds.
    public var nanoseconds: Int64

    /// An event from its values.
    public init(_ kind: Kind, at nanoseconds: Int64) {
        self.kind = kind
        self.nanoseconds = nanoseconds
    }

    public var description: String { "\(kind.rawValue) at \(nanoseconds) ns" }
}

/// Turns the edges of a bouncing contact into clean presses and releases. In software mode (libgpiod
/// v1, evdev) every edge restarts a quiet window; when the line has been quiet for the whole window its
/// level is read and accepted if it differs from the last accepted one, so a bounce burst counts once
/// and a blip shorter than the window not at all. When the kernel already debounces (libgpiod v2), the
/// window is zero and each edge is a change of level.
public struct ButtonDebouncer: Sendable, Equatable {
    /// The quiet time in nanoseconds (0: the edges are already debounced).
    public let windowNanoseconds: Int64
    /// The last accepted state.
    public private(set) var pressed: Bool
    /// When the line will have been quiet for the window, if an edge is waiting to settle.
    public private(set) var deadline: Int64?

    /// A debouncer starting from the line's current state.
    public init(windowNanoseconds: Int64, pressed: Bool) {
        self.windowNanoseconds = windowNanoseconds
        self.pressed = pressed
    }

    /// An edge arrived; returns an event at once only when the kernel debounces.
    public mutating func edge(_ edge: GPIOEdge) -> ButtonEvent? {
        if windowNanoseconds == 0 { return accept(edge.rising, at: edge.nanoseconds) }
        deadline = max(deadline ?? .min, edge.nanoseconds + windowNanoseconds)
        return nil
    }

    /// The window has passed (`now >= deadline`): `level` is the line's logical level now.
    public mutating func settle(level: Bool, at now: Int64) -> ButtonEvent? {
        deadline = nil
        return accept(level, at: now)
    }

    private mutating func accept(_ level: Bool, at time: Int64) -> ButtonEvent? {
        guard level != pressed else { return nil }
        pressed = level
        return ButtonEvent(level ? .pressed : .released, at: time)
    }
}

/// The raise-hand button, whichever way the board wires it (a GPIO line or a `gpio-keys` input device).
public protocol RaiseHandButton: AnyObject {
    /// What the button is, for logs (`classbox-sim line 0`, `/dev/input/event2 (gpio-keys)`).
    var device: String { get }
    /// The next debounced press or release, or nil when none came within `timeoutNanoseconds`.
    func next(timeoutNanoseconds: Int64) throws(GPIOError) -> ButtonEvent?
}

/// Opens the board's button and LED as the profile describes them.
public enum ClassroomGPIO {
    /// The button for the profile's backend: nil when the board has none (`none`, `sim`).
    public static func openButton(_ spec: GPIOSpec, driver: any GPIODriver = LibgpiodDriver()) throws(GPIOError) -> (any RaiseHandButton)? {
        switch spec.backend {
        case .gpiod: return try GPIOButton(spec: spec, driver: driver)
        case .evdev: return try EvdevButton(spec: spec)
        case .sim, .none: return nil
        }
    }

    /// The LED when the profile has one on a GPIO line (`led_line`); nil otherwise.
    public static func openLED(_ spec: GPIOSpec, driver: any GPIODriver = LibgpiodDriver()) throws(GPIOError) -> StatusLED? {
        guard spec.ledLine != nil, spec.chipLabel != nil, spec.backend == .gpiod || spec.backend == .evdev else { return nil }
        return try StatusLED(spec: spec, driver: driver)
    }

    /// Finds the chip with `label` among the driver's chips.
    static func findChip(label: String, driver: any GPIODriver) throws(GPIOError) -> GPIOChipInfo {
        var present: [String] = []
        for path in driver.chipPaths() {
            do {
                let info = try driver.chipInfo(path: path)
                if info.label == label { return info }
                present.append("\(info.name) \"\(info.label)\"")
            } catch {
                // A chip we may not open could be the one: say so rather than "not found".
                present.append("\(path) (unreadable: \(error)\(error == .permissionDenied ? "; the service user needs the 'gpio' group" : ""))")
            }
        }
        throw GPIOError(kind: .notFound, device: "GPIO chip \"\(label)\"", call: "gpiod_chip_open", errno: nil,
                        detail: "no GPIO chip has the board profile's chip_label; chips present: "
                            + (present.isEmpty ? "none (is the GPIO driver loaded?)" : present.joined(separator: ", ")))
    }
}

/// A line held from the kernel; given back when this value ends, so a restarted service never finds its
/// own line latched (the kernel also releases it when the process dies: the descriptors are CLOEXEC).
struct GPIOLineRequest: ~Copyable {
    let driver: any GPIODriver
    let id: GPIORequestID
    let device: String

    deinit { driver.release(id) }
}

/// The raise-hand button on a GPIO line: the chip found by label, the line requested for both edges with
/// the profile's polarity, debounced by the kernel (libgpiod v2) or here (v1).
public final class GPIOButton: RaiseHandButton {
    public let device: String
    /// Whether the kernel debounces the line (libgpiod v2) rather than this class.
    public let kernelDebounce: Bool
    private let line: GPIOLineRequest
    private let driver: any GPIODriver
    private var debouncer: ButtonDebouncer
    private var queued: [ButtonEvent] = []

    /// Requests the profile's button line.
    public init(spec: GPIOSpec, driver: any GPIODriver = LibgpiodDriver(), consumer: String = "classbox-button") throws(GPIOError) {
        guard let label = spec.chipLabel, let offset = spec.buttonLine else {
            throw GPIOError(kind: .notFound, device: "button", call: "profile", errno: nil,
                            detail: "the board profile's [gpio] needs chip_label and button_line for the gpiod backend")
        }
        let chip = try ClassroomGPIO.findChip(label: label, driver: driver)
        let device = "\(label) (\(chip.name)) line \(offset)"
        guard offset < chip.lines.count else {
            throw GPIOError(kind: .refused, device: device, call: "gpiod_chip_get_line", errno: nil,
                            detail: "the chip has \(chip.lines.count) lines; fix button_line in the board profile")
        }
        let debounceUs = spec.debounceMs * 1000
        let requested: (request: GPIORequestID, kernelDebounce: Bool)
        do {
            requested = try driver.requestEvents(path: chip.path, offset: offset, consumer: consumer, activeLow: spec.buttonActiveLow,
                                                 debounceMicroseconds: debounceUs)
        } catch {
            throw GPIOError.from(error, device: device, call: "request both-edge events")
        }
        self.device = device
        self.driver = driver
        line = GPIOLineRequest(driver: driver, id: requested.request, device: device)
        kernelDebounce = requested.kernelDebounce
        let level: Bool
        do { level = try driver.value(requested.request) } catch { throw GPIOError.from(error, device: device, call: "get value") }
        debouncer = ButtonDebouncer(windowNanoseconds: kernelDebounce ? 0 : Int64(debounceUs) * 1000, pressed: level)
    }

    /// Whether the button is held down now (the last debounced state).
    public var isPressed: Bool { debouncer.pressed }

    public func next(timeoutNanoseconds: Int64) throws(GPIOError) -> ButtonEvent? {
        let end = driver.now() + max(0, timeoutNanoseconds)
        while true {
            if !queued.isEmpty { return queued.removeFirst() }
            let now = driver.now()
            if let deadline = debouncer.deadline, now >= deadline {
                let level: Bool
                do { level = try driver.value(line.id) } catch { throw GPIOError.from(error, device: device, call: "get value") }
                if let event = debouncer.settle(level: level, at: now) { return event }
                continue
            }
            if now >= end { return nil }
            let until = min(end, debouncer.deadline ?? end)
            let edges: [GPIOEdge]
            do { edges = try driver.waitEdges(line.id, timeoutNanoseconds: until - now) } catch {
                throw GPIOError.from(error, device: device, call: "read edge events")
            }
            for edge in edges {
                if let event = debouncer.edge(edge) { queued.append(event) }
            }
        }
    }
}
