// The bulk-delay estimator: finds how long the loudspeaker signal takes to come back into the microphone
// (buffers + air), from 0 to 640 ms, follows slow drift and re-locks after sudden jumps (ALSA underruns).
// Both signals are band-limited to 150-900 Hz and decimated to 2 kHz; a bank of short NLMS "matched
// filters", each covering 64 ms of lag, is adapted against the capture, and the lag of the strongest tap of
// the filter that removes the most capture energy is the candidate. A candidate becomes the estimate only
// after it has been seen consistently (hysteresis), so double talk and noise do not move the alignment.

/// A second-order IIR section (transposed direct form II).
struct Biquad {
    var b0: Float, b1: Float, b2: Float, a1: Float, a2: Float
    var z1: Float = 0, z2: Float = 0

    /// Butterworth-style low-pass (q = 1/sqrt 2 for a single section) at `cutoff` Hz.
    static func lowPass(cutoff: Double, rate: Double, q: Double) -> Biquad {
        let w = 2 * DSPMath.pi * cutoff / rate
        let alpha = DSPMath.sin(w) / (2 * q), c = DSPMath.cos(w)
        let a0 = 1 + alpha
        return Biquad(b0: Float((1 - c) / 2 / a0), b1: Float((1 - c) / a0), b2: Float((1 - c) / 2 / a0),
                      a1: Float(-2 * c / a0), a2: Float((1 - alpha) / a0))
    }

    /// High-pass at `cutoff` Hz.
    static func highPass(cutoff: Double, rate: Double, q: Double) -> Biquad {
        let w = 2 * DSPMath.pi * cutoff / rate
        let alpha = DSPMath.sin(w) / (2 * q), c = DSPMath.cos(w)
        let a0 = 1 + alpha
        return Biquad(b0: Float((1 + c) / 2 / a0), b1: Float(-(1 + c) / a0), b2: Float((1 + c) / 2 / a0),
                      a1: Float(-2 * c / a0), a2: Float((1 - alpha) / a0))
    }

    @inline(__always)
    mutating func process(_ x: Float) -> Float {
        let y = b0 * x + z1
        z1 = b1 * x - a1 * y + z2
        z2 = b2 * x - a2 * y
        return y
    }

    mutating func flushDenormals() {
        if abs(z1) < 1e-25 { z1 = 0 }
        if abs(z2) < 1e-25 { z2 = 0 }
    }
}

/// Band-limits and decimates a 16 kHz signal by 8 (to 2 kHz) for the delay estimator.
struct EnvelopeDecimator {
    var hp: Biquad, lp1: Biquad, lp2: Biquad
    var phase = 0

    init() {
        hp = .highPass(cutoff: 150, rate: 16000, q: 0.7071)
        lp1 = .lowPass(cutoff: 850, rate: 16000, q: 0.5412)
        lp2 = .lowPass(cutoff: 850, rate: 16000, q: 1.3066)
    }

    /// Feeds one 16 kHz sample; returns true and sets `out` every 8th sample.
    @inline(__always)
    mutating func push(_ x: Float, _ out: inout Float) -> Bool {
        let y = lp2.process(lp1.process(hp.process(x)))
        phase &+= 1
        if phase == 8 {
            phase = 0
            out = y
            return true
        }
        return false
    }

    mutating func flushDenormals() { hp.flushDenormals(); lp1.flushDenormals(); lp2.flushDenormals() }
}

/// Estimates the delay between a render (loudspeaker) stream and a capture (microphone) stream, both at
/// 16 kHz, in samples, over 0-640 ms. Feed render samples with `pushRender` and capture samples with
/// `pushCapture` in any interleaving: sample `n` of each stream is taken to be simultaneous. Allocation-free
/// after construction.
public struct DelayEstimator: ~Copyable {
    /// Decimation factor from 16 kHz.
    static let factor = 8
    /// Taps per matched filter (64 ms at 2 kHz).
    static let taps = 128
    /// Lag step between matched filters (overlap of 32 taps).
    static let step = 96
    /// Number of matched filters: lags 0 ..< 1280 decimated samples (640 ms).
    static let filters = 13
    static let ringSize = 4096

    /// The largest delay this estimator can report, in 16 kHz samples.
    public static var maximumDelay: Int { ((filters - 1) * step + taps) * factor }

    private var renderDecimator = EnvelopeDecimator()
    private var captureDecimator = EnvelopeDecimator()
    private let ring: FloatBuffer            // decimated render, mirrored: ring[i] == ring[i + ringSize]
    private var renderCount = 0               // decimated render samples written
    private var captureCount = 0              // decimated capture samples processed
    private let coefficients: FloatBuffer     // filters x taps, time-reversed: c[j] weighs x[n - off - (taps-1) + j]
    private let errorPower: FloatBuffer       // smoothed error power per filter
    private var capturePower: Float = 0
    private var renderPower: Float = 0
    private var candidate = -1
    private var candidateCount = 0
    private var lockedLag = -1                // decimated samples, -1 = none
    private var updatesSinceCheck = 0
    /// How many times the reported delay changed.
    public private(set) var changes = 0
    /// The best matched filter's error-to-capture power ratio at the last check (lower is more certain).
    public private(set) var quality: Float = 1

    /// An estimator with no estimate.
    public init() {
        ring = FloatBuffer(count: 2 * Self.ringSize)
        coefficients = FloatBuffer(count: Self.filters * Self.taps)
        errorPower = FloatBuffer(count: Self.filters)
    }

    /// The current estimate in 16 kHz samples, or nil before the first lock.
    public var delay: Int? { lockedLag < 0 ? nil : lockedLag * Self.factor }

    /// Forgets everything.
    public mutating func reset() {
        ring.zero(); coefficients.zero(); errorPower.zero()
        renderCount = 0; captureCount = 0; capturePower = 0; renderPower = 0
        candidate = -1; candidateCount = 0; lockedLag = -1
        renderDecimator = EnvelopeDecimator(); captureDecimator = EnvelopeDecimator()
    }

    /// Feeds render samples (16 kHz).
    public mutating func pushRender(_ samples: UnsafePointer<Float>, count: Int) {
        var out: Float = 0
        for i in 0..<count where renderDecimator.push(samples[i], &out) {
            let w = renderCount & (Self.ringSize - 1)
            ring[w] = out
            ring[w &+ Self.ringSize] = out
            renderCount &+= 1
        }
        renderDecimator.flushDenormals()
    }

    /// Feeds capture samples (16 kHz) and adapts; the estimate may change.
    public mutating func pushCapture(_ samples: UnsafePointer<Float>, count: Int) {
        var out: Float = 0
        for i in 0..<count where captureDecimator.push(samples[i], &out) {
            adapt(capture: out)
            captureCount &+= 1
            updatesSinceCheck &+= 1
            if updatesSinceCheck == 8 {
                updatesSinceCheck = 0
                decide()
            }
        }
        captureDecimator.flushDenormals()
    }

    /// One decimated capture sample against every matched filter.
    private mutating func adapt(capture y: Float) {
        let n = captureCount
        let taps = Self.taps
        let a: Float = 0.02
        capturePower += a * (y * y - capturePower)
        // Render sample n (same instant) is the newest the lag-0 filter may use; it may not have arrived
        // yet if render lags: then use what there is (the missing part is treated as silence).
        let newest = n
        let available = renderCount - 1
        // Once locked, each matched filter adapts on every other sample (even filters on even samples, odd
        // on odd): half the cost, and still fast enough to see a jump (it needs 25 consistent checks anyway).
        let halfRate = lockedLag >= 0
        let parity = n & 1
        for f in 0..<Self.filters where !halfRate || f & 1 == parity {
            let end = newest - f * Self.step            // newest render index for this filter
            let start = end - taps + 1
            guard start >= 0, end <= available, renderCount - start <= Self.ringSize else {
                errorPower[f] += a * (y * y - errorPower[f])
                continue
            }
            let x = ring.base + (start & (Self.ringSize - 1))
            let c = coefficients.base + f * taps
            var acc = SIMD8<Float>(), energy = SIMD8<Float>()
            var j = 0
            while j < taps {
                let xv = load8(x, j)
                acc += load8(c, j) * xv
                energy += xv * xv
                j &+= 8
            }
            let e = y - acc.sum()
            let xx = energy.sum()
            errorPower[f] += a * (e * e - errorPower[f])
            if f == 0 { renderPower += a * (xx / Float(taps) - renderPower) }
            if xx > 1e-7 * Float(taps) {
                let g = SIMD8<Float>(repeating: 0.4 * e / (xx + 1e-6))
                j = 0
                while j < taps {
                    store8(c, j, load8(c, j) + g * load8(x, j))
                    j &+= 8
                }
            }
        }
    }

    /// Every 4 ms: the best filter's strongest tap, with hysteresis.
    private mutating func decide() {
        guard capturePower > 1e-9, renderPower > 1e-9 else { return }
        var best = 0
        var bestPower = errorPower[0]
        for f in 1..<Self.filters where errorPower[f] < bestPower {
            best = f
            bestPower = errorPower[f]
        }
        quality = bestPower / capturePower
        guard quality < 0.8 else {
            candidateCount = 0
            return
        }
        let c = coefficients.base + best * Self.taps
        var peak = 0
        var peakValue: Float = 0
        for j in 0..<Self.taps where abs(c[j]) > peakValue {
            peakValue = abs(c[j])
            peak = j
        }
        let lag = best * Self.step + (Self.taps - 1 - peak)
        if candidate >= 0, abs(lag - candidate) <= 1 {
            candidateCount += 1
        } else {
            candidate = lag
            candidateCount = 1
        }
        let needed = lockedLag < 0 ? 12 : 25
        if candidateCount >= needed, candidate != lockedLag {
            if lockedLag < 0 || abs(candidate - lockedLag) >= 1 {
                lockedLag = candidate
                changes += 1
            }
        }
    }
}
