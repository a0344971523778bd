/// The JPEG standard's Huffman tables (ITU T.81 Annex K.3): RFC 2435 receivers rebuild these, so a
/// frame is carried only if it uses them (UVC cameras' MJPEG omits its DHT and means exactly these).
enum StandardHuffman {
    static let dcLuminanceBits: [UInt8] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    static let dcChrominanceBits: [UInt8] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    static let dcValues: [UInt8] = Array(0...11)
    static let acLuminanceBits: [UInt8] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D]
    static let acLuminanceValues: [UInt8] = [
        0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
        0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xA1, 0x08, 0x23, 0x42, 0xB1, 0xC1, 0x15, 0x52, 0xD1, 0xF0,
        0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x25, 0x26, 0x27, 0x28,
        0x29, 0x2A, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
        0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
        0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
        0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7,
        0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5,
        0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE1, 0xE2,
        0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8,
        0xF9, 0xFA,
    ]
    static let acChrominanceBits: [UInt8] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77]
    static let acChrominanceValues: [UInt8] = [
        0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
        0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xA1, 0xB1, 0xC1, 0x09, 0x23, 0x33, 0x52, 0xF0,
        0x15, 0x62, 0x72, 0xD1, 0x0A, 0x16, 0x24, 0x34, 0xE1, 0x25, 0xF1, 0x17, 0x18, 0x19, 0x1A, 0x26,
        0x27, 0x28, 0x29, 0x2A, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
        0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
        0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
        0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5,
        0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3,
        0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA,
        0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8,
        0xF9, 0xFA,
    ]

    /// The standard table for class `tc` (0 DC, 1 AC) and destination `th` (0 luminance, 1 chrominance).
    static func table(class tc: Int, id th: Int) -> (bits: [UInt8], values: [UInt8]) {
        switch (tc, th) {
        case (0, 0): return (dcLuminanceBits, dcValues)
        case (0, _): return (dcChrominanceBits, dcValues)
        case (_, 0): return (acLuminanceBits, acLuminanceValues)
        default: return (acChrominanceBits, acChrominanceValues)
        }
    }

    /// A DHT segment with all four standard tables.
    static let segment: [UInt8] = {
        var body: [UInt8] = []
        for (tc, th) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            let t = table(class: tc, id: th)
            body.append(UInt8(tc << 4 | th))
            body += t.bits + t.values
        }
        return [0xFF, 0xC4, UInt8((body.count + 2) >> 8), UInt8((body.count + 2) & 0xFF)] + body
    }()
}

/// Cuts baseline JPEG frames (a UVC camera's MJPEG, or a software encoder's) into RTP payloads per
/// RFC 2435, with the quantisation tables in-band (Q = 255) so the receiver needs nothing agreed in
/// advance. Supported: SOF0, 8-bit, three components YCbCr with luma sampled 2x1 (type 0, 4:2:2) or
/// 2x2 (type 1, 4:2:0) and chroma 1x1, the standard Huffman tables (a DHT may be absent, as in MJPEG),
/// restart intervals (types 64/65), width and height multiples of 8 up to 2040. Anything else is refused
/// with a `VideoPayloadError` naming what to change. Allocates nothing after `init`.
public struct JPEGPacketizer: VideoPacketizer {
    /// The largest RTP payload produced.
    public let maxPayload: Int
    private let scratch: H264Packetizer.ScratchBuffer

    /// What `parse` found in a frame.
    struct Frame {
        var type: UInt8 = 0
        var width = 0, height = 0
        var restartInterval = 0
        var lumaTable = -1, chromaTable = -1
        var tableOffsets = [Int](repeating: -1, count: 4)  // where each DQT table's values start
        var tablePrecision = [UInt8](repeating: 0, count: 4)
        var scan: Range<Int> = 0..<0
    }

    /// A packetizer producing payloads of at most `maxPayload` bytes (at least 160: the first packet
    /// carries 140 bytes of headers and tables).
    public init(maxPayload: Int = 1200) throws(VideoPayloadError) {
        guard maxPayload >= 160 else { throw .payloadSizeTooSmall }
        self.maxPayload = maxPayload
        scratch = H264Packetizer.ScratchBuffer(maxPayload)
    }

    static func parse(_ p: UnsafeRawBufferPointer) throws(VideoPayloadError) -> Frame {
        guard p.count >= 4, p[0] == 0xFF, p[1] == 0xD8 else { throw .notJPEG }
        var f = Frame()
        var sawFrameHeader = false
        var o = 2
        while true {
            guard o + 1 < p.count, p[o] == 0xFF else { throw .truncatedJPEG("marker at \(o)") }
            while o + 1 < p.count && p[o + 1] == 0xFF { o += 1 }  // fill bytes
            guard o + 1 < p.count else { throw .truncatedJPEG("marker") }
            let marker = p[o + 1]
            o += 2
            if marker == 0x01 || (0xD0...0xD8).contains(marker) { continue }  // no length
            if marker == 0xD9 { throw .truncatedJPEG("scan (EOI before SOS)") }
            guard o + 2 <= p.count else { throw .truncatedJPEG("segment length") }
            let length = Int(readU16(p, o))
            guard length >= 2, o + length <= p.count else { throw .truncatedJPEG("segment 0xFF\(hex(marker))") }
            let s = o + 2, e = o + length
            switch marker {
            case 0xC0:
                guard e - s >= 6 else { throw .truncatedJPEG("SOF0") }
                guard p[s] == 8 else { throw .unsupportedJPEG("8-bit samples only") }
                f.height = Int(readU16(p, s + 1)); f.width = Int(readU16(p, s + 3))
                guard p[s + 5] == 3 else { throw .unsupportedJPEG("3 components (YCbCr) only; grayscale is not in RFC 2435") }
                guard e - s >= 15 else { throw .truncatedJPEG("SOF0") }
                let y = p[s + 7], cb = p[s + 10], cr = p[s + 13]
                guard cb == 0x11, cr == 0x11, y == 0x21 || y == 0x22 else {
                    throw .unsupportedJPEG("sampling 4:2:2 or 4:2:0 only (luma 2x1 or 2x2, chroma 1x1)")
                }
                f.type = y == 0x21 ? 0 : 1
                f.lumaTable = Int(p[s + 8]); f.chromaTable = Int(p[s + 11])
                guard p[s + 14] == p[s + 11], f.lumaTable < 4, f.chromaTable < 4 else {
                    throw .unsupportedJPEG("both chroma components must share one quantisation table")
                }
                guard f.width > 0, f.height > 0, f.width % 8 == 0, f.height % 8 == 0 else {
                    throw .unsupportedJPEG("width and height must be non-zero multiples of 8")
                }
                guard f.width <= 2040, f.height <= 2040 else { throw .pictureTooLarge }
                sawFrameHeader = true
            case 0xC1...0xC3, 0xC5...0xC7, 0xC9...0xCB, 0xCD...0xCF:
                throw .unsupportedJPEG("baseline (SOF0) only, not SOF\(marker - 0xC0)")
            case 0xC4:
                var t = s
                while t < e {
                    let tc = Int(p[t] >> 4), th = Int(p[t] & 0x0F)
                    guard tc <= 1, th <= 1, t + 17 <= e else { throw .nonStandardHuffmanTables }
                    let count = (1...16).reduce(0) { $0 + Int(p[t + $1]) }
                    guard t + 17 + count <= e else { throw .truncatedJPEG("DHT") }
                    let standard = StandardHuffman.table(class: tc, id: th)
                    guard p[(t + 1)..<(t + 17)].elementsEqual(standard.bits),
                          p[(t + 17)..<(t + 17 + count)].elementsEqual(standard.values) else { throw .nonStandardHuffmanTables }
                    t += 17 + count
                }
            case 0xDB:
                var t = s
                while t < e {
                    let pq = p[t] >> 4, tq = Int(p[t] & 0x0F)
                    let size = pq == 0 ? 64 : 128
                    guard pq <= 1, tq < 4, t + 1 + size <= e else { throw .truncatedJPEG("DQT") }
                    f.tableOffsets[tq] = t + 1
                    f.tablePrecision[tq] = pq
                    t += 1 + size
                }
            case 0xDD:
                guard e - s >= 2 else { throw .truncatedJPEG("DRI") }
                f.restartInterval = Int(readU16(p, s))
            case 0xDA:
                guard sawFrameHeader else { throw .truncatedJPEG("frame header (SOF0) before the scan") }
                guard e - s >= 10, p[s] == 3 else { throw .unsupportedJPEG("one interleaved scan of the 3 components") }
                guard p[s + 2] == 0x00, p[s + 4] == 0x11, p[s + 6] == 0x11 else { throw .nonStandardHuffmanTables }
                guard f.tableOffsets[f.lumaTable] >= 0, f.tableOffsets[f.chromaTable] >= 0 else {
                    throw .truncatedJPEG("DQT for the components' quantisation tables")
                }
                // The entropy-coded data runs to the EOI marker (trailing bytes after it are ignored).
                var end = p.count - 2
                while end >= e && !(p[end] == 0xFF && p[end + 1] == 0xD9) { end -= 1 }
                guard end >= e else { throw .truncatedJPEG("EOI") }
                f.scan = e..<end
                return f
            default:
                break  // APPn, COM and the like: not carried
            }
            o = e
        }
    }

    public mutating func packetize(_ frame: UnsafeRawBufferPointer,
                                   emit: (UnsafeRawBufferPointer, Bool) -> Void) throws(VideoPayloadError) {
        guard !frame.isEmpty else { throw .emptyFrame }
        let f = try Self.parse(frame)
        let out = scratch.bytes
        var offset = 0
        let total = f.scan.count
        repeat {
            // Main header (RFC 2435 §3.1): type-specific, 24-bit fragment offset, type, Q, width/8, height/8.
            out[0] = 0
            out[1] = UInt8((offset >> 16) & 0xFF); out[2] = UInt8((offset >> 8) & 0xFF); out[3] = UInt8(offset & 0xFF)
            out[4] = f.type | (f.restartInterval > 0 ? 64 : 0)
            out[5] = 255
            out[6] = UInt8(f.width / 8); out[7] = UInt8(f.height / 8)
            var o = 8
            if f.restartInterval > 0 {  // §3.1.7: intervals not aligned with packets: F = L = 1, count 0x3FFF
                writeU16(out, 8, UInt16(f.restartInterval))
                out[10] = 0xFF; out[11] = 0xFF
                o = 12
            }
            if offset == 0 {  // §3.1.8: the tables, luma then chroma, zig-zag order as in the DQT
                let lumaSize = f.tablePrecision[f.lumaTable] == 0 ? 64 : 128
                let chromaSize = f.tablePrecision[f.chromaTable] == 0 ? 64 : 128
                out[o] = 0
                out[o + 1] = f.tablePrecision[f.lumaTable] | f.tablePrecision[f.chromaTable] << 1
                writeU16(out, o + 2, UInt16(lumaSize + chromaSize))
                o += 4
                for (table, size) in [(f.lumaTable, lumaSize), (f.chromaTable, chromaSize)] {
                    let start = f.tableOffsets[table]
                    UnsafeMutableRawBufferPointer(rebasing: out[o..<o + size])
                        .copyMemory(from: UnsafeRawBufferPointer(rebasing: frame[start..<start + size]))
                    o += size
                }
            }
            let n = min(maxPayload - o, total - offset)
            let from = f.scan.lowerBound + offset
            UnsafeMutableRawBufferPointer(rebasing: out[o..<o + n]).copyMemory(from: UnsafeRawBufferPointer(rebasing: frame[from..<from + n]))
            offset += n
            emit(UnsafeRawBufferPointer(rebasing: out[0..<o + n]), offset == total)
        } while offset < total
    }
}

/// Rebuilds JPEG files from RFC 2435 RTP packets (types 0, 1, 64, 65 with in-band tables, Q 128-255),
/// writing the headers a decoder needs (DQT, SOF0, the standard DHT, DRI, SOS) in front of the
/// reassembled scan. A frame with a lost or out-of-place fragment is dropped and counted; a payload
/// that lies about its sizes is counted as malformed. Q values 1-99 (tables derived from the standard
/// ones by a quality factor) are counted as unsupported: our sender and GStreamer's rtpjpegpay send
/// the tables in-band.
public final class JPEGDepacketizer: VideoDepacketizer {
    public private(set) var counters = VideoDepacketizerCounters()
    private var scan: ByteAccumulator
    private var output: ByteAccumulator
    private var tables = [UInt8](repeating: 0, count: 256)
    private var precision: UInt8 = 0
    private var timestamp: UInt32 = 0
    private var inProgress = false
    private var damaged = false
    private var type: UInt8 = 0
    private var width = 0, height = 0, restartInterval = 0
    private var haveTables = false

    /// A depacketizer accepting frames up to `maxFrameBytes`.
    public init(maxFrameBytes: Int = 4 << 20) {
        scan = ByteAccumulator(initialCapacity: 256 << 10, limit: maxFrameBytes)
        output = ByteAccumulator(initialCapacity: 256 << 10, limit: maxFrameBytes + 1024)
    }

    deinit {
        scan.free()
        output.free()
    }

    public func push(packet: UnsafeRawBufferPointer, deliver: (ReceivedVideoFrame) -> Void) {
        let header: RTPHeader
        do { header = try RTPHeader.parse(packet) } catch { counters.notRTP += 1; return }
        push(header: header, payload: UnsafeRawBufferPointer(rebasing: packet[header.payloadOffset..<header.payloadOffset + header.payloadLength]),
             deliver: deliver)
    }

    public func push(header: RTPHeader, payload p: UnsafeRawBufferPointer, deliver: (ReceivedVideoFrame) -> Void) {
        if inProgress && header.timestamp != timestamp {
            // The previous frame never saw its last packet.
            counters.droppedFrames += 1
            inProgress = false
        }
        guard p.count >= 8 else { counters.malformed += 1; markDamaged(header); return }
        let offset = Int(p[1]) << 16 | Int(p[2]) << 8 | Int(p[3])
        let type = p[4], q = p[5]
        let width = Int(p[6]) * 8, height = Int(p[7]) * 8
        guard [0, 1, 64, 65].contains(type) else { counters.unsupported += 1; markDamaged(header); return }
        guard q >= 128 else {
            if q == 0 || q >= 100 { counters.malformed += 1 } else { counters.unsupported += 1 }
            markDamaged(header); return
        }
        guard width > 0, height > 0 else { counters.malformed += 1; markDamaged(header); return }
        var o = 8
        var interval = 0
        if type >= 64 {
            guard p.count >= 12 else { counters.malformed += 1; markDamaged(header); return }
            interval = Int(readU16(p, 8))
            o = 12
        }
        if offset == 0 {
            guard p.count >= o + 4, p[o] == 0 else { counters.malformed += 1; markDamaged(header); return }
            let prec = p[o + 1], length = Int(readU16(p, o + 2))
            let expected = (prec & 1 == 0 ? 64 : 128) + (prec & 2 == 0 ? 64 : 128)
            guard prec <= 3, length == expected, p.count >= o + 4 + length else {
                counters.malformed += 1; markDamaged(header); return
            }
            inProgress = true
            damaged = false
            timestamp = header.timestamp
            self.type = type & 1
            self.width = width; self.height = height; restartInterval = interval
            precision = prec
            for i in 0..<length { tables[i] = p[o + 4 + i] }
            haveTables = true
            scan.reset()
            o += 4 + length
        } else {
            guard inProgress, !damaged, header.timestamp == timestamp else { markDamaged(header); return }
            guard offset == scan.count, self.type == type & 1, self.width == width, self.height == height else {
                // A fragment was lost (or the packet lies about its frame).
                counters.gaps += 1
                markDamaged(header); return
            }
        }
        guard !damaged else { return }
        guard scan.append(UnsafeRawBufferPointer(rebasing: p[o...])) else {
            counters.oversized += 1; markDamaged(header); return
        }
        if header.marker { finish(deliver: deliver) }
    }

    private func markDamaged(_ header: RTPHeader) {
        if inProgress && header.timestamp == timestamp && !damaged {
            damaged = true
        } else if !inProgress || header.timestamp != timestamp {
            inProgress = true
            damaged = true
            timestamp = header.timestamp
        }
        if header.marker {
            counters.droppedFrames += 1
            inProgress = false
        }
    }

    private func finish(deliver: (ReceivedVideoFrame) -> Void) {
        inProgress = false
        output.reset()
        guard buildHeaders(), output.append(scan.bytes) else { counters.oversized += 1; counters.droppedFrames += 1; return }
        let s = scan.bytes
        if !(s.count >= 2 && s[s.count - 2] == 0xFF && s[s.count - 1] == 0xD9) {
            guard output.append(byte: 0xFF), output.append(byte: 0xD9) else { counters.oversized += 1; counters.droppedFrames += 1; return }
        }
        counters.frames += 1
        deliver(ReceivedVideoFrame(bytes: output.bytes, timestamp: timestamp, isKeyframe: true))
    }

    /// SOI, DQT (luma table 0, chroma table 1), SOF0, the standard DHT, DRI, SOS (RFC 2435 appendix B).
    private func buildHeaders() -> Bool {
        var ok = output.append([0xFF, 0xD8])
        var t = 0
        for id in 0..<2 {
            let size = precision >> UInt8(id) & 1 == 0 ? 64 : 128
            ok = ok && output.append([0xFF, 0xDB, 0, UInt8(size + 3), (precision >> UInt8(id) & 1) << 4 | UInt8(id)])
            ok = ok && tables.withUnsafeBytes { output.append(UnsafeRawBufferPointer(rebasing: $0[t..<t + size])) }
            t += size
        }
        ok = ok && output.append([0xFF, 0xC0, 0, 17, 8, UInt8(height >> 8), UInt8(height & 0xFF), UInt8(width >> 8), UInt8(width & 0xFF), 3,
                                  1, type == 0 ? 0x21 : 0x22, 0, 2, 0x11, 1, 3, 0x11, 1])
        ok = ok && output.append(StandardHuffman.segment)
        if restartInterval > 0 {
            ok = ok && output.append([0xFF, 0xDD, 0, 4, UInt8(restartInterval >> 8), UInt8(restartInterval & 0xFF)])
        }
        ok = ok && output.append([0xFF, 0xDA, 0, 12, 3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0])
        return ok
    }
}

private func hex(_ b: UInt8) -> String {
    let digits = Array("0123456789ABCDEF")
    return String([digits[Int(b >> 4)], digits[Int(b & 0xF)]])
}
