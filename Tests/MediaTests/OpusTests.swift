import Foundation
import Testing
@testable import Media

@Suite("Opus codec (libopus)")
struct OpusTests {
    /// A voice-like test tone: 220 Hz with harmonics, amplitude 0.3.
    func tone(_ n: Int, offset: Int = 0) -> [Float] {
        (0..<n).map { i in
            let w = 2 * Double.pi * 220 * Double(i + offset) / 48000
            let sum: Double = sin(w) + 0.5 * sin(2 * w) + 0.25 * sin(3 * w)
            return Float(0.3 * sum / 1.75)
        }
    }

    /// The output's delay against the input: the lag (0-1000 samples) of best correlation.
    func bestLag(_ input: [Float], _ output: [Float], from: Int, count: Int) -> Int {
        var best = (0, -Double.infinity)
        for lag in stride(from: 0, to: 1000, by: 1) where lag % 4 == 0 || lag < 700 {
            let c = correlation(input[from..<from + count], output[from + lag..<from + lag + count])
            if c > best.1 { best = (lag, c) }
        }
        return best.0
    }

    /// Speech-like: a gliding pitch with syllables (4 Hz envelope), so the encoder's voice activity
    /// detector treats it as speech (a steady tone soon counts as background and gets no FEC).
    func syllables(_ n: Int) -> [Float] {
        var phase = 0.0
        return (0..<n).map { i in
            let t = Double(i) / 48000
            phase += 2 * Double.pi * (180 + 40 * sin(2 * Double.pi * 1.3 * t)) / 48000
            let envelope = max(0, sin(2 * Double.pi * 4 * t))
            let voiced: Double = sin(phase) + 0.6 * sin(2 * phase) + 0.3 * sin(3 * phase)
            return Float(0.25 * envelope * voiced)
        }
    }

    func correlation(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Double {
        var ab = 0.0, aa = 0.0, bb = 0.0
        for (x, y) in zip(a, b) { ab += Double(x) * Double(y); aa += Double(x) * Double(x); bb += Double(y) * Double(y) }
        return ab / (aa * bb).squareRoot()
    }

    @Test("speech-band audio survives an encode/decode round trip", arguments: [10, 20])
    func roundTrip(frameMs: Int) throws {
        var settings = OpusSettings()
        settings.frameMs = frameMs
        let encoder = try OpusEncoder(settings: settings)
        let decoder = try OpusDecoder()
        let frame = settings.frameSamples
        let input = tone(frame * 50)
        var output = [Float]()
        var packet = [UInt8](repeating: 0, count: 1500)
        var pcm = [Float](repeating: 0, count: frame)
        for f in 0..<50 {
            let bytes = input[f * frame..<(f + 1) * frame].withUnsafeBufferPointer { i in
                packet.withUnsafeMutableBytes { encoder.encode(i, into: $0) }
            }
            #expect(bytes > 0 && bytes < 400)
            let n = packet.withUnsafeBytes { p in pcm.withUnsafeMutableBufferPointer { decoder.decode(UnsafeRawBufferPointer(rebasing: p[0..<bytes]), into: $0) } }
            #expect(n == frame)
            output += pcm
        }
        let delay = bestLag(input, output, from: frame * 10, count: frame * 3)
        let c = correlation(input[frame * 10..<frame * 45], output[frame * 10 + delay..<frame * 45 + delay])
        #expect(c > 0.95, "correlation \(c) at \(delay) samples (encoder look-ahead \(encoder.lookahead))")
    }

    @Test("the restricted low-delay mode brings the signal out 4 ms sooner than VoIP mode")
    func lowDelay() throws {
        func lag(lowDelay: Bool) throws -> (lag: Int, lookahead: Int, correlation: Double) {
            var settings = OpusSettings()
            settings.frameMs = 10
            settings.lowDelay = lowDelay
            let encoder = try OpusEncoder(settings: settings)
            let decoder = try OpusDecoder()
            let frame = settings.frameSamples
            // A slow chirp (300 Hz to 3 kHz over 0.5 s): unlike a voiced tone, it matches itself at one lag only.
            let input = (0..<frame * 50).map { i -> Float in
                let t = Double(i) / 48000
                return Float(0.3 * sin(2 * Double.pi * (300 * t + 2700 * t * t)))
            }
            var output = [Float]()
            var packet = [UInt8](repeating: 0, count: 1500)
            var pcm = [Float](repeating: 0, count: frame)
            for f in 0..<50 {
                let bytes = input[f * frame..<(f + 1) * frame].withUnsafeBufferPointer { i in
                    packet.withUnsafeMutableBytes { encoder.encode(i, into: $0) }
                }
                _ = packet.withUnsafeBytes { p in pcm.withUnsafeMutableBufferPointer { decoder.decode(UnsafeRawBufferPointer(rebasing: p[0..<max(0, bytes)]), into: $0) } }
                output += pcm
            }
            let delay = bestLag(input, output, from: frame * 10, count: frame * 3)
            return (delay, encoder.lookahead, correlation(input[frame * 10..<frame * 45], output[frame * 10 + delay..<frame * 45 + delay]))
        }
        let voip = try lag(lowDelay: false), low = try lag(lowDelay: true)
        #expect(voip.lookahead == 312 && low.lookahead == 120, "look-ahead \(voip.lookahead) vs \(low.lookahead) samples")
        #expect(abs((voip.lag - low.lag) - (voip.lookahead - low.lookahead)) <= 8, "measured delays \(voip.lag) and \(low.lag) samples")
        #expect(low.correlation > 0.95, "the low-delay mode still carries the signal: \(low.correlation)")
    }

    @Test("a lost packet is recovered from the next one's in-band FEC better than concealed")
    func forwardErrorCorrection() throws {
        var settings = OpusSettings()
        settings.bitrate = 24000
        let encoder = try OpusEncoder(settings: settings)
        encoder.setExpectedLoss(percent: 20)
        let frame = settings.frameSamples
        let input = syllables(frame * 40)
        var packets: [[UInt8]] = []
        var buffer = [UInt8](repeating: 0, count: 1500)
        for f in 0..<40 {
            let n = input[f * frame..<(f + 1) * frame].withUnsafeBufferPointer { i in buffer.withUnsafeMutableBytes { encoder.encode(i, into: $0) } }
            packets.append(Array(buffer[0..<n]))
        }
        func decodeAll(lost: Int, useFEC: Bool) throws -> [Float] {
            let decoder = try OpusDecoder()
            var out = [Float](), pcm = [Float](repeating: 0, count: frame)
            for f in 0..<40 {
                if f == lost {
                    if useFEC {
                        _ = packets[f + 1].withUnsafeBytes { p in pcm.withUnsafeMutableBufferPointer { decoder.decode(p, into: $0, fec: true) } }
                    } else {
                        _ = pcm.withUnsafeMutableBufferPointer { decoder.conceal(into: $0) }
                    }
                } else {
                    _ = packets[f].withUnsafeBytes { p in pcm.withUnsafeMutableBufferPointer { decoder.decode(p, into: $0) } }
                }
                out += pcm
            }
            return out
        }
        let clean = try decodeAll(lost: -1, useFEC: false)
        let delay = bestLag(input, clean, from: frame * 6, count: frame * 3)
        let lost = 26  // inside a syllable
        let truth = input[lost * frame..<(lost + 1) * frame - delay]
        let fec = try decodeAll(lost: lost, useFEC: true)
        let plc = try decodeAll(lost: lost, useFEC: false)
        let withFEC = correlation(truth, fec[lost * frame + delay..<(lost + 1) * frame])
        let withPLC = correlation(truth, plc[lost * frame + delay..<(lost + 1) * frame])
        #expect(withFEC > 0.8, "FEC recovered the frame: correlation \(withFEC) (PLC \(withPLC), delay \(delay))")
        #expect(withFEC >= withPLC - 0.02, "FEC \(withFEC) vs PLC \(withPLC)")
    }

    @Test("a malformed packet is an error, not a crash")
    func malformed() throws {
        let decoder = try OpusDecoder()
        var pcm = [Float](repeating: 0, count: 960)
        let garbage: [UInt8] = [0xFF, 0xFF, 0xFF]
        let n = garbage.withUnsafeBytes { g in pcm.withUnsafeMutableBufferPointer { decoder.decode(g, into: $0) } }
        #expect(n < 0)
        #expect(throws: OpusError.self) { _ = try OpusDecoder(rate: 44100) }
    }

    @Test("encoding and decoding allocate nothing")
    func noAllocation() throws {
        let encoder = try OpusEncoder(settings: OpusSettings())
        let decoder = try OpusDecoder()
        let input = tone(960)
        var packet = [UInt8](repeating: 0, count: 1500)
        var pcm = [Float](repeating: 0, count: 960)
        let count = input.withUnsafeBufferPointer { i in
            packet.withUnsafeMutableBytes { p in
                pcm.withUnsafeMutableBufferPointer { o in
                    _ = decoder.decode(UnsafeRawBufferPointer(rebasing: p[0..<max(encoder.encode(i, into: p), 0)]), into: o)  // warm-up
                    return allocations {
                        for _ in 0..<100 {
                            let n = encoder.encode(i, into: p)
                            _ = decoder.decode(UnsafeRawBufferPointer(rebasing: p[0..<max(n, 0)]), into: o)
                        }
                    }
                }
            }
        }
        #expect(count == 0)
    }
}
