import Synchronization
import Devices
#if canImport(Glibc)
internal import Glibc
#endif

/// How the box's camera is coded on the wire.
public enum VideoCodec: String, Sendable, Codable, CaseIterable {
    /// H.264 (RFC 6184), payload type 96: a camera's own encoder or the board's M2M encoder.
    case h264
    /// JPEG (RFC 2435), static payload type 26: MJPEG cameras or the software encoder, on a LAN.
    case jpeg

    /// The RTP payload type the box uses for it.
    public var payloadType: UInt8 { self == .h264 ? 96 : 26 }
}

/// One packetizer for either codec, so a session's sender type does not depend on the camera.
public enum AnyVideoPacketizer: VideoPacketizer {
    /// H.264 single NAL / STAP-A / FU-A.
    case h264(H264Packetizer)
    /// RFC 2435 JPEG.
    case jpeg(JPEGPacketizer)

    /// A packetizer for `codec` with payloads up to `maxPayload` bytes.
    public init(codec: VideoCodec, maxPayload: Int) throws(VideoPayloadError) {
        switch codec {
        case .h264: self = .h264(try H264Packetizer(maxPayload: maxPayload))
        case .jpeg: self = .jpeg(try JPEGPacketizer(maxPayload: maxPayload))
        }
    }

    public mutating func packetize(_ frame: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer, Bool) -> Void) throws(VideoPayloadError) {
        switch self {
        case .h264(var p):
            defer { self = .h264(p) }
            try p.packetize(frame, emit: emit)
        case .jpeg(var p):
            defer { self = .jpeg(p) }
            try p.packetize(frame, emit: emit)
        }
    }
}

/// How the lesson's video sessions run.
public struct VideoSessionSettings: Sendable, Equatable {
    /// What this box sends (nil: it has no camera and only receives).
    public var codec: VideoCodec?
    /// The SRTP profile; `srtpMaster` holds its key then its salt (16 + 14 bytes for AES-CM, 16 + 12 for GCM).
    public var srtpProfile: SRTPProfile = .aes128CmHmacSha1_80
    /// The SRTP master key and salt; nil: plain RTP.
    public var srtpMaster: [UInt8]?
    /// The box's RTCP canonical name (the same as its audio sessions').
    public var cname: String
    /// Largest RTP payload (keeps packets under a 1500-byte MTU with headers and the SRTP tag).
    public var maxPayload: Int = 1200
    /// Encoded frames waiting between the camera thread and the network thread; more are dropped and counted.
    public var queueFrames: Int = 4
    /// Largest encoded frame accepted from the camera, in bytes.
    public var maxFrameBytes: Int = 1 << 20
    /// Shortest time between two keyframe requests to one peer, in seconds.
    public var keyframeRequestInterval: Double = 0.5

    /// Settings from their parts.
    public init(codec: VideoCodec?, srtpProfile: SRTPProfile = .aes128CmHmacSha1_80, srtpMaster: [UInt8]?, cname: String) {
        self.codec = codec
        self.srtpProfile = srtpProfile
        self.srtpMaster = srtpMaster
        self.cname = cname
    }
}

/// Where the box's coded video comes from: a camera (passthrough H.264 or MJPEG), a camera and an
/// encoder, or the simulated camera. Runs on the video capture thread only.
public protocol VideoFrameSource: AnyObject {
    /// What is sent: H.264 or JPEG.
    var codec: VideoCodec { get }
    /// A line for the log: device, mode, encoder.
    var summary: String { get }
    /// Waits for the next coded frame (up to about `timeoutMs`) and hands it to `body` with its capture
    /// time (CLOCK_MONOTONIC ns) and whether it is a keyframe; false when none came (timeout, device gone).
    func nextFrame(timeoutMs: Int, _ body: (UnsafeRawBufferPointer, Int64, Bool) -> Void) -> Bool
    /// Asks for a keyframe soon (a receiver lost a picture). JPEG frames are all keyframes.
    func requestKeyframe()
    /// Frames the source itself dropped or failed to code.
    var failures: Int { get }
}

/// Counters of one peer's video session (JSON in the lesson report).
public struct VideoSessionSnapshot: Sendable, Codable, Equatable {
    /// The peer's id.
    public var peer: String
    /// Frames sent to the peer, RTP packets and payload bytes.
    public var framesSent = 0, packetsSent = 0, bytesSent = 0
    /// Frames the packetizer refused and packets the socket or SRTP refused.
    public var framesRefused = 0, sendFailures = 0
    /// Frames received whole, of them keyframes, and their bytes.
    public var framesReceived = 0, keyframesReceived = 0, bytesReceived = 0
    /// Frames received per second over the last second.
    public var fps = 0.0
    /// Frames lost on the way (a packet of theirs missing or malformed) and sequence gaps seen.
    public var framesDropped = 0, gaps = 0
    /// RTP packets received and lost (RFC 3550 A.3), interarrival jitter in ms.
    public var packetsReceived = 0, packetsLost = 0, jitterMs = 0.0
    /// Datagrams refused before depacketizing (authentication, replay, not RTP) and malformed payloads.
    public var refused = 0, malformed = 0
    /// Keyframe requests (PLI) sent to the peer, and PLI/FIR the peer sent us.
    public var keyframeRequestsSent = 0, keyframeRequestsReceived = 0
    /// RTCP packets sent, received and refused.
    public var rtcpSent = 0, rtcpReceived = 0, rtcpRefused = 0
    /// What the peer reports about our video: loss in percent and jitter in ms (from its RR).
    public var peerLossPercent = 0, peerJitterMs = 0.0
    /// Round-trip time from RTCP in ms; nil until measured.
    public var roundTripMs: Double?
    /// The peer's CNAME from its SDES, once heard.
    public var peerCname: String?
    /// The codec the peer sends, once heard ("h264" or "jpeg").
    public var peerCodec: String?
    /// The peer's address, once resolved.
    public var remote: String?

    /// Empty counters for `peer`.
    public init(peer: String) { self.peer = peer }
}

/// The whole video side of a lesson (JSON in the lesson report).
public struct VideoSnapshot: Sendable, Codable, Equatable {
    /// What this box sends ("h264", "jpeg", or nil without a camera) and the source's description.
    public var codec: String?, source: String?
    /// Frames the source delivered, frames dropped because the queue to the network was full, and the
    /// source's own failures.
    public var framesCaptured = 0, framesDroppedQueueFull = 0, sourceFailures = 0
    /// Keyframes the source delivered and keyframe requests passed to it.
    public var keyframesCaptured = 0, keyframeRequests = 0
    /// One entry per peer.
    public var sessions: [VideoSessionSnapshot] = []
    /// Seconds since the pump started.
    public var seconds = 0.0

    /// Nothing yet.
    public init() {}
}

/// A frame as the receiver hands it to the lesson (valid only during the call).
public struct ArrivedVideoFrame {
    /// Index of the peer (its session) it came from.
    public var peer: Int
    /// The codec it was sent with.
    public var codec: VideoCodec
    /// The frame (Annex-B access unit or JFIF) and its RTP timestamp, keyframe flag.
    public var frame: ReceivedVideoFrame
    /// CLOCK_MONOTONIC ns when its last packet arrived.
    public var arrivalNanoseconds: Int64
}

/// One peer's video: our camera out as RTP/SRTP (own SSRC), the peer's camera in, depacketized per
/// payload type; RTCP SR/RR with SDES CNAME once a second, PLI when a frame was lost, PLI/FIR from the
/// peer passed to our source. Touched by the video network thread only (except `setRemote`).
public final class VideoPeerSession: @unchecked Sendable {
    // @unchecked: only the video network thread touches the mutable state; `remote` is atomic.

    /// The peer's id.
    public let peerID: String
    private let remote = Atomic<UInt64>(0)
    let sender: VideoStreamSender<AnyVideoPacketizer>?
    private let outbound: SRTPContext?
    private let inbound: SRTPContext?
    private let jpeg = JPEGDepacketizer()
    private let h264 = H264Depacketizer()
    private let cname: String
    private let requestInterval: Double
    private(set) var statistics = RTPReceiverStatistics()
    private(set) var remoteSSRC: UInt32 = 0
    private var lastSRMiddle: UInt32 = 0
    private var lastSRArrival: Double = 0
    private var lastRequest = -Double.infinity
    private var needKeyframe = false
    private var firSequence: UInt8 = 0
    private var frameTimes: [Double] = []
    private(set) var counters: VideoSessionSnapshot

    /// A session with `peerID`; it sends only when `settings.codec` is set.
    public init(peerID: String, settings: VideoSessionSettings, socket: UDPSocket, rtcpSocket: UDPSocket, ssrc: UInt32) throws(SRTPError) {
        self.peerID = peerID
        counters = VideoSessionSnapshot(peer: peerID)
        cname = settings.cname
        requestInterval = settings.keyframeRequestInterval
        if let master = settings.srtpMaster {
            let keyLength = settings.srtpProfile.keyLength, saltLength = settings.srtpProfile.saltLength
            guard master.count >= keyLength + saltLength else { throw .badKey }
            let key = Array(master[0..<keyLength]), salt = Array(master[keyLength..<keyLength + saltLength])
            outbound = try SRTPContext(profile: settings.srtpProfile, masterKey: key, masterSalt: salt)
            inbound = try SRTPContext(profile: settings.srtpProfile, masterKey: key, masterSalt: salt)
        } else {
            outbound = nil
            inbound = nil
        }
        if let codec = settings.codec, let packetizer = try? AnyVideoPacketizer(codec: codec, maxPayload: settings.maxPayload) {
            sender = VideoStreamSender(packetizer: packetizer, socket: socket, rtcpSocket: rtcpSocket, srtp: outbound,
                                       payloadType: codec.payloadType, ssrc: ssrc, initialSequence: UInt16(truncatingIfNeeded: ssrc >> 9),
                                       initialTimestamp: ssrc &* 2246822519)
        } else {
            sender = nil
        }
    }

    /// Sets (or clears) the peer's video RTP address; its RTCP goes to the next port. Any thread.
    public func setRemote(_ address: UDPAddress?) { remote.store(address?.packed ?? 0, ordering: .releasing) }

    /// The peer's video RTP address, nil until resolved.
    public var remoteAddress: UDPAddress? { UDPAddress(packed: remote.load(ordering: .acquiring)) }

    // MARK: Network thread

    func send(_ frame: UnsafeRawBufferPointer, at seconds: Double) {
        guard let sender, let address = remoteAddress else { return }
        sender.destination = address
        do { try sender.send(frame, at: seconds) } catch {}
        counters.framesSent = sender.frames
        counters.framesRefused = sender.refusedFrames
        counters.packetsSent = Int(sender.packets)
        counters.bytesSent = Int(sender.octets)
        counters.sendFailures = sender.failures
    }

    /// Handles one RTP datagram from the peer; `deliver` sees each completed frame.
    func acceptRTP(_ datagram: UnsafeMutableRawBufferPointer, length: Int, now: Double, index: Int, nanoseconds: Int64,
                   deliver: (ArrivedVideoFrame) -> Void) {
        var plain = length
        if let inbound {
            do { plain = try inbound.unprotect(datagram, length: length) } catch { counters.refused += 1; return }
        }
        let header: RTPHeader
        do { header = try RTPHeader.parse(UnsafeRawBufferPointer(rebasing: datagram[0..<plain])) } catch { counters.refused += 1; return }
        let codec: VideoCodec
        switch header.payloadType {
        case VideoCodec.jpeg.payloadType: codec = .jpeg
        case VideoCodec.h264.payloadType: codec = .h264
        default: counters.refused += 1; return
        }
        if header.ssrc != remoteSSRC {
            remoteSSRC = header.ssrc
            statistics = RTPReceiverStatistics()
        }
        counters.peerCodec = codec.rawValue
        statistics.record(sequence: header.sequence, timestamp: header.timestamp, arrival: now * 90000)
        let depacketizer: any VideoDepacketizer = codec == .jpeg ? jpeg : h264
        let before = depacketizer.counters
        depacketizer.push(header: header, payload: UnsafeRawBufferPointer(rebasing: datagram[header.payloadOffset..<header.payloadOffset + header.payloadLength])) { frame in
            counters.framesReceived += 1
            counters.bytesReceived += frame.bytes.count
            if frame.isKeyframe { counters.keyframesReceived += 1 }
            frameTimes.append(now)
            deliver(ArrivedVideoFrame(peer: index, codec: codec, frame: frame, arrivalNanoseconds: nanoseconds))
        }
        let after = depacketizer.counters
        if after.droppedFrames > before.droppedFrames || after.gaps > before.gaps { needKeyframe = true }
        if codec == .h264 && h264.takeKeyframeRequest() { needKeyframe = true }
    }

    /// Handles one RTCP datagram from the peer; returns how many keyframe requests it carried for us.
    func acceptRTCP(_ datagram: UnsafeMutableRawBufferPointer, length: Int, now: Double) -> Int {
        var plain = length
        if let inbound {
            do { plain = try inbound.unprotectRTCP(datagram, length: length) } catch { counters.rtcpRefused += 1; return 0 }
        }
        let packet = UnsafeRawBufferPointer(rebasing: datagram[0..<plain])
        let reports: [RTCPReport], extras: RTCPExtras
        do {
            reports = try RTCPReport.parseCompound(packet)
            extras = try RTCPExtras.parse(packet)
        } catch {
            counters.rtcpRefused += 1
            return 0
        }
        counters.rtcpReceived += 1
        for report in reports {
            if let info = report.sender {
                lastSRMiddle = UInt32(truncatingIfNeeded: info.ntp >> 16)
                lastSRArrival = now
            }
            for block in report.blocks where block.ssrc == sender?.ssrc {
                counters.peerLossPercent = block.lossPercent
                counters.peerJitterMs = Double(block.jitter) / 90
                if let rtt = block.roundTrip(arrivalMiddle32: ntpMiddle32(ntpNow())) { counters.roundTripMs = rtt * 1000 }
            }
        }
        if let name = extras.descriptions.first?.cname { counters.peerCname = name }
        var requests = 0
        for request in extras.keyframeRequests where sender != nil && request.mediaSSRC == sender?.ssrc {
            requests += 1
        }
        counters.keyframeRequestsReceived += requests
        return requests
    }

    /// Writes the compound RTCP packet: SR (or RR without a camera) with a block on the peer's stream,
    /// SDES CNAME, and a PLI when `keyframe` asks; protected with SRTCP. Returns its length (0: nothing).
    func makeRTCP(into buffer: UnsafeMutableRawBufferPointer, now: Double, keyframe: Bool) -> Int {
        var blocks: [RTCPReportBlock] = []
        if remoteSSRC != 0 {
            let delay = lastSRMiddle == 0 ? 0 : UInt32(max(0, (now - lastSRArrival) * 65536))
            blocks.append(statistics.reportBlock(ssrc: remoteSSRC, lastSR: lastSRMiddle, delaySinceLastSR: delay))
        }
        let ownSSRC = sender?.ssrc ?? localSSRC
        let info = sender.map {
            RTCPReport.SenderInfo(ntp: ntpNow(), rtpTimestamp: $0.lastFrameTimestamp, packetCount: $0.packets, octetCount: $0.octets)
        }
        guard var length = RTCPReport(ssrc: ownSSRC, sender: info, blocks: blocks).write(into: buffer) else { return 0 }
        guard let sdes = RTCPSourceDescription(ssrc: ownSSRC, cname: cname)
            .write(into: UnsafeMutableRawBufferPointer(rebasing: buffer[length...])) else { return 0 }
        length += sdes
        if keyframe && remoteSSRC != 0 {
            guard let pli = RTCPKeyframeRequest.pli(sender: ownSSRC, media: remoteSSRC)
                .write(into: UnsafeMutableRawBufferPointer(rebasing: buffer[length...])) else { return 0 }
            length += pli
            counters.keyframeRequestsSent += 1
        }
        if let outbound {
            do { length = try outbound.protectRTCP(buffer, length: length) } catch { return 0 }
        }
        return length
    }

    /// A receive-only box's SSRC for its reports.
    private lazy var localSSRC: UInt32 = {
        var generator = SystemRandomNumberGenerator()
        return generator.next()
    }()

    /// Whether a PLI is due now (a frame was lost and the last request is old enough).
    func keyframeDue(now: Double) -> Bool {
        guard needKeyframe, now - lastRequest >= requestInterval else { return false }
        needKeyframe = false
        lastRequest = now
        return true
    }

    /// The counters now.
    func snapshot(now: Double) -> VideoSessionSnapshot {
        var s = counters
        frameTimes.removeAll { now - $0 > 1 }
        s.fps = Double(frameTimes.count)
        let depacketized = (jpeg.counters, h264.counters)
        s.framesDropped = depacketized.0.droppedFrames + depacketized.1.droppedFrames
        s.gaps = depacketized.0.gaps + depacketized.1.gaps
        s.malformed = depacketized.0.refused + depacketized.1.refused
        s.packetsReceived = Int(statistics.received)
        s.packetsLost = max(0, Int(statistics.cumulativeLost))
        s.jitterMs = statistics.jitter / 90
        s.remote = remoteAddress?.description
        return s
    }
}

/// A bounded queue of coded frames from the capture thread to the network thread: fixed slots allocated
/// once; a frame that finds every slot full is dropped and counted (video never waits, never grows).
final class VideoFrameQueue: @unchecked Sendable {
    // @unchecked: the slots are guarded by `state`'s lock; a slot's bytes belong to one side at a time.
    private struct Slot { var length = 0; var nanoseconds: Int64 = 0; var keyframe = false }
    private struct State { var head = 0; var count = 0; var slots: [Slot] }
    private let state: Mutex<State>
    private let storage: [UnsafeMutableRawBufferPointer]
    let capacity: Int
    let slotBytes: Int

    init(capacity: Int, slotBytes: Int) {
        self.capacity = max(1, capacity)
        self.slotBytes = slotBytes
        storage = (0..<max(1, capacity)).map { _ in .allocate(byteCount: slotBytes, alignment: 16) }
        state = Mutex(State(slots: [Slot](repeating: Slot(), count: max(1, capacity))))
    }

    deinit { storage.forEach { $0.deallocate() } }

    /// Copies `frame` in; false when the queue is full or the frame too large (the caller counts the drop).
    func push(_ frame: UnsafeRawBufferPointer, nanoseconds: Int64, keyframe: Bool) -> Bool {
        guard frame.count <= slotBytes else { return false }
        let tail: Int? = state.withLock { s in s.count < capacity ? (s.head + s.count) % capacity : nil }
        guard let tail else { return false }
        if let base = frame.baseAddress, frame.count > 0 { storage[tail].baseAddress!.copyMemory(from: base, byteCount: frame.count) }
        state.withLock { s in
            s.slots[tail] = Slot(length: frame.count, nanoseconds: nanoseconds, keyframe: keyframe)
            s.count += 1
        }
        return true
    }

    /// Hands the oldest frame to `body` and frees its slot; false when empty.
    func pop(_ body: (UnsafeRawBufferPointer, Int64, Bool) -> Void) -> Bool {
        let slot: (Int, Slot)? = state.withLock { s in s.count > 0 ? (s.head, s.slots[s.head]) : nil }
        guard let (index, info) = slot else { return false }
        body(UnsafeRawBufferPointer(rebasing: storage[index][0..<info.length]), info.nanoseconds, info.keyframe)
        state.withLock { s in
            s.head = (s.head + 1) % capacity
            s.count -= 1
        }
        return true
    }
}

/// The lesson's video, beside (never inside) the audio path: a capture thread pulls coded frames from the
/// source into a bounded queue; a network thread sends them to every peer, receives the peers' video on
/// the video port (RTCP on the next), depacketizes, hands whole frames to `sink`, sends RTCP once a
/// second and PLI on loss, and passes the peers' keyframe requests to the source. Neither thread is
/// real-time; nothing here shares a lock with audio.
public final class LiveVideoPump: @unchecked Sendable {
    // @unchecked: each thread owns its state; counters cross threads under `published`'s lock.
    /// The peers' sessions, in configuration order.
    public let sessions: [VideoPeerSession]
    private let rtp: UDPSocket, rtcp: UDPSocket
    private let source: (any VideoFrameSource)?
    private let sink: (ArrivedVideoFrame) -> Void
    private let queue: VideoFrameQueue
    private let stopFlag = Atomic<Bool>(false)
    private let keyframeWanted = Atomic<Bool>(false)
    private let published = Mutex(VideoSnapshot())
    private var captureThread: RealtimeThread?
    private var networkThread: RealtimeThread?
    private let started = monotonicNanoseconds()
    // Capture-thread counters, published through atomics.
    private let captured = Atomic<Int>(0), queueDrops = Atomic<Int>(0), keyframesCaptured = Atomic<Int>(0), requests = Atomic<Int>(0)
    private let sourceFailures = Atomic<Int>(0)

    /// A pump for `sessions` on the video sockets, sending `source`'s frames (nil: receive only) and
    /// handing received frames to `sink` (on the network thread; keep it short).
    public init(sessions: [VideoPeerSession], rtp: UDPSocket, rtcp: UDPSocket, source: (any VideoFrameSource)?,
                settings: VideoSessionSettings, sink: @escaping (ArrivedVideoFrame) -> Void) {
        self.sessions = sessions
        self.rtp = rtp
        self.rtcp = rtcp
        self.source = source
        self.sink = sink
        queue = VideoFrameQueue(capacity: settings.queueFrames, slotBytes: settings.maxFrameBytes)
        var initial = VideoSnapshot()
        initial.codec = source?.codec.rawValue
        initial.source = source?.summary
        initial.sessions = sessions.map { VideoSessionSnapshot(peer: $0.peerID) }
        published.withLock { $0 = initial }
    }

    /// Starts the capture (when there is a source) and network threads.
    public func start() {
        stopFlag.store(false, ordering: .releasing)
        if let source {
            captureThread = RealtimeThread(name: "classbox-video-capture", priority: nil) { [unowned self] in capture(source) }
        }
        networkThread = RealtimeThread(name: "classbox-video-net", priority: nil) { [unowned self] in network() }
    }

    /// Stops both threads and publishes the final counters.
    public func stop() {
        stopFlag.store(true, ordering: .releasing)
        captureThread?.join()
        networkThread?.join()
        captureThread = nil
        networkThread = nil
    }

    /// The counters as last published (about once a second, and at stop).
    public func snapshot() -> VideoSnapshot { published.withLock { $0 } }

    private var stopping: Bool { stopFlag.load(ordering: .acquiring) }

    private func capture(_ source: any VideoFrameSource) {
        while !stopping {
            if keyframeWanted.exchange(false, ordering: .acquiringAndReleasing) {
                source.requestKeyframe()
                requests.add(1, ordering: .relaxed)
            }
            _ = source.nextFrame(timeoutMs: 200) { bytes, nanoseconds, keyframe in
                captured.add(1, ordering: .relaxed)
                if keyframe { keyframesCaptured.add(1, ordering: .relaxed) }
                if !queue.push(bytes, nanoseconds: nanoseconds, keyframe: keyframe) {
                    queueDrops.add(1, ordering: .relaxed)
                    // A lost H.264 frame breaks the pictures after it: start again from a keyframe.
                    if source.codec == .h264 { keyframeWanted.store(true, ordering: .releasing) }
                }
            }
            sourceFailures.store(source.failures, ordering: .relaxed)
        }
    }

    private func network() {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: 2048, alignment: 16)
        defer { buffer.deallocate(); out.deallocate() }
        var lastReport = -Double.infinity
        var lastPublish = -Double.infinity
        while !stopping {
            // Frames first: they have a deadline; then whatever arrived, for up to 5 ms.
            while queue.pop({ bytes, nanoseconds, _ in
                let seconds = Double(nanoseconds - started) / 1e9
                for session in sessions { session.send(bytes, at: seconds) }
            }) {}
            var from = UDPAddress(ip: 0, port: 0)
            let n = rtp.receive(into: buffer, timeoutMs: 5, from: &from)
            let nanoseconds = monotonicNanoseconds()
            let now = Double(nanoseconds) / 1e9
            if n > 0, let index = sessionIndex(from: from, rtcp: false) {
                sessions[index].acceptRTP(buffer, length: n, now: now, index: index, nanoseconds: nanoseconds, deliver: sink)
            }
            var rtcpFrom = UDPAddress(ip: 0, port: 0)
            while true {
                let m = rtcp.receive(into: buffer, timeoutMs: 0, from: &rtcpFrom)
                guard m > 0 else { break }
                if let index = sessionIndex(from: rtcpFrom, rtcp: true),
                   sessions[index].acceptRTCP(buffer, length: m, now: now) > 0 {
                    keyframeWanted.store(true, ordering: .releasing)
                }
            }
            let reportDue = now - lastReport >= 1
            if reportDue { lastReport = now }
            for session in sessions {
                let keyframe = session.keyframeDue(now: now)
                guard reportDue || keyframe, let address = session.remoteAddress else { continue }
                let length = session.makeRTCP(into: out, now: now, keyframe: keyframe)
                if length > 0, rtcp.send(UnsafeRawBufferPointer(rebasing: out[0..<length]), to: address.with(port: address.port &+ 1)) {
                    session.noteRTCPSent()
                }
            }
            if now - lastPublish >= 1 {
                lastPublish = now
                publish(now: now)
            }
        }
        publish(now: Double(monotonicNanoseconds()) / 1e9)
    }

    /// The session whose peer sent from `from` (its video port, or the next one for RTCP); when
    /// addresses are not resolved yet or the peer's source port differs, the only session with that IP.
    private func sessionIndex(from: UDPAddress, rtcp: Bool) -> Int? {
        var sameIP: [Int] = []
        for (i, session) in sessions.enumerated() {
            guard let remote = session.remoteAddress else { continue }
            let port = rtcp ? remote.port &+ 1 : remote.port
            if remote.ip == from.ip && port == from.port { return i }
            if remote.ip == from.ip { sameIP.append(i) }
        }
        return sameIP.count == 1 ? sameIP[0] : nil
    }

    private func publish(now: Double) {
        var snapshot = VideoSnapshot()
        snapshot.codec = source?.codec.rawValue
        snapshot.source = source?.summary
        snapshot.framesCaptured = captured.load(ordering: .relaxed)
        snapshot.framesDroppedQueueFull = queueDrops.load(ordering: .relaxed)
        snapshot.keyframesCaptured = keyframesCaptured.load(ordering: .relaxed)
        snapshot.keyframeRequests = requests.load(ordering: .relaxed)
        snapshot.sourceFailures = sourceFailures.load(ordering: .relaxed)
        snapshot.sessions = sessions.map { $0.snapshot(now: now) }
        snapshot.seconds = Double(monotonicNanoseconds() - started) / 1e9
        published.withLock { $0 = snapshot }
    }
}

extension VideoPeerSession {
    func noteRTCPSent() { counters.rtcpSent += 1 }
}

/// The media clock the box's layers share (CLOCK_MONOTONIC), for code above Media that must not call C.
public enum MediaClock {
    /// CLOCK_MONOTONIC in nanoseconds.
    public static func monotonicNanoseconds() -> Int64 { Media.monotonicNanoseconds() }
}
