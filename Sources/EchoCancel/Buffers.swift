// Preallocated storage for the real-time path: every buffer the canceller touches while processing is
// allocated here, at construction, 32-byte aligned so that SIMD8 loads never straddle cache lines.

/// A fixed-size, zero-initialised, 32-byte-aligned array of Float that frees itself: the only kind of
/// storage the processing code uses. Noncopyable, so it is never shared or reference-counted.
struct FloatBuffer: ~Copyable {
    /// The first element.
    let base: UnsafeMutablePointer<Float>
    /// Number of elements.
    let count: Int

    /// A buffer of `count` zeros (at least one element is allocated).
    init(count: Int) {
        let n = max(count, 1)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: n * MemoryLayout<Float>.stride, alignment: 32)
        base = raw.initializeMemory(as: Float.self, repeating: 0, count: n)
        self.count = count
    }

    deinit { UnsafeMutableRawPointer(base).deallocate() }

    subscript(i: Int) -> Float {
        @inline(__always) get { base[i] }
        @inline(__always) nonmutating set { base[i] = newValue }
    }

    /// Sets every element to zero.
    func zero() { base.update(repeating: 0, count: count) }
}

/// SIMD8 load of 8 consecutive floats (no alignment required).
@inline(__always)
func load8(_ p: UnsafeMutablePointer<Float>, _ i: Int) -> SIMD8<Float> {
    UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
}

/// SIMD8 load from an immutable pointer.
@inline(__always)
func load8(_ p: UnsafePointer<Float>, _ i: Int) -> SIMD8<Float> {
    UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
}

/// SIMD8 store of 8 consecutive floats (no alignment required).
@inline(__always)
func store8(_ p: UnsafeMutablePointer<Float>, _ i: Int, _ v: SIMD8<Float>) {
    UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: SIMD8<Float>.self)
}

/// A small, fast, allocation-free pseudo-random generator (xorshift32) for comfort noise.
struct NoiseGenerator {
    private var state: UInt32

    init(seed: UInt32) { state = seed == 0 ? 0x9E37_79B9 : seed }

    /// A uniform value in [-1, 1).
    @inline(__always)
    mutating func next() -> Float {
        state ^= state << 13
        state ^= state >> 17
        state ^= state << 5
        return Float(Int32(bitPattern: state)) * (1.0 / 2_147_483_648.0)
    }
}
