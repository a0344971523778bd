// A real-input FFT in pure Swift: a split-format radix-2 complex FFT of half the size, with SIMD8
// butterflies for every stage whose span is at least 8, and the usual real/complex post-processing.
// All tables and scratch space are allocated at construction; transforms never allocate.

/// A real FFT of a fixed power-of-two size `n` (at least 16). The spectrum is kept in split format:
/// `n/2 + 1` real parts and `n/2 + 1` imaginary parts (bins 0 through n/2). `forward` computes the
/// unnormalised DFT, `inverse` its exact inverse (scaled by 1/n), so `inverse(forward(x)) == x`.
/// Transforms are allocation-free and may run on a real-time thread.
public struct RealFFT: ~Copyable {
    /// Transform size in real samples.
    public let size: Int
    /// Number of spectrum bins, `size / 2 + 1`.
    public var binCount: Int { half + 1 }

    let half: Int           // complex FFT size M = n/2
    private let bitReverse: UnsafeMutablePointer<Int32>
    private let twiddleRe: FloatBuffer   // tw[h + j] = exp(-2 pi i j / (2h))
    private let twiddleIm: FloatBuffer
    private let postRe: FloatBuffer      // exp(-2 pi i k / n), k = 0 ... M
    private let postIm: FloatBuffer
    private let workRe: FloatBuffer
    private let workIm: FloatBuffer

    /// An FFT of `size` real samples; `size` must be a power of two of at least 16.
    public init(size: Int) {
        precondition(size >= 16 && size & (size - 1) == 0, "RealFFT size must be a power of two >= 16")
        self.size = size
        half = size / 2
        let m = size / 2
        var bits = 0
        while 1 << bits < m { bits += 1 }
        bitReverse = .allocate(capacity: m)
        for i in 0..<m {
            var r = 0
            for b in 0..<bits where i & (1 << b) != 0 { r |= 1 << (bits - 1 - b) }
            bitReverse[i] = Int32(r)
        }
        twiddleRe = FloatBuffer(count: m)
        twiddleIm = FloatBuffer(count: m)
        var h = 1
        while h < m {
            for j in 0..<h {
                let a = -2 * DSPMath.pi * Double(j) / Double(2 * h)
                twiddleRe[h + j] = Float(DSPMath.cos(a))
                twiddleIm[h + j] = Float(DSPMath.sin(a))
            }
            h *= 2
        }
        postRe = FloatBuffer(count: m + 1)
        postIm = FloatBuffer(count: m + 1)
        for k in 0...m {
            let a = -2 * DSPMath.pi * Double(k) / Double(size)
            postRe[k] = Float(DSPMath.cos(a))
            postIm[k] = Float(DSPMath.sin(a))
        }
        workRe = FloatBuffer(count: m)
        workIm = FloatBuffer(count: m)
    }

    deinit { bitReverse.deallocate() }

    /// The DFT of `size` real samples at `input` into `binCount` bins at `real` and `imaginary`.
    public func forward(_ input: UnsafePointer<Float>, real: UnsafeMutablePointer<Float>, imaginary: UnsafeMutablePointer<Float>) {
        let m = half
        let zr = workRe.base, zi = workIm.base
        for i in 0..<m {
            let r = Int(bitReverse[i])
            zr[r] = input[2 &* i]
            zi[r] = input[2 &* i &+ 1]
        }
        complexTransform(zr, zi)
        // X[k] = Fe + W^k Fo, Fe = (Z[k] + conj Z[M-k]) / 2, Fo = -i (Z[k] - conj Z[M-k]) / 2.
        let z0r = zr[0], z0i = zi[0]
        real[0] = z0r + z0i
        imaginary[0] = 0
        real[m] = z0r - z0i
        imaginary[m] = 0
        let wr = postRe.base, wi = postIm.base
        var k = 1
        while k < m {
            let ar = zr[k], ai = zi[k]
            let br = zr[m &- k], bi = -zi[m &- k]        // conj Z[M-k]
            let fer = 0.5 * (ar + br), fei = 0.5 * (ai + bi)
            let dr = 0.5 * (ar - br), di = 0.5 * (ai - bi)
            let for_ = di, foi = -dr                      // -i * d
            real[k] = fer + wr[k] * for_ - wi[k] * foi
            imaginary[k] = fei + wr[k] * foi + wi[k] * for_
            k &+= 1
        }
    }

    /// The `size` real samples whose DFT is the `binCount` bins at `real` and `imaginary` (imaginary parts
    /// of bins 0 and n/2 are ignored).
    public func inverse(real: UnsafePointer<Float>, imaginary: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) {
        let m = half
        let zr = workRe.base, zi = workIm.base
        let wr = postRe.base, wi = postIm.base
        // Fe = (X[k] + conj X[M-k]) / 2, Fo = (X[k] - conj X[M-k]) W^-k / 2, Z = Fe + i Fo; conjugated for
        // the inverse-by-forward trick, and stored in bit-reversed order.
        var k = 0
        while k < m {
            let ar = real[k], ai = k == 0 ? 0 : imaginary[k]
            let br = real[m &- k], bi = (k == 0) ? 0 : -imaginary[m &- k]
            let fer = 0.5 * (ar + br), fei = 0.5 * (ai + bi)
            let dr = 0.5 * (ar - br), di = 0.5 * (ai - bi)
            // W^-k = conj(w[k])
            let cr = wr[k], ci = -wi[k]
            let for_ = dr * cr - di * ci, foi = dr * ci + di * cr
            let r = Int(bitReverse[k])
            zr[r] = fer - foi
            zi[r] = -(fei + for_)
            k &+= 1
        }
        complexTransform(zr, zi)
        let scale = 1 / Float(m)
        for i in 0..<m {
            output[2 &* i] = zr[i] * scale
            output[2 &* i &+ 1] = -zi[i] * scale
        }
    }

    /// In-place forward complex FFT of size M on bit-reversed input (decimation in time).
    @inline(__always)
    private func complexTransform(_ zr: UnsafeMutablePointer<Float>, _ zi: UnsafeMutablePointer<Float>) {
        let m = half
        // Spans 1 and 2 as one radix-4 pass.
        var g = 0
        while g < m {
            let a0r = zr[g], a0i = zi[g], a1r = zr[g &+ 1], a1i = zi[g &+ 1]
            let a2r = zr[g &+ 2], a2i = zi[g &+ 2], a3r = zr[g &+ 3], a3i = zi[g &+ 3]
            let s0r = a0r + a1r, s0i = a0i + a1i, d0r = a0r - a1r, d0i = a0i - a1i
            let s1r = a2r + a3r, s1i = a2i + a3i, d1r = a2r - a3r, d1i = a2i - a3i
            zr[g] = s0r + s1r; zi[g] = s0i + s1i
            zr[g &+ 2] = s0r - s1r; zi[g &+ 2] = s0i - s1i
            // d1 * (-i) = (d1i, -d1r)
            zr[g &+ 1] = d0r + d1i; zi[g &+ 1] = d0i - d1r
            zr[g &+ 3] = d0r - d1i; zi[g &+ 3] = d0i + d1r
            g &+= 4
        }
        // Span 4, scalar.
        let tr = twiddleRe.base, ti = twiddleIm.base
        g = 0
        while g < m {
            var j = 0
            while j < 4 {
                let w_r = tr[4 &+ j], w_i = ti[4 &+ j]
                let p = g &+ j, q = p &+ 4
                let br = zr[q] * w_r - zi[q] * w_i
                let bi = zr[q] * w_i + zi[q] * w_r
                let ar = zr[p], ai = zi[p]
                zr[p] = ar + br; zi[p] = ai + bi
                zr[q] = ar - br; zi[q] = ai - bi
                j &+= 1
            }
            g &+= 8
        }
        // Spans 8 and up: SIMD8 butterflies.
        var h = 8
        while h < m {
            g = 0
            let step = h &* 2
            while g < m {
                var j = 0
                while j < h {
                    let w_r = load8(tr, h &+ j), w_i = load8(ti, h &+ j)
                    let p = g &+ j, q = p &+ h
                    let xr = load8(zr, q), xi = load8(zi, q)
                    let br = xr * w_r - xi * w_i
                    let bi = xr * w_i + xi * w_r
                    let ar = load8(zr, p), ai = load8(zi, p)
                    store8(zr, p, ar + br); store8(zi, p, ai + bi)
                    store8(zr, q, ar - br); store8(zi, q, ai - bi)
                    j &+= 8
                }
                g &+= step
            }
            h = step
        }
    }
}

extension RealFFT {
    /// Convenience for tests and tools (allocates): the spectrum of `input` as (real, imaginary) arrays.
    public func forward(_ input: [Float]) -> (real: [Float], imaginary: [Float]) {
        precondition(input.count == size, "input must hold exactly `size` samples")
        var re = [Float](repeating: 0, count: binCount), im = [Float](repeating: 0, count: binCount)
        input.withUnsafeBufferPointer { x in
            re.withUnsafeMutableBufferPointer { r in
                im.withUnsafeMutableBufferPointer { i in forward(x.baseAddress!, real: r.baseAddress!, imaginary: i.baseAddress!) }
            }
        }
        return (re, im)
    }

    /// Convenience for tests and tools (allocates): the signal whose spectrum is (`real`, `imaginary`).
    public func inverse(real: [Float], imaginary: [Float]) -> [Float] {
        precondition(real.count == binCount && imaginary.count == binCount, "spectra must hold `binCount` bins")
        var out = [Float](repeating: 0, count: size)
        real.withUnsafeBufferPointer { r in
            imaginary.withUnsafeBufferPointer { i in
                out.withUnsafeMutableBufferPointer { o in inverse(real: r.baseAddress!, imaginary: i.baseAddress!, output: o.baseAddress!) }
            }
        }
        return out
    }
}
