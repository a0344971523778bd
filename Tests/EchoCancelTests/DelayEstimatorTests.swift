import Testing
@testable import EchoCancel

@Suite("Delay estimator")
struct DelayEstimatorTests {
    /// Feeds far and a delayed, reverberant copy in 10 ms frames; returns the estimate after each second.
    static func track(far: [Float], mic: [Float]) -> [Int?] {
        var estimator = DelayEstimator()
        var result: [Int?] = []
        for f in 0..<(far.count / 160) {
            let r = f * 160..<(f + 1) * 160
            far[r].withUnsafeBufferPointer { estimator.pushRender($0.baseAddress!, count: 160) }
            mic[r].withUnsafeBufferPointer { estimator.pushCapture($0.baseAddress!, count: 160) }
            if (f + 1) % 100 == 0 { result.append(estimator.delay) }
        }
        return result
    }

    static func room(delay: Int, seed: UInt64) -> [Float] {
        TestSignals.room(length: 3000, delay: delay, rt60Samples: 4000, gain: 0.4, seed: seed)
    }

    @Test("finds known delays from 0 to 600 ms within 2 ms", arguments: [0, 40, 150, 300, 450, 600])
    func knownDelay(milliseconds: Int) {
        let far = TestSignals.speechLike(count: 16000 * 5, level: 0.1, seed: 21)
        var mic = TestSignals.convolve(far, Self.room(delay: milliseconds * 16, seed: 22))
        let noise = TestSignals.noise(count: mic.count, level: 0.001, seed: 23)
        for i in mic.indices { mic[i] += noise[i] }
        let track = Self.track(far: far, mic: mic)
        let final = track.last ?? nil
        #expect(final != nil, "no lock: \(track)")
        if let d = final { #expect(abs(d - milliseconds * 16) <= 32, "estimated \(d) samples, track \(track)") }
    }

    @Test("re-locks after a 35 ms jump (an ALSA underrun) within two seconds")
    func jump() {
        let far = TestSignals.speechLike(count: 16000 * 9, level: 0.1, seed: 31)
        let before = TestSignals.convolve(far, Self.room(delay: 1920, seed: 32))
        let after = TestSignals.convolve(far, Self.room(delay: 1920 + 560, seed: 32))
        let jumpAt = 16000 * 4
        let mic = (0..<far.count).map { $0 < jumpAt ? before[$0] : after[$0] }
        let track = Self.track(far: far, mic: mic)
        #expect(track[3].map { abs($0 - 1920) <= 32 } == true, "before: \(track)")
        #expect(track[5].map { abs($0 - 2480) <= 32 } == true, "two seconds after: \(track)")
    }

    @Test("follows slow drift")
    func drift() {
        // The delay grows by one sample every 200 ms (5 samples/s, a very fast drift) from 100 ms.
        let far = TestSignals.speechLike(count: 16000 * 12, level: 0.1, seed: 41)
        var mic = [Float](repeating: 0, count: far.count)
        for n in mic.indices {
            let d = 1600 + n / 3200
            if n >= d { mic[n] = 0.5 * far[n - d] }
        }
        let track = Self.track(far: far, mic: mic)
        let last = track.last ?? nil
        #expect(last.map { abs($0 - (1600 + far.count / 3200)) <= 24 } == true, "track: \(track)")
    }
}
