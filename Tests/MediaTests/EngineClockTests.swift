import BoxConfig
import Foundation
import Synchronization
import Testing
@testable import Devices
@testable import Media

let quietRoom = SimRoomSpec(rt60: 0.3, speakerDistance: 1, pupilDistance: 2, deviceDelayMs: 10, speakerGainDb: -6,
                            pupilGainDb: 0, noiseDbfs: -70, seed: 5)

/// Test double: a port whose device vanishes (ENODEV) after `lifetime` transfers, like a USB
/// speakerphone pulled out mid-lesson.
final class VanishingPort: AudioPort {
    let inner: any AudioPort
    var remaining: Int
    init(_ inner: any AudioPort, lifetime: Int) { self.inner = inner; remaining = lifetime }
    var name: String { inner.name }
    var stream: PCMStream { inner.stream }
    var configuration: PCMConfiguration { inner.configuration }
    func transfer(_ buffer: UnsafeMutableRawPointer, frames: Int) -> Int {
        remaining -= 1
        return remaining < 0 ? -Int(ENODEV) : inner.transfer(buffer, frames: frames)
    }
    func recover(from error: Int) -> Int { remaining < 0 ? -Int(ENODEV) : inner.recover(from: error) }
    func start() -> Int { inner.start() }
    func timestamp() -> PCMTimestamp? { inner.timestamp() }
}

/// Test double: a device that captures silence and plays into nothing, instantly.
final class NullPort: AudioPort {
    let stream: PCMStream
    let configuration = PCMConfiguration(rate: 48000, channels: 1, format: .float32, periodFrames: 480, bufferFrames: 1440)
    init(_ stream: PCMStream) { self.stream = stream }
    var name: String { "null-\(stream.rawValue)" }
    func transfer(_ buffer: UnsafeMutableRawPointer, frames: Int) -> Int {
        if stream == .capture { buffer.initializeMemory(as: Float.self, repeating: 0, count: frames) }
        return frames
    }
    func recover(from error: Int) -> Int { 0 }
    func start() -> Int { 0 }
    func timestamp() -> PCMTimestamp? { nil }
}

/// Test double: reports timestamps of a clock running `ppm` off nominal on a virtual timeline of one
/// period per transfer, so offline cycles exercise the drift path.
final class DriftingClockPort: AudioPort {
    let inner: any AudioPort
    let ppm: Double
    var transfers = 0
    var frames = 0
    init(_ inner: any AudioPort, ppm: Double) { self.inner = inner; self.ppm = ppm }
    var name: String { inner.name }
    var stream: PCMStream { inner.stream }
    var configuration: PCMConfiguration { inner.configuration }
    func transfer(_ buffer: UnsafeMutableRawPointer, frames n: Int) -> Int {
        let got = inner.transfer(buffer, frames: n)
        if got > 0 { transfers += 1; frames += got }
        return got
    }
    func recover(from error: Int) -> Int { inner.recover(from: error) }
    func start() -> Int { inner.start() }
    func timestamp() -> PCMTimestamp? {
        let seconds = Double(transfers) * 0.01
        let hardware = Int((seconds * Double(configuration.rate) * (1 + ppm * 1e-6)).rounded())
        let delay = stream == .capture ? hardware - frames : frames - hardware
        return PCMTimestamp(nanoseconds: 1_000_000_000 + Int64(seconds * 1e9), delayFrames: delay, availableFrames: 0)
    }
}

@Suite("Audio engine clocks and devices", .serialized)
struct EngineClockTests {
    @Test("drift between the microphone's and the loudspeaker's clocks is measured within 2 ppm in 30 s and fed to the resampler",
          arguments: [(80.0, -40.0), (-150.0, 30.0)])
    func driftIsCompensated(capturePPM: Double, playbackPPM: Double) throws {
        let engine = AudioEngine(capture: DriftingClockPort(NullPort(.capture), ppm: capturePPM),
                                 playback: DriftingClockPort(NullPort(.playback), ppm: playbackPPM),
                                 processor: PassThroughProcessor(), configuration: .init(rate: 48000))
        var sink = [Float](repeating: 0, count: 480)
        for _ in 0..<3000 {
            engine.step()
            sink.withUnsafeMutableBufferPointer { _ = engine.output.read(into: $0) }
        }
        let measured = try #require(engine.counters.snapshot().driftPPM)
        let truth = ((1 + capturePPM * 1e-6) / (1 + playbackPPM * 1e-6) - 1) * 1e6
        #expect(abs(measured - truth) < 2, "measured \(measured) ppm, truth \(truth) ppm")
    }

    @Test("a capture device that vanishes is reopened when it returns, while playback keeps running")
    func reopenVanishedDevice() throws {
        let first = SimulatedClassroom(spec: quietRoom, rate: 48000, periodFrames: 480)
        let second = SimulatedClassroom(spec: quietRoom, rate: 48000, periodFrames: 480)
        let attempts = Atomic<Int>(0)
        let engine = AudioEngine(capture: ClockedPort(VanishingPort(first.capture, lifetime: 20)),
                                 playback: ClockedPort(first.playback),
                                 processor: PassThroughProcessor(), configuration: .init(rate: 48000, realtimePriority: 20))
        nonisolated(unsafe) let replacement: any AudioPort = ClockedPort(second.capture)
        engine.start(reopen: { stream in
            guard stream == .capture else { return nil }
            // Still unplugged for the first two attempts.
            return attempts.add(1, ordering: .relaxed).newValue >= 3 ? replacement : nil
        }, reopenInterval: 0.1)
        defer { engine.stop() }
        /// Polls `condition` every 10 ms for up to `seconds` (timing on a loaded CI machine varies).
        func eventually(_ seconds: Double, _ condition: (AudioCounterSnapshot) -> Bool) -> AudioCounterSnapshot? {
            let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
            while ContinuousClock.now < deadline {
                let snapshot = engine.counters.snapshot()
                if condition(snapshot) { return snapshot }
                usleep(10_000)
            }
            return nil
        }
        let gone = try #require(eventually(3) { $0.captureGone }, "the vanished device was noticed")
        let back = try #require(eventually(3) { $0.captureReopens == 1 && !$0.captureGone }, "the device was reopened")
        #expect(back.playbackStarvedFrames > gone.playbackStarvedFrames, "playback kept running while the microphone was gone")
        let resumed = try #require(eventually(3) { $0.processedFrames > back.processedFrames + 20 }, "processing resumed")
        #expect(resumed.captureReopens == 1)
    }
}
