// Deterministic test signals: noise, speech-like bursts, and rooms, so every test is reproducible.
@testable import EchoCancel

/// A seeded generator for test signals (SplitMix64).
struct TestRandom {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    mutating func uniform() -> Float { Float(Double(next() >> 11) / Double(UInt64(1) << 53) * 2 - 1) }
    /// Roughly Gaussian (sum of four uniforms), unit variance.
    mutating func gaussian() -> Float { (uniform() + uniform() + uniform() + uniform()) * 0.866 }
}

enum TestSignals {
    /// White noise at `level` RMS.
    static func noise(count: Int, level: Float, seed: UInt64) -> [Float] {
        var r = TestRandom(seed)
        return (0..<count).map { _ in r.gaussian() * level }
    }

    /// Speech-like: noise through a slowly varying resonant filter with syllable-rate on/off envelope.
    static func speechLike(count: Int, level: Float, seed: UInt64, rate: Int = 16000) -> [Float] {
        var r = TestRandom(seed)
        var out = [Float](repeating: 0, count: count)
        var y1: Float = 0, y2: Float = 0
        var env: Float = 0
        let syllable = rate / 5
        for n in 0..<count {
            let phase = n % syllable
            let on: Float = (phase < syllable * 3 / 5) ? 1 : 0
            env += 0.002 * (on - env)
            let f = 0.3 + 0.2 * Float((n / syllable) % 3) / 2      // formant-ish pole angle
            let c = 2 * 0.9 * cosApprox(f)
            let x = r.gaussian()
            let y = x + c * y1 - 0.9 * 0.9 * y2
            y2 = y1; y1 = y
            out[n] = y * env
        }
        let rms = (out.reduce(0) { $0 + $1 * $1 } / Float(count)).squareRoot()
        return out.map { $0 * level / max(rms, 1e-9) }
    }

    static func cosApprox(_ x: Float) -> Float { Float(DSPMath.cos(Double(x))) }

    /// An exponentially decaying random impulse response with a direct path at `delay` samples.
    static func room(length: Int, delay: Int, rt60Samples: Int, gain: Float, seed: UInt64) -> [Float] {
        var r = TestRandom(seed)
        var h = [Float](repeating: 0, count: delay + length)
        h[delay] = gain
        let decay = Float(DSPMath.exp(-6.9 / Double(rt60Samples)))
        var a = gain * 0.5
        for i in (delay + 1)..<(delay + length) {
            h[i] = r.gaussian() * a * 0.3
            a *= decay
        }
        return h
    }

    /// Linear convolution truncated to the input's length (FFT overlap-add with the module's own FFT).
    static func convolve(_ x: [Float], _ h: [Float]) -> [Float] {
        var size = 16
        while size < 2 * h.count { size *= 2 }
        let fft = RealFFT(size: size)
        let block = size - h.count + 1
        let hs = fft.forward(h + [Float](repeating: 0, count: size - h.count))
        var y = [Float](repeating: 0, count: x.count + size)
        var start = 0
        while start < x.count {
            let end = min(start + block, x.count)
            var chunk = Array(x[start..<end])
            chunk += [Float](repeating: 0, count: size - chunk.count)
            let xs = fft.forward(chunk)
            var re = xs.real, im = xs.imaginary
            for k in 0..<re.count {
                let r = re[k] * hs.real[k] - im[k] * hs.imaginary[k]
                let i = re[k] * hs.imaginary[k] + im[k] * hs.real[k]
                re[k] = r; im[k] = i
            }
            let part = fft.inverse(real: re, imaginary: im)
            for i in 0..<size { y[start + i] += part[i] }
            start = end
        }
        return Array(y[0..<x.count])
    }

    /// Least-squares gain of `reference` inside `signal` over `range`, in dB of loss (0 = untouched).
    static func loss(of reference: [Float], in signal: [Float], range: Range<Int>) -> Float {
        var num: Float = 0, den: Float = 0
        for i in range { num += reference[i] * signal[i]; den += reference[i] * reference[i] }
        return -20 * Float(DSPMath.log(Double(max(num / den, 1e-6)))) / Float(DSPMath.ln10)
    }

    static func energy(_ x: ArraySlice<Float>) -> Float { x.reduce(0) { $0 + $1 * $1 } }

    static func decibels(_ ratio: Float) -> Float { Float(DSPMath.decibels(power: Double(ratio))) }
}

/// Runs a canceller over whole signals frame by frame (render first) and returns the output.
func runCanceller(_ canceller: inout EchoCanceller, far: [Float], mic: [Float]) -> [Float] {
    let frame = canceller.frameLength
    var out = [Float](repeating: 0, count: mic.count)
    var f = 0
    while (f + 1) * frame <= mic.count {
        let range = f * frame..<(f + 1) * frame
        far[range].withUnsafeBufferPointer { canceller.render($0) }
        mic[range].withUnsafeBufferPointer { m in
            out[range].withUnsafeMutableBufferPointer { o in canceller.process(capture: m, output: o) }
        }
        f += 1
    }
    return out
}
