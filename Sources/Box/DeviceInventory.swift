public import Devices

/// What devices this box has, for `classbox devices` and diagnostics: sound cards with their PCMs and
/// what each accepts. (Cameras and GPIO chips join it with their drivers.)
public struct DeviceInventory: Sendable, Codable {
    /// Sound cards.
    public var soundCards: [SoundCard]

    /// Lists the devices present now.
    public static func current() -> DeviceInventory {
        DeviceInventory(soundCards: SoundCard.list())
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
        return lines.joined(separator: "\n")
    }
}
