/// Why an RTP or RTCP packet was refused. Malformed packets are counted and dropped, never trusted.
public enum RTPParseError: Error, Sendable, Equatable {
    /// Shorter than its header says.
    case truncated
    /// Not RTP version 2.
    case badVersion
    /// Padding count larger than the payload.
    case badPadding
    /// Header extension runs past the packet.
    case badExtension
}

/// An RTP header (RFC 3550 §5.1) and where its payload lies in the packet it was read from.
public struct RTPHeader: Sendable, Equatable {
    /// Marker bit (start of a talkspurt for audio, last packet of a frame for video).
    public var marker: Bool
    /// Payload type (dynamic types 96-127 for Opus and H.264).
    public var payloadType: UInt8
    /// Sequence number, wrapping at 65536.
    public var sequence: UInt16
    /// Media timestamp (48 kHz for Opus, 90 kHz for video), wrapping at 2^32.
    public var timestamp: UInt32
    /// Synchronisation source.
    public var ssrc: UInt32
    /// Contributing sources (a mixer lists the rooms it mixed).
    public var csrcCount: Int
    /// Offset of the payload in the packet.
    public var payloadOffset: Int
    /// Length of the payload, padding excluded.
    public var payloadLength: Int
    /// Length of the whole header (fixed part, CSRCs, extension).
    public var headerLength: Int { payloadOffset }

    /// A header to send.
    public init(marker: Bool = false, payloadType: UInt8, sequence: UInt16, timestamp: UInt32, ssrc: UInt32) {
        self.marker = marker
        self.payloadType = payloadType
        self.sequence = sequence
        self.timestamp = timestamp
        self.ssrc = ssrc
        csrcCount = 0
        payloadOffset = 12
        payloadLength = 0
    }

    /// Reads the header of `packet` without copying; the payload is `packet[payloadOffset..<payloadOffset+payloadLength]`.
    public static func parse(_ packet: UnsafeRawBufferPointer) throws(RTPParseError) -> RTPHeader {
        guard packet.count >= 12 else { throw .truncated }
        let b0 = packet[0], b1 = packet[1]
        guard b0 >> 6 == 2 else { throw .badVersion }
        let padding = b0 & 0x20 != 0, hasExtension = b0 & 0x10 != 0
        let csrcs = Int(b0 & 0x0F)
        var offset = 12 + 4 * csrcs
        guard packet.count >= offset else { throw .truncated }
        if hasExtension {
            guard packet.count >= offset + 4 else { throw .badExtension }
            let words = Int(packet[offset + 2]) << 8 | Int(packet[offset + 3])
            offset += 4 + 4 * words
            guard packet.count >= offset else { throw .badExtension }
        }
        var end = packet.count
        if padding {
            let count = Int(packet[packet.count - 1])
            guard count >= 1, end - count >= offset else { throw .badPadding }
            end -= count
        }
        var header = RTPHeader(marker: b1 & 0x80 != 0, payloadType: b1 & 0x7F, sequence: readU16(packet, 2),
                               timestamp: readU32(packet, 4), ssrc: readU32(packet, 8))
        header.csrcCount = csrcs
        header.payloadOffset = offset
        header.payloadLength = end - offset
        return header
    }

    /// Writes the 12-byte fixed header (no CSRCs, no extension) at the start of `buffer`; returns 12.
    @discardableResult
    public func write(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        precondition(buffer.count >= 12)
        buffer[0] = 0x80
        buffer[1] = (marker ? 0x80 : 0) | (payloadType & 0x7F)
        writeU16(buffer, 2, sequence)
        writeU32(buffer, 4, timestamp)
        writeU32(buffer, 8, ssrc)
        return 12
    }
}

@inline(__always) func readU16(_ p: UnsafeRawBufferPointer, _ o: Int) -> UInt16 { UInt16(p[o]) << 8 | UInt16(p[o + 1]) }
@inline(__always) func readU32(_ p: UnsafeRawBufferPointer, _ o: Int) -> UInt32 {
    UInt32(p[o]) << 24 | UInt32(p[o + 1]) << 16 | UInt32(p[o + 2]) << 8 | UInt32(p[o + 3])
}
@inline(__always) func writeU16(_ p: UnsafeMutableRawBufferPointer, _ o: Int, _ v: UInt16) {
    p[o] = UInt8(v >> 8); p[o + 1] = UInt8(v & 0xFF)
}
@inline(__always) func writeU32(_ p: UnsafeMutableRawBufferPointer, _ o: Int, _ v: UInt32) {
    p[o] = UInt8(v >> 24); p[o + 1] = UInt8((v >> 16) & 0xFF); p[o + 2] = UInt8((v >> 8) & 0xFF); p[o + 3] = UInt8(v & 0xFF)
}
