// The residual-echo suppressor and comfort-noise generator. It works on 128-point sqrt-Hann frames with
// 50 % overlap (64 samples of latency) of the linear canceller's output. Per bin it keeps an estimate of
// the echo power (from the adaptive filter) and of how much of it the linear filter leaves behind; a
// Wiener-style gain removes that residual, and where the output holds more than the residual predicts (a
// pupil talking) the gain stays near one: this is what keeps the near-end voice in double talk.
// Outside blocks with near-end excess (capture well above what echo and noise explain, held 160 ms), a bin the
// echo estimate explains is taken as all residual echo and suppressed to the comfort-noise floor: this is
// where most of the suppression in far-end single talk comes from, and it never applies while a pupil talks.
// The near-end test also asks the capture's coherence with the echo estimate: a pupil's voice is incoherent
// with it, the residual of a filter that is still converging mostly is not, so a rough early estimate no
// longer passes for a pupil (which had let the echo through for the first seconds of a lesson).
// A block also counts as near-end when the linear output stays six times above the residual the filters
// should leave (once they are trusted): a pupil under the teacher's echo hardly raises the capture over the
// echo estimate, but raises the output many times over its residual.
// While the main filter converges (or lags its shadow after a path change) its estimate is too low; the
// residual its misalignment state predicts (0.5 h |X|^2, bounded by the error power) then sets a floor on the
// residual, once the near-end test has been quiet for 320 ms, so not in the gaps between a pupil's words (100 ms
// until the filters have learned from 3 s of far-end speech: a detection then is mostly their rough estimate).

/// Per-block inputs of the suppressor (all spectra 72 padded bins, windowed-frame scale).
struct SuppressorInput {
    /// Capture spectrum |Y|^2.
    var capture: UnsafeMutablePointer<Float>
    /// Linear output spectrum (real, imaginary): what the suppressor filters.
    var outputRe: UnsafeMutablePointer<Float>
    var outputIm: UnsafeMutablePointer<Float>
    /// The main filter's own echo estimate |Y_hat|^2 (zero when the output is the raw capture).
    var linearEcho: UnsafeMutablePointer<Float>
    /// Echo power estimate (max of the linear estimate and the power-domain model).
    var echo: UnsafeMutablePointer<Float>
    /// The main filter's power-domain echo model sum_p |H_p|^2 |X_p|^2 (its level survives a path change).
    var model: UnsafeMutablePointer<Float>
    /// Residual echo the main filter's misalignment predicts (|Y - Y_hat|^2 expected), at most twice the error
    /// power; and the same without that bound.
    var uncertainty: UnsafeMutablePointer<Float>
    var uncertaintyFree: UnsafeMutablePointer<Float>
    /// The output is the raw capture (the filter was adding echo).
    var outputIsCapture: Bool
    /// The linear filter is not removing echo (path change or divergence).
    var mismatch: Bool
    /// Render has energy in the filter span.
    var renderActive: Bool
    /// Raise the residual floor (clipping or a nonlinear loudspeaker).
    var nonlinear: Bool
    /// Magnitude-squared coherence of the capture and the linear echo estimate per bin (short average).
    var coherence: UnsafeMutablePointer<Float>
    /// The echo path moved a moment ago (the filters are re-converging).
    var recovering: Bool
    /// The filters have learned from enough far-end speech since they last started from nothing.
    var settled: Bool
    /// The shadow filter is cancelling clearly better than the main one (a path change it already followed).
    var shadowAhead: Bool
}

/// Residual-echo suppression with comfort noise on windowed spectra.
///
/// The residual echo is `leak(band) x echo power`. The leak is the regression coefficient of the error's
/// power fluctuations on the echo estimate's power fluctuations, per band: residual echo moves with the
/// echo estimate, near-end speech does not, so double talk does not bias it (it only makes it noisier).
struct ResidualEchoSuppressor: ~Copyable {
    static let bandEdges: (Int, Int, Int, Int) = (1, 16, 32, 65)
    /// Mean error and echo-estimate power per bin (the means the fluctuations are taken from).
    let meanError: FloatBuffer
    let meanEcho: FloatBuffer
    /// Noise floor of the linear output per bin.
    let noiseFloor: FloatBuffer
    /// Smoothed output power per bin.
    let smoothedOutput: FloatBuffer
    /// Previous gains.
    let gains: FloatBuffer
    /// Residual echo estimate of the last block (also the main filter's step-size control).
    let residual: FloatBuffer
    /// Leak per band and its regression sums.
    private(set) var leak: SIMD4<Float> = SIMD4(repeating: 0.5)
    private var covariance: SIMD4<Float> = SIMD4(repeating: 0.5)
    /// Residual floor after a mismatch, per band (decays when the mismatch ends).
    private var mismatchFloor: SIMD4<Float> = SIMD4(repeating: 0)
    /// Per-block decay of the mismatch floor once the mismatch ends (about 0.4 s to a tenth).
    static let mismatchDecay: Float = 0.99
    /// The mismatch floor spares a bin whose capture exceeds this multiple of echo estimate plus noise.
    static let nearExcess: Float = 2
    /// A bin whose capture is below this multiple of the echo estimate is explained by the echo.
    static let echoDominance: Float = 2
    /// The same once the near-end test has been quiet for `uncertaintyQuiet` blocks.
    static let quietEchoDominance: Float = 4
    /// A block whose capture exceeds this multiple of what echo and noise explain holds near-end speech...
    static let nearFrameExcess: Float = 1.5
    /// ...or, once the filters are trusted (settled, no moved path, the main filter not behind the shadow), whose
    /// linear output exceeds this multiple of the residual the leak regression predicts (plus noise and the
    /// misalignment's residual) for `outputRunBlocks` blocks in a row...
    static let nearOutputExcess: Float = 6
    static let outputRunBlocks = 3
    /// ...and only when at least this share of the capture is incoherent with the echo estimate (more while
    /// the filters have not settled: their estimate is rough)...
    static let incoherentShare: Float = 0.1
    static let incoherentShareUnsettled: Float = 0.5
    /// ...and for a second after a moved echo path.
    static let incoherentShareRecovering: Float = 0.35
    /// ...beyond this multiple of the noise floor.
    static let noiseMargin: Float = 2
    /// ...and keeps the near-end protection for this many blocks (160 ms).
    static let nearHoldBlocks = 40
    /// A bin whose linear output is this far above the residual echo the leak predicts may hold a pupil
    /// quieter than the echo: it is not treated as echo-dominated.
    static let residualExcess: Float = 40
    /// The near-end test counts this multiple of the misalignment's predicted residual as explained...
    static let uncertaintyExplains: Float = 1
    /// ...and outside near-end blocks the residual is at least this multiple of it (a converging filter's
    /// estimate is too low: what it leaves is echo)...
    static let uncertaintyResidual: Float = 4
    /// ...once the near-end test has been quiet this many blocks (320 ms: not between a pupil's words).
    static let uncertaintyQuiet = 80
    /// ...or this many (100 ms) while the filters have not settled.
    static let unsettledQuiet = 25
    /// Share of the linear output taken as residual echo in an echo-explained bin outside near-end blocks.
    static let dominantShare: Float = 1
    private var variance: SIMD4<Float> = SIMD4(repeating: 1)
    private var noise = NoiseGenerator(seed: 0x1234_5678)
    private var blocks = 0
    /// Blocks in a row whose linear output exceeded `nearOutputExcess` x the predicted residual.
    private var outputRun = 0
    /// Blocks since the near-end test last fired.
    private var sinceNear = 0
    /// Blocks since the near-end test last fired (the core asks it before taking a mismatch for a moved path).
    var blocksSinceNear: Int { sinceNear }
    /// Blocks left in which the frame counts as holding near-end speech.
    private var nearHold = 0
    /// Over-subtraction of the residual estimate (outside near-end blocks; inside them, `nearOverSubtraction`).
    var overSubtraction: Float = 2.0
    /// Over-subtraction inside near-end blocks.
    static let nearOverSubtraction: Float = 0.6
    /// Inside near-end blocks the gain moves this share of the way to its new value per block, both ways.
    static let nearGainSmoothing: Float = 0.3
    /// Near-end and echo energy of the last block (for the double-talk flag).
    private(set) var nearEnergy: Float = 0
    private(set) var echoEnergy: Float = 0
    private(set) var noiseEnergy: Float = 0

    init() {
        meanError = FloatBuffer(count: Block.padded)
        meanEcho = FloatBuffer(count: Block.padded)
        noiseFloor = FloatBuffer(count: Block.padded)
        smoothedOutput = FloatBuffer(count: Block.padded)
        gains = FloatBuffer(count: Block.padded)
        residual = FloatBuffer(count: Block.padded)
        // (Not through reset(): Swift 6.0 refuses a mutating call on `self` inside this initializer.)
        noiseFloor.base.update(repeating: 1e-9, count: Block.padded)
        gains.base.update(repeating: 1, count: Block.padded)
    }

    mutating func reset() {
        for k in 0..<Block.padded {
            meanError[k] = 0
            meanEcho[k] = 0
            noiseFloor[k] = 1e-9
            smoothedOutput[k] = 0
            gains[k] = 1
            residual[k] = 0
        }
        leak = SIMD4(repeating: 0.5)
        covariance = SIMD4(repeating: 0.5)
        mismatchFloor = SIMD4(repeating: 0)
        nearHold = 0
        sinceNear = 0
        variance = SIMD4(repeating: 1)
        blocks = 0
    }

    @inline(__always)
    static func band(_ k: Int) -> Int { k < bandEdges.1 ? 0 : (k < bandEdges.2 ? 1 : 2) }

    /// The bins of band `b` (0, 1 or 2), starting no lower than `first`.
    @inline(__always)
    static func bins(ofBand b: Int, from first: Int) -> Range<Int> {
        let lower = b == 0 ? bandEdges.0 : (b == 1 ? bandEdges.1 : bandEdges.2)
        let upper = b == 0 ? bandEdges.1 : (b == 1 ? bandEdges.2 : Block.bins)
        return max(lower, first)..<upper
    }

    /// Updates the estimates and replaces the output spectrum in place by the suppressed one plus comfort
    /// noise.
    mutating func process(_ input: SuppressorInput) {
        blocks &+= 1
        let warm = blocks < 250
        let floorRise: Float = warm ? 1.02 : 1.0025
        let over = overSubtraction
        let minLeak: Float = input.nonlinear ? 0.02 : 0.004

        // Leak regression per band (only while the filter's own output is used).
        if input.renderActive && !input.outputIsCapture {
            var pey = SIMD4<Float>(), pyy = SIMD4<Float>(), see = SIMD4<Float>(), syy = SIMD4<Float>()
            // Band by band with scalar sums (indexing a SIMD4 by a computed band inside the bin loop goes
            // through memory on every bin).
            for b in 0..<3 {
                var sey: Float = 0, sy2: Float = 0, se: Float = 0, sy: Float = 0
                for k in Self.bins(ofBand: b, from: 0) {
                    let lr = input.outputRe[k], li = input.outputIm[k]
                    let l2 = lr * lr + li * li
                    let p = input.linearEcho[k]
                    var me = meanError[k], mp = meanEcho[k]
                    me += 0.05 * (l2 - me)
                    mp += 0.05 * (p - mp)
                    meanError[k] = me
                    meanEcho[k] = mp
                    sey += (l2 - me) * (p - mp)
                    sy2 += (p - mp) * (p - mp)
                    se += l2
                    sy += p
                }
                pey[b] = sey; pyy[b] = sy2; see[b] = se; syy[b] = sy
            }
            for b in 0..<3 where pyy[b] > 1e-12 {
                let norm = pyy[b].squareRoot()
                let rate = min(0.02 * syy[b] / (see[b] + 1e-12), 0.01)
                covariance[b] += rate * (pey[b] / norm - covariance[b])
                variance[b] += rate * (norm - variance[b])
                if variance[b] < 1e-9 { variance[b] = 1e-9 }
                leak[b] = max(minLeak, min(covariance[b] / variance[b], 1))
            }
        }
        // A mismatch (path change, divergence, or double talk: the core cannot tell them apart yet) raises a
        // decaying residual floor; it is applied only in bins where the capture does not exceed the echo
        // estimate, so a pupil's voice (capture well above any echo the render can explain) is spared.
        if input.mismatch {
            for b in 0..<3 { mismatchFloor[b] += 0.2 * (0.5 - mismatchFloor[b]) }
        } else {
            mismatchFloor *= Self.mismatchDecay
        }

        // Frame-level near-end test: the capture well above what the echo estimate and the noise explain.
        var sumCapture: Float = 0, sumExplained: Float = 0, sumModel: Float = 0, sumOutput: Float = 0
        // The capture's share the echo estimate cannot explain by coherence (what is uncorrelated with it):
        // a pupil's voice is, residual echo of a filter that has not converged yet mostly is not.
        var sumIncoherent: Float = 0
        for k in 2..<Block.bins {
            sumIncoherent += max((1 - input.coherence[k]) * input.capture[k] - Self.noiseMargin * noiseFloor[k], 0)
            sumCapture += input.capture[k]
            sumExplained += input.echo[k] + Self.noiseMargin * noiseFloor[k] + Self.uncertaintyExplains * input.uncertaintyFree[k]
            sumModel += max(input.echo[k], input.model[k]) + Self.noiseMargin * noiseFloor[k] + Self.uncertaintyExplains * input.uncertaintyFree[k]
            sumOutput += input.outputRe[k] * input.outputRe[k] + input.outputIm[k] * input.outputIm[k]
        }
        // The residual the linear output should hold if it held only echo: the leak regression's share of the echo
        // estimate (band by band), the noise and the misalignment's residual.
        var sumPredicted = sumExplained
        for b in 0..<3 {
            var e: Float = 0
            for k in Self.bins(ofBand: b, from: 2) { e += input.echo[k] }
            sumPredicted -= (1 - max(leak[b], minLeak)) * e
        }
        // Where the linear filter is not cancelling (after a path change), the echo model's level is the
        // better measure of what echo alone would bring.
        if sumOutput > 0.5 * sumCapture { sumExplained = sumModel }
        let share = !input.settled ? Self.incoherentShareUnsettled
            : (input.recovering ? Self.incoherentShareRecovering : Self.incoherentShare)
        let incoherent = input.outputIsCapture || sumIncoherent > share * sumCapture
        // In double talk the capture is often not far above the echo estimate (a pupil 5 dB under the teacher's
        // echo, an estimate that is a little high), but the linear output is: a pupil is many times the residual
        // the filter leaves. Only while the filters are trusted: after a moved path the output is the old
        // filter's error, and that is echo.
        let outputAbove = input.settled && !input.recovering && !input.mismatch && !input.shadowAhead && !input.outputIsCapture
            && sumOutput > Self.nearOutputExcess * sumPredicted
        outputRun = outputAbove ? min(outputRun + 1, Self.outputRunBlocks) : 0
        let outputExcess = outputRun >= Self.outputRunBlocks
        if (sumCapture > Self.nearFrameExcess * sumExplained || outputExcess) && incoherent {
            nearHold = Self.nearHoldBlocks
            sinceNear = 0
        } else {
            if nearHold > 0 { nearHold -= 1 }
            if sinceNear < Int.max / 2 { sinceNear &+= 1 }
        }
        let echoOnly = input.renderActive && nearHold == 0

        var nearSum: Float = 0, echoSum: Float = 0, noiseSum: Float = 0
        // Until the filters settle a near-end detection is more often their rough estimate than a pupil.
        let quietBlocks = input.settled ? Self.uncertaintyQuiet : Self.unsettledQuiet
        for k in 0..<Block.bins {
            let lr = input.outputRe[k], li = input.outputIm[k]
            let l2 = lr * lr + li * li
            let pe = input.echo[k]
            // Noise floor: follows the smoothed output down at once, rises slowly.
            var so = smoothedOutput[k]
            so += 0.3 * (l2 - so)
            smoothedOutput[k] = so
            var nf = noiseFloor[k] * floorRise
            if so < nf { nf = so }
            if nf < 1e-12 { nf = 1e-12 }
            noiseFloor[k] = nf

            let b = Self.band(k)
            var share = input.outputIsCapture ? 1 : max(leak[b], minLeak)
            if mismatchFloor[b] > share && input.capture[k] < Self.nearExcess * (pe + nf) { share = mismatchFloor[b] }
            var res = share * pe
            // A bin the echo estimate explains (the capture is not above it): what the linear output holds
            // there is residual echo, not a pupil.
            let quiet = sinceNear >= quietBlocks
            if echoOnly && input.capture[k] < (quiet ? Self.quietEchoDominance : Self.echoDominance) * pe && l2 < Self.residualExcess * (res + nf) {
                res = max(res, Self.dominantShare * min(l2, quiet ? Self.quietEchoDominance * pe : pe))
            }
            if echoOnly && quiet {
                res = max(res, Self.uncertaintyResidual * input.uncertainty[k])
                // Just after a moved echo path every bin's estimate is wrong: with no pupil heard, all of it is echo.
                if input.recovering && input.capture[k] < Self.quietEchoDominance * max(pe, input.model[k]) { res = max(res, l2) }
            }
            residual[k] = res
            // Inside near-end blocks 0.6 of the residual is subtracted, not twice it, and the gain moves smoothly
            // both ways: a pupil's voice keeps its bins (the residual echo left in them costs PESQ less than
            // holes and a fluttering gain would).
            let rEff = (echoOnly ? over : Self.nearOverSubtraction) * res
            let near = max(l2 - rEff, 0)
            var g = near / (near + rEff + 1e-20)
            let prev = gains[k]
            if !echoOnly { g = prev + Self.nearGainSmoothing * (g - prev) } else if g > prev { g = prev + 0.5 * (g - prev) }
            gains[k] = g
            nearSum += max(l2 - res - 2 * nf, 0)
            echoSum += pe
            noiseSum += nf
            // Comfort noise fills what the gain removed, at the noise floor's level.
            let cn = (max(1 - g * g, 0) * nf * 1.4).squareRoot() * 1.2247
            input.outputRe[k] = g * lr + cn * noise.next()
            input.outputIm[k] = g * li + cn * noise.next()
        }
        input.outputIm[0] = 0
        input.outputIm[Block.bins - 1] = 0
        nearEnergy = nearSum
        echoEnergy = echoSum
        noiseEnergy = noiseSum
    }

    /// Mean gain over bins `from ..< to` (for the upper band at 48 kHz).
    func meanGain(from: Int, to: Int) -> Float {
        var s: Float = 0
        for k in from..<to { s += gains[k] }
        return s / Float(to - from)
    }
}
