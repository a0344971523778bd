internal import CV4L2
#if canImport(Glibc)
internal import Glibc
#endif

/// An open video device node; closed when this value ends.
struct VideoDeviceHandle: ~Copyable {
    let kernel: any VideoKernel
    let fd: Int32
    let path: String

    init(kernel: any VideoKernel, path: String) throws(Errno) {
        // Open before initialising any stored property: Swift 6.0.3 crashes (SIL memory lifetime
        // verifier) on a throw after a partial initialisation of a noncopyable struct.
        let fd = try kernel.open(path)
        self.kernel = kernel
        self.path = path
        self.fd = fd
    }

    deinit { kernel.close(fd) }

    func call<T>(_ request: VideoRequest, _ value: inout T) throws(Errno) { try kernel.call(fd, request, &value) }
}

/// A V4L2 device as `classbox devices` lists it and the profile's rules match it.
public struct VideoDeviceInfo: Sendable, Codable, Equatable {
    /// The device node, e.g. `/dev/video0` (it can change when a USB camera is replugged).
    public var path: String
    /// The kernel driver (`uvcvideo`, `vivid`, `bcm2835-codec`).
    public var driver: String
    /// The card name (the camera's model).
    public var card: String
    /// Where it is attached (`usb-0000:01:00.0-1.2`); stable across replugs into the same port.
    public var busInfo: String
    /// Whether it captures video (a camera).
    public var capture: Bool
    /// Whether it is a memory-to-memory device (an encoder or converter).
    public var memoryToMemory: Bool
    /// Whether it uses the multi-planar API.
    public var multiplanar: Bool
    /// Whether it streams with mmap buffers.
    public var streaming: Bool
    /// Capture formats with sizes and rates (for an M2M device: the formats it produces).
    public var formats: [VideoFormatInfo]
    /// For an M2M device, the formats it takes in (its OUTPUT queue); empty for a camera.
    public var outputFormats: [VideoFormatInfo]
    /// Its controls with ranges and current values.
    public var controls: [CameraControlInfo]

    /// A device from its values.
    public init(path: String, driver: String, card: String, busInfo: String, capture: Bool, memoryToMemory: Bool,
                multiplanar: Bool, streaming: Bool, formats: [VideoFormatInfo], outputFormats: [VideoFormatInfo] = [],
                controls: [CameraControlInfo]) {
        self.path = path
        self.driver = driver
        self.card = card
        self.busInfo = busInfo
        self.capture = capture
        self.memoryToMemory = memoryToMemory
        self.multiplanar = multiplanar
        self.streaming = streaming
        self.formats = formats
        self.outputFormats = outputFormats
        self.controls = controls
    }

    /// The node and card, for messages.
    public var name: String { "\(path) (\(card))" }

    /// Whether it is a memory-to-memory encoder: it takes raw frames and produces a compressed format
    /// (a decoder is the other way round).
    public var isEncoder: Bool {
        memoryToMemory && formats.contains { $0.compressed || $0.fourcc.isCompressed }
            && outputFormats.contains { !$0.compressed && !$0.fourcc.isCompressed }
    }
}

extension VideoDeviceInfo {
    /// Describes the device at `path`: capabilities, formats with sizes and rates, and controls.
    public static func describe(path: String, kernel: any VideoKernel = LinuxVideoKernel()) throws(CameraError) -> VideoDeviceInfo {
        let handle: VideoDeviceHandle
        do { handle = try VideoDeviceHandle(kernel: kernel, path: path) } catch {
            throw CameraError.from(error, device: path, call: "open")
        }
        return try describe(handle)
    }

    static func describe(_ handle: borrowing VideoDeviceHandle) throws(CameraError) -> VideoDeviceInfo {
        var cap = v4l2_capability()
        do { try handle.call(.queryCapability, &cap) } catch { throw CameraError.from(error, device: handle.path, call: "VIDIOC_QUERYCAP") }
        let caps = cap.capabilities & UInt32(V4L2_CAP_DEVICE_CAPS) != 0 ? cap.device_caps : cap.capabilities
        let m2m = caps & UInt32(V4L2_CAP_VIDEO_M2M | V4L2_CAP_VIDEO_M2M_MPLANE) != 0
        let mplane = caps & UInt32(V4L2_CAP_VIDEO_CAPTURE_MPLANE | V4L2_CAP_VIDEO_M2M_MPLANE) != 0
        let capture = !m2m && caps & UInt32(V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_VIDEO_CAPTURE_MPLANE) != 0
        var info = VideoDeviceInfo(
            path: handle.path, driver: cString(of: &cap.driver), card: cString(of: &cap.card), busInfo: cString(of: &cap.bus_info),
            capture: capture, memoryToMemory: m2m, multiplanar: mplane, streaming: caps & UInt32(V4L2_CAP_STREAMING) != 0,
            formats: [], controls: [])
        if capture || m2m {
            let type = mplane ? V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE : V4L2_BUF_TYPE_VIDEO_CAPTURE
            info.formats = try formats(handle, type: type, device: info.name)
        }
        if m2m {
            info.outputFormats = try formats(handle, type: mplane ? V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE : V4L2_BUF_TYPE_VIDEO_OUTPUT, device: info.name)
        }
        info.controls = controls(handle)
        return info
    }

    /// The formats of one buffer queue, each with its sizes and rates.
    static func formats(_ handle: borrowing VideoDeviceHandle, type: v4l2_buf_type, device: String) throws(CameraError) -> [VideoFormatInfo] {
        var result: [VideoFormatInfo] = []
        var index: UInt32 = 0
        while true {
            var desc = v4l2_fmtdesc()
            desc.index = index
            desc.type = type.rawValue
            do { try handle.call(.enumerateFormat, &desc) } catch {
                if error == .invalidArgument { break }  // the end of the list
                throw CameraError.from(error, device: device, call: "VIDIOC_ENUM_FMT")
            }
            let fourcc = FourCC(rawValue: desc.pixelformat)
            var format = VideoFormatInfo(fourcc: fourcc, description: cString(of: &desc.description),
                                         compressed: desc.flags & UInt32(V4L2_FMT_FLAG_COMPRESSED) != 0,
                                         emulated: desc.flags & UInt32(V4L2_FMT_FLAG_EMULATED) != 0, sizes: [])
            try frameSizes(handle, fourcc: fourcc, device: device, into: &format)
            result.append(format)
            index += 1
        }
        return result
    }

    static func frameSizes(_ handle: borrowing VideoDeviceHandle, fourcc: FourCC, device: String, into format: inout VideoFormatInfo) throws(CameraError) {
        var index: UInt32 = 0
        while true {
            var size = v4l2_frmsizeenum()
            size.index = index
            size.pixel_format = fourcc.rawValue
            do { try handle.call(.enumerateFrameSizes, &size) } catch {
                if error == .invalidArgument || error.rawValue == ENOTTY { return }  // end, or sizes not listed
                throw CameraError.from(error, device: device, call: "VIDIOC_ENUM_FRAMESIZES")
            }
            if size.type == V4L2_FRMSIZE_TYPE_DISCRETE.rawValue {
                let w = Int(size.discrete.width), h = Int(size.discrete.height)
                format.sizes.append(FrameSizeInfo(width: w, height: h, intervals: try intervals(handle, fourcc: fourcc, width: w, height: h, device: device)))
                index += 1
            } else {
                let s = size.stepwise
                format.range = FrameSizeRange(minWidth: Int(s.min_width), maxWidth: Int(s.max_width), stepWidth: Int(s.step_width),
                                              minHeight: Int(s.min_height), maxHeight: Int(s.max_height), stepHeight: Int(s.step_height))
                return
            }
        }
    }

    static func intervals(_ handle: borrowing VideoDeviceHandle, fourcc: FourCC, width: Int, height: Int, device: String) throws(CameraError) -> [FrameInterval] {
        var result: [FrameInterval] = []
        var index: UInt32 = 0
        while true {
            var interval = v4l2_frmivalenum()
            interval.index = index
            interval.pixel_format = fourcc.rawValue
            interval.width = UInt32(width)
            interval.height = UInt32(height)
            do { try handle.call(.enumerateFrameIntervals, &interval) } catch {
                if error == .invalidArgument || error.rawValue == ENOTTY { break }
                throw CameraError.from(error, device: device, call: "VIDIOC_ENUM_FRAMEINTERVALS")
            }
            if interval.type == V4L2_FRMIVAL_TYPE_DISCRETE.rawValue {
                result.append(FrameInterval(Int(interval.discrete.numerator), Int(interval.discrete.denominator)))
                index += 1
            } else {
                let s = interval.stepwise
                result.append(FrameInterval(Int(s.min.numerator), Int(s.min.denominator)))
                result.append(FrameInterval(Int(s.max.numerator), Int(s.max.denominator)))
                break
            }
        }
        return result.sorted { $0.fps > $1.fps }
    }
}

extension VideoDeviceHandle {
    /// Sets the capture format and rate; returns the mode the driver accepted, refusing a different one.
    func configure(_ mode: CameraMode, device: String) throws(CameraError) {
        var format = v4l2_format()
        format.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
        format.fmt.pix.width = UInt32(mode.width)
        format.fmt.pix.height = UInt32(mode.height)
        format.fmt.pix.pixelformat = mode.fourcc.rawValue
        format.fmt.pix.field = V4L2_FIELD_NONE.rawValue
        do { try call(.setFormat, &format) } catch {
            throw CameraError.from(error, device: device, call: "VIDIOC_S_FMT", refused: "the camera refused \(mode)")
        }
        let got = FourCC(rawValue: format.fmt.pix.pixelformat)
        guard got == mode.fourcc, Int(format.fmt.pix.width) == mode.width, Int(format.fmt.pix.height) == mode.height else {
            throw CameraError(kind: .refused, device: device, call: "VIDIOC_S_FMT",
                              detail: "asked for \(mode.fourcc) \(mode.width)x\(mode.height), the camera set \(got) \(format.fmt.pix.width)x\(format.fmt.pix.height); choose a listed mode (`classbox devices`)")
        }
        var parm = v4l2_streamparm()
        parm.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
        do { try call(.getParameters, &parm) } catch {
            if error.rawValue == ENOTTY { return }  // the driver has a fixed rate
            throw CameraError.from(error, device: device, call: "VIDIOC_G_PARM")
        }
        guard parm.parm.capture.capability & UInt32(V4L2_CAP_TIMEPERFRAME) != 0 else { return }
        parm.parm.capture.timeperframe = v4l2_fract(numerator: UInt32(mode.interval.numerator), denominator: UInt32(mode.interval.denominator))
        do { try call(.setParameters, &parm) } catch {
            throw CameraError.from(error, device: device, call: "VIDIOC_S_PARM", refused: "the camera refused \(mode.interval)")
        }
    }
}
