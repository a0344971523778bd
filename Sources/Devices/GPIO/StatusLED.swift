public import BoxConfig
import Foundation
import Synchronization
#if canImport(Glibc)
internal import Glibc
#endif

/// What the raise-hand LED says to the pupils.
public enum LEDPattern: String, Sendable, CaseIterable, Codable {
    /// Nothing pending.
    case off
    /// A hand is raised and waits for the teacher (1 Hz).
    case slowBlink = "slow-blink"
    /// The teacher granted the floor.
    case on
    /// The box has a fault (4 Hz).
    case fastBlink = "fast-blink"

    /// Half the blink period, nil for a steady pattern.
    public var halfPeriodNanoseconds: Int64? {
        switch self {
        case .off, .on: return nil
        case .slowBlink: return 500_000_000
        case .fastBlink: return 125_000_000
        }
    }

    /// The LED's level `elapsed` nanoseconds after the pattern started (blinks start lit, so a change
    /// shows at once), and when the level next changes (nil: never).
    public func level(elapsed: Int64) -> (lit: Bool, nextChange: Int64?) {
        guard let half = halfPeriodNanoseconds else { return (self == .on, nil) }
        let phase = max(0, elapsed) / half
        return (phase % 2 == 0, (phase + 1) * half)
    }
}

/// The raise-hand LED on a GPIO line, driven by a small thread that plays the current pattern. Setting
/// the pattern never blocks; on `close` (or deinit) the LED is switched off and the line given back.
public final class StatusLED: Sendable {
    /// The chip label and line.
    public let device: String
    private let player: LEDPlayer
    private let line: GPIOLineRequest

    /// Requests the profile's LED line (driven off) and starts the pattern thread.
    public init(spec: GPIOSpec, driver: any GPIODriver = LibgpiodDriver(), consumer: String = "classbox-led") throws(GPIOError) {
        guard let label = spec.chipLabel, let offset = spec.ledLine else {
            throw GPIOError(kind: .notFound, device: "LED", call: "profile", errno: nil,
                            detail: "the board profile's [gpio] needs chip_label and led_line for the LED")
        }
        let chip = try ClassroomGPIO.findChip(label: label, driver: driver)
        let device = "\(label) (\(chip.name)) line \(offset)"
        guard offset < chip.lines.count else {
            throw GPIOError(kind: .refused, device: device, call: "gpiod_chip_get_line", errno: nil,
                            detail: "the chip has \(chip.lines.count) lines; fix led_line in the board profile")
        }
        let id: GPIORequestID
        do {
            id = try driver.requestOutput(path: chip.path, offset: offset, consumer: consumer, activeLow: spec.ledActiveLow, value: false)
        } catch {
            throw GPIOError.from(error, device: device, call: "request output")
        }
        self.device = device
        line = GPIOLineRequest(driver: driver, id: id, device: device)
        player = LEDPlayer(driver: driver, id: id, device: device)
        let player = self.player
        let thread = Thread { player.play() }
        thread.name = "classbox-led"
        thread.start()
    }

    // The thread holds the player, never this object, so dropping the LED ends the thread, switches
    // the LED off and then releases the line.
    deinit { player.stop() }

    /// The pattern shown now; setting it restarts blinking from a lit phase.
    public var pattern: LEDPattern {
        get { player.state.withLock { $0.pattern } }
        set { player.state.withLock { $0.pattern = newValue; $0.generation += 1 } }
    }

    /// The first failure to drive the line, if any (the thread keeps trying).
    public var failure: GPIOError? { player.state.withLock { $0.failure } }

    /// The line's logical level as the kernel has it now.
    public func level() throws(GPIOError) -> Bool {
        do { return try player.driver.value(line.id) } catch { throw GPIOError.from(error, device: device, call: "get value") }
    }

    /// Stops the pattern and switches the LED off (idempotent); the line is given back when the LED is dropped.
    public func close() { player.stop() }
}

/// The pattern thread's side of the LED.
private final class LEDPlayer: Sendable {
    let driver: any GPIODriver
    let id: GPIORequestID
    let device: String
    let state = Mutex<(pattern: LEDPattern, generation: Int, failure: GPIOError?)>((.off, 0, nil))
    private let running = Atomic<Bool>(true)
    private let stopped = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)

    init(driver: any GPIODriver, id: GPIORequestID, device: String) {
        self.driver = driver
        self.id = id
        self.device = device
    }

    func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        running.store(false, ordering: .releasing)
        finished.wait()
        try? driver.setValue(id, false)
    }

    func play() {
        defer { finished.signal() }
        var generation = -1
        var start: Int64 = 0
        var lit: Bool? = nil
        while running.load(ordering: .acquiring) {
            let (pattern, current) = state.withLock { ($0.pattern, $0.generation) }
            let now = SystemCall.monotonicNanoseconds()
            if current != generation {
                generation = current
                start = now
            }
            let (level, next) = pattern.level(elapsed: now - start)
            if level != lit {
                do {
                    try driver.setValue(id, level)
                    lit = level
                } catch {
                    let failure = GPIOError.from(error, device: device, call: "set value")
                    state.withLock { if $0.failure == nil { $0.failure = failure } }
                }
            }
            // Wake for the next change, and at least every 20 ms to notice a new pattern.
            let wait = min(20_000_000, max(1_000_000, next.map { start + $0 - now } ?? 20_000_000))
            usleep(UInt32(wait / 1000))
        }
    }
}
