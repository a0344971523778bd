public import BoxConfig
public import Devices
public import Media
import Logging
import Foundation

/// Why a live lesson could not start: each message says what to change.
public struct LiveLessonError: Error, Sendable, CustomStringConvertible {
    /// What went wrong and what to do.
    public var description: String
}

/// What the service manager hears from a running lesson (the lead connects systemd's notifier to
/// `LiveLesson.serviceHook`: READY=1 on `.ready`, WATCHDOG=1 on `.alive`).
public enum LessonServiceEvent: Sendable, Equatable {
    /// The audio path and the network are running (sent once).
    case ready
    /// Still healthy: the audio threads move sound and the network thread reports (about once a second).
    case alive
    /// Not in class yet, but alive and retrying (every 5 s): why, in words for the service status line.
    /// Under systemd this is READY=1 with the reason as STATUS and a watchdog ping, so a box whose sound
    /// card is unplugged waits for it instead of being restarted every watchdog period.
    case waiting(String)
}

/// A direct-mode lesson, live: the box's audio engine (microphone through the echo canceller,
/// loudspeaker) joined to its peers by Opus over RTP/SRTP. A remote box sends its room to its lead and
/// plays the lead's stream; a lead serves one or two remote rooms, plays their mix and sends its own
/// microphone (plus the other room) to each. On a real board it runs until SIGTERM, never gives up on
/// an absent peer or a missing sound card (it keeps retrying and logs state changes only); on the `sim`
/// board its room is simulated, it runs for the length of the `[sim]` recordings and writes what it
/// heard, sent and measured.
public final class LiveLesson {
    /// The board profile.
    public let board: BoardProfile
    /// The configuration (role, peers, media).
    public let config: BoxConfiguration
    /// Echo cancellation on the microphone (off only to hear the difference).
    public let echoCancellation: Bool
    /// Called once when the lesson is ready and about once a second while it is healthy; the service
    /// manager's notifier (READY=1, WATCHDOG=1) connects here. Runs on the thread that called `run`.
    public var serviceHook: ((LessonServiceEvent) -> Void)?
    private let logger = Logger(label: "classbox.lesson")
    /// The lesson's video session (LiveVideo.swift); nil when off or its ports are taken.
    var video: LiveVideo?

    /// A lesson for `board` and `config`.
    public init(board: BoardProfile, config: BoxConfiguration, echoCancellation: Bool = true) {
        self.board = board
        self.config = config
        self.echoCancellation = echoCancellation
    }

    /// Makes SIGTERM and SIGINT end `run` in order (threads stopped, devices closed).
    public static func installStopSignals() { StopSignal.install() }

    /// Whether the configuration asks for a live lesson (it has peers) rather than the one-box simulation.
    public static func wanted(by config: BoxConfiguration) -> Bool { !config.peers.isEmpty }

    // MARK: Setup

    func sessionSettings() throws(LiveLessonError) -> AudioSessionSettings {
        var opus = OpusSettings()
        opus.frameMs = config.media.frameMs
        opus.bitrate = config.media.bitrate
        opus.music = config.media.music
        opus.lowDelay = config.media.lowDelay
        opus.complexity = board.performance.opusComplexity
        var key: [UInt8]? = nil
        let keyBytes = config.media.srtpProfile.keyAndSaltBytes
        if config.media.security == .srtp {
            guard let text = config.media.srtpKey, let data = Data(base64Encoded: text), data.count == keyBytes else {
                throw LiveLessonError(description: "media.security is \"srtp\" but media.srtp_key is missing or not \(keyBytes) bytes of base64; set it (the same on both boxes), or media.security = \"plain\" for a loopback test")
            }
            key = Array(data)
        }
        var settings = AudioSessionSettings(opus: opus, jitterMinMs: config.media.jitterMinMs, jitterMaxMs: config.media.jitterMaxMs, srtpMaster: key)
        settings.srtpProfile = LiveVideo.srtpProfile(config.media.srtpProfile)  // video: LiveVideo.swift
        settings.cname = LiveVideo.cname(config)
        return settings
    }

    /// Opens the board's sound devices; on a real board, retries every 5 s until they appear (or a stop
    /// is requested: nil).
    func openAudio(stop: () -> Bool) -> (capture: any AudioPort, playback: any AudioPort)? {
        var warned = false
        while !stop() {
            do {
                let ports = try BoardAudio.open(board.audio)
                if warned { logger.notice("sound devices found", metadata: ["capture": "\(ports.capture.name)", "playback": "\(ports.playback.name)"]) }
                return (ports.capture, ports.playback)
            } catch {
                if !warned {
                    logger.error("cannot open the sound devices; retrying every 5 s", metadata: ["error": "\(error.description)"])
                    warned = true
                }
                serviceHook?(.waiting("waiting for the sound devices: \(error.description)"))
                for _ in 0..<50 where !stop() { usleep(100_000) }
            }
        }
        return nil
    }

    // MARK: Running

    /// Runs the lesson until `stop` returns true (checked every 100 ms; on the `sim` board the lesson
    /// also ends after its recordings). Returns the sim report on the `sim` board, nil on a real one.
    @discardableResult
    public func run(stop: @escaping () -> Bool = { StopSignal.requested }) throws(LiveLessonError) -> LiveLessonReport? {
        guard !config.peers.isEmpty else {
            throw LiveLessonError(description: "no [[peers]] in the configuration: a \(config.identity.role.rawValue) box needs \(config.identity.role == .lead ? "one or two remote boxes" : "its lead box") to hold a lesson")
        }
        let settings = try sessionSettings()
        let port = config.media.audioPort
        let rtp: UDPSocket, rtcp: UDPSocket
        do {
            rtp = try UDPSocket(local: .init(host: "0.0.0.0", port: UInt16(port)), peer: .init(host: "127.0.0.1", port: 9))
            rtcp = try UDPSocket(local: .init(host: "0.0.0.0", port: UInt16(port + 1)), peer: .init(host: "127.0.0.1", port: 9))
        } catch {
            throw LiveLessonError(description: "cannot listen on UDP port \(port)/\(port + 1) (\(error)); is another classbox running? change media.audio_port")
        }
        var generator = SystemRandomNumberGenerator()
        var sessions: [AudioSession] = []
        for peer in config.peers {
            do {
                sessions.append(try AudioSession(peerID: peer.id, settings: settings, socket: rtp, ssrc: generator.next()))
            } catch {
                throw LiveLessonError(description: "peer \(peer.id): \(error.description)")
            }
        }

        video = openVideo()
        if board.audio.backend == .sim {
            return try runSimulated(sessions: sessions, rtp: rtp, rtcp: rtcp, settings: settings, stop: stop)
        }
        guard let ports = openAudio(stop: stop) else { return nil }
        guard ports.playback.configuration.rate == settings.opus.rate else {
            throw LiveLessonError(description: "the lesson's audio runs at 48 kHz (Opus over RTP), but board \"\(board.name)\" opened \(ports.playback.name) at \(ports.playback.configuration.rate) Hz; set [audio] rate = 48000 in its profile or use a card that takes 48 kHz")
        }
        let engineConfiguration = AudioEngine<PassThroughProcessor>.Configuration(
            rate: ports.playback.configuration.rate, micChannels: board.audio.micChannels,
            averageMicChannels: board.audio.micMix == .average, realtimePriority: Int32(board.performance.realtimePriority))
        let audio = board.audio
        let reopen: AudioEngine<PassThroughProcessor>.Reopen = { stream in
            guard let again = try? BoardAudio.open(audio) else { return nil }
            return stream == .capture ? again.capture : again.playback
        }
        if echoCancellation {
            let processor: EchoCancellerProcessor
            do { processor = try EchoCancellerProcessor(sampleRate: ports.playback.configuration.rate) } catch {
                throw LiveLessonError(description: "echo canceller: \(error); the board's audio rate must be 16000 or 48000 Hz")
            }
            let engine = AudioEngine(capture: ports.capture, playback: ports.playback, processor: processor,
                                     configuration: .init(rate: engineConfiguration.frameSamples * 100, micChannels: engineConfiguration.micChannels,
                                                          averageMicChannels: engineConfiguration.averageMicChannels,
                                                          realtimePriority: engineConfiguration.realtimePriority))
            _ = drive(engine: engine, sessions: sessions, rtp: rtp, rtcp: rtcp, reopen: { reopen($0) }, until: stop)
        } else {
            let engine = AudioEngine(capture: ports.capture, playback: ports.playback, processor: PassThroughProcessor(),
                                     configuration: engineConfiguration)
            _ = drive(engine: engine, sessions: sessions, rtp: rtp, rtcp: rtcp, reopen: reopen, until: stop)
        }
        return nil
    }

    /// The run loop shared by real and simulated boards: starts the engine and the network pump,
    /// resolves the peers (retrying), watches the counters once a second, logs changes, calls the
    /// service hook, and stops everything in order. Returns the per-second history.
    func drive<P: CaptureProcessor>(engine: AudioEngine<P>, sessions: [AudioSession], rtp: UDPSocket, rtcp: UDPSocket,
                                    reopen: AudioEngine<P>.Reopen?, until stop: () -> Bool) -> LessonHistory {
        let pump = DirectAudioPump(sessions: sessions, rtp: rtp, rtcp: rtcp, capture: engine.output, playback: engine.playbackSource,
                                   counters: engine.counters, playbackPeriod: engine.playbackPeriodFrames,
                                   realtimePriority: Int32(max(1, board.performance.realtimePriority - 5)))
        // Video joins here as a second RTP session: its own socket pair on media.video_port towards each
        // peer's video_port, its sender started and stopped beside the audio pump (sessions are per
        // medium; nothing below is audio-specific but the pump's rings).
        engine.start(reopen: reopen)
        pump.start()
        video?.start()
        logger.notice("lesson running", metadata: [
            "role": "\(config.identity.role.rawValue)", "peers": "\(config.peers.map(\.id).joined(separator: ","))",
            "port": "\(config.media.audioPort)", "security": "\(config.media.security.rawValue)",
            "aec": "\(echoCancellation)", "realtime": "\(engine.realtime && pump.isRealtime)",
        ])
        serviceHook?(.ready)

        var history = LessonHistory()
        var monitor = AudioCounterMonitor()
        var receiving = [Bool](repeating: false, count: sessions.count)
        var resolveWarned = [Bool](repeating: false, count: sessions.count)
        var lastResolve = -Double.infinity
        var lastSnapshotTime = 0.0
        var tick = 0
        while !stop() {
            let now = Date().timeIntervalSinceReferenceDate
            if now - lastResolve >= 5 {
                lastResolve = now
                for (i, peer) in config.peers.enumerated() where sessions[i].remoteAddress == nil {
                    if let address = UDPEndpoint(host: peer.address, port: UInt16(peer.audioPort)).resolve() {
                        sessions[i].setRemote(address)
                        logger.notice("peer \(peer.id) at \(address)")
                    } else if !resolveWarned[i] {
                        resolveWarned[i] = true
                        logger.warning("peer \(peer.id): cannot resolve \(peer.address); retrying every 5 s")
                    }
                }
            }
            usleep(100_000)
            tick += 1
            guard tick % 10 == 0 else { continue }
            let snapshot = pump.snapshot()
            let audio = engine.counters.snapshot()
            monitor.check(audio)
            for (i, session) in snapshot.sessions.enumerated() where i < receiving.count && session.receiving != receiving[i] {
                receiving[i] = session.receiving
                if session.receiving {
                    logger.notice("peer \(session.peer): receiving audio", metadata: ["from": "\(session.remote ?? "?")"])
                } else {
                    logger.warning("peer \(session.peer): no audio for 2 s; still sending and listening",
                                   metadata: ["received": "\(session.packetsReceived)", "lost": "\(session.packetsLost)"])
                }
            }
            if snapshot.time > lastSnapshotTime {
                lastSnapshotTime = snapshot.time
                history.add(snapshot)
                // Healthy: the network thread published this second and both devices are present.
                if !audio.captureGone && !audio.playbackGone { serviceHook?(.alive) }
            }
        }
        video?.stop()
        pump.stop()
        engine.stop()
        history.video = video?.report()
        history.final = pump.snapshot()
        history.audio = engine.counters.snapshot()
        history.playbackLeadSamples = pump.playbackLeadSamples
        logger.notice("lesson stopped")
        return history
    }

    // MARK: The sim board

    private func runSimulated(sessions: [AudioSession], rtp: UDPSocket, rtcp: UDPSocket, settings: AudioSessionSettings,
                              stop: @escaping () -> Bool) throws(LiveLessonError) -> LiveLessonReport {
        guard let room = board.simRoom else { throw LiveLessonError(description: "board \"\(board.name)\" has no [sim] room") }
        guard let sim = config.sim else {
            throw LiveLessonError(description: "the sim board needs a [sim] table: sim.lesson (the teacher), sim.pupil and sim.output_dir")
        }
        let rate = board.audio.rate
        guard rate == settings.opus.rate else {
            throw LiveLessonError(description: "the lesson's audio runs at 48 kHz (Opus over RTP); board \"\(board.name)\" has [audio] rate = \(rate)")
        }
        let lesson = try readMono(sim.lesson, rate: rate, key: "lesson")
        let pupil = try sim.pupil.map { path throws(LiveLessonError) in try readMono(path, rate: rate, key: "pupil") } ?? []
        // The lead's room holds the teacher; a remote's room holds the pupil. Both boxes run for the
        // longer recording plus two seconds for the last words to cross.
        let talker = config.identity.role == .lead ? lesson : pupil
        let seconds = Double(max(lesson.count, pupil.count)) / Double(rate) + 2
        let total = Int(seconds * Double(rate))
        let frame = rate / 100
        do {
            try FileManager.default.createDirectory(atPath: sim.outputDir, withIntermediateDirectories: true)
        } catch {
            throw LiveLessonError(description: "\(sim.outputDir): cannot create the output directory (\(error.localizedDescription))")
        }
        // The simulated card runs at the profile's period, as ALSA would (5 ms on the sim board).
        let period = max(1, rate * board.audio.periodMs / 1000)
        let classroom = SimulatedClassroom(spec: room, rate: rate, periodFrames: period, pupil: talker, recordFrames: total + frame)
        let capture = ClockedPort(classroom.capture), playback = ClockedPort(classroom.playback)
        let configuration = AudioEngine<PassThroughProcessor>.Configuration(
            rate: rate, micChannels: board.audio.micChannels, realtimePriority: Int32(board.performance.realtimePriority))
        let started = Date()
        let deadline = started.addingTimeInterval(seconds)
        let until = { stop() || Date() >= deadline }
        if echoCancellation {
            let processor: EchoCancellerProcessor
            do { processor = try EchoCancellerProcessor(sampleRate: rate) } catch {
                throw LiveLessonError(description: "echo canceller: \(error)")
            }
            let engine = AudioEngine(capture: capture, playback: playback, processor: RecordingProcessor(wrapping: processor, capacity: total + frame),
                                     configuration: .init(rate: rate, micChannels: configuration.micChannels,
                                                          realtimePriority: configuration.realtimePriority))
            let history = drive(engine: engine, sessions: sessions, rtp: rtp, rtcp: rtcp, reopen: nil, until: until)
            return try writeSimulated(recorded: engine.processor, leadIn: engine.captureLeadInSamples, classroom: classroom, capture: capture, history: history,
                                      settings: settings, outputDir: sim.outputDir, rate: rate, seconds: seconds)
        } else {
            let engine = AudioEngine(capture: capture, playback: playback,
                                     processor: RecordingProcessor(wrapping: PassThroughProcessor(), capacity: total + frame),
                                     configuration: .init(rate: rate, micChannels: configuration.micChannels,
                                                          realtimePriority: configuration.realtimePriority))
            let history = drive(engine: engine, sessions: sessions, rtp: rtp, rtcp: rtcp, reopen: nil, until: until)
            return try writeSimulated(recorded: engine.processor, leadIn: engine.captureLeadInSamples, classroom: classroom, capture: capture, history: history,
                                      settings: settings, outputDir: sim.outputDir, rate: rate, seconds: seconds)
        }
    }

    private func writeSimulated<P: CaptureProcessor>(recorded: RecordingProcessor<P>, leadIn: Int, classroom: SimulatedClassroom, capture: ClockedPort,
                                                     history: LessonHistory, settings: AudioSessionSettings, outputDir: String,
                                                     rate: Int, seconds: Double) throws(LiveLessonError) -> LiveLessonReport {
        // Sample n + leadIn the processor saw is sample n the room produced (the engine's lead-in).
        let lead = min(leadIn, recorded.count)
        let count = recorded.count - lead
        let speaker = Array(recorded.render[lead..<lead + count])
        let mic = Array(recorded.capture[lead..<lead + count])
        let latency = min(recorded.latencySamples, count)
        let processed = Array(recorded.output[lead + latency..<lead + count]) + [Float](repeating: 0, count: latency)
        let available = min(count, classroom.capture.recordedEcho.count)
        let echo = Array(classroom.capture.recordedEcho[0..<available]) + [Float](repeating: 0, count: count - available)
        let near = Array(classroom.capture.recordedPupil[0..<available]) + [Float](repeating: 0, count: count - available)
        let emitted = Array(classroom.capture.recordedSpeaker[0..<available]) + [Float](repeating: 0, count: count - available)
        let files: [(String, [Float])] = [
            ("speaker.wav", speaker), ("mic.wav", mic), ("processed.wav", processed),
            ("echo-at-mic.wav", echo), ("talker-at-mic.wav", near), ("loudspeaker-emitted.wav", emitted),
        ]
        var written: [String] = []
        for (name, samples) in files {
            let path = outputDir + "/" + name
            do { try WAVAudio(sampleRate: rate, samples: samples).write(path: path) } catch {
                throw LiveLessonError(description: error.description)
            }
            written.append(path)
        }
        let analysis = count >= rate ? LessonAnalysis(sampleRate: rate, speaker: speaker, mic: mic, processed: processed, echo: echo, pupil: near) : nil
        let encoderLookahead = (try? OpusEncoder(settings: settings.opus).lookahead) ?? 0
        var report = LiveLessonReport(
            boxId: config.identity.id, role: config.identity.role.rawValue, processor: recorded.name, sampleRate: rate,
            seconds: seconds, captureStartNanoseconds: capture.startNanoseconds ?? 0,
            captureRestarts: capture.restarts.map { [Int64($0.frames), $0.nanoseconds] },
            periodSamples: capture.configuration.periodFrames, echoDelayMs: classroom.echoDelay * 1000,
            talkerDelayMs: (board.simRoom?.pupilDistance ?? 0) / 343 * 1000,
            cancellerLatencySamples: recorded.latencySamples, opusFrameMs: settings.opus.frameMs,
            opusLookaheadSamples: encoderLookahead, playbackLeadSamples: history.playbackLeadSamples,
            jitterMinMs: settings.jitterMinMs, jitterMaxMs: settings.jitterMaxMs,
            security: config.media.security.rawValue,
            analysis: analysis, audio: history.audio, network: history.final,
            jitterDepthMs: history.depthMs, jitterTargetMs: history.targetMs, files: written)
        report.video = history.video
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: outputDir + "/lesson.json"))
        } catch {
            throw LiveLessonError(description: "\(outputDir): cannot write lesson.json (\(error.localizedDescription))")
        }
        return report
    }

    private func readMono(_ path: String, rate: Int, key: String) throws(LiveLessonError) -> [Float] {
        let audio: WAVAudio
        do { audio = try WAVAudio.read(path: path) } catch { throw LiveLessonError(description: "sim.\(key): \(error.description)") }
        guard audio.sampleRate == rate else {
            throw LiveLessonError(description: "sim.\(key): \(path) is \(audio.sampleRate) Hz but board \"\(board.name)\" runs at \(rate) Hz; convert it first, e.g. `sox \(path) -r \(rate) out.wav`")
        }
        return audio.mono()
    }
}

/// The network counters of a lesson, second by second.
public struct LessonHistory: Sendable {
    /// Jitter-buffer depth per peer (index), one value a second, in ms.
    public var depthMs: [[Double]] = []
    /// Jitter-buffer target per peer, one value a second, in ms.
    public var targetMs: [[Double]] = []
    /// The last snapshot (after the pump stopped).
    public var final = DirectAudioSnapshot()
    /// The audio engine's counters at the end.
    public var audio: AudioCounterSnapshot? = nil
    /// Samples the pump keeps queued for the loudspeaker.
    public var playbackLeadSamples = 0
    /// The video session's counters at the end (nil without video).
    public var video: LiveVideoReport? = nil

    mutating func add(_ snapshot: DirectAudioSnapshot) {
        while depthMs.count < snapshot.sessions.count { depthMs.append([]); targetMs.append([]) }
        for (i, s) in snapshot.sessions.enumerated() where s.receiving {
            depthMs[i].append(s.jitterBuffer.depthMs)
            targetMs[i].append(s.jitterBuffer.targetMs)
        }
    }
}

/// What one box of a simulated live lesson measured (written as `lesson.json`; the demo combines the
/// two boxes' files into the lesson's summary).
public struct LiveLessonReport: Sendable, Codable {
    /// Box id and role.
    public var boxId: String, role: String
    /// The capture processor.
    public var processor: String
    /// Sample rate.
    public var sampleRate: Int
    /// Seconds the lesson ran.
    public var seconds: Double
    /// CLOCK_MONOTONIC (ns) of microphone sample 0: sample k was captured at this + k / rate.
    public var captureStartNanoseconds: Int64
    /// Where the microphone's clock restarted after an overrun: [frames before, CLOCK_MONOTONIC ns].
    public var captureRestarts: [[Int64]]
    /// The sound card's period in samples.
    public var periodSamples: Int
    /// Loudspeaker-to-microphone delay of this room (card latency + flight), and talker-to-microphone flight, ms.
    public var echoDelayMs: Double, talkerDelayMs: Double
    /// The canceller's algorithmic latency in samples.
    public var cancellerLatencySamples: Int
    /// Opus frame in ms and encoder look-ahead in samples.
    public var opusFrameMs: Int, opusLookaheadSamples: Int
    /// Samples the network pump keeps queued ahead of the loudspeaker.
    public var playbackLeadSamples: Int
    /// Jitter-buffer bounds.
    public var jitterMinMs: Int, jitterMaxMs: Int
    /// "srtp" or "plain".
    public var security: String
    /// Levels, ERLE and double talk in this room.
    public var analysis: LessonAnalysis?
    /// The audio engine's counters at the end.
    public var audio: AudioCounterSnapshot?
    /// The network counters at the end.
    public var network: DirectAudioSnapshot
    /// Jitter-buffer depth and target per peer, one value a second while receiving.
    public var jitterDepthMs: [[Double]], jitterTargetMs: [[Double]]
    /// The WAV files written.
    public var files: [String]
    /// The camera's RTP session: frames sent and received per peer, loss, keyframe requests (nil without video).
    public var video: LiveVideoReport? = nil
}
