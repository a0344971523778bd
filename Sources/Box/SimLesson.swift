public import BoxConfig
import Devices
public import Media
import Logging
import Foundation

/// Why a simulated lesson could not run.
public struct SimLessonError: Error, Sendable, CustomStringConvertible {
    /// What went wrong and what to do.
    public var description: String
}

/// A lesson in the simulated classroom: the teacher's recorded voice plays through the room's
/// loudspeaker, a pupil talks in the room, and every 10 ms the microphone frame and the loudspeaker
/// frame go through the box's capture processor, as they will in the real-time audio path. Writes
/// what the speaker played, what the microphone heard and what the box would send, plus a summary.
public struct SimLesson {
    /// The board (its `[sim]` room and audio rate).
    public var board: BoardProfile
    /// The box's configuration (its `[sim]` inputs and outputs).
    public var config: BoxConfiguration
    private let logger = Logger(label: "classbox.sim")

    /// A lesson for a sim board and a configuration with a `[sim]` table.
    public init(board: BoardProfile, config: BoxConfiguration) {
        self.board = board
        self.config = config
    }

    /// Runs the lesson with `processor` on the microphone path and returns what was written.
    public func run(processor: inout some CaptureProcessor) throws(SimLessonError) -> SimLessonReport {
        guard let room = board.simRoom, board.audio.backend == .sim else {
            throw SimLessonError(description: "board \"\(board.name)\" has no simulated room; use --board sim")
        }
        guard let sim = config.sim else {
            throw SimLessonError(description: "the configuration has no [sim] table: set sim.lesson (a WAV file of the teacher) and sim.output_dir")
        }
        let rate = board.audio.rate
        let lesson = try readMono(sim.lesson, rate: rate, role: "lesson")
        let pupil = try sim.pupil.map { path throws(SimLessonError) in try readMono(path, rate: rate, role: "pupil") } ?? []
        do {
            try FileManager.default.createDirectory(atPath: sim.outputDir, withIntermediateDirectories: true)
        } catch {
            throw SimLessonError(description: "\(sim.outputDir): cannot create the output directory (\(error.localizedDescription))")
        }

        let frame = rate / 100
        let frames = (max(lesson.count, pupil.count) + frame - 1) / frame
        let total = frames * frame
        // The classroom is driven by the box's own audio engine, one 10 ms period at a time and as fast
        // as the machine goes: loudspeaker and microphone are the sim board's ports, and the processor
        // runs exactly where it runs on a real box.
        let classroom = SimulatedClassroom(spec: room, rate: rate, periodFrames: frame, pupil: pupil, recordFrames: total + frame)
        let recorder = RecordingProcessor(wrapping: processor, capacity: total + frame)
        let engine = AudioEngine(capture: classroom.capture, playback: classroom.playback, processor: recorder,
                                 configuration: .init(rate: rate, micChannels: board.audio.micChannels))
        logger.info("simulated lesson starts", metadata: [
            "seconds": "\(Double(total) / Double(rate))", "processor": "\(processor.name)", "rate": "\(rate)",
        ])

        let clock = ContinuousClock()
        let started = clock.now
        var speakerFrame = [Float](repeating: 0, count: frame)
        var sink = [Float](repeating: 0, count: frame)
        for f in 0...frames {  // one extra period flushes the resampler's latency
            for i in 0..<frame { speakerFrame[i] = f * frame + i < lesson.count ? lesson[f * frame + i] : 0 }
            speakerFrame.withUnsafeBufferPointer { _ = engine.playbackSource.write($0) }
            guard engine.step() else { throw SimLessonError(description: "the simulated classroom's devices failed") }
            sink.withUnsafeMutableBufferPointer { _ = engine.output.read(into: $0) }
        }
        let elapsed = clock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        processor = engine.processor.inner
        let recorded = engine.processor
        // The processor's frames start with the engine's lead-in of silence: sample n + lead it saw is
        // sample n the room produced.
        let lead = min(engine.captureLeadInSamples, recorded.count)
        let count = min(total, recorded.count - lead)
        let speaker = Array(recorded.render[lead..<lead + count])
        let mic = Array(recorded.capture[lead..<lead + count])
        // The processor's output lags by its stated latency: measure it against the input it came from.
        let latency = min(recorded.latencySamples, count)
        let processed = Array(recorded.output[lead + latency..<lead + count]) + [Float](repeating: 0, count: latency)
        let echo = Array(classroom.capture.recordedEcho[0..<count])
        let pupilAtMic = Array(classroom.capture.recordedPupil[0..<count])
        let counters = engine.counters.snapshot()
        let simulated = (echoDelay: classroom.echoDelay, clippedSamples: classroom.capture.clippedSamples)

        let files: [(String, [Float])] = [
            ("speaker.wav", speaker), ("mic.wav", mic), ("processed.wav", processed),
            ("echo-at-mic.wav", echo), ("pupil-at-mic.wav", pupilAtMic),
        ]
        var written: [String] = []
        for (name, samples) in files {
            let path = sim.outputDir + "/" + name
            do { try WAVAudio(sampleRate: rate, samples: samples).write(path: path) } catch {
                throw SimLessonError(description: error.description)
            }
            written.append(path)
        }
        let analysis = LessonAnalysis(sampleRate: rate, speaker: speaker, mic: mic, processed: processed,
                                      echo: echo, pupil: pupilAtMic)
        let report = SimLessonReport(
            board: board.name, boxId: config.identity.id, processor: processor.name, sampleRate: rate,
            audioSeconds: Double(total) / Double(rate), processingSeconds: seconds,
            room: .init(rt60: room.rt60, speakerDistance: room.speakerDistance, pupilDistance: room.pupilDistance,
                        echoDelayMs: simulated.echoDelay * 1000),
            analysis: analysis, micClippedSamples: simulated.clippedSamples, audio: counters, files: written,
            summaryPath: sim.outputDir + "/summary.md", jsonPath: sim.outputDir + "/summary.json")
        do {
            try report.markdown.write(toFile: report.summaryPath, atomically: true, encoding: .utf8)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: report.jsonPath))
        } catch {
            throw SimLessonError(description: "\(sim.outputDir): cannot write the summary (\(error.localizedDescription))")
        }
        logger.info("simulated lesson done", metadata: [
            "erle_db": "\(report.analysis.erleDb.map { String(format: "%.1f", $0) } ?? "n/a")",
            "realtime_factor": "\(String(format: "%.3f", report.realtimeFactor))",
        ])
        return report
    }

    private func readMono(_ path: String, rate: Int, role: String) throws(SimLessonError) -> [Float] {
        let audio: WAVAudio
        do { audio = try WAVAudio.read(path: path) } catch { throw SimLessonError(description: "sim.\(role): \(error.description)") }
        guard audio.sampleRate == rate else {
            throw SimLessonError(description: "sim.\(role): \(path) is \(audio.sampleRate) Hz but board \"\(board.name)\" runs at \(rate) Hz; convert it first, e.g. `sox \(path) -r \(rate) out.wav`")
        }
        return audio.mono()
    }
}

/// What a simulated lesson wrote and measured.
public struct SimLessonReport: Sendable, Codable {
    /// The room as configured.
    public struct Room: Sendable, Codable {
        /// Reverberation time in seconds.
        public var rt60: Double
        /// Loudspeaker-to-microphone distance in metres.
        public var speakerDistance: Double
        /// Pupil-to-microphone distance in metres.
        public var pupilDistance: Double
        /// Loudspeaker-to-microphone delay of the direct sound, device latency included, in ms.
        public var echoDelayMs: Double
    }
    /// Board name.
    public var board: String
    /// Box id.
    public var boxId: String
    /// The capture processor's name.
    public var processor: String
    /// Sample rate in Hz.
    public var sampleRate: Int
    /// Length of the lesson in seconds.
    public var audioSeconds: Double
    /// Wall-clock seconds the room and processor took.
    public var processingSeconds: Double
    /// The room.
    public var room: Room
    /// Levels, talk segments and echo measures.
    public var analysis: LessonAnalysis
    /// Microphone samples clipped at full scale.
    public var micClippedSamples: Int
    /// The audio engine's counters at the end of the lesson.
    public var audio: AudioCounterSnapshot
    /// The WAV files written.
    public var files: [String]
    /// The one-page summary.
    public var summaryPath: String
    /// The same summary as JSON.
    public var jsonPath: String

    /// Processing time over audio time: below 1 means faster than real time.
    public var realtimeFactor: Double { processingSeconds / max(audioSeconds, 1e-9) }

    /// The one-page summary as Markdown.
    public var markdown: String {
        func db(_ v: Double?) -> String {
            v.map { value in let r = (value * 10).rounded() / 10; return String(format: "%.1f dB", r == 0 ? 0 : r) } ?? "n/a"
        }
        func level(_ l: LessonAnalysis.Level) -> String {
            String(format: "peak %.1f dBFS, RMS %.1f dBFS", l.peakDbfs, l.rmsDbfs)
        }
        let a = analysis
        return """
        # Classbox simulated lesson

        Box `\(boxId)` on board `\(board)`; microphone processing: **\(processor)**.
        \(String(format: "%.1f", audioSeconds)) s of audio at \(sampleRate) Hz, processed in \(String(format: "%.2f", processingSeconds)) s \
        (\(String(format: "%.3f", realtimeFactor))x real time).

        ## The room
        | | |
        |---|---|
        | reverberation (RT60) | \(String(format: "%.2f", room.rt60)) s |
        | loudspeaker to microphone | \(String(format: "%.2f", room.speakerDistance)) m, echo delay \(String(format: "%.1f", room.echoDelayMs)) ms (device latency included) |
        | pupil to microphone | \(String(format: "%.2f", room.pupilDistance)) m |
        | echo delay measured from the recordings | \(a.measuredEchoDelayMs.map { String(format: "%.1f ms", $0) } ?? "n/a (no echo)") |

        ## Levels
        | signal | level |
        |---|---|
        | loudspeaker (teacher) | \(level(a.speaker)) |
        | microphone | \(level(a.mic)), \(micClippedSamples) samples clipped |
        | sent to the network | \(level(a.processed)) |

        Audio engine: \(audio.processedFrames) frames of 10 ms processed, \(audio.captureXruns + audio.playbackXruns) xruns, \
        \(audio.renderStarvedFrames) frames without a loudspeaker reference.

        ## Who was talking, and what the box did with it
        | | |
        |---|---|
        | teacher only (echo, no pupil) | \(String(format: "%.1f", a.farOnlySeconds)) s |
        | both at once (double talk) | \(String(format: "%.1f", a.doubleTalkSeconds)) s |
        | pupil only | \(String(format: "%.1f", a.nearOnlySeconds)) s |
        | echo-to-pupil ratio at the microphone, double talk | \(db(a.echoToPupilDb)) |
        | echo removed while only the teacher talks (ERLE) | \(db(a.erleDb)) |
        | pupil's voice lost during double talk | \(db(a.doubleTalkNearLossDb)) |

        \(processor == "pass-through" ? "With the pass-through processor the echo goes back to the teacher untouched (ERLE 0 dB)." : "The processor's output is measured after removing its own latency.")

        ## Files
        \(files.map { "- `\($0)`" }.joined(separator: "\n"))
        - `\(jsonPath)` (this summary as JSON)

        """
    }
}
