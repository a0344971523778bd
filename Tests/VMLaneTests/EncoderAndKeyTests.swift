// The VM lane's memory-to-memory encoder and input-key tests: the firmware's encoder against the kernel's
// vicodec (a real stateful M2M encoder of the FWHT test format, multi-planar as the Pi 4's bcm2835-codec),
// fed with frames from vivid; and the evdev raise-hand button against a key made by the kernel's uinput.
import Box
@testable import BoxConfig
import CV4L2
import Devices
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// vicodec's FWHT frame header: two magic words, then big-endian version, width, height, flags.
struct FWHTHeader {
    static let magic1: UInt32 = 0x4f4f_4f4f
    static let magic2: UInt32 = 0xffff_ffff
    static let iFrame: UInt32 = 1 << 10  // V4L2_FWHT_FL_I_FRAME
    var version: UInt32, width: UInt32, height: UInt32, flags: UInt32

    init?(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= 44, bytes.loadUnaligned(as: UInt32.self) == FWHTHeader.magic1,
              bytes.loadUnaligned(fromByteOffset: 4, as: UInt32.self) == FWHTHeader.magic2 else { return nil }
        func be(_ offset: Int) -> UInt32 { UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
        version = be(8); width = be(12); height = be(16); flags = be(20)
    }
}

/// What came out of the encoder for one frame.
struct CodedRecord { var size: Int; var header: FWHTHeader?; var nanoseconds: Int64; var last: Bool }

func encoderBoard() throws -> CameraSpec {
    var spec = try qemuBoard().camera
    spec.formats = ["YUYV"]
    return spec
}

// Nested in the lane's serialized suite: the driver unbind tests (vivid, vicodec) must not run beside these.
extension VMLaneTests {
@Suite("VM lane: the M2M encoder against vicodec, the evdev button against uinput", .enabled(if: vmLane), .serialized)
struct EncoderAndKeyTests {
    @Test("vicodec is found by the profile's driver and coded format, and listed as an encoder")
    func findEncoder() throws {
        let spec = try encoderBoard()
        let encoders = VideoEncoder.list()
        log("encoders: " + encoders.map { "\($0.path) \($0.driver) \($0.outputFormats.count) raw formats to \($0.formats.map(\.fourcc.description))" }.joined(separator: "; "))
        let device = try VideoEncoder.find(driver: spec.hardwareEncoder, codedFormat: FourCC(spec.encoderFormat), among: encoders)
        #expect(device.driver == "vicodec" && device.multiplanar && device.isEncoder)
        #expect(device.outputFormats.contains { $0.fourcc == .yuyv } && device.outputFormats.contains { $0.fourcc == .nv12 })
        #expect(device.controls.contains { $0.key == "video_gop_size" })
        // The decoder nodes (FWHT in, raw out) are not encoders.
        let all = Camera.list()
        #expect(all.filter { $0.driver == "vicodec" }.count >= 2 && all.filter { $0.driver == "vicodec" && !$0.isEncoder }.count >= 1)
        let inventory = DeviceInventory.current()
        #expect(inventory.text.contains("\(device.path): vicodec") && inventory.text.contains("encoder"))
    }

    @Test("vivid frames are encoded to FWHT: one coded frame per raw frame, headers with the size, key frames by the GOP, timestamps carried, drained at stop")
    func encodeVividFrames() throws {
        let spec = try encoderBoard()
        let camera = try Camera(spec: spec, bufferCount: 4)
        #expect(camera.mode == CameraMode(fourcc: .yuyv, width: 640, height: 360, interval: FrameInterval(1, 30)))
        let encoder = try VideoEncoder(spec: spec, input: camera.mode)
        log("encoder \(encoder.info.name): \(encoder.settings), raw frame \(encoder.rawFrameBytes) bytes, buffers \(encoder.bufferCounts), controls \(encoder.appliedControls), rate set \(encoder.frameRateApplied)")
        #expect(encoder.appliedControls["video_gop_size"] == 10)
        #expect(encoder.rawFrameBytes == 640 * 360 * 2)
        let frames = 25
        var stamps: [Int64] = [], coded: [CodedRecord] = []
        func collect(_ f: EncodedFrame) { coded.append(CodedRecord(size: f.bytes.count, header: FWHTHeader(f.bytes), nanoseconds: f.nanoseconds, last: f.last)) }
        for _ in 0..<frames {
            let queued = try #require(try camera.withNextFrame(timeoutMs: 5000) { frame -> Bool in
                stamps.append(frame.nanoseconds)
                return (try? encoder.submit(frame.bytes, nanoseconds: frame.nanoseconds, timeoutMs: 2000)) ?? false
            }, "no frame from vivid")
            #expect(queued, "the encoder took the frame")
            // Collect what is ready without waiting: the stream runs while frames go in.
            while let f = try encoder.nextFrame(timeoutMs: 0) { collect(f); try encoder.release(f) }
        }
        let beforeDrain = coded.count
        let drained = try encoder.drain(timeoutMs: 5000) { collect($0) }
        log("coded \(coded.count) frames (\(beforeDrain) while streaming, \(drained) at the drain); sizes \(coded.map(\.size).min() ?? 0)...\(coded.map(\.size).max() ?? 0); I frames at \(coded.indices.filter { coded[$0].header.map { $0.flags & FWHTHeader.iFrame != 0 } ?? false })")
        #expect(coded.count == frames, "one coded frame per raw frame")
        // The drain ended on the buffer flagged LAST: the last frame, or an empty buffer when every frame
        // was already out when STOP came (the kernel decides by timing).
        #expect(encoder.isDrained, "the drain ended on the buffer flagged LAST")
        #expect(coded.dropLast().allSatisfy { !$0.last }, "only the final frame may carry LAST")
        #expect(try encoder.nextFrame(timeoutMs: 100) == nil, "nothing after the LAST frame")
        #expect(coded.allSatisfy { $0.header != nil && $0.size > 44 && $0.size < 640 * 360 * 2 }, "every frame is a compressed FWHT frame")
        #expect(coded.allSatisfy { $0.header?.width == 640 && $0.header?.height == 360 && $0.header?.version == 3 })
        #expect(coded.map(\.nanoseconds) == stamps, "each coded frame carries its raw frame's timestamp")
        let iFrames = coded.indices.filter { coded[$0].header!.flags & FWHTHeader.iFrame != 0 }
        #expect([0, 10, 20].allSatisfy(iFrames.contains), "a key frame opens every GOP of 10")
        #expect(iFrames.count < frames / 2, "the frames between are predicted")
        #expect(encoder.counters.framesIn == frames && encoder.counters.framesOut == frames && encoder.counters.framesDropped == 0)
        // After the drain the encoder resumes on V4L2_ENC_CMD_START.
        try encoder.resume()
        let raw = [UInt8](repeating: 0x80, count: encoder.rawInputBytes)
        let resumed = try raw.withUnsafeBytes { try encoder.submit($0, nanoseconds: 1_000_000_000) }
        #expect(resumed)
        let after = try encoder.withNextFrame(timeoutMs: 5000) { FWHTHeader($0.bytes) != nil }
        #expect(after == true, "a frame encoded after resume")
        _ = try encoder.drain(timeoutMs: 5000)
        #expect(encoder.isDrained)
    }

    @Test("generated NV12 frames: flat frames code smaller than busy ones, and 2 input buffers are recycled over 12 frames")
    func generatedFrames() throws {
        let spec = try encoderBoard()
        // vicodec's smallest size is 640x360; NV12 rows are padded to 368 in its buffers.
        var settings = EncoderSettings(spec: spec, input: CameraMode(fourcc: .nv12, width: 640, height: 360, interval: FrameInterval(1, 15)))
        settings.bufferCount = 2
        let device = try VideoEncoder.find(driver: "vicodec", codedFormat: .fwht, among: VideoEncoder.list())
        let encoder = try VideoEncoder(device: device, settings: settings)
        #expect(encoder.rawFrameBytes == 640 * 368 * 3 / 2 && encoder.rawInputBytes == 640 * 360 * 3 / 2)
        var sizes: [Int] = []
        var frame = [UInt8](repeating: 0, count: 640 * 360 * 3 / 2)
        for i in 0..<12 {
            if i >= 6 { for j in 0..<frame.count { frame[j] = UInt8(truncatingIfNeeded: j &* 7 &+ i &* 31) } }  // changing content
            else { for j in 0..<frame.count { frame[j] = 0x40 } }
            let queued = try frame.withUnsafeBytes { try encoder.submit($0, nanoseconds: Int64(i) * 66_666_667, timeoutMs: 2000) }
            #expect(queued)
            if let size = try encoder.withNextFrame(timeoutMs: 5000, { $0.bytes.count }) { sizes.append(size) }
        }
        _ = try encoder.drain(timeoutMs: 5000) { sizes.append($0.bytes.count) }
        log("sizes of 6 flat then 6 changing 640x360 NV12 frames: \(sizes)")
        #expect(sizes.count == 12)
        #expect(sizes.count == 12 && sizes[1..<6].max()! < sizes[7..<12].min()!, "flat predicted frames are smaller than noisy ones")
    }

    @Test("round trip: vivid frames encoded by vicodec's encoder and decoded by its decoder come back close to the originals")
    func roundTrip() throws {
        let spec = try encoderBoard()
        let camera = try Camera(spec: spec, bufferCount: 4)
        let encoder = try VideoEncoder(spec: spec, input: camera.mode)
        var originals: [[UInt8]] = [], coded: [[UInt8]] = []
        for _ in 0..<6 {
            let queued = try camera.withNextFrame(timeoutMs: 5000) { frame -> Bool in
                originals.append(Array(frame.bytes))
                return (try? encoder.submit(frame.bytes, nanoseconds: frame.nanoseconds, timeoutMs: 2000)) ?? false
            }
            #expect(queued == true)
            if let c = try encoder.withNextFrame(timeoutMs: 5000, { Array($0.bytes) }) { coded.append(c) }
        }
        _ = try encoder.drain(timeoutMs: 5000) { coded.append(Array($0.bytes)) }
        #expect(coded.count == originals.count)
        let path = try #require(TestFWHTDecoder.find(), "no vicodec stateful decoder node")
        let decoded = try TestFWHTDecoder(path: path).decode(coded, width: 640, height: 360, to: .yuyv)
        let psnr = zip(originals, decoded).map { lumaPSNR($0, $1) }
        let gray = lumaPSNR(originals[3], [UInt8](repeating: 128, count: originals[3].count))
        log("round trip through \(path): luma PSNR \(psnr.map { String(format: "%.1f", $0) }.joined(separator: ", ")) dB (against flat gray: \(String(format: "%.1f", gray)) dB); coded \(coded.map(\.count).reduce(0, +)) bytes for \(originals.map(\.count).reduce(0, +)) raw")
        #expect(decoded.count == originals.count && decoded.allSatisfy { $0.count == 640 * 360 * 2 })
        #expect(psnr.allSatisfy { $0 > 30 }, "decoded frames resemble their originals")
        #expect(gray < 15, "the check can fail: a flat frame does not resemble vivid's")
    }

    @Test("an encode session recorded from vicodec replays without it, call for call")
    func encoderTraceReplay() throws {
        let spec = try encoderBoard()
        let mode = CameraMode(fourcc: .yuyv, width: 640, height: 360, interval: FrameInterval(1, 30))
        func session(_ kernel: any VideoKernel) throws -> [Int] {
            let encoder = try VideoEncoder(spec: spec, input: mode, kernel: kernel, bufferCount: 2)
            let raw = [UInt8](repeating: 0x55, count: encoder.rawInputBytes)
            var sizes: [Int] = []
            for i in 0..<3 {
                _ = try raw.withUnsafeBytes { try encoder.submit($0, nanoseconds: Int64(i) * 1_000_000, timeoutMs: 1000) }
                if let s = try encoder.withNextFrame(timeoutMs: 5000, { $0.bytes.count }) { sizes.append(s) }
            }
            _ = try encoder.drain(timeoutMs: 5000) { sizes.append($0.bytes.count) }
            return sizes
        }
        let recorder = RecordingVideoKernel(LinuxVideoKernel())
        let recorded = try session(recorder)
        if let dir = ProcessInfo.processInfo.environment["CLASSBOX_VM_RESULTS"] {
            let json = JSONEncoder()
            json.outputFormatting = [.prettyPrinted, .sortedKeys]
            try json.encode(recorder.trace).write(to: URL(fileURLWithPath: dir + "/vicodec-trace.json"))
        }
        let replayer = ReplayingVideoKernel(recorder.trace)
        let replayed = try session(replayer)
        log("vicodec trace: \(recorder.trace.entries.count) calls; sizes \(recorded)")
        #expect(recorded.count == 3 && replayed == recorded)
        #expect(replayer.mismatches.isEmpty, "\(replayer.mismatches.prefix(3))")
    }

    @Test("vicodec unbound while encoding is survived; the encoder reopens when it is bound again")
    func encoderUnplug() throws {
        let spec = try encoderBoard()
        let mode = CameraMode(fourcc: .yuyv, width: 640, height: 360, interval: FrameInterval(1, 30))
        let encoder = try VideoEncoder(spec: spec, input: mode, bufferCount: 2)
        encoder.reopenIntervalMs = 100
        let raw = [UInt8](repeating: 0x20, count: encoder.rawInputBytes)
        func once() throws -> Bool {
            guard try raw.withUnsafeBytes({ try encoder.submit($0, nanoseconds: 0, timeoutMs: 500) }) else { return false }
            return try encoder.withNextFrame(timeoutMs: 2000) { _ in true } ?? false
        }
        #expect(try once())
        try sysfsWrite("/sys/bus/platform/drivers/vicodec/unbind", "vicodec.0")
        var gone = false
        for _ in 0..<10 where !gone { _ = try? once(); gone = !encoder.isRunning }
        #expect(gone && encoder.goneCount == 1, "the encoder noticed the driver went away")
        try sysfsWrite("/sys/bus/platform/drivers/vicodec/bind", "vicodec.0")
        var back = false
        for _ in 0..<40 where !back { back = (try? once()) ?? false; if !back { usleep(100_000) } }
        log("after rebind: \(encoder.info.path), reopened \(encoder.reopenCount) time(s)")
        #expect(back && encoder.reopenCount == 1)
    }

    @Test("uinput: a key with the board's code pressed N times with bounce gives exactly N debounced presses through evdev")
    func evdevKey() throws {
        let board = try BoardCatalog.standard().load(repositoryRoot + "/Board/generic-amd64.toml")
        let gpio = board.gpio
        let name = try #require(gpio.evdevName), code = try #require(gpio.evdevKeyCode)
        let keyboard = try VirtualKeyboard(name: name, key: code)
        var button: (any RaiseHandButton)? = nil
        var failure = ""
        for _ in 0..<50 where button == nil {  // the node appears when the kernel has registered the device
            do { button = try ClassroomGPIO.openButton(gpio) } catch { failure = "\(error)"; usleep(40_000) }
        }
        let key = try #require(button, "the uinput device \"\(name)\" did not appear: \(failure); input devices: \(EvdevButton.devices()); /dev/input: \((try? FileManager.default.contentsOfDirectory(atPath: "/dev/input")) ?? [])")
        log("evdev button \(key.device), key \(code)")
        let presses = 5
        var kinds: [ButtonEvent.Kind] = []
        for _ in 0..<presses {
            for down in [true, false, true] { try keyboard.key(down) }  // a bouncing contact
            if let event = try key.next(timeoutNanoseconds: 2_000_000_000) { kinds.append(event.kind) }
            usleep(60_000)
            for down in [false, true, false] { try keyboard.key(down) }
            if let event = try key.next(timeoutNanoseconds: 2_000_000_000) { kinds.append(event.kind) }
            usleep(60_000)
        }
        #expect(try key.next(timeoutNanoseconds: 300_000_000) == nil, "no extra events")
        #expect(kinds == Array(repeating: [ButtonEvent.Kind.pressed, .released], count: presses).flatMap { $0 })
        // Another key on the same device is not the hand button.
        try keyboard.emit(type: UInt16(EV_KEY), code: UInt16(KEY_A), value: 1)
        try keyboard.emit(type: UInt16(EV_SYN), code: UInt16(SYN_REPORT), value: 0)
        #expect(try key.next(timeoutNanoseconds: 200_000_000) == nil, "other keys are ignored")
        // Unplugged: the button says so instead of waiting forever.
        keyboard.destroy()
        #expect { _ = try key.next(timeoutNanoseconds: 1_000_000_000) } throws: { ($0 as? GPIOError)?.kind == .gone }
    }
}
}

/// A keyboard made by the kernel's uinput driver: a real input device (`/dev/input/eventN`) whose keys
/// this test presses.
final class VirtualKeyboard {
    private var fd: Int32
    private let code: Int

    init(name: String, key: Int) throws {
        code = key
        fd = open("/dev/uinput", O_WRONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw Errno(errno) }
        var setup = uinput_setup()
        setup.id.bustype = UInt16(BUS_USB)
        setup.id.vendor = 0x1209
        setup.id.product = 0xc1a5
        withUnsafeMutableBytes(of: &setup.name) { raw in
            for (i, b) in name.utf8.prefix(raw.count - 1).enumerated() { raw[i] = b }
        }
        guard cb_ioctl_int(fd, cb_UI_SET_EVBIT(), EV_KEY) == 0, cb_ioctl_int(fd, cb_UI_SET_KEYBIT(), Int32(key)) == 0,
              cb_ioctl_int(fd, cb_UI_SET_KEYBIT(), KEY_A) == 0,
              cb_ioctl(fd, cb_UI_DEV_SETUP(), &setup) == 0, cb_ioctl_int(fd, cb_UI_DEV_CREATE(), 0) == 0 else {
            let e = Errno(errno)
            close(fd)
            throw e
        }
    }

    func emit(type: UInt16, code: UInt16, value: Int32) throws {
        var event = input_event()
        event.type = type
        event.code = code
        event.value = value
        let size = MemoryLayout<input_event>.size
        guard write(fd, &event, size) == size else { throw Errno(errno) }
    }

    func key(_ down: Bool) throws {
        try emit(type: UInt16(EV_KEY), code: UInt16(code), value: down ? 1 : 0)
        try emit(type: UInt16(EV_SYN), code: UInt16(SYN_REPORT), value: 0)
    }

    func destroy() {
        guard fd >= 0 else { return }
        _ = cb_ioctl_int(fd, cb_UI_DEV_DESTROY(), 0)
        close(fd)
        fd = -1
    }

    deinit { destroy() }
}
