import CV4L2
import Devices
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A scripted V4L2 driver behind the `VideoKernel` seam: devices with formats, discrete sizes and
/// rates, controls, and mmap streaming whose frames carry their sequence number. It can be made busy,
/// unplugged after some frames, and plugged back at another node.
final class FakeVideoDriver: VideoKernel, @unchecked Sendable {
    // @unchecked: all state is used under `lock`.
    struct Control { var id: UInt32; var name: String; var type: v4l2_ctrl_type; var min: Int64; var max: Int64; var step: UInt64; var value: Int64 }
    struct Device {
        var path: String
        var driver = "fakecam"
        var card = "Fake Camera"
        var bus = "usb-0000:00:14.0-1"
        var m2m = false
        var formats: [(fourcc: FourCC, description: String, sizes: [(w: Int, h: Int, fps: [Int])])]
        var controls: [Control] = [
            Control(id: UInt32(V4L2_CID_BRIGHTNESS), name: "Brightness", type: V4L2_CTRL_TYPE_INTEGER, min: 0, max: 255, step: 1, value: 128),
            Control(id: UInt32(V4L2_CID_EXPOSURE_AUTO), name: "Auto Exposure", type: V4L2_CTRL_TYPE_MENU, min: 0, max: 3, step: 1, value: 3),
            Control(id: UInt32(V4L2_CID_EXPOSURE_ABSOLUTE), name: "Exposure Time, Absolute", type: V4L2_CTRL_TYPE_INTEGER, min: 3, max: 2047, step: 1, value: 250),
            Control(id: UInt32(V4L2_CID_PAN_ABSOLUTE), name: "Pan, Absolute", type: V4L2_CTRL_TYPE_INTEGER, min: -36000, max: 36000, step: 3600, value: 0),
        ]
    }
    struct Open { var path: String; var fourcc = FourCC.yuyv; var width = 640; var height = 480; var interval = FrameInterval(1, 30)
        var buffers: [UnsafeMutableRawBufferPointer] = []; var queued: [Int] = []; var streaming = false }

    private let lock = Mutex(())
    var devices: [Device]
    private var opened: [Int32: Open] = [:]
    private var nextFD: Int32 = 10
    var busy: Set<String> = []
    var unplugAfterFrames: Int? = nil
    var frames = 0
    var setControls: [(String, Int64)] = []

    init(devices: [Device]) { self.devices = devices }

    static func webcam(path: String = "/dev/video0") -> Device {
        Device(path: path, formats: [
            (.yuyv, "YUYV 4:2:2", [(1280, 720, [10, 5]), (640, 480, [30, 15]), (640, 360, [30, 15])]),
            (.mjpeg, "Motion-JPEG", [(1920, 1080, [30]), (1280, 720, [30, 15]), (640, 360, [30])]),
        ])
    }

    func unplug() { lock.withLock { _ in devices.removeAll() } }
    func plug(_ device: Device) { lock.withLock { _ in devices.append(device) } }

    func devicePaths() -> [String] { lock.withLock { _ in devices.map(\.path).sorted() } }

    func open(_ path: String) throws(Errno) -> Int32 {
        try lock.withLock { _ throws(Errno) in
            guard devices.contains(where: { $0.path == path }) else { throw Errno.noEntry }
            if busy.contains(path) { throw Errno.busy }
            nextFD += 1
            opened[nextFD] = Open(path: path)
            return nextFD
        }
    }

    func close(_ fd: Int32) { lock.withLock { _ in opened[fd] = nil } }

    func map(_ fd: Int32, length: Int, offset: Int) throws(Errno) -> UnsafeMutableRawBufferPointer {
        try lock.withLock { _ throws(Errno) in
            guard let o = opened[fd], offset / 4096 < o.buffers.count else { throw Errno.invalidArgument }
            return o.buffers[offset / 4096]
        }
    }

    func unmap(_ region: UnsafeMutableRawBufferPointer) {}

    func waitReadable(_ fd: Int32, timeoutMs: Int32) throws(Errno) -> Bool {
        if fd < 0 { usleep(UInt32(max(0, timeoutMs)) * 1000 / 50); return false }
        return try lock.withLock { _ throws(Errno) in
            guard let o = opened[fd], devices.contains(where: { $0.path == o.path }) else { throw Errno.noDevice }
            return o.streaming && !o.queued.isEmpty
        }
    }

    func poll(_ fd: Int32, events: Int16, timeoutMs: Int32) throws(Errno) -> Int16 {
        try waitReadable(fd, timeoutMs: timeoutMs) ? Int16(POLLIN) : 0
    }

    func ioctl(_ fd: Int32, _ request: VideoRequest, _ argument: UnsafeMutableRawBufferPointer) throws(Errno) {
        try lock.withLock { _ throws(Errno) in
            guard var o = opened[fd] else { throw Errno(EBADF) }
            guard let device = devices.first(where: { $0.path == o.path }) else { throw Errno.noDevice }
            defer { opened[fd] = o }
            let p = argument.baseAddress!
            switch request {
            case .queryCapability:
                let cap = p.assumingMemoryBound(to: v4l2_capability.self)
                copy(device.driver, into: &cap.pointee.driver)
                copy(device.card, into: &cap.pointee.card)
                copy(device.bus, into: &cap.pointee.bus_info)
                cap.pointee.device_caps = UInt32(V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_STREAMING)
                cap.pointee.capabilities = cap.pointee.device_caps | UInt32(V4L2_CAP_DEVICE_CAPS)
            case .enumerateFormat:
                let d = p.assumingMemoryBound(to: v4l2_fmtdesc.self)
                guard Int(d.pointee.index) < device.formats.count else { throw Errno.invalidArgument }
                let f = device.formats[Int(d.pointee.index)]
                d.pointee.pixelformat = f.fourcc.rawValue
                d.pointee.flags = f.fourcc.isCompressed ? UInt32(V4L2_FMT_FLAG_COMPRESSED) : 0
                copy(f.description, into: &d.pointee.description)
            case .enumerateFrameSizes:
                let s = p.assumingMemoryBound(to: v4l2_frmsizeenum.self)
                guard let f = device.formats.first(where: { $0.fourcc.rawValue == s.pointee.pixel_format }),
                      Int(s.pointee.index) < f.sizes.count else { throw Errno.invalidArgument }
                s.pointee.type = V4L2_FRMSIZE_TYPE_DISCRETE.rawValue
                s.pointee.discrete = v4l2_frmsize_discrete(width: UInt32(f.sizes[Int(s.pointee.index)].w), height: UInt32(f.sizes[Int(s.pointee.index)].h))
            case .enumerateFrameIntervals:
                let i = p.assumingMemoryBound(to: v4l2_frmivalenum.self)
                guard let f = device.formats.first(where: { $0.fourcc.rawValue == i.pointee.pixel_format }),
                      let size = f.sizes.first(where: { $0.w == Int(i.pointee.width) && $0.h == Int(i.pointee.height) }),
                      Int(i.pointee.index) < size.fps.count else { throw Errno.invalidArgument }
                i.pointee.type = V4L2_FRMIVAL_TYPE_DISCRETE.rawValue
                i.pointee.discrete = v4l2_fract(numerator: 1, denominator: UInt32(size.fps[Int(i.pointee.index)]))
            case .setFormat:
                let f = p.assumingMemoryBound(to: v4l2_format.self)
                guard let format = device.formats.first(where: { $0.fourcc.rawValue == f.pointee.fmt.pix.pixelformat }) ?? device.formats.first,
                      let size = format.sizes.first(where: { $0.w == Int(f.pointee.fmt.pix.width) && $0.h == Int(f.pointee.fmt.pix.height) }) ?? format.sizes.first
                else { throw Errno.invalidArgument }
                o.fourcc = format.fourcc; o.width = size.w; o.height = size.h
                f.pointee.fmt.pix.pixelformat = format.fourcc.rawValue
                f.pointee.fmt.pix.width = UInt32(size.w)
                f.pointee.fmt.pix.height = UInt32(size.h)
                f.pointee.fmt.pix.sizeimage = UInt32(size.w * size.h * 2)
            case .getFormat:
                let f = p.assumingMemoryBound(to: v4l2_format.self)
                f.pointee.fmt.pix.pixelformat = o.fourcc.rawValue
            case .getParameters:
                let parm = p.assumingMemoryBound(to: v4l2_streamparm.self)
                parm.pointee.parm.capture.capability = UInt32(V4L2_CAP_TIMEPERFRAME)
                parm.pointee.parm.capture.timeperframe = v4l2_fract(numerator: UInt32(o.interval.numerator), denominator: UInt32(o.interval.denominator))
            case .setParameters:
                let parm = p.assumingMemoryBound(to: v4l2_streamparm.self)
                o.interval = FrameInterval(Int(parm.pointee.parm.capture.timeperframe.numerator), Int(parm.pointee.parm.capture.timeperframe.denominator))
            case .requestBuffers:
                let r = p.assumingMemoryBound(to: v4l2_requestbuffers.self)
                for b in o.buffers { b.deallocate() }
                o.buffers = (0..<min(Int(r.pointee.count), 8)).map { _ in
                    UnsafeMutableRawBufferPointer.allocate(byteCount: o.width * o.height * 2, alignment: 64)
                }
                o.queued = []
                r.pointee.count = UInt32(o.buffers.count)
            case .queryBuffer:
                let b = p.assumingMemoryBound(to: v4l2_buffer.self)
                guard Int(b.pointee.index) < o.buffers.count else { throw Errno.invalidArgument }
                b.pointee.length = UInt32(o.buffers[Int(b.pointee.index)].count)
                b.pointee.m.offset = b.pointee.index * 4096
            case .queueBuffer:
                let b = p.assumingMemoryBound(to: v4l2_buffer.self)
                guard Int(b.pointee.index) < o.buffers.count, !o.queued.contains(Int(b.pointee.index)) else { throw Errno.invalidArgument }
                o.queued.append(Int(b.pointee.index))
            case .dequeueBuffer:
                guard o.streaming else { throw Errno.invalidArgument }
                if let limit = unplugAfterFrames, frames >= limit {
                    devices.removeAll { $0.path == o.path }
                    throw Errno.noDevice
                }
                guard !o.queued.isEmpty else { throw Errno.wouldBlock }
                let index = o.queued.removeFirst()
                let b = p.assumingMemoryBound(to: v4l2_buffer.self)
                b.pointee.index = UInt32(index)
                b.pointee.sequence = UInt32(frames)
                let used = o.fourcc.isCompressed ? 1000 + frames : o.width * o.height * 2
                b.pointee.bytesused = UInt32(used)
                let ns = Int64(frames) * 1_000_000_000 * Int64(o.interval.numerator) / Int64(o.interval.denominator)
                b.pointee.timestamp = timeval(tv_sec: Int(ns / 1_000_000_000), tv_usec: Int(ns % 1_000_000_000 / 1000))
                o.buffers[index].storeBytes(of: UInt32(frames), as: UInt32.self)
                frames += 1
            case .streamOn: o.streaming = true
            case .streamOff: o.streaming = false; o.queued = []
            case .queryExtendedControl:
                let q = p.assumingMemoryBound(to: v4l2_query_ext_ctrl.self)
                let wanted = q.pointee.id & ~UInt32(V4L2_CTRL_FLAG_NEXT_CTRL)
                let next = q.pointee.id & UInt32(V4L2_CTRL_FLAG_NEXT_CTRL) != 0
                guard let c = device.controls.sorted(by: { $0.id < $1.id }).first(where: { next ? $0.id > wanted : $0.id == wanted }) else {
                    throw Errno.invalidArgument
                }
                q.pointee.id = c.id
                q.pointee.type = c.type.rawValue
                copy(c.name, into: &q.pointee.name)
                q.pointee.minimum = c.min; q.pointee.maximum = c.max; q.pointee.step = c.step; q.pointee.default_value = c.value
            case .queryMenu:
                let m = p.assumingMemoryBound(to: v4l2_querymenu.self)
                guard m.pointee.index % 2 == 1 else { throw Errno.invalidArgument }  // like UVC: manual (1), aperture priority (3)
                copy(m.pointee.index == 1 ? "Manual Mode" : "Aperture Priority Mode", into: &m.pointee.name)
            case .getControl:
                let c = p.assumingMemoryBound(to: v4l2_control.self)
                guard let control = device.controls.first(where: { $0.id == c.pointee.id }) else { throw Errno.invalidArgument }
                c.pointee.value = Int32(control.value)
            case .setControl:
                let c = p.assumingMemoryBound(to: v4l2_control.self)
                guard let i = devices.firstIndex(where: { $0.path == o.path }),
                      let j = devices[i].controls.firstIndex(where: { $0.id == c.pointee.id }) else { throw Errno.invalidArgument }
                devices[i].controls[j].value = Int64(c.pointee.value)
                setControls.append((devices[i].controls[j].name, Int64(c.pointee.value)))
            case .encoderCommand: throw Errno(ENOTTY)
            }
        }
    }

    private func copy<T>(_ text: String, into field: inout T) {
        withUnsafeMutableBytes(of: &field) { raw in
            raw.initializeMemory(as: UInt8.self, repeating: 0)
            for (i, b) in text.utf8.prefix(raw.count - 1).enumerated() { raw[i] = b }
        }
    }
}
