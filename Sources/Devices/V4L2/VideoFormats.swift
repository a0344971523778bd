internal import CV4L2

/// A V4L2 pixel format code (FourCC), e.g. `YUYV`, `MJPG`, `H264`.
public struct FourCC: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// The little-endian code as the kernel has it.
    public var rawValue: UInt32

    /// A code from the kernel's value.
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// A code from its four characters (shorter names are padded with spaces).
    public init(_ text: String) {
        var bytes = Array(text.utf8.prefix(4))
        while bytes.count < 4 { bytes.append(0x20) }
        rawValue = UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24
    }

    public init(stringLiteral value: String) { self.init(value) }

    public var description: String {
        let bytes = (0..<4).map { UInt8(truncatingIfNeeded: rawValue >> (8 * $0)) }
        return String(decoding: bytes, as: UTF8.self).trimmingSuffixSpaces()
    }

    public init(from decoder: any Decoder) throws { self.init(try decoder.singleValueContainer().decode(String.self)) }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    /// Packed 4:2:2 YUV, what most USB cameras give uncompressed.
    public static let yuyv = FourCC(rawValue: cb_V4L2_PIX_FMT_YUYV())
    /// Motion JPEG.
    public static let mjpeg = FourCC(rawValue: cb_V4L2_PIX_FMT_MJPEG())
    /// JPEG (some drivers' name for Motion JPEG).
    public static let jpeg = FourCC(rawValue: cb_V4L2_PIX_FMT_JPEG())
    /// H.264 access units, from a camera that encodes itself or from an encoder.
    public static let h264 = FourCC(rawValue: cb_V4L2_PIX_FMT_H264())
    /// Semi-planar 4:2:0 YUV, the usual encoder input.
    public static let nv12 = FourCC(rawValue: cb_V4L2_PIX_FMT_NV12())
    /// Planar 4:2:0 YUV (I420).
    public static let yuv420 = FourCC(rawValue: cb_V4L2_PIX_FMT_YUV420())

    /// The kernel's test codec's format (vicodec: a fast Walsh-Hadamard transform codec), what the VM
    /// lane's encoder produces.
    public static let fwht = FourCC(rawValue: cb_V4L2_PIX_FMT_FWHT())
    /// H.265.
    public static let hevc = FourCC(rawValue: cb_V4L2_PIX_FMT_HEVC())

    /// Formats the firmware handles, raw first.
    public static let handled: [FourCC] = [.yuyv, .nv12, .yuv420, .mjpeg, .jpeg, .h264]

    /// Whether frames are compressed (variable size).
    public var isCompressed: Bool { self == .mjpeg || self == .jpeg || self == .h264 || self == .hevc || self == .fwht }
}

extension String {
    func trimmingSuffixSpaces() -> String {
        var s = Substring(self)
        while s.last == " " || s.last == "\0" { s = s.dropLast() }
        return String(s)
    }
}

/// A frame interval as a fraction of a second (the kernel's `v4l2_fract`): 1/30 is 30 fps.
public struct FrameInterval: Hashable, Sendable, Codable, CustomStringConvertible {
    /// Numerator (seconds).
    public var numerator: Int
    /// Denominator.
    public var denominator: Int

    /// An interval of `numerator/denominator` seconds.
    public init(_ numerator: Int, _ denominator: Int) {
        self.numerator = numerator
        self.denominator = denominator
    }

    /// The interval of `fps` frames per second.
    public init(fps: Int) { self.init(1, max(1, fps)) }

    /// Frames per second.
    public var fps: Double { numerator == 0 ? 0 : Double(denominator) / Double(numerator) }

    public var description: String {
        let f = fps
        return f == f.rounded() ? "\(Int(f)) fps" : "\((f * 100).rounded() / 100) fps"
    }
}

/// One frame size of a format with the rates offered at it.
public struct FrameSizeInfo: Hashable, Sendable, Codable {
    /// Width in pixels.
    public var width: Int
    /// Height in pixels.
    public var height: Int
    /// Discrete intervals offered, fastest first; for a continuous range, its two ends.
    public var intervals: [FrameInterval]

    /// A size from its values.
    public init(width: Int, height: Int, intervals: [FrameInterval]) {
        self.width = width
        self.height = height
        self.intervals = intervals
    }
}

/// A range of sizes a format accepts (stepwise or continuous drivers).
public struct FrameSizeRange: Hashable, Sendable, Codable {
    /// Smallest and largest width and the step.
    public var minWidth: Int, maxWidth: Int, stepWidth: Int
    /// Smallest and largest height and the step.
    public var minHeight: Int, maxHeight: Int, stepHeight: Int

    /// A range from its values.
    public init(minWidth: Int, maxWidth: Int, stepWidth: Int, minHeight: Int, maxHeight: Int, stepHeight: Int) {
        self.minWidth = minWidth
        self.maxWidth = maxWidth
        self.stepWidth = max(1, stepWidth)
        self.minHeight = minHeight
        self.maxHeight = maxHeight
        self.stepHeight = max(1, stepHeight)
    }

    /// Whether `width`x`height` is one of the range's sizes.
    public func contains(width: Int, height: Int) -> Bool {
        width >= minWidth && width <= maxWidth && height >= minHeight && height <= maxHeight
            && (width - minWidth) % stepWidth == 0 && (height - minHeight) % stepHeight == 0
    }
}

/// A pixel format a camera offers, with its sizes and rates.
public struct VideoFormatInfo: Hashable, Sendable, Codable {
    /// The format code.
    public var fourcc: FourCC
    /// The driver's description ("YUYV 4:2:2", "Motion-JPEG").
    public var description: String
    /// Whether frames are compressed.
    public var compressed: Bool
    /// Whether libv4l or the driver converts into it (costs CPU; never chosen).
    public var emulated: Bool
    /// Discrete sizes with their rates.
    public var sizes: [FrameSizeInfo]
    /// The size range, for drivers that offer one instead of a list.
    public var range: FrameSizeRange?

    /// A format from its values.
    public init(fourcc: FourCC, description: String, compressed: Bool, emulated: Bool = false, sizes: [FrameSizeInfo],
                range: FrameSizeRange? = nil) {
        self.fourcc = fourcc
        self.description = description
        self.compressed = compressed
        self.emulated = emulated
        self.sizes = sizes
        self.range = range
    }
}

/// The mode a camera streams in.
public struct CameraMode: Hashable, Sendable, Codable, CustomStringConvertible {
    /// Pixel format.
    public var fourcc: FourCC
    /// Width in pixels.
    public var width: Int
    /// Height in pixels.
    public var height: Int
    /// Frame interval.
    public var interval: FrameInterval

    /// A mode from its values.
    public init(fourcc: FourCC, width: Int, height: Int, interval: FrameInterval) {
        self.fourcc = fourcc
        self.width = width
        self.height = height
        self.interval = interval
    }

    public var description: String { "\(fourcc) \(width)x\(height) at \(interval)" }
}
