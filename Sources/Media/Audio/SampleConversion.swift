import Devices

/// Turns a device's interleaved frames into the mono microphone signal (picking or averaging the board's
/// microphone channels) and the mono loudspeaker signal into a device's interleaved frames. Allocates
/// nothing after construction.
struct SampleConverter {
    let format: PCMSampleFormat
    let channels: Int
    private let picks: UnsafeMutablePointer<Int>
    private let pickCount: Int
    private let average: Bool

    init(configuration: PCMConfiguration, micChannels: [Int], average: Bool) {
        format = configuration.format
        channels = configuration.channels
        let valid = micChannels.filter { $0 >= 0 && $0 < configuration.channels }
        let chosen = valid.isEmpty ? [0] : valid
        picks = .allocate(capacity: chosen.count)
        picks.initialize(from: chosen, count: chosen.count)
        pickCount = average ? chosen.count : 1
        self.average = average
    }

    func release() { picks.deallocate() }

    /// Interleaved device frames to mono; returns the number of samples at or beyond full scale.
    @inline(__always)
    func toMono(_ raw: UnsafeRawPointer, frames: Int, into mono: UnsafeMutablePointer<Float>) -> Int {
        var clipped = 0
        let scale = 1 / Float(pickCount)
        switch format {
        case .s16:
            let s = raw.assumingMemoryBound(to: Int16.self)
            for f in 0..<frames {
                var sum: Float = 0
                for k in 0..<pickCount {
                    let v = s[f &* channels &+ picks[k]]
                    if v == Int16.max || v == Int16.min { clipped &+= 1 }
                    sum += Float(v) * (1 / 32768)
                }
                mono[f] = sum * scale
            }
        case .s32:
            let s = raw.assumingMemoryBound(to: Int32.self)
            for f in 0..<frames {
                var sum: Float = 0
                for k in 0..<pickCount {
                    let v = s[f &* channels &+ picks[k]]
                    if v >= Int32.max - 65536 || v <= Int32.min + 65536 { clipped &+= 1 }
                    sum += Float(v) * (1 / 2_147_483_648)
                }
                mono[f] = sum * scale
            }
        case .float32:
            let s = raw.assumingMemoryBound(to: Float.self)
            for f in 0..<frames {
                var sum: Float = 0
                for k in 0..<pickCount {
                    let v = s[f &* channels &+ picks[k]]
                    if abs(v) >= 1 { clipped &+= 1 }
                    sum += v
                }
                mono[f] = sum * scale
            }
        }
        return clipped
    }

    /// Mono to interleaved device frames, the same signal on every channel, clipped to full scale.
    @inline(__always)
    func fromMono(_ mono: UnsafePointer<Float>, frames: Int, into raw: UnsafeMutableRawPointer) {
        switch format {
        case .s16:
            let d = raw.assumingMemoryBound(to: Int16.self)
            for f in 0..<frames {
                let v = Int16(max(-32768, min(32767, (mono[f] * 32768).rounded())))
                for c in 0..<channels { d[f &* channels &+ c] = v }
            }
        case .s32:
            let d = raw.assumingMemoryBound(to: Int32.self)
            for f in 0..<frames {
                let x = Double(max(-1, min(1, mono[f]))) * 2_147_483_647
                let v = Int32(x.rounded())
                for c in 0..<channels { d[f &* channels &+ c] = v }
            }
        case .float32:
            let d = raw.assumingMemoryBound(to: Float.self)
            for f in 0..<frames {
                let v = max(-1, min(1, mono[f]))
                for c in 0..<channels { d[f &* channels &+ c] = v }
            }
        }
    }
}
