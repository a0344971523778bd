/// The NAL units of an Annex-B byte stream: where each lies, start codes and trailing zero bytes excluded.
public enum AnnexB {
    /// Calls `body` with the range of each non-empty NAL unit of `stream`, in order. Throws when the
    /// stream does not begin with a start code (leading zero bytes before it are allowed).
    public static func forEachNALUnit(in stream: UnsafeRawBufferPointer,
                                      _ body: (Range<Int>) -> Void) throws(VideoPayloadError) {
        guard !stream.isEmpty else { throw .emptyFrame }
        guard let first = nextStartCode(stream, from: 0), stream[0..<first.start].allSatisfy({ $0 == 0 }) else {
            throw .missingStartCode
        }
        var start = first.end
        var found = false
        while start < stream.count {
            let next = nextStartCode(stream, from: start)
            var end = next?.start ?? stream.count
            while end > start && stream[end - 1] == 0 { end -= 1 }  // trailing_zero_8bits / a 4-byte code's zero
            if end > start {
                body(start..<end)
                found = true
            }
            guard let next else { break }
            start = next.end
        }
        guard found else { throw .noNALUnits }
    }

    /// The next `00 00 01` at or after `from`: where it starts and where the NAL unit after it begins.
    static func nextStartCode(_ p: UnsafeRawBufferPointer, from: Int) -> (start: Int, end: Int)? {
        var i = from
        let n = p.count
        while i + 2 < n {
            let b2 = p[i + 2]
            if b2 > 1 { i += 3; continue }  // the third byte of a start code is 1: skip ahead
            if b2 == 1 && p[i] == 0 && p[i + 1] == 0 { return (i, i + 3) }
            i += 1
        }
        return nil
    }

    /// The NAL units of `stream` as arrays (for tests and tools; the media path uses `forEachNALUnit`).
    public static func nalUnits(in stream: [UInt8]) throws(VideoPayloadError) -> [[UInt8]] {
        var units: [[UInt8]] = []
        var failure: VideoPayloadError?
        stream.withUnsafeBytes { p in
            do { try forEachNALUnit(in: p) { units.append(Array(p[$0])) } } catch { failure = error as? VideoPayloadError ?? .noNALUnits }
        }
        if let failure { throw failure }
        return units
    }
}

/// Cuts H.264 access units (Annex-B, as encoders and UVC cameras give them) into RTP payloads per
/// RFC 6184 in non-interleaved mode: a NAL unit that fits goes alone (single NAL unit packet),
/// consecutive small ones (SPS, PPS with the IDR slice's first part, SEI) are aggregated into STAP-A,
/// and larger ones are fragmented into FU-A. Allocates nothing after `init`.
public struct H264Packetizer: VideoPacketizer {
    /// The largest RTP payload produced (MTU minus IP, UDP, RTP and SRTP overheads).
    public let maxPayload: Int
    private let scratch: ScratchBuffer
    private var ranges: [Range<Int>]

    final class ScratchBuffer {
        let bytes: UnsafeMutableRawBufferPointer
        init(_ count: Int) { bytes = .allocate(byteCount: count, alignment: 16) }
        deinit { bytes.deallocate() }
    }

    /// A packetizer producing payloads of at most `maxPayload` bytes (1200 suits a 1500-byte MTU with
    /// room for tunnels; at least 16).
    public init(maxPayload: Int = 1200) throws(VideoPayloadError) {
        guard maxPayload >= 16 else { throw .payloadSizeTooSmall }
        self.maxPayload = maxPayload
        scratch = ScratchBuffer(maxPayload)
        ranges = []
        ranges.reserveCapacity(64)
    }

    public mutating func packetize(_ frame: UnsafeRawBufferPointer,
                                   emit: (UnsafeRawBufferPointer, Bool) -> Void) throws(VideoPayloadError) {
        ranges.removeAll(keepingCapacity: true)
        try AnnexB.forEachNALUnit(in: frame) { ranges.append($0) }
        let out = scratch.bytes
        var i = 0
        while i < ranges.count {
            let nal = ranges[i]
            if nal.count > maxPayload {
                fragment(frame, nal, last: i == ranges.count - 1, emit: emit)
                i += 1
                continue
            }
            // How many of the following NAL units fit with this one in a STAP-A (1 + (2 + size) each)?
            var total = 1 + 2 + nal.count
            var j = i + 1
            while j < ranges.count, total + 2 + ranges[j].count <= maxPayload, ranges[j].count <= 0xFFFF {
                total += 2 + ranges[j].count
                j += 1
            }
            if j - i >= 2 {
                var header: UInt8 = 0
                var o = 1
                for k in i..<j {
                    let r = ranges[k]
                    let nalHeader = frame[r.lowerBound]
                    header = max(header & 0x60, nalHeader & 0x60) | ((header | nalHeader) & 0x80)
                    writeU16(out, o, UInt16(r.count))
                    UnsafeMutableRawBufferPointer(rebasing: out[o + 2..<o + 2 + r.count]).copyMemory(from: UnsafeRawBufferPointer(rebasing: frame[r]))
                    o += 2 + r.count
                }
                out[0] = header | 24
                emit(UnsafeRawBufferPointer(rebasing: out[0..<o]), j == ranges.count)
                i = j
            } else {
                emit(UnsafeRawBufferPointer(rebasing: frame[nal]), i == ranges.count - 1)
                i += 1
            }
        }
    }

    /// FU-A (RFC 6184 §5.8): the NAL header's F and NRI go in the indicator, its type in the FU header;
    /// the header byte itself is not sent.
    private func fragment(_ frame: UnsafeRawBufferPointer, _ nal: Range<Int>, last: Bool,
                          emit: (UnsafeRawBufferPointer, Bool) -> Void) {
        let out = scratch.bytes
        let nalHeader = frame[nal.lowerBound]
        let room = maxPayload - 2
        var o = nal.lowerBound + 1
        while o < nal.upperBound {
            let n = min(room, nal.upperBound - o)
            let isStart = o == nal.lowerBound + 1, isEnd = o + n == nal.upperBound
            out[0] = (nalHeader & 0xE0) | 28
            out[1] = (isStart ? 0x80 : 0) | (isEnd ? 0x40 : 0) | (nalHeader & 0x1F)
            UnsafeMutableRawBufferPointer(rebasing: out[2..<2 + n]).copyMemory(from: UnsafeRawBufferPointer(rebasing: frame[o..<o + n]))
            emit(UnsafeRawBufferPointer(rebasing: out[0..<2 + n]), last && isEnd)
            o += n
        }
    }
}

/// Rebuilds H.264 access units from RTP packets (RFC 6184 non-interleaved mode: single NAL unit,
/// STAP-A and FU-A), as Annex-B with 4-byte start codes. An access unit ends at the marker bit (or when
/// the timestamp changes, if the marker was not set). A lost, malformed or unsupported packet drops the
/// whole access unit it belongs to, counts it, and raises `keyframeRequested` (the decoder's references
/// are broken until the next IDR: send a PLI/FIR or ask the encoder). Nothing in a packet can make it
/// read out of bounds or trap; storage is reused between access units.
public final class H264Depacketizer: VideoDepacketizer {
    public private(set) var counters = VideoDepacketizerCounters()
    /// Set when an access unit was dropped; cleared by `takeKeyframeRequest`.
    public private(set) var keyframeRequested = false
    private var accessUnit: ByteAccumulator
    private var timestamp: UInt32 = 0
    private var inProgress = false
    private var damaged = false
    private var hasIDR = false
    private var expectedSequence: UInt16 = 0
    private var started = false
    private var fragmentOpen = false
    private var fragmentType: UInt8 = 0

    /// A depacketizer accepting access units up to `maxAccessUnitBytes` (a 1080p IDR rarely exceeds 500 kB).
    public init(maxAccessUnitBytes: Int = 4 << 20) {
        accessUnit = ByteAccumulator(initialCapacity: 256 << 10, limit: maxAccessUnitBytes)
    }

    deinit { accessUnit.free() }

    /// Returns whether a keyframe is wanted and clears the request.
    public func takeKeyframeRequest() -> Bool {
        defer { keyframeRequested = false }
        return keyframeRequested
    }

    public func push(packet: UnsafeRawBufferPointer, deliver: (ReceivedVideoFrame) -> Void) {
        let header: RTPHeader
        do { header = try RTPHeader.parse(packet) } catch { counters.notRTP += 1; return }
        push(header: header, payload: UnsafeRawBufferPointer(rebasing: packet[header.payloadOffset..<header.payloadOffset + header.payloadLength]),
             deliver: deliver)
    }

    public func push(header: RTPHeader, payload: UnsafeRawBufferPointer, deliver: (ReceivedVideoFrame) -> Void) {
        if started && header.sequence != expectedSequence {
            counters.gaps += 1
            keyframeRequested = true
            // The lost packets belonged to the access unit in progress, or to one we never saw.
            if inProgress { damaged = true }
        }
        started = true
        expectedSequence = header.sequence &+ 1
        if inProgress && header.timestamp != timestamp {
            finish(deliver: deliver)  // the previous access unit's marker was not set
        }
        if !inProgress {
            inProgress = true
            timestamp = header.timestamp
            damaged = false
            hasIDR = false
            fragmentOpen = false
            accessUnit.reset()
        }
        if !damaged { damaged = !append(payload) }
        if header.marker { finish(deliver: deliver) }
    }

    private func finish(deliver: (ReceivedVideoFrame) -> Void) {
        if fragmentOpen { damaged = true }  // an FU-A without its end
        if damaged || accessUnit.count == 0 {
            counters.droppedFrames += 1
            keyframeRequested = true
        } else {
            counters.frames += 1
            deliver(ReceivedVideoFrame(bytes: accessUnit.bytes, timestamp: timestamp, isKeyframe: hasIDR))
        }
        inProgress = false
        fragmentOpen = false
        accessUnit.reset()
    }

    /// Appends one payload's NAL units; false when the access unit must be dropped.
    private func append(_ p: UnsafeRawBufferPointer) -> Bool {
        guard !p.isEmpty else { counters.malformed += 1; return false }
        let type = p[0] & 0x1F
        switch type {
        case 1...23:
            if fragmentOpen { return false }
            return appendNAL(p)
        case 24:  // STAP-A: 16-bit size, NAL unit, ...
            if fragmentOpen { return false }
            var o = 1
            guard p.count > 3 else { counters.malformed += 1; return false }
            while o < p.count {
                guard o + 2 <= p.count else { counters.malformed += 1; return false }
                let size = Int(readU16(p, o))
                guard size > 0, o + 2 + size <= p.count else { counters.malformed += 1; return false }
                let nested = p[o + 2] & 0x1F
                guard nested >= 1 && nested <= 23 else { counters.malformed += 1; return false }  // no aggregates in aggregates
                guard appendNAL(UnsafeRawBufferPointer(rebasing: p[o + 2..<o + 2 + size])) else { return false }
                o += 2 + size
            }
            return true
        case 28:  // FU-A
            guard p.count > 2 else { counters.malformed += 1; return false }
            let fu = p[1]
            let isStart = fu & 0x80 != 0, isEnd = fu & 0x40 != 0
            let nalType = fu & 0x1F
            guard !(isStart && isEnd), nalType != 0, nalType < 24 else { counters.malformed += 1; return false }
            let body = UnsafeRawBufferPointer(rebasing: p[2...])
            if isStart {
                if fragmentOpen { return false }  // the previous fragmented NAL unit lost its end
                fragmentOpen = true
                fragmentType = nalType
                if nalType == 5 { hasIDR = true }
                return appendStartCode() && grow(byte: (p[0] & 0xE0) | nalType) && grow(body)
            }
            guard fragmentOpen, nalType == fragmentType else { return false }  // its start was lost
            if isEnd { fragmentOpen = false }
            return grow(body)
        default:  // 0, 30, 31 reserved; 25-27, 29: STAP-B, MTAP16/24, FU-B (interleaved mode)
            counters.unsupported += 1
            return false
        }
    }

    private func appendNAL(_ nal: UnsafeRawBufferPointer) -> Bool {
        if nal[0] & 0x1F == 5 { hasIDR = true }
        return appendStartCode() && grow(nal)
    }

    private func appendStartCode() -> Bool {
        grow(byte: 0) && grow(byte: 0) && grow(byte: 0) && grow(byte: 1)
    }

    private func grow(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if accessUnit.append(bytes) { return true }
        counters.oversized += 1
        return false
    }

    private func grow(byte: UInt8) -> Bool {
        if accessUnit.append(byte: byte) { return true }
        counters.oversized += 1
        return false
    }
}
