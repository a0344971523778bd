import BoxConfig
import Devices
import Foundation
import Testing
@testable import Diagnostics
#if canImport(Glibc)
import Glibc
#endif

/// The sim board's profile with some [sim] values replaced.
func simBoard(_ replacements: [String: String]) throws -> BoardProfile {
    var text = BoardCatalog.embeddedSimProfile
    for (key, value) in replacements {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if let i = lines.firstIndex(where: { $0.hasPrefix(key + " ") }) {
            var copy = lines
            copy[i] = "\(key) = \(value)"
            text = copy.joined(separator: "\n")
        } else {
            text += "\n\(key) = \(value)\n"
        }
    }
    return try BoardProfile.parse(text, file: "sim-test.toml")
}

/// The echo path's level in the room measured without noise and at the room's known delay: the
/// loudspeaker's sound alone as it reaches the microphone (the room's echo component).
func trueERL(_ spec: SimRoomSpec, rate: Int) -> (erl: Double, delayMs: Double) {
    let silence = rate / 2
    let sweep = TestSignal.sweep(rate: rate, seconds: 1.5)
    let played = [Float](repeating: 0, count: silence) + sweep
    var room = SimulatedRoom(spec: spec, sampleRate: rate)
    var mic = [Float](repeating: 0, count: played.count + rate), echo = mic, voice = mic
    let speaker = played + [Float](repeating: 0, count: rate)
    speaker.withUnsafeBufferPointer { s in
        mic.withUnsafeMutableBufferPointer { m in
            echo.withUnsafeMutableBufferPointer { e in
                voice.withUnsafeMutableBufferPointer { v in room.process(speaker: s, pupil: nil, mic: m, components: .init(echo: e, pupil: v)) }
            }
        }
    }
    let delay = Int((room.echoDelay * Double(rate)).rounded())
    let window = echo[(silence + delay)..<(silence + delay + sweep.count)]
    return (10 * log10(Acoustics.power(sweep) / Acoustics.power(window)), room.echoDelay * 1000)
}

@Suite("Diagnose on the sim board: the measurements match the simulated room", .serialized)
struct SimRoomTests {
    @Test("delay within 0.5 ms, ERL within 1 dB and drift within 0.5 ppm of the default room's known values")
    func defaultRoom() throws {
        let board = simBoard
        let room = try #require(board.simRoom)
        let truth = trueERL(room, rate: board.audio.rate)
        let audio = DiagnoseRunner.runOne(AudioChecks.speakerAndMicrophone, context: context(board))
        #expect(audio.status == .pass, "\(audio.finding)")
        let delay = try #require(audio.value("delay")), erl = try #require(audio.value("erl"))
        // 40 ms of sound card plus 1.2 m at 343 m/s = 43.5 ms.
        #expect(abs(truth.delayMs - 43.498) < 0.01)
        #expect(abs(delay - truth.delayMs) < 0.5, "measured \(delay) ms, room \(truth.delayMs) ms")
        #expect(abs(erl - truth.erl) < 1, "measured ERL \(erl) dB, room \(truth.erl) dB")
        #expect(abs(try #require(audio.value("noise_floor")) - room.noiseDbfs) < 1)
        let drift = DiagnoseRunner.runOne(AudioChecks.clockDrift, context: context(board))
        #expect(drift.status == .pass)
        #expect(abs(try #require(drift.value("drift"))) < 0.5)
    }

    @Test("a room with a slower sound card, a quieter speaker and a fast capture clock measures as that room")
    func changedRoom() throws {
        let board = try simBoard(["device_delay_ms": "120", "speaker_gain_db": "-20.0", "capture_clock_ppm": "80"])
        let room = try #require(board.simRoom)
        #expect(room.captureClockPPM == 80)
        let truth = trueERL(room, rate: board.audio.rate)
        let audio = DiagnoseRunner.runOne(AudioChecks.speakerAndMicrophone, context: context(board))
        let delay = try #require(audio.value("delay")), erl = try #require(audio.value("erl"))
        // The clock runs 80 ppm fast: over 0.6 s the delay grows by 0.05 ms at most.
        #expect(abs(delay - truth.delayMs) < 0.5, "measured \(delay) ms, room \(truth.delayMs) ms")
        #expect(abs(erl - truth.erl) < 1, "measured ERL \(erl) dB, room \(truth.erl) dB")
        #expect(erl > 14, "14 dB quieter speaker than the default room's")
        let drift = DiagnoseRunner.runOne(AudioChecks.clockDrift, context: context(board))
        #expect(abs(try #require(drift.value("drift")) - 80) < 2, "\(drift.measurements.map(\.display))")
    }

    @Test("a speaker too quiet to hear over the room's noise fails the speaker test with a remedy")
    func deadSpeaker() throws {
        let board = try simBoard(["speaker_gain_db": "-40.0", "noise_dbfs": "-25.0"])
        let audio = DiagnoseRunner.runOne(AudioChecks.speakerAndMicrophone, context: context(board))
        #expect(audio.status == .fail)
        #expect(audio.remedy?.contains("speaker") == true)
        let drift = DiagnoseRunner.runOne(AudioChecks.clockDrift, context: context(board))
        #expect(drift.status == .fail)
    }

    @Test("a capture clock 2500 ppm off fails the drift check: more than the box compensates")
    func excessiveDrift() throws {
        // The profile accepts up to 1000 ppm; a synthetic loop goes beyond.
        let loop = SyntheticLoop(delaySamples: 500, gain: 0.5, noiseAmplitude: 0.001, ppm: 2500)
        let r = AudioChecks.measureDrift(check: AudioChecks.clockDrift, loop: loop, intervalSeconds: 4, board: simBoard)
        #expect(r.status == .fail && r.finding.contains("more than the box can compensate"))
    }

    @Test("a recording with lost samples gives no drift number but a warning that says why")
    func driftWithXruns() throws {
        struct LossyLoop: AcousticLoop {
            var inner = SyntheticLoop(delaySamples: 500, gain: 0.5, noiseAmplitude: 0.001)
            var name: String { "lossy" }
            var rate: Int { inner.rate }
            func playAndRecord(_ signal: [Float], extraSeconds: Double) throws(ALSAError) -> Recording {
                var r = try inner.playAndRecord(signal, extraSeconds: extraSeconds)
                r.xruns = 3
                return r
            }
        }
        let r = AudioChecks.measureDrift(check: AudioChecks.clockDrift, loop: LossyLoop(), intervalSeconds: 2, board: simBoard)
        #expect(r.status == .warn && r.finding.contains("lost samples 3 time(s)") && r.value("drift") == nil)
    }

    @Test("the echo canceller removes at least 20 dB of the simulated room's echo within 3 s")
    func echoCanceller() throws {
        let r = DiagnoseRunner.runOne(AudioChecks.echoCanceller, context: context(simBoard))
        #expect(r.status == .pass, "\(r.finding)")
        #expect(try #require(r.value("erle")) >= 20)
        #expect(try #require(r.value("convergence")) <= 3)
    }

    @Test("--while-running skips the device tests and says why")
    func whileRunning() {
        var ctx = context()
        ctx.whileRunning = true
        let r = DiagnoseRunner.runOne(AudioChecks.speakerAndMicrophone, context: ctx)
        #expect(r.status == .skip && r.finding.contains("classbox service is running"))
    }
}

@Suite("Diagnose: the network probe against a real UDP echo on loopback")
struct NetworkProbeTests {
    /// Echoes every datagram on 127.0.0.1 until `stop`; returns the port.
    final class EchoServer: @unchecked Sendable {
        let fd: Int32
        let port: UInt16
        init() throws {
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
            var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            self.fd = fd
            port = UInt16(bigEndian: address.sin_port)
        }
        func serve(seconds: Double) {
            let end = Date().addingTimeInterval(seconds)
            var buffer = [UInt8](repeating: 0, count: 256)
            while Date() < end {
                var from = sockaddr_storage()
                var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
                let n = withUnsafeMutablePointer(to: &from) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &buffer, buffer.count, 0, $0, &length) } }
                if n > 0 { _ = withUnsafePointer(to: &from) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, buffer, n, 0, $0, length) } } }
            }
            close(fd)
        }
    }

    func config(peerPort: Int) throws -> BoxConfiguration {
        try BoxConfiguration.parse("""
            [box]
            id = "hillside-3a"
            school = "Hillside"
            classroom = "3A"
            role = "remote"
            [[peers]]
            id = "town-5b"
            address = "127.0.0.1"
            role = "lead"
            audio_port = \(peerPort)
            [media]
            security = "plain"
            """, file: "net.toml")
    }

    @Test("a peer that echoes is reachable with its round-trip time, jitter and no loss")
    func echoingPeer() throws {
        let server = try EchoServer()
        let thread = Thread { server.serve(seconds: 4) }
        thread.start()
        var ctx = context()
        ctx.config = try config(peerPort: Int(server.port))
        let r = DiagnoseRunner.runOne(SystemChecks.network, context: ctx)
        #expect(r.status == .pass || (r.status == .warn && r.finding.contains("clock")), "\(r.finding)")
        #expect(r.value("town-5b_loss") == 0)
        #expect(try #require(r.value("town-5b_rtt")) < 50)
        #expect(r.value("town-5b_jitter") != nil)
    }

    @Test("a peer that does not answer is a warning with a remedy, within the probe's time")
    func silentPeer() throws {
        let server = try EchoServer()  // bound, never answering
        var ctx = context()
        ctx.config = try config(peerPort: Int(server.port))
        ctx.networkProbeSeconds = 1
        let start = Date()
        let r = DiagnoseRunner.runOne(SystemChecks.network, context: ctx)
        #expect(Date().timeIntervalSince(start) < 3)
        #expect(r.status == .warn && r.finding.contains("town-5b did not answer"))
        #expect(r.remedy?.contains("UDP port \(server.port)") == true)
        close(server.fd)
    }

    @Test("with no peers or hub configured the network check is skipped with the reason")
    func noPeers() {
        let r = DiagnoseRunner.runOne(SystemChecks.network, context: context())
        #expect(r.status == .skip || r.status == .warn)
        #expect(r.finding.contains("no other classroom or hub is configured") || r.finding.contains("clock"))
    }
}
