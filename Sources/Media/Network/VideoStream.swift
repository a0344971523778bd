/// Sends the camera's encoded frames (H.264 access units or JPEG frames) as their own RTP session: its
/// own SSRC, sequence and 90 kHz timestamps, protected by SRTP unless the configuration chose plain RTP,
/// and RTCP sender reports on a second socket so the receiver can line video up with audio. `send`
/// allocates nothing once the packetizer has seen a frame.
public final class VideoStreamSender<Packetizer: VideoPacketizer> {
    private var packetizer: Packetizer
    private let socket: UDPSocket
    private let rtcpSocket: UDPSocket?
    private let srtp: SRTPContext?
    private let payloadType: UInt8
    /// The stream's synchronisation source.
    public let ssrc: UInt32
    private var sequence: UInt16
    private let timestampBase: UInt32
    private var lastTimestamp: UInt32
    private let buffer: UnsafeMutableRawBufferPointer
    /// Packets sent.
    public private(set) var packets: UInt32 = 0
    /// Payload bytes sent (RTCP's octet count).
    public private(set) var octets: UInt32 = 0
    /// Frames sent whole.
    public private(set) var frames = 0
    /// Frames the packetizer refused (the error of the last one is in `lastRefusal`).
    public private(set) var refusedFrames = 0
    /// Why the last refused frame was refused.
    public private(set) var lastRefusal: VideoPayloadError?
    /// Packets the socket or SRTP refused.
    public private(set) var failures = 0
    /// Where packets go instead of the socket's fixed peer (a lead sending to several rooms from one port).
    public var destination: UDPAddress?
    /// The RTP timestamp of the last frame sent.
    public var lastFrameTimestamp: UInt32 { lastTimestamp }

    /// The 90 kHz clock of RTP video (RFC 6184 §8.2.1, RFC 2435 §3).
    public static var clockRate: Double { 90000 }

    /// A sender; `maxPayload` of the packetizer plus 12 bytes of header and the SRTP tag must fit the path MTU.
    public init(packetizer: Packetizer, socket: UDPSocket, rtcpSocket: UDPSocket? = nil, srtp: SRTPContext?,
                payloadType: UInt8, ssrc: UInt32, initialSequence: UInt16 = 0, initialTimestamp: UInt32 = 0) {
        self.packetizer = packetizer
        self.socket = socket
        self.rtcpSocket = rtcpSocket
        self.srtp = srtp
        self.payloadType = payloadType
        self.ssrc = ssrc
        sequence = initialSequence
        timestampBase = initialTimestamp
        lastTimestamp = initialTimestamp
        buffer = .allocate(byteCount: 65536, alignment: 16)
    }

    deinit { buffer.deallocate() }

    /// The RTP timestamp of media time `seconds` (the capture time of a frame, from the stream's start).
    public func timestamp(at seconds: Double) -> UInt32 {
        timestampBase &+ UInt32(truncatingIfNeeded: Int64((seconds * Self.clockRate).rounded()))
    }

    /// Sends one encoded frame captured at media time `seconds`. A refused frame is counted (and
    /// thrown, so the caller can log it once); the next frame can be sent as usual.
    public func send(_ frame: UnsafeRawBufferPointer, at seconds: Double) throws(VideoPayloadError) {
        let ts = timestamp(at: seconds)
        lastTimestamp = ts
        // Result with an explicitly typed closure keeps the error typed on Swift 6.0.3 too (no do-catch inference).
        let result = Result { () throws(VideoPayloadError) in
            try packetizer.packetize(frame) { payload, last in
                sendPacket(payload, marker: last, timestamp: ts)
            }
        }
        switch result {
        case .success:
            frames += 1
        case .failure(let error):
            refusedFrames += 1
            lastRefusal = error
            throw error
        }
    }

    private func sendPacket(_ payload: UnsafeRawBufferPointer, marker: Bool, timestamp: UInt32) {
        let header = RTPHeader(marker: marker, payloadType: payloadType, sequence: sequence, timestamp: timestamp, ssrc: ssrc)
        sequence &+= 1
        let headerLength = header.write(into: buffer)
        guard headerLength + payload.count + 16 <= buffer.count else { failures += 1; return }
        UnsafeMutableRawBufferPointer(rebasing: buffer[headerLength..<headerLength + payload.count]).copyMemory(from: payload)
        var length = headerLength + payload.count
        if let srtp {
            do { length = try srtp.protect(buffer, length: length) } catch { failures += 1; return }
        }
        let bytes = UnsafeRawBufferPointer(rebasing: buffer[0..<length])
        let sent = destination.map { socket.send(bytes, to: $0) } ?? socket.send(bytes)
        if sent {
            packets &+= 1
            octets &+= UInt32(truncatingIfNeeded: payload.count)
        } else {
            failures += 1
        }
    }

    /// Sends an RTCP sender report for wall-clock `ntp` (NTP 32.32) and media time `seconds`; false when
    /// there is no RTCP socket or it refused the packet.
    @discardableResult
    public func sendReport(ntp: UInt64, at seconds: Double) -> Bool {
        guard let rtcpSocket else { return false }
        let report = RTCPReport(ssrc: ssrc, sender: .init(ntp: ntp, rtpTimestamp: timestamp(at: seconds), packetCount: packets,
                                                          octetCount: octets), blocks: [])
        guard var length = report.write(into: buffer) else { return false }
        if let srtp {
            do { length = try srtp.protectRTCP(buffer, length: length) } catch { failures += 1; return false }
        }
        return rtcpSocket.send(UnsafeRawBufferPointer(rebasing: buffer[0..<length]))
    }
}

/// Receives one video RTP/SRTP stream: packets are authenticated (SRTP), parsed, counted in the
/// receiver statistics and handed to the depacketizer, which delivers whole frames. Forged, replayed and
/// malformed packets are counted and dropped. Sender reports on the optional RTCP socket are read for
/// their timestamps (the lead lines video up with audio and measures round trips from them).
public final class VideoStreamReceiver {
    private let socket: UDPSocket
    private let rtcpSocket: UDPSocket?
    private let srtp: SRTPContext?
    /// The depacketizer frames are rebuilt with.
    public let depacketizer: any VideoDepacketizer
    /// RTP receiver statistics of the stream (for RTCP receiver reports).
    public private(set) var statistics = RTPReceiverStatistics()
    /// Datagrams refused before depacketizing: failed authentication, replayed, not RTP.
    public private(set) var refused = 0
    /// The last sender report received, if any.
    public private(set) var lastSenderReport: RTCPReport?
    private let buffer: UnsafeMutableRawBufferPointer

    /// A receiver reading `socket` (and sender reports on `rtcpSocket`), decrypting with `srtp` (nil: plain RTP).
    public init(socket: UDPSocket, rtcpSocket: UDPSocket? = nil, srtp: SRTPContext?, depacketizer: any VideoDepacketizer) {
        self.socket = socket
        self.rtcpSocket = rtcpSocket
        self.srtp = srtp
        self.depacketizer = depacketizer
        buffer = .allocate(byteCount: 65536, alignment: 16)
    }

    deinit { buffer.deallocate() }

    /// Reads one datagram, waiting up to `timeoutMs`; `now` is the local time in seconds. Calls
    /// `deliver` for each frame it completes. Returns 1 when a packet was accepted, else 0.
    @discardableResult
    public func poll(timeoutMs: Int32, now: Double, deliver: (ReceivedVideoFrame) -> Void) -> Int {
        if let rtcpSocket { pollReports(rtcpSocket) }
        let n = socket.receive(into: buffer, timeoutMs: timeoutMs)
        guard n > 0 else { return 0 }
        var length = n
        if let srtp {
            do { length = try srtp.unprotect(buffer, length: n) } catch { refused += 1; return 0 }
        }
        let header: RTPHeader
        do { header = try RTPHeader.parse(UnsafeRawBufferPointer(rebasing: buffer[0..<length])) } catch { refused += 1; return 0 }
        statistics.record(sequence: header.sequence, timestamp: header.timestamp, arrival: now * 90000)
        depacketizer.push(header: header,
                          payload: UnsafeRawBufferPointer(rebasing: buffer[header.payloadOffset..<header.payloadOffset + header.payloadLength]),
                          deliver: deliver)
        return 1
    }

    private func pollReports(_ rtcpSocket: UDPSocket) {
        let n = rtcpSocket.receive(into: buffer, timeoutMs: 0)
        guard n > 0 else { return }
        var length = n
        if let srtp {
            do { length = try srtp.unprotectRTCP(buffer, length: n) } catch { refused += 1; return }
        }
        do {
            let reports = try RTCPReport.parseCompound(UnsafeRawBufferPointer(rebasing: buffer[0..<length]))
            if let sr = reports.first(where: { $0.sender != nil }) { lastSenderReport = sr }
        } catch {
            refused += 1
        }
    }
}
