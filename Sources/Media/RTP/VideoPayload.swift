/// Why an encoded video frame could not be cut into RTP packets. The frame is not sent; the sender
/// counts it and the next frame is tried (a camera keeps delivering).
public enum VideoPayloadError: Error, Sendable, Equatable {
    /// The frame has no bytes.
    case emptyFrame
    /// An H.264 access unit that does not begin with an Annex-B start code (00 00 01 or 00 00 00 01):
    /// pass the encoder's byte stream, not AVCC (length-prefixed) NAL units.
    case missingStartCode
    /// An H.264 access unit with start codes but no NAL unit bytes.
    case noNALUnits
    /// The maximum payload is too small to carry a fragment (at least 16 bytes are needed).
    case payloadSizeTooSmall
    /// Not a JPEG file (no SOI marker at its start).
    case notJPEG
    /// A JPEG whose segments run past its end or lack a part RTP needs (the name says which).
    case truncatedJPEG(String)
    /// A JPEG coding RFC 2435 cannot carry: only baseline (SOF0) 8-bit YCbCr with 2x1 or 2x2 luma
    /// sampling and 1x1 chroma (4:2:2 or 4:2:0) is carried; configure the camera or encoder for that.
    case unsupportedJPEG(String)
    /// Huffman tables other than the JPEG standard's (ITU T.81 Annex K): RFC 2435 receivers rebuild the
    /// standard tables, so such a frame would decode wrongly. Turn off "optimised" Huffman coding.
    case nonStandardHuffmanTables
    /// The picture is larger than RFC 2435's 2040 x 2040 pixels.
    case pictureTooLarge
}

/// Cuts one encoded video frame into RTP payloads; the RTP header is the sender's job.
public protocol VideoPacketizer {
    /// Calls `emit(payload, last)` once per RTP payload of `frame`, in order; `last` marks the packet
    /// that ends the frame (the RTP marker bit). The payload is valid only during the call.
    mutating func packetize(_ frame: UnsafeRawBufferPointer,
                            emit: (UnsafeRawBufferPointer, Bool) -> Void) throws(VideoPayloadError)
}

/// A video frame rebuilt from RTP packets: valid only while the depacketizer's callback runs.
public struct ReceivedVideoFrame {
    /// The frame's bytes: an Annex-B access unit (4-byte start codes) for H.264, a JFIF file for JPEG.
    public var bytes: UnsafeRawBufferPointer
    /// Its 90 kHz RTP timestamp.
    public var timestamp: UInt32
    /// True for an H.264 access unit with an IDR slice, and for every JPEG frame.
    public var isKeyframe: Bool
}

/// Counters every video depacketizer keeps (a technician reads them in diagnostics; the fuzz loop prints
/// them as refused inputs).
public struct VideoDepacketizerCounters: Sendable, Equatable {
    /// Frames delivered whole.
    public var frames = 0
    /// Frames dropped because a packet of theirs was lost, malformed or unsupported.
    public var droppedFrames = 0
    /// Packets whose payload was malformed (truncated, bad sizes or offsets, reserved values).
    public var malformed = 0
    /// Packets of a payload structure this receiver does not handle (STAP-B, MTAP, FU-B, JPEG types
    /// other than 0, 1, 64, 65).
    public var unsupported = 0
    /// Sequence gaps seen (one or more packets lost, or reordered: video has no jitter buffer).
    public var gaps = 0
    /// Frames that grew past the size limit.
    public var oversized = 0
    /// Packets that were not RTP at all.
    public var notRTP = 0

    /// Zero counters.
    public init() {}

    /// Packets or frames refused for any reason.
    public var refused: Int { malformed + unsupported + oversized + notRTP }
}

/// Rebuilds video frames from RTP packets of one stream.
public protocol VideoDepacketizer: AnyObject {
    /// What was delivered and refused so far.
    var counters: VideoDepacketizerCounters { get }
    /// Feeds one RTP packet (header included); calls `deliver` when it completes a frame.
    func push(packet: UnsafeRawBufferPointer, deliver: (ReceivedVideoFrame) -> Void)
    /// Feeds one parsed RTP packet; `payload` is the RTP payload, padding excluded.
    func push(header: RTPHeader, payload: UnsafeRawBufferPointer, deliver: (ReceivedVideoFrame) -> Void)
}

/// A growable byte buffer that keeps its storage between frames, so steady-state reassembly allocates
/// nothing once it has seen the largest frame.
struct ByteAccumulator {
    private(set) var storage: UnsafeMutableRawBufferPointer
    private(set) var count = 0
    let limit: Int

    init(initialCapacity: Int, limit: Int) {
        storage = .allocate(byteCount: max(16, initialCapacity), alignment: 16)
        self.limit = limit
    }

    func free() { storage.deallocate() }

    mutating func reset() { count = 0 }

    /// Appends `bytes`; false (nothing appended) when the limit would be passed.
    mutating func append(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard reserve(bytes.count) else { return false }
        if let base = bytes.baseAddress, bytes.count > 0 {
            (storage.baseAddress! + count).copyMemory(from: base, byteCount: bytes.count)
        }
        count += bytes.count
        return true
    }

    mutating func append(byte: UInt8) -> Bool {
        guard reserve(1) else { return false }
        storage[count] = byte
        count += 1
        return true
    }

    mutating func append(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { append($0) }
    }

    private mutating func reserve(_ extra: Int) -> Bool {
        guard count + extra <= limit else { return false }
        if count + extra > storage.count {
            let grown = UnsafeMutableRawBufferPointer.allocate(byteCount: min(limit, max(count + extra, storage.count * 2)), alignment: 16)
            if count > 0 { grown.baseAddress!.copyMemory(from: storage.baseAddress!, byteCount: count) }
            storage.deallocate()
            storage = grown
        }
        return true
    }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: storage[0..<count]) }
}
