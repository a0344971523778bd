// The echo canceller on the capture-processor seam: the box's audio pipeline and the simulated lesson
// call it every 10 ms with the loudspeaker frame and the microphone frame.
public import EchoCancel

/// A `CaptureProcessor` that runs Classbox's echo canceller: the render frame goes in as the reference,
/// the capture frame comes out without the loudspeaker's echo (`latencySamples` later). The canceller's
/// state lives in one heap object made at construction; copies of this value share it, so keep one.
/// Processing allocates nothing and takes no lock.
public struct EchoCancellerProcessor: CaptureProcessor {
    /// Owns the noncopyable canceller so that this value can conform to `CaptureProcessor`.
    final class Storage {
        var canceller: EchoCanceller
        init(_ canceller: consuming EchoCanceller) { self.canceller = canceller }
    }

    private let storage: Storage

    /// A processor at `sampleRate` (16000 or 48000 Hz); throws when the rate is not supported.
    public init(sampleRate: Int) throws(EchoCancellerError) {
        storage = Storage(try EchoCanceller(EchoCancellerConfiguration(sampleRate: sampleRate)))
    }

    public var name: String { "classbox-aec" }

    /// Samples per 10 ms frame.
    public var frameLength: Int { storage.canceller.frameLength }

    /// Output latency in samples.
    public var latencySamples: Int { storage.canceller.latencySamples }

    /// The canceller's live statistics.
    public var statistics: EchoCancellerStatistics { storage.canceller.statistics }

    public mutating func process(render: UnsafeBufferPointer<Float>, capture: UnsafeBufferPointer<Float>,
                                 output: UnsafeMutableBufferPointer<Float>) {
        storage.canceller.render(render)
        storage.canceller.process(capture: capture, output: output)
    }
}
