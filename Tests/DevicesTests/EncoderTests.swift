import CV4L2
import Foundation
import Testing
@testable import BoxConfig
@testable import Devices

func encoderSpec(gop: Int? = 30, bitrate: Int? = 1_500_000) -> CameraSpec {
    CameraSpec(backend: .v4l2, drivers: ["uvcvideo"], cards: [], formats: ["YUYV"], width: 640, height: 360, fps: 30,
               hardwareEncoder: "fake-codec", encoderFormat: "H264", encoderBitrate: bitrate, encoderKeyFrameInterval: gop)
}

let nv12Mode = CameraMode(fourcc: .nv12, width: 640, height: 360, interval: FrameInterval(1, 30))

/// A packed raw frame of the encoder's input mode whose first bytes are `tag`, and, for NV12, whose
/// chroma plane starts with `tag + 0x80`.
func rawFrame(_ encoder: VideoEncoder, tag: UInt8) -> [UInt8] {
    let s = encoder.settings
    let luma = s.width * s.height
    var frame = [UInt8](repeating: 0x10, count: s.rawFormat == .nv12 ? luma * 3 / 2 : luma * 2)
    for i in 0..<8 { frame[i] = tag &+ UInt8(i) }
    if s.rawFormat == .nv12 { for i in 0..<8 { frame[luma + i] = tag &+ 0x80 &+ UInt8(i) } }
    return frame
}

@discardableResult
func submit(_ encoder: VideoEncoder, tag: UInt8, ns: Int64, timeoutMs: Int = 0) throws -> Bool {
    try rawFrame(encoder, tag: tag).withUnsafeBytes { try encoder.submit($0, nanoseconds: ns, timeoutMs: timeoutMs) }
}

struct Coded: Equatable { var number: UInt32; var tag: UInt8; var chroma: UInt8; var ns: Int64; var key: Bool; var last: Bool; var size: Int }

func coded(_ f: EncodedFrame) -> Coded {
    Coded(number: f.bytes.loadUnaligned(fromByteOffset: 4, as: UInt32.self), tag: f.bytes[8], chroma: f.bytes[16], ns: f.nanoseconds,
          key: f.keyFrame, last: f.last, size: f.bytes.count)
}

@Suite("M2M encoder over a scripted stateful encoder driver")
struct EncoderTests {
    @Test("it is set up in the protocol's order: coded format, raw format, rate, controls, buffers, both queues on",
          arguments: [false, true])
    func setupOrder(multiplanar: Bool) throws {
        let driver = FakeEncoderDriver(multiplanar: multiplanar)
        let encoder = try VideoEncoder(spec: encoderSpec(), input: nv12Mode, kernel: driver, bufferCount: 3)
        #expect(driver.history == ["S_FMT coded H264", "S_FMT raw NV12 640x368", "S_PARM 30/1", "S_CTRL bitrate=1500000", "S_CTRL gop=30",
                                   "REQBUFS raw 3", "REQBUFS coded 3", "STREAMON raw", "STREAMON coded"])
        #expect(encoder.info.multiplanar == multiplanar && encoder.info.isEncoder)
        #expect(encoder.frameRateApplied && encoder.appliedControls == ["video_bitrate": 1_500_000, "video_gop_size": 30])
        #expect(encoder.rawFrameBytes == 640 * 368 * 3 / 2 && encoder.rawBytesPerLine == 640, "the driver's aligned size is used")
        #expect(encoder.bufferCounts.raw == 3 && encoder.bufferCounts.coded == 3)
    }

    @Test("each raw frame gives one coded frame, in place, with its timestamp and its bytes copied in; key frames by the GOP",
          arguments: [false, true])
    func encodes(multiplanar: Bool) throws {
        let driver = FakeEncoderDriver(multiplanar: multiplanar)
        let encoder = try VideoEncoder(spec: encoderSpec(gop: 4), input: nv12Mode, kernel: driver)
        var out: [Coded] = []
        for i in 0..<10 {
            #expect(try submit(encoder, tag: UInt8(i * 10), ns: Int64(i) * 33_333_333))
            let frame = try #require(try encoder.nextFrame(timeoutMs: 100))
            out.append(coded(frame))
            #expect(frame.bytes.starts(with: Array("FAKE".utf8)))
            try encoder.release(frame)
        }
        let numbers: [UInt32] = Array(0..<10)
        let tags: [UInt8] = (0..<10).map { UInt8($0 * 10) }
        let stamps: [Int64] = (0..<10).map { Int64($0) * 33_333_333 / 1000 * 1000 }
        let keys: [Bool] = (0..<10).map { $0 % 4 == 0 }
        let size = 20 + encoder.rawFrameBytes / 64
        #expect(out.map(\.number) == numbers)
        #expect(out.map(\.tag) == tags, "the raw bytes reached the driver's buffer")
        #expect(out.map(\.ns) == stamps, "timestamps carried at microsecond precision")
        #expect(out.map(\.key) == keys)
        #expect(out.allSatisfy { $0.size == size && !$0.last })
        var expected = EncoderCounters()
        (expected.framesIn, expected.framesOut, expected.keyFrames, expected.bytesOut) = (10, 10, 3, size * 10)
        #expect(encoder.counters == expected)
        #expect(try encoder.nextFrame(timeoutMs: 10) == nil, "nothing pending: no frame, no wait (POLLERR from an idle M2M queue)")
    }

    @Test("drain: STOP, then every pending frame up to the one flagged LAST, then nothing; START resumes", arguments: [false, true])
    func drain(multiplanar: Bool) throws {
        let driver = FakeEncoderDriver(multiplanar: multiplanar)
        let encoder = try VideoEncoder(spec: encoderSpec(), input: nv12Mode, kernel: driver, bufferCount: 4)
        for i in 0..<3 { try submit(encoder, tag: UInt8(i), ns: Int64(i) * 1000) }
        var drained: [Coded] = []
        let count = try encoder.drain(timeoutMs: 1000) { drained.append(coded($0)) }
        let drainedTags: [UInt8] = drained.map(\.tag), lastFlags: [Bool] = drained.map(\.last)
        #expect(count == 3)
        #expect(drainedTags == [0, 1, 2])
        #expect(lastFlags == [false, false, true])
        #expect(encoder.isDrained && driver.history.contains("ENC_CMD_STOP"))
        #expect(try encoder.nextFrame(timeoutMs: 10) == nil, "nothing after LAST (EPIPE)")
        #expect { try submit(encoder, tag: 9, ns: 0) } throws: { ($0 as? CameraError)?.kind == .refused }
        try encoder.resume()
        #expect(!encoder.isDrained && driver.history.last == "ENC_CMD_START")
        try submit(encoder, tag: 42, ns: 5000)
        #expect(try encoder.withNextFrame(timeoutMs: 100) { coded($0).tag } == 42)
        // A drain with nothing pending ends on an empty LAST buffer, which is not handed out.
        #expect(try encoder.drain(timeoutMs: 1000) == 0)
        #expect(encoder.isDrained)
        try encoder.resume()
        try submit(encoder, tag: 7, ns: 6000)
        #expect(try encoder.withNextFrame(timeoutMs: 100) { coded($0).tag } == 7, "the parked empty buffer is queued again")
    }

    @Test("a frame goes in plane by plane where the driver pads the height: NV12's chroma lands after the padded luma rows")
    func paddedLayout() throws {
        let driver = FakeEncoderDriver(multiplanar: true)
        let encoder = try VideoEncoder(spec: encoderSpec(), input: nv12Mode, kernel: driver)
        #expect(encoder.rawFrameBytes == 640 * 368 * 3 / 2 && encoder.rawInputBytes == 640 * 360 * 3 / 2)
        try submit(encoder, tag: 3, ns: 0)
        let out = try #require(try encoder.withNextFrame(timeoutMs: 10) { coded($0) })
        #expect(out.tag == 3 && out.chroma == 0x83)
    }

    @Test("raw layouts: packed when the driver adds nothing, line by line and plane by plane when it pads")
    func rawLayouts() throws {
        let flat = try #require(RawFrameLayout(fourcc: .yuyv, width: 4, height: 2, bytesPerLine: 8, paddedHeight: 2, sizeImage: 16))
        let padded = try #require(RawFrameLayout(fourcc: .yuv420, width: 4, height: 2, bytesPerLine: 8, paddedHeight: 4, sizeImage: 48))
        #expect(flat.packedBytes == 16 && padded.packedBytes == 12)
        #expect(RawFrameLayout(fourcc: .nv12, width: 4, height: 2, bytesPerLine: 2, paddedHeight: 2, sizeImage: 12) == nil, "lines shorter than the frame's")
        #expect(RawFrameLayout(fourcc: .mjpeg, width: 4, height: 2, bytesPerLine: 8, paddedHeight: 2, sizeImage: 16) == nil)
        let frame: [UInt8] = Array(1...12)  // Y 4x2, U 2x1, V 2x1
        let region = UnsafeMutableRawBufferPointer.allocate(byteCount: 48, alignment: 8)
        defer { region.deallocate() }
        region.initializeMemory(as: UInt8.self, repeating: 0)
        #expect(frame.withUnsafeBytes { padded.copy($0, into: region) } == 48)
        var expected = [UInt8](repeating: 0, count: 48)
        expected.replaceSubrange(0..<4, with: [1, 2, 3, 4]); expected.replaceSubrange(8..<12, with: [5, 6, 7, 8])  // Y rows, stride 8
        expected.replaceSubrange(32..<34, with: [9, 10])   // U after 4 padded luma rows, stride 4
        expected.replaceSubrange(40..<42, with: [11, 12])  // V after 2 padded U rows
        #expect(Array(region) == expected)
        #expect([UInt8](repeating: 0, count: 11).withUnsafeBytes { padded.copy($0, into: region) } == nil, "a short frame is refused")
    }

    @Test("a frame of the wrong size is refused with what it should be, and the encoder carries on; a size the driver changes is refused")
    func wrongSizes() throws {
        let driver = FakeEncoderDriver(multiplanar: false)
        let encoder = try VideoEncoder(spec: encoderSpec(), input: nv12Mode, kernel: driver, bufferCount: 2)
        #expect { _ = try [UInt8](repeating: 0, count: 1000).withUnsafeBytes { try encoder.submit($0, nanoseconds: 0) } } throws: { error in
            let e = error as? CameraError
            return e?.kind == .refused && e!.detail.contains("NV12 640x360 frame (345600 bytes)")
        }
        for i in 0..<2 {
            try submit(encoder, tag: UInt8(i), ns: 0)
            #expect(try encoder.withNextFrame(timeoutMs: 10) { coded($0).tag } == UInt8(i), "both input buffers are still usable")
        }
        let odd = CameraMode(fourcc: .nv12, width: 650, height: 360, interval: FrameInterval(1, 30))
        #expect { _ = try VideoEncoder(spec: encoderSpec(), input: odd, kernel: FakeEncoderDriver(multiplanar: false)) } throws: { error in
            let e = error as? CameraError
            return e?.kind == .refused && e!.detail.contains("the encoder set NV12 656x368")
        }
    }

    @Test("a driver that keeps end-of-stream through START is resumed by restarting the CAPTURE queue")
    func resumeByRestart() throws {
        let driver = FakeEncoderDriver(multiplanar: true)
        driver.startKeepsLast = true
        let encoder = try VideoEncoder(spec: encoderSpec(), input: nv12Mode, kernel: driver, bufferCount: 3)
        try submit(encoder, tag: 1, ns: 0)
        #expect(try encoder.drain(timeoutMs: 1000) == 1)
        try encoder.resume()
        try submit(encoder, tag: 2, ns: 0)
        #expect(try encoder.withNextFrame(timeoutMs: 10) { coded($0).tag } == 2)
        let history = driver.history
        #expect(Array(history.suffix(3)) == ["ENC_CMD_START", "STREAMOFF coded", "STREAMON coded"])
        try submit(encoder, tag: 3, ns: 0)
        #expect(try encoder.withNextFrame(timeoutMs: 10) { coded($0).tag } == 3, "every coded buffer is in use again")
    }

    @Test("a key frame is requested through FORCE_KEY_FRAME; a driver without the control says no")
    func keyFrames() throws {
        let driver = FakeEncoderDriver(multiplanar: true)
        let encoder = try VideoEncoder(spec: encoderSpec(gop: 100), input: nv12Mode, kernel: driver)
        var keys: [Bool] = []
        for i in 0..<4 {
            if i == 2 { #expect(try encoder.requestKeyFrame()) }
            try submit(encoder, tag: 0, ns: 0)
            keys.append(try #require(try encoder.withNextFrame(timeoutMs: 100) { $0.keyFrame }))
        }
        #expect(keys == [true, false, true, false])
        #expect(encoder.counters.keyFramesRequested == 1 && encoder.counters.keyFrames == 2)
        let plain = FakeEncoderDriver(multiplanar: true)
        plain.hasKeyFrameControl = false
        plain.hasFrameRate = false
        let other = try VideoEncoder(spec: encoderSpec(), input: nv12Mode, kernel: plain)
        #expect(try !other.requestKeyFrame())
        #expect(!other.frameRateApplied, "a driver without S_PARM is used at its own rate")
    }

    @Test("with every input buffer still in the driver, a frame is dropped and counted instead of blocking")
    func backPressure() throws {
        let driver = FakeEncoderDriver(multiplanar: false)
        let encoder = try VideoEncoder(spec: encoderSpec(), input: nv12Mode, kernel: driver, bufferCount: 2)
        // Nobody takes coded frames: 2 are encoded into the 2 coded buffers, 2 more wait in the raw queue.
        let accepted = try (0..<5).map { try submit(encoder, tag: UInt8($0), ns: 0, timeoutMs: 0) }
        #expect(accepted == [true, true, true, true, false])
        #expect(encoder.counters.framesDropped == 1 && encoder.counters.framesIn == 4)
        var tags: [UInt8] = []
        while let tag = try encoder.withNextFrame(timeoutMs: 10, { coded($0).tag }) { tags.append(tag) }
        #expect(tags == [0, 1, 2, 3], "the queued frames come out in order once coded buffers are given back")
    }

    @Test("the encoder is found by driver and coded format; a decoder or another codec is not taken, and the error lists what is there")
    func finding() throws {
        let driver = FakeEncoderDriver(multiplanar: true)
        let devices = VideoEncoder.list(kernel: driver)
        #expect(devices.map(\.path) == ["/dev/video11"])
        let inputs: [FourCC] = devices[0].outputFormats.map(\.fourcc), outputs: [FourCC] = devices[0].formats.map(\.fourcc)
        #expect(inputs == [.nv12, .yuyv])
        #expect(outputs == [.h264])
        #expect(try VideoEncoder.find(driver: "fake-codec", codedFormat: .h264, among: devices).path == "/dev/video11")
        #expect(try VideoEncoder.find(driver: nil, codedFormat: .h264, among: devices).path == "/dev/video11")
        #expect { _ = try VideoEncoder.find(driver: "bcm2835-codec", codedFormat: .h264, among: devices) } throws: { error in
            let e = error as? CameraError
            return e?.kind == .notFound && e!.detail.contains("/dev/video11 fake-codec \"Fake Encoder\" (NV12/YUYV to H264)")
        }
        #expect { _ = try VideoEncoder.find(driver: nil, codedFormat: .fwht, among: devices) } throws: { ($0 as? CameraError)?.kind == .notFound }
        var decoder = devices[0]
        (decoder.formats, decoder.outputFormats) = (decoder.outputFormats, decoder.formats)
        #expect(!decoder.isEncoder)
        var camera = devices[0]
        camera.memoryToMemory = false
        #expect(!camera.isEncoder)
        #expect { _ = try VideoEncoder(spec: encoderSpec(), input: CameraMode(fourcc: .mjpeg, width: 640, height: 360, interval: FrameInterval(1, 30)),
                                       kernel: driver) } throws: { error in
            let e = error as? CameraError
            return e?.kind == .unsupported && e!.detail.contains("takes NV12, YUYV, not MJPG")
        }
        var none = encoderSpec()
        none.hardwareEncoder = nil
        #expect { _ = try VideoEncoder(spec: none, input: nv12Mode, kernel: driver) } throws: { ($0 as? CameraError)?.kind == .unsupported }
    }

    @Test("an encoder whose driver goes away (ENODEV) is dropped, frames are counted as dropped, and it reopens when it is back")
    func unplug() throws {
        let driver = FakeEncoderDriver(multiplanar: true)
        let encoder = try VideoEncoder(spec: encoderSpec(), input: nv12Mode, kernel: driver)
        encoder.reopenIntervalMs = 0
        try submit(encoder, tag: 1, ns: 0)
        #expect(try encoder.withNextFrame(timeoutMs: 10) { coded($0).tag } == 1)
        driver.unplug()
        #expect(try !submit(encoder, tag: 2, ns: 0))
        #expect(!encoder.isRunning && encoder.goneCount == 1)
        #expect(try encoder.nextFrame(timeoutMs: 10) == nil)
        #expect(try !submit(encoder, tag: 3, ns: 0), "still gone: dropped without an error")
        driver.plug()
        #expect(try submit(encoder, tag: 4, ns: 0))
        #expect(encoder.isRunning && encoder.reopenCount == 1)
        #expect(try encoder.withNextFrame(timeoutMs: 10) { coded($0) }?.key == true, "a fresh session starts with a key frame")
        #expect(encoder.counters.framesDropped == 2)
    }

    @Test("a session recorded through the seam replays call for call, multi-planar buffers included", arguments: [false, true])
    func traceReplay(multiplanar: Bool) throws {
        func session(_ kernel: any VideoKernel) throws -> [UInt32] {
            let encoder = try VideoEncoder(spec: encoderSpec(), input: nv12Mode, kernel: kernel, bufferCount: 2)
            var numbers: [UInt32] = []
            for i in 0..<3 {
                try submit(encoder, tag: UInt8(i), ns: Int64(i) * 1000)
                if let n = try encoder.withNextFrame(timeoutMs: 10, { _ in UInt32(i) }) { numbers.append(n) }
            }
            _ = try encoder.drain(timeoutMs: 1000)
            return numbers
        }
        let recorder = RecordingVideoKernel(FakeEncoderDriver(multiplanar: multiplanar))
        let recorded = try session(recorder)
        let json = try JSONEncoder().encode(recorder.trace)
        let replayer = ReplayingVideoKernel(try JSONDecoder().decode(VideoTrace.self, from: json))
        let replayed = try session(replayer)
        #expect(recorded == [0, 1, 2] && replayed == recorded)
        #expect(replayer.mismatches.isEmpty, "\(replayer.mismatches.prefix(3))")
        #expect(recorder.trace.entries.contains { $0.call == .poll } || recorder.trace.entries.contains { $0.request == .encoderCommand })
    }
}
