internal import COpus

/// An Opus call failed; `code` is libopus's error (OPUS_BAD_ARG, OPUS_BUFFER_TOO_SMALL, ...).
public struct OpusError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The libopus function that failed.
    public var call: String
    /// libopus's error code.
    public var code: Int32
    public var description: String { "\(call): \(String(cString: opus_strerror(code))) (\(code))" }
}

/// How the box encodes its audio.
public struct OpusSettings: Sendable, Equatable {
    /// Sample rate; Opus runs at 48 kHz end to end here.
    public var rate: Int = 48000
    /// 1 (speech) or 2 (music lessons).
    public var channels: Int = 1
    /// Frame length in milliseconds: 10 or 20.
    public var frameMs: Int = 20
    /// Target bit rate in bits per second.
    public var bitrate: Int = 32000
    /// Encoder complexity 0-10, from the board profile (a Pi 4 is not an x86 core).
    public var complexity: Int = 5
    /// In-band forward error correction (LBRR), useful when the receiver reports loss.
    public var inbandFEC: Bool = true
    /// Music instead of voice (full band, no voice tuning).
    public var music: Bool = false
    /// OPUS_APPLICATION_RESTRICTED_LOWDELAY instead of VoIP: 2.5 ms of encoder look-ahead instead of
    /// 6.5 ms, but CELT only, so no in-band FEC (lost packets are concealed, never recovered).
    public var lowDelay: Bool = false

    /// Settings with the defaults above.
    public init() {}

    /// Samples per channel in one frame.
    public var frameSamples: Int { rate * frameMs / 1000 }
}

/// The Opus encoder (RFC 6716) as the box uses it: VoIP application for speech, audio for music,
/// in-band FEC driven by the loss the receiver reports. `encode` allocates nothing.
public final class OpusEncoder {
    private let handle: OpaquePointer
    /// The settings it was created with (bit rate and expected loss change at run time).
    public let settings: OpusSettings

    /// An encoder for `settings`.
    public init(settings: OpusSettings) throws(OpusError) {
        var error: Int32 = 0
        let application = settings.lowDelay ? OPUS_APPLICATION_RESTRICTED_LOWDELAY
            : settings.music ? OPUS_APPLICATION_AUDIO : OPUS_APPLICATION_VOIP
        guard let encoder = opus_encoder_create(Int32(settings.rate), Int32(settings.channels), application, &error), error == OPUS_OK else {
            throw OpusError(call: "opus_encoder_create", code: error)
        }
        handle = encoder
        self.settings = settings
        try check(cb_opus_set_bitrate(handle, Int32(settings.bitrate)), "OPUS_SET_BITRATE")
        try check(cb_opus_set_complexity(handle, Int32(settings.complexity)), "OPUS_SET_COMPLEXITY")
        try check(cb_opus_set_inband_fec(handle, settings.inbandFEC && !settings.lowDelay ? 1 : 0), "OPUS_SET_INBAND_FEC")
        try check(cb_opus_set_signal(handle, settings.music ? cb_OPUS_SIGNAL_MUSIC() : cb_OPUS_SIGNAL_VOICE()), "OPUS_SET_SIGNAL")
        if settings.music { try check(cb_opus_set_bandwidth(handle, cb_OPUS_BANDWIDTH_FULLBAND()), "OPUS_SET_BANDWIDTH") }
    }

    deinit { opus_encoder_destroy(handle) }

    private func check(_ rc: Int32, _ call: String) throws(OpusError) {
        guard rc == OPUS_OK else { throw OpusError(call: call, code: rc) }
    }

    /// Encodes one frame (`settings.frameSamples` × channels interleaved samples) into `packet`;
    /// returns the packet's length in bytes, or a negative libopus error.
    @inline(__always)
    public func encode(_ pcm: UnsafeBufferPointer<Float>, into packet: UnsafeMutableRawBufferPointer) -> Int {
        guard let samples = pcm.baseAddress, let out = packet.baseAddress else { return Int(OPUS_BAD_ARG) }
        return Int(opus_encode_float(handle, samples, Int32(pcm.count / settings.channels),
                                     out.assumingMemoryBound(to: UInt8.self), Int32(packet.count)))
    }

    /// Tells the encoder how much loss to protect against (the receiver's RTCP report), 0-100 %.
    public func setExpectedLoss(percent: Int) {
        _ = cb_opus_set_packet_loss_perc(handle, Int32(max(0, min(100, percent))))
    }

    /// Changes the bit rate.
    public func setBitrate(_ bitsPerSecond: Int) { _ = cb_opus_set_bitrate(handle, Int32(bitsPerSecond)) }

    /// Samples of look-ahead the encoder adds to the path's latency.
    public var lookahead: Int {
        var value: Int32 = 0
        _ = cb_opus_get_lookahead(handle, &value)
        return Int(value)
    }
}

/// The Opus decoder with packet-loss concealment and in-band FEC recovery. `decode` and `conceal`
/// allocate nothing.
public final class OpusDecoder {
    private let handle: OpaquePointer
    /// Output sample rate.
    public let rate: Int
    /// Output channels.
    public let channels: Int

    /// A decoder producing `channels` at `rate`.
    public init(rate: Int = 48000, channels: Int = 1) throws(OpusError) {
        var error: Int32 = 0
        guard let decoder = opus_decoder_create(Int32(rate), Int32(channels), &error), error == OPUS_OK else {
            throw OpusError(call: "opus_decoder_create", code: error)
        }
        handle = decoder
        self.rate = rate
        self.channels = channels
    }

    deinit { opus_decoder_destroy(handle) }

    /// Decodes `packet` into `pcm`; with `fec`, decodes the *previous* (lost) frame from this packet's
    /// redundancy instead. Returns samples per channel, or a negative libopus error (a malformed packet).
    @inline(__always)
    public func decode(_ packet: UnsafeRawBufferPointer, into pcm: UnsafeMutableBufferPointer<Float>, fec: Bool = false) -> Int {
        guard let out = pcm.baseAddress else { return Int(OPUS_BAD_ARG) }
        return Int(opus_decode_float(handle, packet.baseAddress?.assumingMemoryBound(to: UInt8.self), Int32(packet.count), out,
                                     Int32(pcm.count / channels), fec ? 1 : 0))
    }

    /// Conceals a lost frame of `pcm.count / channels` samples (packet-loss concealment).
    @inline(__always)
    public func conceal(into pcm: UnsafeMutableBufferPointer<Float>) -> Int {
        guard let out = pcm.baseAddress else { return Int(OPUS_BAD_ARG) }
        return Int(opus_decode_float(handle, nil, 0, out, Int32(pcm.count / channels), 0))
    }
}
