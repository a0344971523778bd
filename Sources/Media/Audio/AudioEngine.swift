public import Devices
import Synchronization
#if canImport(Glibc)
internal import Glibc
#endif

/// The real-time audio engine: one thread plays the far end through the loudspeaker, one thread reads
/// the microphone, brings it onto the loudspeaker's clock (drift measured from the devices' timestamps
/// and compensated by an adaptive resampler), pairs each 10 ms microphone frame with what the
/// loudspeaker played, runs the capture processor (the echo canceller) and queues the result for the
/// network. The threads meet only in lock-free rings and atomic counters; after `init`, nothing on
/// their path allocates, locks or logs, and the only system calls are the devices' reads and writes.
///
/// The same two cycles run on threads against real devices (`start`) or in turn on the caller's
/// thread for offline simulation (`step`).
public final class AudioEngine<Processor: CaptureProcessor>: @unchecked Sendable {
    // @unchecked: each mutable member below is touched by exactly one thread (marked), or is atomic.

    /// How the engine is set up.
    public struct Configuration: Sendable {
        /// Samples per processing frame (10 ms).
        public var frameSamples: Int
        /// Capture channels that carry the microphone(s).
        public var micChannels: [Int]
        /// Average the microphone channels (true) or use the first (false).
        public var averageMicChannels: Bool
        /// SCHED_FIFO priority for the threads, nil for ordinary threads.
        public var realtimePriority: Int32?
        /// Also play what was processed (a loopback, for tests and the hardware self-test).
        public var loopProcessedToPlayback: Bool

        /// A configuration for a device rate.
        public init(rate: Int, micChannels: [Int] = [0], averageMicChannels: Bool = true, realtimePriority: Int32? = nil,
                    loopProcessedToPlayback: Bool = false) {
            frameSamples = rate / 100
            self.micChannels = micChannels
            self.averageMicChannels = averageMicChannels
            self.realtimePriority = realtimePriority
            self.loopProcessedToPlayback = loopProcessedToPlayback
        }
    }

    /// Far-end audio to play (mono, the playback device's rate): the network path writes here.
    public let playbackSource: SPSCRing
    /// Processed microphone frames (mono, playback clock): the encoder reads here.
    public let output: SPSCRing
    /// Counters for diagnostics and health reports.
    public let counters = AudioCounters()
    /// The capture processor; touch it only while the engine is stopped.
    public var processor: Processor

    private let configuration: Configuration
    private var capturePort: any AudioPort  // capture thread
    private var playbackPort: any AudioPort  // playback thread
    private let render = SPSCRing(minimumCapacity: 48000)  // what was played, for the canceller
    private let playbackClock = ObservationRing(capacity: 512)
    private let running = Atomic<Bool>(false)
    private var threads: [RealtimeThread] = []

    // Capture-thread state.
    private var captureConverter: SampleConverter
    private let captureRaw: UnsafeMutableRawPointer
    private let captureMono: UnsafeMutablePointer<Float>
    private var resampler = AdaptiveResampler()
    private var drift: ClockDriftEstimator
    private var capturedFrames = 0
    private var periodsSinceDrift = 0
    private let frameCapture: UnsafeMutablePointer<Float>
    private let frameRender: UnsafeMutablePointer<Float>
    private let frameOutput: UnsafeMutablePointer<Float>

    // Playback-thread state.
    private var playbackConverter: SampleConverter
    private let playbackRaw: UnsafeMutableRawPointer
    private let playbackMono: UnsafeMutablePointer<Float>
    private var playedFrames = 0

    /// The loudspeaker's period in samples (what the playback thread takes from `playbackSource` at once).
    public var playbackPeriodFrames: Int { playbackPort.configuration.periodFrames }

    /// Whether the threads got real-time scheduling (known after `start`).
    public private(set) var realtime = false
    /// Whether memory could be locked (known after `start`).
    public private(set) var memoryLocked = false
    /// Samples the engine must have captured beyond a frame before it can process it (the resampler's
    /// look-ahead).
    public var captureLookaheadSamples: Int { captureLeadInSamples }
    /// Samples of silence the processor's frames start with, on both the microphone and the loudspeaker
    /// reference: the resampler's look-ahead, spent up front so that each 10 ms frame ends where a card
    /// period ends (otherwise every frame waited one more period for its last 32 samples). Sample `n`
    /// the processor sees is sample `n - captureLeadInSamples` the microphone heard and the loudspeaker
    /// played; the two stay paired exactly as before.
    public let captureLeadInSamples: Int

    /// An engine over two open ports with the same rate.
    public init(capture: any AudioPort, playback: any AudioPort, processor: Processor, configuration: Configuration) {
        precondition(capture.stream == .capture && playback.stream == .playback)
        self.capturePort = capture
        self.playbackPort = playback
        self.processor = processor
        self.configuration = configuration
        let rate = playback.configuration.rate
        playbackSource = SPSCRing(minimumCapacity: rate * 2)
        output = SPSCRing(minimumCapacity: rate)
        let maxPeriod = max(capture.configuration.periodFrames, playback.configuration.periodFrames, configuration.frameSamples) * 4
        captureConverter = SampleConverter(configuration: capture.configuration, micChannels: configuration.micChannels,
                                           average: configuration.averageMicChannels)
        playbackConverter = SampleConverter(configuration: playback.configuration, micChannels: [0], average: false)
        captureRaw = .allocate(byteCount: maxPeriod * capture.configuration.bytesPerFrame, alignment: 16)
        playbackRaw = .allocate(byteCount: maxPeriod * playback.configuration.bytesPerFrame, alignment: 16)
        captureMono = .allocate(capacity: maxPeriod)
        playbackMono = .allocate(capacity: maxPeriod)
        frameCapture = .allocate(capacity: configuration.frameSamples)
        frameRender = .allocate(capacity: configuration.frameSamples)
        frameOutput = .allocate(capacity: configuration.frameSamples)
        drift = ClockDriftEstimator(nominalRate: rate)
        // The resampler needs its look-ahead (32 samples) beyond a position before it can output it, so
        // frames aligned on the card's periods would each wait a whole extra period for their last 32
        // samples. Starting the output 32 samples early (silence) puts each 10 ms frame's end exactly on a
        // period's end: a frame is processed as soon as the period holding its last sample is read. The
        // loudspeaker reference starts with as much silence, so the canceller's pairs do not move.
        captureLeadInSamples = resampler.latency + 1
        let lead = [Float](repeating: 0, count: captureLeadInSamples)
        lead.withUnsafeBufferPointer {
            _ = resampler.push($0)
            _ = render.write($0)
        }
    }

    deinit {
        stop()
        captureConverter.release()
        playbackConverter.release()
        captureRaw.deallocate()
        playbackRaw.deallocate()
        captureMono.deallocate()
        playbackMono.deallocate()
        frameCapture.deallocate()
        frameRender.deallocate()
        frameOutput.deallocate()
    }

    // MARK: Running

    /// Opens a device again after it vanished (a USB speakerphone unplugged and plugged back); returns
    /// nil while it is still missing. Called from the direction's own thread, which has no audio to
    /// move meanwhile; the other direction keeps running.
    public typealias Reopen = @Sendable (PCMStream) -> (any AudioPort)?

    /// Starts the playback and capture threads; a vanished device is retried every `reopenInterval`
    /// seconds with `reopen` (without it, that direction stops).
    public func start(reopen: Reopen? = nil, reopenInterval: Double = 1.0) {
        guard !running.load(ordering: .relaxed) else { return }
        memoryLocked = RealtimeThread.lockMemory()
        running.store(true, ordering: .releasing)
        _ = capturePort.start()
        let priority = configuration.realtimePriority
        let playbackThread = RealtimeThread(name: "classbox-play", priority: priority) { [unowned self] in
            runDirection(.playback, reopen: reopen, interval: reopenInterval)
        }
        let captureThread = RealtimeThread(name: "classbox-capture", priority: priority) { [unowned self] in
            runDirection(.capture, reopen: reopen, interval: reopenInterval)
        }
        threads = [playbackThread, captureThread]
        realtime = threads.allSatisfy(\.isRealtime)
    }

    /// One direction's thread: cycles while the device works; when it is gone, retries `reopen`.
    private func runDirection(_ stream: PCMStream, reopen: Reopen?, interval: Double) {
        while running.load(ordering: .relaxed) {
            let alive = stream == .capture ? captureCycle() : playbackCycle()
            if alive { continue }
            guard let reopen else { return }
            if stream == .capture { counters.captureGone.store(true, ordering: .relaxed) } else {
                counters.playbackGone.store(true, ordering: .relaxed)
            }
            var replacement: (any AudioPort)? = nil
            while running.load(ordering: .relaxed) && replacement == nil {
                usleep(UInt32(interval * 1_000_000))
                replacement = reopen(stream)
            }
            guard let port = replacement else { return }
            if stream == .capture {
                capturePort = port
                drift.capture.reset()
                capturedFrames = 0
                _ = port.start()
                counters.captureReopens.add(1, ordering: .relaxed)
                counters.captureGone.store(false, ordering: .relaxed)
            } else {
                playbackPort = port
                playedFrames = 0
                counters.playbackReopens.add(1, ordering: .relaxed)
                counters.playbackGone.store(false, ordering: .relaxed)
            }
        }
    }

    /// Stops the threads and waits for them.
    public func stop() {
        running.store(false, ordering: .releasing)
        for thread in threads { thread.join() }
        threads = []
    }

    /// Runs one playback period and one capture period on the caller's thread (offline simulation).
    /// Returns false when a device failed for good.
    @discardableResult
    public func step() -> Bool { playbackCycle() && captureCycle() }

    // MARK: Playback thread

    /// Plays one period: queued far-end audio (silence when there is none), recording it as the
    /// canceller's reference. Returns false when the device is gone.
    func playbackCycle() -> Bool {
        let period = playbackPort.configuration.periodFrames
        let got = playbackSource.read(into: UnsafeMutableBufferPointer(start: playbackMono, count: period))
        if got < period {
            (playbackMono + got).update(repeating: 0, count: period &- got)
            counters.playbackStarvedFrames.add(period &- got, ordering: .relaxed)
        }
        meter(playbackMono, count: period, peak: counters.playbackPeakBits, meanSquare: counters.playbackMeanSquareBits)
        playbackConverter.fromMono(playbackMono, frames: period, into: playbackRaw)
        var written = 0
        let bytes = playbackPort.configuration.bytesPerFrame
        while written < period {
            let n = playbackPort.transfer(playbackRaw + written &* bytes, frames: period &- written)
            if n > 0 { written &+= n; continue }
            if n == -Int(EAGAIN) { break }
            if n == -Int(EPIPE) || n == -Int(ESTRPIPE) {
                counters.playbackXruns.add(1, ordering: .relaxed)
                if playbackPort.recover(from: n) < 0 { return false }
                continue
            }
            if n == -Int(ENODEV) { return false }
            counters.playbackErrors.add(1, ordering: .relaxed)
            break
        }
        // The reference is what reached the device, in the order it was played.
        if render.write(UnsafeBufferPointer(start: playbackMono, count: written)) < written {
            render.discard(0)  // full: the capture side is not consuming; its starvation counter tells
        }
        playedFrames &+= written
        if let stamp = playbackPort.timestamp() {
            counters.playbackCycleNanoseconds.store(stamp.nanoseconds, ordering: .releasing)
            counters.playbackDelayFrames.store(stamp.delayFrames, ordering: .relaxed)
            _ = playbackClock.push(nanoseconds: stamp.nanoseconds, position: Double(playedFrames &- stamp.delayFrames))
        }
        return true
    }

    // MARK: Capture thread

    /// Reads one period, compensates drift, and processes every complete 10 ms frame.
    /// Returns false when the device is gone.
    func captureCycle() -> Bool {
        let period = capturePort.configuration.periodFrames
        let bytes = capturePort.configuration.bytesPerFrame
        var read = 0
        while read < period {
            let n = capturePort.transfer(captureRaw + read &* bytes, frames: period &- read)
            if n > 0 { read &+= n; continue }
            if n == -Int(EAGAIN) { continue }
            if n == -Int(EPIPE) || n == -Int(ESTRPIPE) || n == 0 {
                counters.captureXruns.add(1, ordering: .relaxed)
                if capturePort.recover(from: n == 0 ? -Int(EPIPE) : n) < 0 { return false }
                // Frames were lost: the frame count no longer matches the clock.
                drift.capture.reset()
                capturedFrames = 0
                read = 0
                _ = capturePort.start()
                continue
            }
            if n == -Int(ENODEV) { return false }
            counters.captureErrors.add(1, ordering: .relaxed)
            return true
        }
        capturedFrames &+= read
        let clipped = captureConverter.toMono(captureRaw, frames: read, into: captureMono)
        if clipped > 0 { counters.captureClippedSamples.add(clipped, ordering: .relaxed) }
        meter(captureMono, count: read, peak: counters.capturePeakBits, meanSquare: counters.captureMeanSquareBits)
        var cycleNanoseconds: Int64 = 0
        if let stamp = capturePort.timestamp() {
            cycleNanoseconds = stamp.nanoseconds
            counters.captureDelayFrames.store(stamp.delayFrames, ordering: .relaxed)
            drift.capture.add(nanoseconds: stamp.nanoseconds, position: Double(capturedFrames &+ stamp.delayFrames))
        }
        while let (time, position) = playbackClock.pop() { drift.playback.add(nanoseconds: time, position: position) }
        periodsSinceDrift &+= 1
        if periodsSinceDrift * period >= capturePort.configuration.rate {  // once a second
            periodsSinceDrift = 0
            if let ppm = drift.playback.ppm(), abs(ppm) < 2000 {
                counters.playbackClockMilliPPM.store(Int((ppm * 1000).rounded()), ordering: .relaxed)
                counters.playbackClockKnown.store(true, ordering: .relaxed)
            }
            if let ppm = drift.driftPPM(), abs(ppm) < 2000 {
                resampler.step = 1 + ppm * 1e-6
                counters.driftMilliPPM.store(Int((ppm * 1000).rounded()), ordering: .relaxed)
                counters.driftKnown.store(true, ordering: .relaxed)
            }
        }
        resampler.push(UnsafeBufferPointer(start: captureMono, count: read))
        let frame = configuration.frameSamples
        while resampler.available >= frame {
            _ = resampler.pull(into: UnsafeMutableBufferPointer(start: frameCapture, count: frame))
            // The reference frame left the application `render.readable` samples plus the playback
            // queue ago; the microphone frame reached the converter the capture queue ago.
            counters.alignmentOffsetFrames.store(
                render.readable &+ counters.playbackDelayFrames.load(ordering: .relaxed)
                    &- counters.captureDelayFrames.load(ordering: .relaxed), ordering: .relaxed)
            let got = render.read(into: UnsafeMutableBufferPointer(start: frameRender, count: frame))
            if got < frame {
                (frameRender + got).update(repeating: 0, count: frame &- got)
                counters.renderStarvedFrames.add(1, ordering: .relaxed)
            }
            processor.process(render: UnsafeBufferPointer(start: frameRender, count: frame),
                              capture: UnsafeBufferPointer(start: frameCapture, count: frame),
                              output: UnsafeMutableBufferPointer(start: frameOutput, count: frame))
            counters.processedFrames.add(1, ordering: .relaxed)
            let processed = UnsafeBufferPointer(start: UnsafePointer(frameOutput), count: frame)
            if output.write(processed) < frame { counters.outputDroppedFrames.add(1, ordering: .relaxed) }
            if cycleNanoseconds > 0 { counters.frameQueuedNanoseconds.store(cycleNanoseconds, ordering: .releasing) }
            if configuration.loopProcessedToPlayback { playbackSource.write(processed) }
        }
        return true
    }

    @inline(__always)
    private func meter(_ samples: UnsafePointer<Float>, count: Int, peak: borrowing Atomic<UInt32>, meanSquare: borrowing Atomic<UInt32>) {
        guard count > 0 else { return }
        var p: Float = 0, s: Float = 0
        for i in 0..<count { let v = samples[i]; p = max(p, abs(v)); s += v * v }
        peak.store(p.bitPattern, ordering: .relaxed)
        meanSquare.store((s / Float(count)).bitPattern, ordering: .relaxed)
    }
}

/// A lock-free single-producer, single-consumer queue of clock observations (time, frame position),
/// carrying the playback thread's timestamps to the capture thread's drift estimator.
final class ObservationRing: @unchecked Sendable {
    // One producer (playback thread), one consumer (capture thread), hand-over by acquire/release.
    private let times: UnsafeMutablePointer<Int64>
    private let positions: UnsafeMutablePointer<Double>
    private let mask: Int
    private let head = Atomic<Int>(0)
    private let tail = Atomic<Int>(0)

    init(capacity: Int) {
        var size = 1
        while size < capacity { size <<= 1 }
        mask = size - 1
        times = .allocate(capacity: size)
        positions = .allocate(capacity: size)
    }

    deinit {
        times.deallocate()
        positions.deallocate()
    }

    func push(nanoseconds: Int64, position: Double) -> Bool {
        let h = head.load(ordering: .relaxed)
        guard h &- tail.load(ordering: .acquiring) <= mask else { return false }
        times[h & mask] = nanoseconds
        positions[h & mask] = position
        head.store(h &+ 1, ordering: .releasing)
        return true
    }

    func pop() -> (Int64, Double)? {
        let t = tail.load(ordering: .relaxed)
        guard t != head.load(ordering: .acquiring) else { return nil }
        let value = (times[t & mask], positions[t & mask])
        tail.store(t &+ 1, ordering: .releasing)
        return value
    }
}
