import BoxConfig
import Foundation
import Logging
import Media
import Testing
@testable import Box

/// Speech-like test signal: noise shaped by a syllable-rate envelope, present where `active` says.
func voiceLike(seconds: Double, rate: Int, seed: UInt64, active: (Double) -> Bool) -> [Float] {
    var state = seed
    return (0..<Int(seconds * Double(rate))).map { n in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        let white = Float(Int64(bitPattern: state) >> 40) / Float(1 << 23)
        let t = Double(n) / Double(rate)
        let envelope = Float(0.5 + 0.5 * sin(2 * Double.pi * 4 * t))
        return active(t) ? 0.2 * white * envelope : 0
    }
}

@Suite("Simulated lesson")
struct SimLessonTests {
    func makeLesson() throws -> (SimLesson, String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("classbox-sim-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let rate = 16000
        // Teacher talks 0-4 s and 6-8 s; the pupil answers over her at 2.5-3.5 s and alone at 4.5-5.5 s.
        let teacher = voiceLike(seconds: 8, rate: rate, seed: 1) { $0 < 4 || $0 >= 6 }
        let pupil = voiceLike(seconds: 8, rate: rate, seed: 2) { ($0 >= 2.5 && $0 < 3.5) || ($0 >= 4.5 && $0 < 5.5) }
        try WAVAudio(sampleRate: rate, samples: teacher).write(path: dir + "/teacher.wav")
        try WAVAudio(sampleRate: rate, samples: pupil).write(path: dir + "/pupil.wav")
        let boardText = BoardCatalog.embeddedSimProfile.replacingOccurrences(of: "rate = 48000", with: "rate = 16000")
        let board = try BoardProfile.parse(boardText, file: "sim16k.toml")
        var config = BoxConfiguration.simDefault
        config.sim = .init(lesson: dir + "/teacher.wav", pupil: dir + "/pupil.wav", outputDir: dir + "/out")
        return (SimLesson(board: board, config: config), dir)
    }

    @Test("a lesson through the pass-through processor writes every file and measures the room truthfully")
    func passThroughLesson() throws {
        let (lesson, dir) = try makeLesson()
        var processor = PassThroughProcessor()
        let report = try lesson.run(processor: &processor)
        for name in ["speaker.wav", "mic.wav", "processed.wav", "echo-at-mic.wav", "pupil-at-mic.wav", "summary.md", "summary.json"] {
            #expect(FileManager.default.fileExists(atPath: dir + "/out/" + name), "\(name)")
        }
        let mic = try WAVAudio.read(path: dir + "/out/mic.wav"), out = try WAVAudio.read(path: dir + "/out/processed.wav")
        #expect(mic.samples == out.samples, "pass-through sends the microphone")
        #expect(mic.duration == 8)
        let a = report.analysis
        #expect(abs(a.erleDb ?? 99) < 0.1, "pass-through removes no echo")
        #expect(abs(a.doubleTalkNearLossDb ?? 99) < 0.5, "pass-through keeps the pupil")
        #expect(a.farOnlySeconds > 2 && a.doubleTalkSeconds > 0.5 && a.nearOnlySeconds > 0.5)
        let delay = try #require(a.measuredEchoDelayMs)
        #expect(abs(delay - report.room.echoDelayMs) < 1.0, "measured \(delay) ms, room \(report.room.echoDelayMs) ms")
        let summary = try String(contentsOfFile: report.summaryPath, encoding: .utf8)
        #expect(summary.contains("pass-through") && summary.contains("ERLE"))
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report.jsonPath))) as? [String: Any]
        #expect(json?["processor"] as? String == "pass-through")
    }

    @Test("with the echo canceller on the seam, the lesson's echo is removed and its latency compensated")
    func cancellerLesson() throws {
        let (lesson, _) = try makeLesson()
        var processor = try EchoCancellerProcessor(sampleRate: 16000)
        let report = try lesson.run(processor: &processor)
        #expect(report.processor == "classbox-aec")
        let erle = try #require(report.analysis.erleDb)
        #expect(erle > 6, "ERLE \(erle) dB over 8 s of a synthetic voice")
        #expect(report.analysis.doubleTalkNearLossDb.map { $0 < 10 } == true, "the pupil is not gated away")
    }

    @Test("a lesson file at the wrong rate says how to convert it")
    func wrongRate() throws {
        let (lesson, dir) = try makeLesson()
        try WAVAudio(sampleRate: 22050, samples: [0, 0, 0]).write(path: dir + "/teacher.wav")
        var processor = PassThroughProcessor()
        #expect {
            _ = try lesson.run(processor: &processor)
        } throws: { error in
            let text = (error as? SimLessonError)?.description ?? ""
            return text.contains("22050 Hz") && text.contains("16000 Hz") && text.contains("sox")
        }
    }
}

@Suite("Journal log format")
struct JournalLogHandlerTests {
    @Test("under systemd each event is one line with its syslog priority and no timestamp")
    func journald() {
        let handler = JournalLogHandler(label: "classbox.audio", level: .info, journald: true)
        let line = handler.format(level: .warning, message: "xrun\nrecovered", metadata: ["device": "hw:Loopback,1", "count": "3"])
        #expect(line == "<4>classbox.audio: xrun | recovered count=3 device=hw:Loopback,1")
    }

    @Test("on a terminal each event starts with a UTC time and the level")
    func terminal() {
        let handler = JournalLogHandler(label: "classbox", level: .info, journald: false)
        let line = handler.format(level: .info, message: "started", metadata: ["school": "Hill side"])
        #expect(line.hasSuffix(" info classbox: started school=\"Hill side\""))
        #expect(line.first?.isNumber == true && line.contains("Z info"))
    }
}

@Suite("Box setup")
struct BoxSetupTests {
    @Test("without a configuration file only the sim board runs, on built-in defaults")
    func defaults() throws {
        let catalog = BoardCatalog(searchPaths: [])
        // The default path does not exist on build machines; if it ever does, this test says nothing.
        guard !FileManager.default.fileExists(atPath: BoxConfiguration.defaultPath) else { return }
        let setup = try BoxSetup.load(board: nil, config: nil, catalog: catalog)
        #expect(setup.board.name == "sim" && setup.configPath == nil && setup.config.identity.id == "sim-box")
        #expect(throws: ConfigError.self) { try BoxSetup.load(board: "rpi4", config: nil, catalog: catalog) }
    }
}
