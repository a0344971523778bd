internal import CV4L2
#if canImport(Glibc)
internal import Glibc
#endif

/// The V4L2 ioctls the camera and encoder drivers use, by their kernel names. The request numbers come
/// from the C compiler (they encode struct sizes), never from this file.
public enum VideoRequest: String, Sendable, Codable, CaseIterable {
    case queryCapability = "VIDIOC_QUERYCAP"
    case enumerateFormat = "VIDIOC_ENUM_FMT"
    case getFormat = "VIDIOC_G_FMT"
    case setFormat = "VIDIOC_S_FMT"
    case enumerateFrameSizes = "VIDIOC_ENUM_FRAMESIZES"
    case enumerateFrameIntervals = "VIDIOC_ENUM_FRAMEINTERVALS"
    case getParameters = "VIDIOC_G_PARM"
    case setParameters = "VIDIOC_S_PARM"
    case requestBuffers = "VIDIOC_REQBUFS"
    case queryBuffer = "VIDIOC_QUERYBUF"
    case queueBuffer = "VIDIOC_QBUF"
    case dequeueBuffer = "VIDIOC_DQBUF"
    case streamOn = "VIDIOC_STREAMON"
    case streamOff = "VIDIOC_STREAMOFF"
    case queryExtendedControl = "VIDIOC_QUERY_EXT_CTRL"
    case queryMenu = "VIDIOC_QUERYMENU"
    case getControl = "VIDIOC_G_CTRL"
    case setControl = "VIDIOC_S_CTRL"
    case encoderCommand = "VIDIOC_ENCODER_CMD"

    /// The ioctl request number.
    var number: UInt {
        switch self {
        case .queryCapability: return cb_VIDIOC_QUERYCAP()
        case .enumerateFormat: return cb_VIDIOC_ENUM_FMT()
        case .getFormat: return cb_VIDIOC_G_FMT()
        case .setFormat: return cb_VIDIOC_S_FMT()
        case .enumerateFrameSizes: return cb_VIDIOC_ENUM_FRAMESIZES()
        case .enumerateFrameIntervals: return cb_VIDIOC_ENUM_FRAMEINTERVALS()
        case .getParameters: return cb_VIDIOC_G_PARM()
        case .setParameters: return cb_VIDIOC_S_PARM()
        case .requestBuffers: return cb_VIDIOC_REQBUFS()
        case .queryBuffer: return cb_VIDIOC_QUERYBUF()
        case .queueBuffer: return cb_VIDIOC_QBUF()
        case .dequeueBuffer: return cb_VIDIOC_DQBUF()
        case .streamOn: return cb_VIDIOC_STREAMON()
        case .streamOff: return cb_VIDIOC_STREAMOFF()
        case .queryExtendedControl: return cb_VIDIOC_QUERY_EXT_CTRL()
        case .queryMenu: return cb_VIDIOC_QUERYMENU()
        case .getControl: return cb_VIDIOC_G_CTRL()
        case .setControl: return cb_VIDIOC_S_CTRL()
        case .encoderCommand: return cb_VIDIOC_ENCODER_CMD()
        }
    }

    /// Requests a driver may lack (ENOTTY then means "not supported", not a bug of ours).
    var isOptional: Bool {
        switch self {
        case .enumerateFrameSizes, .enumerateFrameIntervals, .getParameters, .setParameters, .queryExtendedControl,
             .queryMenu, .getControl, .setControl, .encoderCommand:
            return true
        default:
            return false
        }
    }
}

/// The kernel as a V4L2 driver sees it: the lowest seam of the camera code. The firmware uses
/// `LinuxVideoKernel`; `RecordingVideoKernel` keeps a trace of a real session, `ReplayingVideoKernel`
/// plays one back, and tests script a whole driver. Every call reports failure as an `Errno`.
public protocol VideoKernel: AnyObject, Sendable {
    /// The video device nodes present now (`/dev/video*`).
    func devicePaths() -> [String]
    /// Opens a device node (non-blocking, close-on-exec).
    func open(_ path: String) throws(Errno) -> Int32
    /// Closes a descriptor.
    func close(_ fd: Int32)
    /// One ioctl; `argument` is the request's struct, read and written in place.
    func ioctl(_ fd: Int32, _ request: VideoRequest, _ argument: UnsafeMutableRawBufferPointer) throws(Errno)
    /// Maps a driver buffer (`offset` from VIDIOC_QUERYBUF) into memory.
    func map(_ fd: Int32, length: Int, offset: Int) throws(Errno) -> UnsafeMutableRawBufferPointer
    /// Unmaps a buffer.
    func unmap(_ region: UnsafeMutableRawBufferPointer)
    /// Waits until a buffer can be dequeued; false on timeout.
    func waitReadable(_ fd: Int32, timeoutMs: Int32) throws(Errno) -> Bool
    /// `poll(2)` for `events` (POLLIN: a CAPTURE buffer is done; POLLOUT: an OUTPUT buffer is done, for
    /// memory-to-memory devices); the events that happened, 0 on timeout. POLLERR is returned, not thrown:
    /// on an M2M device it means that neither queue has a buffer queued.
    func poll(_ fd: Int32, events: Int16, timeoutMs: Int32) throws(Errno) -> Int16
}

/// A `v4l2_buffer` followed by its one plane, as the seam carries multi-planar buffers: the kernel wants
/// the plane array behind a pointer, which `LinuxVideoKernel` links for the call and clears after it, so
/// recorded traces hold no addresses and a replay sees the plane's values.
struct PlanarBuffer {
    var buffer = v4l2_buffer()
    var plane = v4l2_plane()

    static var planeOffset: Int { MemoryLayout<PlanarBuffer>.offset(of: \PlanarBuffer.plane)! }
}

extension VideoKernel {
    /// One ioctl on a Swift value of the request's struct type.
    func call<T>(_ fd: Int32, _ request: VideoRequest, _ value: inout T) throws(Errno) {
        var failure: Errno? = nil
        withUnsafeMutableBytes(of: &value) { raw in
            do throws(Errno) { try ioctl(fd, request, raw) } catch { failure = error }
        }
        if let failure {
            // A mandatory ioctl refused as "not a V4L2 device" means we sent it to the wrong file.
            if failure.rawValue == ENOTTY && !request.isOptional {
                preconditionFailure("\(request.rawValue) failed with \(failure): this is a bug in classbox, please report it")
            }
            throw failure
        }
    }
}

/// The real kernel: every call through `SystemCall`.
public final class LinuxVideoKernel: VideoKernel {
    /// The real kernel.
    public init() {}

    public func devicePaths() -> [String] {
        guard let dir = opendir("/dev") else { return [] }
        defer { closedir(dir) }
        var paths: [String] = []
        while let entry = readdir(dir) {
            let name = cString(of: &entry.pointee.d_name)
            if name.hasPrefix("video"), Int(name.dropFirst(5)) != nil { paths.append("/dev/" + name) }
        }
        return paths.sorted { $0.count != $1.count ? $0.count < $1.count : $0 < $1 }
    }

    public func open(_ path: String) throws(Errno) -> Int32 {
        try SystemCall.check { Glibc.open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC) }
    }

    public func close(_ fd: Int32) { _ = Glibc.close(fd) }

    public func ioctl(_ fd: Int32, _ request: VideoRequest, _ argument: UnsafeMutableRawBufferPointer) throws(Errno) {
        let base = argument.baseAddress!
        // A multi-planar buffer: point the kernel at the plane that follows the struct, for this call only.
        let planar = argument.count == MemoryLayout<PlanarBuffer>.size && [.queryBuffer, .queueBuffer, .dequeueBuffer].contains(request)
            && [V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE.rawValue, V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE.rawValue]
                .contains(base.assumingMemoryBound(to: v4l2_buffer.self).pointee.type)
        let buffer = base.assumingMemoryBound(to: v4l2_buffer.self)
        if planar {
            buffer.pointee.m.planes = (base + PlanarBuffer.planeOffset).assumingMemoryBound(to: v4l2_plane.self)
            buffer.pointee.length = 1
        }
        defer { if planar { buffer.pointee.m.planes = nil } }
        _ = try SystemCall.check { cb_ioctl(fd, request.number, base) }
    }

    public func map(_ fd: Int32, length: Int, offset: Int) throws(Errno) -> UnsafeMutableRawBufferPointer {
        let pointer = try SystemCall.checkMap { mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off_t(offset)) }
        return UnsafeMutableRawBufferPointer(start: pointer, count: length)
    }

    public func unmap(_ region: UnsafeMutableRawBufferPointer) {
        if let base = region.baseAddress { _ = munmap(base, region.count) }
    }

    public func waitReadable(_ fd: Int32, timeoutMs: Int32) throws(Errno) -> Bool {
        try SystemCall.waitReadable(fd, timeoutMs: timeoutMs)
    }

    public func poll(_ fd: Int32, events: Int16, timeoutMs: Int32) throws(Errno) -> Int16 {
        var entry = pollfd(fd: fd, events: events, revents: 0)
        let n = try SystemCall.check { Glibc.poll(&entry, 1, timeoutMs) }
        if n == 0 { return 0 }
        if entry.revents & Int16(POLLNVAL) != 0 { SystemCall.preconditionIsNotProgrammerError(Errno(EBADF)) }
        return entry.revents
    }
}

extension SystemCall {
    /// Runs `mmap`, whose failure value is MAP_FAILED rather than -1 or nil.
    static func checkMap(_ body: () -> UnsafeMutableRawPointer?) throws(Errno) -> UnsafeMutableRawPointer {
        while true {
            let result = body()
            if let result, result != UnsafeMutableRawPointer(bitPattern: -1) { return result }
            let error = Errno.current
            if error == .interrupted { continue }
            preconditionIsNotProgrammerError(error)
            throw error
        }
    }
}
