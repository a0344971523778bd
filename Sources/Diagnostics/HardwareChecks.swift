import BoxConfig
import Box
import Devices
import Foundation

/// The device-presence, camera and button/LED checks.
public enum HardwareChecks {
    // MARK: Devices present

    /// Are the sound cards, camera and GPIO chip the board profile names there, and what software runs.
    public static let devicesPresent = DiagnosticCheck(id: "devices", title: "Devices present", timeoutSeconds: 15) { check, context in
        let board = context.board
        let info = BuildInfo.current()
        var m = [Measurement("classbox", text: info.classbox), Measurement("kernel", text: "\(info.devices.kernel) \(info.devices.machine)"),
                 Measurement("libasound", text: info.devices.alsa), Measurement("libgpiod", text: "\(info.devices.gpiod) (v\(info.devices.gpiodAPI) API)"),
                 Measurement("opus", text: info.opus)]
        if let firmware = firmwareVersion() { m.append(Measurement("firmware", text: firmware)) }
        var found: [String] = [], missing: [(String, String)] = []
        if board.audio.backend == .alsa {
            let cards = SoundCard.list(probe: false)
            for (stream, names, device) in [(PCMStream.playback, board.audio.playbackCards, board.audio.playbackDevice),
                                            (PCMStream.capture, board.audio.captureCards, board.audio.captureDevice)] {
                let what = stream == .playback ? "speaker" : "microphone"
                do {
                    let name = try SoundCard.resolve(names: names, device: device, stream: stream, among: cards)
                    m.append(Measurement(what, text: name))
                    found.append("\(what) \(name)")
                } catch {
                    missing.append(("the \(what)'s sound card (\(names.joined(separator: " or ")))",
                                    "Plug in the USB speakerphone or check its cable (and that its driver is loaded); `classbox devices` lists the sound cards found (now: \(cards.isEmpty ? "none" : cards.map(\.id).joined(separator: ", "))). If the card is there under another name, add it to the board profile's playback_cards/capture_cards."))
                }
            }
        }
        if board.camera.backend == .v4l2 {
            let devices = Camera.list()
            do {
                let camera = try Camera.match(board.camera, among: devices)
                m.append(Measurement("camera", text: "\(camera.path) \(camera.card) (\(camera.driver))"))
                found.append("camera \(camera.card)")
            } catch {
                missing.append(("the camera\(board.camera.drivers.isEmpty ? "" : " (driver \(board.camera.drivers.joined(separator: " or ")))")",
                                "Plug the camera in (or check its cable); `classbox devices` lists the video devices found (now: \(devices.isEmpty ? "none" : devices.map { "\($0.path) \($0.driver)" }.joined(separator: ", ")))."))
            }
        }
        if board.gpio.backend == .gpiod, let label = board.gpio.chipLabel {
            let driver = LibgpiodDriver()
            let chips = driver.chipPaths().compactMap { try? driver.chipInfo(path: $0) }
            if let chip = chips.first(where: { $0.label == label }) {
                let lines = [board.gpio.buttonLine, board.gpio.ledLine].compactMap { $0 }
                let absent = lines.filter { $0 >= chip.lines.count }
                m.append(Measurement("gpio_chip", text: "\(chip.name) \"\(label)\", \(chip.lines.count) lines"))
                if absent.isEmpty {
                    found.append("GPIO chip \(label)")
                } else {
                    missing.append(("GPIO line \(absent.map(String.init).joined(separator: ", ")) on chip \"\(label)\"",
                                    "The chip has \(chip.lines.count) lines: fix button_line/led_line in the board profile."))
                }
            } else {
                missing.append(("the button's GPIO chip \"\(label)\"",
                                "Check the button board's connection and that its driver is loaded; chips present: \(chips.isEmpty ? "none" : chips.map { "\($0.name) \"\($0.label)\"" }.joined(separator: ", "))."))
            }
        }
        if board.audio.backend == .sim { found.append("simulated classroom") }
        if !missing.isEmpty {
            var remedies: [String] = []
            for (_, remedy) in missing where !remedies.contains(remedy) { remedies.append(remedy) }
            return check.result(.fail, "Missing: \(missing.map(\.0).joined(separator: "; ")).", remedy: remedies.joined(separator: " "), m)
        }
        return check.result(.pass, found.isEmpty ? "No devices expected on this board." : "Found \(found.joined(separator: ", ")).", m)
    }

    /// The board's firmware: the Raspberry Pi's device-tree model and firmware, a PC's BIOS version.
    static func firmwareVersion() -> String? {
        func read(_ path: String) -> String? {
            (try? String(contentsOfFile: path, encoding: .utf8)).map { $0.replacingOccurrences(of: "\0", with: "").trimmingCharacters(in: .whitespacesAndNewlines) }
                .flatMap { $0.isEmpty ? nil : $0 }
        }
        if let model = read("/proc/device-tree/model") { return model }
        if let vendor = read("/sys/class/dmi/id/bios_vendor"), let version = read("/sys/class/dmi/id/bios_version") { return "\(vendor) \(version)" }
        return nil
    }

    // MARK: Camera

    /// Streams the camera for a few seconds: the mode chosen, frames per second delivered, brightness and
    /// whether frames change.
    public static let camera = DiagnosticCheck(id: "camera", title: "Camera", timeoutSeconds: 20) { check, context in
        let spec = context.board.camera
        guard spec.backend == .v4l2 else {
            return check.result(.skip, spec.backend == .sim ? "Skipped: the simulated board has no camera." : "Skipped: this board has no camera.")
        }
        if context.whileRunning { return check.result(.skip, "Skipped: the classbox service is running and uses the camera (--while-running).") }
        let camera: Camera
        do throws(CameraError) { camera = try Camera(spec: spec, bufferCount: 4) } catch {
            return cameraResult(for: error, check: check)
        }
        let mode = camera.mode
        let wanted = Double(mode.interval.denominator) / Double(max(mode.interval.numerator, 1))
        var stamps: [Int64] = [], digests = Set<UInt64>(), brightness: [Double] = []
        let deadline = Date().addingTimeInterval(3)
        var timeouts = 0
        while Date() < deadline {
            let got: Bool
            do throws(CameraError) {
                got = try camera.withNextFrame(timeoutMs: 1000) { frame in
                    stamps.append(frame.nanoseconds)
                    digests.insert(digest(frame.bytes))
                    if let y = meanLuma(frame.bytes, fourcc: mode.fourcc, width: mode.width, height: mode.height) { brightness.append(y) }
                    return true
                } ?? false
            } catch {
                return cameraResult(for: error, check: check)
            }
            if !got { timeouts += 1; if timeouts >= 2 { break } }
        }
        var m = [Measurement("mode", text: mode.description), Measurement("device", text: "\(camera.info.path) \(camera.info.card)"),
                 Measurement("frames", Double(stamps.count), "")]
        guard stamps.count >= 3 else {
            return check.result(.fail, "The camera delivers no pictures.", remedy: "Unplug and replug the camera; if it stays dark, try another USB port or camera.", m)
        }
        let fps = Double(stamps.count - 1) / (Double(stamps.last! - stamps.first!) / 1e9)
        m.append(Measurement("fps", fps, "fps"))
        m.append(Measurement("fps_wanted", wanted, "fps"))
        let changing = Double(digests.count) / Double(stamps.count) * 100
        m.append(Measurement("frames_changing", changing, "%"))
        let mean = brightness.isEmpty ? nil : brightness.reduce(0, +) / Double(brightness.count)
        if let mean { m.append(Measurement("brightness", mean / 255 * 100, "%")) } else { m.append(Measurement("brightness", text: "not measured (compressed format)")) }
        if digests.count <= 1 {
            return check.result(.fail, "The camera's picture is frozen.", remedy: "Unplug and replug the camera; if the picture stays frozen, replace it.", m)
        }
        if fps < wanted * 0.6 {
            return check.result(.warn, String(format: "The camera delivers %.0f pictures per second instead of %.0f.", fps, wanted),
                                remedy: "Give the room more light (cameras slow down in the dark), or use a USB port of its own for the camera.", m)
        }
        if let mean, mean < 20 {
            return check.result(.warn, "The camera's picture is almost black.", remedy: "Remove the lens cap, or switch on the room's light.", m)
        }
        if let mean, mean > 240 {
            return check.result(.warn, "The camera's picture is almost white.", remedy: "Turn the camera away from a window or lamp.", m)
        }
        return check.result(.pass, String(format: "The camera shows a moving picture at %.0f pictures per second (%@).", fps, mode.description), m)
    }

    static func cameraResult(for error: CameraError, check: DiagnosticCheck) -> CheckResult {
        let m = [Measurement("error", text: error.description)]
        switch error.kind {
        case .busy:
            return check.result(.warn, "Could not test: the classbox service (or another program) is using the camera.", remedy: AudioChecks.busyRemedy.replacingOccurrences(of: "sound tests", with: "device tests"), m)
        case .notFound, .gone:
            return check.result(.fail, "The camera is not there.", remedy: "Plug the camera in (or check its cable and that its driver is loaded); `classbox devices` lists the cameras the box finds.", m)
        case .permissionDenied:
            return check.result(.fail, "Not allowed to open the camera.", remedy: "Run diagnose as root or as a member of the 'video' group.", m)
        default:
            return check.result(.fail, "The camera failed: \(error.detail).", remedy: "Unplug and replug the camera; if it persists, check the board profile's [camera] section against `classbox devices`.", m)
        }
    }

    static func digest(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        // Every 7th byte is plenty to see a change and keeps the check cheap on large frames.
        var i = 0
        while i < bytes.count { h = (h ^ UInt64(bytes[i])) &* 0x100_0000_01b3; i += 7 }
        return h
    }

    /// The mean luma (0-255) of an uncompressed frame, sampled on a grid.
    static func meanLuma(_ bytes: UnsafeRawBufferPointer, fourcc: FourCC, width: Int, height: Int) -> Double? {
        let stride: Int, count: Int
        switch fourcc {
        case .yuyv: stride = 2; count = width * height
        case .nv12, .yuv420: stride = 1; count = width * height
        default: return nil
        }
        guard bytes.count >= count * stride else { return nil }
        var sum = 0, n = 0, i = 0
        while i < count { sum += Int(bytes[i * stride]); n += 1; i += 13 }
        return n > 0 ? Double(sum) / Double(n) : nil
    }

    // MARK: Button and LED

    /// The button's line state and the LED; with `--interactive`, asks for a press and cycles the LED.
    public static let buttonAndLED = DiagnosticCheck(id: "button", title: "Button and LED", timeoutSeconds: 45) { check, context in
        let spec = context.board.gpio
        switch spec.backend {
        case .sim: return check.result(.skip, "Skipped: the simulated board has no button.")
        case .none: return check.result(.skip, "Skipped: this board has no raise-hand button.")
        case .gpiod, .evdev: break
        }
        if context.whileRunning { return check.result(.skip, "Skipped: the classbox service is running and holds the button (--while-running).") }
        let button: (any RaiseHandButton)?
        let led: StatusLED?
        do throws(GPIOError) {
            button = try ClassroomGPIO.openButton(spec)
            led = try ClassroomGPIO.openLED(spec)
        } catch {
            return gpioResult(for: error, check: check)
        }
        defer { led?.close() }
        var m: [Measurement] = []
        if let b = button { m.append(Measurement("button", text: b.device)) }
        if let gpio = button as? GPIOButton { m.append(Measurement("button_pressed", text: gpio.isPressed ? "yes" : "no")) }
        if let led {
            m.append(Measurement("led", text: led.device))
            // Drive the LED and read the line back: the kernel sees what the firmware sets.
            // The pattern thread sets the line: wait up to a second for each level.
            func reaches(_ level: Bool) -> Bool {
                for _ in 0..<50 {
                    if (try? led.level()) == level { return true }
                    usleep(20_000)
                }
                return false
            }
            led.pattern = .on
            let lit = reaches(true)
            led.pattern = .off
            let dark = reaches(false)
            m.append(Measurement("led_line_follows", text: lit && dark ? "yes" : "no"))
            if !(lit && dark) {
                return check.result(.fail, "The LED's line does not follow what the box sets.", remedy: "Check the LED's wiring and the board profile's led_line and led_active_low.", m)
            }
        }
        if !context.interactive {
            if let gpio = button as? GPIOButton, gpio.isPressed {
                return check.result(.warn, "The button reads as held down.", remedy: "Release the button, or check that it is not stuck and that button_active_low in the board profile matches its wiring.", m)
            }
            return check.result(.pass, "The button and LED lines answer (run with --interactive to press the button and watch the LED).", m)
        }
        if let led {
            for pattern in [LEDPattern.on, .slowBlink, .fastBlink, .off] {
                context.prompt("The LED now shows: \(pattern.rawValue)")
                led.pattern = pattern
                usleep(1_500_000)
            }
        }
        guard let button else { return check.result(.pass, "The LED cycled through its patterns; this board has no button line to test.", m) }
        context.prompt("Press the raise-hand button now (within 20 seconds)...")
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            do throws(GPIOError) {
                if let event = try button.next(timeoutNanoseconds: 200_000_000), event.kind == .pressed {
                    led?.pattern = .on
                    context.prompt("Button press seen. Thank you.")
                    return check.result(.pass, "The button works: the press was seen, and the LED cycled through its patterns.", m)
                }
            } catch {
                return gpioResult(for: error, check: check)
            }
        }
        return check.result(.fail, "No button press was seen within 20 seconds.",
                            remedy: "Press firmly; check the button's cable and the board profile's button_line and button_active_low.", m)
    }

    static func gpioResult(for error: GPIOError, check: DiagnosticCheck) -> CheckResult {
        let m = [Measurement("error", text: error.description)]
        switch error.kind {
        case .busy:
            return check.result(.warn, "Could not test: the classbox service (or another program) holds the button or LED.", remedy: AudioChecks.busyRemedy.replacingOccurrences(of: "sound tests", with: "device tests"), m)
        case .notFound, .gone:
            return check.result(.fail, "The raise-hand button is not connected.", remedy: "Check the button board's cable and that its driver is loaded; `classbox devices` lists the GPIO chips found.", m)
        case .permissionDenied:
            return check.result(.fail, "Not allowed to use the button.", remedy: "Run diagnose as root or as a member of the 'gpio' group.", m)
        default:
            return check.result(.fail, "The button failed: \(error.detail).", remedy: "Check the board profile's [gpio] section against `classbox devices`.", m)
        }
    }
}
