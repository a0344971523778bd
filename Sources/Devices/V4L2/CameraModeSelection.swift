/// How the camera's mode is chosen, one clear rule (after mediastreamer2's: keep the picture fluid,
/// give up resolution before frame rate):
///
/// 1. Usable formats: the profile's formats in its order (e.g. raw YUYV first where the board encodes,
///    the camera's own H.264 or MJPEG first where it cannot) that the camera offers natively; emulated
///    (converted in software) formats never. If the camera offers none of them, any format the firmware
///    handles, raw first.
/// 2. Sizes: every size a usable format offers that fits in the wanted one, largest first (ties: the
///    closest aspect ratio); if none fits, the smallest offered.
/// 3. Stepping down that list, the first format (in the order of 1) whose best rate at that size reaches
///    the floor (15 fps, or the wanted rate if lower) wins; the best rate is the slowest one at or above
///    the wanted rate, else the fastest.
/// 4. If nothing reaches the floor, the fastest mode (larger sizes and earlier formats win ties).
public enum CameraModeSelection {
    /// Below this rate a classroom picture judders; resolution is given up first.
    public static let minimumFPS = 15.0

    /// Sizes tried on drivers that offer a range rather than a list, largest first.
    static let standardSizes: [(Int, Int)] = [
        (1920, 1080), (1280, 720), (1024, 768), (960, 540), (848, 480), (800, 600), (640, 480), (640, 360),
        (424, 240), (320, 240), (320, 180), (160, 120),
    ]

    /// The mode for `formats` given the wanted formats, size and rate; nil when the camera offers nothing
    /// the firmware can use.
    public static func choose(from formats: [VideoFormatInfo], formats wanted: [FourCC], width: Int, height: Int, fps: Int) -> CameraMode? {
        let offered = formats.filter { !$0.emulated }
        var usable = wanted.compactMap { f in offered.first { $0.fourcc == f } }
        if usable.isEmpty { usable = FourCC.handled.compactMap { f in offered.first { $0.fourcc == f } } }
        guard !usable.isEmpty else { return nil }

        let sizesByFormat = usable.map { sizes(of: $0, width: width, height: height, fps: fps) }
        var all: [(Int, Int)] = []
        for sizes in sizesByFormat {
            for s in sizes where !all.contains(where: { $0 == (s.width, s.height) }) { all.append((s.width, s.height)) }
        }
        guard !all.isEmpty else { return nil }
        let aspect = Double(width) / Double(max(1, height))
        func area(_ s: (Int, Int)) -> Int { s.0 * s.1 }
        func aspectDistance(_ s: (Int, Int)) -> Double { abs(Double(s.0) / Double(max(1, s.1)) - aspect) }
        var ladder = all.filter { $0.0 <= width && $0.1 <= height }
            .sorted { area($0) != area($1) ? area($0) > area($1) : aspectDistance($0) < aspectDistance($1) }
        if ladder.isEmpty { ladder = [all.min { area($0) < area($1) }!] }

        let floor = min(minimumFPS, Double(fps))
        var fastest: CameraMode? = nil
        for size in ladder {
            for (format, sizes) in zip(usable, sizesByFormat) {
                guard let offer = sizes.first(where: { $0.width == size.0 && $0.height == size.1 }),
                      let interval = bestInterval(offer.intervals, fps: fps) else { continue }
                let mode = CameraMode(fourcc: format.fourcc, width: size.0, height: size.1, interval: interval)
                if interval.fps >= floor { return mode }
                if fastest == nil || interval.fps > fastest!.interval.fps { fastest = mode }
            }
        }
        return fastest
    }

    /// The slowest interval at or above `fps`, else the fastest one.
    static func bestInterval(_ intervals: [FrameInterval], fps: Int) -> FrameInterval? {
        let wanted = Double(fps)
        if let atOrAbove = intervals.filter({ $0.fps >= wanted - 0.01 }).min(by: { $0.fps < $1.fps }) { return atOrAbove }
        return intervals.max { $0.fps < $1.fps }
    }

    /// A format's sizes: its list, or for a range the wanted size and the standard sizes it contains.
    static func sizes(of format: VideoFormatInfo, width: Int, height: Int, fps: Int) -> [FrameSizeInfo] {
        guard format.sizes.isEmpty, let range = format.range else { return format.sizes }
        var result: [FrameSizeInfo] = []
        for (w, h) in [(width, height)] + standardSizes where range.contains(width: w, height: h) {
            if !result.contains(where: { $0.width == w && $0.height == h }) {
                result.append(FrameSizeInfo(width: w, height: h, intervals: [FrameInterval(fps: fps)]))
            }
        }
        return result
    }
}
