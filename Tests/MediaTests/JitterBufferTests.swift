import Foundation
import Testing
@testable import Media

/// Opus packets of a speech-like signal, 20 ms each, with FEC on.
func opusStream(count: Int, loss: Int = 10) throws -> [[UInt8]] {
    var settings = OpusSettings()
    settings.bitrate = 24000
    let encoder = try OpusEncoder(settings: settings)
    encoder.setExpectedLoss(percent: loss)
    var packets: [[UInt8]] = []
    var buffer = [UInt8](repeating: 0, count: 1500)
    var phase = 0.0
    for f in 0..<count {
        let pcm = (0..<960).map { i -> Float in
            let t = Double(f * 960 + i) / 48000
            phase += 2 * Double.pi * (170 + 30 * sin(2 * Double.pi * 1.1 * t)) / 48000
            let voiced: Double = sin(phase) + 0.5 * sin(2 * phase)
            return Float(0.2 * max(0.1, sin(2 * Double.pi * 3 * t)) * voiced)
        }
        let n = pcm.withUnsafeBufferPointer { p in buffer.withUnsafeMutableBytes { encoder.encode(p, into: $0) } }
        packets.append(Array(buffer[0..<n]))
    }
    return packets
}

/// Plays `packets` through a jitter buffer: packet i is sent at i × 20 ms and arrives `delay(i)` seconds
/// later (nil: lost); the buffer is pulled every 20 ms of local time. Returns the frame kinds.
func play(_ packets: [[UInt8]], buffer: JitterBuffer, ticks: Int, sequenceOffset: Int = 0, timestampOf: (Int) -> Int = { $0 * 960 },
          delay: (Int) -> Double?) -> [JitterFrame] {
    var arrivals = packets.indices.compactMap { i in delay(i).map { (i, Double(i) * 0.02 + $0) } }
    arrivals.sort { $0.1 < $1.1 }
    var next = 0
    var kinds: [JitterFrame] = []
    var pcm = [Float](repeating: 0, count: 960)
    for tick in 0..<ticks {
        let now = Double(tick) * 0.02
        while next < arrivals.count && arrivals[next].1 <= now {
            let (i, at) = arrivals[next]
            packets[i].withUnsafeBytes { _ = buffer.insert(payload: $0, sequence: UInt16(truncatingIfNeeded: i + sequenceOffset),
                                                            timestamp: UInt32(truncatingIfNeeded: timestampOf(i)), arrival: at) }
            next += 1
        }
        kinds.append(pcm.withUnsafeMutableBufferPointer { buffer.pull(into: $0) })
    }
    return kinds
}

@Suite("Adaptive jitter buffer")
struct JitterBufferTests {
    @Test("a steady stream plays every packet, across sequence and timestamp wrap-around")
    func steady() throws {
        let packets = try opusStream(count: 200)
        let buffer = JitterBuffer(decoder: try OpusDecoder(), frameSamples: 960)
        let kinds = play(packets, buffer: buffer, ticks: 220, sequenceOffset: 65500, timestampOf: { Int(UInt32.max) - 50_000 + $0 * 960 }) { _ in 0.030 }
        #expect(kinds.filter { $0 == .decoded }.count == 200)
        #expect(buffer.statistics.lost == 0 && buffer.statistics.late == 0 && buffer.statistics.resets == 0)
    }

    @Test("reordered and duplicated packets play in order, each once")
    func reorder() throws {
        let packets = try opusStream(count: 100)
        let buffer = JitterBuffer(decoder: try OpusDecoder(), frameSamples: 960, minDelayMs: 60)
        // Every pair swapped: odd packets arrive 25 ms early relative to their even neighbour.
        let kinds = play(packets + [packets[10]], buffer: buffer, ticks: 120) { i in i == 100 ? 0.5 : (i % 2 == 1 ? 0.005 : 0.030) }
        #expect(kinds.filter { $0 == .decoded }.count == 100)
        #expect(buffer.statistics.lost == 0)
    }

    @Test("a single lost packet is recovered from FEC; a burst is concealed")
    func loss() throws {
        let packets = try opusStream(count: 100, loss: 20)
        let buffer = JitterBuffer(decoder: try OpusDecoder(), frameSamples: 960)
        let lost: Set<Int> = [30, 60, 61, 62]
        let kinds = play(packets, buffer: buffer, ticks: 110) { lost.contains($0) ? nil : 0.030 }
        #expect(buffer.statistics.lost == 4)
        #expect(buffer.statistics.recovered >= 2, "30 and 62 have a next packet carrying their FEC")
        #expect(kinds.filter { $0 == .decoded }.count == 96)
    }

    @Test("packets that arrive after their turn are dropped as late")
    func late() throws {
        let packets = try opusStream(count: 60)
        let buffer = JitterBuffer(decoder: try OpusDecoder(), frameSamples: 960, minDelayMs: 20, maxDelayMs: 40)
        _ = play(packets, buffer: buffer, ticks: 80) { $0 == 40 ? 0.4 : 0.02 }
        #expect(buffer.statistics.late == 1 && buffer.statistics.lost == 1)
    }

    @Test("rising jitter grows the target and the depth; falling jitter shrinks them again")
    func adapts() throws {
        let packets = try opusStream(count: 1000)
        let buffer = JitterBuffer(decoder: try OpusDecoder(), frameSamples: 960, minDelayMs: 20, maxDelayMs: 300)
        var state: UInt64 = 7
        func jitter(_ spread: Double) -> Double {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return 0.02 + spread * Double(state >> 11) / Double(1 << 53)
        }
        var targets: [Double] = []
        _ = play(Array(packets[0..<500]), buffer: buffer, ticks: 520) { _ in jitter(0.1) }
        targets.append(buffer.statistics.targetMs)
        let calm = JitterBuffer(decoder: try OpusDecoder(), frameSamples: 960, minDelayMs: 20, maxDelayMs: 300)
        _ = play(Array(packets[0..<500]), buffer: calm, ticks: 520) { _ in jitter(0.005) }
        targets.append(calm.statistics.targetMs)
        #expect(targets[0] >= 90 && targets[0] <= 140, "100 ms of jitter: target \(targets[0]) ms")
        #expect(targets[1] <= 45, "5 ms of jitter: target \(targets[1]) ms")
        #expect(buffer.statistics.late <= 25, "the buffer grew instead of dropping (late \(buffer.statistics.late))")
    }

    @Test("after a burst deepened it, the buffer comes back to its target and settles there, not frames above")
    func settlesAtTarget() throws {
        let packets = try opusStream(count: 300)
        let buffer = JitterBuffer(decoder: try OpusDecoder(), frameSamples: 960, minDelayMs: 20, maxDelayMs: 300)
        // The first 10 packets arrive together at 200 ms (a stalled link let go), then every packet 20 ms
        // after it was sent: the buffer starts 10 frames deep on a clean line.
        // (Read while the stream still flows: 290 ticks of 300 packets.)
        _ = play(packets, buffer: buffer, ticks: 290) { i in i < 10 ? 0.2 - Double(i) * 0.02 : 0.02 }
        let stats = buffer.statistics
        #expect(stats.targetMs == 40, "two 20 ms frames: the one playing and one for the next packet's FEC")
        #expect(stats.depthMs == stats.targetMs, "depth \(stats.depthMs) ms, target \(stats.targetMs) ms")
        #expect(stats.discarded >= 5 && stats.late == 0 && stats.lost == 0 && stats.stretched == 0, "\(stats)")
    }

    @Test("packets held up together are played late rather than dropped, and the buffer comes back down")
    func heldUpNotDropped() throws {
        let packets = try opusStream(count: 200)
        let buffer = JitterBuffer(decoder: try OpusDecoder(), frameSamples: 960, minDelayMs: 20, maxDelayMs: 300)
        // Packets 100-102 are held 60 ms by the network (one hiccup), the rest take 20 ms: at their turn
        // nothing newer has come, so the buffer stalls (conceals) and then gets them.
        _ = play(packets, buffer: buffer, ticks: 190) { i in (100...102).contains(i) ? 0.08 : 0.02 }
        let stats = buffer.statistics
        #expect(stats.late == 0 && stats.lost == 0, "every held-up packet was played: \(stats)")
        #expect(stats.stretched >= 1 && stats.discarded >= 1, "the stall became depth, then went again: \(stats)")
        #expect(stats.depthMs == stats.targetMs, "back at its target: \(stats)")
    }

    @Test("a DTX pause plays silence without counting loss")
    func dtx() throws {
        let packets = try opusStream(count: 60)
        let buffer = JitterBuffer(decoder: try OpusDecoder(), frameSamples: 960)
        // Packets 30... carry timestamps one second later: the sender paused 1 s with DTX.
        let kinds = play(packets, buffer: buffer, ticks: 120, timestampOf: { $0 < 30 ? $0 * 960 : $0 * 960 + 48000 }) { i in
            i < 30 ? 0.03 : 1.03
        }
        #expect(buffer.statistics.lost == 0)
        #expect(kinds.filter { $0 == .silence }.count >= 50)
        #expect(kinds.filter { $0 == .decoded }.count == 60)
    }

    @Test("a sender restart (sequence jump) resets the buffer and keeps playing")
    func restart() throws {
        let packets = try opusStream(count: 80)
        let buffer = JitterBuffer(decoder: try OpusDecoder(), frameSamples: 960)
        let kinds = play(packets, buffer: buffer, ticks: 100, sequenceOffset: 0, timestampOf: { $0 * 960 }) { _ in 0.03 }
        #expect(kinds.filter { $0 == .decoded }.count == 80)
        let restarted = JitterBuffer(decoder: try OpusDecoder(), frameSamples: 960)
        var pcm = [Float](repeating: 0, count: 960)
        for i in 0..<40 {
            packets[i].withUnsafeBytes { _ = restarted.insert(payload: $0, sequence: UInt16(i), timestamp: UInt32(i * 960), arrival: Double(i) * 0.02) }
            _ = pcm.withUnsafeMutableBufferPointer { restarted.pull(into: $0) }
        }
        for i in 40..<80 {
            packets[i].withUnsafeBytes { _ = restarted.insert(payload: $0, sequence: UInt16(30000 + i), timestamp: UInt32(9_000_000 + i * 960), arrival: Double(i) * 0.02) }
            _ = pcm.withUnsafeMutableBufferPointer { restarted.pull(into: $0) }
        }
        #expect(restarted.statistics.resets == 1)
        #expect(restarted.statistics.received == 80)
    }

    @Test("insert and pull allocate nothing")
    func noAllocation() throws {
        let packets = try opusStream(count: 120)
        let buffer = JitterBuffer(decoder: try OpusDecoder(), frameSamples: 960)
        var pcm = [Float](repeating: 0, count: 960)
        for i in 0..<20 { packets[i].withUnsafeBytes { _ = buffer.insert(payload: $0, sequence: UInt16(i), timestamp: UInt32(i * 960), arrival: Double(i) * 0.02) } }
        let count = allocations {
            for i in 20..<120 {
                packets[i].withUnsafeBytes { _ = buffer.insert(payload: $0, sequence: UInt16(i), timestamp: UInt32(i * 960), arrival: Double(i) * 0.02) }
                _ = pcm.withUnsafeMutableBufferPointer { buffer.pull(into: $0) }
            }
        }
        #expect(count == 0)
    }
}
