// EchoCancel: the acoustic echo canceller, pure Swift DSP: it removes the remote teacher's voice, as the
// classroom loudspeaker plays it, from the classroom microphone while keeping the pupils' voices.
// It must never import anything but the standard library, and after construction its processing must
// never allocate, lock or make a system call: it runs inside the real-time audio thread.

/// The canceller's frame: 10 ms of audio, the unit in which render and capture are fed.
public enum EchoCancelFrame {
    /// Sample rates the canceller runs at.
    public static let supportedRates = [16000, 48000]

    /// Samples in one 10 ms frame at `rate`, or nil when the canceller does not run at that rate.
    public static func samples(atRate rate: Int) -> Int? {
        supportedRates.contains(rate) ? rate / 100 : nil
    }
}
