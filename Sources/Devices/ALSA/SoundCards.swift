internal import CAlsa
#if canImport(Glibc)
internal import Glibc
#endif

/// A sound card as the kernel names it, with its PCM devices: what `classbox devices` lists and what
/// the board profile's card names are matched against.
public struct SoundCard: Sendable, Equatable, Codable {
    /// The kernel's index (`hw:N`); it changes between boots for USB cards, so never configure it.
    public var index: Int
    /// The card's id (`hw:CARD=id`), e.g. `Device`, `Headphones`, `Loopback`.
    public var id: String
    /// The card's short name.
    public var name: String
    /// The card's long name (usually vendor, model and USB port).
    public var longName: String
    /// The card's PCM devices.
    public var pcms: [PCM]

    /// One PCM device of a card.
    public struct PCM: Sendable, Equatable, Codable {
        /// Device number on the card (`DEV=`).
        public var device: Int
        /// The PCM's name.
        public var name: String
        /// Directions it supports.
        public var streams: [PCMStream]
        /// What it accepts, per direction, when it could be probed (it may be busy).
        public var capabilities: [PCMCapabilities]

        /// A PCM from its values.
        public init(device: Int, name: String, streams: [PCMStream], capabilities: [PCMCapabilities]) {
            self.device = device
            self.name = name
            self.streams = streams
            self.capabilities = capabilities
        }
    }

    /// A card from its values.
    public init(index: Int, id: String, name: String, longName: String, pcms: [PCM]) {
        self.index = index
        self.id = id
        self.name = name
        self.longName = longName
        self.pcms = pcms
    }

    /// The ALSA name that opens a PCM of this card by id, stable across reboots.
    public func deviceName(_ device: Int) -> String { "hw:CARD=\(id),DEV=\(device)" }

    /// The cards present now (none on a machine without sound drivers).
    public static func list(probe: Bool = true) -> [SoundCard] {
        var cards: [SoundCard] = []
        var index: Int32 = -1
        while snd_card_next(&index) >= 0 && index >= 0 {
            var ctl: OpaquePointer?
            guard snd_ctl_open(&ctl, "hw:\(index)", 0) >= 0, let ctl else { continue }
            defer { snd_ctl_close(ctl) }
            var infoPointer: OpaquePointer?
            guard snd_ctl_card_info_malloc(&infoPointer) >= 0, let info = infoPointer else { continue }
            defer { snd_ctl_card_info_free(info) }
            guard snd_ctl_card_info(ctl, info) >= 0 else { continue }
            var card = SoundCard(index: Int(index), id: String(cString: snd_ctl_card_info_get_id(info)),
                                 name: String(cString: snd_ctl_card_info_get_name(info)),
                                 longName: String(cString: snd_ctl_card_info_get_longname(info)), pcms: [])
            var pcmInfoPointer: OpaquePointer?
            guard snd_pcm_info_malloc(&pcmInfoPointer) >= 0, let pcmInfo = pcmInfoPointer else { continue }
            defer { snd_pcm_info_free(pcmInfo) }
            var device: Int32 = -1
            while snd_ctl_pcm_next_device(ctl, &device) >= 0 && device >= 0 {
                var pcm = PCM(device: Int(device), name: "", streams: [], capabilities: [])
                for stream in PCMStream.allCases {
                    snd_pcm_info_set_device(pcmInfo, UInt32(device))
                    snd_pcm_info_set_subdevice(pcmInfo, 0)
                    snd_pcm_info_set_stream(pcmInfo, stream == .capture ? SND_PCM_STREAM_CAPTURE : SND_PCM_STREAM_PLAYBACK)
                    guard snd_ctl_pcm_info(ctl, pcmInfo) >= 0 else { continue }
                    pcm.name = String(cString: snd_pcm_info_get_name(pcmInfo))
                    pcm.streams.append(stream)
                    if probe, let caps = PCMCapabilities.probe(name: card.deviceName(Int(device)), stream: stream) {
                        pcm.capabilities.append(caps)
                    }
                }
                card.pcms.append(pcm)
            }
            cards.append(card)
        }
        return cards
    }

    /// Chooses the PCM for `stream` by the board profile's card names, in order of preference: a name
    /// matches a card whose id equals it, or else whose name or long name contains it (case ignored).
    public static func resolve(names: [String], device: Int, stream: PCMStream, among cards: [SoundCard]) throws(ALSAError) -> String {
        for wanted in names {
            let w = wanted.lowercased()
            let byId = cards.first { $0.id.lowercased() == w }
            let byName = cards.first { $0.name.lowercased().contains(w) || $0.longName.lowercased().contains(w) }
            for card in [byId, byName].compactMap({ $0 }) {
                if card.pcms.contains(where: { $0.device == device && $0.streams.contains(stream) }) {
                    return card.deviceName(device)
                }
            }
        }
        let present = cards.isEmpty ? "no sound cards at all (is the USB speakerphone plugged in?)"
            : "cards present: " + cards.map { "\($0.id) (\($0.name))" }.joined(separator: ", ")
        throw ALSAError(kind: .notFound, device: names.joined(separator: " | "), stream: stream, call: "snd_card_next", errno: nil,
                        detail: "no card matching the board profile's \(stream == .capture ? "capture_cards" : "playback_cards") with a \(stream.rawValue) device \(device); \(present)")
    }
}

/// What a PCM accepts in one direction.
public struct PCMCapabilities: Sendable, Equatable, Codable {
    /// The direction probed.
    public var stream: PCMStream
    /// Common rates it takes exactly (no resampling).
    public var rates: [Int]
    /// Sample formats the firmware handles that it takes.
    public var formats: [PCMSampleFormat]
    /// Fewest channels.
    public var minChannels: Int
    /// Most channels.
    public var maxChannels: Int

    /// Probes `name` without configuring it; nil when it cannot be opened (busy, gone).
    public static func probe(name: String, stream: PCMStream, config: ALSAConfigTree? = nil) -> PCMCapabilities? {
        var pcm: OpaquePointer?
        let direction = stream == .capture ? SND_PCM_STREAM_CAPTURE : SND_PCM_STREAM_PLAYBACK
        let rc = config.map { snd_pcm_open_lconf(&pcm, name, direction, SND_PCM_NONBLOCK, $0.handle) }
            ?? snd_pcm_open(&pcm, name, direction, SND_PCM_NONBLOCK)
        guard rc >= 0, let pcm else { return nil }
        defer { snd_pcm_close(pcm) }
        var hwPointer: OpaquePointer?
        guard snd_pcm_hw_params_malloc(&hwPointer) >= 0, let hw = hwPointer else { return nil }
        defer { snd_pcm_hw_params_free(hw) }
        guard snd_pcm_hw_params_any(pcm, hw) >= 0 else { return nil }
        _ = snd_pcm_hw_params_set_rate_resample(pcm, hw, 0)
        var minChannels: UInt32 = 0, maxChannels: UInt32 = 0
        _ = snd_pcm_hw_params_get_channels_min(hw, &minChannels)
        _ = snd_pcm_hw_params_get_channels_max(hw, &maxChannels)
        return PCMCapabilities(
            stream: stream,
            rates: PCMDevice.commonRates.filter { snd_pcm_hw_params_test_rate(pcm, hw, UInt32($0), 0) == 0 },
            formats: PCMSampleFormat.allCases.filter { snd_pcm_hw_params_test_format(pcm, hw, $0.alsa) == 0 },
            minChannels: Int(minChannels), maxChannels: Int(min(maxChannels, 1024)))
    }
}
