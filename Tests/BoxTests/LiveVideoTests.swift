import BoxConfig
import Devices
import Foundation
import Media
import Testing
@testable import Box

/// The sim board with a smaller, slower camera, so debug builds encode it with time to spare.
func smallCameraSimBoard() throws -> BoardProfile {
    try BoardProfile.parse(BoardCatalog.embeddedSimProfile
        .replacingOccurrences(of: "speaker_gain_db = -6.0", with: "speaker_gain_db = -40.0")
        .replacingOccurrences(of: "width = 640", with: "width = 320")
        .replacingOccurrences(of: "height = 360", with: "height = 176")
        .replacingOccurrences(of: "fps = 15", with: "fps = 10"), file: "sim-small-camera.toml")
}

/// A live-lesson configuration with video on `videoPort`, its peer's video on `peerVideoPort`.
func videoLessonConfiguration(role: String, audioPort: Int, peerAudioPort: Int, videoPort: Int, peerVideoPort: Int, dir: String,
                              security: String, profile: String = "AES_CM_128_HMAC_SHA1_80", lesson: String, extraMedia: String = "") throws -> BoxConfiguration {
    let peerRole = role == "lead" ? "remote" : "lead"
    let keyBytes = profile == "AEAD_AES_128_GCM" ? 28 : 30
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
        audio_port = \(peerAudioPort)
        video_port = \(peerVideoPort)
        [media]
        audio_port = \(audioPort)
        video_port = \(videoPort)
        security = "\(security)"
        \(security == "srtp" ? "srtp_profile = \"\(profile)\"\nsrtp_key = \"" + Data((0..<keyBytes).map { UInt8($0 * 7 + 3) }).base64EncodedString() + "\"" : "")
        \(extraMedia)
        [sim]
        lesson = "\(lesson)"
        output_dir = "\(dir)/\(role)"
        """
    return try BoxConfiguration.parse(text, file: "\(role).toml")
}

@Suite("Live lesson video: the camera's RTP session both ways", .serialized)
struct LiveVideoTests {
    @Test("two boxes send each other their cameras: every frame sent arrives whole, with RTCP, CNAMEs and no loss",
          arguments: [("plain", "AES_CM_128_HMAC_SHA1_80"), ("srtp", "AES_CM_128_HMAC_SHA1_80"), ("srtp", "AEAD_AES_128_GCM")])
    func videoBothWays(security: String, profile: String) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("classbox-video-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try WAVAudio(sampleRate: 48000, samples: tone(1000, seconds: 2.5)).write(path: dir + "/teacher.wav")
        let board = try smallCameraSimBoard()
        let leadAudio = try freePortPair(), remoteAudio = try freePortPair(), leadVideo = try freePortPair(), remoteVideo = try freePortPair()
        let lead = LiveLesson(board: board, config: try videoLessonConfiguration(
            role: "lead", audioPort: leadAudio, peerAudioPort: remoteAudio, videoPort: leadVideo, peerVideoPort: remoteVideo, dir: dir,
            security: security, profile: profile, lesson: dir + "/teacher.wav"), echoCancellation: false)
        nonisolated(unsafe) let remote = LiveLesson(board: board, config: try videoLessonConfiguration(
            role: "remote", audioPort: remoteAudio, peerAudioPort: leadAudio, videoPort: remoteVideo, peerVideoPort: leadVideo, dir: dir,
            security: security, profile: profile, lesson: dir + "/teacher.wav"), echoCancellation: false)
        nonisolated(unsafe) var remoteReport: LiveLessonReport?
        let thread = Thread { remoteReport = try? remote.run(stop: { false }) }
        thread.start()
        let leadReport = try #require(try lead.run(stop: { false }))
        while remoteReport == nil && !thread.isFinished { usleep(50_000) }
        let other = try #require(remoteReport)

        let leadVideoReport = try #require(leadReport.video), remoteVideoReport = try #require(other.video)
        for (name, mine, theirs) in [("teacher to rural room", leadVideoReport, remoteVideoReport), ("rural room to teacher", remoteVideoReport, leadVideoReport)] {
            let sent = try #require(mine.counters.sessions.first), received = try #require(theirs.counters.sessions.first)
            #expect(mine.counters.codec == "jpeg" && received.peerCodec == "jpeg", "\(name): the sim camera is sent as RFC 2435 JPEG")
            #expect(mine.counters.framesCaptured >= 30, "\(name): the camera delivered \(mine.counters.framesCaptured) frames (10 fps, 4.5 s)")
            #expect(mine.counters.framesDroppedQueueFull == 0, "\(name): nothing dropped before the network")
            #expect(sent.framesSent >= 30 && sent.sendFailures == 0 && sent.framesRefused == 0, "\(name): \(sent.framesSent) frames sent")
            // Both boxes stop at their own deadlines: frames sent after the other stopped are not received.
            #expect(received.framesReceived + received.framesDropped <= sent.framesSent, "\(name): nothing invented")
            #expect(received.framesReceived >= sent.framesSent - received.framesDropped - 3,
                    "\(name): \(received.framesReceived) received of \(sent.framesSent) sent (\(received.framesDropped) counted drops)")
            #expect(received.framesDropped == 0 && received.packetsLost == 0 && received.refused == 0, "\(name): loopback loses nothing")
            #expect(received.keyframesReceived == received.framesReceived, "every JPEG frame is a keyframe")
            #expect(received.rtcpReceived >= 2 && received.rtcpRefused == 0, "\(name): RTCP arrives (\(received.rtcpReceived))")
            #expect(received.peerCname?.hasPrefix("classbox@") == true, "\(name): the SDES CNAME arrives")
            #expect(sent.roundTripMs != nil, "\(name): the round trip is measured from the video RTCP")
        }
        // Audio carries the CNAME too, and the video left it alone.
        for report in [leadReport, other] {
            let audio = try #require(report.network.sessions.first)
            #expect(audio.peerCname == "classbox@\(report.role == "lead" ? "remote" : "lead")-box", "\(report.role): audio SDES CNAME")
            #expect(audio.packetsReceived > 100 && audio.refused == 0 && audio.rtcpRefused == 0, "\(report.role): audio ran as before")
        }
        // The demo's files: the frames log has one line per frame received, and the last frame is a JPEG.
        for (role, peer, report) in [("lead", "remote-box", leadVideoReport), ("remote", "lead-box", remoteVideoReport)] {
            let log = try String(contentsOfFile: "\(dir)/\(role)/video/from-\(peer)-frames.csv", encoding: .utf8)
            #expect(log.split(separator: "\n").count - 1 == report.counters.sessions[0].framesReceived)
            let latest = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(role)/video/from-\(peer)-latest.jpg"))
            #expect(latest.prefix(2) == Data([0xFF, 0xD8]))
        }
    }

    @Test("media.video = false runs the audio lesson without a video session")
    func videoOff() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("classbox-video-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try WAVAudio(sampleRate: 48000, samples: tone(1000, seconds: 0.5)).write(path: dir + "/teacher.wav")
        let config = try videoLessonConfiguration(role: "remote", audioPort: try freePortPair(), peerAudioPort: try freePortPair(),
                                                  videoPort: try freePortPair(), peerVideoPort: try freePortPair(), dir: dir,
                                                  security: "plain", lesson: dir + "/teacher.wav", extraMedia: "video = false")
        let report = try #require(try LiveLesson(board: try smallCameraSimBoard(), config: config, echoCancellation: false).run(stop: { false }))
        #expect(report.video == nil)
        #expect((report.network.sessions.first?.packetsSent ?? 0) > 50)
    }

    @Test("bad video settings name file, line and key")
    func badSettings() {
        for (line, key) in [("video_codec = \"vp8\"", "video_codec"), ("video = \"yes\"", "video"), ("video_jpeg_quality = 5", "video_jpeg_quality"),
                            ("srtp_profile = \"AES_256\"", "srtp_profile")] {
            let text = """
                [box]
                id = "b"
                school = "s"
                classroom = "c"
                role = "lead"
                [media]
                security = "plain"
                \(line)
                """
            do {
                _ = try BoxConfiguration.parse(text, file: "box.toml")
                Issue.record("\(line) was accepted")
            } catch {
                #expect("\(error)".contains("box.toml:8") && "\(error)".contains(key), "\(error)")
            }
        }
    }
}
