internal import CV4L2
#if canImport(Glibc)
internal import Glibc
#endif

/// One captured frame, in the driver's own buffer (no copy): valid until it is given back.
public struct VideoFrame: @unchecked Sendable {
    // @unchecked: `bytes` points into a buffer that only its stream's owner reads until it is released.
    /// The driver buffer's index.
    public var index: Int
    /// The frame's bytes (for compressed formats, the encoded access unit or JPEG).
    public var bytes: UnsafeRawBufferPointer
    /// The driver's frame counter; a gap means frames were dropped.
    public var sequence: UInt32
    /// When the frame's capture ended (CLOCK_MONOTONIC on every modern driver), in nanoseconds.
    public var nanoseconds: Int64
    /// Whether the frame is a key frame (H.264 IDR), as the driver flags it.
    public var keyFrame: Bool
}

/// Streaming with a bounded number of mmap buffers: the driver fills them in turn, `next` hands one out
/// in place, `release` gives it back. Closing (deinit) stops the stream, unmaps and frees the buffers
/// and closes the device.
final class VideoCaptureStream {
    private let handle: VideoDeviceHandle
    let device: String
    private var buffers: [UnsafeMutableRawBufferPointer] = []
    private(set) var outstanding = 0
    private var streaming = false

    /// Maps `count` buffers (the driver may give more or fewer; at least 2) and starts streaming.
    init(handle: consuming VideoDeviceHandle, device: String, count: Int) throws(CameraError) {
        self.handle = handle
        self.device = device
        var request = v4l2_requestbuffers()
        request.count = UInt32(count)
        request.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
        request.memory = V4L2_MEMORY_MMAP.rawValue
        do { try self.handle.call(.requestBuffers, &request) } catch {
            throw CameraError.from(error, device: device, call: "VIDIOC_REQBUFS", refused: "the camera cannot stream with mmap buffers")
        }
        guard request.count >= 2 else {
            throw CameraError(kind: .unsupported, device: device, call: "VIDIOC_REQBUFS", detail: "the driver gave \(request.count) buffers; at least 2 are needed")
        }
        for index in 0..<request.count {
            var buffer = v4l2_buffer()
            buffer.index = index
            buffer.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
            buffer.memory = V4L2_MEMORY_MMAP.rawValue
            do {
                try self.handle.call(.queryBuffer, &buffer)
                let region = try self.handle.kernel.map(self.handle.fd, length: Int(buffer.length), offset: Int(buffer.m.offset))
                buffers.append(region)
                try self.handle.call(.queueBuffer, &buffer)
            } catch {
                throw CameraError.from(error, device: device, call: "map buffer \(index)")
            }
        }
        var type = Int32(V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue)
        do { try self.handle.call(.streamOn, &type) } catch { throw CameraError.from(error, device: device, call: "VIDIOC_STREAMON") }
        streaming = true
    }

    deinit {
        if streaming {
            var type = Int32(V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue)
            try? handle.call(.streamOff, &type)
        }
        for region in buffers { handle.kernel.unmap(region) }
        if !buffers.isEmpty {
            var request = v4l2_requestbuffers()
            request.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
            request.memory = V4L2_MEMORY_MMAP.rawValue
            try? handle.call(.requestBuffers, &request)
        }
    }

    /// The number of driver buffers.
    var bufferCount: Int { buffers.count }

    /// The next frame, or nil when none came within `timeoutMs`. At most `bufferCount - 1` frames may be
    /// held at once (the driver needs one to fill): holding more is a bug and traps.
    func next(timeoutMs: Int32) throws(CameraError) -> VideoFrame? {
        precondition(outstanding < buffers.count - 1, "\(device): every buffer but one is held; release frames before asking for more")
        while true {
            var buffer = v4l2_buffer()
            buffer.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
            buffer.memory = V4L2_MEMORY_MMAP.rawValue
            do {
                try handle.call(.dequeueBuffer, &buffer)
            } catch {
                if error == .wouldBlock {
                    let ready: Bool
                    do { ready = try handle.kernel.waitReadable(handle.fd, timeoutMs: timeoutMs) } catch {
                        throw CameraError.from(error, device: device, call: "poll")
                    }
                    if ready { continue }
                    return nil
                }
                throw CameraError.from(error, device: device, call: "VIDIOC_DQBUF")
            }
            let index = Int(buffer.index)
            guard index < buffers.count else { preconditionFailure("\(device): the driver returned buffer \(index) of \(buffers.count)") }
            if buffer.flags & UInt32(V4L2_BUF_FLAG_ERROR) != 0 {
                // A corrupt frame (USB bandwidth, a glitch): give it back and wait for the next one.
                var requeue = buffer
                do { try handle.call(.queueBuffer, &requeue) } catch { throw CameraError.from(error, device: device, call: "VIDIOC_QBUF") }
                continue
            }
            outstanding += 1
            let used = min(Int(buffer.bytesused), buffers[index].count)
            return VideoFrame(index: index, bytes: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffers[index])[0..<used]),
                              sequence: buffer.sequence,
                              nanoseconds: Int64(buffer.timestamp.tv_sec) * 1_000_000_000 + Int64(buffer.timestamp.tv_usec) * 1000,
                              keyFrame: buffer.flags & UInt32(V4L2_BUF_FLAG_KEYFRAME) != 0)
        }
    }

    /// Gives a frame's buffer back to the driver.
    func release(_ frame: VideoFrame) throws(CameraError) {
        var buffer = v4l2_buffer()
        buffer.index = UInt32(frame.index)
        buffer.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
        buffer.memory = V4L2_MEMORY_MMAP.rawValue
        outstanding -= 1
        do { try handle.call(.queueBuffer, &buffer) } catch { throw CameraError.from(error, device: device, call: "VIDIOC_QBUF") }
    }

    func setControl(_ key: String, _ value: Int64, controls: [CameraControlInfo]) throws(CameraError) {
        try handle.setControl(key, value, controls: controls, device: device)
    }

    func control(_ key: String, controls: [CameraControlInfo]) throws(CameraError) -> Int64 {
        try handle.control(key, controls: controls, device: device)
    }
}
