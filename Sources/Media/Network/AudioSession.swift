import Synchronization
import Devices
#if canImport(Glibc)
internal import Glibc
#endif

/// How one direct-mode audio session runs: codec, jitter-buffer bounds and transport security.
public struct AudioSessionSettings: Sendable, Equatable {
    /// The encoder's settings (frame length, bit rate, complexity, music).
    public var opus: OpusSettings
    /// Smallest jitter-buffer target in ms.
    public var jitterMinMs: Int
    /// Largest jitter-buffer target in ms.
    public var jitterMaxMs: Int
    /// The 30-byte SRTP master key and salt (AES_CM_128_HMAC_SHA1_80); nil: plain RTP.
    public var srtpMaster: [UInt8]?
    /// RTP payload type of Opus.
    public var payloadType: UInt8 = 111
    /// The SRTP profile `srtpMaster` is for (its key, then its 14- or 12-byte salt).
    public var srtpProfile: SRTPProfile = .aes128CmHmacSha1_80
    /// The box's RTCP canonical name, sent in every compound RTCP packet (RFC 3550 §6.1).
    public var cname: String = "classbox"

    /// Settings from their parts.
    public init(opus: OpusSettings, jitterMinMs: Int, jitterMaxMs: Int, srtpMaster: [UInt8]?) {
        self.opus = opus
        self.jitterMinMs = jitterMinMs
        self.jitterMaxMs = jitterMaxMs
        self.srtpMaster = srtpMaster
    }
}

/// Why a session could not be made: the codec or the key.
public enum AudioSessionError: Error, Sendable, CustomStringConvertible {
    /// libopus refused the settings.
    case codec(OpusError)
    /// The SRTP key is not 30 bytes of key and salt.
    case key(SRTPError)

    public var description: String {
        switch self {
        case .codec(let e): return "Opus: \(e.description); check media.bitrate and media.frame_ms"
        case .key: return "SRTP: media.srtp_key must be 30 bytes (16 key + 14 salt; 28 with 12 for AEAD_AES_128_GCM) in base64"
        }
    }
}

/// One peer's audio in a direct-mode lesson: our microphone out as Opus RTP/SRTP, the peer's stream
/// in through a jitter buffer (FEC, PLC), RTCP sender/receiver reports both ways (the loss the peer
/// reports sets our encoder's FEC; round-trip time measured), and the peer's clock drift against our
/// loudspeaker's followed by a resampler so its stream neither starves nor floods the jitter buffer.
/// Every method except `snapshot` and `setRemote` runs on the lesson's network thread; after `init`,
/// packets and frames allocate nothing (an RTCP report once a second does, off the audio threads).
public final class AudioSession: @unchecked Sendable {
    // @unchecked: only the network thread touches the mutable state; `remote` is atomic.

    /// The peer's id (from the configuration).
    public let peerID: String
    private let remote = Atomic<UInt64>(0)
    let sender: AudioStreamSender
    let receiver: AudioStreamReceiver
    private let outbound: SRTPContext?
    private let inbound: SRTPContext?
    let frameSamples: Int
    let rate: Int

    // RTCP state.
    private let cname: String
    private(set) var peerCname: String?
    private var lastSRMiddle: UInt32 = 0
    private var lastSRArrival: Double = 0
    private(set) var roundTrip: Double?
    private(set) var peerLossPercent = 0
    private(set) var peerJitterMs = 0.0
    private(set) var rtcpReceived = 0
    private(set) var rtcpRefused = 0
    private(set) var lostReported: Int32 = 0

    // Playout: jitter buffer -> resampler (drift) -> chunks for the mixer.
    private let senderClock: ClockRateEstimator
    private var clockSSRC: UInt32 = 0
    private(set) var senderDriftPPM: Double?
    private(set) var resampleStep = 1.0
    var resampler = AdaptiveResampler(capacity: 16384)
    let decoded: UnsafeMutablePointer<Float>
    /// What this peer contributed to the loudspeaker, kept for the other peer's mix (a lead with two
    /// rooms sends each room the other's voice too).
    let returned: SPSCRing
    private(set) var frames: (decoded: Int, recovered: Int, concealed: Int, silence: Int) = (0, 0, 0, 0)

    /// A session with `peerID`, sending through the lesson's shared socket once `setRemote` gave an address.
    public init(peerID: String, settings: AudioSessionSettings, socket: UDPSocket, ssrc: UInt32) throws(AudioSessionError) {
        self.peerID = peerID
        cname = settings.cname
        let encoder: OpusEncoder, decoder: OpusDecoder
        do {
            encoder = try OpusEncoder(settings: settings.opus)
            decoder = try OpusDecoder(rate: settings.opus.rate, channels: 1)
        } catch { throw .codec(error) }
        if let master = settings.srtpMaster {
            let profile = settings.srtpProfile
            guard master.count == profile.keyLength + profile.saltLength else { throw .key(.badKey) }
            do {
                outbound = try SRTPContext(profile: profile, masterKey: Array(master[0..<16]), masterSalt: Array(master[16...]))
                inbound = try SRTPContext(profile: profile, masterKey: Array(master[0..<16]), masterSalt: Array(master[16...]))
            } catch { throw .key(error) }
        } else {
            outbound = nil
            inbound = nil
        }
        frameSamples = settings.opus.frameSamples
        rate = settings.opus.rate
        sender = AudioStreamSender(encoder: encoder, socket: socket, srtp: outbound, payloadType: settings.payloadType, ssrc: ssrc,
                                   initialSequence: UInt16(truncatingIfNeeded: ssrc >> 7), initialTimestamp: ssrc &* 2654435761)
        let buffer = JitterBuffer(decoder: decoder, frameSamples: frameSamples, minDelayMs: settings.jitterMinMs,
                                  maxDelayMs: settings.jitterMaxMs)
        receiver = AudioStreamReceiver(srtp: inbound, jitterBuffer: buffer, clockRate: rate)
        senderClock = ClockRateEstimator(nominalRate: rate, capacity: 3000)  // 60 s of 20 ms packets
        decoded = .allocate(capacity: frameSamples)
        decoded.initialize(repeating: 0, count: frameSamples)
        returned = SPSCRing(minimumCapacity: rate / 2)
    }

    deinit { decoded.deallocate() }

    /// Sets (or clears) the peer's RTP address; RTCP goes to the next port. Any thread.
    public func setRemote(_ address: UDPAddress?) { remote.store(address?.packed ?? 0, ordering: .releasing) }

    /// The peer's RTP address, nil until resolved.
    public var remoteAddress: UDPAddress? { UDPAddress(packed: remote.load(ordering: .acquiring)) }

    // MARK: Network thread

    /// Encodes and sends one frame to the peer (nothing while its address is unknown).
    func send(_ pcm: UnsafeBufferPointer<Float>) {
        guard let address = remoteAddress else { return }
        sender.destination = address
        sender.send(pcm)
    }

    /// Handles one RTP datagram from the peer.
    func acceptRTP(_ datagram: UnsafeMutableRawBufferPointer, length: Int, now: Double, nanoseconds: Int64) {
        guard receiver.accept(datagram, length: length, now: now) == 1 else { return }
        if receiver.remoteSSRC != clockSSRC {
            clockSSRC = receiver.remoteSSRC
            senderClock.reset()
        }
        senderClock.add(nanoseconds: nanoseconds, position: Double(receiver.extendedTimestamp))
    }

    /// Handles one RTCP datagram from the peer: its sender report (for our RTT) and its report on us
    /// (loss, which sets the encoder's expected loss and so its in-band FEC).
    func acceptRTCP(_ datagram: UnsafeMutableRawBufferPointer, length: Int, now: Double) {
        var plain = length
        if let inbound {
            do { plain = try inbound.unprotectRTCP(datagram, length: length) } catch { rtcpRefused += 1; return }
        }
        let reports: [RTCPReport]
        do { reports = try RTCPReport.parseCompound(UnsafeRawBufferPointer(rebasing: datagram[0..<plain])) } catch {
            rtcpRefused += 1
            return
        }
        rtcpReceived += 1
        if let name = (try? RTCPExtras.parse(UnsafeRawBufferPointer(rebasing: datagram[0..<plain])))?.descriptions.first?.cname {
            peerCname = name
        }
        for report in reports {
            if let info = report.sender {
                lastSRMiddle = UInt32(truncatingIfNeeded: info.ntp >> 16)
                lastSRArrival = now
            }
            for block in report.blocks where block.ssrc == sender.ssrc {
                peerLossPercent = block.lossPercent
                peerJitterMs = Double(block.jitter) * 1000 / Double(rate)
                lostReported = block.cumulativeLost
                sender.encoder.setExpectedLoss(percent: block.lossPercent)
                if let rtt = block.roundTrip(arrivalMiddle32: ntpMiddle32(ntpNow())) { roundTrip = rtt }
            }
        }
    }

    /// Writes this session's compound RTCP packet (SR, with a report block on the peer's stream once it
    /// is heard) into `buffer`; returns its length, 0 when there is nothing to say yet.
    func makeRTCP(into buffer: UnsafeMutableRawBufferPointer, now: Double) -> Int {
        var blocks: [RTCPReportBlock] = []
        if receiver.remoteSSRC != 0 {
            let delay = lastSRMiddle == 0 ? 0 : UInt32(max(0, (now - lastSRArrival) * 65536))
            blocks.append(receiver.reportBlock(lastSR: lastSRMiddle, delaySinceLastSR: delay))
        }
        let ntp = ntpNow()
        let info = RTCPReport.SenderInfo(ntp: ntp, rtpTimestamp: sender.timestamp, packetCount: sender.packets, octetCount: sender.octets)
        let report = RTCPReport(ssrc: sender.ssrc, sender: info, blocks: blocks)
        guard var length = report.write(into: buffer) else { return 0 }
        // RFC 3550 §6.1: every compound packet carries an SDES with the CNAME.
        guard let sdes = RTCPSourceDescription(ssrc: sender.ssrc, cname: cname)
            .write(into: UnsafeMutableRawBufferPointer(rebasing: buffer[length...])) else { return 0 }
        length += sdes
        if let outbound {
            do { length = try outbound.protectRTCP(buffer, length: length) } catch { return 0 }
        }
        return length
    }

    /// Pulls one jitter-buffer frame into the resampler.
    func pullFrame() {
        let result = receiver.jitterBuffer.pull(into: UnsafeMutableBufferPointer(start: decoded, count: frameSamples))
        switch result {
        case .decoded: frames.decoded += 1
        case .recovered: frames.recovered += 1
        case .concealed: frames.concealed += 1
        case .silence: frames.silence += 1
        }
        resampler.push(UnsafeBufferPointer(start: decoded, count: frameSamples))
    }

    /// Follows the peer's clock against our loudspeaker's (`playbackPPM`, nil when unknown): called once a
    /// second. A sender whose clock runs fast is played slightly faster, so the buffer stays level.
    func updateDrift(playbackPPM: Double?) {
        guard let sender = senderClock.ppm(), senderClock.span >= 10 else { return }
        senderDriftPPM = sender
        let relative = sender - (playbackPPM ?? 0)
        guard abs(relative) < 1000 else { return }
        resampleStep = 1 + relative * 1e-6
        resampler.step = resampleStep
    }

    // MARK: Reports

    /// The session's counters (call from the network thread; the pump publishes them).
    func makeSnapshot(now: Double) -> AudioSessionSnapshot {
        let stats = receiver.statistics
        var snapshot = AudioSessionSnapshot(
            peer: peerID, remote: remoteAddress?.description,
            secondsSinceLastPacket: receiver.lastArrival.map { now - $0 },
            packetsSent: Int(sender.packets), sendFailures: sender.failures,
            packetsReceived: Int(stats.received), packetsLost: Int(stats.cumulativeLost), refused: receiver.refused,
            interarrivalJitterMs: stats.jitter * 1000 / Double(rate),
            jitterBuffer: receiver.jitterBuffer.statistics,
            framesDecoded: frames.decoded, framesRecovered: frames.recovered, framesConcealed: frames.concealed,
            framesSilent: frames.silence,
            roundTripMs: roundTrip.map { $0 * 1000 }, peerReportedLossPercent: peerLossPercent,
            peerReportedJitterMs: peerJitterMs, peerReportedLost: Int(lostReported),
            rtcpReceived: rtcpReceived, rtcpRefused: rtcpRefused,
            senderDriftPPM: senderDriftPPM, resampleStep: resampleStep)
        snapshot.peerCname = peerCname
        return snapshot
    }
}

/// One peer's audio counters at one moment: for the lesson summary, `diagnose` and health reports.
public struct AudioSessionSnapshot: Sendable, Codable, Equatable {
    /// The peer's id and address.
    public var peer: String, remote: String?
    /// Seconds since its last packet; nil before the first.
    public var secondsSinceLastPacket: Double?
    /// Our packets sent, and frames the encoder or the network refused.
    public var packetsSent, sendFailures: Int
    /// The peer's packets received and lost (RTP sequence accounting), and datagrams refused (forged, malformed).
    public var packetsReceived, packetsLost, refused: Int
    /// RFC 3550 interarrival jitter of its stream in ms.
    public var interarrivalJitterMs: Double
    /// Its jitter buffer (depth, target, late, lost, concealed, recovered ...).
    public var jitterBuffer: JitterBufferStatistics
    /// Frames played: decoded, recovered by FEC, concealed by PLC, silent (DTX or nothing received).
    public var framesDecoded, framesRecovered, framesConcealed, framesSilent: Int
    /// Round-trip time from RTCP; nil until measured.
    public var roundTripMs: Double?
    /// What the peer reports about our stream: loss (%, sets our FEC), jitter, cumulative loss.
    public var peerReportedLossPercent: Int, peerReportedJitterMs: Double, peerReportedLost: Int
    /// RTCP packets received and refused.
    public var rtcpReceived, rtcpRefused: Int
    /// The peer's clock against our monotonic clock in ppm (nil until 10 s measured), and the playout
    /// resampler's step (1 + relative drift).
    public var senderDriftPPM: Double?, resampleStep: Double
    /// The peer's CNAME from its RTCP SDES, once heard.
    public var peerCname: String? = nil
    /// True when audio arrived in the last 2 s.
    public var receiving: Bool { (secondsSinceLastPacket ?? .infinity) < 2 }
}

// MARK: Clocks

/// CLOCK_REALTIME as a 64-bit NTP timestamp (seconds since 1900, 32.32 fixed point).
func ntpNow() -> UInt64 {
    var t = timespec()
    clock_gettime(CLOCK_REALTIME, &t)
    let seconds = UInt64(t.tv_sec) + 2_208_988_800
    let fraction = (UInt64(t.tv_nsec) << 32) / 1_000_000_000
    return seconds << 32 | fraction
}

/// The middle 32 bits of an NTP timestamp, as RTCP's LSR and DLSR use.
func ntpMiddle32(_ ntp: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: ntp >> 16) }

/// CLOCK_MONOTONIC in nanoseconds.
func monotonicNanoseconds() -> Int64 {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Int64(t.tv_sec) * 1_000_000_000 + Int64(t.tv_nsec)
}
