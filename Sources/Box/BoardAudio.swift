public import BoxConfig
public import Devices
public import Media
import Logging

/// Opens the board's sound devices the way the profile describes them: cards by name (never index),
/// the profile's rate first and 48 kHz or the card's native rate otherwise, the profile's period and
/// buffer; and watches the engine's counters, logging each burst of trouble once.
public enum BoardAudio {
    /// Rates tried in order: the profile's, then the usual native rates of USB and on-board codecs.
    static func rates(preferred: Int) -> [Int] {
        var rates = [preferred]
        for r in [48000, 44100, 32000, 16000] where !rates.contains(r) { rates.append(r) }
        return rates
    }

    /// Opens capture and playback for `spec` among `cards` (default: the cards present now). Both
    /// directions run at the same rate: playback is opened first and capture must accept its rate.
    public static func open(_ spec: AudioSpec, cards: [SoundCard]? = nil) throws(ALSAError) -> (capture: ALSAPort, playback: ALSAPort) {
        let present = cards ?? SoundCard.list(probe: false)
        let playbackName = try SoundCard.resolve(names: spec.playbackCards, device: spec.playbackDevice, stream: .playback, among: present)
        let captureName = try SoundCard.resolve(names: spec.captureCards, device: spec.captureDevice, stream: .capture, among: present)
        return try open(spec, captureName: captureName, playbackName: playbackName)
    }

    /// Opens named PCMs (also plugin PCMs from `config`) with the profile's parameters.
    public static func open(_ spec: AudioSpec, captureName: String, playbackName: String,
                            config: ALSAConfigTree? = nil) throws(ALSAError) -> (capture: ALSAPort, playback: ALSAPort) {
        let period = spec.rate * spec.periodMs / 1000
        let playback = try PCMDevice(name: playbackName, stream: .playback, rates: rates(preferred: spec.rate),
                                     channels: spec.playbackChannels, periodFrames: period, bufferPeriods: spec.bufferPeriods, config: config)
        let rate = playback.configuration.rate
        let capture = try PCMDevice(name: captureName, stream: .capture, rates: [rate], channels: spec.captureChannels,
                                    periodFrames: rate * spec.periodMs / 1000, bufferPeriods: spec.bufferPeriods, config: config)
        return (ALSAPort(capture), ALSAPort(playback))
    }
}

/// Reads the audio counters from an ordinary thread and logs what changed, once per burst: an xrun
/// storm becomes one warning with its count, not hundreds of lines, and the real-time threads never log.
public struct AudioCounterMonitor {
    private var last: AudioCounterSnapshot?
    private let logger: Logger

    /// A monitor logging under the label `classbox.audio`.
    public init() { logger = Logger(label: "classbox.audio") }

    /// Compares `now` with the previous snapshot and returns (and logs) one line per kind of trouble.
    @discardableResult
    public mutating func check(_ now: AudioCounterSnapshot) -> [String] {
        defer { last = now }
        guard let last else { return [] }
        var events: [String] = []
        func delta(_ a: Int, _ b: Int, _ what: String) { if b > a { events.append("\(b - a) \(what)") } }
        delta(last.captureXruns, now.captureXruns, "capture overrun(s)")
        delta(last.playbackXruns, now.playbackXruns, "playback underrun(s)")
        delta(last.captureErrors, now.captureErrors, "capture error(s)")
        delta(last.playbackErrors, now.playbackErrors, "playback error(s)")
        delta(last.captureReopens, now.captureReopens, "capture device reopen(s)")
        delta(last.playbackReopens, now.playbackReopens, "playback device reopen(s)")
        if now.captureGone && !last.captureGone { events.append("capture device gone; retrying") }
        if now.playbackGone && !last.playbackGone { events.append("playback device gone; retrying") }
        delta(last.captureClippedSamples, now.captureClippedSamples, "clipped microphone sample(s)")
        for event in events {
            logger.warning("audio: \(event)", metadata: ["xruns_total": "\(now.captureXruns + now.playbackXruns)",
                                                          "drift_ppm": "\(now.driftPPM.map { String($0) } ?? "unknown")"])
        }
        return events
    }
}
