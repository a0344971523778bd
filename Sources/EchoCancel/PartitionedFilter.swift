// The partitioned-block frequency-domain adaptive filter (overlap-save, 64-sample blocks, 128-point FFT)
// and the ring of render spectra it runs on. Spectra are in split format, 65 bins padded to 72 so that
// every bin loop is nine SIMD8 operations; the padding stays zero.

/// Block geometry shared by the 16 kHz core.
enum Block {
    /// Samples per block.
    static let size = 64
    /// FFT size.
    static let fft = 128
    /// Bins 0 ... 64.
    static let bins = 65
    /// Bins rounded up to a multiple of 8.
    static let padded = 72
    /// SIMD8 vectors per spectrum.
    static let vectors = 9
}

/// The last `capacity` render spectra (newest first when read through `slot(age:)`) and their powers.
struct SpectraRing: ~Copyable {
    let capacity: Int
    let re: FloatBuffer
    let im: FloatBuffer
    let power: FloatBuffer
    /// Slot of the newest spectrum.
    private(set) var head = 0

    init(capacity: Int) {
        self.capacity = capacity
        re = FloatBuffer(count: capacity * Block.padded)
        im = FloatBuffer(count: capacity * Block.padded)
        power = FloatBuffer(count: capacity * Block.padded)
    }

    /// Slot index of the spectrum `age` blocks old.
    @inline(__always)
    func slot(age: Int) -> Int {
        let s = head - age
        return s < 0 ? s + capacity : s
    }

    /// Makes room for a new newest spectrum and returns its slot.
    mutating func advance() -> Int {
        head = head + 1 == capacity ? 0 : head + 1
        return head
    }

    /// Computes |X|^2 of a slot.
    func updatePower(slot: Int) {
        let o = slot * Block.padded
        for v in 0..<Block.vectors {
            let i = o + v * 8
            let r = load8(re.base, i), m = load8(im.base, i)
            store8(power.base, i, r * r + m * m)
        }
    }

    func clear() { re.zero(); im.zero(); power.zero() }

    /// Per bin, the largest power of all the spectra the ring holds, into `out` (72 bins).
    func powerMax(into out: UnsafeMutablePointer<Float>) {
        for v in 0..<Block.vectors {
            var acc = SIMD8<Float>()
            for p in 0..<capacity {
                let x = load8(power.base, p * Block.padded + v * 8)
                acc.replace(with: x, where: x .> acc)
            }
            store8(out, v * 8, acc)
        }
    }

    /// Sum of the powers of the newest `count` spectra into `out` (72 bins).
    func powerSum(count: Int, into out: UnsafeMutablePointer<Float>) {
        for v in 0..<Block.vectors {
            var acc = SIMD8<Float>()
            var s = head
            for _ in 0..<count {
                acc += load8(power.base, s * Block.padded + v * 8)
                s = s == 0 ? capacity - 1 : s - 1
            }
            store8(out, v * 8, acc)
        }
    }
}

/// A partitioned frequency-domain adaptive filter: `partitions` blocks of 64 taps each.
///
/// Adaptation is proportionate (IPNLMS-style): each partition's share of the update grows with its share of
/// the filter's energy, so the strong early part of a room response converges several times faster than
/// with plain NLMS while the long, weak tail still adapts. The normaliser is the matching weighted render
/// power, so the a-posteriori error is exactly (1 - step) times the a-priori error whatever the weights.
struct PartitionedFilter: ~Copyable {
    let partitions: Int
    let re: FloatBuffer
    let im: FloatBuffer
    /// Proportionate weights per partition (mean 1) and the partitions' coefficient energies.
    let weights: FloatBuffer
    let energies: FloatBuffer
    private var constrainNext = 0
    /// Share of the weight spread uniformly (1: plain NLMS, 0: fully proportionate).
    static let uniformShare: Float = 0.5

    init(partitions: Int) {
        self.partitions = partitions
        re = FloatBuffer(count: partitions * Block.padded)
        im = FloatBuffer(count: partitions * Block.padded)
        weights = FloatBuffer(count: partitions)
        energies = FloatBuffer(count: partitions)
        weights.base.update(repeating: 1, count: partitions)
    }

    func reset() { re.zero(); im.zero(); weights.base.update(repeating: 1, count: partitions) }

    /// Recomputes the partition energies and the proportionate weights.
    func updateWeights() {
        for p in 0..<partitions { energies[p] = energy(of: p) }
        weightsFromEnergies()
    }

    /// The proportionate weights from `energies` as they stand (`adapt` and `constrain` keep them current,
    /// so the per-block update need not read the coefficients again).
    func weightsFromEnergies() {
        var total: Float = 0
        for p in 0..<partitions { total += energies[p] }
        let u = Self.uniformShare
        guard total > 1e-20 else {
            weights.base.update(repeating: 1, count: partitions)
            return
        }
        let scale = (1 - u) * Float(partitions) / total
        for p in 0..<partitions { weights[p] = u + scale * energies[p] }
    }

    /// sum_p w_p |X_{t-p}|^2 into `out` (72 bins): the proportionate normaliser.
    func weightedPower(_ x: borrowing SpectraRing, into out: UnsafeMutablePointer<Float>) {
        let cap = x.capacity
        for v in 0..<Block.vectors {
            var acc = SIMD8<Float>()
            var s = x.head
            for p in 0..<partitions {
                acc += weights[p] * load8(x.power.base, s * Block.padded + v * 8)
                s = s == 0 ? cap - 1 : s - 1
            }
            store8(out, v * 8, acc)
        }
    }

    /// Echo estimate Y = sum_p H_p X_{t-p} into (yr, yi).
    func filter(_ x: borrowing SpectraRing, yr: UnsafeMutablePointer<Float>, yi: UnsafeMutablePointer<Float>) {
        let cap = x.capacity
        for v in 0..<Block.vectors {
            let off = v * 8
            var ar = SIMD8<Float>(), ai = SIMD8<Float>()
            var s = x.head
            var h = off
            for _ in 0..<partitions {
                let xo = s * Block.padded + off
                let xr = load8(x.re.base, xo), xi = load8(x.im.base, xo)
                let hr = load8(re.base, h), hi = load8(im.base, h)
                ar += xr * hr - xi * hi
                ai += xr * hi + xi * hr
                s = s == 0 ? cap - 1 : s - 1
                h &+= Block.padded
            }
            store8(yr, off, ar)
            store8(yi, off, ai)
        }
    }

    /// `filter` and `weightedPower` in one pass over the render spectra.
    func filter(_ x: borrowing SpectraRing, yr: UnsafeMutablePointer<Float>, yi: UnsafeMutablePointer<Float>,
                weightedPower weighted: UnsafeMutablePointer<Float>) {
        let cap = x.capacity
        let w = weights.base
        for v in 0..<Block.vectors {
            let off = v &* 8
            var ar = SIMD8<Float>(), ai = SIMD8<Float>(), aw = SIMD8<Float>()
            var s = x.head
            var h = off
            for p in 0..<partitions {
                let xo = s &* Block.padded &+ off
                let xr = load8(x.re.base, xo), xi = load8(x.im.base, xo)
                let hr = load8(re.base, h), hi = load8(im.base, h)
                ar += xr * hr - xi * hi
                ai += xr * hi + xi * hr
                aw += w[p] * load8(x.power.base, xo)
                s = s == 0 ? cap &- 1 : s &- 1
                h &+= Block.padded
            }
            store8(yr, off, ar)
            store8(yi, off, ai)
            store8(weighted, off, aw)
        }
    }

    /// Like `filter`, and also the power-domain echo model sum_p |H_p|^2 |X_{t-p}|^2 into `model` and the
    /// coefficient power sum_p |H_p|^2 into `coefficientPower`, and the proportionate normaliser
    /// sum_p w_p |X_{t-p}|^2 (what `weightedPower` computes) into `weighted`.
    func filter(_ x: borrowing SpectraRing, yr: UnsafeMutablePointer<Float>, yi: UnsafeMutablePointer<Float>,
                model: UnsafeMutablePointer<Float>, coefficientPower: UnsafeMutablePointer<Float>,
                weightedPower weighted: UnsafeMutablePointer<Float>) {
        let cap = x.capacity
        let w = weights.base
        for v in 0..<Block.vectors {
            let off = v &* 8
            var ar = SIMD8<Float>(), ai = SIMD8<Float>(), am = SIMD8<Float>(), ah = SIMD8<Float>()
            var aw = SIMD8<Float>()
            var s = x.head
            var h = off
            for p in 0..<partitions {
                let xo = s &* Block.padded &+ off
                let xr = load8(x.re.base, xo), xi = load8(x.im.base, xo)
                let hr = load8(re.base, h), hi = load8(im.base, h)
                ar += xr * hr - xi * hi
                ai += xr * hi + xi * hr
                let hh = hr * hr + hi * hi
                ah += hh
                let xp = load8(x.power.base, xo)
                am += hh * xp
                aw += w[p] * xp
                s = s == 0 ? cap &- 1 : s &- 1
                h &+= Block.padded
            }
            store8(yr, off, ar)
            store8(yi, off, ai)
            store8(model, off, am)
            store8(coefficientPower, off, ah)
            store8(weighted, off, aw)
        }
    }

    /// H_p += w_p conj(X_{t-p}) G for every partition (G already holds step size and normalisation); the
    /// partitions' new energies go into `energies` (when `measure`).
    func adapt(_ x: borrowing SpectraRing, gr: UnsafeMutablePointer<Float>, gi: UnsafeMutablePointer<Float>,
               measure: Bool = true) {
        let cap = x.capacity
        var s = x.head
        for p in 0..<partitions {
            let xp = x.re.base + s &* Block.padded, xq = x.im.base + s &* Block.padded
            let hp = re.base + p &* Block.padded, hq = im.base + p &* Block.padded
            let w = SIMD8<Float>(repeating: weights[p])
            for v in 0..<Block.vectors {
                let o = v &* 8
                let xr = load8(xp, o), xi = load8(xq, o)
                let g_r = w * load8(gr, o), g_i = w * load8(gi, o)
                store8(hp, o, load8(hp, o) + xr * g_r + xi * g_i)
                store8(hq, o, load8(hq, o) + xr * g_i - xi * g_r)
            }
            if measure { energies[p] = energy(of: p) }   // while in L1 (faster than fused into the loop above)
            s = s == 0 ? cap &- 1 : s &- 1
        }
    }

    /// Gradient constraint for `count` partitions, round robin: keeps each partition's impulse response
    /// within its first 64 taps (what makes the block convolution linear rather than circular).
    mutating func constrain(count: Int, fft: borrowing RealFFT, scratch: UnsafeMutablePointer<Float>) {
        for _ in 0..<min(count, partitions) {
            let p = constrainNext
            constrainNext = constrainNext + 1 == partitions ? 0 : constrainNext + 1
            let o = p * Block.padded
            fft.inverse(real: re.base + o, imaginary: im.base + o, output: scratch)
            (scratch + Block.size).update(repeating: 0, count: Block.size)
            fft.forward(scratch, real: re.base + o, imaginary: im.base + o)
            energies[p] = energy(of: p)
        }
    }

    /// Moves partition p + shift to p (shift > 0: the response moves earlier); vacated partitions are zero.
    func shift(by shift: Int) {
        guard shift != 0 else { return }
        let n = partitions * Block.padded
        let k = abs(shift) * Block.padded
        if k >= n { reset(); return }
        Self.move(re.base, shift: shift, count: n, by: k)
        Self.move(im.base, shift: shift, count: n, by: k)
        updateWeights()
    }

    private static func move(_ buf: UnsafeMutablePointer<Float>, shift: Int, count n: Int, by k: Int) {
        if shift > 0 {
            buf.update(from: buf + k, count: n - k)
            (buf + n - k).update(repeating: 0, count: k)
        } else {
            (buf + k).update(from: buf, count: n - k)   // overlapping: update(from:) copies backwards here
            buf.update(repeating: 0, count: k)
        }
    }

    /// Copies the first `count` partitions of `other`.
    func copy(from other: borrowing PartitionedFilter, partitions count: Int) {
        let n = min(count, partitions, other.partitions) * Block.padded
        re.base.update(from: other.re.base, count: n)
        im.base.update(from: other.im.base, count: n)
        updateWeights()
    }

    /// Zeroes partitions from `start` on.
    func clear(from start: Int) {
        guard start < partitions else { return }
        let o = start * Block.padded, n = (partitions - start) * Block.padded
        (re.base + o).update(repeating: 0, count: n)
        (im.base + o).update(repeating: 0, count: n)
    }

    /// The partition with the most energy and the total energy.
    func peak() -> (partition: Int, energy: Float, total: Float) {
        var best = 0
        var bestEnergy: Float = 0
        var total: Float = 0
        for p in 0..<partitions {
            var acc = SIMD8<Float>()
            let o = p * Block.padded
            for v in 0..<Block.vectors {
                let r = load8(re.base, o + v * 8), i = load8(im.base, o + v * 8)
                acc += r * r + i * i
            }
            let e = acc.sum()
            total += e
            if e > bestEnergy { bestEnergy = e; best = p }
        }
        return (best, bestEnergy, total)
    }

    /// The first partition holding at least a tenth of the strongest partition's energy: where the echo
    /// path's response begins inside the filter.
    func onset() -> Int {
        let peakEnergy = peak().energy
        for p in 0..<partitions where energy(of: p) >= 0.1 * peakEnergy { return p }
        return 0
    }

    /// Energy of one partition's coefficients.
    func energy(of p: Int) -> Float {
        // Two 4-lane accumulators: an 8-lane sum of products compiles to shuffles on SSE.
        var a0 = SIMD4<Float>(), a1 = SIMD4<Float>()
        let r = UnsafeRawPointer(re.base + p &* Block.padded), i = UnsafeRawPointer(im.base + p &* Block.padded)
        var o = 0
        while o < Block.padded &* 4 {
            let r0 = r.loadUnaligned(fromByteOffset: o, as: SIMD4<Float>.self)
            let r1 = r.loadUnaligned(fromByteOffset: o &+ 16, as: SIMD4<Float>.self)
            let i0 = i.loadUnaligned(fromByteOffset: o, as: SIMD4<Float>.self)
            let i1 = i.loadUnaligned(fromByteOffset: o &+ 16, as: SIMD4<Float>.self)
            a0 += r0 * r0 + i0 * i0
            a1 += r1 * r1 + i1 * i1
            o &+= 32
        }
        let a = a0 + a1
        return (a[0] + a[1]) + (a[2] + a[3])
    }

    /// True when every coefficient is finite.
    func isFinite() -> Bool {
        var acc = SIMD8<Float>()
        let n = partitions * Block.padded
        var i = 0
        while i < n {
            acc += load8(re.base, i) * 0 + load8(im.base, i) * 0
            i &+= 8
        }
        return acc.sum() == 0
    }
}
