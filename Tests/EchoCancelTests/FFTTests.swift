import Testing
@testable import EchoCancel

@Suite("FFT")
struct FFTTests {
    /// The textbook O(n^2) DFT in double precision.
    static func naiveDFT(_ x: [Float]) -> (re: [Double], im: [Double]) {
        let n = x.count
        var re = [Double](repeating: 0, count: n / 2 + 1), im = re
        for k in 0...n / 2 {
            for t in 0..<n {
                let a = -2 * DSPMath.pi * Double(k * t) / Double(n)
                re[k] += Double(x[t]) * DSPMath.cos(a)
                im[k] += Double(x[t]) * DSPMath.sin(a)
            }
        }
        return (re, im)
    }

    @Test("the real FFT matches a naive DFT", arguments: [16, 32, 128, 512])
    func matchesNaiveDFT(size: Int) {
        let x = TestSignals.noise(count: size, level: 0.5, seed: UInt64(size))
        let fft = RealFFT(size: size)
        let fast = fft.forward(x)
        let slow = Self.naiveDFT(x)
        var worst = 0.0
        for k in 0...size / 2 {
            worst = max(worst, abs(Double(fast.real[k]) - slow.re[k]), abs(Double(fast.imaginary[k]) - slow.im[k]))
        }
        #expect(worst < 1e-4 * Double(size), "largest bin error \(worst)")
    }

    @Test("inverse(forward(x)) returns x", arguments: [16, 128, 1024])
    func roundTrip(size: Int) {
        let x = TestSignals.noise(count: size, level: 1, seed: 7)
        let fft = RealFFT(size: size)
        let s = fft.forward(x)
        let back = fft.inverse(real: s.real, imaginary: s.imaginary)
        let err = zip(x, back).map { abs($0 - $1) }.max() ?? 1
        #expect(err < 1e-5)
    }

    @Test("a pure tone lands in its bin")
    func tone() {
        let n = 128
        let x = (0..<n).map { Float(DSPMath.cos(2 * DSPMath.pi * 5 * Double($0) / Double(n))) }
        let s = RealFFT(size: n).forward(x)
        #expect(abs(s.real[5] - Float(n / 2)) < 1e-3)
        for k in 0...n / 2 where k != 5 { #expect(abs(s.real[k]) + abs(s.imaginary[k]) < 1e-3) }
    }

    @Test("elementary functions match known values")
    func math() {
        #expect(abs(DSPMath.sin(1) - 0.841_470_984_807_896_5) < 1e-14)
        #expect(abs(DSPMath.cos(100) - 0.862_318_872_287_683_9) < 1e-12)
        #expect(abs(DSPMath.log(10) - DSPMath.ln10) < 1e-14)
        #expect(abs(DSPMath.exp(-2.5) - 0.082_084_998_623_898_8) < 1e-15)
        #expect(abs(DSPMath.decibels(power: 1000) - 30) < 1e-12)
    }
}
