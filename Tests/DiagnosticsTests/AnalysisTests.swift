import BoxConfig
import Devices
import Foundation
import Testing
@testable import Diagnostics

/// Seeded white noise in [-amplitude, amplitude].
func noise(_ count: Int, amplitude: Float, seed: UInt64) -> [Float] {
    var state = seed
    return (0..<count).map { _ in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return amplitude * (Float(Int64(bitPattern: state) >> 40) / Float(1 << 23))
    }
}

/// A loop that delays, scales, adds noise and (optionally) runs the capture clock fast: a room whose
/// every value is known exactly.
struct SyntheticLoop: AcousticLoop {
    var rate = 48000
    var delaySamples: Int
    var gain: Float
    var noiseAmplitude: Float
    var ppm: Double = 0
    var name: String { "synthetic" }
    func playAndRecord(_ signal: [Float], extraSeconds: Double) throws(ALSAError) -> Recording {
        let count = signal.count + Int(extraSeconds * Double(rate))
        let hiss = noise(count, amplitude: noiseAmplitude, seed: 9)
        var mic = Acoustics.shifted(signal, by: delaySamples, count: count)
        for i in 0..<count { mic[i] = mic[i] * gain + hiss[i] }
        mic = Array(Acoustics.resampled(mic, ppm: ppm).prefix(count))
        return Recording(rate: rate, channels: [mic], mic: mic, xruns: 0)
    }
}

let simBoard: BoardProfile = try! BoardProfile.parse(BoardCatalog.embeddedSimProfile, file: "sim.toml")

func context(_ board: BoardProfile = simBoard) -> DiagnoseContext {
    DiagnoseContext(board: board, config: .simDefault, dataDirectory: FileManager.default.temporaryDirectory.path)
}

@Suite("Diagnose: the analysis behind the acoustic checks")
struct AnalysisTests {
    @Test("cross-correlation finds a delayed copy of noise at its delay, clearly above the rest")
    func delayOfNoise() throws {
        let reference = noise(9600, amplitude: 0.3, seed: 1)
        let signal = Acoustics.shifted(reference, by: 1234, count: 20000).enumerated().map { $1 * 0.2 + noise(1, amplitude: 0.01, seed: UInt64($0 + 5))[0] }
        let found = try #require(Acoustics.delay(of: reference, in: signal, maxLag: 4800))
        #expect(abs(found.samples - 1234) < 0.5)
        #expect(found.prominence > 20)
        // Nothing there: no clear peak.
        let silence = noise(20000, amplitude: 0.01, seed: 77)
        #expect((Acoustics.delay(of: reference, in: silence, maxLag: 4800)?.prominence ?? 0) < 6)
    }

    @Test("the speaker test measures delay, ERL and SNR of a known echo path, and fails when the echo drowns in noise")
    func speakerTestOnSyntheticRoom() throws {
        // Gain 0.25 is an echo 12.04 dB below the played sweep; delay 1000 samples = 20.83 ms.
        let loop = SyntheticLoop(delaySamples: 1000, gain: 0.25, noiseAmplitude: 0.0005)
        let check = AudioChecks.speakerAndMicrophone
        let rate = 48000, silence = rate / 2
        let sweep = TestSignal.sweep(rate: rate, seconds: 1.5)
        let played = [Float](repeating: 0, count: silence) + sweep
        let recording = try loop.playAndRecord(played, extraSeconds: 0.6)
        let r = AudioChecks.analyse(check: check, played: played, silence: silence, sweep: sweep, recording: recording, rate: rate)
        #expect(r.status == .pass, "\(r.finding)")
        #expect(abs(try #require(r.value("delay")) - 1000.0 / 48) < 0.05)
        #expect(abs(try #require(r.value("erl")) - 12.04) < 0.2)
        // Noise uniform in ±0.0005: -71 dBFS; echo of a -12 dBFS-peak sweep: about -27 dBFS.
        #expect(abs(try #require(r.value("noise_floor")) - (-70.8)) < 0.5)
        #expect(try #require(r.value("snr")) > 40)
        // A flat path: no band more than 1 dB off the median.
        for m in r.measurements where m.name.hasPrefix("response_") { #expect(abs(m.value ?? 99) < 1, "\(m.display)") }

        let noisy = SyntheticLoop(delaySamples: 1000, gain: 0.02, noiseAmplitude: 0.2)
        let bad = AudioChecks.analyse(check: check, played: played, silence: silence, sweep: sweep,
                                      recording: try noisy.playAndRecord(played, extraSeconds: 0.6), rate: rate)
        #expect(bad.status == .fail)
        #expect(bad.remedy?.isEmpty == false)
    }

    @Test("a straight-line fit of echo delays gives the clock drift in ppm", arguments: [0.0, 35.0, -120.0])
    func driftFit(ppm: Double) throws {
        let positions = [0.0, 240_000, 480_000]
        let delays = positions.map { 2000 + $0 * ppm * 1e-6 }
        #expect(abs(try #require(Acoustics.driftPPM(positions: positions, delays: delays)) - ppm) < 1e-6)
        // Through a loop whose capture clock runs fast by `ppm`.
        let loop = SyntheticLoop(delaySamples: 700, gain: 0.5, noiseAmplitude: 0.001, ppm: ppm)
        let r = AudioChecks.measureDrift(check: AudioChecks.clockDrift, loop: loop, intervalSeconds: 5, board: simBoard)
        #expect(abs(try #require(r.value("drift")) - ppm) < 1.5, "\(r.measurements.map(\.display))")
        #expect(r.status == .pass)
    }

    @Test("the verdict is the worst status, skips count as passes, and the exit code follows it", arguments: [
        ([CheckStatus.pass, .pass], CheckStatus.pass, Int32(0)),
        ([.pass, .skip], .pass, 0),
        ([.skip], .pass, 0),
        ([.pass, .warn, .skip], .warn, 1),
        ([.warn, .fail, .pass], .fail, 2),
        ([.fail], .fail, 2),
    ])
    func verdict(statuses: [CheckStatus], verdict: CheckStatus, exitCode: Int32) {
        let checks = statuses.enumerated().map { CheckResult(id: "c\($0)", title: "Check \($0)", status: $1, finding: "x") }
        let report = DiagnoseReport(classbox: "0", board: "sim", box: "b", started: Date(), seconds: 1, checks: checks)
        #expect(report.verdict == verdict)
        #expect(report.exitCode == exitCode)
        #expect(report.summary.hasPrefix(verdict.rawValue.uppercased()))
    }

    @Test("the JSON report carries the schema version, the verdict and every check with units and remedies")
    func jsonSchema() throws {
        let checks = [CheckResult(id: "audio", title: "Speaker and microphone", status: .warn, finding: "quiet", remedy: "turn it up",
                                  measurements: [Measurement("delay", 43.5, "ms"), Measurement("kernel", text: "6.1")])]
        let report = DiagnoseReport(classbox: "0.1.0", board: "sim", box: "b", started: Date(timeIntervalSince1970: 0), seconds: 2, checks: checks)
        let object = try #require(try JSONSerialization.jsonObject(with: report.json()) as? [String: Any])
        #expect(object["schema"] as? String == "classbox-diagnose/1")
        #expect(object["verdict"] as? String == "warn")
        #expect(object["started"] as? String == "1970-01-01T00:00:00Z")
        let check = try #require((object["checks"] as? [[String: Any]])?.first)
        #expect(check["id"] as? String == "audio" && check["status"] as? String == "warn" && check["remedy"] as? String == "turn it up")
        let measurements = try #require(check["measurements"] as? [[String: Any]])
        #expect(measurements[0]["value"] as? Double == 43.5 && measurements[0]["unit"] as? String == "ms")
        #expect(measurements[1]["text"] as? String == "6.1")
        // And it decodes back to the same report.
        #expect(try JSONDecoder().decode(DiagnoseReport.self, from: report.json()) == report)
    }

    @Test("--only and --skip take comma-separated ids, keep the standard order, and reject unknown ids by listing the known")
    func selection() throws {
        let ids = Diagnose.checkIDs
        let only = try CheckSelection(only: ["camera,audio"], known: ids)
        #expect(only.apply(to: Diagnose.checks).map(\.id) == ["audio", "camera"])
        let skip = try CheckSelection(skip: ["network", " System "], known: ids)
        #expect(skip.apply(to: Diagnose.checks).map(\.id) == ["devices", "audio", "drift", "aec", "camera", "button"])
        let both = try CheckSelection(only: ["audio,drift"], skip: ["drift"], known: ids)
        #expect(both.apply(to: Diagnose.checks).map(\.id) == ["audio"])
        #expect(throws: CheckSelectionError(unknown: ["speaker"], known: ids)) { try CheckSelection(only: ["audio,speaker"], known: ids) }
        #expect(CheckSelectionError(unknown: ["speaker"], known: ids).description.contains("devices, audio, drift"))
    }

    @Test("a check that does not finish in time is reported as failed with a remedy, and the next check still runs")
    func timeout() {
        let slow = DiagnosticCheck(id: "slow", title: "Slow", timeoutSeconds: 0.3) { check, _ in
            Thread.sleep(forTimeInterval: 2)
            return check.result(.pass, "done")
        }
        let quick = DiagnosticCheck(id: "quick", title: "Quick", timeoutSeconds: 5) { check, _ in check.result(.pass, "done") }
        let start = Date()
        let results = DiagnoseRunner.run([slow, quick], context: context())
        #expect(Date().timeIntervalSince(start) < 1.5)
        #expect(results.map(\.status) == [.fail, .pass])
        #expect(results[0].finding.contains("did not finish") && results[0].remedy?.contains("--only slow") == true)
    }

    @Test("the table starts with the verdict, shows each check's finding, measurements and remedy, and has colour only when asked")
    func table() {
        let checks = [CheckResult(id: "audio", title: "Speaker and microphone", status: .fail, finding: "The microphone did not hear the test sound.",
                                  remedy: "Check the speaker.", measurements: [Measurement("noise_floor", -64.9, "dBFS")]),
                      CheckResult(id: "camera", title: "Camera", status: .skip, finding: "Skipped: no camera.")]
        let report = DiagnoseReport(classbox: "0.1.0", board: "sim", box: "b", started: Date(), seconds: 1, checks: checks)
        let plain = Diagnose.render(report, colour: false)
        let lines = plain.split(separator: "\n").map(String.init)
        #expect(lines[0].hasPrefix("FAIL: 1 of 2 checks failed (speaker and microphone)"))
        #expect(plain.contains("FAIL  Speaker and microphone  The microphone did not hear the test sound."))
        #expect(plain.contains("noise_floor -64.9 dBFS") && plain.contains("what to do: Check the speaker."))
        #expect(!plain.contains("\u{1B}["))
        #expect(Diagnose.render(report, colour: true).contains("\u{1B}[31;1m"))
    }

    @Test("the report is saved under the report directory, or in the fallback with a warning when that is not writable")
    func saving() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cbxd-\(UUID().uuidString)").path
        let report = DiagnoseReport(classbox: "0", board: "sim", box: "b", started: Date(timeIntervalSince1970: 0), seconds: 1, checks: [])
        let saved = Diagnose.save(report, directory: dir + "/diagnose")
        #expect(saved.path == dir + "/diagnose/1970-01-01T00-00-00Z.json" && saved.warning == nil)
        let back = try JSONDecoder().decode(DiagnoseReport.self, from: Data(contentsOf: URL(fileURLWithPath: try #require(saved.path))))
        #expect(back.savedTo == saved.path)
        // A file where the directory should be: not writable.
        #expect(FileManager.default.createFile(atPath: dir + "/blocked", contents: Data()))
        let fallback = Diagnose.save(report, directory: dir + "/blocked/diagnose", fallback: dir + "/fallback")
        #expect(fallback.path == dir + "/fallback/1970-01-01T00-00-00Z.json")
        #expect(fallback.warning?.contains("saving it in \(dir)/fallback instead") == true)
        try? FileManager.default.removeItem(atPath: dir)
    }
}

@Suite("Diagnose: running system tools")
struct SubprocessTests {
    @Test("a tool's output and exit status are collected, and a tool past its time limit is killed")
    func run() throws {
        let ok = try #require(Subprocess.run("/bin/sh", ["-c", "echo out; echo err >&2; exit 3"], timeoutSeconds: 5))
        #expect(ok.status == 3 && ok.stdout == "out\n" && ok.stderr == "err\n" && !ok.timedOut)
        let start = Date()
        let slow = try #require(Subprocess.run("/bin/sleep", ["10"], timeoutSeconds: 0.3))
        #expect(slow.timedOut && Date().timeIntervalSince(start) < 2)
        #expect(Subprocess.run("/nonexistent/tool", [], timeoutSeconds: 1) == nil)
    }
}
