/// A small baseline JPEG encoder (ITU T.81, sequential DCT, 8-bit, Huffman): the camera path of a board
/// without a hardware encoder or a camera that gives MJPEG (the `sim` board, a YUYV-only webcam on a
/// LAN). It writes exactly what RFC 2435 can carry: three YCbCr components, luma sampled 2x2 (4:2:0) or
/// 2x1 (4:2:2), chroma 1x1, the standard Huffman tables, two quantisation tables scaled from the
/// standard ones by a quality factor. Storage is kept between frames, so encoding allocates nothing after
/// the first frame.

/// The raw picture layouts the encoder takes.
public enum RawPictureLayout: String, Sendable, CaseIterable {
    /// Planar Y, then U and V at half width and half height (V4L2 `YU12`, I420): coded 4:2:0.
    case i420
    /// Packed Y0 U Y1 V, two pixels in four bytes (V4L2 `YUYV`, the UVC raw format): coded 4:2:2.
    case yuyv

    /// Bytes of one picture of `width` x `height` (even sizes).
    public func byteCount(width: Int, height: Int) -> Int {
        switch self {
        case .i420: return width * height + 2 * ((width + 1) / 2) * ((height + 1) / 2)
        case .yuyv: return width * height * 2
        }
    }
}

/// Why a picture could not be encoded.
public enum JPEGEncoderError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Width or height is not a multiple of 8, below 16, or above RFC 2435's 2040 pixels.
    case badSize(width: Int, height: Int)
    /// The buffer is smaller than the layout needs.
    case shortPicture(expected: Int, got: Int)

    public var description: String {
        switch self {
        case .badSize(let w, let h): return "cannot encode \(w)x\(h): JPEG over RTP (RFC 2435) needs sizes that are multiples of 8, from 16 to 2040 pixels"
        case .shortPicture(let e, let g): return "the raw picture has \(g) bytes, \(e) expected; check the camera's format and size"
        }
    }
}

/// Encodes raw YUV pictures to baseline JFIF frames.
public final class JPEGEncoder {
    /// Picture width and height in pixels.
    public let width: Int, height: Int
    /// The raw layout taken.
    public let layout: RawPictureLayout
    /// The quality factor (1-100, as the IJG library means it).
    public let quality: Int
    /// The quantisation tables in natural (row-major) order: luminance, then chrominance.
    public let quantisation: [[UInt8]]

    private var output: [UInt8] = []
    private var bitBuffer: UInt32 = 0
    private var bitCount = 0
    private let dct: UnsafeMutablePointer<Float>      // 64: M[u * 8 + x]
    private let scale: UnsafeMutablePointer<Float>    // 2 x 64: 1 / quantiser, natural order
    private let block: UnsafeMutablePointer<Float>    // 64
    private let temp: UnsafeMutablePointer<Float>     // 64
    private let coefficients: UnsafeMutablePointer<Int32>  // 64, zigzag order
    private var dcCodes: [[(code: UInt16, size: UInt8)]] = []
    private var acCodes: [[(code: UInt16, size: UInt8)]] = []

    /// An encoder for `width` x `height` pictures in `layout` at `quality` (clamped to 1-100).
    public init(width: Int, height: Int, layout: RawPictureLayout, quality: Int = 75) throws(JPEGEncoderError) {
        guard width >= 16, height >= 16, width <= 2040, height <= 2040, width % 8 == 0, height % 8 == 0 else {
            throw .badSize(width: width, height: height)
        }
        self.width = width
        self.height = height
        self.layout = layout
        let q = max(1, min(100, quality))
        self.quality = q
        let factor = q < 50 ? 5000 / q : 200 - 2 * q
        quantisation = [Self.standardLuminance, Self.standardChrominance].map { table in
            table.map { UInt8(max(1, min(255, (Int($0) * factor + 50) / 100))) }
        }
        dct = .allocate(capacity: 64)
        scale = .allocate(capacity: 128)
        block = .allocate(capacity: 64)
        temp = .allocate(capacity: 64)
        coefficients = .allocate(capacity: 64)
        for u in 0..<8 {
            let c: Float = u == 0 ? (1 / 2.0.squareRoot()).asFloat : 1
            for x in 0..<8 {
                dct[u * 8 + x] = c / 2 * Float(cosine(Double((2 * x + 1) * u) * Double.pi / 16))
            }
        }
        for t in 0..<2 {
            for i in 0..<64 { scale[t * 64 + i] = 1 / Float(quantisation[t][i]) }
        }
        for th in 0..<2 {
            dcCodes.append(Self.codes(StandardHuffman.table(class: 0, id: th)))
            acCodes.append(Self.codes(StandardHuffman.table(class: 1, id: th)))
        }
        output.reserveCapacity(width * height / 2)
    }

    deinit {
        dct.deallocate(); scale.deallocate(); block.deallocate(); temp.deallocate(); coefficients.deallocate()
    }

    /// Encodes one picture; `body` sees the JFIF bytes (valid only during the call).
    public func encode<R>(_ picture: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> R) throws(JPEGEncoderError) -> R {
        let expected = layout.byteCount(width: width, height: height)
        guard picture.count >= expected else { throw .shortPicture(expected: expected, got: picture.count) }
        output.removeAll(keepingCapacity: true)
        writeHeaders()
        bitBuffer = 0
        bitCount = 0
        var predictors: (Int32, Int32, Int32) = (0, 0, 0)
        let src = picture.bindMemory(to: UInt8.self).baseAddress!
        let mcuHeight = layout == .i420 ? 16 : 8
        var my = 0
        while my < height {
            var mx = 0
            while mx < width {
                // Luma blocks of the MCU, then Cb, then Cr.
                for by in stride(from: 0, to: mcuHeight, by: 8) {
                    for bx in stride(from: 0, to: 16, by: 8) {
                        loadLuma(src, x: mx + bx, y: my + by)
                        encodeBlock(table: 0, predictor: &predictors.0)
                    }
                }
                loadChroma(src, plane: 0, x: mx, y: my)
                encodeBlock(table: 1, predictor: &predictors.1)
                loadChroma(src, plane: 1, x: mx, y: my)
                encodeBlock(table: 1, predictor: &predictors.2)
                mx += 16
            }
            my += mcuHeight
        }
        flushBits()
        output.append(0xFF)
        output.append(0xD9)
        return output.withUnsafeBytes { body($0) }
    }

    /// Encodes one picture into a new array (tests and one-off use).
    public func encode(_ picture: [UInt8]) throws(JPEGEncoderError) -> [UInt8] {
        let result = picture.withUnsafeBytes { p in Result { () throws(JPEGEncoderError) in try encode(p) { Array($0) } } }
        return try result.get()
    }

    // MARK: Pixels

    private func loadLuma(_ src: UnsafePointer<UInt8>, x: Int, y: Int) {
        for r in 0..<8 {
            let yy = min(y + r, height - 1)
            for c in 0..<8 {
                let xx = min(x + c, width - 1)
                let v: UInt8
                switch layout {
                case .i420: v = src[yy * width + xx]
                case .yuyv: v = src[yy * width * 2 + xx * 2]
                }
                block[r * 8 + c] = Float(v) - 128
            }
        }
    }

    /// One chroma block of the MCU at (`x`, `y`) in luma pixels; `plane` 0 is Cb, 1 is Cr.
    private func loadChroma(_ src: UnsafePointer<UInt8>, plane: Int, x: Int, y: Int) {
        let cw = width / 2
        switch layout {
        case .i420:
            let ch = height / 2
            let base = width * height + plane * cw * ch
            for r in 0..<8 {
                let yy = min(y / 2 + r, ch - 1)
                for c in 0..<8 {
                    let xx = min(x / 2 + c, cw - 1)
                    block[r * 8 + c] = Float(src[base + yy * cw + xx]) - 128
                }
            }
        case .yuyv:
            for r in 0..<8 {
                let yy = min(y + r, height - 1)
                for c in 0..<8 {
                    let xx = min(x / 2 + c, cw - 1)
                    block[r * 8 + c] = Float(src[yy * width * 2 + xx * 4 + 1 + plane * 2]) - 128
                }
            }
        }
    }

    // MARK: Coding

    private func encodeBlock(table: Int, predictor: inout Int32) {
        // Separable DCT: temp = M * block, block = temp * M^T.
        for u in 0..<8 {
            for x in 0..<8 {
                var s: Float = 0
                for k in 0..<8 { s += dct[u * 8 + k] * block[k * 8 + x] }
                temp[u * 8 + x] = s
            }
        }
        for u in 0..<8 {
            for v in 0..<8 {
                var s: Float = 0
                for k in 0..<8 { s += temp[u * 8 + k] * dct[v * 8 + k] }
                let q = s * scale[table * 64 + u * 8 + v]
                coefficients[Self.zigzagPosition[u * 8 + v]] = Int32(q.rounded())
            }
        }
        let dc = coefficients[0]
        let diff = dc - predictor
        predictor = dc
        let dcCategory = Self.category(diff)
        put(dcCodes[table][Int(dcCategory)])
        if dcCategory > 0 { putBits(Self.magnitudeBits(diff, dcCategory), dcCategory) }
        var run = 0
        for k in 1..<64 {
            let a = max(-1023, min(1023, coefficients[k]))  // baseline AC magnitudes fit 10 bits
            if a == 0 { run += 1; continue }
            while run > 15 { put(acCodes[table][0xF0]); run -= 16 }
            let size = Self.category(a)
            put(acCodes[table][run << 4 | Int(size)])
            putBits(Self.magnitudeBits(a, size), size)
            run = 0
        }
        if run > 0 { put(acCodes[table][0x00]) }  // end of block
    }

    private static func category(_ v: Int32) -> UInt8 {
        var m = v < 0 ? -v : v
        var n: UInt8 = 0
        while m > 0 { n += 1; m >>= 1 }
        return min(n, 11)
    }

    private static func magnitudeBits(_ v: Int32, _ size: UInt8) -> UInt16 {
        let clamped = max(-2047, min(2047, v))
        let bits = clamped < 0 ? clamped - 1 : clamped
        return UInt16(truncatingIfNeeded: bits) & UInt16((1 << UInt32(size)) - 1)
    }

    private func put(_ code: (code: UInt16, size: UInt8)) { putBits(code.code, code.size) }

    private func putBits(_ bits: UInt16, _ size: UInt8) {
        guard size > 0 else { return }
        bitBuffer = bitBuffer << UInt32(size) | UInt32(bits)
        bitCount += Int(size)
        while bitCount >= 8 {
            let byte = UInt8(truncatingIfNeeded: bitBuffer >> UInt32(bitCount - 8))
            output.append(byte)
            if byte == 0xFF { output.append(0) }  // byte stuffing
            bitCount -= 8
        }
        bitBuffer &= (1 << UInt32(bitCount)) - 1
    }

    private func flushBits() {
        if bitCount > 0 { putBits(UInt16((1 << UInt32(8 - bitCount)) - 1), UInt8(8 - bitCount)) }  // pad with ones
    }

    private func writeHeaders() {
        output += [0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 0x4A, 0x46, 0x49, 0x46, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0]
        output += [0xFF, 0xDB, 0, 132]
        for t in 0..<2 {
            output.append(UInt8(t))
            for k in 0..<64 { output.append(quantisation[t][Self.naturalOrder[k]]) }
        }
        let luma: UInt8 = layout == .i420 ? 0x22 : 0x21
        output += [0xFF, 0xC0, 0, 17, 8, UInt8(height >> 8), UInt8(height & 0xFF), UInt8(width >> 8), UInt8(width & 0xFF), 3,
                   1, luma, 0, 2, 0x11, 1, 3, 0x11, 1]
        output += StandardHuffman.segment
        output += [0xFF, 0xDA, 0, 12, 3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0]
    }

    /// Code words of a Huffman table (T.81 Annex C), indexed by symbol.
    private static func codes(_ table: (bits: [UInt8], values: [UInt8])) -> [(code: UInt16, size: UInt8)] {
        var result = [(code: UInt16, size: UInt8)](repeating: (0, 0), count: 256)
        var code: UInt16 = 0
        var k = 0
        for length in 1...16 {
            for _ in 0..<Int(table.bits[length - 1]) {
                result[Int(table.values[k])] = (code, UInt8(length))
                code += 1
                k += 1
            }
            code <<= 1
        }
        return result
    }

    /// The natural (row-major) index of zigzag position k.
    static let naturalOrder: [Int] = [
        0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
        35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
    ]
    /// The zigzag position of natural index i.
    static let zigzagPosition: [Int] = {
        var z = [Int](repeating: 0, count: 64)
        for (k, n) in naturalOrder.enumerated() { z[n] = k }
        return z
    }()

    /// T.81 Annex K.1's example tables (natural order).
    static let standardLuminance: [UInt8] = [
        16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
        18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
    ]
    static let standardChrominance: [UInt8] = [
        17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
        99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    ]
}

private extension Double {
    var asFloat: Float { Float(self) }
}

/// cos without Foundation (Media's hot paths avoid it; this runs once per encoder).
private func cosine(_ x: Double) -> Double {
    // Reduce to [-pi, pi] and sum the Taylor series: ample precision for DCT weights.
    var t = x.truncatingRemainder(dividingBy: 2 * Double.pi)
    if t > Double.pi { t -= 2 * Double.pi }
    if t < -Double.pi { t += 2 * Double.pi }
    var term = 1.0, sum = 1.0
    for n in 1..<20 {
        term *= -t * t / Double((2 * n - 1) * (2 * n))
        sum += term
    }
    return sum
}
