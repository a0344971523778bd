import Testing
@testable import EchoCancel

@Suite("Adaptive filter")
struct FilterTests {
    /// Runs only the linear part (core blocks) and reports the linear ERLE per second.
    static func linearERLE(far: [Float], mic: [Float], partitions: Int = 80) -> [Float] {
        var core = CancellerCore(mainPartitions: partitions, shadowPartitions: 32)
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

    @Test("the main filter converges on a synthetic 150 ms echo path with a 60 ms bulk delay")
    func convergesOnSyntheticPath() {
        let rate = 16000
        let far = TestSignals.noise(count: rate * 8, level: 0.1, seed: 1)
        let h = TestSignals.room(length: 2400, delay: 960, rt60Samples: 2400, gain: 0.5, seed: 2)
        let echo = TestSignals.convolve(far, h)
        let noise = TestSignals.noise(count: far.count, level: 1e-5, seed: 3)
        let mic = zip(echo, noise).map { $0 + $1 }
        let erle = Self.linearERLE(far: far, mic: mic)
        print("linear ERLE per second:", erle.map { Int($0) })
        #expect(erle.last! > 30)
        #expect(erle[1] > 15)
    }
}
