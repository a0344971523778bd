@testable import BoxConfig
import CV4L2
import Foundation
import Testing
@testable import Devices
#if canImport(Glibc)
import Glibc
#endif

func gpioSpec(backend: GPIOSpec.Backend = .gpiod, label: String = "classbox-sim", button: Int = 0, led: Int? = 1,
              activeLow: Bool = false, debounceMs: Int = 30) -> GPIOSpec {
    GPIOSpec(backend: backend, chipLabel: label, buttonLine: button, ledLine: led, buttonActiveLow: activeLow, ledActiveLow: false,
             debounceMs: debounceMs, evdevName: nil, evdevKeyCode: nil)
}

/// Collects every event until the script has run out.
func drain(_ button: any RaiseHandButton) throws -> [ButtonEvent.Kind] {
    var kinds: [ButtonEvent.Kind] = []
    while let event = try button.next(timeoutNanoseconds: 2_000_000_000) { kinds.append(event.kind) }
    return kinds
}

@Suite("Raise-hand button and LED (scripted GPIO kernel)")
struct GPIOTests {
    @Test("a pressed button raises the hand once per press, however much it bounces", arguments: [1, 3, 7])
    func pressesCountOnce(presses: Int) throws {
        let gpio = ScriptedGPIO.board()
        for i in 0..<presses { gpio.press(at: Int64(100 + i * 400) * 1_000_000, holdMs: 150, bounces: 4) }
        let button = try GPIOButton(spec: gpioSpec(), driver: gpio)
        #expect(!button.kernelDebounce)
        let kinds = try drain(button)
        #expect(kinds == Array(repeating: [ButtonEvent.Kind.pressed, .released], count: presses).flatMap { $0 })
    }

    @Test("a blip shorter than the debounce window is not a press")
    func blipIgnored() throws {
        let gpio = ScriptedGPIO.board()
        gpio.script([(100_000_000, true), (110_000_000, false)])
        let button = try GPIOButton(spec: gpioSpec(debounceMs: 30), driver: gpio)
        #expect(try drain(button).isEmpty)
    }

    @Test("a press is accepted one debounce window after the last bounce")
    func acceptedAfterWindow() throws {
        let gpio = ScriptedGPIO.board()
        gpio.press(at: 100_000_000, holdMs: 500, bounces: 2)
        let button = try GPIOButton(spec: gpioSpec(debounceMs: 30), driver: gpio)
        let event = try #require(try button.next(timeoutNanoseconds: 1_000_000_000))
        #expect(event.kind == .pressed && event.nanoseconds == 100_000_000 + 4_000_000 + 30_000_000)
        #expect(button.isPressed)
    }

    @Test("when the kernel debounces (libgpiod v2), each edge is taken as it comes")
    func kernelDebounce() throws {
        let gpio = ScriptedGPIO.board()
        gpio.kernelDebounces = true
        gpio.script([(100_000_000, true), (300_000_000, false), (500_000_000, true), (700_000_000, false)])
        let button = try GPIOButton(spec: gpioSpec(), driver: gpio)
        #expect(button.kernelDebounce)
        #expect(try drain(button) == [.pressed, .released, .pressed, .released])
    }

    @Test("the profile's polarity and consumer reach the request; the line is given back when the button goes")
    func requestAndRelease() throws {
        let gpio = ScriptedGPIO.board()
        do {
            let button = try GPIOButton(spec: gpioSpec(button: 3, activeLow: true), driver: gpio)
            let request = try #require(gpio.requests[1])
            #expect(request.path == "/dev/gpiochip1" && request.offset == 3 && request.activeLow && !request.output)
            withExtendedLifetime(button) { #expect(gpio.released.isEmpty) }
        }
        #expect(gpio.released == [1])
    }

    @Test("the chip is found by label; a missing label lists the chips present")
    func chipByLabel() throws {
        let gpio = ScriptedGPIO.board(label: "gpio-sim.0-node0")
        #expect {
            _ = try GPIOButton(spec: gpioSpec(), driver: gpio)
        } throws: { error in
            let e = error as? GPIOError
            return e?.kind == .notFound && e!.description.contains("classbox-sim") && e!.description.contains("gpiochip1 \"gpio-sim.0-node0\"")
        }
    }

    @Test("a chip that cannot be opened is named with the group the service needs")
    func unreadableChip() {
        let gpio = ScriptedGPIO.board()
        gpio.deniedPaths = ["/dev/gpiochip1"]
        #expect {
            _ = try GPIOButton(spec: gpioSpec(), driver: gpio)
        } throws: { "\($0)".contains("/dev/gpiochip1 (unreadable: EACCES") && "\($0)".contains("'gpio' group") }
    }

    @Test("a line held by another program is reported as busy with what to do")
    func busyLine() {
        let gpio = ScriptedGPIO.board()
        gpio.busyOffsets = [0]
        #expect {
            _ = try GPIOButton(spec: gpioSpec(), driver: gpio)
        } throws: { error in
            let e = error as? GPIOError
            return e?.kind == .busy && e!.description.contains("classbox-sim (gpiochip1) line 0") && e!.description.contains("EBUSY")
        }
    }

    @Test("a line offset beyond the chip is refused naming the profile key")
    func badOffset() {
        #expect {
            _ = try GPIOButton(spec: gpioSpec(button: 12), driver: ScriptedGPIO.board(lines: 8))
        } throws: { ($0 as? GPIOError)?.kind == .refused && "\($0)".contains("button_line") }
    }

    @Test("LED patterns: steady on and off, 1 Hz and 4 Hz blinks that start lit", arguments: [
        (LEDPattern.off, Int64(0), false), (.on, 0, true), (.on, 5_000_000_000, true),
        (.slowBlink, 0, true), (.slowBlink, 499_000_000, true), (.slowBlink, 500_000_000, false), (.slowBlink, 1_000_000_000, true),
        (.fastBlink, 0, true), (.fastBlink, 125_000_000, false), (.fastBlink, 250_000_000, true),
    ])
    func patternLevels(pattern: LEDPattern, elapsed: Int64, lit: Bool) {
        #expect(pattern.level(elapsed: elapsed).lit == lit)
    }

    @Test("the LED thread drives the line for each pattern, and switches it off and gives it back at the end")
    func ledDrivesLine() throws {
        let gpio = ScriptedGPIO.board()
        do {
            let led = try StatusLED(spec: gpioSpec(), driver: gpio)
            led.pattern = .on
            usleep(80_000)
            #expect(gpio.driven.last?.value == true)
            led.pattern = .fastBlink
            usleep(600_000)
            let toggles = gpio.driven.count
            #expect(toggles >= 4, "fast blink toggled \(toggles) times in 0.6 s")
            led.pattern = .off
            usleep(80_000)
            #expect(gpio.driven.last?.value == false)
            led.pattern = .on
            usleep(50_000)
        }
        #expect(gpio.driven.last?.value == false, "dropping the LED switches it off")
        #expect(gpio.released == [1])
    }

    @Test("the board's GPIO backend decides what is opened")
    func backends() throws {
        #expect(try ClassroomGPIO.openButton(gpioSpec(backend: .none), driver: ScriptedGPIO.board()) == nil)
        #expect(try ClassroomGPIO.openButton(gpioSpec(backend: .sim), driver: ScriptedGPIO.board()) == nil)
        #expect(try ClassroomGPIO.openButton(gpioSpec(), driver: ScriptedGPIO.board()) != nil)
        #expect(try ClassroomGPIO.openLED(gpioSpec(led: nil), driver: ScriptedGPIO.board()) == nil)
    }

    @Test("the debouncer accepts a level once it has been quiet for the window")
    func debouncer() {
        var d = ButtonDebouncer(windowNanoseconds: 30, pressed: false)
        #expect(d.edge(GPIOEdge(rising: true, nanoseconds: 100)) == nil)
        #expect(d.edge(GPIOEdge(rising: false, nanoseconds: 101)) == nil)
        #expect(d.edge(GPIOEdge(rising: true, nanoseconds: 102)) == nil)
        #expect(d.deadline == 132)
        #expect(d.settle(level: true, at: 132) == ButtonEvent(.pressed, at: 132))
        #expect(d.deadline == nil && d.pressed)
    }
}

@Suite("Raise-hand button as an input key (evdev over a pipe)")
struct EvdevButtonTests {
    func event(_ type: Int32, _ code: Int32, _ value: Int32) -> input_event {
        var e = input_event()
        e.type = UInt16(type)
        e.code = UInt16(code)
        e.value = value
        return e
    }

    @Test("key presses of the profile's code are debounced; other keys and repeats are ignored")
    func keys() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        let button = EvdevButton(fd: fds[0], device: "pipe (test key)", keyCode: Int(KEY_F13), debounceMs: 20)
        func send(_ events: [input_event]) {
            var copy = events
            let n = copy.withUnsafeMutableBytes { write(fds[1], $0.baseAddress, $0.count) }
            #expect(n == events.count * MemoryLayout<input_event>.stride)
        }
        let sync = event(EV_SYN, SYN_REPORT, 0)
        send([event(EV_KEY, KEY_F13, 1), sync, event(EV_KEY, KEY_F13, 0), sync, event(EV_KEY, KEY_F13, 1), sync,
              event(EV_KEY, KEY_A, 1), sync, event(EV_KEY, KEY_F13, 2), sync])
        #expect(try button.next(timeoutNanoseconds: 500_000_000)?.kind == .pressed)
        #expect(try button.next(timeoutNanoseconds: 100_000_000) == nil)
        send([event(EV_KEY, KEY_F13, 0), sync])
        #expect(try button.next(timeoutNanoseconds: 500_000_000)?.kind == .released)
        close(fds[1])
        #expect {
            _ = try button.next(timeoutNanoseconds: 500_000_000)
        } throws: { ($0 as? GPIOError)?.kind == .gone }
    }

    @Test("a missing input device lists the devices present")
    func missing() {
        var spec = gpioSpec(backend: .evdev)
        spec.evdevName = "no such keypad"
        spec.evdevKeyCode = 183
        #expect { _ = try EvdevButton(spec: spec) } throws: { ($0 as? GPIOError)?.kind == .notFound }
    }
}
