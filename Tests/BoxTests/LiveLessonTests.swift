import BoxConfig
import Foundation
import Media
import Testing
@testable import Box

/// A tone of `frequency` at `rate`, `seconds` long.
func tone(_ frequency: Double, seconds: Double, rate: Int = 48000, level: Float = 0.3) -> [Float] {
    (0..<Int(seconds * Double(rate))).map { level * Float(sin(2 * Double.pi * frequency * Double($0) / Double(rate))) }
}

/// Share of `samples`' energy at `frequency` in the best 100 ms block (Goertzel), 0...1.
func toneShare(_ samples: [Float], frequency: Double, rate: Double = 48000) -> Double {
    let block = 4800
    var best = 0.0
    for start in stride(from: 0, to: samples.count - block, by: block) {
        let k = 2 * cos(2 * Double.pi * frequency / rate)
        var s1 = 0.0, s2 = 0.0, energy = 0.0
        for x in samples[start..<start + block] {
            let s = Double(x) + k * s1 - s2
            s2 = s1; s1 = s
            energy += Double(x) * Double(x)
        }
        let power = s1 * s1 + s2 * s2 - k * s1 * s2
        if energy > 1e-6 { best = max(best, 2 * power / (Double(block) * energy)) }
    }
    return best
}

/// A free UDP port pair (RTP, RTCP) on loopback, found by binding and releasing.
func freePortPair() throws -> Int {
    for _ in 0..<50 {
        let base = Int.random(in: 30000...59000) & ~1
        if let a = try? UDPSocket(local: .init(host: "0.0.0.0", port: UInt16(base)), peer: .init(host: "127.0.0.1", port: 9)),
           let b = try? UDPSocket(local: .init(host: "0.0.0.0", port: UInt16(base + 1)), peer: .init(host: "127.0.0.1", port: 9)) {
            _ = (a, b)
            return base
        }
    }
    throw LiveLessonError(description: "no free port pair")
}

@Suite("Live lesson: two boxes over loopback", .serialized)
struct LiveLessonTests {
    func configuration(role: String, port: Int, peerPort: Int, dir: String, security: String, lesson: String, pupil: String?) throws -> BoxConfiguration {
        let peerRole = role == "lead" ? "remote" : "lead"
        let text = """
            board = "sim"
            [box]
            id = "\(role)-box"
            school = "Test School"
            classroom = "Test Room"
            role = "\(role)"
            [[peers]]
            id = "\(peerRole)-box"
            address = "127.0.0.1"
            role = "\(peerRole)"
            audio_port = \(peerPort)
            [media]
            audio_port = \(port)
            frame_ms = 20
            security = "\(security)"
            \(security == "srtp" ? "srtp_key = \"" + Data((0..<30).map { UInt8($0 * 5 + 1) }).base64EncodedString() + "\"" : "")
            [sim]
            lesson = "\(lesson)"
            \(pupil.map { "pupil = \"\($0)\"" } ?? "")
            output_dir = "\(dir)/\(role)"
            """
        return try BoxConfiguration.parse(text, file: "\(role).toml")
    }

    @Test("a lead and a remote box hear each other: the teacher's tone reaches the rural loudspeaker, the pupil's the teacher's", arguments: ["plain", "srtp"])
    func twoBoxesHearEachOther(security: String) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("classbox-live-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // The teacher talks first, then the pupil answers: each loudspeaker has a stretch of one voice only.
        let silence = [Float](repeating: 0, count: 72000)
        try WAVAudio(sampleRate: 48000, samples: tone(1000, seconds: 1.5) + silence).write(path: dir + "/teacher.wav")
        try WAVAudio(sampleRate: 48000, samples: silence + tone(440, seconds: 1.5)).write(path: dir + "/pupil.wav")
        // Without the canceller, two rooms joined both ways are a loop that howls once its gain passes 1
        // (which is why the box has a canceller): quiet loudspeakers keep this test's loop stable.
        let board = try BoardProfile.parse(BoardCatalog.embeddedSimProfile.replacingOccurrences(of: "speaker_gain_db = -6.0", with: "speaker_gain_db = -40.0"),
                                           file: "sim-quiet.toml")
        let leadPort = try freePortPair(), remotePort = try freePortPair()
        let lead = LiveLesson(board: board, config: try configuration(role: "lead", port: leadPort, peerPort: remotePort, dir: dir, security: security,
                                                                      lesson: dir + "/teacher.wav", pupil: dir + "/pupil.wav"), echoCancellation: false)
        nonisolated(unsafe) let remote = LiveLesson(board: board, config: try configuration(role: "remote", port: remotePort, peerPort: leadPort, dir: dir, security: security,
                                                                        lesson: dir + "/teacher.wav", pupil: dir + "/pupil.wav"), echoCancellation: false)
        nonisolated(unsafe) var events: [LessonServiceEvent] = []
        lead.serviceHook = { events.append($0) }
        nonisolated(unsafe) var remoteReport: LiveLessonReport?
        let thread = Thread { remoteReport = try? remote.run(stop: { false }) }
        thread.start()
        let leadReport = try #require(try lead.run(stop: { false }))
        while remoteReport == nil && !thread.isFinished { usleep(50_000) }
        let other = try #require(remoteReport)

        let heardByPupils = try WAVAudio.read(path: dir + "/remote/speaker.wav").samples
        let heardByTeacher = try WAVAudio.read(path: dir + "/lead/speaker.wav").samples
        #expect(toneShare(heardByPupils, frequency: 1000) > 0.8, "the rural room's loudspeaker plays the teacher's tone")
        // Once the teacher is silent (from 2.5 s: 1.5 s of tone, latency and the room's reverberation),
        // only the pupil remains.
        let answer = Array(heardByTeacher[min(120_000, heardByTeacher.count)...])
        #expect(toneShare(answer, frequency: 440) > 0.5, "the teacher's loudspeaker plays the pupil's tone")
        #expect(toneShare(answer, frequency: 1000) < 0.1)
        for report in [leadReport, other] {
            let session = try #require(report.network.sessions.first)
            #expect(session.packetsReceived > 100, "\(report.role) received the other's stream")
            #expect(session.refused == 0 && session.rtcpRefused == 0, "\(report.role): nothing refused")
            #expect(session.rtcpReceived >= 2, "\(report.role) got RTCP reports")
            #expect(session.roundTripMs != nil, "\(report.role) measured the round trip from RTCP")
        }
        #expect(events.first == .ready, "the service hook hears 'ready' first")
        #expect(events.filter { $0 == .alive }.count >= 2, "and 'alive' about once a second")
    }

    @Test("a box whose peer never answers keeps running and sending, and ends cleanly")
    func absentPeer() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("classbox-live-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try WAVAudio(sampleRate: 48000, samples: tone(1000, seconds: 1)).write(path: dir + "/teacher.wav")
        let board = try BoardCatalog.standard().load("sim")
        let port = try freePortPair(), nobody = try freePortPair()
        let config = try configuration(role: "remote", port: port, peerPort: nobody, dir: dir, security: "plain", lesson: dir + "/teacher.wav", pupil: nil)
        let report = try #require(try LiveLesson(board: board, config: config, echoCancellation: false).run(stop: { false }))
        let session = try #require(report.network.sessions.first)
        #expect(session.packetsSent > 50, "it kept sending to the absent peer")
        #expect(session.packetsReceived == 0)
        #expect(!session.receiving)
    }

    @Test("on a real board whose sound card is missing the lesson says it is waiting, retries, and stops cleanly")
    func missingSoundCard() throws {
        // generic-amd64 names its USB speakerphone by card name; this machine has no sound cards at all.
        let board = try BoardCatalog.standard().load("generic-amd64")
        let config = try configuration(role: "remote", port: try freePortPair(), peerPort: try freePortPair(), dir: "/tmp",
                                       security: "plain", lesson: "/nonexistent.wav", pupil: nil)
        let lesson = LiveLesson(board: board, config: config)
        nonisolated(unsafe) var events: [LessonServiceEvent] = []
        lesson.serviceHook = { events.append($0) }
        let report = try lesson.run(stop: { !events.isEmpty })
        #expect(report == nil)
        let first = try #require(events.first)
        guard case .waiting(let reason) = first else { Issue.record("expected .waiting first, got \(first)"); return }
        #expect(reason.contains("sound devices"), "\(reason)")
        #expect(!events.contains(.ready), "it never claims to be in class without its sound card")
    }

    @Test("a lesson without peers or with SRTP but no key is refused with what to change")
    func refusesBadSetups() throws {
        let board = try BoardCatalog.standard().load("sim")
        #expect(throws: LiveLessonError.self) { try LiveLesson(board: board, config: .simDefault).run(stop: { true }) }
        var config = try configuration(role: "lead", port: 40000, peerPort: 40010, dir: "/tmp", security: "plain", lesson: "/nonexistent.wav", pupil: nil)
        config.media.security = .srtp
        config.media.srtpKey = nil
        do {
            try LiveLesson(board: board, config: config).run(stop: { true })
            Issue.record("an SRTP lesson without a key ran")
        } catch {
            #expect(error.description.contains("srtp_key"))
        }
    }
}
