import Foundation

extension BoardProfile {
    /// Reads and validates a profile from TOML text; `file` names it in errors.
    public static func parse(_ text: String, file: String) throws(ConfigError) -> BoardProfile {
        let root = try TableReader.parse(text: text, file: file)
        let name = root.string("name", required: true, example: "\"rpi4\"")
        if let name, !isValidName(name) { root.report("name", "\"\(name)\" must be lowercase letters, digits and dashes") }
        let summary = root.string("summary", required: true)
        let audio = root.table("audio", required: true).flatMap(readAudio)
        let camera = root.table("camera", required: true).flatMap(readCamera)
        let gpio = root.table("gpio", required: true).flatMap(readGPIO)
        // Only a board that simulates everything runs on the developer's own machine and has no image.
        let hostOnly = audio?.backend == .sim && camera?.backend != .v4l2 && gpio?.backend == .sim
        let architecture = root.choice("architecture", Architecture.self, required: !hostOnly)
        let image = root.table("image", required: !hostOnly).flatMap(readImage)
        let performance = root.table("performance").map(readPerformance) ?? PerformanceSpec(opusComplexity: 5, realtimePriority: 50)
        let simTable = root.table("sim")
        let simRoom = simTable.map(readSimRoom)
        let usesSim = audio?.backend == .sim || camera?.backend == .sim || gpio?.backend == .sim
        if usesSim && simTable == nil { root.report("sim", "a board with a `sim` backend needs a [sim] table describing the room") }
        if !usesSim && simTable != nil { root.report("sim", "only boards with a `sim` backend may have a [sim] table") }
        root.finish()

        let problems = root.context.sortedProblems
        guard problems.isEmpty, let name, let summary, let audio, let camera, let gpio else {
            throw ConfigError(problems: problems)
        }
        return BoardProfile(name: name, summary: summary, architecture: architecture, image: image, audio: audio,
                            camera: camera, gpio: gpio, performance: performance, simRoom: simRoom ?? nil)
    }

    package static func isValidName(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 63 && s.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 }
            && s.first != "-"
    }
}

private func readImage(_ t: TableReader) -> ImageSpec? {
    let suite = t.string("suite") ?? "trixie"
    let kernel = t.strings("kernel_packages", required: true, nonEmpty: true)
    let firmware = t.strings("firmware_packages") ?? []
    let extra = t.strings("extra_packages") ?? []
    let sources = t.strings("apt_sources") ?? []
    for (i, line) in sources.enumerated() where !line.hasPrefix("deb ") {
        t.report("apt_sources", "element \(i) must be a one-line apt source starting with \"deb \"")
    }
    let bootloader = t.choice("bootloader", ImageSpec.Bootloader.self, required: true)
    let bootFiles = t.strings("boot_files") ?? []
    let cmdline = t.string("kernel_cmdline") ?? ""
    if cmdline.contains("root=") { t.report("kernel_cmdline", "must not set root=; the image builder adds the A/B root") }
    let modules = t.strings("modules") ?? []
    let buildModules = t.strings("build_modules") ?? []
    for name in buildModules where !ImageSpec.buildableModules.contains(name) {
        t.report("build_modules", "\"\(name)\" cannot be built out of tree; known: \(ImageSpec.buildableModules.sorted().joined(separator: ", "))")
    }
    for name in buildModules where !modules.contains(name) {
        t.report("build_modules", "\"\(name)\" is built but never loaded; add it to `modules` too")
    }
    let initramfsModules = t.strings("initramfs_modules") ?? []
    let bootMiB = t.int("boot_mib", range: 32...4096, unit: " MiB") ?? 256
    let rootMiB = t.int("root_mib", range: 512...65536, unit: " MiB") ?? 1536
    let dataMiB = t.int("data_mib", range: 64...1_048_576, unit: " MiB") ?? 256
    t.finish()
    guard let kernel, let bootloader else { return nil }
    return ImageSpec(suite: suite, kernelPackages: kernel, firmwarePackages: firmware, extraPackages: extra,
                     aptSources: sources, bootloader: bootloader, bootFiles: bootFiles, kernelCommandLine: cmdline,
                     modules: modules, buildModules: buildModules, initramfsModules: initramfsModules,
                     bootMiB: bootMiB, rootMiB: rootMiB, dataMiB: dataMiB)
}

private func readAudio(_ t: TableReader) -> AudioSpec? {
    let backend = t.choice("backend", AudioSpec.Backend.self, required: true)
    let needsCards = backend == .alsa
    let captureCards = t.strings("capture_cards", required: needsCards, nonEmpty: needsCards) ?? []
    let playbackCards = t.strings("playback_cards", required: needsCards, nonEmpty: needsCards) ?? []
    for (key, names) in [("capture_cards", captureCards), ("playback_cards", playbackCards)] {
        for name in names where name.allSatisfy(\.isNumber) {
            t.report(key, "\"\(name)\" is a card index; name the card (its id from /proc/asound/cards), indexes move between boots")
        }
    }
    let captureDevice = t.int("capture_device", range: 0...31) ?? 0
    let playbackDevice = t.int("playback_device", range: 0...31) ?? 0
    let rate = t.int("rate", oneOf: [16000, 32000, 44100, 48000], unit: " Hz") ?? 48000
    let captureChannels = t.int("capture_channels", range: 1...32) ?? 1
    let micChannels = t.ints("mic_channels", range: 0...31) ?? [0]
    if let bad = micChannels.first(where: { $0 >= captureChannels }) {
        t.report("mic_channels", "channel \(bad) does not exist on a \(captureChannels)-channel capture; use 0...\(captureChannels - 1)")
    }
    if micChannels.isEmpty { t.report("mic_channels", "must name at least one channel") }
    let micMix = t.choice("mic_mix", AudioSpec.MicMix.self) ?? .average
    let playbackChannels = t.int("playback_channels", range: 1...8) ?? 2
    let periodMs = t.int("period_ms", range: 5...10, unit: " ms") ?? 10
    let bufferPeriods = t.int("buffer_periods", range: 2...4) ?? 3
    t.finish()
    guard let backend else { return nil }
    return AudioSpec(backend: backend, captureCards: captureCards, playbackCards: playbackCards,
                     captureDevice: captureDevice, playbackDevice: playbackDevice, rate: rate,
                     captureChannels: captureChannels, micChannels: micChannels, micMix: micMix,
                     playbackChannels: playbackChannels, periodMs: periodMs, bufferPeriods: bufferPeriods)
}

private let knownFourCCs: Set<String> = ["YUYV", "MJPG", "JPEG", "H264", "NV12", "YU12", "UYVY", "RGB3"]
private let encoderFourCCs: Set<String> = ["H264", "HEVC", "FWHT"]

private func readCamera(_ t: TableReader) -> CameraSpec? {
    let backend = t.choice("backend", CameraSpec.Backend.self, required: true)
    let drivers = t.strings("drivers") ?? []
    let cards = t.strings("cards") ?? []
    let formats = t.strings("formats") ?? ["H264", "MJPG", "YUYV"]
    for f in formats where !knownFourCCs.contains(f) {
        t.report("formats", "\"\(f)\" is not a pixel format the firmware handles; use \(knownFourCCs.sorted().joined(separator: ", "))")
    }
    let width = t.int("width", range: 160...3840) ?? 1280
    let height = t.int("height", range: 120...2160) ?? 720
    let fps = t.int("fps", range: 5...60) ?? 30
    let encoder = t.string("hardware_encoder")
    let encoderFormat = t.string("encoder_format") ?? "H264"
    if !encoderFourCCs.contains(encoderFormat) {
        t.report("encoder_format", "\"\(encoderFormat)\" is not a coded format the firmware handles; use \(encoderFourCCs.sorted().joined(separator: ", "))")
    }
    let bitrate = t.int("encoder_bitrate", range: 50_000...50_000_000, unit: " bit/s")
    let gop = t.int("encoder_gop", range: 1...600, unit: " frames")
    t.finish()
    guard let backend else { return nil }
    return CameraSpec(backend: backend, drivers: drivers, cards: cards, formats: formats, width: width, height: height,
                      fps: fps, hardwareEncoder: encoder?.isEmpty == true ? nil : encoder, encoderFormat: encoderFormat,
                      encoderBitrate: bitrate, encoderKeyFrameInterval: gop)
}

private func readGPIO(_ t: TableReader) -> GPIOSpec? {
    let backend = t.choice("backend", GPIOSpec.Backend.self, required: true)
    let isGpiod = backend == .gpiod
    let chipLabel = t.string("chip_label", required: isGpiod, example: "\"pinctrl-bcm2711\"")
    if let chipLabel, chipLabel.hasPrefix("gpiochip") {
        t.report("chip_label", "\"\(chipLabel)\" is a device name, which changes between kernels (the Pi 5's gpiochip4 became gpiochip0 in 2024); use the chip's label from `gpiodetect`")
    }
    let buttonLine = t.int("button_line", range: 0...1023, required: isGpiod)
    let ledLine = t.int("led_line", range: 0...1023)
    if let b = buttonLine, b == ledLine { t.report("led_line", "the LED cannot share line \(b) with the button") }
    let buttonActiveLow = t.bool("button_active_low") ?? true
    let ledActiveLow = t.bool("led_active_low") ?? false
    let debounce = t.int("debounce_ms", range: 0...500, unit: " ms") ?? 30
    let evdevName = t.string("evdev_name", required: backend == .evdev, example: "\"gpio-keys\"")
    let evdevKey = t.int("evdev_key_code", range: 1...767, required: backend == .evdev)
    t.finish()
    guard let backend else { return nil }
    return GPIOSpec(backend: backend, chipLabel: chipLabel, buttonLine: buttonLine, ledLine: ledLine,
                    buttonActiveLow: buttonActiveLow, ledActiveLow: ledActiveLow, debounceMs: debounce,
                    evdevName: evdevName, evdevKeyCode: evdevKey)
}

private func readPerformance(_ t: TableReader) -> PerformanceSpec {
    let complexity = t.int("opus_complexity", range: 0...10) ?? 5
    let priority = t.int("realtime_priority", range: 1...99) ?? 50
    t.finish()
    return PerformanceSpec(opusComplexity: complexity, realtimePriority: priority)
}

private func readSimRoom(_ t: TableReader) -> SimRoomSpec? {
    let rt60 = t.double("rt60_s", range: 0.05...2.0, required: true, unit: " s")
    let speaker = t.double("speaker_distance_m", range: 0.05...20, required: true, unit: " m")
    let pupil = t.double("pupil_distance_m", range: 0.2...20, required: true, unit: " m")
    let delay = t.double("device_delay_ms", range: 0...500, required: true, unit: " ms")
    let speakerGain = t.double("speaker_gain_db", range: -40...20, unit: " dB") ?? 0
    let pupilGain = t.double("pupil_gain_db", range: -40...20, unit: " dB") ?? 0
    let noise = t.double("noise_dbfs", range: -120...(-20), unit: " dBFS") ?? -65
    let seed = t.int("seed", range: 0...Int(Int32.max)) ?? 1
    let drift = t.double("capture_clock_ppm", range: -1000...1000, unit: " ppm") ?? 0
    t.finish()
    guard let rt60, let speaker, let pupil, let delay else { return nil }
    return SimRoomSpec(rt60: rt60, speakerDistance: speaker, pupilDistance: pupil, deviceDelayMs: delay,
                       speakerGainDb: speakerGain, pupilGainDb: pupilGain, noiseDbfs: noise, seed: seed,
                       captureClockPPM: drift)
}
