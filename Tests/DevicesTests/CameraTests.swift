import Foundation
import Testing
@testable import BoxConfig
@testable import Devices

func cameraSpec(formats: [String] = ["YUYV", "MJPG"], width: Int = 1280, height: Int = 720, fps: Int = 30,
                drivers: [String] = ["fakecam"], cards: [String] = []) -> CameraSpec {
    CameraSpec(backend: .v4l2, drivers: drivers, cards: cards, formats: formats, width: width, height: height, fps: fps, hardwareEncoder: nil)
}

func format(_ fourcc: FourCC, _ sizes: [(Int, Int, [Int])], emulated: Bool = false) -> VideoFormatInfo {
    VideoFormatInfo(fourcc: fourcc, description: fourcc.description, compressed: fourcc.isCompressed, emulated: emulated,
                    sizes: sizes.map { FrameSizeInfo(width: $0.0, height: $0.1, intervals: $0.2.map { FrameInterval(fps: $0) }) })
}

@Suite("Camera mode selection")
struct CameraModeSelectionTests {
    let webcam = [
        format(.yuyv, [(1280, 720, [10, 5]), (640, 480, [30, 15]), (640, 360, [30, 15])]),
        format(.mjpeg, [(1920, 1080, [30]), (1280, 720, [30, 15]), (640, 360, [30])]),
    ]

    func choose(_ formats: [VideoFormatInfo], _ wanted: [FourCC], _ w: Int, _ h: Int, _ fps: Int) -> String? {
        CameraModeSelection.choose(from: formats, formats: wanted, width: w, height: h, fps: fps)?.description
    }

    @Test("raw first at the wanted size when it reaches 15 fps, else the compressed format at that size")
    func compressedBeforeSmaller() {
        #expect(choose(webcam, [.yuyv, .mjpeg], 1280, 720, 30) == "MJPG 1280x720 at 30 fps")
        #expect(choose(webcam, [.yuyv, .mjpeg], 640, 360, 30) == "YUYV 640x360 at 30 fps")
    }

    @Test("with raw only, resolution steps down until the rate is fluid")
    func stepsDown() {
        #expect(choose(webcam, [.yuyv], 1280, 720, 30) == "YUYV 640x480 at 30 fps")
    }

    @Test("the profile's order wins: a camera's own H.264 before MJPEG before raw")
    func profileOrder() {
        let uvc = webcam + [format(.h264, [(1280, 720, [30])])]
        #expect(choose(uvc, [.h264, .mjpeg, .yuyv], 1280, 720, 30) == "H264 1280x720 at 30 fps")
    }

    @Test("the slowest rate at or above the wanted one is taken; below the floor the fastest mode wins")
    func rates() {
        #expect(choose([format(.yuyv, [(640, 360, [60, 30, 15])])], [.yuyv], 640, 360, 25) == "YUYV 640x360 at 30 fps")
        #expect(choose([format(.yuyv, [(640, 360, [10]), (320, 180, [12])])], [.yuyv], 640, 360, 30) == "YUYV 320x180 at 12 fps")
    }

    @Test("a camera offering none of the profile's formats falls back to one the firmware handles; emulated formats never")
    func fallbacks() {
        #expect(choose([format(.nv12, [(640, 360, [30])])], [.h264], 640, 360, 30) == "NV12 640x360 at 30 fps")
        #expect(choose([format(.yuyv, [(640, 360, [30])], emulated: true)], [.yuyv], 640, 360, 30) == nil)
        #expect(choose([format(FourCC("RGB3"), [(640, 360, [30])])], [.yuyv], 640, 360, 30) == nil)
    }

    @Test("a size larger than every offered one takes the largest fitting; none fitting takes the smallest")
    func sizes() {
        #expect(choose(webcam, [.mjpeg], 3840, 2160, 30) == "MJPG 1920x1080 at 30 fps")
        #expect(choose(webcam, [.mjpeg], 320, 180, 30) == "MJPG 640x360 at 30 fps")
    }

    @Test("a driver with a size range gets the wanted size")
    func ranges() {
        let stepwise = VideoFormatInfo(fourcc: .yuyv, description: "YUYV", compressed: false, sizes: [],
                                       range: FrameSizeRange(minWidth: 16, maxWidth: 1920, stepWidth: 2, minHeight: 16, maxHeight: 1080, stepHeight: 2))
        #expect(choose([stepwise], [.yuyv], 1280, 720, 30) == "YUYV 1280x720 at 30 fps")
    }

    @Test("FourCC codes read and print as the kernel's")
    func fourcc() {
        #expect(FourCC("YUYV") == .yuyv && FourCC("MJPG") == .mjpeg && FourCC("H264") == .h264)
        #expect(FourCC.yuyv.description == "YUYV" && FourCC("Y8").description == "Y8")
    }
}

@Suite("Camera over a scripted V4L2 driver")
struct CameraTests {
    @Test("devices are described with formats, sizes, rates and controls")
    func describe() throws {
        let driver = FakeVideoDriver(devices: [FakeVideoDriver.webcam()])
        let info = try VideoDeviceInfo.describe(path: "/dev/video0", kernel: driver)
        #expect(info.driver == "fakecam" && info.card == "Fake Camera" && info.capture && info.streaming)
        #expect(info.formats.map(\.fourcc) == [.yuyv, .mjpeg])
        #expect(info.formats[0].sizes.map { "\($0.width)x\($0.height)" } == ["1280x720", "640x480", "640x360"])
        #expect(info.formats[0].sizes[1].intervals.map(\.fps) == [30, 15])
        #expect(info.controls.map(\.key) == ["brightness", "exposure_auto", "exposure", "pan"])
        #expect(info.controls[1].menu?.map(\.name) == ["Manual Mode", "Aperture Priority Mode"])
        #expect(info.controls[0].value == 128)
    }

    @Test("frames stream in place from a bounded set of buffers, in order, with timestamps")
    func streaming() throws {
        let driver = FakeVideoDriver(devices: [FakeVideoDriver.webcam()])
        let camera = try Camera(spec: cameraSpec(formats: ["YUYV"], width: 640, height: 480), kernel: driver, bufferCount: 3)
        #expect(camera.mode.description == "YUYV 640x480 at 30 fps")
        #expect(camera.bufferCountInUse == 3)
        var sequences: [UInt32] = []
        var stamps: [Int64] = []
        for _ in 0..<10 {
            let frame = try #require(try camera.nextFrame(timeoutMs: 100))
            #expect(frame.bytes.count == 640 * 480 * 2)
            #expect(frame.bytes.load(as: UInt32.self) == frame.sequence, "the frame is the driver's buffer, not a copy")
            sequences.append(frame.sequence)
            stamps.append(frame.nanoseconds)
            try camera.release(frame)
        }
        #expect(sequences == Array(0..<10))
        #expect(zip(stamps.dropFirst(), stamps).allSatisfy { abs($0 - $1 - 33_333_333) < 1000 })
    }

    @Test("two frames can be held at once with three buffers")
    func holdingFrames() throws {
        let driver = FakeVideoDriver(devices: [FakeVideoDriver.webcam()])
        let camera = try Camera(spec: cameraSpec(formats: ["MJPG"]), kernel: driver, bufferCount: 3)
        let a = try #require(try camera.nextFrame(timeoutMs: 100))
        let b = try #require(try camera.nextFrame(timeoutMs: 100))
        #expect(a.index != b.index && a.bytes.count == 1000 && b.bytes.count == 1001)
        try camera.release(a)
        try camera.release(b)
    }

    @Test("an unplugged camera is survived and reopened in the same mode when it returns at another node")
    func unplugAndReturn() throws {
        let driver = FakeVideoDriver(devices: [FakeVideoDriver.webcam()])
        let camera = try Camera(spec: cameraSpec(), preset: ["brightness": 90], kernel: driver)
        camera.reopenIntervalMs = 0
        driver.unplugAfterFrames = 3
        var got = 0
        while try camera.withNextFrame(timeoutMs: 50, { _ in true }) != nil { got += 1 }
        #expect(got == 3 && !camera.isStreaming && camera.goneCount == 1)
        #expect(try camera.nextFrame(timeoutMs: 10) == nil, "still unplugged")
        driver.unplugAfterFrames = nil
        driver.plug(FakeVideoDriver.webcam(path: "/dev/video2"))
        let frame = try #require(try camera.nextFrame(timeoutMs: 100))
        try camera.release(frame)
        #expect(camera.isStreaming && camera.reopenCount == 1 && camera.info.path == "/dev/video2")
        #expect(camera.mode.description == "MJPG 1280x720 at 30 fps")
        #expect(try camera.control("brightness") == 90, "the preset is applied again after the reopen")
    }

    @Test("presets set auto modes first, check ranges, and name what the camera has")
    func presets() throws {
        let driver = FakeVideoDriver(devices: [FakeVideoDriver.webcam()])
        let camera = try Camera(spec: cameraSpec(), kernel: driver)
        try camera.apply(preset: ["exposure": 500, "exposure_auto": 1, "pan": 3600])
        #expect(driver.setControls.map(\.0) == ["Auto Exposure", "Exposure Time, Absolute", "Pan, Absolute"])
        #expect(try camera.control("exposure") == 500)
        #expect { try camera.setControl("brightness", 300) } throws: {
            "\($0)".contains("brightness\" takes 0...255") && ($0 as? CameraError)?.kind == .refused
        }
        #expect { try camera.setControl("pan", 100) } throws: { "\($0)".contains("steps of 3600") }
        #expect { try camera.setControl("zoom", 2) } throws: {
            ($0 as? CameraError)?.kind == .unsupported && "\($0)".contains("brightness, exposure_auto, exposure, pan")
        }
    }

    @Test("the profile's driver and card rules pick the camera; a miss lists what is there")
    func matching() throws {
        var other = FakeVideoDriver.webcam(path: "/dev/video1")
        other.card = "HD Pro Webcam C920"
        let driver = FakeVideoDriver(devices: [FakeVideoDriver.webcam(), other])
        let devices = Camera.list(kernel: driver)
        #expect(try Camera.match(cameraSpec(cards: ["C920"]), among: devices).path == "/dev/video1")
        #expect(try Camera.match(cameraSpec(), among: devices).path == "/dev/video0")
        #expect { try Camera.match(cameraSpec(drivers: ["uvcvideo"]), among: devices) } throws: {
            ($0 as? CameraError)?.kind == .notFound && "\($0)".contains("/dev/video1 fakecam \"HD Pro Webcam C920\"")
        }
    }

    @Test("a camera in use by another program is reported as busy with what to do")
    func busy() throws {
        let driver = FakeVideoDriver(devices: [FakeVideoDriver.webcam()])
        let info = try VideoDeviceInfo.describe(path: "/dev/video0", kernel: driver)
        driver.busy = ["/dev/video0"]
        #expect { _ = try VideoDeviceInfo.describe(path: info.path, kernel: driver) } throws: {
            ($0 as? CameraError)?.kind == .busy && "\($0)".contains("in use by another program")
        }
    }
}

@Suite("V4L2 traces: record a session, replay it without the device")
struct VideoTraceTests {
    func session(_ kernel: any VideoKernel) throws -> (VideoDeviceInfo, [UInt32]) {
        let camera = try Camera(spec: cameraSpec(formats: ["YUYV"], width: 640, height: 360), preset: ["brightness": 10], kernel: kernel)
        var sequences: [UInt32] = []
        for _ in 0..<4 { if let s = try camera.withNextFrame(timeoutMs: 100, { $0.sequence }) { sequences.append(s) } }
        return (camera.info, sequences)
    }

    @Test("a replayed session sees what the recorded one saw, call for call")
    func replay() throws {
        let recorder = RecordingVideoKernel(FakeVideoDriver(devices: [FakeVideoDriver.webcam()]))
        let recorded = try session(recorder)
        // Through JSON, as a trace file from a box would come.
        let data = try JSONEncoder().encode(recorder.trace)
        let trace = try JSONDecoder().decode(VideoTrace.self, from: data)
        #expect(trace == recorder.trace)
        let replayer = ReplayingVideoKernel(trace)
        let replayed = try session(replayer)
        #expect(replayed.0 == recorded.0 && replayed.1 == recorded.1 && recorded.1 == [0, 1, 2, 3])
        #expect(replayer.mismatches.isEmpty, "\(replayer.mismatches)")
    }

    @Test("a replay that asks something else is caught")
    func divergence() throws {
        let recorder = RecordingVideoKernel(FakeVideoDriver(devices: [FakeVideoDriver.webcam()]))
        _ = try session(recorder)
        let replayer = ReplayingVideoKernel(recorder.trace)
        _ = try? Camera(spec: cameraSpec(formats: ["MJPG"]), kernel: replayer)
        #expect(!replayer.mismatches.isEmpty)
    }
}

@Suite("Camera presets and configuration")
struct CameraPresetKeyTests {
    @Test("the configuration's known control keys are the ones the device layer names")
    func keysAgree() {
        #expect(Set(wellKnownControlKeys.values) == Set(BoxConfiguration.CameraSettings.knownControls))
        #expect(controlKey(id: 0x00980999, name: "Horizontal Movement") == "horizontal_movement")
        #expect(controlKey(id: 0x00980999, name: "White Balance, Automatic") == "white_balance_automatic")
    }
}
