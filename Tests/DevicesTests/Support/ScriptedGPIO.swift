import Devices
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A scripted GPIO kernel: chips with labels, a button whose logical level follows a timeline, a manual
/// clock that jumps to the next scripted edge (or the end of a wait), and a record of what the firmware
/// drove and released. The kernel's debounce (libgpiod v2) can be switched on.
final class ScriptedGPIO: GPIODriver, @unchecked Sendable {
    // @unchecked: every member is used under `lock`.
    struct Request { var path: String; var offset: Int; var output: Bool; var activeLow: Bool; var consumer: String }
    private let lock = Mutex(())
    private var chips: [GPIOChipInfo]
    private var timeline: [(at: Int64, level: Bool)] = []
    private var delivered = 0
    private var clock: Int64 = 0
    private var next = 0
    var requests: [Int: Request] = [:]
    var released: [Int] = []
    var driven: [(at: Int64, value: Bool)] = []
    var kernelDebounces = false
    var busyOffsets: Set<Int> = []
    var deniedPaths: Set<String> = []

    init(chips: [GPIOChipInfo]) { self.chips = chips }

    /// Two chips, the second labelled like the qemu board's simulated bank.
    static func board(label: String = "classbox-sim", lines: Int = 8) -> ScriptedGPIO {
        let line = { (i: Int) in GPIOLineInfo(offset: i, name: "", consumer: "", used: false, output: false, activeLow: false) }
        return ScriptedGPIO(chips: [
            GPIOChipInfo(path: "/dev/gpiochip0", name: "gpiochip0", label: "pinctrl-bcm2711", lines: (0..<58).map(line)),
            GPIOChipInfo(path: "/dev/gpiochip1", name: "gpiochip1", label: label, lines: (0..<lines).map(line)),
        ])
    }

    /// Scripts the button's logical level from `at` nanoseconds on.
    func script(_ changes: [(at: Int64, level: Bool)]) { lock.withLock { _ in timeline += changes } }

    /// A press at `at` that bounces `bounces` times 1 ms apart, held for `holdMs`, and a bouncing release.
    func press(at: Int64, holdMs: Int64, bounces: Int = 3) {
        var changes: [(Int64, Bool)] = []
        for i in 0..<(2 * bounces + 1) { changes.append((at + Int64(i) * 1_000_000, i % 2 == 0)) }
        let release = at + holdMs * 1_000_000
        for i in 0..<(2 * bounces + 1) { changes.append((release + Int64(i) * 1_000_000, i % 2 == 1)) }
        script(changes)
    }


    func chipPaths() -> [String] { lock.withLock { _ in chips.map(\.path) } }

    func chipInfo(path: String) throws(Errno) -> GPIOChipInfo {
        if lock.withLock({ _ in deniedPaths.contains(path) }) { throw Errno.permissionDenied }
        guard let chip = lock.withLock({ _ in chips.first { $0.path == path } }) else { throw Errno.noEntry }
        return chip
    }

    func requestEvents(path: String, offset: Int, consumer: String, activeLow: Bool, debounceMicroseconds: Int) throws(Errno)
        -> (request: GPIORequestID, kernelDebounce: Bool) {
        try lock.withLock { _ throws(Errno) in
            if busyOffsets.contains(offset) { throw Errno.busy }
            next += 1
            requests[next] = Request(path: path, offset: offset, output: false, activeLow: activeLow, consumer: consumer)
            return (GPIORequestID(rawValue: next), kernelDebounces)
        }
    }

    func requestOutput(path: String, offset: Int, consumer: String, activeLow: Bool, value: Bool) throws(Errno) -> GPIORequestID {
        try lock.withLock { _ throws(Errno) in
            if busyOffsets.contains(offset) { throw Errno.busy }
            next += 1
            requests[next] = Request(path: path, offset: offset, output: true, activeLow: activeLow, consumer: consumer)
            driven.append((clock, value))
            return GPIORequestID(rawValue: next)
        }
    }

    func release(_ request: GPIORequestID) { lock.withLock { _ in released.append(request.rawValue) } }

    func value(_ request: GPIORequestID) throws(Errno) -> Bool {
        lock.withLock { _ in
            if requests[request.rawValue]?.output == true { return driven.last?.value ?? false }
            return timeline.last { $0.at <= clock }?.level ?? false
        }
    }

    func setValue(_ request: GPIORequestID, _ value: Bool) throws(Errno) {
        lock.withLock { _ in driven.append((SystemCallClock.now(), value)) }
    }

    func waitEdges(_ request: GPIORequestID, timeoutNanoseconds: Int64) throws(Errno) -> [GPIOEdge] {
        lock.withLock { _ in
            let end = clock + timeoutNanoseconds
            guard delivered < timeline.count, timeline[delivered].at <= end else {
                clock = end
                return []
            }
            // The kernel wakes the reader at the first edge; edges in the same instant come together.
            let first = timeline[delivered].at
            clock = max(clock, first)
            var edges: [GPIOEdge] = []
            while delivered < timeline.count, timeline[delivered].at <= clock {
                edges.append(GPIOEdge(rising: timeline[delivered].level, nanoseconds: timeline[delivered].at))
                delivered += 1
            }
            return edges
        }
    }

    func now() -> Int64 { lock.withLock { _ in clock } }
}

enum SystemCallClock {
    static func now() -> Int64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Int64(t.tv_sec) * 1_000_000_000 + Int64(t.tv_nsec)
    }
}
