public import BoxConfig
#if canImport(Glibc)
internal import Glibc
#endif

@inline(__always) private func pow10(_ x: Double) -> Double { pow(10, x) }
@inline(__always) private func sine(_ x: Double) -> Double { sin(x) }
@inline(__always) private func cosine(_ x: Double) -> Double { cos(x) }

/// A classroom in software: the loudspeaker's sound and a pupil's voice reach one microphone through
/// the room (direct path, early reflections, a reverberant tail with the profile's RT60), with the
/// sound card's playback-to-capture delay and background noise. Linear and time-invariant like a real
/// room, so an echo canceller meets the same physics; its known delay and echo level let tests check
/// what diagnostics measure.
///
/// After `init`, `process` allocates nothing and takes no lock.
public struct SimulatedRoom {
    /// Sample rate in Hz.
    public let sampleRate: Int
    /// Seconds from a sample entering the speaker to its direct sound reaching the microphone.
    public let echoDelay: Double
    /// Seconds from the pupil's mouth to the microphone.
    public let pupilDelay: Double
    private var speakerPath: SoundPath
    private var pupilPath: SoundPath
    private var loudspeaker: HighPass
    private var noise: PinkNoise
    private let noiseGain: Float
    /// Microphone samples that reached full scale and were clipped, since creation.
    public private(set) var clippedSamples = 0

    /// Builds the room for `spec` at `sampleRate`.
    public init(spec: SimRoomSpec, sampleRate: Int) {
        self.sampleRate = sampleRate
        let fs = Double(sampleRate)
        let soundSpeed = 343.0
        echoDelay = spec.deviceDelayMs / 1000 + spec.speakerDistance / soundSpeed
        pupilDelay = spec.pupilDistance / soundSpeed
        // A room of 8 x 7 x 3 m: its volume and RT60 set how loud the reverberant field is (the
        // critical distance, where direct and reverberant sound are equally loud).
        let volume = 8.0 * 7.0 * 3.0
        let criticalDistance = 0.057 * (volume / spec.rt60).squareRoot()
        var random = SplitMix(seed: UInt64(spec.seed))
        speakerPath = SoundPath(gainDb: spec.speakerGainDb, distance: spec.speakerDistance,
                                bulkDelay: spec.deviceDelayMs / 1000, rt60: spec.rt60,
                                criticalDistance: criticalDistance, sampleRate: fs, random: &random)
        pupilPath = SoundPath(gainDb: spec.pupilGainDb, distance: spec.pupilDistance, bulkDelay: 0, rt60: spec.rt60,
                              criticalDistance: criticalDistance, sampleRate: fs, random: &random)
        loudspeaker = HighPass(cutoff: 150, sampleRate: fs)
        noise = PinkNoise(seed: random.next())
        noiseGain = Float(pow10(spec.noiseDbfs / 20) / noise.measuredRMS(samples: sampleRate))
    }

    /// The separate parts of what the microphone heard, for measurement (a real room cannot give these).
    public struct Components {
        /// The loudspeaker's sound as it reached the microphone (the echo).
        public var echo: UnsafeMutableBufferPointer<Float>
        /// The pupil's voice as it reached the microphone.
        public var pupil: UnsafeMutableBufferPointer<Float>
        /// Components for the given buffers, one sample per microphone sample.
        public init(echo: UnsafeMutableBufferPointer<Float>, pupil: UnsafeMutableBufferPointer<Float>) {
            self.echo = echo
            self.pupil = pupil
        }
    }

    /// Plays `speaker` into the room while the pupil says `pupil` (nil: silence) and writes what the
    /// microphone heard into `mic`. All buffers have the same length.
    public mutating func process(speaker: UnsafeBufferPointer<Float>, pupil: UnsafeBufferPointer<Float>?,
                                 mic: UnsafeMutableBufferPointer<Float>, components: Components? = nil) {
        precondition(speaker.count == mic.count && (pupil?.count ?? mic.count) == mic.count)
        for n in 0..<mic.count {
            let driven = loudspeaker.process(speaker[n])
            let echo = speakerPath.process(driven)
            let voice = pupilPath.process(pupil?[n] ?? 0)
            var sample = echo + voice + noiseGain * noise.next()
            if sample > 1 { sample = 1; clippedSamples &+= 1 } else if sample < -1 { sample = -1; clippedSamples &+= 1 }
            mic[n] = sample
            if let components {
                components.echo[n] = echo
                components.pupil[n] = voice
            }
        }
    }

    /// The loudspeaker-to-microphone impulse response (without noise), `length` samples long: what an
    /// ideal measurement of this room would find.
    public func echoImpulseResponse(length: Int) -> [Float] {
        var copy = self
        copy.speakerPath.reset()
        copy.loudspeaker = HighPass(cutoff: 150, sampleRate: Double(sampleRate))
        var response = [Float](repeating: 0, count: length)
        for n in 0..<length { response[n] = copy.speakerPath.process(copy.loudspeaker.process(n == 0 ? 1 : 0)) }
        return response
    }
}

/// One source-to-microphone path: bulk delay, direct sound, early reflections and a feedback-delay-network
/// reverberant tail whose energy matches the room's diffuse field.
private struct SoundPath {
    private var history: [Float]
    private var mask: Int
    private var position = 0
    private var tapDelays: [Int] = []
    private var tapGains: [Float] = []
    private var reverb: FeedbackDelayNetwork
    private let reverbDelay: Int
    private let reverbGain: Float

    init(gainDb: Double, distance: Double, bulkDelay: Double, rt60: Double, criticalDistance: Double,
         sampleRate fs: Double, random: inout SplitMix) {
        let soundSpeed = 343.0
        let direct = pow10(gainDb / 20) / max(distance, 0.05)
        let directDelay = Int(((bulkDelay + distance / soundSpeed) * fs).rounded())
        var taps: [(delay: Int, gain: Float)] = [(directDelay, Float(direct))]
        // Six early reflections off walls, floor and ceiling: longer paths, lower level, random sign.
        for _ in 0..<6 {
            let extra = 1.0 + random.unit() * 9.0  // 1-10 m longer than the direct path
            let path = distance + extra
            let gain = pow10(gainDb / 20) / path * (0.55 + 0.3 * random.unit()) * (random.unit() < 0.5 ? -1 : 1)
            taps.append((directDelay + Int((extra / soundSpeed * fs).rounded()), Float(gain)))
        }
        tapDelays = taps.map(\.delay)
        tapGains = taps.map(\.gain)
        reverbDelay = directDelay + Int(0.012 * fs)
        let maxDelay = taps.map(\.delay).max()! + 1
        var size = 1
        while size < max(maxDelay, reverbDelay) + 1 { size <<= 1 }
        history = [Float](repeating: 0, count: size)
        mask = size - 1
        reverb = FeedbackDelayNetwork(rt60: rt60, sampleRate: fs, random: &random)
        // Diffuse-field energy: equal to the direct sound's at the critical distance, and the same
        // everywhere in the room. Scale the network so its impulse response carries that energy.
        let targetEnergy = pow10(gainDb / 10) / (criticalDistance * criticalDistance)
        reverbGain = Float((targetEnergy / reverb.impulseEnergy(seconds: rt60 * 1.5, sampleRate: fs)).squareRoot())
        reverb.reset()
    }

    mutating func reset() {
        for i in history.indices { history[i] = 0 }
        reverb.reset()
    }

    @inline(__always)
    mutating func process(_ x: Float) -> Float {
        history[position] = x
        var y: Float = 0
        for k in 0..<tapDelays.count { y += tapGains[k] * history[(position &- tapDelays[k]) & mask] }
        y += reverbGain * reverb.process(history[(position &- reverbDelay) & mask])
        position = (position &+ 1) & mask
        return y
    }
}

/// Eight delay lines mixed by a Hadamard matrix, each attenuated for the RT60 and low-passed (air and
/// wall absorption make high frequencies die first).
private struct FeedbackDelayNetwork {
    private var lines: [[Float]]
    private var positions = [Int](repeating: 0, count: 8)
    private var feedback: [Float]
    private var damping: [Float] = [Float](repeating: 0, count: 8)
    private let dampingCoefficient: Float = 0.25
    private var signs: [Float]

    init(rt60: Double, sampleRate fs: Double, random: inout SplitMix) {
        let baseLengths = [0.0297, 0.0371, 0.0411, 0.0437, 0.0533, 0.0571, 0.0631, 0.0677]
        lines = []
        feedback = []
        signs = []
        for base in baseLengths {
            let length = max(8, Int((base * (0.9 + 0.2 * random.unit())) * fs))
            lines.append([Float](repeating: 0, count: length))
            feedback.append(Float(pow10(-3.0 * Double(length) / (rt60 * fs))))
            signs.append(random.unit() < 0.5 ? -1 : 1)
        }
    }

    mutating func reset() {
        for i in lines.indices { for j in lines[i].indices { lines[i][j] = 0 } }
        for i in 0..<8 { positions[i] = 0; damping[i] = 0 }
    }

    func impulseEnergy(seconds: Double, sampleRate fs: Double) -> Double {
        var copy = self
        copy.reset()
        var energy = 0.0
        for n in 0..<Int(seconds * fs) {
            let y = Double(copy.process(n == 0 ? 1 : 0))
            energy += y * y
        }
        return energy
    }

    @inline(__always)
    mutating func process(_ x: Float) -> Float {
        // Read and damp the eight line outputs.
        var h0: Float = 0, h1: Float = 0, h2: Float = 0, h3: Float = 0, h4: Float = 0, h5: Float = 0, h6: Float = 0, h7: Float = 0
        var output: Float = 0
        for i in 0..<8 {
            let out = lines[i][positions[i]]
            let d = out + dampingCoefficient * (damping[i] - out)
            damping[i] = d
            output += signs[i] * d
            switch i {
            case 0: h0 = d
            case 1: h1 = d
            case 2: h2 = d
            case 3: h3 = d
            case 4: h4 = d
            case 5: h5 = d
            case 6: h6 = d
            default: h7 = d
            }
        }
        // Fast Walsh-Hadamard transform of the eight outputs, normalised to stay lossless.
        (h0, h1) = (h0 + h1, h0 - h1); (h2, h3) = (h2 + h3, h2 - h3); (h4, h5) = (h4 + h5, h4 - h5); (h6, h7) = (h6 + h7, h6 - h7)
        (h0, h2) = (h0 + h2, h0 - h2); (h1, h3) = (h1 + h3, h1 - h3); (h4, h6) = (h4 + h6, h4 - h6); (h5, h7) = (h5 + h7, h5 - h7)
        (h0, h4) = (h0 + h4, h0 - h4); (h1, h5) = (h1 + h5, h1 - h5); (h2, h6) = (h2 + h6, h2 - h6); (h3, h7) = (h3 + h7, h3 - h7)
        let norm: Float = 0.35355339  // 1/sqrt(8)
        let mixed = (h0, h1, h2, h3, h4, h5, h6, h7)
        for i in 0..<8 {
            let v: Float
            switch i {
            case 0: v = mixed.0
            case 1: v = mixed.1
            case 2: v = mixed.2
            case 3: v = mixed.3
            case 4: v = mixed.4
            case 5: v = mixed.5
            case 6: v = mixed.6
            default: v = mixed.7
            }
            lines[i][positions[i]] = feedback[i] * norm * v + x
            positions[i] += 1
            if positions[i] == lines[i].count { positions[i] = 0 }
        }
        return output
    }
}

/// Second-order Butterworth high-pass: a small loudspeaker makes no bass.
private struct HighPass {
    private var b0, b1, b2, a1, a2: Float
    private var x1: Float = 0, x2: Float = 0, y1: Float = 0, y2: Float = 0

    init(cutoff: Double, sampleRate fs: Double) {
        let w = 2 * Double.pi * cutoff / fs
        let cosw = cosine(w), alpha = sine(w) / (2 * 0.7071)
        let a0 = 1 + alpha
        b0 = Float((1 + cosw) / 2 / a0); b1 = Float(-(1 + cosw) / a0); b2 = b0
        a1 = Float(-2 * cosw / a0); a2 = Float((1 - alpha) / a0)
    }

    @inline(__always)
    mutating func process(_ x: Float) -> Float {
        let y = b0 * x + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2
        x2 = x1; x1 = x; y2 = y1; y1 = y
        return y
    }
}

/// Pink noise (Paul Kellet's economy filter over white noise): the hum and rustle of a classroom.
private struct PinkNoise {
    private var random: SplitMix
    private var b0: Float = 0, b1: Float = 0, b2: Float = 0
    init(seed: UInt64) { random = SplitMix(seed: seed) }

    /// The output's RMS over `samples` samples of a copy, so the level can be set exactly.
    func measuredRMS(samples: Int) -> Double {
        var copy = self
        var sum = 0.0
        for _ in 0..<samples { let x = Double(copy.next()); sum += x * x }
        return (sum / Double(max(samples, 1))).squareRoot()
    }

    @inline(__always)
    mutating func next() -> Float {
        let white = Float(random.unit() * 2 - 1) * 1.7320508  // uniform with unit variance
        b0 = 0.99765 * b0 + white * 0.0990460
        b1 = 0.96300 * b1 + white * 0.2965164
        b2 = 0.57000 * b2 + white * 1.0526913
        return b0 + b1 + b2 + white * 0.1848
    }
}

/// A small, fast, seedable pseudo-random generator (SplitMix64), so every simulated run is identical.
struct SplitMix {
    private var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }
}
