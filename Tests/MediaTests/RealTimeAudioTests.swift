import CAllocationCounter
import Foundation
import Testing
@testable import Media
@testable import Devices

/// Counts the allocations `body` makes on this thread.
func allocations(_ body: () -> Void) -> Int {
    cb_allocations_begin()
    body()
    return cb_allocations_end()
}

@Suite("Real-time audio building blocks")
struct RealTimeAudioTests {
    @Test("the allocation counter sees an allocation (so a zero below means zero)")
    func counterWorks() {
        #expect(cb_allocations_interposed() == 1)
        let n = allocations { _ = [Float](repeating: 1, count: 1000 + Int.random(in: 0...1)) }
        #expect(n >= 1)
    }

    @Test("the SPSC ring hands samples across threads in order, wrapping many times")
    func ringAcrossThreads() async {
        let ring = SPSCRing(minimumCapacity: 1000)
        #expect(ring.capacity == 1024)
        let total = 200_000
        let producer = Thread {
            var next: Float = 0
            var chunk = [Float](repeating: 0, count: 97)
            var sent = 0
            while sent < total {
                let n = min(chunk.count, total - sent)
                for i in 0..<n { chunk[i] = next + Float(i) }
                var written = 0
                while written < n {
                    written += chunk.withUnsafeBufferPointer { ring.write(UnsafeBufferPointer(rebasing: $0[written..<n])) }
                }
                next += Float(n); sent += n
                if next > 1_000_000 { next = 0 }
            }
        }
        producer.start()
        var expected: Float = 0, received = 0, ordered = true
        var chunk = [Float](repeating: 0, count: 61)
        let deadline = Date().addingTimeInterval(20)
        while received < total && Date() < deadline {
            let n = chunk.withUnsafeMutableBufferPointer { ring.read(into: $0) }
            for i in 0..<n where chunk[i] != expected + Float(i) { ordered = false }
            expected += Float(n); received += n
            if expected > 1_000_000 { expected = 0 }
        }
        #expect(received == total && ordered)
    }

    @Test("ring write, read and discard allocate nothing")
    func ringAllocatesNothing() {
        let ring = SPSCRing(minimumCapacity: 4800)
        let input = [Float](repeating: 0.5, count: 480)
        var output = [Float](repeating: 0, count: 480)
        let n = input.withUnsafeBufferPointer { i in
            output.withUnsafeMutableBufferPointer { o in
                ring.write(i); ring.read(into: o)  // warm-up: first-use runtime caches
                return allocations {
                    for _ in 0..<1000 { ring.write(i); ring.read(into: o) }
                    ring.write(i); ring.discard(100)
                }
            }
        }
        #expect(n == 0)
    }

    @Test("median by quickselect equals the sorted median", arguments: [1, 2, 5, 100, 101])
    func median(count: Int) {
        var values = (0..<count).map { _ in Double.random(in: -5...5) }
        let sorted = values.sorted()
        let median = values.withUnsafeMutableBufferPointer { ClockRateEstimator.median($0.baseAddress!, count: count) }
        #expect(median == sorted[count / 2])
    }

    /// A sound card whose clock runs `ppm` off nominal, observed at 10 ms periods with late wake-ups
    /// (0-2 ms) and a hardware pointer that moves in 1 ms steps (USB), as `snd_pcm_status` reports it.
    func observe(_ estimator: ClockRateEstimator, ppm: Double, seconds: Double, seed: UInt64) {
        var state = seed
        func uniform() -> Double {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Double(state >> 11) / Double(1 << 53)
        }
        let rate = 48000 * (1 + ppm * 1e-6)
        var t = 5.0
        while t < 5.0 + seconds {
            let wake = t + uniform() * 0.002
            let hardware = (wake * 1000).rounded(.down) / 1000 * rate  // 1 ms granularity
            estimator.add(nanoseconds: Int64(wake * 1e9), position: hardware)
            t += 0.010
        }
    }

    @Test("a clock's rate is measured within 2 ppm after 30 s, from -200 to +200 ppm", arguments: [-200.0, -57.0, 0.0, 31.0, 200.0])
    func clockRate(ppm: Double) throws {
        let estimator = ClockRateEstimator(nominalRate: 48000)
        observe(estimator, ppm: ppm, seconds: 30, seed: UInt64(ppm + 1000))
        let estimate = estimator.ppm()
        let measured = try #require(estimate)
        #expect(abs(measured - ppm) < 2, "measured \(measured) ppm for \(ppm) ppm")
    }

    @Test("drift between capture and playback is their rates' difference", arguments: [(-150.0, 50.0), (120.0, -80.0), (10.0, 10.0)])
    func drift(capturePPM: Double, playbackPPM: Double) throws {
        let drift = ClockDriftEstimator(nominalRate: 48000)
        observe(drift.capture, ppm: capturePPM, seconds: 30, seed: 1)
        observe(drift.playback, ppm: playbackPPM, seconds: 30, seed: 2)
        let estimate = drift.driftPPM()
        let measured = try #require(estimate)
        let truth = ((1 + capturePPM * 1e-6) / (1 + playbackPPM * 1e-6) - 1) * 1e6
        #expect(abs(measured - truth) < 2, "measured \(measured) ppm, truth \(truth) ppm")
    }

    @Test("the rate estimate allocates nothing")
    func estimatorAllocatesNothing() {
        let estimator = ClockRateEstimator(nominalRate: 48000)
        for i in 0..<3000 { estimator.add(nanoseconds: Int64(i) * 10_000_000, position: Double(i) * 480.01) }
        _ = estimator.rate()  // warm-up: first-use runtime caches
        #expect(allocations { _ = estimator.rate() } == 0)
    }

    @Test("an xrun's jump in the frame count does not tilt the estimate")
    func outliers() throws {
        let estimator = ClockRateEstimator(nominalRate: 48000)
        for i in 0..<3000 {
            let t = Double(i) * 0.01
            var position = t * 48000 * (1 + 40e-6)
            if i % 500 == 250 { position += 480 }  // a stray point a period off
            estimator.add(nanoseconds: Int64(t * 1e9), position: position)
        }
        let estimate = estimator.ppm()
        let measured = try #require(estimate)
        #expect(abs(measured - 40) < 1, "measured \(measured)")
    }

    /// The input signal: a logarithmic sine sweep, 50 Hz to 18 kHz, at 48 kHz.
    func sweep(at position: Double, duration: Double = 4) -> Double {
        let f0 = 50.0, f1 = 18000.0, rate = 48000.0
        let t = position / rate, k = log(f1 / f0)
        return 0.5 * sin(2 * Double.pi * f0 * duration / k * (exp(t / duration * k) - 1))
    }

    @Test("resampling a sine sweep at 100 ppm keeps an SNR of at least 90 dB", arguments: [100.0, -100.0])
    func resamplerSNR(ppm: Double) {
        let step = 1 + ppm * 1e-6
        var resampler = AdaptiveResampler(step: step)
        let count = 4 * 48000
        let input = (0..<count).map { Float(sweep(at: Double($0))) }
        var output = [Float]()
        var chunk = [Float](repeating: 0, count: 480)
        var offset = 0
        while offset < count {
            let end = min(offset + 480, count)
            input.withUnsafeBufferPointer { i in _ = resampler.push(UnsafeBufferPointer(rebasing: i[offset..<end])) }
            offset = end
            let n = chunk.withUnsafeMutableBufferPointer { resampler.pull(into: $0) }
            output += chunk[..<n]
        }
        var signal = 0.0, noise = 0.0
        for j in 2000..<(output.count - 2000) {
            let expected = sweep(at: Double(j) * step)
            signal += expected * expected
            noise += (Double(output[j]) - expected) * (Double(output[j]) - expected)
        }
        let snr = 10 * log10(signal / noise)
        #expect(snr >= 90, "SNR \(snr) dB")
        #expect(output.count > count - 600)
    }

    @Test("changing the ratio mid-stream makes no click")
    func ratioChange() {
        var resampler = AdaptiveResampler(step: 1 - 150e-6)
        let input = (0..<48000).map { Float(sin(Double($0) * 2 * Double.pi * 440 / 48000)) }
        var output = [Float](repeating: 0, count: 48000)
        var produced = 0
        for block in 0..<100 {
            if block == 50 { resampler.step = 1 + 150e-6 }
            input.withUnsafeBufferPointer { i in _ = resampler.push(UnsafeBufferPointer(rebasing: i[block * 480..<(block + 1) * 480])) }
            produced += output.withUnsafeMutableBufferPointer { resampler.pull(into: UnsafeMutableBufferPointer(rebasing: $0[produced...])) }
        }
        // A 440 Hz sine changes by at most 2π·440/48000 ≈ 0.058 per sample; a click would jump more.
        var largest: Float = 0
        for j in 100..<(produced - 1) { largest = max(largest, abs(output[j + 1] - output[j])) }
        #expect(largest < 0.06)
    }

    @Test("the resampler's push and pull allocate nothing")
    func resamplerAllocatesNothing() {
        var resampler = AdaptiveResampler(step: 1.0001)
        let input = [Float](repeating: 0.25, count: 480)
        var output = [Float](repeating: 0, count: 480)
        // One warm-up round: the Swift runtime fills its type caches on first use, once per process.
        let n = input.withUnsafeBufferPointer { i in
            output.withUnsafeMutableBufferPointer { o in
                resampler.push(i); _ = resampler.pull(into: o)
                return allocations { for _ in 0..<2000 { resampler.push(i); _ = resampler.pull(into: o) } }
            }
        }
        #expect(n == 0)
    }
}
