import BoxConfig
import Foundation
import Testing
@testable import Devices

let roomSpec = SimRoomSpec(rt60: 0.5, speakerDistance: 1.0, pupilDistance: 2.0, deviceDelayMs: 40,
                           speakerGainDb: 0, pupilGainDb: 0, noiseDbfs: -60, seed: 3)

@Suite("Simulated classroom")
struct SimulatedRoomTests {
    @Test("the echo arrives after the device delay plus the flight time of the sound")
    func echoDelay() {
        let room = SimulatedRoom(spec: roomSpec, sampleRate: 16000)
        #expect(abs(room.echoDelay - (0.040 + 1.0 / 343)) < 1e-9)
        let ir = room.echoImpulseResponse(length: 16000)
        let firstSignificant = ir.firstIndex { abs($0) > 1e-3 } ?? -1
        #expect(firstSignificant == Int((room.echoDelay * 16000).rounded()), "first tap at \(firstSignificant)")
        #expect(ir[..<firstSignificant].allSatisfy { $0 == 0 }, "nothing may arrive before the direct sound")
    }

    @Test("the reverberant tail decays at the configured RT60", arguments: [0.3, 0.8])
    func reverberationTime(rt60: Double) {
        var spec = roomSpec
        spec.rt60 = rt60
        let rate = 16000
        let ir = SimulatedRoom(spec: spec, sampleRate: rate).echoImpulseResponse(length: Int(2.0 * rt60 * Double(rate)))
        // Schroeder backward integration; fit the -5..-25 dB range and extrapolate to -60 dB (T20).
        var energy = [Double](repeating: 0, count: ir.count + 1)
        for i in stride(from: ir.count - 1, through: 0, by: -1) { energy[i] = energy[i + 1] + Double(ir[i]) * Double(ir[i]) }
        let db = energy.map { 10 * log10(max($0, 1e-30) / energy[0]) }
        let t5 = db.firstIndex { $0 <= -5 }!, t25 = db.firstIndex { $0 <= -25 }!
        let measured = Double(t25 - t5) / Double(rate) * 3
        #expect(abs(measured - rt60) / rt60 < 0.25, "measured RT60 \(measured) s for \(rt60) s")
    }

    @Test("background noise has the configured level")
    func noiseLevel() {
        var room = SimulatedRoom(spec: roomSpec, sampleRate: 16000)
        let silence = [Float](repeating: 0, count: 32000)
        var mic = [Float](repeating: 0, count: 32000)
        silence.withUnsafeBufferPointer { s in
            mic.withUnsafeMutableBufferPointer { m in room.process(speaker: s, pupil: nil, mic: m) }
        }
        let rms = (mic.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(mic.count)).squareRoot()
        #expect(abs(20 * log10(rms) - roomSpec.noiseDbfs) < 1.0)
    }

    @Test("the microphone is the sum of echo, pupil and noise, and the same seed gives the same room")
    func componentsAndDeterminism() {
        func run() -> (mic: [Float], echo: [Float], pupil: [Float]) {
            var room = SimulatedRoom(spec: roomSpec, sampleRate: 16000)
            let n = 8000
            let speaker = (0..<n).map { Float(sin(Double($0) * 0.05)) * 0.3 }
            let voice = (0..<n).map { Float(sin(Double($0) * 0.11)) * 0.2 }
            var mic = [Float](repeating: 0, count: n), echo = mic, pupil = mic
            speaker.withUnsafeBufferPointer { s in voice.withUnsafeBufferPointer { v in
                mic.withUnsafeMutableBufferPointer { m in echo.withUnsafeMutableBufferPointer { e in
                    pupil.withUnsafeMutableBufferPointer { p in
                        room.process(speaker: s, pupil: v, mic: m, components: .init(echo: e, pupil: p))
                    } } } } }
            return (mic, echo, pupil)
        }
        let a = run(), b = run()
        #expect(a.mic == b.mic)
        let residual = zip(a.mic, zip(a.echo, a.pupil)).map { Double($0 - $1.0 - $1.1) }
        let residualRMS = (residual.reduce(0) { $0 + $1 * $1 } / Double(residual.count)).squareRoot()
        #expect(abs(20 * log10(residualRMS) - roomSpec.noiseDbfs) < 1.5, "what is left is the noise")
        #expect(a.echo.contains { abs($0) > 0.01 } && a.pupil.contains { abs($0) > 0.01 })
    }
}
