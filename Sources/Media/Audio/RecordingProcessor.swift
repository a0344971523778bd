/// Wraps a capture processor and keeps a copy of every frame it saw and produced (loudspeaker
/// reference, microphone, output) in buffers allocated up front: for simulations and measurements
/// that must compare the three afterwards. Stops recording when full; never allocates while running.
public struct RecordingProcessor<Inner: CaptureProcessor>: CaptureProcessor {
    /// The wrapped processor.
    public var inner: Inner
    /// Loudspeaker reference samples seen.
    public private(set) var render: [Float]
    /// Microphone samples seen.
    public private(set) var capture: [Float]
    /// Samples produced.
    public private(set) var output: [Float]
    /// Samples recorded so far (the same for all three).
    public private(set) var count = 0

    /// A recorder for up to `capacity` samples.
    public init(wrapping inner: Inner, capacity: Int) {
        self.inner = inner
        render = [Float](repeating: 0, count: capacity)
        capture = [Float](repeating: 0, count: capacity)
        output = [Float](repeating: 0, count: capacity)
    }

    public var name: String { inner.name }
    public var latencySamples: Int { inner.latencySamples }

    public mutating func process(render r: UnsafeBufferPointer<Float>, capture c: UnsafeBufferPointer<Float>,
                                 output o: UnsafeMutableBufferPointer<Float>) {
        inner.process(render: r, capture: c, output: o)
        let n = min(o.count, render.count - count)
        guard n > 0 else { return }
        for i in 0..<n {
            render[count + i] = r[i]
            capture[count + i] = c[i]
            output[count + i] = o[i]
        }
        count += n
    }
}
