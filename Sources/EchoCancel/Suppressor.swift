// The residual-echo suppressor and comfort-noise generator. It works on 128-point sqrt-Hann frames with
// 50 % overlap (64 samples of latency) of the linear canceller's output. Per bin it keeps an estimate of
// the echo power (from the adaptive filter) and of how much of it the linear filter leaves behind; a
// Wiener-style gain removes that residual, and where the output holds more than the residual predicts (a
// pupil talking) the gain stays near one: this is what keeps the near-end voice in double talk.

/// Per-block inputs of the suppressor (all spectra 72 padded bins, windowed-frame scale).
struct SuppressorInput {
    /// Capture spectrum |Y|^2.
    var capture: UnsafeMutablePointer<Float>
    /// Linear output spectrum (real, imaginary): what the suppressor filters.
    var outputRe: UnsafeMutablePointer<Float>
    var outputIm: UnsafeMutablePointer<Float>
    /// Echo power estimate (max of the linear estimate and the power-domain model).
    var echo: UnsafeMutablePointer<Float>
    /// The linear filter is not removing echo at all (path change or divergence).
    var mismatch: Bool
    /// Render has energy in the filter span.
    var renderActive: Bool
    /// Raise the residual floor (clipping or a nonlinear loudspeaker).
    var nonlinear: Bool
}

/// Residual-echo suppression with comfort noise on windowed spectra.
struct ResidualEchoSuppressor: ~Copyable {
    /// Residual ratio per bin: E[residual echo] / E[echo] after the linear filter.
    let residualRatio: FloatBuffer
    /// Noise floor of the linear output per bin.
    let noiseFloor: FloatBuffer
    /// Smoothed output power per bin.
    let smoothedOutput: FloatBuffer
    /// Previous gains.
    let gains: FloatBuffer
    /// Residual echo estimate of the last block (also the main filter's step-size control).
    let residual: FloatBuffer
    private var noise = NoiseGenerator(seed: 0x1234_5678)
    private var blocks = 0
    /// Over-subtraction of the residual estimate.
    var overSubtraction: Float = 2.0
    /// Near-end and echo energy of the last block (for the double-talk flag).
    private(set) var nearEnergy: Float = 0
    private(set) var echoEnergy: Float = 0
    private(set) var noiseEnergy: Float = 0

    init() {
        residualRatio = FloatBuffer(count: Block.padded)
        noiseFloor = FloatBuffer(count: Block.padded)
        smoothedOutput = FloatBuffer(count: Block.padded)
        gains = FloatBuffer(count: Block.padded)
        residual = FloatBuffer(count: Block.padded)
        reset()
    }

    mutating func reset() {
        for k in 0..<Block.padded {
            residualRatio[k] = 1
            noiseFloor[k] = 1e-9
            smoothedOutput[k] = 0
            gains[k] = 1
            residual[k] = 0
        }
        blocks = 0
    }

    /// Updates the estimates and replaces the output spectrum in place by the suppressed one plus comfort
    /// noise.
    mutating func process(_ input: SuppressorInput) {
        blocks &+= 1
        let warm = blocks < 250
        let floorRise: Float = warm ? 1.02 : 1.0025
        let over = overSubtraction
        let minRatio: Float = input.nonlinear ? 0.01 : 0.0003
        var nearSum: Float = 0, echoSum: Float = 0, noiseSum: Float = 0
        for k in 0..<Block.bins {
            let lr = input.outputRe[k], li = input.outputIm[k]
            let l2 = lr * lr + li * li
            let y2 = input.capture[k]
            let pe = input.echo[k]
            // Noise floor: follows the smoothed output down at once, rises slowly.
            var so = smoothedOutput[k]
            so += 0.3 * (l2 - so)
            smoothedOutput[k] = so
            var nf = noiseFloor[k] * floorRise
            if so < nf { nf = so }
            if nf < 1e-12 { nf = 1e-12 }
            noiseFloor[k] = nf

            // Residual ratio: learnt where the echo model explains the microphone.
            var r = residualRatio[k]
            if input.renderActive && pe > 2 * nf {
                let ratio = min(l2 / (y2 + 1e-12), 2)
                let predicted = r * pe + nf
                if input.mismatch {
                    r += (ratio > r ? 0.3 : 0.05) * (ratio - r)
                } else if l2 < 4 * predicted || ratio < r {
                    r += (ratio > r ? 0.08 : 0.04) * (ratio - r)
                } else {
                    r += 0.002 * (ratio - r)   // probably near-end speech: barely move
                }
                r = max(minRatio, min(r, 1.5))
                residualRatio[k] = r
            } else if r < minRatio {
                residualRatio[k] = minRatio
                r = minRatio
            }
            let res = r * pe
            residual[k] = res
            let rEff = over * res
            let near = max(l2 - rEff, 0)
            var g = near / (near + rEff + 1e-20)
            let prev = gains[k]
            if g > prev { g = prev + 0.5 * (g - prev) }
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
