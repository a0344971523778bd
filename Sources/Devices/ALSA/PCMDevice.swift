internal import CAlsa
#if canImport(Glibc)
internal import Glibc
#endif

/// Sample formats the firmware opens devices with, in the order it prefers them.
public enum PCMSampleFormat: String, Sendable, Codable, CaseIterable {
    /// Signed 16-bit little-endian: what nearly every USB speakerphone speaks.
    case s16 = "S16_LE"
    /// Signed 32-bit little-endian (24-bit codecs usually present this).
    case s32 = "S32_LE"
    /// 32-bit float little-endian.
    case float32 = "FLOAT_LE"

    /// Bytes per sample.
    public var bytes: Int { self == .s16 ? 2 : 4 }

    var alsa: snd_pcm_format_t {
        switch self {
        case .s16: return SND_PCM_FORMAT_S16_LE
        case .s32: return SND_PCM_FORMAT_S32_LE
        case .float32: return SND_PCM_FORMAT_FLOAT_LE
        }
    }
}

/// What a PCM is asked for, and (after opening) what it agreed to.
public struct PCMConfiguration: Sendable, Equatable, Codable {
    /// Frames per second.
    public var rate: Int
    /// Interleaved channels.
    public var channels: Int
    /// Sample format.
    public var format: PCMSampleFormat
    /// Frames per period (one wake-up of the audio thread).
    public var periodFrames: Int
    /// Frames in the whole device buffer.
    public var bufferFrames: Int

    /// A configuration from its values.
    public init(rate: Int, channels: Int, format: PCMSampleFormat, periodFrames: Int, bufferFrames: Int) {
        self.rate = rate
        self.channels = channels
        self.format = format
        self.periodFrames = periodFrames
        self.bufferFrames = bufferFrames
    }

    /// Bytes in one frame (all channels of one sample instant).
    public var bytesPerFrame: Int { channels * format.bytes }
}

/// A point on the device's clock: at `time` (CLOCK_MONOTONIC), `delay` frames were between the
/// application and the converter (still to be played, or already captured but not yet read).
public struct PCMTimestamp: Sendable, Equatable {
    /// Monotonic time of the status in nanoseconds.
    public var nanoseconds: Int64
    /// Frames queued between the application and the device's converter.
    public var delayFrames: Int
    /// Frames ready to read (capture) or free to write (playback).
    public var availableFrames: Int
}

/// A configuration file for libasound given as text, so tests and tools can define their own PCMs
/// (`file`, `null`, `plug`...) without touching the system's ALSA configuration.
public final class ALSAConfigTree: @unchecked Sendable {
    // Immutable after init; libasound only reads it.
    let handle: OpaquePointer

    /// Parses `text` in alsa.conf syntax.
    public init(text: String, name: String = "<config>") throws(ALSAError) {
        var top: OpaquePointer?
        var input: OpaquePointer?
        func fail(_ call: String, _ rc: Int32) -> ALSAError {
            ALSAError(kind: .failed, device: name, stream: .capture, call: call, errno: Errno(-rc),
                      detail: "the ALSA configuration text is invalid")
        }
        var rc = snd_config_top(&top)
        guard rc >= 0, let top else { throw fail("snd_config_top", rc) }
        rc = text.withCString { snd_input_buffer_open(&input, $0, text.utf8.count) }
        guard rc >= 0, let input else { snd_config_delete(top); throw fail("snd_input_buffer_open", rc) }
        rc = snd_config_load(top, input)
        snd_input_close(input)
        guard rc >= 0 else { snd_config_delete(top); throw fail("snd_config_load", rc) }
        handle = top
    }

    deinit { snd_config_delete(handle) }
}

/// An open ALSA PCM with its hardware and software parameters set: the firmware's only way to move
/// audio frames in and out of a sound card. Closed when it goes out of scope.
///
/// `read`, `write`, `recover` and `timestamp` allocate nothing and take no lock; they are meant for
/// the real-time audio threads.
public struct PCMDevice: ~Copyable {
    private let handle: OpaquePointer
    private let status: OpaquePointer
    /// The device name it was opened with.
    public let name: String
    /// Capture or playback.
    public let stream: PCMStream
    /// What the device agreed to.
    public let configuration: PCMConfiguration

    /// Opens `name` (e.g. `hw:CARD=Device,DEV=0`) and sets its parameters: the first of `rates` the
    /// device takes exactly (no resampling inside ALSA: the engine compensates drift itself), the first
    /// of `formats` it takes, exactly `channels`, and the period and buffer nearest to those asked
    /// (`periodFrames` is for the first rate; at a fallback rate the period keeps its duration).
    /// Every refusal names the parameter and what the device offers instead.
    public init(name: String, stream: PCMStream, rates: [Int], channels: Int, formats: [PCMSampleFormat] = PCMSampleFormat.allCases,
                periodFrames: Int, bufferPeriods: Int, config: ALSAConfigTree? = nil) throws(ALSAError) {
        precondition(!rates.isEmpty && !formats.isEmpty && channels > 0 && periodFrames > 0 && bufferPeriods >= 2)
        let direction = stream == .capture ? SND_PCM_STREAM_CAPTURE : SND_PCM_STREAM_PLAYBACK
        var pcm: OpaquePointer?
        let rc: Int32
        if let config {
            rc = snd_pcm_open_lconf(&pcm, name, direction, 0, config.handle)
        } else {
            rc = snd_pcm_open(&pcm, name, direction, 0)
        }
        guard rc >= 0, let pcm else {
            var error = ALSAError.from(Errno(-rc), device: name, stream: stream, call: "snd_pcm_open")
            if rc == -ENOENT || rc == -ENODEV || rc == -ENXIO { error.kind = .notFound }
            throw error
        }
        var statusPointer: OpaquePointer?
        guard snd_pcm_status_malloc(&statusPointer) >= 0, let statusPointer else {
            snd_pcm_close(pcm)
            throw ALSAError(kind: .failed, device: name, stream: stream, call: "snd_pcm_status_malloc", errno: Errno(ENOMEM), detail: "out of memory")
        }
        do {
            configuration = try PCMDevice.setParameters(pcm, name: name, stream: stream, rates: rates, channels: channels,
                                                        formats: formats, periodFrames: periodFrames, bufferPeriods: bufferPeriods)
        } catch {
            snd_pcm_status_free(statusPointer)
            snd_pcm_close(pcm)
            throw error
        }
        self.handle = pcm
        self.status = statusPointer
        self.name = name
        self.stream = stream
    }

    deinit {
        snd_pcm_status_free(status)
        snd_pcm_close(handle)
    }

    private static func setParameters(_ pcm: OpaquePointer, name: String, stream: PCMStream, rates: [Int], channels: Int,
                                      formats: [PCMSampleFormat], periodFrames: Int, bufferPeriods: Int) throws(ALSAError) -> PCMConfiguration {
        var hwPointer: OpaquePointer?
        guard snd_pcm_hw_params_malloc(&hwPointer) >= 0, let hw = hwPointer else {
            throw ALSAError(kind: .failed, device: name, stream: stream, call: "snd_pcm_hw_params_malloc", errno: Errno(ENOMEM), detail: "out of memory")
        }
        defer { snd_pcm_hw_params_free(hw) }
        func check(_ rc: Int32, _ call: String, _ detail: @autoclosure () -> String, parameter: String? = nil) throws(ALSAError) {
            guard rc < 0 else { return }
            throw ALSAError(kind: parameter.map { .refusedParameter($0) } ?? .failed, device: name, stream: stream, call: call,
                            errno: Errno(-rc), detail: detail())
        }
        try check(snd_pcm_hw_params_any(pcm, hw), "snd_pcm_hw_params_any", "cannot read the device's capabilities")
        _ = snd_pcm_hw_params_set_rate_resample(pcm, hw, 0)
        try check(snd_pcm_hw_params_set_access(pcm, hw, SND_PCM_ACCESS_RW_INTERLEAVED), "snd_pcm_hw_params_set_access",
                  "refused interleaved read/write access", parameter: "access")

        let supportedFormats = PCMSampleFormat.allCases.filter { snd_pcm_hw_params_test_format(pcm, hw, $0.alsa) == 0 }
        guard let format = formats.first(where: { supportedFormats.contains($0) }) else {
            throw ALSAError(kind: .refusedParameter("format"), device: name, stream: stream, call: "snd_pcm_hw_params_set_format", errno: nil,
                            detail: "refused sample formats \(formats.map(\.rawValue).joined(separator: ", ")); it supports \(supportedFormats.isEmpty ? "none of the firmware's formats" : supportedFormats.map(\.rawValue).joined(separator: ", "))")
        }
        try check(snd_pcm_hw_params_set_format(pcm, hw, format.alsa), "snd_pcm_hw_params_set_format",
                  "refused format \(format.rawValue)", parameter: "format")

        var minChannels: UInt32 = 0, maxChannels: UInt32 = 0
        _ = snd_pcm_hw_params_get_channels_min(hw, &minChannels)
        _ = snd_pcm_hw_params_get_channels_max(hw, &maxChannels)
        try check(snd_pcm_hw_params_set_channels(pcm, hw, UInt32(channels)), "snd_pcm_hw_params_set_channels",
                  "refused \(channels) channel(s); it supports \(minChannels)...\(maxChannels); fix the board profile's \(stream == .capture ? "capture_channels" : "playback_channels")",
                  parameter: "channels")

        guard let rate = rates.first(where: { snd_pcm_hw_params_test_rate(pcm, hw, UInt32($0), 0) == 0 }) else {
            let offered = PCMDevice.commonRates.filter { snd_pcm_hw_params_test_rate(pcm, hw, UInt32($0), 0) == 0 }
            throw ALSAError(kind: .refusedParameter("rate"), device: name, stream: stream, call: "snd_pcm_hw_params_set_rate", errno: nil,
                            detail: "refused rate \(rates.map { "\($0) Hz" }.joined(separator: " and ")); it supports \(offered.isEmpty ? "no common rate" : offered.map { "\($0) Hz" }.joined(separator: ", "))")
        }
        try check(snd_pcm_hw_params_set_rate(pcm, hw, UInt32(rate), 0), "snd_pcm_hw_params_set_rate", "refused rate \(rate) Hz", parameter: "rate")

        // `periodFrames` is given for the first rate; at another rate the period keeps its duration.
        let scaledPeriod = periodFrames * rate / rates[0]
        var period = snd_pcm_uframes_t(scaledPeriod)
        var direction: Int32 = 0
        try check(snd_pcm_hw_params_set_period_size_near(pcm, hw, &period, &direction), "snd_pcm_hw_params_set_period_size_near",
                  "refused a period of \(scaledPeriod) frames", parameter: "period")
        var buffer = snd_pcm_uframes_t(Int(period) * bufferPeriods)
        try check(snd_pcm_hw_params_set_buffer_size_near(pcm, hw, &buffer), "snd_pcm_hw_params_set_buffer_size_near",
                  "refused a buffer of \(Int(period) * bufferPeriods) frames", parameter: "buffer")
        try check(snd_pcm_hw_params(pcm, hw), "snd_pcm_hw_params", "refused the combination rate \(rate) Hz, \(channels) channel(s), \(format.rawValue), period \(period), buffer \(buffer)")
        _ = snd_pcm_hw_params_get_period_size(hw, &period, &direction)
        _ = snd_pcm_hw_params_get_buffer_size(hw, &buffer)

        var swPointer: OpaquePointer?
        guard snd_pcm_sw_params_malloc(&swPointer) >= 0, let sw = swPointer else {
            throw ALSAError(kind: .failed, device: name, stream: stream, call: "snd_pcm_sw_params_malloc", errno: Errno(ENOMEM), detail: "out of memory")
        }
        defer { snd_pcm_sw_params_free(sw) }
        try check(snd_pcm_sw_params_current(pcm, sw), "snd_pcm_sw_params_current", "cannot read software parameters")
        // Playback starts once two periods are queued (one to play, one in reserve); capture at once.
        let start = stream == .playback ? min(buffer, period * 2) : 1
        try check(snd_pcm_sw_params_set_start_threshold(pcm, sw, start), "snd_pcm_sw_params_set_start_threshold", "refused the start threshold")
        try check(snd_pcm_sw_params_set_avail_min(pcm, sw, period), "snd_pcm_sw_params_set_avail_min", "refused the wake-up threshold")
        try check(snd_pcm_sw_params_set_tstamp_mode(pcm, sw, SND_PCM_TSTAMP_ENABLE), "snd_pcm_sw_params_set_tstamp_mode", "refused timestamps")
        _ = snd_pcm_sw_params_set_tstamp_type(pcm, sw, SND_PCM_TSTAMP_TYPE_MONOTONIC)
        try check(snd_pcm_sw_params(pcm, sw), "snd_pcm_sw_params", "refused the software parameters")
        try check(snd_pcm_prepare(pcm), "snd_pcm_prepare", "cannot be prepared")
        return PCMConfiguration(rate: rate, channels: channels, format: format, periodFrames: Int(period), bufferFrames: Int(buffer))
    }

    /// Rates probed when reporting what a device supports.
    public static let commonRates = [8000, 16000, 22050, 32000, 44100, 48000, 88200, 96000, 192000]

    // MARK: Real-time operations (no allocation, no lock)

    /// Reads up to `frames` interleaved frames; returns the count read or a negative errno (`-EPIPE`
    /// overrun, `-ESTRPIPE` suspended, `-ENODEV` gone, `-EAGAIN` nothing yet on non-blocking devices).
    @inline(__always)
    public func read(into buffer: UnsafeMutableRawPointer, frames: Int) -> Int {
        Int(snd_pcm_readi(handle, buffer, snd_pcm_uframes_t(frames)))
    }

    /// Writes up to `frames` interleaved frames; returns the count written or a negative errno.
    @inline(__always)
    public func write(from buffer: UnsafeRawPointer, frames: Int) -> Int {
        Int(snd_pcm_writei(handle, buffer, snd_pcm_uframes_t(frames)))
    }

    /// Brings the device back after an xrun (`-EPIPE`) or a suspend (`-ESTRPIPE`); returns 0 when it
    /// runs again, or the negative errno that could not be recovered (`-ENODEV`: reopen it later).
    public func recover(from error: Int) -> Int {
        Int(snd_pcm_recover(handle, Int32(truncatingIfNeeded: error), 1))
    }

    /// Starts a capture device (playback starts by itself at its threshold).
    public func start() -> Int { Int(snd_pcm_start(handle)) }

    /// Drops pending frames and stops.
    public func drop() { _ = snd_pcm_drop(handle) }

    /// The device's current timestamp and delay, or nil when the device cannot say.
    @inline(__always)
    public func timestamp() -> PCMTimestamp? {
        guard snd_pcm_status(handle, status) >= 0 else { return nil }
        var time = timespec()
        snd_pcm_status_get_htstamp(status, &time)
        return PCMTimestamp(nanoseconds: Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec),
                            delayFrames: Int(snd_pcm_status_get_delay(status)),
                            availableFrames: Int(snd_pcm_status_get_avail(status)))
    }
}
