import Devices
import Testing
@testable import Media

@Suite("Sample conversion and microphone channels")
struct SampleConverterTests {
    func configuration(_ format: PCMSampleFormat, channels: Int) -> PCMConfiguration {
        PCMConfiguration(rate: 48000, channels: channels, format: format, periodFrames: 480, bufferFrames: 1440)
    }

    @Test("a 4-channel array microphone: the profile's channels are averaged, or the first one picked")
    func pickAndAverage() {
        let frames: [Int16] = [100, 200, 300, 400, -100, -200, -300, -400]  // 2 frames × 4 channels
        var mono = [Float](repeating: 0, count: 2)
        let average = SampleConverter(configuration: configuration(.s16, channels: 4), micChannels: [1, 3], average: true)
        defer { average.release() }
        _ = frames.withUnsafeBytes { raw in mono.withUnsafeMutableBufferPointer { average.toMono(raw.baseAddress!, frames: 2, into: $0.baseAddress!) } }
        #expect(mono == [300 / 32768, -300 / 32768])
        let pick = SampleConverter(configuration: configuration(.s16, channels: 4), micChannels: [2, 3], average: false)
        defer { pick.release() }
        _ = frames.withUnsafeBytes { raw in mono.withUnsafeMutableBufferPointer { pick.toMono(raw.baseAddress!, frames: 2, into: $0.baseAddress!) } }
        #expect(mono == [300 / 32768, -300 / 32768])
    }

    @Test("full-scale samples are counted as clipped", arguments: [PCMSampleFormat.s16, .s32, .float32])
    func clipping(format: PCMSampleFormat) {
        let converter = SampleConverter(configuration: configuration(format, channels: 1), micChannels: [0], average: true)
        defer { converter.release() }
        let loud: [Float] = [1.2, -1.5, 0.5]
        var raw = [UInt8](repeating: 0, count: 3 * format.bytes)
        var back = [Float](repeating: 0, count: 3)
        let clipped = raw.withUnsafeMutableBytes { r in
            loud.withUnsafeBufferPointer { converter.fromMono($0.baseAddress!, frames: 3, into: r.baseAddress!) }
            return back.withUnsafeMutableBufferPointer { converter.toMono(r.baseAddress!, frames: 3, into: $0.baseAddress!) }
        }
        #expect(clipped == 2)
        #expect(abs(back[2] - 0.5) < 1e-4)
        #expect(back[0] > 0.999 && back[1] < -0.999)
    }

    @Test("playback duplicates the mono signal to every channel")
    func duplicate() {
        let converter = SampleConverter(configuration: configuration(.s16, channels: 2), micChannels: [0], average: false)
        defer { converter.release() }
        let mono: [Float] = [0.5, -0.25]
        var raw = [Int16](repeating: 0, count: 4)
        raw.withUnsafeMutableBytes { r in mono.withUnsafeBufferPointer { converter.fromMono($0.baseAddress!, frames: 2, into: r.baseAddress!) } }
        #expect(raw == [16384, 16384, -8192, -8192])
    }
}
