#if canImport(Glibc)
internal import Glibc
#endif

/// One direction of a sound device as the audio engine drives it: a real ALSA PCM, a simulated
/// classroom, or a test device. `transfer` reads (capture) or writes (playback) interleaved frames and
/// returns the count or a negative errno, exactly like `snd_pcm_readi`/`snd_pcm_writei`, so one engine
/// loop with one recovery path serves them all. Every method is called from one real-time thread and
/// must not allocate or lock.
public protocol AudioPort: AnyObject {
    /// The device's name for logs and counters.
    var name: String { get }
    /// Capture or playback.
    var stream: PCMStream { get }
    /// The parameters the device runs with.
    var configuration: PCMConfiguration { get }
    /// Reads or writes up to `frames` frames; returns the count or a negative errno.
    func transfer(_ buffer: UnsafeMutableRawPointer, frames: Int) -> Int
    /// Recovers from `-EPIPE`/`-ESTRPIPE`; returns 0, or a negative errno when the device is gone.
    func recover(from error: Int) -> Int
    /// Starts the stream (capture); playback starts by itself.
    func start() -> Int
    /// The device clock's timestamp and delay.
    func timestamp() -> PCMTimestamp?
}

/// An ALSA PCM as an `AudioPort`.
public final class ALSAPort: AudioPort {
    private let device: PCMDevice
    /// See `AudioPort`.
    public let name: String
    /// See `AudioPort`.
    public let stream: PCMStream
    /// See `AudioPort`.
    public let configuration: PCMConfiguration

    /// Wraps an open device.
    public init(_ device: consuming PCMDevice) {
        name = device.name
        stream = device.stream
        configuration = device.configuration
        self.device = device
    }

    public func transfer(_ buffer: UnsafeMutableRawPointer, frames: Int) -> Int {
        stream == .capture ? device.read(into: buffer, frames: frames) : device.write(from: buffer, frames: frames)
    }
    public func recover(from error: Int) -> Int { device.recover(from: error) }
    public func start() -> Int { device.start() }
    public func timestamp() -> PCMTimestamp? { device.timestamp() }
}

/// Gives a device without a clock (libasound's `file`/`null` plugins, the simulated room) the clock a
/// sound card has: each period is due at an absolute deadline on CLOCK_MONOTONIC, a caller that is
/// early waits, and a caller that falls behind by more than the device buffer gets `-EPIPE`, as a real
/// card overruns (capture) or underruns (playback). Without it such devices never block and never xrun.
public final class ClockedPort: AudioPort {
    private let inner: any AudioPort
    private let rate: Double
    private var position: Int = 0  // frames transferred since the (re)start
    private var epoch: Int64 = 0  // time at which `position` 0 was due; set by the first transfer
    private var started = false
    /// CLOCK_MONOTONIC time (ns) at which the first frame was due: sample `k` of the stream is
    /// "now" at `startNanoseconds + k / rate` (until a recovery restarts the clock). Nil before the first transfer.
    public private(set) var startNanoseconds: Int64?
    /// Where the clock restarted after an xrun: (frames transferred before the restart, CLOCK_MONOTONIC
    /// ns of the restart). Frame `k >= frames` of the stream is due at `ns + (k - frames) / rate`. The
    /// first 64 restarts are kept (for measurements; storage reserved up front).
    public private(set) var restarts: [(frames: Int, nanoseconds: Int64)] = []
    private var transferred = 0

    /// Clocks `inner` at its configured rate; the clock starts with the first transfer.
    public init(_ inner: any AudioPort) {
        self.inner = inner
        rate = Double(inner.configuration.rate)
        restarts.reserveCapacity(64)
    }

    public var name: String { inner.name }
    public var stream: PCMStream { inner.stream }
    public var configuration: PCMConfiguration { inner.configuration }

    public func transfer(_ buffer: UnsafeMutableRawPointer, frames: Int) -> Int {
        if !started {
            started = true
            epoch = ClockedPort.now()
            startNanoseconds = epoch
        }
        let dueFrames = position + frames
        let due = epoch + Int64(Double(dueFrames) / rate * 1e9)
        let now = ClockedPort.now()
        // Late by more than the device buffer: the hardware would have overrun or underrun.
        let slack = Int64(Double(inner.configuration.bufferFrames) / rate * 1e9)
        if now - due > slack { return -Int(EPIPE) }
        if due > now {
            var deadline = timespec(tv_sec: Int(due / 1_000_000_000), tv_nsec: Int(due % 1_000_000_000))
            while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, nil) == EINTR {}
        }
        let n = inner.transfer(buffer, frames: frames)
        if n > 0 {
            position += n
            transferred += n
        }
        return n
    }

    public func recover(from error: Int) -> Int {
        let result = inner.recover(from: error)
        // Restart the clock from now, as a recovered card does.
        epoch = ClockedPort.now()
        position = 0
        if restarts.count < 64 { restarts.append((transferred, epoch)) }
        return result
    }

    public func start() -> Int { inner.start() }

    public func timestamp() -> PCMTimestamp? {
        // Frames the clock says were converted by now, relative to what was transferred.
        let now = ClockedPort.now()
        let converted = Int(Double(now - epoch) * 1e-9 * rate)
        let delay = stream == .playback ? position - converted : converted - position
        return PCMTimestamp(nanoseconds: now, delayFrames: delay, availableFrames: max(0, stream == .capture ? delay : -delay))
    }

    static func now() -> Int64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Int64(t.tv_sec) * 1_000_000_000 + Int64(t.tv_nsec)
    }
}
