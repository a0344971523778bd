import Testing
@testable import EchoCancel

@Suite("Adaptive filter")
struct FilterTests {
    /// Runs only the linear part (core blocks) and reports the linear ERLE per second.
    static func linearERLE(far: [Float], mic: [Float], partitions: Int = 80) -> [Float] {
        var core = CancellerCore(mainPartitions: partitions, shadowPartitions: partitions)
        let n = Block.size
        var out = [Float](repeating: 0, count: n)
        var result: [Float] = []
        var micE: Float = 0, errE: Float = 0
        for b in 0..<(mic.count / n) {
            let r = b * n..<(b + 1) * n
            far[r].withUnsafeBufferPointer { core.pushRender($0.baseAddress!, count: n) }
            mic[r].withUnsafeBufferPointer { m in out.withUnsafeMutableBufferPointer { core.process(m.baseAddress!, $0.baseAddress!) } }
            for i in 0..<n { micE += mic[r.lowerBound + i] * mic[r.lowerBound + i]; errE += core.errorMain[i] * core.errorMain[i] }
            if (b + 1) % 250 == 0 {
                result.append(TestSignals.decibels(micE / max(errE, 1e-20)))
                micE = 0; errE = 0
            }
        }
        return result
    }

    @Test("the main filter converges on a synthetic 150 ms echo path behind a 60 ms bulk delay")
    func convergesOnSyntheticPath() {
        let rate = 16000
        let far = TestSignals.noise(count: rate * 6, level: 0.1, seed: 1)
        let h = TestSignals.room(length: 2400, delay: 960, rt60Samples: 2400, gain: 0.5, seed: 2)
        let echo = TestSignals.convolve(far, h)
        let noise = TestSignals.noise(count: far.count, level: 1e-5, seed: 3)
        let mic = zip(echo, noise).map { $0 + $1 }
        let erle = Self.linearERLE(far: far, mic: mic)
        // The shadow filter is as long as the main one (80 partitions here), so on white noise it needs a little
        // longer than the former 32-partition shadow for its first 15 dB; the steady state is what matters.
        #expect(erle[1] > 12, "linear ERLE per second: \(erle)")
        #expect(erle.last! > 35, "linear ERLE per second: \(erle)")
    }

    @Test("after an abrupt echo-path change the shadow filter brings the main filter back within a second")
    func reconvergesAfterPathChange() {
        let rate = 16000
        let far = TestSignals.noise(count: rate * 8, level: 0.1, seed: 11)
        let h1 = TestSignals.room(length: 1600, delay: 480, rt60Samples: 1600, gain: 0.5, seed: 12)
        let h2 = TestSignals.room(length: 1600, delay: 530, rt60Samples: 1600, gain: 0.4, seed: 13)
        let e1 = TestSignals.convolve(far, h1), e2 = TestSignals.convolve(far, h2)
        let change = rate * 4
        let mic = (0..<far.count).map { $0 < change ? e1[$0] : e2[$0] }
        let erle = Self.linearERLE(far: far, mic: mic)
        #expect(erle[3] > 27, "before the change: \(erle)")
        #expect(erle[5] > 15, "the second after the change: \(erle)")
    }

    @Test("partition shifts keep the modelled response in place")
    func shift() {
        let f = PartitionedFilter(partitions: 4)
        for i in 0..<(4 * Block.padded) { f.re[i] = Float(i / Block.padded + 1) }
        f.shift(by: 1)
        #expect(f.re[0] == 2 && f.re[2 * Block.padded] == 4 && f.re[3 * Block.padded] == 0)
        f.shift(by: -2)
        #expect(f.re[0] == 0 && f.re[Block.padded] == 0 && f.re[2 * Block.padded] == 2)
    }
}
