// The 48 kHz band split: a linear-phase 144-tap Kaiser low-pass (cut-off 7.5 kHz) decimates by 3 into the
// 16 kHz core and interpolates its output back. The upper band is what the low-pass path cannot carry:
// the delayed microphone minus the interpolated decimated microphone, so with unit gains the split is
// transparent; the suppressor's gain for the top of the low band scales it, so echo cannot leak there.

/// Filter design shared by the decimator and the interpolator.
enum BandSplitFilter {
    static let taps = 144
    /// Group delay of decimation plus interpolation, in 48 kHz samples.
    static let roundTripDelay = taps - 3  // 2 x 71.5, less the 2-sample phase of the decimator

    /// Kaiser-windowed sinc, cut-off 7.5 kHz at 48 kHz, beta 7, unit DC gain.
    static func design() -> [Float] {
        let n = taps
        let fc = 7500.0 / 48000.0
        let beta = 7.0
        var h = [Double](repeating: 0, count: n)
        let mid = Double(n - 1) / 2
        let i0b = DSPMath.besselI0(beta)
        for i in 0..<n {
            let t = Double(i) - mid
            let x = 2 * DSPMath.pi * fc * t
            let sinc = abs(t) < 1e-12 ? 2 * fc : 2 * fc * DSPMath.sin(x) / x
            let r = 2 * Double(i) / Double(n - 1) - 1
            let w = DSPMath.besselI0(beta * (max(0, 1 - r * r)).squareRoot()) / i0b
            h[i] = sinc * w
        }
        let sum = h.reduce(0, +)
        return h.map { Float($0 / sum) }
    }
}

/// Low-pass and keep every third sample: 48 kHz in, 16 kHz out, in frames of 3 x `outputCount` samples.
struct Decimator3: ~Copyable {
    let outputCount: Int
    private let reversed: FloatBuffer      // h reversed
    private let history: FloatBuffer       // taps - 1 old samples, then the new frame

    init(outputCount: Int) {
        self.outputCount = outputCount
        let h = BandSplitFilter.design()
        reversed = FloatBuffer(count: BandSplitFilter.taps)
        for i in 0..<h.count { reversed[i] = h[h.count - 1 - i] }
        history = FloatBuffer(count: BandSplitFilter.taps - 1 + 3 * outputCount + 8)
    }

    /// Filters `3 * outputCount` samples of `x` into `outputCount` samples of `y`.
    func process(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        let keep = BandSplitFilter.taps - 1
        let frame = 3 * outputCount
        (history.base + keep).update(from: x, count: frame)
        for m in 0..<outputCount {
            // y[m] = sum_i h[i] x[3m + 2 - i]: the window ending at the newest sample of the triple.
            let start = 3 * m + 2 + keep - (BandSplitFilter.taps - 1)
            var acc = SIMD8<Float>()
            var j = 0
            while j < BandSplitFilter.taps {
                acc += load8(reversed.base, j) * load8(history.base, start &+ j)
                j &+= 8
            }
            y[m] = acc.sum()
        }
        history.base.update(from: history.base + frame, count: keep)
    }
}

/// Insert two zeros after each sample and low-pass (gain 3): 16 kHz in, 48 kHz out.
struct Interpolator3: ~Copyable {
    let inputCount: Int
    static let phaseTaps = BandSplitFilter.taps / 3
    private let phases: FloatBuffer        // 3 x 48, each phase's taps reversed, times 3
    private let history: FloatBuffer

    init(inputCount: Int) {
        self.inputCount = inputCount
        let h = BandSplitFilter.design()
        let t = Self.phaseTaps
        phases = FloatBuffer(count: 3 * t)
        for phi in 0..<3 {
            for j in 0..<t {
                // z[3m + phi] = 3 sum_j h[3j + phi] x[m - j]; reversed: index t-1-j weighs x[m - j].
                phases[phi * t + (t - 1 - j)] = 3 * h[3 * j + phi]
            }
        }
        history = FloatBuffer(count: t - 1 + inputCount + 8)
    }

    /// Interpolates `inputCount` samples of `x` into `3 * inputCount` samples of `z`.
    func process(_ x: UnsafePointer<Float>, _ z: UnsafeMutablePointer<Float>) {
        let t = Self.phaseTaps
        let keep = t - 1
        (history.base + keep).update(from: x, count: inputCount)
        for m in 0..<inputCount {
            let start = m   // history[m ... m + t - 1] ends at x[m]
            for phi in 0..<3 {
                var acc = SIMD8<Float>()
                var j = 0
                let p = phases.base + phi * t
                while j < t {
                    acc += load8(p, j) * load8(history.base, start &+ j)
                    j &+= 8
                }
                z[3 * m + phi] = acc.sum()
            }
        }
        history.base.update(from: history.base + inputCount, count: keep)
    }
}
