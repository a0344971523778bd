import Foundation
import Testing
@testable import Media

@Suite("WAV files and the capture-processor seam")
struct WAVFileTests {
    func temporaryPath(_ name: String) -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("classbox-tests-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent(name).path
    }

    @Test("16-bit PCM round-trips within one quantisation step, with clipping")
    func roundTrip() throws {
        let samples: [Float] = [0, 0.5, -0.5, 1.5, -1.5, 0.25, 1e-5]
        let path = temporaryPath("a.wav")
        try WAVAudio(sampleRate: 16000, samples: samples).write(path: path)
        let back = try WAVAudio.read(path: path)
        #expect(back.sampleRate == 16000 && back.channels == 1 && back.samples.count == samples.count)
        for (a, b) in zip(samples.map { max(-1, min(1, $0)) }, back.samples) { #expect(abs(a - b) <= 1.0 / 32767 + 1e-6) }
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int
        #expect(size == 44 + 2 * samples.count)
    }

    @Test("float and 24-bit files with extra chunks are read; stereo averages to mono")
    func otherFormats() throws {
        func header(tag: UInt16, channels: UInt16, bits: UInt16, dataBytes: Int) -> [UInt8] {
            var b = [UInt8]()
            func p32(_ v: Int) { b += [UInt8(v & 255), UInt8(v >> 8 & 255), UInt8(v >> 16 & 255), UInt8(v >> 24 & 255)] }
            func p16(_ v: UInt16) { b += [UInt8(v & 255), UInt8(v >> 8)] }
            b += Array("RIFF".utf8); p32(4 + 26 + 12 + 8 + dataBytes); b += Array("WAVE".utf8)
            b += Array("LIST".utf8); p32(4); b += Array("INFO".utf8)
            b += Array("fmt ".utf8); p32(16); p16(tag); p16(channels); p32(48000); p32(48000 * Int(channels * bits / 8))
            p16(channels * bits / 8); p16(bits)
            b += Array("data".utf8); p32(dataBytes)
            return b
        }
        var float = header(tag: 3, channels: 2, bits: 32, dataBytes: 16)
        for v: Float in [0.5, -0.25, 1.0, 0.0] { withUnsafeBytes(of: v.bitPattern.littleEndian) { float += $0 } }
        let f = try WAVAudio.parse(float, path: "f.wav")
        #expect(f.sampleRate == 48000 && f.channels == 2 && f.mono() == [0.125, 0.5])
        let pcm24 = header(tag: 1, channels: 1, bits: 24, dataBytes: 6) + [0x00, 0x00, 0x40, 0x00, 0x00, 0xC0]
        #expect(try WAVAudio.parse(pcm24, path: "p.wav").samples == [0.5, -0.5])
    }

    @Test("not a WAV file, or an unsupported format, is a clear error", arguments: [
        ([UInt8](repeating: 0, count: 50), "not a RIFF/WAVE file"),
        (Array("RIFF\u{0}\u{0}\u{0}\u{0}WAVE".utf8), "no data chunk"),
    ])
    func garbage(bytes: [UInt8], message: String) {
        #expect { _ = try WAVAudio.parse(bytes, path: "x.wav") } throws: { ($0 as? WAVError)?.reason == message }
    }

    @Test("a missing file names itself")
    func missing() {
        #expect { _ = try WAVAudio.read(path: "/nonexistent/a.wav") } throws: {
            ($0 as? WAVError)?.description.hasPrefix("/nonexistent/a.wav:") == true
        }
    }

    @Test("the pass-through processor sends the microphone unchanged")
    func passThrough() {
        var processor = PassThroughProcessor()
        let render: [Float] = [1, 1, 1], capture: [Float] = [0.1, 0.2, 0.3]
        var output = [Float](repeating: 0, count: 3)
        render.withUnsafeBufferPointer { r in capture.withUnsafeBufferPointer { c in
            output.withUnsafeMutableBufferPointer { o in processor.process(render: r, capture: c, output: o) } } }
        #expect(output == capture)
    }

    @Test("libopus is linked and reports its version")
    func opus() { #expect(opusVersion().hasPrefix("libopus 1.")) }
}
