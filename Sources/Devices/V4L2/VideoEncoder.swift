public import BoxConfig
internal import CV4L2
#if canImport(Glibc)
internal import Glibc
#endif

/// What an encode session is asked for.
public struct EncoderSettings: Sendable, Equatable, CustomStringConvertible {
    /// The coded format the encoder produces (`H264` on the Pi 4, `FWHT` with the kernel's test codec).
    public var codedFormat: FourCC
    /// The raw format frames arrive in (the camera's mode: `YUYV`, `NV12`, `YU12`).
    public var rawFormat: FourCC
    /// Frame width in pixels.
    public var width: Int
    /// Frame height in pixels.
    public var height: Int
    /// Frame rate, given to the driver where it takes one (it sizes its rate control by it).
    public var fps: Int
    /// Target bit rate in bit/s, where the driver has the control.
    public var bitrate: Int?
    /// Frames from one key frame to the next, where the driver has the control.
    public var keyFrameInterval: Int?
    /// Driver buffers on each queue (raw in, coded out).
    public var bufferCount: Int

    /// Settings from their values.
    public init(codedFormat: FourCC, rawFormat: FourCC, width: Int, height: Int, fps: Int, bitrate: Int? = nil,
                keyFrameInterval: Int? = nil, bufferCount: Int = 4) {
        self.codedFormat = codedFormat
        self.rawFormat = rawFormat
        self.width = width
        self.height = height
        self.fps = fps
        self.bitrate = bitrate
        self.keyFrameInterval = keyFrameInterval
        self.bufferCount = bufferCount
    }

    /// The board profile's encoder for frames of a camera's mode.
    public init(spec: CameraSpec, input: CameraMode, bufferCount: Int = 4) {
        self.init(codedFormat: FourCC(spec.encoderFormat), rawFormat: input.fourcc, width: input.width, height: input.height,
                  fps: max(1, Int(input.interval.fps.rounded())), bitrate: spec.encoderBitrate,
                  keyFrameInterval: spec.encoderKeyFrameInterval, bufferCount: bufferCount)
    }

    public var description: String { "\(rawFormat) \(width)x\(height) at \(fps) fps to \(codedFormat)" }
}

/// One encoded frame in the encoder's own buffer (no copy): valid until it is given back.
public struct EncodedFrame: @unchecked Sendable {
    // @unchecked: `bytes` points into a driver buffer that only the encoder's owner reads until release.
    /// The driver buffer's index.
    public var index: Int
    /// The coded bytes (an H.264 access unit, an FWHT frame).
    public var bytes: UnsafeRawBufferPointer
    /// The driver's counter of coded buffers.
    public var sequence: UInt32
    /// The timestamp of the raw frame it encodes (copied through by the driver), in nanoseconds.
    public var nanoseconds: Int64
    /// Whether the driver flags it as a key frame.
    public var keyFrame: Bool
    /// Whether it is the last frame of a drain (`V4L2_BUF_FLAG_LAST`).
    public var last: Bool
}

/// The counters of an encoder, for diagnostics.
public struct EncoderCounters: Sendable, Equatable {
    /// Raw frames handed to the driver.
    public var framesIn = 0
    /// Coded frames handed out.
    public var framesOut = 0
    /// Raw frames refused because every input buffer was still with the driver.
    public var framesDropped = 0
    /// Coded frames the driver flagged as key frames.
    public var keyFrames = 0
    /// Key frames asked for.
    public var keyFramesRequested = 0
    /// Coded buffers the driver flagged as corrupt (given back, not handed out).
    public var corrupt = 0
    /// Coded bytes handed out.
    public var bytesOut = 0
}

/// The V4L2 memory-to-memory encoder (the Pi 4's `bcm2835-codec` at `/dev/video11`; the kernel's
/// `vicodec` in the VM lane), driven by the kernel's stateful encoder protocol
/// (Documentation/userspace-api/media/v4l/dev-encoder.rst): the coded (CAPTURE) format is set before the
/// raw (OUTPUT) one, then the rate and the bit rate, GOP and key-frame controls the driver has; raw
/// frames are copied into mmap'd OUTPUT buffers, coded frames are handed out in place from CAPTURE
/// buffers; `drain` sends V4L2_ENC_CMD_STOP and collects frames up to the one flagged LAST. Nothing
/// blocks longer than the timeout given (poll on a non-blocking descriptor). When the driver goes away
/// (ENODEV) the session is dropped and opened again on the next frame once the device is back. Single-
/// and multi-planar (one plane) drivers are both handled. Not thread-safe: one video thread owns it.
public final class VideoEncoder {
    /// The device as found.
    public private(set) var info: VideoDeviceInfo
    /// The settings asked for.
    public let settings: EncoderSettings
    /// Whether the driver took the frame rate (S_PARM); false when it has no rate control by time.
    public private(set) var frameRateApplied = false
    /// The encoder controls set (keys as `classbox devices` lists them); those the driver lacks are absent.
    public private(set) var appliedControls: [String: Int] = [:]
    /// Bytes of one raw frame as the driver's OUTPUT format has it (with its line and height padding).
    public private(set) var rawFrameBytes = 0
    /// Bytes of one raw frame as `submit` takes it: packed, as cameras give it (no padding).
    public private(set) var rawInputBytes = 0
    /// Bytes per line of a raw frame (first plane).
    public private(set) var rawBytesPerLine = 0
    /// Counters since the encoder was made (they survive reopens).
    public private(set) var counters = EncoderCounters()
    /// How many times the device went away.
    public private(set) var goneCount = 0
    /// How many times it was opened again after going away.
    public private(set) var reopenCount = 0
    /// Milliseconds between attempts to reopen a vanished encoder.
    public var reopenIntervalMs = 1000

    private let kernel: any VideoKernel
    private var session: EncoderSession?
    private var lastAttempt: Int64 = 0

    /// Finds the encoder named by the board profile (`hardware_encoder`, `encoder_format`) and opens it for
    /// frames of the camera's `input` mode.
    public convenience init(spec: CameraSpec, input: CameraMode, kernel: any VideoKernel = LinuxVideoKernel(), bufferCount: Int = 4) throws(CameraError) {
        guard let driver = spec.hardwareEncoder else {
            throw CameraError(kind: .unsupported, device: "encoder", call: "profile",
                              detail: "the board profile names no hardware_encoder; this board must use a camera that encodes itself")
        }
        let settings = EncoderSettings(spec: spec, input: input, bufferCount: bufferCount)
        let device = try VideoEncoder.find(driver: driver, codedFormat: settings.codedFormat, among: VideoEncoder.list(kernel: kernel))
        try self.init(device: device, settings: settings, kernel: kernel)
    }

    /// Opens `device` (from `find`) and starts both queues.
    public init(device: VideoDeviceInfo, settings: EncoderSettings, kernel: any VideoKernel = LinuxVideoKernel()) throws(CameraError) {
        info = device
        self.settings = settings
        self.kernel = kernel
        try start(device)
    }

    /// The memory-to-memory encoders present now.
    public static func list(kernel: any VideoKernel = LinuxVideoKernel()) -> [VideoDeviceInfo] {
        Camera.list(kernel: kernel).filter(\.isEncoder)
    }

    /// The encoder of driver `driver` (any driver when nil) that produces `codedFormat`.
    public static func find(driver: String?, codedFormat: FourCC, among devices: [VideoDeviceInfo]) throws(CameraError) -> VideoDeviceInfo {
        let encoders = devices.filter { $0.isEncoder && $0.streaming && (driver == nil || $0.driver == driver) }
        if let device = encoders.first(where: { $0.formats.contains { $0.fourcc == codedFormat } }) { return device }
        let present = devices.filter(\.memoryToMemory)
        let listing = present.isEmpty ? "no memory-to-memory devices at all (is the codec driver loaded?)"
            : "memory-to-memory devices present: " + present.map {
                "\($0.path) \($0.driver) \"\($0.card)\" (\($0.outputFormats.map(\.fourcc.description).joined(separator: "/")) to \($0.formats.map(\.fourcc.description).joined(separator: "/")))"
            }.joined(separator: ", ")
        throw CameraError(kind: .notFound, device: "encoder (driver \(driver ?? "any"), \(codedFormat))", call: "VIDIOC_ENUM_FMT",
                          detail: "no encoder of the board profile's hardware_encoder produces \(codedFormat); \(listing)")
    }

    /// Whether a session is open (false while the device is gone).
    public var isRunning: Bool { session != nil }

    /// Whether the last drain has ended (its LAST frame was handed out); `resume` starts encoding again.
    public var isDrained: Bool { session?.drained ?? false }

    /// The number of driver buffers on the raw and coded queues.
    public var bufferCounts: (raw: Int, coded: Int) { (session?.rawBuffers.count ?? 0, session?.codedBuffers.count ?? 0) }

    private func start(_ device: VideoDeviceInfo) throws(CameraError) {
        let handle: VideoDeviceHandle
        do { handle = try VideoDeviceHandle(kernel: kernel, path: device.path) } catch {
            throw CameraError.from(error, device: device.name, call: "open")
        }
        let s = try EncoderSession(handle: handle, device: device, settings: settings)
        frameRateApplied = s.frameRateApplied
        appliedControls = s.appliedControls
        rawFrameBytes = s.rawFrameBytes
        rawInputBytes = s.rawInputBytes
        rawBytesPerLine = s.rawBytesPerLine
        session = s
    }

    /// Runs `body` on the session, dropping the session when the device turns out to be gone.
    private func withSession<R>(_ body: (EncoderSession) throws(CameraError) -> R) throws(CameraError) -> R? {
        guard let session else { return nil }
        do { return try body(session) } catch where error.kind == .gone {
            self.session = nil
            goneCount += 1
            lastAttempt = 0
            return nil
        }
    }

    /// Copies one raw frame into a free input buffer and queues it, with its timestamp. Returns false when
    /// no input buffer came free within `timeoutMs` (the frame is dropped and counted) or the encoder is
    /// gone (it is reopened here once it is back).
    @discardableResult
    public func submit(_ frame: UnsafeRawBufferPointer, nanoseconds: Int64, timeoutMs: Int = 100) throws(CameraError) -> Bool {
        if session == nil && !reopen() {
            counters.framesDropped += 1
            return false
        }
        let queued = try withSession { (s: EncoderSession) throws(CameraError) -> Bool in
            try s.submit(frame, nanoseconds: nanoseconds, timeoutMs: Int32(clamping: timeoutMs))
        } ?? false
        if queued { counters.framesIn += 1 } else { counters.framesDropped += 1 }
        return queued
    }

    /// The next coded frame, or nil when none came within `timeoutMs`, the drain has ended, or the
    /// encoder is gone. Give every frame back with `release`.
    public func nextFrame(timeoutMs: Int = 1000) throws(CameraError) -> EncodedFrame? {
        let frame = try withSession { (s: EncoderSession) throws(CameraError) -> EncodedFrame? in
            let result = try s.next(timeoutMs: Int32(clamping: timeoutMs))
            counters.corrupt = s.corrupt
            return result
        } ?? nil
        if let frame {
            counters.framesOut += 1
            counters.bytesOut += frame.bytes.count
            if frame.keyFrame { counters.keyFrames += 1 }
        }
        return frame
    }

    /// Gives a coded frame's buffer back to the driver (a no-op for frames of a session that has gone).
    public func release(_ frame: EncodedFrame) throws(CameraError) {
        _ = try withSession { (s: EncoderSession) throws(CameraError) in try s.release(frame) }
    }

    /// Runs `body` on the next coded frame in place and gives the buffer back; nil when none came.
    public func withNextFrame<R>(timeoutMs: Int = 1000, _ body: (EncodedFrame) -> R) throws(CameraError) -> R? {
        guard let frame = try nextFrame(timeoutMs: timeoutMs) else { return nil }
        let result = body(frame)
        try release(frame)
        return result
    }

    /// Asks for the next frame to be a key frame (a new pupil joined, a receiver lost packets). False
    /// when the driver has no such control (the GOP then brings one) or the encoder is gone.
    @discardableResult
    public func requestKeyFrame() throws(CameraError) -> Bool {
        let done = try withSession { (s: EncoderSession) throws(CameraError) -> Bool in try s.forceKeyFrame() } ?? false
        if done { counters.keyFramesRequested += 1 }
        return done
    }

    /// Ends the stream cleanly: V4L2_ENC_CMD_STOP, then every frame still inside the encoder is passed to
    /// `body` (in place, released after it) up to the one flagged LAST. Returns how many frames came.
    /// Throws `timedOut` when the driver does not finish within `timeoutMs`.
    @discardableResult
    public func drain(timeoutMs: Int = 2000, _ body: (EncodedFrame) -> Void = { _ in }) throws(CameraError) -> Int {
        guard let session else { return 0 }
        do { try session.stop() } catch where error.kind == .gone {
            self.session = nil
            goneCount += 1
            return 0
        }
        let end = SystemCall.monotonicNanoseconds() + Int64(timeoutMs) * 1_000_000
        var count = 0
        while !session.drained {
            let left = (end - SystemCall.monotonicNanoseconds()) / 1_000_000
            guard left > 0 else {
                throw CameraError(kind: .timedOut, device: info.name, call: "V4L2_ENC_CMD_STOP",
                                  detail: "the encoder did not finish its drain (no buffer flagged LAST) within \(timeoutMs) ms; it may be hung: restart the service")
            }
            guard let frame = try nextFrame(timeoutMs: Int(left)) else {
                if self.session == nil { return count }  // gone while draining
                continue
            }
            body(frame)
            count += 1
            try release(frame)
        }
        return count
    }

    /// Starts encoding again after a drain (V4L2_ENC_CMD_START); the encoder's state (GOP) carries on.
    public func resume() throws(CameraError) {
        _ = try withSession { (s: EncoderSession) throws(CameraError) in try s.resume() }
    }

    /// Tries to find and open the encoder again (same driver and card, same settings); true when open.
    @discardableResult
    public func reopen() -> Bool {
        if session != nil { return true }
        let now = SystemCall.monotonicNanoseconds()
        guard lastAttempt == 0 || now - lastAttempt >= Int64(reopenIntervalMs) * 1_000_000 else { return false }
        lastAttempt = now
        let devices = VideoEncoder.list(kernel: kernel)
        guard let device = devices.first(where: { $0.driver == info.driver && $0.card == info.card && $0.busInfo == info.busInfo
                                               && $0.formats.contains { $0.fourcc == settings.codedFormat } })
            ?? (try? VideoEncoder.find(driver: info.driver, codedFormat: settings.codedFormat, among: devices)) else { return false }
        do { try start(device) } catch { return false }
        info = device
        reopenCount += 1
        return true
    }
}

/// One open encode session: the descriptor, both queues' mmap buffers and which are where. Closing
/// (deinit) stops both queues, unmaps and frees the buffers and closes the device.
final class EncoderSession {
    private let handle: VideoDeviceHandle
    let device: String
    private let multiplanar: Bool
    /// OUTPUT: raw frames in. CAPTURE: coded frames out.
    private let rawType: UInt32, codedType: UInt32
    private let controls: [CameraControlInfo]
    private(set) var rawBuffers: [UnsafeMutableRawBufferPointer] = []
    private(set) var codedBuffers: [UnsafeMutableRawBufferPointer] = []
    private var freeRaw: [Int] = []
    private var heldCoded = 0
    private var parkedCoded: [Int] = []  // an empty LAST buffer, queued again on resume
    private var streaming = false
    private(set) var drained = false
    private var draining = false
    private(set) var frameRateApplied = false
    private(set) var appliedControls: [String: Int] = [:]
    private(set) var rawFrameBytes = 0
    private(set) var rawBytesPerLine = 0
    private(set) var corrupt = 0
    var rawInputBytes: Int { rawLayout?.packedBytes ?? 0 }
    private var rawLayout: RawFrameLayout? = nil
    private var heldCodedIndices: Set<Int> = []

    init(handle: consuming VideoDeviceHandle, device info: VideoDeviceInfo, settings: EncoderSettings) throws(CameraError) {
        self.handle = handle
        device = info.name
        multiplanar = info.multiplanar
        rawType = (multiplanar ? V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE : V4L2_BUF_TYPE_VIDEO_OUTPUT).rawValue
        codedType = (multiplanar ? V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE : V4L2_BUF_TYPE_VIDEO_CAPTURE).rawValue
        controls = info.controls
        guard info.outputFormats.contains(where: { $0.fourcc == settings.rawFormat }) else {
            throw CameraError(kind: .unsupported, device: device, call: "VIDIOC_ENUM_FMT",
                              detail: "the encoder takes \(info.outputFormats.map(\.fourcc.description).joined(separator: ", ")), not \(settings.rawFormat); choose a camera format it takes (board profile [camera] formats)")
        }
        // 1. The coded format first: it decides which raw formats and sizes the encoder offers.
        _ = try setFormat(codedType, settings.codedFormat, settings.width, settings.height, what: "coded")
        // 2. The raw format and size.
        let raw = try setFormat(rawType, settings.rawFormat, settings.width, settings.height, what: "raw")
        // The driver may pad the height (to its macroblock rows); a different width or a smaller height
        // would put the camera's lines in the wrong place.
        guard raw.fourcc == settings.rawFormat, raw.width == settings.width, raw.height >= settings.height, raw.height - settings.height < 64,
              let layout = RawFrameLayout(fourcc: settings.rawFormat, width: settings.width, height: settings.height,
                                          bytesPerLine: raw.bytesPerLine, paddedHeight: raw.height, sizeImage: raw.sizeImage) else {
            throw CameraError(kind: .refused, device: device, call: "VIDIOC_S_FMT",
                              detail: "asked for \(settings.rawFormat) \(settings.width)x\(settings.height) input, the encoder set \(raw.fourcc) \(raw.width)x\(raw.height) (\(raw.bytesPerLine) bytes per line); choose a camera size the encoder takes")
        }
        rawLayout = layout
        rawFrameBytes = raw.sizeImage
        rawBytesPerLine = raw.bytesPerLine
        // 3. The frame rate, on the OUTPUT queue (an encoder's rate control needs it).
        frameRateApplied = try setFrameRate(settings.fps)
        // 4. The controls the driver has.
        var wanted: [(String, Int)] = []
        if let bitrate = settings.bitrate { wanted.append(("video_bitrate", bitrate)) }
        if let gop = settings.keyFrameInterval { wanted += [("video_gop_size", gop), ("h264_i_frame_period", gop)] }
        for (key, value) in wanted where controls.contains(where: { $0.key == key && !$0.readOnly }) {
            try self.handle.setControl(key, Int64(value), controls: controls, device: device)
            appliedControls[key] = value
        }
        // 5. Buffers on both queues; every coded buffer is queued for the driver to fill.
        rawBuffers = try requestBuffers(rawType, settings.bufferCount, what: "raw")
        freeRaw = Array(rawBuffers.indices.reversed())
        codedBuffers = try requestBuffers(codedType, settings.bufferCount, what: "coded")
        for index in codedBuffers.indices {
            var buffer = makeBuffer(codedType, index)
            do { try self.handle.call(.queueBuffer, &buffer) } catch { throw CameraError.from(error, device: device, call: "VIDIOC_QBUF") }
        }
        // 6. Both queues on.
        for type in [rawType, codedType] {
            var t = Int32(bitPattern: type)
            do { try self.handle.call(.streamOn, &t) } catch { throw CameraError.from(error, device: device, call: "VIDIOC_STREAMON") }
        }
        streaming = true
    }

    deinit {
        if streaming {
            for type in [codedType, rawType] {
                var t = Int32(bitPattern: type)
                try? handle.call(.streamOff, &t)
            }
        }
        for region in rawBuffers + codedBuffers { handle.kernel.unmap(region) }
        for (type, buffers) in [(rawType, rawBuffers), (codedType, codedBuffers)] where !buffers.isEmpty {
            var request = v4l2_requestbuffers()
            request.type = type
            request.memory = V4L2_MEMORY_MMAP.rawValue
            try? handle.call(.requestBuffers, &request)
        }
    }

    private struct Format { var fourcc: FourCC; var width: Int; var height: Int; var bytesPerLine: Int; var sizeImage: Int }

    private func setFormat(_ type: UInt32, _ fourcc: FourCC, _ width: Int, _ height: Int, what: String) throws(CameraError) -> Format {
        var format = v4l2_format()
        format.type = type
        if multiplanar {
            format.fmt.pix_mp.pixelformat = fourcc.rawValue
            format.fmt.pix_mp.width = UInt32(width)
            format.fmt.pix_mp.height = UInt32(height)
            format.fmt.pix_mp.field = V4L2_FIELD_NONE.rawValue
            format.fmt.pix_mp.num_planes = 1
        } else {
            format.fmt.pix.pixelformat = fourcc.rawValue
            format.fmt.pix.width = UInt32(width)
            format.fmt.pix.height = UInt32(height)
            format.fmt.pix.field = V4L2_FIELD_NONE.rawValue
        }
        do { try handle.call(.setFormat, &format) } catch {
            throw CameraError.from(error, device: device, call: "VIDIOC_S_FMT", refused: "the encoder refused the \(what) format \(fourcc) \(width)x\(height)")
        }
        let got: Format
        if multiplanar {
            let p = format.fmt.pix_mp
            got = Format(fourcc: FourCC(rawValue: p.pixelformat), width: Int(p.width), height: Int(p.height),
                         bytesPerLine: Int(p.plane_fmt.0.bytesperline), sizeImage: Int(p.plane_fmt.0.sizeimage))
            guard p.num_planes == 1 else {
                throw CameraError(kind: .unsupported, device: device, call: "VIDIOC_S_FMT",
                                  detail: "the \(what) format \(fourcc) needs \(p.num_planes) planes; the firmware handles one-plane formats (NV12, YU12, YUYV)")
            }
        } else {
            let p = format.fmt.pix
            got = Format(fourcc: FourCC(rawValue: p.pixelformat), width: Int(p.width), height: Int(p.height),
                         bytesPerLine: Int(p.bytesperline), sizeImage: Int(p.sizeimage))
        }
        guard got.fourcc == fourcc else {
            throw CameraError(kind: .refused, device: device, call: "VIDIOC_S_FMT",
                              detail: "asked for the \(what) format \(fourcc), the encoder set \(got.fourcc)")
        }
        return got
    }

    private func setFrameRate(_ fps: Int) throws(CameraError) -> Bool {
        var parm = v4l2_streamparm()
        parm.type = rawType
        parm.parm.output.timeperframe = v4l2_fract(numerator: 1, denominator: UInt32(max(1, fps)))
        do { try handle.call(.setParameters, &parm) } catch {
            if error.rawValue == ENOTTY || error == .invalidArgument { return false }  // no rate by time
            throw CameraError.from(error, device: device, call: "VIDIOC_S_PARM")
        }
        return parm.parm.output.capability & UInt32(V4L2_CAP_TIMEPERFRAME) != 0
    }

    private func requestBuffers(_ type: UInt32, _ count: Int, what: String) throws(CameraError) -> [UnsafeMutableRawBufferPointer] {
        var request = v4l2_requestbuffers()
        request.count = UInt32(max(2, count))
        request.type = type
        request.memory = V4L2_MEMORY_MMAP.rawValue
        do { try handle.call(.requestBuffers, &request) } catch {
            throw CameraError.from(error, device: device, call: "VIDIOC_REQBUFS", refused: "the encoder cannot stream its \(what) queue with mmap buffers")
        }
        guard request.count >= 1 else {
            throw CameraError(kind: .unsupported, device: device, call: "VIDIOC_REQBUFS", detail: "the driver gave no \(what) buffers")
        }
        var regions: [UnsafeMutableRawBufferPointer] = []
        for index in 0..<Int(request.count) {
            var buffer = makeBuffer(type, index)
            do {
                try handle.call(.queryBuffer, &buffer)
                let (length, offset) = multiplanar ? (Int(buffer.plane.length), Int(buffer.plane.m.mem_offset))
                    : (Int(buffer.buffer.length), Int(buffer.buffer.m.offset))
                regions.append(try handle.kernel.map(handle.fd, length: length, offset: offset))
            } catch {
                for region in regions { handle.kernel.unmap(region) }
                throw CameraError.from(error, device: device, call: "map \(what) buffer \(index)")
            }
        }
        return regions
    }

    private func makeBuffer(_ type: UInt32, _ index: Int = 0) -> PlanarBuffer {
        var b = PlanarBuffer()
        b.buffer.type = type
        b.buffer.memory = V4L2_MEMORY_MMAP.rawValue
        b.buffer.index = UInt32(index)
        if multiplanar { b.buffer.length = 1 }
        return b
    }

    /// Takes back the raw buffers the driver has finished with.
    private func reclaimRaw() throws(CameraError) {
        while true {
            var buffer = makeBuffer(rawType)
            do { try handle.call(.dequeueBuffer, &buffer) } catch {
                if error == .wouldBlock { return }
                throw CameraError.from(error, device: device, call: "VIDIOC_DQBUF (raw)")
            }
            let index = Int(buffer.buffer.index)
            precondition(index < rawBuffers.count && !freeRaw.contains(index), "\(device): the driver returned raw buffer \(index) twice or out of range")
            freeRaw.append(index)
        }
    }

    func submit(_ frame: UnsafeRawBufferPointer, nanoseconds: Int64, timeoutMs: Int32) throws(CameraError) -> Bool {
        guard !draining else {
            throw CameraError(kind: .refused, device: device, call: "VIDIOC_QBUF",
                              detail: "the encoder is draining (stopped); resume() before submitting frames")
        }
        try reclaimRaw()
        if freeRaw.isEmpty {
            let revents: Int16
            do { revents = try handle.kernel.poll(handle.fd, events: Int16(POLLOUT), timeoutMs: timeoutMs) } catch {
                throw CameraError.from(error, device: device, call: "poll")
            }
            if revents & Int16(POLLOUT) != 0 { try reclaimRaw() }
        }
        guard let index = freeRaw.popLast() else { return false }
        let region = rawBuffers[index]
        guard let layout = rawLayout, let used = layout.copy(frame, into: region) else {
            freeRaw.append(index)
            throw CameraError(kind: .refused, device: device, call: "VIDIOC_QBUF",
                              detail: "a raw frame of \(frame.count) bytes is not one \(rawLayout.map { "\($0.fourcc) \($0.width)x\($0.height) frame (\($0.packedBytes) bytes)" } ?? "frame") the encoder's \(region.count)-byte buffers take")
        }
        var buffer = makeBuffer(rawType, index)
        if multiplanar { buffer.plane.bytesused = UInt32(used) } else { buffer.buffer.bytesused = UInt32(used) }
        buffer.buffer.field = V4L2_FIELD_NONE.rawValue
        buffer.buffer.timestamp = timeval(tv_sec: Int(nanoseconds / 1_000_000_000), tv_usec: Int(nanoseconds % 1_000_000_000 / 1000))
        do { try handle.call(.queueBuffer, &buffer) } catch {
            freeRaw.append(index)
            throw CameraError.from(error, device: device, call: "VIDIOC_QBUF (raw)")
        }
        return true
    }

    func next(timeoutMs: Int32) throws(CameraError) -> EncodedFrame? {
        if drained { return nil }
        precondition(heldCoded < codedBuffers.count, "\(device): every coded buffer is held; release frames before asking for more")
        let end = SystemCall.monotonicNanoseconds() + Int64(timeoutMs) * 1_000_000
        while true {
            var buffer = makeBuffer(codedType)
            do { try handle.call(.dequeueBuffer, &buffer) } catch {
                if error == .brokenPipe {  // EPIPE: the LAST buffer was already taken
                    drained = true
                    return nil
                }
                guard error == .wouldBlock else { throw CameraError.from(error, device: device, call: "VIDIOC_DQBUF (coded)") }
                try reclaimRaw()
                let left = (end - SystemCall.monotonicNanoseconds()) / 1_000_000
                guard left > 0 else { return nil }
                let revents: Int16
                do { revents = try handle.kernel.poll(handle.fd, events: Int16(POLLIN), timeoutMs: Int32(clamping: left)) } catch {
                    throw CameraError.from(error, device: device, call: "poll")
                }
                if revents & Int16(POLLIN) != 0 { continue }
                // POLLERR with nothing to read: neither queue holds a buffer, so nothing can come now.
                if revents & Int16(POLLERR) != 0 { return nil }
                if revents == 0 { return nil }
                continue
            }
            let index = Int(buffer.buffer.index)
            guard index < codedBuffers.count else { preconditionFailure("\(device): the driver returned coded buffer \(index) of \(codedBuffers.count)") }
            let flags = buffer.buffer.flags
            let last = flags & UInt32(V4L2_BUF_FLAG_LAST) != 0
            let used = multiplanar ? Int(buffer.plane.bytesused) - Int(buffer.plane.data_offset) : Int(buffer.buffer.bytesused)
            let start = multiplanar ? Int(buffer.plane.data_offset) : 0
            if last { drained = true }
            if flags & UInt32(V4L2_BUF_FLAG_ERROR) != 0 || used <= 0 {
                if flags & UInt32(V4L2_BUF_FLAG_ERROR) != 0 { corrupt += 1 }
                if last {  // an empty LAST buffer ends the drain and carries no frame
                    parkedCoded.append(index)
                    return nil
                }
                var requeue = makeBuffer(codedType, index)
                do { try handle.call(.queueBuffer, &requeue) } catch { throw CameraError.from(error, device: device, call: "VIDIOC_QBUF (coded)") }
                continue
            }
            heldCoded += 1
            heldCodedIndices.insert(index)
            let region = UnsafeRawBufferPointer(codedBuffers[index])
            let upper = min(region.count, start + used)
            return EncodedFrame(index: index, bytes: UnsafeRawBufferPointer(rebasing: region[min(start, upper)..<upper]),
                                sequence: buffer.buffer.sequence,
                                nanoseconds: Int64(buffer.buffer.timestamp.tv_sec) * 1_000_000_000 + Int64(buffer.buffer.timestamp.tv_usec) * 1000,
                                keyFrame: flags & UInt32(V4L2_BUF_FLAG_KEYFRAME) != 0, last: last)
        }
    }

    func release(_ frame: EncodedFrame) throws(CameraError) {
        guard heldCodedIndices.remove(frame.index) != nil else { return }  // returned by a queue restart already
        heldCoded -= 1
        var buffer = makeBuffer(codedType, frame.index)
        do { try handle.call(.queueBuffer, &buffer) } catch { throw CameraError.from(error, device: device, call: "VIDIOC_QBUF (coded)") }
    }

    func forceKeyFrame() throws(CameraError) -> Bool {
        guard controls.contains(where: { $0.key == "force_key_frame" }) else { return false }
        try handle.setControl("force_key_frame", 0, controls: controls, device: device)
        return true
    }

    private func command(_ cmd: Int32, _ name: String) throws(CameraError) {
        var command = v4l2_encoder_cmd()
        command.cmd = UInt32(cmd)
        do { try handle.call(.encoderCommand, &command) } catch {
            if error.rawValue == ENOTTY {
                throw CameraError(kind: .unsupported, device: device, call: "VIDIOC_ENCODER_CMD",
                                  detail: "the driver has no encoder commands (\(name)); it is not a stateful encoder")
            }
            throw CameraError.from(error, device: device, call: "VIDIOC_ENCODER_CMD (\(name))")
        }
    }

    func stop() throws(CameraError) {
        guard !draining else { return }
        try command(V4L2_ENC_CMD_STOP, "V4L2_ENC_CMD_STOP")
        draining = true
    }

    func resume() throws(CameraError) {
        guard draining || drained else { return }
        try command(V4L2_ENC_CMD_START, "V4L2_ENC_CMD_START")
        draining = false
        drained = false
        for index in parkedCoded {
            var buffer = makeBuffer(codedType, index)
            do { try handle.call(.queueBuffer, &buffer) } catch { throw CameraError.from(error, device: device, call: "VIDIOC_QBUF (coded)") }
        }
        parkedCoded = []
        // Nothing was queued since the drain, so CAPTURE has nothing to give: EPIPE here means the driver
        // kept its end-of-stream state through START (vicodec in Linux 6.1 does). The spec's other way to
        // resume is restarting the CAPTURE queue, which loses nothing now.
        var probe = makeBuffer(codedType)
        do {
            try handle.call(.dequeueBuffer, &probe)
            // Not possible by the protocol; give the buffer back rather than lose it.
            var requeue = makeBuffer(codedType, Int(probe.buffer.index))
            try handle.call(.queueBuffer, &requeue)
        } catch {
            if error == .brokenPipe { try restartCodedQueue() }
            else if error != .wouldBlock { throw CameraError.from(error, device: device, call: "VIDIOC_DQBUF (coded)") }
        }
    }

    /// STREAMOFF/STREAMON on the CAPTURE queue (the encoder resets and resumes), every buffer the caller
    /// does not hold queued again.
    private func restartCodedQueue() throws(CameraError) {
        for on in [false, true] {
            var t = Int32(bitPattern: codedType)
            do { try handle.call(on ? .streamOn : .streamOff, &t) } catch {
                throw CameraError.from(error, device: device, call: on ? "VIDIOC_STREAMON (coded)" : "VIDIOC_STREAMOFF (coded)")
            }
        }
        parkedCoded = []
        for index in codedBuffers.indices where !heldCodedIndices.contains(index) {
            var buffer = makeBuffer(codedType, index)
            do { try handle.call(.queueBuffer, &buffer) } catch { throw CameraError.from(error, device: device, call: "VIDIOC_QBUF (coded)") }
        }
        drained = false
    }
}

/// Where a camera's raw frame goes in an encoder's buffer: the encoder may pad each line (bytes per line)
/// and the height (macroblock rows), and the planes of NV12 and YU12 then start further in.
struct RawFrameLayout: Equatable {
    var fourcc: FourCC
    var width: Int, height: Int
    var bytesPerLine: Int, paddedHeight: Int, sizeImage: Int

    /// The planes as (rows, bytes per row in the packed frame, bytes per line in the driver's buffer).
    private var planes: [(rows: Int, packedRow: Int, stride: Int)] {
        switch fourcc {
        case .nv12: return [(height, width, bytesPerLine), (height / 2, width, bytesPerLine)]
        case .yuv420: return [(height, width, bytesPerLine), (height / 2, width / 2, bytesPerLine / 2), (height / 2, width / 2, bytesPerLine / 2)]
        default: return [(height, width * 2, bytesPerLine)]  // packed 4:2:2 (YUYV, UYVY)
        }
    }

    private var paddedRows: [Int] {
        switch fourcc {
        case .nv12: return [paddedHeight, paddedHeight / 2]
        case .yuv420: return [paddedHeight, paddedHeight / 2, paddedHeight / 2]
        default: return [paddedHeight]
        }
    }

    init?(fourcc: FourCC, width: Int, height: Int, bytesPerLine: Int, paddedHeight: Int, sizeImage: Int) {
        guard [.nv12, .yuv420, .yuyv, FourCC("UYVY")].contains(fourcc), width > 0, height > 0, paddedHeight >= height else { return nil }
        self.fourcc = fourcc
        self.width = width
        self.height = height
        self.bytesPerLine = bytesPerLine
        self.paddedHeight = paddedHeight
        self.sizeImage = sizeImage
        guard planes.allSatisfy({ $0.stride >= $0.packedRow }), zip(planes, paddedRows).map({ $0.stride * $1 }).reduce(0, +) <= sizeImage else { return nil }
    }

    /// Bytes of one frame as the camera packs it (no padding).
    var packedBytes: Int { planes.map { $0.rows * $0.packedRow }.reduce(0, +) }

    /// Copies a packed frame into a driver buffer; the bytes used, or nil when `frame` is not one frame.
    func copy(_ frame: UnsafeRawBufferPointer, into region: UnsafeMutableRawBufferPointer) -> Int? {
        guard frame.count == packedBytes, let source = frame.baseAddress, let target = region.baseAddress, sizeImage <= region.count else { return nil }
        if planes.allSatisfy({ $0.stride == $0.packedRow }) && paddedHeight == height {
            target.copyMemory(from: source, byteCount: frame.count)
            return frame.count
        }
        var from = 0, to = 0
        for (plane, padded) in zip(planes, paddedRows) {
            for row in 0..<plane.rows {
                (target + to + row * plane.stride).copyMemory(from: source + from + row * plane.packedRow, byteCount: plane.packedRow)
            }
            from += plane.rows * plane.packedRow
            to += padded * plane.stride
        }
        return sizeImage
    }
}
