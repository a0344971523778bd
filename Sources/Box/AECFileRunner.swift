// The logic of `classbox aec`: the echo canceller over a loudspeaker file and a microphone file, frame by
// frame exactly as the box's real-time path runs it (render frame, then capture frame, 10 ms at a time,
// no look-ahead), written to an output file of the microphone's length.
public import EchoCancel
import Media
import Foundation

/// Why `classbox aec` could not run; `description` says what to do. Exit code 2.
public struct AECFileError: Error, Sendable, CustomStringConvertible {
    /// What is wrong and what to do.
    public var description: String
    /// The exit code for bad input.
    public static let exitCode: Int32 = 2
}

/// What `classbox aec` did.
public struct AECFileReport: Sendable {
    /// Sample rate of the files.
    public var sampleRate: Int
    /// Audio processed, in seconds.
    public var audioSeconds: Double
    /// Wall time spent in the canceller, in seconds.
    public var processingSeconds: Double
    /// The output's delay against the microphone, in milliseconds (the canceller's algorithmic latency).
    public var latencyMilliseconds: Double
    /// The canceller's statistics at the end of the file.
    public var statistics: EchoCancellerStatistics
    /// Estimated delay (ms) sampled once per second of audio, for a look at drift and jumps.
    public var delayTrack: [Double?]

    /// Lines for `--stats`.
    public var lines: [String] {
        let s = statistics
        func f(_ v: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", v) }
        return [
            "rate_hz: \(sampleRate)",
            "audio_s: \(f(audioSeconds, 2))",
            "processing_s: \(f(processingSeconds, 3)) (\(f(processingSeconds / max(audioSeconds, 1e-9) * 100, 2)) % of real time)",
            "latency_ms: \(f(latencyMilliseconds, 2))",
            "delay_ms: \(s.delayMilliseconds.map { f($0) } ?? "not locked")",
            "erle_db: \(f(s.erleDecibels))",
            "double_talk_frames: \(s.doubleTalkFrames) of \(s.framesProcessed)",
            "divergence_resets: \(s.divergenceResets)",
            "shadow_copies: \(s.shadowCopies)",
            "delay_changes: \(s.delayChanges)",
            "clipped_samples: capture \(s.clippedCaptureSamples), render \(s.clippedRenderSamples)",
            "render_starved_blocks: \(s.renderStarvedBlocks)",
            "delay_track_ms (1/s): " + delayTrack.map { $0.map { f($0, 0) } ?? "-" }.joined(separator: " "),
        ]
    }
}

/// Runs the canceller over WAV files.
public enum AECFileRunner {
    /// Reads `far` (loudspeaker) and `mic`, cancels, writes `out` (16-bit PCM at the input rate, the
    /// microphone's length). Throws `AECFileError` with a message that says what to fix.
    /// `linearOnly` switches the residual-echo suppressor off (diagnostics: the linear filter's own output).
    public static func run(far: String, mic: String, out: String, linearOnly: Bool = false) throws(AECFileError) -> AECFileReport {
        let farAudio = try read(far, role: "far-end (loudspeaker)")
        let micAudio = try read(mic, role: "microphone")
        guard farAudio.sampleRate == micAudio.sampleRate else {
            throw AECFileError(description: "\(far) is \(farAudio.sampleRate) Hz but \(mic) is \(micAudio.sampleRate) Hz: both files must have the same rate; resample one, e.g. `sox \(far) -r \(micAudio.sampleRate) far.wav`")
        }
        let rate = micAudio.sampleRate
        var canceller: EchoCanceller
        do {
            canceller = try EchoCanceller(EchoCancellerConfiguration(sampleRate: rate, residualSuppression: !linearOnly))
        } catch {
            throw AECFileError(description: "\(mic): \(error.description)")
        }
        let farSamples = farAudio.mono()
        let micSamples = micAudio.mono()
        let frame = canceller.frameLength
        let frames = (micSamples.count + frame - 1) / frame
        var farFrame = [Float](repeating: 0, count: frame)
        var micFrame = [Float](repeating: 0, count: frame)
        var outFrame = [Float](repeating: 0, count: frame)
        var output = [Float](repeating: 0, count: frames * frame)
        var track: [Double?] = []
        let clock = ContinuousClock()
        let started = clock.now
        for f in 0..<frames {
            let start = f * frame
            for i in 0..<frame {
                let n = start + i
                farFrame[i] = n < farSamples.count ? farSamples[n] : 0
                micFrame[i] = n < micSamples.count ? micSamples[n] : 0
            }
            farFrame.withUnsafeBufferPointer { canceller.render($0) }
            micFrame.withUnsafeBufferPointer { m in
                outFrame.withUnsafeMutableBufferPointer { o in canceller.process(capture: m, output: o) }
            }
            for i in 0..<frame { output[start + i] = outFrame[i] }
            if (f + 1) % 100 == 0 { track.append(canceller.statistics.delayMilliseconds) }
        }
        let elapsed = clock.now - started
        output.removeLast(output.count - micSamples.count)
        do {
            try WAVAudio(sampleRate: rate, samples: output).write(path: out)
        } catch {
            throw AECFileError(description: error.description)
        }
        return AECFileReport(
            sampleRate: rate, audioSeconds: Double(micSamples.count) / Double(rate),
            processingSeconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18,
            latencyMilliseconds: Double(canceller.latencySamples) * 1000 / Double(rate),
            statistics: canceller.statistics, delayTrack: track)
    }

    private static func read(_ path: String, role: String) throws(AECFileError) -> WAVAudio {
        let audio: WAVAudio
        do {
            audio = try WAVAudio.read(path: path)
        } catch {
            throw AECFileError(description: "\(role) file \(error.description)")
        }
        guard EchoCancelFrame.samples(atRate: audio.sampleRate) != nil else {
            throw AECFileError(description: "\(role) file \(path): \(audio.sampleRate) Hz is not supported; the canceller runs at \(EchoCancelFrame.supportedRates.map(String.init).joined(separator: " or ")) Hz, so resample first, e.g. `sox \(path) -r 16000 out.wav`")
        }
        guard audio.channels == 1 else {
            throw AECFileError(description: "\(role) file \(path) has \(audio.channels) channels; give a mono file (e.g. `sox \(path) -c 1 mono.wav`)")
        }
        return audio
    }
}
