#if canImport(Glibc)
internal import Glibc
#endif

/// A high-quality resampler whose ratio can change at any moment without a click: it is how the box
/// brings the microphone's clock onto the loudspeaker's (and later the network's) when they drift by
/// tens or hundreds of ppm.
///
/// Output sample `j` is the input signal band-limited and evaluated at input position `start + Σ step`,
/// interpolated by a 64-tap Kaiser-windowed sinc (β 9.5) from a 512-phase table with linear interpolation
/// between phases. After construction, `push` and `pull` allocate nothing.
public struct AdaptiveResampler {
    /// Input samples advanced per output sample: 1 + drift. Above 1 consumes input faster.
    public var step: Double
    private let taps: Int
    private let phases: Int
    private let table: UnsafeMutablePointer<Float>  // (phases + 1) × taps, shared immutable
    private let owner: TableOwner
    private var buffer: [Float]
    private var filled = 0
    private var position: Double  // read position in `buffer` of the next output's centre

    private final class TableOwner {
        let table: UnsafeMutablePointer<Float>
        init(_ table: UnsafeMutablePointer<Float>) { self.table = table }
        deinit { table.deallocate() }
    }

    /// A resampler with `step` (1 = no change) buffering up to `capacity` input samples.
    public init(step: Double = 1, capacity: Int = 8192, taps: Int = 64, phases: Int = 512, beta: Double = 9.5) {
        precondition(taps % 2 == 0 && taps >= 8 && phases >= 16 && capacity > 4 * taps)
        self.step = step
        self.taps = taps
        self.phases = phases
        let table = UnsafeMutablePointer<Float>.allocate(capacity: (phases + 1) * taps)
        let half = taps / 2
        let i0beta = Self.besselI0(beta)
        for p in 0...phases {
            let frac = Double(p) / Double(phases)
            var sum = 0.0
            var row = [Double](repeating: 0, count: taps)
            for k in 0..<taps {
                // Tap k multiplies input sample (centre - half + 1 + k); its distance from the point is t.
                let t = Double(k - half + 1) - frac
                let sinc = t == 0 ? 1.0 : sin(Double.pi * t) / (Double.pi * t)
                let x = t / Double(half)
                let window = abs(x) >= 1 ? 0 : Self.besselI0(beta * (1 - x * x).squareRoot()) / i0beta
                row[k] = sinc * window
                sum += row[k]
            }
            for k in 0..<taps { table[p * taps + k] = Float(row[k] / sum) }  // unity gain at DC
        }
        self.table = table
        owner = TableOwner(table)
        buffer = [Float](repeating: 0, count: capacity)
        // Start with half a filter of silence so the first output is the first input sample.
        filled = half - 1
        position = Double(half - 1)
    }

    /// Input samples needed after a position before it can be output (half the filter, less one).
    public var latency: Int { taps / 2 - 1 }

    /// Input samples the resampler holds and has not yet passed.
    public var buffered: Int { filled - Int(position) }

    /// Outputs that can be pulled now.
    public var available: Int {
        let last = Double(filled - taps / 2)  // the last centre with a full filter
        guard last >= position else { return 0 }
        return Int((last - position) / step) + 1
    }

    /// Appends input; returns how many samples fit (all of them unless the buffer is full).
    @discardableResult
    public mutating func push(_ input: UnsafeBufferPointer<Float>) -> Int {
        compact()
        let n = min(input.count, buffer.count - filled)
        guard n > 0, let source = input.baseAddress else { return 0 }
        buffer.withUnsafeMutableBufferPointer { b in (b.baseAddress! + filled).update(from: source, count: n) }
        filled += n
        return n
    }

    /// Produces up to `output.count` samples; returns how many were produced.
    public mutating func pull(into output: UnsafeMutableBufferPointer<Float>) -> Int {
        let n = min(output.count, available)
        let half = taps / 2
        let phases = phases, taps = taps, table = table
        var position = position
        let step = step
        buffer.withUnsafeBufferPointer { b in
            let base = b.baseAddress!
            for j in 0..<n {
                let centre = Int(position)
                let frac = position - Double(centre)
                let scaled = frac * Double(phases)
                let p = min(Int(scaled), phases - 1)
                let mix = Float(scaled - Double(p))
                let rowA = table + p &* taps, rowB = rowA + taps
                let x = base + (centre &- half &+ 1)
                var a = SIMD8<Float>(), c = SIMD8<Float>()
                var k = 0
                while k < taps {
                    let xs = UnsafeRawPointer(x + k).loadUnaligned(as: SIMD8<Float>.self)
                    a += xs * UnsafeRawPointer(rowA + k).loadUnaligned(as: SIMD8<Float>.self)
                    c += xs * UnsafeRawPointer(rowB + k).loadUnaligned(as: SIMD8<Float>.self)
                    k &+= 8
                }
                let va = a.sum(), vb = c.sum()
                output[j] = va + mix * (vb - va)
                position += step
            }
        }
        self.position = position
        return n
    }

    /// Moves unread input to the front when more than half the buffer is behind the read position.
    private mutating func compact() {
        let keep = Int(position) - taps / 2 + 1  // first sample any future output needs
        guard keep > buffer.count / 2 else { return }
        let remaining = filled - keep
        buffer.withUnsafeMutableBufferPointer { b in
            let base = b.baseAddress!
            base.update(from: base + keep, count: remaining)
        }
        filled = remaining
        position -= Double(keep)
    }

    static func besselI0(_ x: Double) -> Double {
        var sum = 1.0, term = 1.0
        var k = 1.0
        while term > 1e-12 * sum {
            term *= (x / (2 * k)) * (x / (2 * k))
            sum += term
            k += 1
        }
        return sum
    }
}
