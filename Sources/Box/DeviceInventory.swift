public import Devices

/// What devices this box has, for `classbox devices` and diagnostics: sound cards with their PCMs and
/// what each accepts, video devices with their formats, sizes, rates and controls, and GPIO chips with
/// their lines (and who holds them).
public struct DeviceInventory: Sendable, Codable {
    /// Sound cards.
    public var soundCards: [SoundCard]
    /// Video devices (cameras, memory-to-memory encoders and decoders).
    public var videoDevices: [VideoDeviceInfo]
    /// GPIO chips.
    public var gpioChips: [GPIOChipInfo]
    /// The memory-to-memory encoders among the video devices, by node (`/dev/video11`).
    public var videoEncoders: [String]

    /// An inventory from its parts.
    public init(soundCards: [SoundCard], videoDevices: [VideoDeviceInfo] = [], gpioChips: [GPIOChipInfo] = []) {
        self.soundCards = soundCards
        self.videoDevices = videoDevices
        self.gpioChips = gpioChips
        videoEncoders = videoDevices.filter(\.isEncoder).map(\.path)
    }

    /// Lists the devices present now.
    public static func current(video: any VideoKernel = LinuxVideoKernel(), gpio: any GPIODriver = LibgpiodDriver()) -> DeviceInventory {
        DeviceInventory(soundCards: SoundCard.list(), videoDevices: Camera.list(kernel: video),
                        gpioChips: gpio.chipPaths().compactMap { try? gpio.chipInfo(path: $0) })
    }

    /// A table for people.
    public var text: String {
        var lines = ["Sound cards (ALSA):"]
        if soundCards.isEmpty { lines.append("  none (no sound driver loaded, or nothing plugged in)") }
        for card in soundCards {
            lines.append("  \(card.id): \(card.name) [index \(card.index)]")
            lines.append("    \(card.longName)")
            for pcm in card.pcms {
                lines.append("    \(card.deviceName(pcm.device))  \(pcm.name)  (\(pcm.streams.map(\.rawValue).joined(separator: ", ")))")
                for caps in pcm.capabilities {
                    let channels = caps.minChannels == caps.maxChannels ? "\(caps.minChannels)" : "\(caps.minChannels)-\(caps.maxChannels)"
                    lines.append("      \(caps.stream.rawValue): rates \(caps.rates.map(String.init).joined(separator: ", ")); formats \(caps.formats.map(\.rawValue).joined(separator: ", ")); channels \(channels)")
                }
                if pcm.capabilities.isEmpty { lines.append("      (busy: capabilities not probed)") }
            }
        }
        lines.append("Video devices (V4L2):")
        if videoDevices.isEmpty { lines.append("  none (no camera plugged in, or no permission: the 'video' group)") }
        for device in videoDevices {
            let role = device.capture ? "camera"
                : device.isEncoder ? "memory-to-memory encoder"
                : device.memoryToMemory ? "memory-to-memory (decoder/converter)" : "other"
            lines.append("  \(device.path): \(device.card) [driver \(device.driver), \(device.busInfo)] \(role)\(device.multiplanar ? ", multi-planar" : "")")
            if device.memoryToMemory { lines.append("    produces (CAPTURE):") }
            for format in device.formats {
                lines.append("    \(format.fourcc) \(format.description)\(format.compressed ? " (compressed)" : "")\(format.emulated ? " (emulated)" : "")")
                for size in format.sizes {
                    lines.append("      \(size.width)x\(size.height): \(size.intervals.map(\.description).joined(separator: ", "))")
                }
                if let r = format.range {
                    lines.append("      \(r.minWidth)x\(r.minHeight) to \(r.maxWidth)x\(r.maxHeight) in steps of \(r.stepWidth)x\(r.stepHeight)")
                }
            }
            if device.memoryToMemory {
                lines.append("    takes (OUTPUT): " + device.outputFormats.map { "\($0.fourcc)\($0.compressed ? " (compressed)" : "")" }.joined(separator: ", "))
            }
            if !device.controls.isEmpty { lines.append("    controls:") }
            for c in device.controls {
                var text = "      \(c.key) (\(c.kind.rawValue)): \(c.minimum)...\(c.maximum)"
                if c.step > 1 { text += " step \(c.step)" }
                text += ", default \(c.defaultValue)"
                if let v = c.value { text += ", now \(v)" }
                if let menu = c.menu { text += " [" + menu.map { "\($0.value)=\($0.name)" }.joined(separator: ", ") + "]" }
                if c.readOnly { text += " read-only" }
                if c.inactive { text += " inactive" }
                lines.append(text)
            }
        }
        lines.append("Video encoders (memory-to-memory):")
        let encoders = videoDevices.filter(\.isEncoder)
        if encoders.isEmpty { lines.append("  none (a board without one needs a camera that encodes itself)") }
        for device in encoders {
            lines.append("  \(device.path): \(device.driver) \"\(device.card)\" makes \(device.formats.map(\.fourcc.description).joined(separator: ", "))"
                + " from \(device.outputFormats.map(\.fourcc.description).joined(separator: ", "))")
        }
        lines.append("GPIO chips:")
        if gpioChips.isEmpty { lines.append("  none (no GPIO driver, or no permission: the 'gpio' group)") }
        for chip in gpioChips {
            lines.append("  \(chip.path): \"\(chip.label)\" (\(chip.name)), \(chip.lines.count) lines")
            for line in chip.lines where line.used || !line.name.isEmpty {
                var text = "    line \(line.offset)"
                if !line.name.isEmpty { text += " \"\(line.name)\"" }
                text += line.output ? " output" : " input"
                if line.activeLow { text += " active-low" }
                if line.used { text += ", held by \(line.consumer.isEmpty ? "a kernel driver" : line.consumer)" }
                lines.append(text)
            }
        }
        return lines.joined(separator: "\n")
    }
}
