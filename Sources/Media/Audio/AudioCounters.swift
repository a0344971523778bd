public import Synchronization
#if canImport(Glibc)
internal import Glibc
#endif

/// Everything a technician needs to know about the audio path, updated by the real-time threads with
/// relaxed atomics (no lock, no allocation) and read by diagnostics and health reports at any time.
public final class AudioCounters: Sendable {
    /// Capture overruns (the device filled its buffer before the box read it).
    public let captureXruns = Atomic<Int>(0)
    /// Playback underruns (the device ran out of frames to play).
    public let playbackXruns = Atomic<Int>(0)
    /// Times a vanished capture device was reopened.
    public let captureReopens = Atomic<Int>(0)
    /// Times a vanished playback device was reopened.
    public let playbackReopens = Atomic<Int>(0)
    /// True while the capture device is gone and being retried.
    public let captureGone = Atomic<Bool>(false)
    /// True while the playback device is gone and being retried.
    public let playbackGone = Atomic<Bool>(false)
    /// Capture device errors other than xruns (after which the cycle was abandoned).
    public let captureErrors = Atomic<Int>(0)
    /// Playback device errors other than xruns.
    public let playbackErrors = Atomic<Int>(0)
    /// Playback frames filled with silence because nothing was queued to play.
    public let playbackStarvedFrames = Atomic<Int>(0)
    /// Canceller frames processed without a loudspeaker reference (zeros used).
    public let renderStarvedFrames = Atomic<Int>(0)
    /// Processed frames dropped because nobody consumed the output.
    public let outputDroppedFrames = Atomic<Int>(0)
    /// Frames processed (10 ms each).
    public let processedFrames = Atomic<Int>(0)
    /// Capture vs playback clock drift in thousandths of a ppm (ppm × 1000).
    public let driftMilliPPM = Atomic<Int>(0)
    /// True once the drift estimate is established.
    public let driftKnown = Atomic<Bool>(false)
    /// The loudspeaker's clock against CLOCK_MONOTONIC in thousandths of a ppm (for the network
    /// streams' drift: a peer's RTP clock is measured against the same monotonic clock).
    public let playbackClockMilliPPM = Atomic<Int>(0)
    /// True once the loudspeaker's clock rate is established.
    public let playbackClockKnown = Atomic<Bool>(false)
    /// Capture delay (frames between the converter and the application) at the last period.
    public let captureDelayFrames = Atomic<Int>(0)
    /// Playback delay (frames queued in the device) at the last period.
    public let playbackDelayFrames = Atomic<Int>(0)
    /// Samples between the loudspeaker frame and the microphone frame handed to the processor together,
    /// from the devices' delays and the reference queue: where the canceller should find the echo's
    /// bulk delay (plus the room's flight time).
    public let alignmentOffsetFrames = Atomic<Int>(0)
    /// Microphone samples at or beyond full scale.
    public let captureClippedSamples = Atomic<Int>(0)
    /// Peak microphone level of the last period, as Float bits.
    public let capturePeakBits = Atomic<UInt32>(0)
    /// Mean-square microphone level of the last period, as Float bits.
    public let captureMeanSquareBits = Atomic<UInt32>(0)
    /// Peak loudspeaker level of the last period, as Float bits.
    public let playbackPeakBits = Atomic<UInt32>(0)
    /// CLOCK_MONOTONIC (ns) of the last playback period handed to the card (0: none yet): the playback
    /// thread takes its next period from `playbackSource` about one period later. The network thread
    /// keeps time with this instead of its own timer, so it fills the loudspeaker just in time.
    public let playbackCycleNanoseconds = Atomic<Int64>(0)
    /// CLOCK_MONOTONIC (ns) of the capture period whose read completed the last processed frame, stored
    /// once that frame is queued on the engine's output (0: none yet): the next frame follows 10 ms later.
    public let frameQueuedNanoseconds = Atomic<Int64>(0)
    /// Mean-square loudspeaker level of the last period, as Float bits.
    public let playbackMeanSquareBits = Atomic<UInt32>(0)

    /// Zeroed counters.
    public init() {}

    /// A consistent-enough copy for reports.
    public func snapshot() -> AudioCounterSnapshot {
        func db(_ bits: borrowing Atomic<UInt32>, square: Bool) -> Double {
            let v = Double(Float(bitPattern: bits.load(ordering: .relaxed)))
            return (square ? 10 : 20) * log10(max(v, 1e-12))
        }
        return AudioCounterSnapshot(
            captureXruns: captureXruns.load(ordering: .relaxed), playbackXruns: playbackXruns.load(ordering: .relaxed),
            captureReopens: captureReopens.load(ordering: .relaxed), playbackReopens: playbackReopens.load(ordering: .relaxed),
            captureErrors: captureErrors.load(ordering: .relaxed), playbackErrors: playbackErrors.load(ordering: .relaxed),
            captureGone: captureGone.load(ordering: .relaxed), playbackGone: playbackGone.load(ordering: .relaxed),
            playbackStarvedFrames: playbackStarvedFrames.load(ordering: .relaxed),
            renderStarvedFrames: renderStarvedFrames.load(ordering: .relaxed),
            outputDroppedFrames: outputDroppedFrames.load(ordering: .relaxed),
            processedFrames: processedFrames.load(ordering: .relaxed),
            driftPPM: driftKnown.load(ordering: .relaxed) ? Double(driftMilliPPM.load(ordering: .relaxed)) / 1000 : nil,
            captureDelayFrames: captureDelayFrames.load(ordering: .relaxed), playbackDelayFrames: playbackDelayFrames.load(ordering: .relaxed),
            alignmentOffsetFrames: alignmentOffsetFrames.load(ordering: .relaxed),
            captureClippedSamples: captureClippedSamples.load(ordering: .relaxed),
            capturePeakDbfs: db(capturePeakBits, square: false), captureRMSDbfs: db(captureMeanSquareBits, square: true),
            playbackPeakDbfs: db(playbackPeakBits, square: false), playbackRMSDbfs: db(playbackMeanSquareBits, square: true))
    }
}

/// The audio counters at one moment.
public struct AudioCounterSnapshot: Sendable, Equatable, Codable {
    /// Xruns, reopens and other errors per direction (see `AudioCounters`).
    public var captureXruns, playbackXruns, captureReopens, playbackReopens, captureErrors, playbackErrors: Int
    /// Whether each device is gone right now (being retried).
    public var captureGone, playbackGone: Bool
    /// Frames of silence played, frames processed without reference, frames dropped, frames processed.
    public var playbackStarvedFrames, renderStarvedFrames, outputDroppedFrames, processedFrames: Int
    /// Capture vs playback drift in ppm, nil until measured.
    public var driftPPM: Double?
    /// Device delays, the reference-to-microphone offset, and clipped microphone samples.
    public var captureDelayFrames, playbackDelayFrames, alignmentOffsetFrames, captureClippedSamples: Int
    /// Levels of the last period in dBFS.
    public var capturePeakDbfs, captureRMSDbfs, playbackPeakDbfs, playbackRMSDbfs: Double
}

