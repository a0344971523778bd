public import BoxConfig

/// The classroom camera: found by the board profile's rules (driver, card name), opened in the mode
/// `CameraModeSelection` chooses, streaming into a few mmap buffers handed out without copies. When it
/// is unplugged (ENODEV) it is closed, and reopened in the same mode when it returns, even on another
/// `/dev/videoN`. Not thread-safe: one capture thread owns it.
public final class Camera {
    /// The device as found (its path and controls are refreshed on reopen).
    public private(set) var info: VideoDeviceInfo
    /// The mode it streams in.
    public let mode: CameraMode
    /// How many times it came back after being unplugged.
    public private(set) var reopenCount = 0
    /// How many times it went away.
    public private(set) var goneCount = 0
    /// Milliseconds between attempts to reopen a vanished camera.
    public var reopenIntervalMs = 1000

    private let kernel: any VideoKernel
    private let spec: CameraSpec
    private let bufferCount: Int
    private var stream: VideoCaptureStream?
    private var preset: [String: Int] = [:]
    private var lastAttempt: Int64 = 0

    /// Finds the profile's camera, chooses its mode, applies `preset` (control keys to values) and starts
    /// streaming with `bufferCount` buffers.
    public init(spec: CameraSpec, preset: [String: Int] = [:], kernel: any VideoKernel = LinuxVideoKernel(), bufferCount: Int = 4) throws(CameraError) {
        self.kernel = kernel
        self.spec = spec
        self.bufferCount = max(2, bufferCount)
        let devices = Camera.list(kernel: kernel)
        info = try Camera.match(spec, among: devices)
        guard let mode = CameraModeSelection.choose(from: info.formats, formats: spec.formats.map { FourCC($0) }, width: spec.width,
                                                    height: spec.height, fps: spec.fps) else {
            throw CameraError(kind: .unsupported, device: info.name, call: "VIDIOC_ENUM_FMT",
                              detail: "the camera offers no format the firmware handles (it offers \(info.formats.map(\.fourcc.description).joined(separator: ", ")); wanted \(spec.formats.joined(separator: ", ")))")
        }
        self.mode = mode
        stream = try open(info)
        try apply(preset: preset)
    }

    /// Whether frames are flowing (false while the camera is unplugged).
    public var isStreaming: Bool { stream != nil }

    /// The number of driver buffers.
    public var bufferCountInUse: Int { stream?.bufferCount ?? 0 }

    /// Every V4L2 device present, described; devices that cannot be opened now are left out.
    public static func list(kernel: any VideoKernel = LinuxVideoKernel()) -> [VideoDeviceInfo] {
        kernel.devicePaths().compactMap { try? VideoDeviceInfo.describe(path: $0, kernel: kernel) }
    }

    /// The first capture device allowed by the profile's `drivers`, preferring its `cards` in order.
    public static func match(_ spec: CameraSpec, among devices: [VideoDeviceInfo]) throws(CameraError) -> VideoDeviceInfo {
        let candidates = devices.filter { $0.capture && $0.streaming && (spec.drivers.isEmpty || spec.drivers.contains($0.driver)) }
        for wanted in spec.cards {
            if let device = candidates.first(where: { $0.card.lowercased().contains(wanted.lowercased()) }) { return device }
        }
        if let device = candidates.first, spec.cards.isEmpty || !candidates.isEmpty { return device }
        let present = devices.isEmpty ? "no video devices at all (is the camera plugged in?)"
            : "devices present: " + devices.map { "\($0.path) \($0.driver) \"\($0.card)\"\($0.capture ? "" : " (not a camera)")" }.joined(separator: ", ")
        throw CameraError(kind: .notFound, device: "camera (drivers \(spec.drivers.joined(separator: ", ")))", call: "VIDIOC_QUERYCAP",
                          detail: "no capture device matches the board profile's [camera] drivers/cards; \(present)")
    }

    private func open(_ device: VideoDeviceInfo) throws(CameraError) -> VideoCaptureStream {
        let handle: VideoDeviceHandle
        do { handle = try VideoDeviceHandle(kernel: kernel, path: device.path) } catch {
            throw CameraError.from(error, device: device.name, call: "open")
        }
        try handle.configure(mode, device: device.name)
        return try VideoCaptureStream(handle: handle, device: device.name, count: bufferCount)
    }

    /// Sets controls by key (`brightness`, `exposure_auto`, `pan`...); automatic modes are set first so
    /// that the manual values after them take. Remembered and applied again after a reopen.
    public func apply(preset: [String: Int]) throws(CameraError) {
        for key in preset.keys.sorted(by: { ($0.hasSuffix("_auto") ? 0 : 1, $0) < ($1.hasSuffix("_auto") ? 0 : 1, $1) }) {
            try setControl(key, preset[key]!)
            self.preset[key] = preset[key]
        }
    }

    /// Sets one control.
    public func setControl(_ key: String, _ value: Int) throws(CameraError) {
        guard let stream else { throw goneError("VIDIOC_S_CTRL") }
        try stream.setControl(key, Int64(value), controls: info.controls)
    }

    /// Reads one control.
    public func control(_ key: String) throws(CameraError) -> Int {
        guard let stream else { throw goneError("VIDIOC_G_CTRL") }
        return Int(try stream.control(key, controls: info.controls))
    }

    private func goneError(_ call: String) -> CameraError {
        CameraError(kind: .gone, device: info.name, call: call, detail: "the camera is unplugged; waiting for it to return")
    }

    /// The next frame, or nil when none came within `timeoutMs` or the camera is unplugged (then it is
    /// reopened once it is back). Give every frame back with `release` before the next reopen.
    public func nextFrame(timeoutMs: Int = 1000) throws(CameraError) -> VideoFrame? {
        if stream == nil && !reopen() {
            // Still missing: wait out the caller's timeout (bounded by the retry interval) without spinning.
            let wait = min(timeoutMs, reopenIntervalMs)
            if wait > 0 { _ = try? kernel.waitReadable(-1, timeoutMs: Int32(wait)) }
            return nil
        }
        guard let stream else { return nil }
        do {
            return try stream.next(timeoutMs: Int32(clamping: timeoutMs))
        } catch where error.kind == .gone {
            self.stream = nil
            goneCount += 1
            lastAttempt = 0
            return nil
        }
    }

    /// Gives a frame's buffer back to the driver (a no-op for frames of a stream that has gone).
    public func release(_ frame: VideoFrame) throws(CameraError) {
        guard let stream else { return }
        do { try stream.release(frame) } catch where error.kind == .gone {
            self.stream = nil
            goneCount += 1
        }
    }

    /// Runs `body` on the next frame in place and gives the buffer back; nil when no frame came.
    public func withNextFrame<R>(timeoutMs: Int = 1000, _ body: (VideoFrame) -> R) throws(CameraError) -> R? {
        guard let frame = try nextFrame(timeoutMs: timeoutMs) else { return nil }
        let result = body(frame)
        try release(frame)
        return result
    }

    /// Tries to find and open the camera again (same rules, same mode, same preset); true when streaming.
    @discardableResult
    public func reopen() -> Bool {
        if stream != nil { return true }
        let now = SystemCall.monotonicNanoseconds()
        guard lastAttempt == 0 || now - lastAttempt >= Int64(reopenIntervalMs) * 1_000_000 else { return false }
        lastAttempt = now
        let devices = Camera.list(kernel: kernel)
        // The same port first (its node number may have changed), else whatever the rules match.
        guard let device = devices.first(where: { $0.busInfo == info.busInfo && $0.card == info.card && $0.capture })
            ?? (try? Camera.match(spec, among: devices)),
            let reopened = try? open(device) else { return false }
        info = device
        stream = reopened
        reopenCount += 1
        try? apply(preset: preset)
        return true
    }
}
