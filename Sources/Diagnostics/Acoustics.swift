import EchoCancel
import Foundation

/// Test signals the speaker plays.
public enum TestSignal {
    /// A logarithmic sine sweep from `low` to `high` Hz over `seconds`, at `level` dBFS peak, with 10 ms
    /// raised-cosine fades so the speaker does not click. Its autocorrelation is one sharp peak, so the
    /// cross-correlation with a recording finds the echo path's delay even in a noisy room.
    public static func sweep(rate: Int, seconds: Double, low: Double = 100, high: Double = 8000, level: Double = -12) -> [Float] {
        let n = Int(seconds * Double(rate))
        let amplitude = pow(10, level / 20)
        let k = log(high / low)
        let fade = Int(0.01 * Double(rate))
        var out = [Float](repeating: 0, count: n)
        for i in 0..<n {
            let t = Double(i) / Double(rate)
            let phase = 2 * Double.pi * low * seconds / k * (exp(t / seconds * k) - 1)
            var gain = amplitude
            if i < fade { gain *= 0.5 - 0.5 * cos(Double.pi * Double(i) / Double(fade)) }
            if i >= n - fade { gain *= 0.5 - 0.5 * cos(Double.pi * Double(n - 1 - i) / Double(fade)) }
            out[i] = Float(gain * sin(phase))
        }
        return out
    }

    /// A speech-like signal: a voiced source (a fundamental gliding between 110 and 230 Hz with its
    /// harmonics) and bursts of noise (fricatives), in syllables of 150-300 ms with short pauses, at
    /// about `level` dBFS RMS while talking. Deterministic for a seed.
    public static func speechLike(rate: Int, seconds: Double, level: Double = -20, seed: UInt64 = 1) -> [Float] {
        let n = Int(seconds * Double(rate))
        var random = seed &+ 0x9E37_79B9_7F4A_7C15
        func uniform() -> Double {
            random &+= 0x9E37_79B9_7F4A_7C15
            var z = random
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Double((z ^ (z >> 31)) >> 11) / 9_007_199_254_740_992.0
        }
        var out = [Float](repeating: 0, count: n)
        var i = 0, phase = 0.0
        var lowpass = 0.0
        while i < n {
            let syllable = Int((0.15 + 0.15 * uniform()) * Double(rate))
            let pause = Int((0.03 + 0.12 * uniform()) * Double(rate))
            let voiced = uniform() < 0.75
            let f0Start = 110 + 120 * uniform(), f0End = 110 + 120 * uniform()
            for j in 0..<min(syllable, n - i) {
                let x = Double(j) / Double(syllable)
                let envelope = sin(Double.pi * x)
                var s: Double
                if voiced {
                    let f0 = f0Start + (f0End - f0Start) * x
                    phase += 2 * Double.pi * f0 / Double(rate)
                    s = 0
                    for h in 1...12 { s += sin(Double(h) * phase) / Double(h) }
                    s *= 0.5
                } else {
                    let white = uniform() * 2 - 1
                    lowpass += 0.3 * (white - lowpass)
                    s = (white - lowpass) * 1.2
                }
                out[i + j] = Float(envelope * s)
            }
            i += syllable + pause
        }
        // Scale to the talking level (RMS over the non-silent samples).
        let active = out.filter { $0 != 0 }
        let rms = (active.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(max(active.count, 1))).squareRoot()
        let gain = Float(pow(10, level / 20) / max(rms, 1e-9))
        return out.map { $0 * gain }
    }
}

/// The measurements behind the acoustic checks, on plain sample arrays (unit-tested on synthetic
/// signals; the checks feed them what the speaker played and the microphone recorded).
public enum Acoustics {
    /// Power (mean square) of `x`.
    public static func power<C: Collection>(_ x: C) -> Double where C.Element == Float {
        guard !x.isEmpty else { return 0 }
        var sum = 0.0
        for v in x { sum += Double(v) * Double(v) }
        return sum / Double(x.count)
    }

    /// Level in dB relative to full scale (a full-scale square wave is 0 dBFS); -inf for silence.
    public static func dBFS<C: Collection>(_ x: C) -> Double where C.Element == Float {
        10 * log10(power(x))
    }

    /// Samples at or beyond `threshold` of full scale.
    public static func clippedSamples(_ x: [Float], threshold: Float = 0.999) -> Int { x.reduce(0) { $0 + (abs($1) >= threshold ? 1 : 0) } }

    /// The cross-correlation of `signal` with `reference` for lags 0..<maxLag (signal later than the
    /// reference), computed with one FFT of the next power of two.
    public static func crossCorrelation(reference: [Float], signal: [Float], maxLag: Int) -> [Float] {
        var size = 16
        while size < max(reference.count, signal.count) + maxLag { size <<= 1 }
        let fft = RealFFT(size: size)
        var a = [Float](repeating: 0, count: size), b = [Float](repeating: 0, count: size)
        for i in 0..<min(reference.count, size) { a[i] = reference[i] }
        for i in 0..<min(signal.count, size) { b[i] = signal[i] }
        let fa = fft.forward(a), fb = fft.forward(b)
        var re = [Float](repeating: 0, count: fft.binCount), im = [Float](repeating: 0, count: fft.binCount)
        for k in 0..<fft.binCount {
            // B * conj(A): positive lags where the signal lags the reference.
            re[k] = fb.real[k] * fa.real[k] + fb.imaginary[k] * fa.imaginary[k]
            im[k] = fb.imaginary[k] * fa.real[k] - fb.real[k] * fa.imaginary[k]
        }
        let full = fft.inverse(real: re, imaginary: im)
        return Array(full[0..<min(maxLag, size)])
    }

    /// Where a signal's copy of `reference` starts, in (fractional) samples, found as the strongest
    /// cross-correlation peak (parabolic interpolation between samples), with the peak's prominence
    /// over the median correlation magnitude (above ~8: a clear echo; below ~4: nothing found).
    public struct DelayEstimate: Sendable, Equatable {
        /// Lag of the peak in samples (fractional).
        public var samples: Double
        /// Peak magnitude over the median magnitude of all lags.
        public var prominence: Double
    }

    /// Finds `reference` in `signal` at a lag below `maxLag`.
    public static func delay(of reference: [Float], in signal: [Float], maxLag: Int) -> DelayEstimate? {
        let c = crossCorrelation(reference: reference, signal: signal, maxLag: maxLag)
        guard c.count >= 3 else { return nil }
        var best = 0
        for i in 1..<c.count where abs(c[i]) > abs(c[best]) { best = i }
        let magnitudes = c.map { abs($0) }.sorted()
        let median = Double(magnitudes[magnitudes.count / 2])
        var offset = 0.0
        if best > 0 && best < c.count - 1 {
            let y0 = Double(c[best - 1]), y1 = Double(c[best]), y2 = Double(c[best + 1])
            let denominator = y0 - 2 * y1 + y2
            if denominator != 0 { offset = max(-0.5, min(0.5, 0.5 * (y0 - y2) / denominator)) }
        }
        return DelayEstimate(samples: Double(best) + offset, prominence: Double(abs(c[best])) / max(median, 1e-20))
    }

    /// `signal` delayed by `delay` samples (zeros before), `count` long: to line a reference up with
    /// its echo.
    public static func shifted(_ signal: [Float], by delay: Int, count: Int) -> [Float] {
        var out = [Float](repeating: 0, count: count)
        for i in 0..<count where i - delay >= 0 && i - delay < signal.count { out[i] = signal[i - delay] }
        return out
    }

    /// The echo path's level in each band: the recorded power over the played power in that band
    /// (both over their own windows, the recording's noise subtracted), in dB. Bands as [low, high) Hz.
    public static func bandGains(played: [Float], recorded: [Float], noise: [Float], rate: Int,
                                 bands: [(Double, Double)]) -> [Double] {
        func bandPowers(_ x: [Float]) -> [Double] {
            var size = 16
            while size < x.count { size <<= 1 }
            let fft = RealFFT(size: size)
            var padded = [Float](repeating: 0, count: size)
            for i in 0..<x.count { padded[i] = x[i] }
            let s = fft.forward(padded)
            let binHz = Double(rate) / Double(size)
            return bands.map { band in
                var p = 0.0
                let lo = Int((band.0 / binHz).rounded(.up)), hi = min(fft.binCount - 1, Int((band.1 / binHz).rounded(.down)))
                if lo <= hi { for k in lo...hi { p += Double(s.real[k] * s.real[k] + s.imaginary[k] * s.imaginary[k]) } }
                return p / (Double(size) * Double(max(x.count, 1)))
            }
        }
        let p = bandPowers(played), r = bandPowers(recorded), n = bandPowers(noise)
        return (0..<bands.count).map { b in
            let echo = max(r[b] - n[b], r[b] * 1e-6, 1e-30)
            return 10 * log10(echo / max(p[b], 1e-30))
        }
    }

    /// A straight-line fit y = a + b x by least squares; returns the slope b.
    public static func slope(_ points: [(x: Double, y: Double)]) -> Double? {
        guard points.count >= 2 else { return nil }
        let n = Double(points.count)
        let mx = points.reduce(0) { $0 + $1.x } / n, my = points.reduce(0) { $0 + $1.y } / n
        var sxy = 0.0, sxx = 0.0
        for p in points { sxy += (p.x - mx) * (p.y - my); sxx += (p.x - mx) * (p.x - mx) }
        return sxx > 0 ? sxy / sxx : nil
    }

    /// Clock drift in ppm from the echo delays (samples) of chirps played at `positions` (samples of
    /// the played signal): how many ppm faster the recording's clock runs than the playback's.
    public static func driftPPM(positions: [Double], delays: [Double]) -> Double? {
        slope(zip(positions, delays).map { (x: $0, y: $1) }).map { $0 * 1e6 }
    }

    /// Resamples `x` as a clock `ppm` faster would have sampled it (linear interpolation): what a
    /// sound card whose capture crystal runs fast records.
    public static func resampled(_ x: [Float], ppm: Double) -> [Float] {
        guard ppm != 0 else { return x }
        let ratio = 1 / (1 + ppm * 1e-6)
        let count = Int(Double(x.count) / ratio) - 1
        var out = [Float](repeating: 0, count: max(count, 0))
        for k in 0..<out.count {
            let position = Double(k) * ratio
            let i = Int(position)
            let frac = Float(position - Double(i))
            out[k] = i + 1 < x.count ? x[i] + (x[i + 1] - x[i]) * frac : x[min(i, x.count - 1)]
        }
        return out
    }
}
