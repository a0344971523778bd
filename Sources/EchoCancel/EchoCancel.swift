// EchoCancel: the acoustic echo canceller, pure Swift DSP: it removes the remote teacher's voice, as the
// classroom loudspeaker plays it, from the classroom microphone while keeping the pupils' voices.
// It must never import anything but the standard library, and after construction its processing must
// never allocate, lock or make a system call: it runs inside the real-time audio thread.
//
// Signal flow (16 kHz core; at 48 kHz the band below 7.5 kHz is decimated into the same core):
//   render -> ring (2 s) ---------------------------> delay estimator (2 kHz matched filters)
//                     \-> aligned by the bulk delay -> render spectra -> main + shadow filters (PBFDAF)
//   capture -> 64-sample blocks -> minus echo estimate -> residual-echo suppressor + comfort noise -> out

/// The canceller's frame: 10 ms of audio, the unit in which render and capture are fed.
public enum EchoCancelFrame {
    /// Sample rates the canceller runs at.
    public static let supportedRates = [16000, 48000]

    /// Samples in one 10 ms frame at `rate`, or nil when the canceller does not run at that rate.
    public static func samples(atRate rate: Int) -> Int? {
        supportedRates.contains(rate) ? rate / 100 : nil
    }
}

/// Why an echo canceller could not be made.
public enum EchoCancellerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The sample rate is not 16000 or 48000 Hz.
    case unsupportedSampleRate(Int)
    /// More than one microphone channel (a later version).
    case unsupportedChannelCount(Int)
    /// The tail length is outside 64-640 ms.
    case unsupportedTailLength(milliseconds: Int)

    public var description: String {
        switch self {
        case .unsupportedSampleRate(let rate):
            return "sample rate \(rate) Hz is not supported: use 16000 or 48000 Hz (resample the audio first)"
        case .unsupportedChannelCount(let n):
            return "\(n) microphone channels are not supported yet: give one channel (mix or pick one microphone)"
        case .unsupportedTailLength(let ms):
            return "an echo tail of \(ms) ms is not supported: choose 64 to 640 ms"
        }
    }
}

/// How to build an echo canceller.
public struct EchoCancellerConfiguration: Sendable, Equatable {
    /// Sample rate of both render and capture: 16000 or 48000 Hz.
    public var sampleRate: Int
    /// Microphone channels (1 for now; the API carries the count so that a multi-microphone version fits).
    public var captureChannels: Int
    /// Echo tail the main filter covers after the bulk delay, in milliseconds (the bulk delay itself,
    /// 0-640 ms, is found separately).
    public var tailMilliseconds: Int
    /// Length of the fast shadow filter, in milliseconds (at most the tail; by default the same length, so
    /// that a copy of it into the main filter loses nothing).
    public var shadowMilliseconds: Int
    /// Residual-echo suppression and comfort noise after the linear filter (default on). Off leaves the
    /// linear canceller's output alone: for diagnostics, never for a box.
    public var residualSuppression: Bool

    /// A configuration for `sampleRate` with the defaults: mono, 400 ms tail, shadow filter as long.
    public init(sampleRate: Int, captureChannels: Int = 1, tailMilliseconds: Int = 400, shadowMilliseconds: Int = 300,
                residualSuppression: Bool = true) {
        self.sampleRate = sampleRate
        self.captureChannels = captureChannels
        self.tailMilliseconds = tailMilliseconds
        self.shadowMilliseconds = shadowMilliseconds
        self.residualSuppression = residualSuppression
    }
}

/// What the canceller is doing, for technicians, health reports and `classbox aec --stats`.
public struct EchoCancellerStatistics: Sendable, Equatable {
    /// Estimated bulk delay from loudspeaker to microphone, in milliseconds; nil before the first lock.
    public var delayMilliseconds: Double?
    /// Echo return loss enhancement over recent far-end activity: microphone over output energy, in dB.
    public var erleDecibels: Double
    /// True while the canceller sees both the far end's echo and near-end speech.
    public var doubleTalk: Bool
    /// Frames with double talk so far.
    public var doubleTalkFrames: Int
    /// Times the main filter diverged and was reset.
    public var divergenceResets: Int
    /// Times the fast shadow filter was copied into the main filter (re-convergence after a path change).
    public var shadowCopies: Int
    /// Capture samples at or beyond full scale.
    public var clippedCaptureSamples: Int
    /// Render samples at or beyond full scale.
    public var clippedRenderSamples: Int
    /// Times the bulk-delay alignment moved.
    public var delayChanges: Int
    /// Blocks for which the render stream had not yet delivered the samples the echo path needed.
    public var renderStarvedBlocks: Int
    /// Capture frames processed.
    public var framesProcessed: Int
}

/// The echo canceller for one microphone. Feed the loudspeaker signal with `render(_:)` and the
/// microphone with `process(capture:output:)`, both in 10 ms frames (`frameLength` samples per channel).
/// The two streams may arrive unevenly, as real ALSA buffers deliver them: render may run ahead or behind
/// by several frames; sample n of each stream is taken to be the same instant, and the delay estimator
/// finds the echo's delay (0-640 ms) from there. The output is the cleaned microphone, `latencySamples`
/// later than the input.
///
/// Everything is allocated in `init`; `render` and `process` never allocate, lock or make system calls.
/// Noncopyable: one instance owns its buffers and frees them when it goes away.
public struct EchoCanceller: ~Copyable {
    /// The configuration it was built with.
    public let configuration: EchoCancellerConfiguration
    /// Samples per 10 ms frame and channel.
    public let frameLength: Int
    /// Algorithmic latency of the output, in samples at the configured rate.
    public let latencySamples: Int

    private var core: CancellerCore
    private let coreFrame: Int                   // 160
    private let inputBlock: FloatBuffer          // capture samples waiting for a full block
    private var inputFill = 0
    private let outputRing: FloatBuffer          // core output waiting to be handed out
    private var outputRead = 0
    private var outputWrite = 0
    private static let outputRingSize = 1024
    private var frames = 0
    private var doubleTalkFrames = 0

    // 48 kHz band split.
    private let wideband: Bool
    private var renderDecimator: Decimator3
    private var captureDecimator: Decimator3
    private var lowInterpolator: Interpolator3
    private var micInterpolator: Interpolator3
    private let low16: FloatBuffer               // decimated frame
    private let out16: FloatBuffer              // core output frame
    private let micDelay16: FloatBuffer          // decimated mic delayed by the core latency (ring)
    private var micDelayPos = 0
    private let micDelayed16: FloatBuffer
    private let lowBand48: FloatBuffer
    private let micBand48: FloatBuffer
    private let micDelay48: FloatBuffer          // ring of the full-band mic
    private var micDelay48Pos = 0
    private var upperGain: Float = 1

    /// A canceller for `configuration`; throws when the rate, channel count or tail is not supported.
    public init(_ configuration: EchoCancellerConfiguration) throws(EchoCancellerError) {
        try self.init(configuration, warmUp: true)
    }

    /// The first call through any code path makes the Swift runtime fill its metadata caches and lazy
    /// globals, which allocates once per process; a throwaway instance takes that hit here, at construction,
    /// so that `render` and `process` allocate nothing from their very first call.
    private init(_ configuration: EchoCancellerConfiguration, warmUp: Bool) throws(EchoCancellerError) {
        if warmUp {
            var scratch = try EchoCanceller(configuration, warmUp: false)
            let n = scratch.frameLength
            let zeros = UnsafeMutablePointer<Float>.allocate(capacity: 2 * n)
            zeros.initialize(repeating: 0, count: 2 * n)
            for _ in 0..<3 {
                scratch.render(UnsafeBufferPointer(start: zeros, count: n))
                scratch.process(capture: UnsafeBufferPointer(start: zeros, count: n),
                                output: UnsafeMutableBufferPointer(start: zeros + n, count: n))
            }
            _ = scratch.statistics
            zeros.deallocate()
        }
        guard EchoCancelFrame.samples(atRate: configuration.sampleRate) != nil else {
            throw .unsupportedSampleRate(configuration.sampleRate)
        }
        guard configuration.captureChannels == 1 else { throw .unsupportedChannelCount(configuration.captureChannels) }
        guard (64...640).contains(configuration.tailMilliseconds) else {
            throw .unsupportedTailLength(milliseconds: configuration.tailMilliseconds)
        }
        self.configuration = configuration
        frameLength = configuration.sampleRate / 100
        coreFrame = 160
        let mainPartitions = configuration.tailMilliseconds * 16 / Block.size
        let shadowPartitions = max(4, min(configuration.shadowMilliseconds, configuration.tailMilliseconds) * 16 / Block.size)
        core = CancellerCore(mainPartitions: mainPartitions, shadowPartitions: shadowPartitions)
        core.suppression = configuration.residualSuppression
        inputBlock = FloatBuffer(count: Block.size)
        outputRing = FloatBuffer(count: Self.outputRingSize)
        // Enough zeros up front that a full frame is always ready: the largest shortfall of whole blocks.
        var prime = 0
        for k in 1...Block.size { prime = max(prime, (coreFrame * k) % Block.size) }
        outputWrite = prime
        let coreLatency = prime + Block.size
        wideband = configuration.sampleRate == 48000
        renderDecimator = Decimator3(outputCount: coreFrame)
        captureDecimator = Decimator3(outputCount: coreFrame)
        lowInterpolator = Interpolator3(inputCount: coreFrame)
        micInterpolator = Interpolator3(inputCount: coreFrame)
        low16 = FloatBuffer(count: coreFrame)
        out16 = FloatBuffer(count: coreFrame)
        micDelay16 = FloatBuffer(count: coreLatency)
        micDelayed16 = FloatBuffer(count: coreFrame)
        lowBand48 = FloatBuffer(count: 3 * coreFrame)
        micBand48 = FloatBuffer(count: 3 * coreFrame)
        let fullDelay = BandSplitFilter.roundTripDelay + 3 * coreLatency
        micDelay48 = FloatBuffer(count: wideband ? fullDelay : 1)
        latencySamples = wideband ? fullDelay : coreLatency
    }

    /// Feeds one frame (`frameLength` samples) of what the loudspeaker plays.
    public mutating func render(_ frame: UnsafeBufferPointer<Float>) {
        precondition(frame.count == frameLength, "render frames must hold frameLength samples")
        guard let base = frame.baseAddress else { return }
        if wideband {
            renderDecimator.process(base, low16.base)
            core.pushRender(low16.base, count: coreFrame)
        } else {
            core.pushRender(base, count: coreFrame)
        }
    }

    /// Processes one frame of microphone samples (`frameLength * captureChannels`, interleaved) into
    /// `output` (`frameLength * captureChannels`): the microphone without the loudspeaker's echo.
    public mutating func process(capture: UnsafeBufferPointer<Float>, output: UnsafeMutableBufferPointer<Float>) {
        precondition(capture.count == frameLength * configuration.captureChannels
                     && output.count == capture.count, "capture and output frames must hold frameLength samples per channel")
        guard let input = capture.baseAddress, let out = output.baseAddress else { return }
        frames &+= 1
        if wideband {
            captureDecimator.process(input, low16.base)
            runCore(low16.base, out16.base)
            // The decimated mic, delayed like the core's output, for the upper band's complement.
            let d = micDelay16.count
            for i in 0..<coreFrame {
                micDelayed16[i] = micDelay16[micDelayPos]
                micDelay16[micDelayPos] = low16[i]
                micDelayPos = micDelayPos + 1 == d ? 0 : micDelayPos + 1
            }
            lowInterpolator.process(out16.base, lowBand48.base)
            micInterpolator.process(micDelayed16.base, micBand48.base)
            let target = min(1, core.upperBandGain)
            let d48 = micDelay48.count
            let n = frameLength
            for i in 0..<n {
                let delayed = micDelay48[micDelay48Pos]
                micDelay48[micDelay48Pos] = input[i]
                micDelay48Pos = micDelay48Pos + 1 == d48 ? 0 : micDelay48Pos + 1
                upperGain += (target < upperGain ? 0.05 : 0.002) * (target - upperGain)
                out[i] = lowBand48[i] + upperGain * (delayed - micBand48[i])
            }
        } else {
            runCore(input, out)
        }
        if core.doubleTalk { doubleTalkFrames &+= 1 }
    }

    /// One 160-sample frame through the 64-sample core, with the output FIFO.
    private mutating func runCore(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        let mask = Self.outputRingSize - 1
        var i = 0
        while i < coreFrame {
            let take = min(Block.size - inputFill, coreFrame - i)
            (inputBlock.base + inputFill).update(from: x + i, count: take)
            inputFill += take
            i += take
            if inputFill == Block.size {
                inputFill = 0
                let w = outputWrite & mask
                // The ring size is a multiple of the block size, and writes start block-aligned after the
                // prime only if the prime is; copy through a bounce when it is not.
                if w + Block.size <= Self.outputRingSize {
                    core.process(inputBlock.base, outputRing.base + w)
                } else {
                    core.process(inputBlock.base, micDelayed16.base)
                    for j in 0..<Block.size { outputRing[(outputWrite + j) & mask] = micDelayed16[j] }
                }
                outputWrite &+= Block.size
            }
        }
        for j in 0..<coreFrame { y[j] = outputRing[(outputRead + j) & mask] }
        outputRead &+= coreFrame
    }

    /// The live statistics (computes a logarithm; cheap, but read it from a non-real-time thread).
    public var statistics: EchoCancellerStatistics {
        let c = core.counters
        let erle = core.erleOut > 0 ? DSPMath.decibels(power: Double(core.erleIn) / Double(core.erleOut)) : 0
        return EchoCancellerStatistics(
            delayMilliseconds: core.estimatedDelay.map { Double($0) / 16 },
            erleDecibels: erle, doubleTalk: core.doubleTalk, doubleTalkFrames: doubleTalkFrames,
            divergenceResets: c.divergenceResets, shadowCopies: c.shadowCopies,
            clippedCaptureSamples: c.clippedCapture, clippedRenderSamples: c.clippedRender * (wideband ? 3 : 1),
            delayChanges: c.alignmentChanges, renderStarvedBlocks: c.renderStarved, framesProcessed: frames)
    }
}
