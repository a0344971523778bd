/// RTCP packets beside the reports: the source description with the sender's CNAME (RFC 3550 §6.5,
/// required in every compound packet by §6.1) and the payload-specific feedback a video receiver sends
/// when it lost a picture (RFC 4585 §6.3.1 Picture Loss Indication, RFC 5104 §4.3.1 Full Intra Request).

/// A feedback message asking a video sender for a new keyframe.
public enum RTCPKeyframeRequest: Sendable, Equatable {
    /// Picture Loss Indication (PT 206, FMT 1): "I lost pictures; send what repairs them".
    case pli(sender: UInt32, media: UInt32)
    /// Full Intra Request (PT 206, FMT 4): "send an intra picture", with a command sequence number the
    /// sender uses to ignore repeats.
    case fir(sender: UInt32, media: UInt32, sequence: UInt8)

    /// The media source (SSRC) whose keyframe is requested.
    public var mediaSSRC: UInt32 {
        switch self {
        case .pli(_, let media), .fir(_, let media, _): return media
        }
    }

    /// Bytes the packet takes.
    public var length: Int {
        switch self {
        case .pli: return 12
        case .fir: return 20
        }
    }

    /// Writes the packet; returns its length, or nil when `buffer` is too small.
    public func write(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        guard buffer.count >= length else { return nil }
        switch self {
        case .pli(let sender, let media):
            buffer[0] = 0x80 | 1
            buffer[1] = 206
            writeU16(buffer, 2, 2)
            writeU32(buffer, 4, sender)
            writeU32(buffer, 8, media)
        case .fir(let sender, _, let sequence):
            buffer[0] = 0x80 | 4
            buffer[1] = 206
            writeU16(buffer, 2, 4)
            writeU32(buffer, 4, sender)
            writeU32(buffer, 8, 0)  // RFC 5104 §4.3.1.2: the media source field is unused (0)
            writeU32(buffer, 12, mediaSSRC)
            writeU32(buffer, 16, UInt32(sequence) << 24)
        }
        return length
    }
}

/// The source description chunk the box sends: its SSRC and canonical name.
public struct RTCPSourceDescription: Sendable, Equatable {
    /// The described source.
    public var ssrc: UInt32
    /// Its canonical name (the same for a box's audio and video, so a receiver can pair them).
    public var cname: String

    /// A description from its parts.
    public init(ssrc: UInt32, cname: String) {
        self.ssrc = ssrc
        self.cname = cname
    }

    private var nameBytes: ArraySlice<UInt8> { Array(cname.utf8).prefix(255) }

    /// Bytes the SDES packet takes (one chunk, padded to 32 bits).
    public var length: Int {
        let chunk = 4 + 2 + nameBytes.count + 1  // SSRC, CNAME item header and text, END
        return 4 + (chunk + 3) / 4 * 4
    }

    /// Writes one SDES packet (PT 202) with one chunk holding the CNAME; nil when `buffer` is too small.
    public func write(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        let total = length
        guard buffer.count >= total else { return nil }
        let name = nameBytes
        buffer[0] = 0x80 | 1
        buffer[1] = 202
        writeU16(buffer, 2, UInt16(total / 4 - 1))
        writeU32(buffer, 4, ssrc)
        buffer[8] = 1  // CNAME
        buffer[9] = UInt8(name.count)
        var o = 10
        for b in name { buffer[o] = b; o += 1 }
        while o < total { buffer[o] = 0; o += 1 }  // END item and padding
        return total
    }
}

/// What one compound RTCP packet says beside its reports: CNAMEs and keyframe requests.
public struct RTCPExtras: Sendable, Equatable {
    /// Source descriptions with a CNAME item.
    public var descriptions: [RTCPSourceDescription] = []
    /// PLI and FIR messages (one entry per FIR entry).
    public var keyframeRequests: [RTCPKeyframeRequest] = []

    /// Nothing yet.
    public init() {}

    /// Reads the SDES CNAME items and PLI/FIR messages of a compound packet, skipping other packets;
    /// a packet whose lengths do not add up is refused whole (counted by the caller).
    public static func parse(_ packet: UnsafeRawBufferPointer) throws(RTPParseError) -> RTCPExtras {
        var extras = RTCPExtras()
        var o = 0
        guard packet.count >= 4 else { throw .truncated }
        while o < packet.count {
            guard packet.count - o >= 4 else { throw .truncated }
            guard packet[o] >> 6 == 2 else { throw .badVersion }
            let count = Int(packet[o] & 0x1F), type = packet[o + 1]
            let length = (Int(readU16(packet, o + 2)) + 1) * 4
            guard o + length <= packet.count else { throw .truncated }
            switch type {
            case 202:
                var c = o + 4
                for _ in 0..<count {
                    guard c + 4 <= o + length else { throw .truncated }
                    let ssrc = readU32(packet, c)
                    c += 4
                    while true {
                        guard c < o + length else { throw .truncated }
                        let item = packet[c]
                        if item == 0 {
                            c = (c + 4) & ~3  // END: skip to the next 32-bit boundary
                            break
                        }
                        guard c + 2 <= o + length else { throw .truncated }
                        let size = Int(packet[c + 1])
                        guard c + 2 + size <= o + length else { throw .truncated }
                        if item == 1 {
                            let text = String(decoding: UnsafeRawBufferPointer(rebasing: packet[c + 2..<c + 2 + size]), as: UTF8.self)
                            extras.descriptions.append(RTCPSourceDescription(ssrc: ssrc, cname: text))
                        }
                        c += 2 + size
                    }
                }
            case 206 where count == 1:
                guard length >= 12 else { throw .truncated }
                extras.keyframeRequests.append(.pli(sender: readU32(packet, o + 4), media: readU32(packet, o + 8)))
            case 206 where count == 4:
                guard length >= 12, (length - 12) % 8 == 0 else { throw .truncated }
                var f = o + 12
                while f < o + length {
                    extras.keyframeRequests.append(.fir(sender: readU32(packet, o + 4), media: readU32(packet, f), sequence: packet[f + 4]))
                    f += 8
                }
            default:
                break
            }
            o += length
        }
        return extras
    }
}
