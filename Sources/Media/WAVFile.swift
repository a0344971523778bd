import Foundation

/// Why a WAV file could not be read or written.
public struct WAVError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file concerned.
    public var path: String
    /// What is wrong and what to do.
    public var reason: String
    public var description: String { "\(path): \(reason)" }
}

/// Audio samples with their rate, as read from or written to a RIFF/WAVE file.
public struct WAVAudio: Sendable, Equatable {
    /// Sample rate in Hz.
    public var sampleRate: Int
    /// Number of interleaved channels.
    public var channels: Int
    /// Interleaved samples in [-1, 1].
    public var samples: [Float]

    /// Audio from interleaved samples.
    public init(sampleRate: Int, channels: Int = 1, samples: [Float]) {
        self.sampleRate = sampleRate
        self.channels = channels
        self.samples = samples
    }

    /// Frames (samples per channel).
    public var frameCount: Int { samples.count / max(channels, 1) }
    /// Duration in seconds.
    public var duration: Double { Double(frameCount) / Double(sampleRate) }

    /// One channel, or the average of all channels when `channel` is nil.
    public func mono(channel: Int? = nil) -> [Float] {
        guard channels > 1 else { return samples }
        var out = [Float](repeating: 0, count: frameCount)
        for f in 0..<frameCount {
            if let channel { out[f] = samples[f * channels + channel] } else {
                var sum: Float = 0
                for c in 0..<channels { sum += samples[f * channels + c] }
                out[f] = sum / Float(channels)
            }
        }
        return out
    }

    /// Reads 16/24/32-bit integer PCM or 32-bit float WAV (WAVE_FORMAT_EXTENSIBLE too).
    public static func read(path: String) throws(WAVError) -> WAVAudio {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw WAVError(path: path, reason: "cannot be read (missing or no permission)")
        }
        return try parse([UInt8](data), path: path)
    }

    static func parse(_ b: [UInt8], path: String) throws(WAVError) -> WAVAudio {
        func u32(_ o: Int) -> Int { Int(b[o]) | Int(b[o + 1]) << 8 | Int(b[o + 2]) << 16 | Int(b[o + 3]) << 24 }
        func u16(_ o: Int) -> Int { Int(b[o]) | Int(b[o + 1]) << 8 }
        guard b.count >= 12, b[0..<4].elementsEqual("RIFF".utf8), b[8..<12].elementsEqual("WAVE".utf8) else {
            throw WAVError(path: path, reason: "not a RIFF/WAVE file")
        }
        var offset = 12
        var format: (tag: Int, channels: Int, rate: Int, bits: Int)? = nil
        while offset + 8 <= b.count {
            let id = String(decoding: b[offset..<offset + 4], as: UTF8.self)
            let size = u32(offset + 4)
            let body = offset + 8
            if id == "fmt " {
                guard size >= 16, body + 16 <= b.count else { throw WAVError(path: path, reason: "truncated fmt chunk") }
                var tag = u16(body)
                if tag == 0xFFFE, size >= 40 { tag = u16(body + 24) }  // WAVE_FORMAT_EXTENSIBLE: sub-format GUID
                format = (tag, u16(body + 2), u32(body + 4), u16(body + 14))
            } else if id == "data" {
                guard let f = format else { throw WAVError(path: path, reason: "data chunk before fmt chunk") }
                guard f.channels > 0, f.rate > 0 else { throw WAVError(path: path, reason: "zero channels or sample rate") }
                let end = min(b.count, body + size)  // a streamed file may declare a larger size
                return WAVAudio(sampleRate: f.rate, channels: f.channels,
                                samples: try decode(b[body..<end], tag: f.tag, bits: f.bits, path: path))
            }
            offset = body + size + (size & 1)
        }
        throw WAVError(path: path, reason: "no data chunk")
    }

    private static func decode(_ bytes: ArraySlice<UInt8>, tag: Int, bits: Int, path: String) throws(WAVError) -> [Float] {
        let base = bytes.startIndex
        switch (tag, bits) {
        case (1, 16):
            return (0..<bytes.count / 2).map { i in
                Float(Int16(bitPattern: UInt16(bytes[base + 2 * i]) | UInt16(bytes[base + 2 * i + 1]) << 8)) / 32768
            }
        case (1, 24):
            return (0..<bytes.count / 3).map { i in
                let o = base + 3 * i
                let v = Int32(bitPattern: UInt32(bytes[o]) << 8 | UInt32(bytes[o + 1]) << 16 | UInt32(bytes[o + 2]) << 24) >> 8
                return Float(v) / 8_388_608
            }
        case (1, 32):
            return (0..<bytes.count / 4).map { i in
                let o = base + 4 * i
                let v = UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3]) << 24
                return Float(Int32(bitPattern: v)) / 2_147_483_648
            }
        case (3, 32):
            return (0..<bytes.count / 4).map { i in
                let o = base + 4 * i
                return Float(bitPattern: UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3]) << 24)
            }
        default:
            throw WAVError(path: path, reason: "unsupported sample format (tag \(tag), \(bits) bits); use 16-bit PCM, 24/32-bit PCM or 32-bit float")
        }
    }

    /// Writes 16-bit PCM with rounding and clipping (the format of the evaluation kit and most tools).
    public func write(path: String) throws(WAVError) {
        var out = [UInt8]()
        out.reserveCapacity(44 + samples.count * 2)
        func put32(_ v: Int) { for s in stride(from: 0, to: 32, by: 8) { out.append(UInt8((v >> s) & 0xFF)) } }
        func put16(_ v: Int) { out.append(UInt8(v & 0xFF)); out.append(UInt8((v >> 8) & 0xFF)) }
        out += Array("RIFF".utf8); put32(36 + samples.count * 2); out += Array("WAVEfmt ".utf8)
        put32(16); put16(1); put16(channels); put32(sampleRate); put32(sampleRate * channels * 2); put16(channels * 2); put16(16)
        out += Array("data".utf8); put32(samples.count * 2)
        for x in samples {
            let v = Int((Double(x) * 32767).rounded())
            put16(min(32767, max(-32768, v)))
        }
        guard FileManager.default.createFile(atPath: path, contents: Data(out)) else {
            throw WAVError(path: path, reason: "cannot be written; check that the directory exists and is writable")
        }
    }
}
