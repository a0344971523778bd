import Foundation
import Testing
@testable import Devices

/// A fresh directory and an ALSA configuration defining test PCMs on libasound's own plugins: no
/// kernel sound driver is needed (this machine has none), yet every call goes through the real library.
struct TestPCMs {
    let dir: String
    let config: ALSAConfigTree

    init(rate: Int = 48000, captureInput: [Int16]) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("classbox-alsa-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let data = captureInput.withUnsafeBufferPointer { Data(buffer: $0) }
        FileManager.default.createFile(atPath: dir + "/in.raw", contents: data)
        config = try ALSAConfigTree(text: """
            pcm.cap { type file slave.pcm { type null } file "/dev/null" infile "\(dir)/in.raw" format "raw" }
            pcm.play { type file slave.pcm { type null } file "\(dir)/out.raw" format "raw" }
            pcm.only44k { type plug slave { pcm { type null } rate 44100 } }
            """)
    }

    func played() -> [Int16] {
        guard let data = FileManager.default.contents(atPath: dir + "/out.raw") else { return [] }
        return data.withUnsafeBytes { Array($0.bindMemory(to: Int16.self)) }
    }
}

@Suite("ALSA PCM devices (real libasound, plugin devices)")
struct PCMDeviceTests {
    @Test("a capture device opens with the asked parameters and reads the input file's frames")
    func capture() throws {
        let input = (0..<4800).map { Int16(truncatingIfNeeded: $0 * 7) }
        let pcms = try TestPCMs(captureInput: input)
        let device = try PCMDevice(name: "cap", stream: .capture, rates: [48000], channels: 1, formats: [.s16],
                                   periodFrames: 480, bufferPeriods: 3, config: pcms.config)
        #expect(device.configuration == PCMConfiguration(rate: 48000, channels: 1, format: .s16, periodFrames: 480, bufferFrames: 1440))
        var frames = [Int16](repeating: 0, count: 4800)
        var read = 0
        while read < 4800 {
            let n = frames.withUnsafeMutableBytes { device.read(into: $0.baseAddress! + read * 2, frames: min(480, 4800 - read)) }
            #expect(n > 0, "read returned \(n)")
            guard n > 0 else { break }
            read += n
        }
        #expect(frames == input)
        #expect(device.timestamp() != nil)
    }

    @Test("a playback device writes frames that arrive intact")
    func playback() throws {
        let pcms = try TestPCMs(captureInput: [0])
        do {
            let device = try PCMDevice(name: "play", stream: .playback, rates: [48000], channels: 2, formats: [.s16],
                                       periodFrames: 480, bufferPeriods: 2, config: pcms.config)
            let samples = (0..<1920).map { Int16(truncatingIfNeeded: $0 &* 31) }
            var written = 0
            while written < 960 {
                let n = samples.withUnsafeBytes { device.write(from: $0.baseAddress! + written * 4, frames: 960 - written) }
                #expect(n > 0)
                guard n > 0 else { break }
                written += n
            }
        }  // closing the device flushes the file
        let played = pcms.played()
        #expect(played.count == 1920)
        #expect(played == (0..<1920).map { Int16(truncatingIfNeeded: $0 &* 31) })
    }

    @Test("a device that refuses the rate says which rate and what it supports")
    func refusedRate() throws {
        let pcms = try TestPCMs(captureInput: [0])
        #expect {
            _ = try PCMDevice(name: "only44k", stream: .playback, rates: [48000], channels: 1, periodFrames: 480, bufferPeriods: 3, config: pcms.config)
        } throws: { error in
            guard let e = error as? ALSAError else { return false }
            return e.kind == .refusedParameter("rate") && e.description.contains("only44k (playback): refused rate 48000 Hz; it supports 44100 Hz")
        }
        // With the board's native rate as a fallback it opens.
        let device = try PCMDevice(name: "only44k", stream: .playback, rates: [48000, 44100], channels: 1, periodFrames: 441, bufferPeriods: 3, config: pcms.config)
        #expect(device.configuration.rate == 44100)
    }

    @Test("an unknown device is not found")
    func unknownDevice() throws {
        let pcms = try TestPCMs(captureInput: [0])
        #expect {
            _ = try PCMDevice(name: "nosuchpcm", stream: .capture, rates: [48000], channels: 1, periodFrames: 480, bufferPeriods: 3, config: pcms.config)
        } throws: { ($0 as? ALSAError)?.kind == .notFound }
    }

    @Test("invalid configuration text is refused")
    func badConfig() {
        #expect(throws: ALSAError.self) { try ALSAConfigTree(text: "pcm.x { type ") }
    }
}
