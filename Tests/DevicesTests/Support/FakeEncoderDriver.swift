import CV4L2
@testable import Devices
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A scripted stateful V4L2 memory-to-memory encoder behind the `VideoKernel` seam, as
/// dev-encoder.rst describes one: OUTPUT takes raw frames, CAPTURE gives coded ones, one per raw frame
/// while both queues stream and hold buffers; V4L2_ENC_CMD_STOP marks the coded frame of the last raw
/// frame queued before it (or an empty buffer, when none is pending) with V4L2_BUF_FLAG_LAST, after
/// which DQBUF(CAPTURE) fails with EPIPE until V4L2_ENC_CMD_START. poll reports POLLOUT/POLLIN/POLLERR
/// as v4l2-mem2mem does. Single- or multi-planar; sizes aligned to 16 like a macroblock encoder. A coded
/// frame is "FAKE", the frame number, the first 8 raw bytes, the first 8 bytes of NV12's chroma plane,
/// then padding to a size that grows with the raw payload; key frames by GOP and on request.
final class FakeEncoderDriver: VideoKernel, @unchecked Sendable {
    // @unchecked: all state is used under `lock`.
    struct Buffer { var region: UnsafeMutableRawBufferPointer; var bytesUsed = 0; var flags: UInt32 = 0; var timestamp = timeval(); var sequence: UInt32 = 0 }
    struct Queue { var buffers: [Buffer] = []; var queued: [Int] = []; var done: [Int] = []; var streaming = false }

    private let lock = Mutex(())
    let multiplanar: Bool
    let path = "/dev/video11"
    var present = true
    var hasFrameRate = true
    var hasKeyFrameControl = true
    /// Keep the end-of-stream state through V4L2_ENC_CMD_START (until the CAPTURE queue restarts), as
    /// vicodec in Linux 6.1 does.
    var startKeepsLast = false
    /// Calls in order, as "S_FMT coded H264", "S_PARM 30", "S_CTRL video_bitrate=1500000"...
    var log: [String] = []
    var raw = Queue(), coded = Queue()
    var rawFormat = FourCC.nv12, codedFormat = FourCC.h264
    var width = 0, height = 0
    var gop = 12, bitrate = 0
    var frames = 0
    var forceKey = false
    var stopAfterRaw: Int? = nil    // raw buffer whose coded frame is LAST
    var nextCodedIsLast = false
    var lastDequeued = false
    var draining = false
    private var open: Set<Int32> = []

    init(multiplanar: Bool) { self.multiplanar = multiplanar }

    var captureType: UInt32 { (multiplanar ? V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE : V4L2_BUF_TYPE_VIDEO_CAPTURE).rawValue }
    var outputType: UInt32 { (multiplanar ? V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE : V4L2_BUF_TYPE_VIDEO_OUTPUT).rawValue }

    func unplug() { lock.withLock { _ in present = false } }
    func plug() { lock.withLock { _ in present = true } }
    var history: [String] { lock.withLock { _ in log } }

    func devicePaths() -> [String] { lock.withLock { _ in present ? [path] : [] } }

    func open(_ path: String) throws(Errno) -> Int32 {
        try lock.withLock { _ throws(Errno) in
            guard present, path == self.path else { throw Errno.noEntry }
            let fd = Int32(20 + open.count)
            open.insert(fd)
            return fd
        }
    }

    func close(_ fd: Int32) {
        lock.withLock { _ in
            open.remove(fd)
            if open.isEmpty { reset() }
        }
    }

    private func reset() {
        for b in raw.buffers + coded.buffers { b.region.deallocate() }
        raw = Queue(); coded = Queue()
        frames = 0; stopAfterRaw = nil; nextCodedIsLast = false; lastDequeued = false; draining = false
    }

    func map(_ fd: Int32, length: Int, offset: Int) throws(Errno) -> UnsafeMutableRawBufferPointer {
        try lock.withLock { _ throws(Errno) in
            let isCoded = offset >= 0x1000_0000
            let index = (offset & 0xfff_ffff) / 4096
            let q = isCoded ? coded : raw
            guard index < q.buffers.count, q.buffers[index].region.count == length else { throw Errno.invalidArgument }
            return q.buffers[index].region
        }
    }

    func unmap(_ region: UnsafeMutableRawBufferPointer) {}

    func waitReadable(_ fd: Int32, timeoutMs: Int32) throws(Errno) -> Bool {
        try poll(fd, events: Int16(POLLIN), timeoutMs: timeoutMs) & Int16(POLLIN) != 0
    }

    func poll(_ fd: Int32, events: Int16, timeoutMs: Int32) throws(Errno) -> Int16 {
        lock.withLock { _ in
            guard present else { return Int16(POLLERR | POLLHUP) }
            process()
            if (!raw.streaming || raw.queued.isEmpty) && (!coded.streaming || (coded.queued.isEmpty && !lastDequeued)) { return Int16(POLLERR) }
            var r: Int16 = 0
            if !raw.done.isEmpty { r |= Int16(POLLOUT) }
            if !coded.done.isEmpty || lastDequeued { r |= Int16(POLLIN) }
            return r & (events | Int16(POLLERR))
        }
    }

    /// The encoder at work: one coded frame per raw frame while both queues stream.
    private func process() {
        guard raw.streaming, coded.streaming else { return }
        if nextCodedIsLast, let c = coded.queued.first {
            coded.queued.removeFirst()
            coded.buffers[c].bytesUsed = 0
            coded.buffers[c].flags = UInt32(V4L2_BUF_FLAG_LAST)
            coded.done.append(c)
            nextCodedIsLast = false
            draining = false
        }
        while let r = raw.queued.first, let c = coded.queued.first {
            raw.queued.removeFirst(); coded.queued.removeFirst()
            let input = raw.buffers[r]
            var output = coded.buffers[c]
            let key = frames % gop == 0 || forceKey
            forceKey = false
            let size = 20 + input.bytesUsed / 64
            let bytes = output.region
            bytes.initializeMemory(as: UInt8.self, repeating: 0xAA)
            bytes.copyBytes(from: Array("FAKE".utf8))
            bytes.storeBytes(of: UInt32(frames), toByteOffset: 4, as: UInt32.self)
            for i in 0..<min(8, input.bytesUsed) { bytes[8 + i] = input.region[i] }
            let chroma = width * height  // NV12's second plane, after the padded luma rows
            if rawFormat == .nv12 && input.bytesUsed >= chroma + 8 { for i in 0..<8 { bytes[16 + i] = input.region[chroma + i] } }
            output.bytesUsed = size
            output.flags = key ? UInt32(V4L2_BUF_FLAG_KEYFRAME) : UInt32(V4L2_BUF_FLAG_PFRAME)
            output.timestamp = input.timestamp
            output.sequence = UInt32(frames)
            if stopAfterRaw == r {
                output.flags |= UInt32(V4L2_BUF_FLAG_LAST)
                stopAfterRaw = nil
                draining = false
            }
            coded.buffers[c] = output
            coded.done.append(c)
            raw.done.append(r)
            frames += 1
        }
    }

    func ioctl(_ fd: Int32, _ request: VideoRequest, _ argument: UnsafeMutableRawBufferPointer) throws(Errno) {
        try lock.withLock { _ throws(Errno) in
            guard present else { throw Errno.noDevice }
            guard open.contains(fd) else { throw Errno(EBADF) }
            let p = argument.baseAddress!
            switch request {
            case .queryCapability:
                let cap = p.assumingMemoryBound(to: v4l2_capability.self)
                fill("fake-codec", &cap.pointee.driver)
                fill("Fake Encoder", &cap.pointee.card)
                fill("platform:fake-codec", &cap.pointee.bus_info)
                cap.pointee.device_caps = UInt32(multiplanar ? V4L2_CAP_VIDEO_M2M_MPLANE : V4L2_CAP_VIDEO_M2M) | UInt32(V4L2_CAP_STREAMING)
                cap.pointee.capabilities = cap.pointee.device_caps | UInt32(V4L2_CAP_DEVICE_CAPS)
            case .enumerateFormat:
                let d = p.assumingMemoryBound(to: v4l2_fmtdesc.self)
                let list: [FourCC] = d.pointee.type == captureType ? [.h264] : d.pointee.type == outputType ? [.nv12, .yuyv] : []
                guard Int(d.pointee.index) < list.count else { throw Errno.invalidArgument }
                d.pointee.pixelformat = list[Int(d.pointee.index)].rawValue
                d.pointee.flags = list[Int(d.pointee.index)].isCompressed ? UInt32(V4L2_FMT_FLAG_COMPRESSED) : 0
                fill(list[Int(d.pointee.index)].description, &d.pointee.description)
            case .enumerateFrameSizes, .enumerateFrameIntervals, .getParameters, .getControl, .queryMenu:
                throw Errno(ENOTTY)
            case .setFormat:
                let f = p.assumingMemoryBound(to: v4l2_format.self)
                guard f.pointee.type == captureType || f.pointee.type == outputType else { throw Errno.invalidArgument }
                let isCoded = f.pointee.type == captureType
                guard (isCoded ? coded : raw).buffers.isEmpty else { throw Errno.busy }
                let fourcc = FourCC(rawValue: multiplanar ? f.pointee.fmt.pix_mp.pixelformat : f.pointee.fmt.pix.pixelformat)
                var w = Int(multiplanar ? f.pointee.fmt.pix_mp.width : f.pointee.fmt.pix.width)
                var h = Int(multiplanar ? f.pointee.fmt.pix_mp.height : f.pointee.fmt.pix.height)
                let sizeImage: Int
                if isCoded {
                    codedFormat = .h264
                    sizeImage = 512 * 1024
                    log.append("S_FMT coded \(fourcc)")
                } else {
                    rawFormat = [FourCC.nv12, .yuyv].contains(fourcc) ? fourcc : .nv12
                    w = (w + 15) / 16 * 16; h = (h + 15) / 16 * 16  // the encoder's macroblock alignment
                    width = w; height = h
                    sizeImage = rawFormat == .nv12 ? w * h * 3 / 2 : w * h * 2
                    log.append("S_FMT raw \(rawFormat) \(w)x\(h)")
                }
                let fmt = isCoded ? codedFormat : rawFormat
                if multiplanar {
                    f.pointee.fmt.pix_mp.pixelformat = fmt.rawValue
                    f.pointee.fmt.pix_mp.width = UInt32(isCoded ? width : w); f.pointee.fmt.pix_mp.height = UInt32(isCoded ? height : h)
                    f.pointee.fmt.pix_mp.num_planes = 1
                    f.pointee.fmt.pix_mp.plane_fmt.0.sizeimage = UInt32(sizeImage)
                    f.pointee.fmt.pix_mp.plane_fmt.0.bytesperline = UInt32(isCoded ? 0 : (rawFormat == .nv12 ? w : w * 2))
                } else {
                    f.pointee.fmt.pix.pixelformat = fmt.rawValue
                    f.pointee.fmt.pix.width = UInt32(isCoded ? width : w); f.pointee.fmt.pix.height = UInt32(isCoded ? height : h)
                    f.pointee.fmt.pix.sizeimage = UInt32(sizeImage)
                    f.pointee.fmt.pix.bytesperline = UInt32(isCoded ? 0 : (rawFormat == .nv12 ? w : w * 2))
                }
            case .getFormat:
                throw Errno.invalidArgument
            case .setParameters:
                guard hasFrameRate else { throw Errno(ENOTTY) }
                let parm = p.assumingMemoryBound(to: v4l2_streamparm.self)
                guard parm.pointee.type == outputType else { throw Errno.invalidArgument }
                log.append("S_PARM \(parm.pointee.parm.output.timeperframe.denominator)/\(parm.pointee.parm.output.timeperframe.numerator)")
                parm.pointee.parm.output.capability = UInt32(V4L2_CAP_TIMEPERFRAME)
            case .queryExtendedControl:
                let q = p.assumingMemoryBound(to: v4l2_query_ext_ctrl.self)
                var controls: [(UInt32, String, v4l2_ctrl_type, Int64, Int64, UInt64)] = [
                    (UInt32(V4L2_CID_MPEG_VIDEO_GOP_SIZE), "GOP Size", V4L2_CTRL_TYPE_INTEGER, 1, 1000, 1),
                    (UInt32(V4L2_CID_MPEG_VIDEO_BITRATE), "Video Bitrate", V4L2_CTRL_TYPE_INTEGER, 25_000, 25_000_000, 25_000),
                ]
                if hasKeyFrameControl { controls.append((UInt32(V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME), "Force Key Frame", V4L2_CTRL_TYPE_BUTTON, 0, 0, 0)) }
                controls.sort { $0.0 < $1.0 }
                let wanted = q.pointee.id & ~UInt32(V4L2_CTRL_FLAG_NEXT_CTRL)
                let next = q.pointee.id & UInt32(V4L2_CTRL_FLAG_NEXT_CTRL) != 0
                guard let c = controls.first(where: { next ? $0.0 > wanted : $0.0 == wanted }) else { throw Errno.invalidArgument }
                q.pointee.id = c.0
                fill(c.1, &q.pointee.name)
                q.pointee.type = c.2.rawValue
                q.pointee.minimum = c.3; q.pointee.maximum = c.4; q.pointee.step = c.5
                q.pointee.flags = c.2 == V4L2_CTRL_TYPE_BUTTON ? UInt32(V4L2_CTRL_FLAG_WRITE_ONLY) : 0
            case .setControl:
                let c = p.assumingMemoryBound(to: v4l2_control.self)
                switch c.pointee.id {
                case UInt32(V4L2_CID_MPEG_VIDEO_GOP_SIZE): gop = Int(c.pointee.value); log.append("S_CTRL gop=\(gop)")
                case UInt32(V4L2_CID_MPEG_VIDEO_BITRATE): bitrate = Int(c.pointee.value); log.append("S_CTRL bitrate=\(bitrate)")
                case UInt32(V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME) where hasKeyFrameControl: forceKey = true; log.append("S_CTRL force_key_frame")
                default: throw Errno.invalidArgument
                }
            case .requestBuffers:
                let r = p.assumingMemoryBound(to: v4l2_requestbuffers.self)
                let isCoded = r.pointee.type == captureType
                guard isCoded || r.pointee.type == outputType, r.pointee.memory == V4L2_MEMORY_MMAP.rawValue else { throw Errno.invalidArgument }
                var q = isCoded ? coded : raw
                guard !q.streaming else { throw Errno.busy }
                for b in q.buffers { b.region.deallocate() }
                let size = isCoded ? 512 * 1024 : (rawFormat == .nv12 ? width * height * 3 / 2 : width * height * 2)
                q = Queue(buffers: (0..<min(Int(r.pointee.count), 6)).map { _ in
                    Buffer(region: UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, size), alignment: 64))
                })
                r.pointee.count = UInt32(q.buffers.count)
                if isCoded { coded = q } else { raw = q }
                log.append("REQBUFS \(isCoded ? "coded" : "raw") \(r.pointee.count)")
            case .queryBuffer, .queueBuffer, .dequeueBuffer:
                let b = p.assumingMemoryBound(to: v4l2_buffer.self)
                if multiplanar {
                    guard argument.count >= PlanarBuffer.planeOffset + MemoryLayout<v4l2_plane>.size, b.pointee.length == 1 else { throw Errno.invalidArgument }
                }
                let plane = (p + PlanarBuffer.planeOffset).assumingMemoryBound(to: v4l2_plane.self)
                let isCoded = b.pointee.type == captureType
                guard isCoded || b.pointee.type == outputType else { throw Errno.invalidArgument }
                var q = isCoded ? coded : raw
                defer { if isCoded { coded = q } else { raw = q } }
                switch request {
                case .queryBuffer:
                    let i = Int(b.pointee.index)
                    guard i < q.buffers.count else { throw Errno.invalidArgument }
                    let offset = (isCoded ? 0x1000_0000 : 0) + i * 4096
                    if multiplanar { plane.pointee.length = UInt32(q.buffers[i].region.count); plane.pointee.m.mem_offset = UInt32(offset) }
                    else { b.pointee.length = UInt32(q.buffers[i].region.count); b.pointee.m.offset = UInt32(offset) }
                case .queueBuffer:
                    let i = Int(b.pointee.index)
                    guard i < q.buffers.count, !q.queued.contains(i), !q.done.contains(i) else { throw Errno.invalidArgument }
                    if !isCoded {
                        q.buffers[i].bytesUsed = Int(multiplanar ? plane.pointee.bytesused : b.pointee.bytesused)
                        q.buffers[i].timestamp = b.pointee.timestamp
                        if draining || stopAfterRaw != nil { throw Errno.busy }  // the client must wait for LAST
                    }
                    q.queued.append(i)
                default:
                    if isCoded && lastDequeued { throw Errno.brokenPipe }
                    if isCoded { coded = q; process(); q = coded } else { raw = q; process(); q = raw }
                    guard q.streaming else { throw Errno.invalidArgument }
                    guard !q.done.isEmpty else { throw Errno.wouldBlock }
                    let i = q.done.removeFirst()
                    let buffer = q.buffers[i]
                    b.pointee.index = UInt32(i)
                    b.pointee.flags = buffer.flags
                    b.pointee.timestamp = buffer.timestamp
                    b.pointee.sequence = buffer.sequence
                    if multiplanar { plane.pointee.bytesused = UInt32(buffer.bytesUsed) } else { b.pointee.bytesused = UInt32(buffer.bytesUsed) }
                    if isCoded && buffer.flags & UInt32(V4L2_BUF_FLAG_LAST) != 0 { lastDequeued = true }
                }
            case .streamOn, .streamOff:
                let type = p.load(as: UInt32.self)
                guard type == captureType || type == outputType else { throw Errno.invalidArgument }
                let on = request == .streamOn
                if type == captureType { coded.streaming = on; if !on { coded.queued = []; coded.done = []; lastDequeued = false } }
                else { raw.streaming = on; if !on { raw.queued = []; raw.done = [] } }
                log.append("\(on ? "STREAMON" : "STREAMOFF") \(type == captureType ? "coded" : "raw")")
            case .encoderCommand:
                let c = p.assumingMemoryBound(to: v4l2_encoder_cmd.self)
                switch Int32(c.pointee.cmd) {
                case V4L2_ENC_CMD_STOP:
                    log.append("ENC_CMD_STOP")
                    guard raw.streaming && coded.streaming else { return }
                    draining = true
                    if let last = raw.queued.last { stopAfterRaw = last } else { nextCodedIsLast = true }
                    process()
                case V4L2_ENC_CMD_START:
                    log.append("ENC_CMD_START")
                    if !startKeepsLast { lastDequeued = false }
                    draining = false; stopAfterRaw = nil; nextCodedIsLast = false
                default: throw Errno.invalidArgument
                }
            }
        }
    }

    private func fill<T>(_ text: String, _ field: inout T) {
        withUnsafeMutableBytes(of: &field) { raw in
            raw.initializeMemory(as: UInt8.self, repeating: 0)
            for (i, b) in text.utf8.prefix(raw.count - 1).enumerated() { raw[i] = b }
        }
    }
}
