// Media: everything between the canceller and the network: Opus, RTP/RTCP, SRTP, the jitter buffer,
// resampling, WAV files, and the audio and video pipelines that run in the box's real-time threads.
// It must never open a device itself (Devices does) or decide the lesson's state (Control does).
internal import COpus

/// The libopus version the firmware runs with.
public func opusVersion() -> String { String(cString: opus_get_version_string()) }

/// What the box does to each microphone frame before it is encoded and sent: the seam where the echo
/// canceller sits. `render` is what the loudspeaker played in the same period (the canceller's
/// reference), `capture` what the microphone heard; `output` receives the frame to send. All three have
/// the same length. Implementations run on the real-time thread: no allocation, lock or system call.
public protocol CaptureProcessor {
    /// A short name for logs and summaries ("pass-through", "classbox-aec").
    var name: String { get }
    /// Processes one frame.
    mutating func process(render: UnsafeBufferPointer<Float>, capture: UnsafeBufferPointer<Float>,
                          output: UnsafeMutableBufferPointer<Float>)
    /// Samples by which the output lags the capture (the processor's algorithmic latency).
    var latencySamples: Int { get }
}

extension CaptureProcessor {
    /// No latency unless the processor says otherwise.
    public var latencySamples: Int { 0 }
}

/// Sends the microphone as it is: the processor used until the echo canceller is wired in, and the
/// baseline every canceller is measured against.
public struct PassThroughProcessor: CaptureProcessor {
    /// A pass-through processor.
    public init() {}
    public var name: String { "pass-through" }
    public mutating func process(render: UnsafeBufferPointer<Float>, capture: UnsafeBufferPointer<Float>,
                                 output: UnsafeMutableBufferPointer<Float>) {
        _ = output.update(fromContentsOf: capture)
    }
}
