/// One reception report block (RFC 3550 §6.4.1): what a receiver says about one source.
public struct RTCPReportBlock: Sendable, Equatable {
    /// The source reported on.
    public var ssrc: UInt32
    /// Fraction lost since the previous report, 8-bit fixed point (256 = all).
    public var fractionLost: UInt8
    /// Cumulative packets lost (24 bits, signed).
    public var cumulativeLost: Int32
    /// Extended highest sequence number received.
    public var extendedHighestSequence: UInt32
    /// Interarrival jitter in timestamp units.
    public var jitter: UInt32
    /// Middle 32 bits of the NTP timestamp of the last SR received from the source (0: none).
    public var lastSR: UInt32
    /// Delay since that SR, in units of 1/65536 s.
    public var delaySinceLastSR: UInt32

    /// A report block from its fields.
    public init(ssrc: UInt32, fractionLost: UInt8, cumulativeLost: Int32, extendedHighestSequence: UInt32, jitter: UInt32,
                lastSR: UInt32, delaySinceLastSR: UInt32) {
        self.ssrc = ssrc
        self.fractionLost = fractionLost
        self.cumulativeLost = cumulativeLost
        self.extendedHighestSequence = extendedHighestSequence
        self.jitter = jitter
        self.lastSR = lastSR
        self.delaySinceLastSR = delaySinceLastSR
    }

    /// Loss in percent, as Opus's expected-loss setting wants it.
    public var lossPercent: Int { (Int(fractionLost) * 100 + 128) / 256 }

    /// Round-trip time in seconds, measured when this report arrives at NTP time `arrival` (the
    /// middle 32 bits); nil when the receiver has no SR from us yet (RFC 3550 §6.4.1).
    public func roundTrip(arrivalMiddle32 arrival: UInt32) -> Double? {
        guard lastSR != 0 else { return nil }
        let rtt = arrival &- lastSR &- delaySinceLastSR
        return rtt > 0x8000_0000 ? 0 : Double(rtt) / 65536
    }
}

/// An RTCP sender report or receiver report (RFC 3550 §6.4), the two packets the box sends.
public struct RTCPReport: Sendable, Equatable {
    /// The reporting source.
    public var ssrc: UInt32
    /// Sender information, present in a sender report.
    public var sender: SenderInfo?
    /// Reception report blocks (at most 31).
    public var blocks: [RTCPReportBlock]

    /// The sender-information part of an SR.
    public struct SenderInfo: Sendable, Equatable {
        /// NTP timestamp (seconds since 1900 in 32.32 fixed point).
        public var ntp: UInt64
        /// The RTP timestamp corresponding to `ntp`.
        public var rtpTimestamp: UInt32
        /// Packets sent.
        public var packetCount: UInt32
        /// Payload octets sent.
        public var octetCount: UInt32

        /// Sender information from its fields.
        public init(ntp: UInt64, rtpTimestamp: UInt32, packetCount: UInt32, octetCount: UInt32) {
            self.ntp = ntp
            self.rtpTimestamp = rtpTimestamp
            self.packetCount = packetCount
            self.octetCount = octetCount
        }
    }

    /// A report from its parts.
    public init(ssrc: UInt32, sender: SenderInfo?, blocks: [RTCPReportBlock]) {
        self.ssrc = ssrc
        self.sender = sender
        self.blocks = blocks
    }

    /// Bytes the report takes.
    public var length: Int { 8 + (sender == nil ? 0 : 20) + 24 * blocks.count }

    /// Writes the report; returns its length, or nil when `buffer` is too small or there are too many blocks.
    public func write(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        guard blocks.count <= 31, buffer.count >= length else { return nil }
        buffer[0] = 0x80 | UInt8(blocks.count)
        buffer[1] = sender == nil ? 201 : 200
        writeU16(buffer, 2, UInt16(length / 4 - 1))
        writeU32(buffer, 4, ssrc)
        var o = 8
        if let sender {
            writeU32(buffer, 8, UInt32(sender.ntp >> 32)); writeU32(buffer, 12, UInt32(sender.ntp & 0xFFFF_FFFF))
            writeU32(buffer, 16, sender.rtpTimestamp); writeU32(buffer, 20, sender.packetCount); writeU32(buffer, 24, sender.octetCount)
            o = 28
        }
        for b in blocks {
            writeU32(buffer, o, b.ssrc)
            let lost = UInt32(bitPattern: max(-0x80_0000, min(0x7F_FFFF, b.cumulativeLost))) & 0xFF_FFFF
            writeU32(buffer, o + 4, UInt32(b.fractionLost) << 24 | lost)
            writeU32(buffer, o + 8, b.extendedHighestSequence)
            writeU32(buffer, o + 12, b.jitter)
            writeU32(buffer, o + 16, b.lastSR)
            writeU32(buffer, o + 20, b.delaySinceLastSR)
            o += 24
        }
        return length
    }

    /// Reads every SR and RR of a compound RTCP packet, skipping other packet types (SDES, BYE, APP);
    /// a malformed compound is refused whole.
    public static func parseCompound(_ packet: UnsafeRawBufferPointer) throws(RTPParseError) -> [RTCPReport] {
        var reports: [RTCPReport] = []
        var o = 0
        guard packet.count >= 4 else { throw .truncated }
        while o < packet.count {
            guard packet.count - o >= 4 else { throw .truncated }
            guard packet[o] >> 6 == 2 else { throw .badVersion }
            let count = Int(packet[o] & 0x1F), type = packet[o + 1]
            let length = (Int(readU16(packet, o + 2)) + 1) * 4
            guard o + length <= packet.count else { throw .truncated }
            if type == 200 || type == 201 {
                let fixed = type == 200 ? 28 : 8
                guard length >= fixed + 24 * count else { throw .truncated }
                var report = RTCPReport(ssrc: readU32(packet, o + 4), sender: nil, blocks: [])
                if type == 200 {
                    report.sender = SenderInfo(ntp: UInt64(readU32(packet, o + 8)) << 32 | UInt64(readU32(packet, o + 12)),
                                               rtpTimestamp: readU32(packet, o + 16), packetCount: readU32(packet, o + 20),
                                               octetCount: readU32(packet, o + 24))
                }
                for i in 0..<count {
                    let b = o + fixed + 24 * i
                    let word = readU32(packet, b + 4)
                    var lost = Int32(bitPattern: word & 0xFF_FFFF)
                    if lost & 0x80_0000 != 0 { lost -= 0x100_0000 }
                    report.blocks.append(RTCPReportBlock(
                        ssrc: readU32(packet, b), fractionLost: UInt8(word >> 24), cumulativeLost: lost,
                        extendedHighestSequence: readU32(packet, b + 8), jitter: readU32(packet, b + 12),
                        lastSR: readU32(packet, b + 16), delaySinceLastSR: readU32(packet, b + 20)))
                }
                reports.append(report)
            }
            o += length
        }
        return reports
    }
}

extension RTPReceiverStatistics {
    /// This source's report block for the next RR/SR (resets the fraction-lost interval).
    public mutating func reportBlock(ssrc: UInt32, lastSR: UInt32, delaySinceLastSR: UInt32) -> RTCPReportBlock {
        RTCPReportBlock(ssrc: ssrc, fractionLost: fractionLostSinceLastReport(), cumulativeLost: cumulativeLost,
                        extendedHighestSequence: extendedHighest, jitter: UInt32(min(jitter, Double(UInt32.max))),
                        lastSR: lastSR, delaySinceLastSR: delaySinceLastSR)
    }
}
