public import BoxConfig

/// The simulated classroom as a pair of sound-card ports, so the audio engine drives it exactly as it
/// drives ALSA: what is written to `playback` comes out of the room's loudspeaker, and `capture` reads
/// what the room's microphone hears (echo, the pupil's voice from `pupil`, noise). Mono, 32-bit float.
/// The capture port owns the room and runs it; the playback port only queues loudspeaker samples.
public final class SimulatedClassroom {
    /// The microphone.
    public let capture: SimulatedCapturePort
    /// The loudspeaker.
    public let playback: SimulatedPlaybackPort
    /// Seconds from loudspeaker to microphone (device latency and flight time).
    public let echoDelay: Double

    /// A classroom for `spec` at `rate`, with the pupil saying `pupil` from the start (then silence).
    /// When `recordFrames` is above 0, the echo and pupil components of the first that many
    /// microphone frames are kept for measurement.
    public init(spec: SimRoomSpec, rate: Int, periodFrames: Int, pupil: [Float] = [], recordFrames: Int = 0) {
        let speaker = SPSCRing(minimumCapacity: rate)  // up to 1 s queued in the "card"
        let configuration = PCMConfiguration(rate: rate, channels: 1, format: .float32, periodFrames: periodFrames,
                                             bufferFrames: periodFrames * 3)
        let room = SimulatedRoom(spec: spec, sampleRate: rate)
        echoDelay = room.echoDelay
        playback = SimulatedPlaybackPort(ring: speaker, configuration: configuration)
        capture = SimulatedCapturePort(room: room, ring: speaker, pupil: pupil, configuration: configuration, recordFrames: recordFrames)
    }
}

/// The simulated loudspeaker: queues what is played for the room.
public final class SimulatedPlaybackPort: AudioPort {
    private let ring: SPSCRing
    /// See `AudioPort`.
    public let configuration: PCMConfiguration
    public var name: String { "sim:speaker" }
    public var stream: PCMStream { .playback }
    private var written = 0

    init(ring: SPSCRing, configuration: PCMConfiguration) {
        self.ring = ring
        self.configuration = configuration
    }

    public func transfer(_ buffer: UnsafeMutableRawPointer, frames: Int) -> Int {
        let samples = UnsafeBufferPointer(start: buffer.assumingMemoryBound(to: Float.self), count: frames)
        let n = ring.write(samples)
        written += n
        return n == 0 && frames > 0 ? -Int(Errno.wouldBlock.rawValue) : n
    }
    public func recover(from error: Int) -> Int { 0 }
    public func start() -> Int { 0 }
    public func timestamp() -> PCMTimestamp? { nil }
}

/// The simulated microphone: runs the room over the queued loudspeaker samples and the pupil's voice.
public final class SimulatedCapturePort: AudioPort {
    private var room: SimulatedRoom
    private let ring: SPSCRing
    private let pupil: [Float]
    private var cursor = 0
    private var speaker: [Float]
    private var voice: [Float]
    private var echoPart: [Float]
    private var pupilPart: [Float]
    /// The echo component of each microphone sample so far (up to the recording length).
    public private(set) var recordedEcho: [Float]
    /// The pupil component of each microphone sample so far (up to the recording length).
    public private(set) var recordedPupil: [Float]
    /// What the loudspeaker emitted at each microphone sample's time (before the room and the card's
    /// delay), up to the recording length: the "ear" end of a mouth-to-ear measurement.
    public private(set) var recordedSpeaker: [Float]
    private var recorded = 0
    /// See `AudioPort`.
    public let configuration: PCMConfiguration
    public var name: String { "sim:microphone" }
    public var stream: PCMStream { .capture }

    init(room: SimulatedRoom, ring: SPSCRing, pupil: [Float], configuration: PCMConfiguration, recordFrames: Int) {
        self.room = room
        self.ring = ring
        self.pupil = pupil
        self.configuration = configuration
        let block = 8192
        speaker = [Float](repeating: 0, count: block)
        voice = [Float](repeating: 0, count: block)
        echoPart = [Float](repeating: 0, count: block)
        pupilPart = [Float](repeating: 0, count: block)
        recordedEcho = [Float](repeating: 0, count: recordFrames)
        recordedPupil = [Float](repeating: 0, count: recordFrames)
        recordedSpeaker = [Float](repeating: 0, count: recordFrames)
    }

    /// Microphone samples clipped at full scale so far.
    public var clippedSamples: Int { room.clippedSamples }

    public func transfer(_ buffer: UnsafeMutableRawPointer, frames: Int) -> Int {
        let n = min(frames, speaker.count)
        let mic = UnsafeMutableBufferPointer(start: buffer.assumingMemoryBound(to: Float.self), count: n)
        speaker.withUnsafeMutableBufferPointer { s in
            voice.withUnsafeMutableBufferPointer { v in
                echoPart.withUnsafeMutableBufferPointer { e in
                    pupilPart.withUnsafeMutableBufferPointer { p in
                        // A card plays in real time whether or not the microphone listens: what piled up
                        // while capture was late (an overrun) was played unheard, not delayed.
                        let backlog = ring.readable - n - configuration.bufferFrames
                        if backlog > 0 { _ = ring.discard(backlog) }
                        let got = ring.read(into: UnsafeMutableBufferPointer(rebasing: s[0..<n]))
                        for i in got..<n { s[i] = 0 }  // nothing played: the loudspeaker is silent
                        for i in 0..<n { v[i] = cursor + i < pupil.count ? pupil[cursor + i] : 0 }
                        room.process(speaker: UnsafeBufferPointer(rebasing: s[0..<n]), pupil: UnsafeBufferPointer(rebasing: v[0..<n]),
                                     mic: mic, components: .init(echo: UnsafeMutableBufferPointer(rebasing: e[0..<n]),
                                                                 pupil: UnsafeMutableBufferPointer(rebasing: p[0..<n])))
                        let keep = min(n, recordedEcho.count - recorded)
                        if keep > 0 {
                            for i in 0..<keep {
                                recordedEcho[recorded + i] = e[i]
                                recordedPupil[recorded + i] = p[i]
                                recordedSpeaker[recorded + i] = s[i]
                            }
                            recorded += keep
                        }
                    }
                }
            }
        }
        cursor += n
        return n
    }
    public func recover(from error: Int) -> Int { 0 }
    public func start() -> Int { 0 }
    public func timestamp() -> PCMTimestamp? { nil }
}
