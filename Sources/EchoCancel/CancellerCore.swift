// The 16 kHz canceller core: 64-sample blocks through delay estimation, alignment, the main and shadow
// adaptive filters, and the residual-echo suppressor. Everything it needs is allocated in `init`.

/// Counters the core keeps for the statistics.
struct CoreCounters {
    var divergenceResets = 0
    var shadowCopies = 0
    var shadowResets = 0
    var clippedCapture = 0
    var clippedRender = 0
    var alignmentChanges = 0
    var renderStarved = 0
    var blocks = 0
    var doubleTalkBlocks = 0
}

/// Processes 64-sample blocks at 16 kHz. Render samples go in with `pushRender`; `process` takes one capture
/// block and writes one output block delayed by 64 samples (the suppressor's overlap-add).

struct CancellerCore: ~Copyable {
    static let renderRingSize = 1 << 15
    /// The preferred position of the direct path inside the filter, in samples.
    static let preDelay = 240

    let mainPartitions: Int
    let shadowPartitions: Int
    let fft: RealFFT
    let renderRing: FloatBuffer
    private(set) var renderWritten = 0
    var delayEstimator = DelayEstimator()
    /// Bulk delay applied to the render before the filters, in blocks.
    private(set) var alignment = 0
    private var block = 0
    var spectra: SpectraRing
    var main: PartitionedFilter
    var shadow: PartitionedFilter
    var suppressor = ResidualEchoSuppressor()

    // Scratch (72 bins or 128 / 64 samples).
    let time = FloatBuffer(count: Block.fft)
    let mainRe = FloatBuffer(count: Block.padded), mainIm = FloatBuffer(count: Block.padded)
    let shadowRe = FloatBuffer(count: Block.padded), shadowIm = FloatBuffer(count: Block.padded)
    let model = FloatBuffer(count: Block.padded)
    let gradRe = FloatBuffer(count: Block.padded), gradIm = FloatBuffer(count: Block.padded)
    let sumMain = FloatBuffer(count: Block.padded), sumShadow = FloatBuffer(count: Block.padded)
    let weightedMain = FloatBuffer(count: Block.padded), weightedShadow = FloatBuffer(count: Block.padded)
    let captureRe = FloatBuffer(count: Block.padded), captureIm = FloatBuffer(count: Block.padded)
    let capturePower = FloatBuffer(count: Block.padded)
    let linearRe = FloatBuffer(count: Block.padded), linearIm = FloatBuffer(count: Block.padded)
    let echoPower = FloatBuffer(count: Block.padded)
    let linearEcho = FloatBuffer(count: Block.padded)
    let linearPower = FloatBuffer(count: Block.padded)
    /// Residual echo the main filter's misalignment predicts, 0.5 h |X|^2 per bin: bounded by the error power
    /// (for the suppressor's residual) and free (for the near-end test).
    let uncertainty = FloatBuffer(count: Block.padded)
    let uncertaintyFree = FloatBuffer(count: Block.padded)
    /// Short averages of |Y|^2, |Y_hat|^2 and Y Y_hat* (capture and linear echo estimate) and their coherence.
    let coherenceYY = FloatBuffer(count: Block.padded), coherenceEE = FloatBuffer(count: Block.padded)
    let coherenceRe = FloatBuffer(count: Block.padded), coherenceIm = FloatBuffer(count: Block.padded)
    let coherence = FloatBuffer(count: Block.padded)
    /// Echo of the render that has left the main filter's span (the late reverberation it cannot model), per
    /// bin: a recursive sum decaying as the filter's own last partitions do; and the gain at the span's end.
    let tail = FloatBuffer(count: Block.padded)
    let tailGain = FloatBuffer(count: Block.padded)
    private var tailDecay: Float = 0
    /// Largest render power over the main filter's partitions, per bin (while the filters have not settled).
    let renderPeak = FloatBuffer(count: Block.padded)
    let window = FloatBuffer(count: Block.fft)
    let previousCapture = FloatBuffer(count: Block.size)
    let previousLinear = FloatBuffer(count: Block.size)
    let previousShadowError = FloatBuffer(count: Block.size)
    let overlap = FloatBuffer(count: Block.size)
    let errorMain = FloatBuffer(count: Block.size)
    let errorShadow = FloatBuffer(count: Block.size)
    let shadowGradRe = FloatBuffer(count: Block.padded), shadowGradIm = FloatBuffer(count: Block.padded)
    /// Main filter: estimated misalignment per coefficient and bin (|H - H_true|^2), the Kalman-like state
    /// that sets its step; the smoothed error power; the filter's own coefficient power.
    let misalignment = FloatBuffer(count: Block.padded)
    /// The same state for the suppressor's residual: until the filters settle, a small error may only mean the
    /// echo has not arrived yet (the render in the newest partitions is still on its way to the microphone), so
    /// the error bound pulls this one down gradually; afterwards it equals `misalignment`.
    let coldMisalignment = FloatBuffer(count: Block.padded)
    let errorPower = FloatBuffer(count: Block.padded)
    let shadowErrorPower = FloatBuffer(count: Block.padded)
    let coefficientPower = FloatBuffer(count: Block.padded)

    // Smoothed block energies.
    private var smoothedCapture: Float = 0
    private var smoothedMain: Float = 0
    private var smoothedShadow: Float = 0
    private var shadowBetter = 0
    private var shadowWorse = 0
    private var diverging = 0
    private var lastFineCheck = 0
    private var smoothedLinear: Float = 0
    private var smoothedLinearCapture: Float = 0
    private var nonlinearHold = 0
    private var smoothedTopShare: Float = 0
    /// Render-active blocks the filters have learned from since they last started from nothing (creation or a
    /// divergence reset; a realignment shifts what they learned along): until `settledBlocks`, their echo
    /// estimate is rough.
    private var learnedBlocks = 0
    static let settledBlocks = 750
    private var settled: Bool { learnedBlocks >= Self.settledBlocks }
    /// Render-active blocks left in which the estimate counts as rough again after a moved echo path (1 s).
    private var recoveringBlocks = 0
    static let recoveryBlocks = 250
    /// The late-reverberation model is used only when the last quarter of the span holds less than this share
    /// of the energy of the quarter before it.
    static let tailMaximumRatio: Float = 0.7
    /// Per-block floor of the misalignment state under the error bound while the filters have not settled.
    static let coldCeilingDecay: Float = 0.95
    /// Until the filters settle, the loudest render partition may carry this multiple of the per-partition gain
    /// bound (a direct path stronger than an even spread of `maximumPathGain` over the span allows).
    static let coldPeakGain: Float = 4
    private var previousCaptureEnergy: Float = 0
    /// Smoothed capture and output energy over render-active blocks (ERLE).
    private(set) var erleIn: Float = 0
    private(set) var erleOut: Float = 0
    private(set) var doubleTalk = false
    private(set) var counters = CoreCounters()
    /// Gain for the band above 8 kHz (48 kHz mode), from the top of this band.
    private(set) var upperBandGain: Float = 1
    /// Residual-echo suppression on (off: the output is the linear canceller's, for diagnostics).
    var suppression = true

    /// Normalised step of the main filter at full misalignment, and of the shadow filter (fixed).
    static let mainStep: Float = 0.7
    static let shadowStep: Float = 0.8
    /// Misalignment leak per block, relative to the filter's own coefficient power (echo paths move).
    static let leak: Float = 1e-4
    /// The largest plausible echo-path power gain per bin (render to microphone): it bounds the
    /// misalignment and sets the error-driven regularisation, so that where the render is weak and the
    /// error loud (a pupil talking, the far end fading out) neither filter takes a large step.
    static let maximumPathGain: Float = 4
    /// The linear output may exceed the microphone by this power ratio in a bin before it is limited to it.
    static let outputExcess: Float = 2
    /// Partitions whose gradient constraint is applied per block (round robin).
    static let constrainPerBlock = 2
    /// Per-block smoothing of the capture/echo-estimate coherence (about 20 ms).
    static let coherenceSmoothing: Float = 0.2

    init(mainPartitions: Int, shadowPartitions: Int) {
        self.mainPartitions = mainPartitions
        self.shadowPartitions = min(shadowPartitions, mainPartitions)
        fft = RealFFT(size: Block.fft)
        renderRing = FloatBuffer(count: Self.renderRingSize)
        spectra = SpectraRing(capacity: mainPartitions)
        main = PartitionedFilter(partitions: mainPartitions)
        shadow = PartitionedFilter(partitions: self.shadowPartitions)
        for n in 0..<Block.fft {
            window[n] = Float(DSPMath.sin(DSPMath.pi * (Double(n) + 0.5) / Double(Block.fft)))
        }
        misalignment.base.update(repeating: 1e3, count: Block.padded)
        coldMisalignment.base.update(repeating: 1e3, count: Block.padded)
    }

    /// Estimated delay in 16 kHz samples, nil before the first lock.
    var estimatedDelay: Int? { delayEstimator.delay }

    /// Appends render samples (16 kHz).
    mutating func pushRender(_ x: UnsafePointer<Float>, count: Int) {
        let mask = Self.renderRingSize - 1
        var clipped = 0
        for i in 0..<count {
            let v = x[i]
            if abs(v) >= 0.999 { clipped &+= 1 }
            renderRing[(renderWritten &+ i) & mask] = v
        }
        if clipped > 0 {
            counters.clippedRender &+= clipped
            nonlinearHold = 500
        }
        renderWritten &+= count
        delayEstimator.pushRender(x, count: count)
    }

    /// Copies render samples [start, start + count) into `out`, zeros where not (or no longer) available.
    private func readRender(from start: Int, count: Int, into out: UnsafeMutablePointer<Float>) {
        let mask = Self.renderRingSize - 1
        let oldest = renderWritten - Self.renderRingSize
        for i in 0..<count {
            let idx = start &+ i
            out[i] = (idx >= 0 && idx < renderWritten && idx >= oldest) ? renderRing[idx & mask] : 0
        }
    }

    /// Render spectrum of the block that ends `age` blocks before the current aligned block, into `slot`.
    private func computeSpectrum(age: Int, slot: Int) {
        let end = Block.size * (block + 1 - alignment - age)
        readRender(from: end - Block.fft, count: Block.fft, into: time.base)
        let o = slot * Block.padded
        fft.forward(time.base, real: spectra.re.base + o, imaginary: spectra.im.base + o)
        spectra.updatePower(slot: o / Block.padded)
    }

    /// Chooses the bulk delay. Gross moves come from the delay estimator, and only when the echo it finds lies
    /// outside what the filter covers while the filter is not cancelling; fine moves come from the converged
    /// main filter itself (where its energy starts), which follows drift and never cuts off a direct path
    /// because a strong reflection fooled the estimator. Every move shifts the filters by the same number of
    /// partitions, so the modelled echo stays where it is in time.
    private mutating func updateAlignment() -> Bool {
        var target = alignment
        let cancelling = smoothedLinear < 0.1 * smoothedLinearCapture   // > 10 dB, long average
        if let d = delayEstimator.delay, !cancelling {
            let position = d - Block.size * alignment
            if position < Block.size / 2 || position > Block.size * mainPartitions * 6 / 10 {
                target = max(0, (d - Self.preDelay) / Block.size)
            }
        }
        if target == alignment && cancelling && block - lastFineCheck >= 125 {
            lastFineCheck = block
            let p = main.onset()
            if p < 2 && alignment > 0 {
                target = max(0, alignment - (3 - p))
            } else if p > 8 {
                target = alignment + (p - 4)
            }
        }
        guard target != alignment else { return false }
        let shift = target - alignment
        main.shift(by: shift)
        shadow.shift(by: shift)
        alignment = target
        counters.alignmentChanges &+= 1
        return true
    }

    /// Processes one 64-sample capture block; writes 64 output samples (for the previous block's time).
    mutating func process(_ y: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>) {
        let n = Block.size
        counters.blocks &+= 1
        var clipped = false
        var energyY: Float = 0
        for i in 0..<n {
            let v = y[i]
            if abs(v) >= 0.999 { clipped = true; counters.clippedCapture &+= 1 }
            energyY += v * v
        }
        if nonlinearHold > 0 { nonlinearHold -= 1 }
        delayEstimator.pushCapture(y, count: n)

        // Render spectra at the current alignment.
        let realigned = updateAlignment()
        let newest = spectra.advance()
        if realigned {
            tail.zero()
            for age in 0..<spectra.capacity { computeSpectrum(age: age, slot: spectra.slot(age: age)) }
            resetMisalignment()
        } else {
            // The render power sums move by one spectrum in and one out: the newest slot still holds the
            // spectrum leaving the main filter's span, and the one leaving the shadow's is `shadowPartitions` old.
            let leaving = spectra.power.base + newest * Block.padded
            let r = SIMD8<Float>(repeating: tailDecay)
            for v in 0..<Block.vectors {
                let o = v * 8
                store8(tail.base, o, r * load8(tail.base, o) + load8(tailGain.base, o) * load8(leaving, o))
            }
            let leavingShadow = spectra.power.base + spectra.slot(age: shadowPartitions) * Block.padded
            let shadowShorter = shadowPartitions < mainPartitions
            for v in 0..<Block.vectors {
                let o = v * 8
                store8(sumMain.base, o, load8(sumMain.base, o) - load8(leaving, o))
                if shadowShorter { store8(sumShadow.base, o, load8(sumShadow.base, o) - load8(leavingShadow, o)) }
            }
            computeSpectrum(age: 0, slot: newest)
            let entering = spectra.power.base + newest * Block.padded
            let zero = SIMD8<Float>()
            for v in 0..<Block.vectors {
                let o = v * 8
                let p = load8(entering, o)
                store8(sumMain.base, o, (load8(sumMain.base, o) + p).replacing(with: zero, where: load8(sumMain.base, o) + p .< zero))
                if shadowShorter {
                    let q = load8(sumShadow.base, o) + p
                    store8(sumShadow.base, o, q.replacing(with: zero, where: q .< zero))
                }
            }
        }
        if Block.size * (block + 1 - alignment) > renderWritten { counters.renderStarved &+= 1 }
        // Summed in full after a realignment and every 256 blocks (rounding in the running sums).
        if realigned || block & 255 == 0 {
            spectra.powerSum(count: mainPartitions, into: sumMain.base)
            if shadowPartitions < mainPartitions {
                spectra.powerSum(count: shadowPartitions, into: sumShadow.base)
            }
        }
        if shadowPartitions >= mainPartitions {
            sumShadow.base.update(from: sumMain.base, count: Block.padded)
        }
        var renderLevel: Float = 0
        for k in 0..<Block.bins { renderLevel += sumMain[k] }
        renderLevel /= Float(Block.fft * Block.fft * mainPartitions / 2)   // ~ mean square per sample
        let renderActive = renderLevel > 1e-8

        // Both filters; in the same pass over the render spectra they give their proportionate normalisers,
        // sum_p w_p |X_{t-p}|^2 (a sixth accumulator for the power sum above made the main loop slower).
        main.filter(spectra, yr: mainRe.base, yi: mainIm.base, model: model.base, coefficientPower: coefficientPower.base,
                    weightedPower: weightedMain.base)
        shadow.filter(spectra, yr: shadowRe.base, yi: shadowIm.base, weightedPower: weightedShadow.base)
        fft.inverse(real: mainRe.base, imaginary: mainIm.base, output: time.base)
        var energyMain: Float = 0
        for i in 0..<n {
            let e = y[i] - time[n + i]
            errorMain[i] = e
            energyMain += e * e
        }
        fft.inverse(real: shadowRe.base, imaginary: shadowIm.base, output: time.base)
        var energyShadow: Float = 0
        for i in 0..<n {
            let e = y[i] - time[n + i]
            errorShadow[i] = e
            energyShadow += e * e
        }
        if !energyMain.isFinite || !energyShadow.isFinite {
            startOver()
            for i in 0..<n { errorMain[i] = y[i]; errorShadow[i] = y[i] }
            energyMain = energyY; energyShadow = energyY
            smoothedMain = smoothedCapture; smoothedShadow = smoothedCapture
        }
        let a: Float = 0.15
        smoothedCapture += a * (energyY - smoothedCapture)
        smoothedMain += a * (energyMain - smoothedMain)
        smoothedShadow += a * (energyShadow - smoothedShadow)
        if renderActive {
            if learnedBlocks < Self.settledBlocks { learnedBlocks &+= 1 }
            if recoveringBlocks > 0 { recoveringBlocks -= 1 }
            smoothedLinear += 0.005 * (energyMain - smoothedLinear)
            smoothedLinearCapture += 0.005 * (energyY - smoothedLinearCapture)
        }

        // Error spectra (zero-padded overlap-save frames) of both filters.
        for i in 0..<n { time[i] = 0; time[n + i] = errorMain[i] }
        fft.forward(time.base, real: gradRe.base, imaginary: gradIm.base)
        for i in 0..<n { time[n + i] = errorShadow[i] }
        fft.forward(time.base, real: shadowGradRe.base, imaginary: shadowGradIm.base)

        // Main/shadow supervision.
        if renderActive {
            if smoothedShadow < 0.6 * smoothedMain && smoothedShadow < 0.8 * smoothedCapture {
                shadowBetter += 1
            } else {
                shadowBetter = 0
            }
            if shadowBetter >= 4 {
                main.copy(from: shadow, partitions: shadowPartitions)
                if shadowPartitions < mainPartitions { main.clear(from: shadowPartitions) }
                errorMain.base.update(from: errorShadow.base, count: n)
                gradRe.base.update(from: shadowGradRe.base, count: Block.padded)
                gradIm.base.update(from: shadowGradIm.base, count: Block.padded)
                energyMain = energyShadow
                smoothedMain = smoothedShadow
                shadowBetter = 0
                counters.shadowCopies &+= 1
                // As misaligned as its error allows: the step opens up again.
                resetMisalignment()
            } else if smoothedShadow < 0.85 * smoothedMain {
                // The shadow is doing better: the main filter is probably misaligned.
                for k in 0..<Block.bins { misalignment[k] *= 1.05; coldMisalignment[k] *= 1.05 }
            }
            if smoothedShadow > 2.5 * smoothedMain && smoothedMain < smoothedCapture {
                shadowWorse += 1
            } else {
                shadowWorse = 0
            }
            if shadowWorse >= 25 {
                shadow.copy(from: main, partitions: shadowPartitions)
                smoothedShadow = smoothedMain
                shadowWorse = 0
                counters.shadowResets &+= 1
            }
            // Both filters adding echo for half a second: start again.
            if smoothedMain > 4 * smoothedCapture && smoothedShadow > 4 * smoothedCapture {
                diverging += 1
            } else {
                diverging = 0
            }
            if diverging >= 125 {
                startOver()
                smoothedMain = smoothedCapture
                diverging = 0
            }
        }

        // Linear output: the main filter's error, unless it is adding echo (then the microphone itself).
        let useCapture = smoothedMain > 1.5 * smoothedCapture
        let linear = useCapture ? UnsafePointer(y) : UnsafePointer(errorMain.base)

        // Suppressor analysis: windowed capture and linear output.
        for i in 0..<n {
            time[i] = previousCapture[i] * window[i]
            time[n + i] = y[i] * window[n + i]
        }
        fft.forward(time.base, real: captureRe.base, imaginary: captureIm.base)
        for i in 0..<n {
            time[i] = previousLinear[i] * window[i]
            time[n + i] = linear[i] * window[n + i]
        }
        fft.forward(time.base, real: linearRe.base, imaginary: linearIm.base)
        // While the shadow filter is ahead (a path change it has already followed), its echo estimate is the
        // better one for the suppressor.
        let shadowAhead = renderActive && !useCapture && smoothedShadow < 0.85 * smoothedMain
        if suppression && shadowAhead {
            for i in 0..<n {
                time[i] = previousShadowError[i] * window[i]
                time[n + i] = errorShadow[i] * window[n + i]
            }
            fft.forward(time.base, real: shadowRe.base, imaginary: shadowIm.base)
        }
        if suppression {
            var sumY: Float = 0, sumEcho: Float = 0
            for v in 0..<Block.vectors {
                let o = v * 8
                let cr = load8(captureRe.base, o), ci = load8(captureIm.base, o)
                var lr = load8(linearRe.base, o), li = load8(linearIm.base, o)
                let y2 = cr * cr + ci * ci
                // A bin where the linear output is louder than the microphone: the filter's estimate is
                // wrong there (a moved path, a nonlinear loudspeaker); the microphone's bin is sent instead.
                let l2 = lr * lr + li * li
                let limit = Self.outputExcess * y2
                let scale = (limit / (l2 + 1e-30)).squareRoot()
                let louder = l2 .> limit
                lr.replace(with: lr * scale, where: louder)
                li.replace(with: li * scale, where: louder)
                store8(linearRe.base, o, lr)
                store8(linearIm.base, o, li)
                store8(capturePower.base, o, y2)
                store8(linearPower.base, o, lr * lr + li * li)
                var lin = SIMD8<Float>()
                if !useCapture {
                    let dr = cr - lr, di = ci - li
                    lin = dr * dr + di * di
                }
                if shadowAhead {
                    let dr = cr - load8(shadowRe.base, o), di = ci - load8(shadowIm.base, o)
                    let s2 = dr * dr + di * di
                    lin = lin.replacing(with: s2, where: s2 .> lin)
                }
                let half = 0.5 * load8(model.base, o)
                let late = 0.5 * load8(tail.base, o)
                let pe = lin.replacing(with: half, where: half .> lin) + late
                store8(echoPower.base, o, pe)
                store8(linearEcho.base, o, lin)
                sumY += y2.sum()
                sumEcho += pe.sum()
            }
            // Coherence of the capture with the echo estimate (capture minus linear output).
            let ca = SIMD8<Float>(repeating: Self.coherenceSmoothing)
            let estimated = SIMD8<Float>(repeating: useCapture ? 0 : 1)
            let one = SIMD8<Float>(repeating: 1), tiny = SIMD8<Float>(repeating: 1e-30)
            for v in 0..<Block.vectors {
                let o = v * 8
                let yr = load8(captureRe.base, o), yi = load8(captureIm.base, o)
                let er = estimated * (yr - load8(linearRe.base, o)), ei = estimated * (yi - load8(linearIm.base, o))
                var syy = load8(coherenceYY.base, o), see = load8(coherenceEE.base, o)
                var sre = load8(coherenceRe.base, o), sim = load8(coherenceIm.base, o)
                syy += ca * (yr * yr + yi * yi - syy)
                see += ca * (er * er + ei * ei - see)
                sre += ca * (yr * er + yi * ei - sre)
                sim += ca * (yi * er - yr * ei - sim)
                store8(coherenceYY.base, o, syy); store8(coherenceEE.base, o, see)
                store8(coherenceRe.base, o, sre); store8(coherenceIm.base, o, sim)
                let c2 = sre * sre + sim * sim
                let denominator = syy * see + tiny
                // (1 where the ratio would exceed 1 or is not finite)
                store8(coherence.base, o, (c2 / denominator).replacing(with: one, where: .!(c2 .< denominator)))
            }
            // The residual echo the main filter's misalignment predicts: while the filter converges (or has
            // fallen behind the shadow filter), its own estimate is too low, and this is what is left.
            let cap = Self.maximumPathGain / Float(mainPartitions)
            // Until the filters settle, the echo path's gain may sit in one partition (the direct path at a far-end
            // onset, when only the newest partitions hold render): the bound takes the loudest partition's power.
            let cold = !settled
            if cold { spectra.powerMax(into: renderPeak.base) }
            let partitions = Float(mainPartitions)
            for k in 0..<Block.bins {
                let x2 = cold ? max(sumMain[k], Self.coldPeakGain * partitions * renderPeak[k]) : sumMain[k]
                let u = 0.5 * min(coldMisalignment[k], cap) * x2
                uncertaintyFree[k] = u
                uncertainty[k] = min(u, 2 * errorPower[k])
            }
            let mismatch = renderActive && (useCapture || (smoothedMain > 0.5 * smoothedCapture && smoothedShadow < 0.7 * smoothedMain)) && sumEcho > 0.3 * sumY
            // A mismatch while no pupil has been heard for a while is a moved echo path (double talk starts
            // with the near-end test firing): the estimate is rough again for a second.
            if mismatch && suppressor.blocksSinceNear >= ResidualEchoSuppressor.uncertaintyQuiet {
                recoveringBlocks = Self.recoveryBlocks
            }
            suppressor.process(SuppressorInput(
                capture: capturePower.base, outputRe: linearRe.base, outputIm: linearIm.base,
                linearEcho: linearEcho.base, echo: echoPower.base, model: model.base, uncertainty: uncertainty.base, uncertaintyFree: uncertaintyFree.base, outputIsCapture: useCapture, mismatch: mismatch,
                renderActive: renderActive, nonlinear: nonlinearHold > 0 || clipped, coherence: coherence.base,
                recovering: recoveringBlocks > 0, settled: settled, shadowAhead: shadowAhead))
            // The band above 8 kHz (48 kHz mode) has no filter of its own: it is let through in proportion
            // to how little of the top of this band (5-7.5 kHz) is echo, by the linear filter's estimate.
            var topEcho: Float = 0, topCapture: Float = 0
            for k in 40..<61 { topEcho += linearEcho[k]; topCapture += capturePower[k] }
            let share = renderActive ? topEcho / (topCapture + 1e-20) : 0
            smoothedTopShare += (share > smoothedTopShare ? 0.5 : 0.05) * (share - smoothedTopShare)
            upperBandGain = min(suppressor.meanGain(from: 40, to: Block.bins), max(0.01, 1 - 3 * smoothedTopShare))
        }

        // Adaptation.
        if renderActive && !clipped {
            adaptMain()
            // Proportionate weights are re-measured every block while the main filter is not yet cancelling
            // (> 10 dB, long average), then every fourth block (main and shadow in turn): they hardly move then.
            let converging = smoothedLinear >= 0.1 * smoothedLinearCapture
            let measureMain = converging || block & 3 == 2
            main.adapt(spectra, gr: gradRe.base, gi: gradIm.base, measure: measureMain)
            main.constrain(count: Self.constrainPerBlock, fft: fft, scratch: time.base)

            // Shadow: fixed, fast normalised step, regularised by its own error power.
            let deltaShadow = SIMD8<Float>(repeating: 1e-8 * Float(Block.fft * shadowPartitions))
            let muShadow = SIMD8<Float>(repeating: Self.shadowStep)
            let errorScale = SIMD8<Float>(repeating: 2 * Float(shadowPartitions) / Self.maximumPathGain)
            for v in 0..<Block.vectors {
                let o = v * 8
                let er = load8(shadowGradRe.base, o), ei = load8(shadowGradIm.base, o)
                var ep = load8(shadowErrorPower.base, o)
                ep += 0.5 * (er * er + ei * ei - ep)
                store8(shadowErrorPower.base, o, ep)
                let g = muShadow / (load8(weightedShadow.base, o) + deltaShadow + errorScale * ep)
                store8(shadowGradRe.base, o, er * g)
                store8(shadowGradIm.base, o, ei * g)
            }
            let measureShadow = converging || block & 3 == 0
            shadow.adapt(spectra, gr: shadowGradRe.base, gi: shadowGradIm.base, measure: measureShadow)
            shadow.constrain(count: Self.constrainPerBlock, fft: fft, scratch: time.base)
            if measureMain { main.weightsFromEnergies(); updateTailModel() }
            if measureShadow { shadow.weightsFromEnergies() }
        }

        // Synthesis: overlap-add of the (suppressed) frame.
        fft.inverse(real: linearRe.base, imaginary: linearIm.base, output: time.base)
        var energyOut: Float = 0
        for i in 0..<n {
            let v = overlap[i] + time[i] * window[i]
            out[i] = v
            energyOut += v * v
            overlap[i] = time[n + i] * window[n + i]
        }
        previousCapture.base.update(from: y, count: n)
        previousLinear.base.update(from: linear, count: n)
        previousShadowError.base.update(from: errorShadow.base, count: n)

        // Statistics.
        if renderActive {
            erleIn += 0.02 * (previousCaptureEnergy - erleIn)
            erleOut += 0.02 * (energyOut - erleOut)
        }
        previousCaptureEnergy = energyY
        doubleTalk = renderActive && suppressor.echoEnergy > 4 * suppressor.noiseEnergy
            && suppressor.nearEnergy > 2 * suppressor.noiseEnergy
        if doubleTalk { counters.doubleTalkBlocks &+= 1 }
        block &+= 1
    }

    /// The late-reverberation model from the main filter's last partitions: their energy decay per partition
    /// (fitted over the last two quarters of the span, only where it does decay) and the per-bin gain of the
    /// last four partitions, continued one partition beyond the span.
    private mutating func updateTailModel() {
        let q = mainPartitions / 4
        guard q >= 4 else { return }
        var third: Float = 0, fourth: Float = 0
        for p in (mainPartitions - 2 * q)..<(mainPartitions - q) { third += main.energies[p] }
        for p in (mainPartitions - q)..<mainPartitions { fourth += main.energies[p] }
        var total: Float = 0
        for p in 0..<mainPartitions { total += main.energies[p] }
        // A tail that does not decay is adaptation noise, not reverberation; nor is one below 1e-4 of the path.
        guard third > 0, fourth < Self.tailMaximumRatio * third, fourth > 1e-4 * total else {
            tailDecay = 0
            tailGain.zero()
            return
        }
        let r = DSPMath.exp(DSPMath.log(Double(fourth / third)) / Double(q))
        tailDecay = Float(r)
        let last = mainPartitions - 4
        for k in 0..<Block.bins {
            var g: Float = 0
            for p in last..<mainPartitions {
                let o = p * Block.padded + k
                g += main.re[o] * main.re[o] + main.im[o] * main.im[o]
            }
            tailGain[k] = 0.25 * g * tailDecay * tailDecay * tailDecay
        }
    }

    /// After a divergence: both filters, their misalignment and the late-reverberation model from nothing.
    private mutating func startOver() {
        main.reset()
        shadow.reset()
        resetMisalignment()
        tail.zero()
        tailGain.zero()
        tailDecay = 0
        learnedBlocks = 0
        counters.divergenceResets &+= 1
    }

    /// Both misalignment states back to "knows nothing".
    private func resetMisalignment() {
        misalignment.base.update(repeating: 1e3, count: Block.padded)
        coldMisalignment.base.update(repeating: 1e3, count: Block.padded)
    }

    /// The main filter's gradient, scaled in place (gradRe/gradIm hold its error spectrum): a Kalman-like
    /// per-bin step. The expected residual echo is misalignment x render power; the step follows (4x) the share of the
    /// error that residual echo explains, so near-end speech and noise (which the residual cannot explain)
    /// slow the filter down instead of pulling it away, while a misaligned filter adapts at full speed. The
    /// misalignment shrinks with each update, leaks back up slowly (echo paths move) and never exceeds
    /// what the error power allows.
    private mutating func adaptMain() {
        let partitions = Float(mainPartitions)
        let cold = !settled
        let delta: Float = 1e-8 * Float(Block.fft * mainPartitions)
        for k in 0..<Block.bins {
            let x2 = sumMain[k]
            let er = gradRe[k], ei = gradIm[k]
            let e2 = er * er + ei * ei
            var ep = errorPower[k]
            ep += 0.5 * (e2 - ep)
            errorPower[k] = ep
            var h = misalignment[k]
            let ceiling = min(4 * ep / (x2 + delta), Self.maximumPathGain / partitions)
            if h > ceiling { h = ceiling }
            let residual = 0.5 * h * x2
            let alpha = Self.mainStep * min(1, 4 * residual / (ep + 1e-20))
            let g = alpha / (weightedMain[k] + delta + 2 * partitions * ep / Self.maximumPathGain)
            gradRe[k] = er * g
            gradIm[k] = ei * g
            let shrink = 1 - alpha * (2 - alpha) / partitions, rise = Self.leak * coefficientPower[k] / partitions
            h = h * shrink + rise
            misalignment[k] = h
            if cold {
                var hc = coldMisalignment[k]
                if hc > ceiling { hc = max(ceiling, Self.coldCeilingDecay * hc) }
                coldMisalignment[k] = hc * shrink + rise
            } else {
                coldMisalignment[k] = h
            }
        }
        for k in Block.bins..<Block.padded { gradRe[k] = 0; gradIm[k] = 0 }
    }
}
