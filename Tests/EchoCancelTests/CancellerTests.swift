import Testing
@testable import EchoCancel

@Suite("Echo canceller")
struct CancellerTests {
    /// A 12 s scene: far-end speech through a room; a pupil talks over it from 8 s to 10.5 s.
    struct Scene {
        var far: [Float], mic: [Float], echo: [Float], near: [Float]
        static func make(rate: Int = 16000, delay: Int = 1600) -> Scene {
            let n = rate * 12
            let far = TestSignals.speechLike(count: n, level: 0.1, seed: 51, rate: rate)
            let h = TestSignals.room(length: rate / 5, delay: delay * rate / 16000, rt60Samples: rate / 4, gain: 0.5, seed: 52)
            let echo = TestSignals.convolve(far, h)
            let talk = TestSignals.speechLike(count: n, level: 0.03, seed: 53, rate: rate)
            let near = (0..<n).map { $0 >= rate * 8 && $0 < rate * 21 / 2 ? talk[$0] : 0 }
            let noise = TestSignals.noise(count: n, level: 3e-4, seed: 54)
            let mic = (0..<n).map { echo[$0] + near[$0] + noise[$0] }
            return Scene(far: far, mic: mic, echo: echo, near: near)
        }
    }

    static func erle(_ mic: [Float], _ out: [Float], _ range: Range<Int>, latency: Int) -> Float {
        var a: Float = 0, b: Float = 0
        for i in range { a += mic[i] * mic[i]; b += out[i + latency] * out[i + latency] }
        return TestSignals.decibels(a / max(b, 1e-20))
    }

    @Test("cancels echo and keeps a pupil who talks over the teacher")
    func doubleTalk() throws {
        let s = Scene.make()
        var aec = try EchoCanceller(EchoCancellerConfiguration(sampleRate: 16000))
        let out = runCanceller(&aec, far: s.far, mic: s.mic)
        let lat = aec.latencySamples
        let fst = Self.erle(s.mic, out, 16000 * 5..<16000 * 8 - lat, latency: lat)
        // Near-end loss: least-squares gain of the pupil inside the output during double talk.
        let shifted = Array(out[lat...]) + [Float](repeating: 0, count: lat)
        let loss = TestSignals.loss(of: s.near, in: shifted, range: 16000 * 8..<16000 * 21 / 2)
        #expect(fst > 25, "far-end single-talk ERLE \(fst) dB")
        // 1.5 dB; 3.2 dB without the output test of the near-end detector (the pupil is 12 dB under the echo).
        #expect(loss < 2, "near-end loss in double talk \(loss) dB")
        let stats = aec.statistics
        #expect(stats.doubleTalkFrames > 0)
        #expect(stats.delayMilliseconds.map { abs($0 - 100) < 10 } == true, "delay \(String(describing: stats.delayMilliseconds))")
    }

    @Test("a far end that starts after the pupils have talked is cancelled from its first second, and they are kept")
    func lateOnset() throws {
        // Pupils talk for 3 s while the far end is silent; the far end starts at 4 s, its echo 100 ms later.
        let rate = 16000, n = rate * 8, onset = rate * 4
        let speech = TestSignals.speechLike(count: n, level: 0.1, seed: 71, rate: rate)
        let far = (0..<n).map { $0 >= onset ? speech[$0] : 0 }
        let h = TestSignals.room(length: rate / 5, delay: 1600, rt60Samples: rate / 4, gain: 0.5, seed: 72)
        let echo = TestSignals.convolve(far, h)
        let talk = TestSignals.speechLike(count: n, level: 0.05, seed: 73, rate: rate)
        let near = (0..<n).map { $0 < rate * 3 ? talk[$0] : 0 }
        let noise = TestSignals.noise(count: n, level: 3e-4, seed: 74)
        let mic = (0..<n).map { echo[$0] + near[$0] + noise[$0] }
        var aec = try EchoCanceller(EchoCancellerConfiguration(sampleRate: rate))
        let out = runCanceller(&aec, far: far, mic: mic)
        let lat = aec.latencySamples
        let firstSecond = Self.erle(mic, out, onset + 1600..<onset + 1600 + rate, latency: lat)
        let shifted = Array(out[lat...]) + [Float](repeating: 0, count: lat)
        let pupils = TestSignals.loss(of: near, in: shifted, range: rate / 2..<rate * 3)
        #expect(firstSecond > 15, "ERLE in the first second of the far end's echo: \(firstSecond) dB")
        #expect(pupils < 1, "the pupils before the far end started lost \(pupils) dB")
    }

    @Test("render running ahead or behind by several frames changes nothing that matters")
    func unevenRender() throws {
        let s = Scene.make()
        func run(renderLead: Int) throws -> Float {
            var aec = try EchoCanceller(EchoCancellerConfiguration(sampleRate: 16000))
            var out = [Float](repeating: 0, count: s.mic.count)
            let frames = s.mic.count / 160
            var rendered = 0
            for f in 0..<frames {
                // Render arrives in bursts: up to `renderLead` frames early, or that many late.
                let wanted = min(frames, max(0, f + 1 + (f % 6 < 3 ? renderLead : -renderLead)))
                while rendered < wanted {
                    s.far[rendered * 160..<(rendered + 1) * 160].withUnsafeBufferPointer { aec.render($0) }
                    rendered += 1
                }
                let r = f * 160..<(f + 1) * 160
                s.mic[r].withUnsafeBufferPointer { m in out[r].withUnsafeMutableBufferPointer { aec.process(capture: m, output: $0) } }
            }
            return Self.erle(s.mic, out, 16000 * 5..<16000 * 8 - 200, latency: aec.latencySamples)
        }
        let even = try run(renderLead: 0)
        let jittery = try run(renderLead: 4)
        #expect(abs(even - jittery) < 3, "even \(even) dB, jittery \(jittery) dB")
        #expect(jittery > 25)
    }

    @Test("at 48 kHz the echo is removed in the upper band too")
    func wideband() throws {
        let rate = 48000
        let n = rate * 8
        let far = TestSignals.noise(count: n, level: 0.05, seed: 61)   // full-band, like music
        let h = TestSignals.room(length: rate / 10, delay: 2400, rt60Samples: rate / 8, gain: 0.5, seed: 62)
        let echo = TestSignals.convolve(far, h)
        let mic = zip(echo, TestSignals.noise(count: n, level: 1e-4, seed: 63)).map { $0 + $1 }
        var aec = try EchoCanceller(EchoCancellerConfiguration(sampleRate: rate))
        let out = runCanceller(&aec, far: far, mic: mic)
        let lat = aec.latencySamples
        // Upper band: a crude high-pass (first difference twice) of mic and output over the last 3 s.
        func highEnergy(_ x: [Float], _ r: Range<Int>) -> Float {
            var e: Float = 0
            for i in r { let d = x[i] - 2 * x[i - 1] + x[i - 2]; e += d * d }
            return e
        }
        let range = rate * 5..<n - lat
        let shifted = Array(out[lat...]) + [Float](repeating: 0, count: lat)
        let total = Self.erle(mic, out, range, latency: lat)
        let upper = TestSignals.decibels(highEnergy(mic, range) / max(highEnergy(shifted, range), 1e-20))
        #expect(total > 20, "full-band ERLE \(total) dB")
        #expect(upper > 20, "upper-band ERLE \(upper) dB")
    }

    @Test("bad configurations are refused with a message that says what to do")
    func refusals() {
        #expect(throws: EchoCancellerError.unsupportedSampleRate(44100)) {
            try EchoCanceller(EchoCancellerConfiguration(sampleRate: 44100))
        }
        #expect(throws: EchoCancellerError.unsupportedChannelCount(2)) {
            try EchoCanceller(EchoCancellerConfiguration(sampleRate: 16000, captureChannels: 2))
        }
        #expect(EchoCancellerError.unsupportedSampleRate(8000).description.contains("16000 or 48000"))
    }
}
