public import BoxConfig
public import Devices
import Box
import Foundation

/// What the microphone recorded while the speaker played a test signal.
public struct Recording: Sendable {
    /// Sample rate in Hz.
    public var rate: Int
    /// Every capture channel, de-interleaved.
    public var channels: [[Float]]
    /// The classroom microphone as the board profile combines its channels.
    public var mic: [Float]
    /// Overruns and underruns during the recording.
    public var xruns: Int
    /// Frames the test itself kept queued on the speaker: part of the measured delay, but not the
    /// device's (the firmware queues less).
    public var queuedFrames: Int = 0
}

/// A speaker and microphone in one room: plays a mono signal (on every playback channel) and records
/// the microphone for as long plus `extraSeconds`, starting together.
public protocol AcousticLoop {
    /// What it is, for the report (`sim room`, `hw:CARD=Loopback,DEV=0 -> hw:CARD=Loopback,DEV=1`).
    var name: String { get }
    /// Sample rate in Hz.
    var rate: Int { get }
    /// Plays `signal` and records.
    func playAndRecord(_ signal: [Float], extraSeconds: Double) throws(ALSAError) -> Recording
}

/// The simulated classroom of the `sim` board: the signal goes through the room (speaker, reflections,
/// reverberation, noise) and a capture clock `captureClockPPM` fast. Runs faster than real time.
public struct SimulatedAcousticLoop: AcousticLoop {
    /// The room.
    public var spec: SimRoomSpec
    /// Sample rate in Hz.
    public var rate: Int
    public var name: String { "simulated classroom" }

    /// A loop through the room `spec`.
    public init(spec: SimRoomSpec, rate: Int) {
        self.spec = spec
        self.rate = rate
    }

    public func playAndRecord(_ signal: [Float], extraSeconds: Double) throws(ALSAError) -> Recording {
        var room = SimulatedRoom(spec: spec, sampleRate: rate)
        let count = signal.count + Int(extraSeconds * Double(rate))
        var speaker = signal
        speaker.append(contentsOf: [Float](repeating: 0, count: count - signal.count))
        var mic = [Float](repeating: 0, count: count)
        speaker.withUnsafeBufferPointer { s in
            mic.withUnsafeMutableBufferPointer { m in room.process(speaker: s, pupil: nil, mic: m) }
        }
        let recorded = Array(Acoustics.resampled(mic, ppm: spec.captureClockPPM).prefix(count))
        return Recording(rate: rate, channels: [recorded], mic: recorded, xruns: 0)
    }
}

/// The board's real sound card(s), opened as the firmware opens them (cards by name): one thread keeps
/// two periods queued on the speaker and reads the microphone period by period, so both run on their
/// own clocks as in a lesson.
public struct ALSAAcousticLoop: AcousticLoop {
    /// The profile's audio description.
    public var spec: AudioSpec
    /// Where the PCMs come from (nil: the cards present).
    public var name: String { "\(spec.playbackCards.first ?? "?") -> \(spec.captureCards.first ?? "?")" }
    public var rate: Int { spec.rate }

    /// A loop over the profile's devices.
    public init(spec: AudioSpec) { self.spec = spec }

    public func playAndRecord(_ signal: [Float], extraSeconds: Double) throws(ALSAError) -> Recording {
        // A deeper buffer than a lesson's (50 periods, 20 queued ahead): the test's own latency does not
        // matter (it is subtracted from the delay reported), and a slow moment (a busy box, an emulated
        // one) must not lose samples and shift the echo it measures.
        var deep = spec
        deep.bufferPeriods = 50
        let (capture, playback) = try BoardAudio.open(deep)
        let rate = capture.configuration.rate
        let total = signal.count + Int(extraSeconds * Double(rate))
        let period = capture.configuration.periodFrames
        let inChannels = capture.configuration.channels, outChannels = playback.configuration.channels
        let inFormat = capture.configuration.format, outFormat = playback.configuration.format
        var inBytes = [UInt8](repeating: 0, count: period * capture.configuration.bytesPerFrame)
        var outBytes = [UInt8](repeating: 0, count: period * playback.configuration.bytesPerFrame)
        var channels = [[Float]](repeating: [], count: inChannels)
        for c in 0..<inChannels { channels[c].reserveCapacity(total + period) }
        var xruns = 0, played = 0, captured = 0

        func write(frames: Int) {
            // Fill `frames` of the signal (or silence after it) into every playback channel.
            outBytes.withUnsafeMutableBytes { raw in
                for f in 0..<frames {
                    let v = played + f < signal.count && played + f >= 0 ? signal[played + f] : 0
                    for c in 0..<outChannels { SampleCodec.store(v, format: outFormat, into: raw, index: f * outChannels + c) }
                }
            }
            var done = 0, attempts = 0
            while done < frames && attempts < 8 {
                attempts += 1
                let n = outBytes.withUnsafeMutableBytes { raw in
                    playback.transfer(raw.baseAddress! + done * playback.configuration.bytesPerFrame, frames: frames - done)
                }
                if n > 0 { done += n } else if n == -Int(EAGAIN) { usleep(1000) } else if n < 0 { xruns += 1; _ = playback.recover(from: n) }
            }
            played += frames
        }

        // Periods of silence queued first: the speaker starts and always has the next ones queued.
        played = -ALSAAcousticLoop.queuedPeriods * period
        for _ in 0..<ALSAAcousticLoop.queuedPeriods { write(frames: period) }
        _ = capture.start()
        var stalls = 0
        // A card that delivers slowly or not at all must not hold the test: give up after twice the
        // recording's length plus 5 s (the check then reports what it got).
        let giveUp = Date().addingTimeInterval(2 * Double(total) / Double(rate) + 5)
        while captured < total && Date() < giveUp {
            let n = inBytes.withUnsafeMutableBytes { capture.transfer($0.baseAddress!, frames: period) }
            if n == -Int(EAGAIN) { usleep(1000); stalls += 1; if stalls > 5000 { break }; continue }
            if n < 0 {
                xruns += 1
                if capture.recover(from: n) < 0 { break }
                _ = capture.start()
                continue
            }
            inBytes.withUnsafeBytes { raw in
                for f in 0..<n { for c in 0..<inChannels { channels[c].append(SampleCodec.load(inFormat, from: raw, index: f * inChannels + c)) } }
            }
            captured += n
            write(frames: n)
        }
        for c in 0..<inChannels where channels[c].count > total { channels[c].removeLast(channels[c].count - total) }
        let picked = spec.micChannels.filter { $0 < inChannels }
        let micChannels = picked.isEmpty ? [0] : picked
        var mic = [Float](repeating: 0, count: channels[0].count)
        if spec.micMix == .pick {
            mic = channels[micChannels[0]]
        } else {
            for c in micChannels { for i in mic.indices { mic[i] += channels[c][i] / Float(micChannels.count) } }
        }
        // Right after each write the queue holds `queuedPeriods`; by the time the next period is read one
        // has played: on average the test adds one period less than it queues.
        return Recording(rate: rate, channels: channels, mic: mic, xruns: xruns, queuedFrames: (ALSAAcousticLoop.queuedPeriods - 1) * period)
    }

    /// Periods kept queued on the speaker ahead of the microphone.
    static let queuedPeriods = 20
}

/// Converts between float samples and the device's formats.
enum SampleCodec {
    static func store(_ v: Float, format: PCMSampleFormat, into raw: UnsafeMutableRawBufferPointer, index: Int) {
        let x = max(-1, min(1, v))
        switch format {
        case .s16: raw.storeBytes(of: Int16(x * 32767), toByteOffset: index * 2, as: Int16.self)
        case .s32: raw.storeBytes(of: Int32(Double(x) * 2_147_483_647), toByteOffset: index * 4, as: Int32.self)
        case .float32: raw.storeBytes(of: x, toByteOffset: index * 4, as: Float.self)
        }
    }

    static func load(_ format: PCMSampleFormat, from raw: UnsafeRawBufferPointer, index: Int) -> Float {
        switch format {
        case .s16: return Float(raw.loadUnaligned(fromByteOffset: index * 2, as: Int16.self)) / 32768
        case .s32: return Float(Double(raw.loadUnaligned(fromByteOffset: index * 4, as: Int32.self)) / 2_147_483_648)
        case .float32: return raw.loadUnaligned(fromByteOffset: index * 4, as: Float.self)
        }
    }
}
