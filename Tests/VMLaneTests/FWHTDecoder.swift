// The kernel's vicodec stateful decoder, driven just far enough to turn the encoder's FWHT frames back
// into raw frames for a similarity check. Test code: the firmware has no video decoder.
import CV4L2
@testable import Devices
#if canImport(Glibc)
import Glibc
#endif

/// A decode error with the step that failed.
struct DecoderFailure: Error, CustomStringConvertible { var description: String }

final class TestFWHTDecoder {
    private let kernel = LinuxVideoKernel()
    private let fd: Int32
    private let outType = V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE.rawValue
    private let capType = V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE.rawValue
    private var coded: [UnsafeMutableRawBufferPointer] = []
    private var raw: [UnsafeMutableRawBufferPointer] = []

    /// The stateful decoder node: vicodec, FWHT in, raw out.
    static func find() -> String? {
        Camera.list().first { $0.driver == "vicodec" && $0.memoryToMemory && !$0.isEncoder && $0.outputFormats.contains { $0.fourcc == .fwht } }?.path
    }

    init(path: String) throws { fd = try kernel.open(path) }

    deinit {
        for type in [capType, outType] {
            var t = Int32(bitPattern: type)
            try? call(.streamOff, &t)
        }
        for region in coded + raw { kernel.unmap(region) }
        kernel.close(fd)
    }

    private func call<T>(_ request: VideoRequest, _ value: inout T) throws {
        let fd = self.fd, kernel = self.kernel
        var failure: Errno? = nil
        withUnsafeMutableBytes(of: &value) { bytes in
            do throws(Errno) { try kernel.ioctl(fd, request, bytes) } catch { failure = error }
        }
        if let failure { throw DecoderFailure(description: "\(request.rawValue): \(failure)") }
    }

    private func setFormat(_ type: UInt32, _ fourcc: FourCC, _ width: Int, _ height: Int) throws -> v4l2_pix_format_mplane {
        var format = v4l2_format()
        format.type = type
        format.fmt.pix_mp.pixelformat = fourcc.rawValue
        format.fmt.pix_mp.width = UInt32(width)
        format.fmt.pix_mp.height = UInt32(height)
        format.fmt.pix_mp.num_planes = 1
        try call(.setFormat, &format)
        return format.fmt.pix_mp
    }

    private func buffers(_ type: UInt32, _ count: Int) throws -> [UnsafeMutableRawBufferPointer] {
        var request = v4l2_requestbuffers()
        request.count = UInt32(count)
        request.type = type
        request.memory = V4L2_MEMORY_MMAP.rawValue
        try call(.requestBuffers, &request)
        return try (0..<Int(request.count)).map { i in
            var b = planar(type, i)
            try call(.queryBuffer, &b)
            return try kernel.map(fd, length: Int(b.plane.length), offset: Int(b.plane.m.mem_offset))
        }
    }

    private func planar(_ type: UInt32, _ index: Int) -> PlanarBuffer {
        var b = PlanarBuffer()
        b.buffer.type = type
        b.buffer.memory = V4L2_MEMORY_MMAP.rawValue
        b.buffer.index = UInt32(index)
        b.buffer.length = 1
        return b
    }

    private func queueCoded(_ index: Int, _ frame: [UInt8]) throws {
        guard frame.count <= coded[index].count else { throw DecoderFailure(description: "coded frame larger than the buffer") }
        frame.withUnsafeBytes { coded[index].baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        var b = planar(outType, index)
        b.plane.bytesused = UInt32(frame.count)
        try call(.queueBuffer, &b)
    }

    /// Dequeues a buffer of `type`, waiting up to 5 s.
    private func dequeue(_ type: UInt32) throws -> PlanarBuffer {
        for _ in 0..<500 {
            var b = planar(type, 0)
            let fd = self.fd, kernel = self.kernel
            var failure: Errno? = nil
            withUnsafeMutableBytes(of: &b) { bytes in
                do throws(Errno) { try kernel.ioctl(fd, .dequeueBuffer, bytes) } catch { failure = error }
            }
            guard let failure else { return b }
            guard failure == .wouldBlock else { throw DecoderFailure(description: "VIDIOC_DQBUF: \(failure)") }
            _ = try? kernel.poll(fd, events: Int16(type == outType ? POLLOUT : POLLIN), timeoutMs: 10)
        }
        throw DecoderFailure(description: "no \(type == outType ? "coded" : "decoded") buffer within 5 s")
    }

    /// Decodes FWHT frames to `fourcc` frames of `width`x`height` (packed, one plane).
    func decode(_ frames: [[UInt8]], width: Int, height: Int, to fourcc: FourCC) throws -> [[UInt8]] {
        _ = try setFormat(outType, .fwht, width, height)
        coded = try buffers(outType, 2)
        var on = Int32(bitPattern: outType)
        try call(.streamOn, &on)
        // The first buffer's header tells the decoder the stream's size (it queues a source change).
        try queueCoded(0, frames[0])
        let capture = try setFormat(capType, fourcc, width, height)
        guard capture.pixelformat == fourcc.rawValue, Int(capture.width) == width, Int(capture.height) == height else {
            throw DecoderFailure(description: "the decoder set \(FourCC(rawValue: capture.pixelformat)) \(capture.width)x\(capture.height)")
        }
        let frameBytes = Int(capture.plane_fmt.0.sizeimage)
        raw = try buffers(capType, 2)
        for i in raw.indices {
            var b = planar(capType, i)
            try call(.queueBuffer, &b)
        }
        var capOn = Int32(bitPattern: capType)
        try call(.streamOn, &capOn)
        var decoded: [[UInt8]] = []
        var free = [1]
        var next = 1
        while decoded.count < frames.count {
            if next < frames.count, let index = free.popLast() {
                try queueCoded(index, frames[next])
                next += 1
            }
            let b = try dequeue(capType)
            let used = Int(b.plane.bytesused)
            guard used >= frameBytes else { throw DecoderFailure(description: "decoded \(used) bytes, expected \(frameBytes)") }
            decoded.append(Array(UnsafeRawBufferPointer(raw[Int(b.buffer.index)])[0..<frameBytes]))
            var requeue = planar(capType, Int(b.buffer.index))
            try call(.queueBuffer, &requeue)
            if next < frames.count { free.append(Int(try dequeue(outType).buffer.index)) }
        }
        return decoded
    }
}

/// Peak signal-to-noise ratio of the luma of two YUYV frames, in dB.
func lumaPSNR(_ a: [UInt8], _ b: [UInt8]) -> Double {
    var sum = 0.0, n = 0
    for i in stride(from: 0, to: min(a.count, b.count), by: 2) {
        let d = Double(a[i]) - Double(b[i])
        sum += d * d
        n += 1
    }
    let mse = sum / Double(max(1, n))
    return mse == 0 ? 99 : 10 * log10(255 * 255 / mse)
}
