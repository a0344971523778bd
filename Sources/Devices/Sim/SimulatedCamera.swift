/// The `sim` board's camera: a deterministic moving test picture in I420 (planar YUV 4:2:0), so the video
/// path of a live lesson runs on a build machine with no camera. Each picture carries its frame number as
/// a row of black and white squares along its bottom edge (bit 0 on the left), readable after lossy
/// coding, so a receiver's frame can be matched with the one sent.
public struct SimulatedCamera: Sendable {
    /// Picture size in pixels (even).
    public let width: Int, height: Int
    /// Frames per second the camera delivers (the caller paces itself by it).
    public let fps: Int

    /// A camera of `width` x `height` (rounded down to even sizes, at least 16) at `fps`.
    public init(width: Int, height: Int, fps: Int) {
        self.width = max(16, width & ~1)
        self.height = max(16, height & ~1)
        self.fps = max(1, fps)
    }

    /// Bytes of one I420 picture.
    public var frameBytes: Int { width * height + 2 * (width / 2) * (height / 2) }

    /// The side of one square of the frame-number row.
    public var markSize: Int { max(8, (width / 24) & ~7) }

    /// Draws picture number `index` into `picture` (at least `frameBytes` long).
    public func render(frame index: Int, into picture: UnsafeMutableRawBufferPointer) {
        precondition(picture.count >= frameBytes, "SimulatedCamera.render: buffer too small")
        let p = picture.bindMemory(to: UInt8.self).baseAddress!
        let cw = width / 2, ch = height / 2
        let u = p + width * height, v = u + cw * ch
        // Seven vertical colour bars (a camera's test card), luma graded top to bottom.
        let bars: [(y: UInt8, u: UInt8, v: UInt8)] = [(235, 128, 128), (210, 16, 146), (170, 166, 16), (145, 54, 34),
                                                       (106, 202, 222), (81, 90, 240), (41, 240, 110)]
        for row in 0..<height {
            for col in 0..<width {
                let bar = bars[col * bars.count / width]
                p[row * width + col] = UInt8(max(16, Int(bar.y) - row * 40 / height))
            }
        }
        for row in 0..<ch {
            for col in 0..<cw {
                let bar = bars[col * 2 * bars.count / width]
                u[row * cw + col] = bar.u
                v[row * cw + col] = bar.v
            }
        }
        // A grey square crossing the picture, one step per frame: what changes between frames.
        let side = height / 4
        let travel = max(1, width - side)
        let step = max(2, width / (2 * fps))
        let x0 = (index * step) % travel & ~1, y0 = (height / 2 - side / 2) & ~1
        for row in y0..<min(height, y0 + side) {
            for col in x0..<min(width, x0 + side) { p[row * width + col] = 128 }
        }
        for row in y0 / 2..<min(ch, (y0 + side) / 2) {
            for col in x0 / 2..<min(cw, (x0 + side) / 2) { u[row * cw + col] = 128; v[row * cw + col] = 128 }
        }
        // The frame number, bit 0 first, as squares along the bottom: white 1, black 0.
        let m = markSize
        let bits = min(24, width / m)
        let top = height - m
        for bit in 0..<bits {
            let value: UInt8 = (index >> bit) & 1 == 1 ? 235 : 16
            for row in top..<height {
                for col in bit * m..<(bit + 1) * m { p[row * width + col] = value }
            }
            for row in top / 2..<ch {
                for col in bit * m / 2..<(bit + 1) * m / 2 { u[row * cw + col] = 128; v[row * cw + col] = 128 }
            }
        }
    }

    /// Reads the frame number back from a decoded picture's luma plane (`luma` row-major, `width` x `height`
    /// as this camera makes them): the middle of each square, thresholded.
    public func frameNumber(luma: UnsafeRawBufferPointer) -> Int {
        let m = markSize
        let bits = min(24, width / m)
        let row = height - m / 2
        var n = 0
        for bit in 0..<bits where luma[row * width + bit * m + m / 2] > 128 { n |= 1 << bit }
        return n
    }
}
