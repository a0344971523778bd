// classbox-bench: measures the real-time audio path's CPU cost per audio second on this machine; run
// by scripts/bench-audio next to its peers. It is a development tool and never ships in the image.
import Devices
import Foundation
import Media

func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) * 1e-6
        + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) * 1e-6
}

let arguments = CommandLine.arguments
let seconds = arguments.count > 2 ? Double(arguments[2]) ?? 300 : 300
let rate = 48000

switch arguments.count > 1 ? arguments[1] : "" {
case "engine":
    // Capture + playback through libasound (null plugin devices: real library calls, no hardware) and the
    // drift-compensating resampler; the capture processor is a pass-through, so the canceller is excluded.
    let config = try ALSAConfigTree(text: """
        pcm.mic { type file slave.pcm { type null } file "/dev/null" infile "/dev/zero" format "raw" }
        pcm.speaker { type null }
        """)
    let capture = try PCMDevice(name: "mic", stream: .capture, rates: [rate], channels: 1, formats: [.s16], periodFrames: 480,
                                bufferPeriods: 3, config: config)
    let playback = try PCMDevice(name: "speaker", stream: .playback, rates: [rate], channels: 2, formats: [.s16],
                                 periodFrames: 480, bufferPeriods: 3, config: config)
    let engine = AudioEngine(capture: ALSAPort(capture), playback: ALSAPort(playback), processor: PassThroughProcessor(),
                             configuration: .init(rate: rate))
    let tone = (0..<480).map { Float(sin(Double($0) * 0.07)) * 0.3 }
    var sink = [Float](repeating: 0, count: 480)
    let periods = Int(seconds * 100)
    let start = cpuSeconds()
    for _ in 0..<periods {
        tone.withUnsafeBufferPointer { _ = engine.playbackSource.write($0) }
        engine.step()
        sink.withUnsafeMutableBufferPointer { _ = engine.output.read(into: $0) }
    }
    let cpu = cpuSeconds() - start
    print(String(format: "engine %.6f cpu_s_per_audio_s (%.0f s of audio, %d frames processed)", cpu / seconds, seconds,
                 engine.counters.snapshot().processedFrames))
case "resampler":
    // The resampler alone, at +100 ppm, mono 48 kHz, 480-sample blocks: the same work as the peer.
    var resampler = AdaptiveResampler(step: 1 + 100e-6)
    let input = (0..<480).map { Float(sin(Double($0) * 0.05)) * 0.5 }
    var output = [Float](repeating: 0, count: 600)
    let blocks = Int(seconds * 100)
    var produced = 0
    let start = cpuSeconds()
    for _ in 0..<blocks {
        input.withUnsafeBufferPointer { _ = resampler.push($0) }
        produced += output.withUnsafeMutableBufferPointer { resampler.pull(into: $0) }
    }
    let cpu = cpuSeconds() - start
    print(String(format: "resampler %.6f cpu_s_per_audio_s (%d samples out)", cpu / seconds, produced))
default:
    print("usage: classbox-bench engine|resampler [audio-seconds]")
    exit(2)
}
