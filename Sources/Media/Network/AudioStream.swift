/// Sends the box's audio as Opus in RTP (RFC 7587), protected by SRTP unless the configuration chose
/// plain RTP: one packet per Opus frame, sequence and timestamp wrapping as RTP wants, the marker on the
/// first packet of a talkspurt. `send` allocates nothing.
public final class AudioStreamSender {
    /// The encoder (its expected loss follows the receiver's reports).
    public let encoder: OpusEncoder
    private let socket: UDPSocket
    /// Where packets go when the socket is shared by several peers; nil: the socket's own peer.
    public var destination: UDPAddress?
    private let srtp: SRTPContext?
    private let payloadType: UInt8
    /// The stream's synchronisation source.
    public let ssrc: UInt32
    private var sequence: UInt16
    /// The RTP timestamp of the next frame (for sender reports).
    public private(set) var timestamp: UInt32
    private var first = true
    private let buffer: UnsafeMutableRawBufferPointer
    /// Packets sent.
    public private(set) var packets: UInt32 = 0
    /// Payload bytes sent.
    public private(set) var octets: UInt32 = 0
    /// Frames the encoder or the socket refused.
    public private(set) var failures = 0

    /// A sender encoding with `encoder` and sending through `socket`.
    public init(encoder: OpusEncoder, socket: UDPSocket, srtp: SRTPContext?, payloadType: UInt8 = 111, ssrc: UInt32,
                initialSequence: UInt16 = 0, initialTimestamp: UInt32 = 0) {
        self.encoder = encoder
        self.socket = socket
        self.srtp = srtp
        self.payloadType = payloadType
        self.ssrc = ssrc
        sequence = initialSequence
        timestamp = initialTimestamp
        buffer = .allocate(byteCount: 1500, alignment: 16)
    }

    deinit { buffer.deallocate() }

    /// Encodes one frame (`encoder.settings.frameSamples` samples) and sends it.
    public func send(_ pcm: UnsafeBufferPointer<Float>) {
        let header = RTPHeader(marker: first, payloadType: payloadType, sequence: sequence, timestamp: timestamp, ssrc: ssrc)
        let headerLength = header.write(into: buffer)
        let room = 1500 - headerLength - (srtp?.profile.rtpOverhead ?? 0)
        let bytes = encoder.encode(pcm, into: UnsafeMutableRawBufferPointer(rebasing: buffer[headerLength..<headerLength + room]))
        sequence &+= 1
        timestamp &+= UInt32(encoder.settings.frameSamples)
        guard bytes > 0 else { failures += 1; return }
        first = false
        var length = headerLength + bytes
        if let srtp {
            do { length = try srtp.protect(buffer, length: length) } catch { failures += 1; return }
        }
        let bytesOut = UnsafeRawBufferPointer(rebasing: buffer[0..<length])
        let sent: Bool
        if let destination { sent = socket.send(bytesOut, to: destination) } else { sent = socket.send(bytesOut) }
        if sent {
            packets &+= 1
            octets &+= UInt32(bytes)
        } else {
            failures += 1
        }
    }
}

/// Receives one Opus RTP/SRTP stream into a jitter buffer: packets are authenticated (SRTP), parsed,
/// counted in the receiver statistics and offered to the jitter buffer; malformed, forged and replayed
/// packets are counted and dropped. Call `poll` from the network thread and `jitterBuffer.pull` from
/// the playback side of the same thread (the buffer is not shared across threads).
public final class AudioStreamReceiver {
    private let socket: UDPSocket?
    private let srtp: SRTPContext?
    /// The stream's jitter buffer.
    public let jitterBuffer: JitterBuffer
    /// RTP receiver statistics of the stream (for RTCP receiver reports).
    public private(set) var statistics = RTPReceiverStatistics()
    /// Datagrams refused: not RTP, failed authentication, replayed.
    public private(set) var refused = 0
    private let buffer: UnsafeMutableRawBufferPointer
    private let clockRate: Double
    /// The synchronisation source of the last packet accepted (0: none yet).
    public private(set) var remoteSSRC: UInt32 = 0
    /// The local time (seconds) of the last packet accepted, nil before the first.
    public private(set) var lastArrival: Double?
    /// The last packet's RTP timestamp extended to 64 bits (for the sender's clock rate).
    public private(set) var extendedTimestamp: Int64 = 0

    /// A receiver fed datagrams by its caller (`accept`), for sockets shared by several streams.
    public convenience init(srtp: SRTPContext?, jitterBuffer: JitterBuffer, clockRate: Int = 48000) {
        self.init(socket: nil, srtp: srtp, jitterBuffer: jitterBuffer, clockRate: clockRate)
    }

    /// A receiver reading `socket`, decrypting with `srtp` (nil: plain RTP), into `jitterBuffer`.
    public init(socket: UDPSocket?, srtp: SRTPContext?, jitterBuffer: JitterBuffer, clockRate: Int = 48000) {
        self.socket = socket
        self.srtp = srtp
        self.jitterBuffer = jitterBuffer
        self.clockRate = Double(clockRate)
        buffer = .allocate(byteCount: 2048, alignment: 16)
    }

    deinit { buffer.deallocate() }

    /// Reads datagrams for up to `timeoutMs`, stopping after the first one; `now` is the local time in
    /// seconds. Returns the number of packets accepted (0 or 1).
    @discardableResult
    public func poll(timeoutMs: Int32, now: Double) -> Int {
        guard let socket else { return 0 }
        let n = socket.receive(into: buffer, timeoutMs: timeoutMs)
        guard n > 0 else { return 0 }
        return accept(buffer, length: n, now: now)
    }

    /// Handles one datagram of `length` bytes in `datagram` (decrypted in place); `now` is the local time
    /// in seconds. Returns the number of packets accepted into the jitter buffer (0 or 1).
    @discardableResult
    public func accept(_ datagram: UnsafeMutableRawBufferPointer, length n: Int, now: Double) -> Int {
        var length = n
        if let srtp {
            do { length = try srtp.unprotect(datagram, length: n) } catch { refused += 1; return 0 }
        }
        let header: RTPHeader
        do { header = try RTPHeader.parse(UnsafeRawBufferPointer(rebasing: datagram[0..<length])) } catch { refused += 1; return 0 }
        statistics.record(sequence: header.sequence, timestamp: header.timestamp, arrival: now * clockRate)
        if lastArrival == nil || header.ssrc != remoteSSRC {
            extendedTimestamp = Int64(header.timestamp)
        } else {
            extendedTimestamp += Int64(Int32(bitPattern: header.timestamp &- UInt32(truncatingIfNeeded: extendedTimestamp)))
        }
        remoteSSRC = header.ssrc
        lastArrival = now
        let payload = UnsafeRawBufferPointer(rebasing: datagram[header.payloadOffset..<header.payloadOffset + header.payloadLength])
        return jitterBuffer.insert(payload: payload, sequence: header.sequence, timestamp: header.timestamp, arrival: now) == .accepted ? 1 : 0
    }

    /// The report block on this stream for the next RTCP report (starts a new fraction-lost interval).
    public func reportBlock(lastSR: UInt32, delaySinceLastSR: UInt32) -> RTCPReportBlock {
        statistics.reportBlock(ssrc: remoteSSRC, lastSR: lastSR, delaySinceLastSR: delaySinceLastSR)
    }
}
