@testable import Media

/// A deterministic xorshift generator: fuzz loops and random frames reproduce from their seed.
struct TestRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }
    mutating func next() -> UInt64 {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return state
    }
    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }
    mutating func bytes(_ n: Int, avoiding avoided: UInt8? = nil) -> [UInt8] {
        (0..<n).map { _ in
            var b = byte()
            while b == avoided { b = byte() }
            return b
        }
    }

    /// One random mutation of `input`: bit flips, interesting bytes, truncation, extension, chunk copies.
    mutating func mutate(_ input: [UInt8]) -> [UInt8] {
        var b = input
        for _ in 0...below(3) {
            switch below(7) {
            case 0 where !b.isEmpty: b[below(b.count)] ^= UInt8(1) << UInt8(below(8))
            case 1 where !b.isEmpty: b[below(b.count)] = [0, 0xFF, 0x7F, 0x80, 1, 24, 28, 0x1C][below(8)]
            case 2 where !b.isEmpty: b.removeLast(below(b.count) + 1)
            case 3: b += bytes(below(16) + 1)
            case 4 where b.count > 4:
                let from = below(b.count - 2), n = below(min(64, b.count - from)) + 1, to = below(b.count)
                b.insert(contentsOf: b[from..<from + n], at: to)
            case 5 where !b.isEmpty: b[below(b.count)] = byte()
            case 6 where b.count > 2: b.remove(at: below(b.count))
            default: break
            }
        }
        return b
    }
}

/// Builds RTP packets around payloads, as a sender does.
func rtpPacket(_ payload: [UInt8], sequence: UInt16, timestamp: UInt32, marker: Bool, payloadType: UInt8 = 96) -> [UInt8] {
    var packet = [UInt8](repeating: 0, count: 12)
    packet.withUnsafeMutableBytes {
        _ = RTPHeader(marker: marker, payloadType: payloadType, sequence: sequence, timestamp: timestamp, ssrc: 0x0BAD_CAFE).write(into: $0)
    }
    return packet + payload
}

/// All payloads (with marker flags) of one frame.
func payloads<P: VideoPacketizer>(_ packetizer: inout P, _ frame: [UInt8]) throws(VideoPayloadError) -> [(bytes: [UInt8], last: Bool)] {
    var out: [([UInt8], Bool)] = []
    var failure: VideoPayloadError?
    frame.withUnsafeBytes { f in
        do { try packetizer.packetize(f) { out.append((Array($0), $1)) } } catch { failure = error as? VideoPayloadError }
    }
    if let failure { throw failure }
    return out
}

/// Pushes packets into a depacketizer and collects the frames it delivers (copied).
func depacketize(_ d: any VideoDepacketizer, _ packets: [[UInt8]]) -> [(bytes: [UInt8], timestamp: UInt32, key: Bool)] {
    var frames: [([UInt8], UInt32, Bool)] = []
    for p in packets {
        p.withUnsafeBytes { d.push(packet: $0) { frames.append((Array($0.bytes), $0.timestamp, $0.isKeyframe)) } }
    }
    return frames
}

/// A synthetic H.264 access unit: SPS, PPS and an IDR slice (or a non-IDR slice) of the given sizes,
/// with 4-byte start codes; NAL bodies avoid zero bytes so no start code emulation can occur.
func syntheticAccessUnit(_ rng: inout TestRandom, sliceBytes: Int, idr: Bool, extraNALs: Int = 0) -> [UInt8] {
    var au: [UInt8] = []
    if idr {
        au += [0, 0, 0, 1, 0x67] + rng.bytes(9, avoiding: 0)
        au += [0, 0, 0, 1, 0x68] + rng.bytes(3, avoiding: 0)
    }
    for _ in 0..<extraNALs { let seiLength = rng.below(40); au += [0, 0, 1, 0x06] + rng.bytes(1 + seiLength, avoiding: 0) }  // SEI, 3-byte code
    au += [0, 0, 0, 1, idr ? 0x65 : 0x41] + rng.bytes(max(0, sliceBytes - 1), avoiding: 0)
    return au
}

/// The access unit as the depacketizer writes it: every start code 4 bytes long.
func normalisedAnnexB(_ au: [UInt8]) throws -> [UInt8] {
    try AnnexB.nalUnits(in: au).flatMap { [0, 0, 0, 1] + $0 }
}

/// A synthetic baseline JPEG as a camera's MJPEG would be: SOI, DQT (two tables), SOF0, optional
/// standard DHT and DRI, SOS, entropy-coded bytes (no 0xFF, so no markers), EOI.
func syntheticJPEG(_ rng: inout TestRandom, width: Int = 320, height: Int = 240, lumaSampling: UInt8 = 0x22, sof: UInt8 = 0xC0,
                   components: UInt8 = 3, dht: Bool = false, restart: Int = 0, scanBytes: Int = 3000) -> [UInt8] {
    var j: [UInt8] = [0xFF, 0xD8, 0xFF, 0xE0, 0, 16] + Array("JFIF".utf8) + [0, 1, 1, 0, 0, 1, 0, 1, 0, 0]
    j += [0xFF, 0xDB, 0, 132, 0x00] + (0..<64).map { UInt8($0 % 50 + 1) } + [0x01] + (0..<64).map { UInt8($0 % 30 + 2) }
    j += [0xFF, sof, 0, UInt8(8 + 3 * Int(components)), 8, UInt8(height >> 8), UInt8(height & 0xFF), UInt8(width >> 8), UInt8(width & 0xFF), components]
    j += [1, lumaSampling, 0]
    if components == 3 { j += [2, 0x11, 1, 3, 0x11, 1] }
    if dht { j += StandardHuffman.segment }
    if restart > 0 { j += [0xFF, 0xDD, 0, 4, UInt8(restart >> 8), UInt8(restart & 0xFF)] }
    j += [0xFF, 0xDA, 0, 12, 3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0]
    j += rng.bytes(scanBytes, avoiding: 0xFF)
    j += [0xFF, 0xD9]
    return j
}
