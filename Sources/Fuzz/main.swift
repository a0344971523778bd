// classbox-fuzz: bounded-time, deterministic mutation fuzzing of the media parsers (RTP, RTCP, SRTP and
// SRTCP unprotect, H.264 and JPEG depacketizers, the Annex-B and JPEG frame parsers), seeded with valid
// packets. A development tool run by scripts/fuzz; never part of the firmware. A trap is the failure
// this looks for: the process dies with a signal and the script exits non-zero, naming seed and target.
import Foundation
import Media

struct Random {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }
    mutating func next() -> UInt64 {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return state
    }
    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }
    mutating func bytes(_ n: Int, avoiding avoided: UInt8? = nil) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: n)
        for i in 0..<n {
            var b = byte()
            while b == avoided { b = byte() }
            out[i] = b
        }
        return out
    }

    /// 1-4 mutations: bit flips, interesting values, truncation, extension, chunk copies, deletions,
    /// and 16-bit length fields set to extremes.
    mutating func mutate(_ input: [UInt8]) -> [UInt8] {
        var b = input
        let rounds = below(4) + 1
        for _ in 0..<rounds {
            let kind = below(8)
            switch kind {
            case 0 where !b.isEmpty:
                let i = below(b.count), bit = below(8)
                b[i] ^= UInt8(1) << UInt8(bit)
            case 1 where !b.isEmpty:
                let i = below(b.count), v = [0, 0xFF, 0x7F, 0x80, 1, 24, 28, 0xC0, 0xD9, 0xDA][below(10)]
                b[i] = UInt8(v)
            case 2 where !b.isEmpty:
                b.removeLast(below(b.count) + 1)
            case 3:
                let n = below(32) + 1
                b += bytes(n)
            case 4 where b.count > 4:
                let from = below(b.count - 2)
                let n = below(min(128, b.count - from)) + 1
                let to = below(b.count)
                b.insert(contentsOf: b[from..<from + n], at: to)
            case 5 where b.count > 2:
                b.remove(at: below(b.count))
            case 6 where b.count > 2:
                let i = below(b.count - 1), v = [0, 0xFFFF, 0x8000, 1][below(4)]
                b[i] = UInt8(v >> 8); b[i + 1] = UInt8(v & 0xFF)
            case 7 where !b.isEmpty:
                let i = below(b.count)
                b[i] = byte()
            default: break
            }
        }
        return b
    }
}

func rtp(_ payload: [UInt8], sequence: UInt16, timestamp: UInt32, marker: Bool, payloadType: UInt8) -> [UInt8] {
    [0x80, (marker ? 0x80 : 0) | payloadType, UInt8(sequence >> 8), UInt8(sequence & 0xFF),
     UInt8(timestamp >> 24), UInt8((timestamp >> 16) & 0xFF), UInt8((timestamp >> 8) & 0xFF), UInt8(timestamp & 0xFF),
     0x0B, 0xAD, 0xCA, 0xFE] + payload
}

func packets<P: VideoPacketizer>(_ packetizer: inout P, _ frame: [UInt8], sequence: inout UInt16, timestamp: UInt32, payloadType: UInt8) -> [[UInt8]] {
    var out: [[UInt8]] = []
    frame.withUnsafeBytes { f in
        do {
            try packetizer.packetize(f) { payload, last in
                out.append(rtp(Array(payload), sequence: sequence, timestamp: timestamp, marker: last, payloadType: payloadType))
                sequence &+= 1
            }
        } catch {
            FileHandle.standardError.write("classbox-fuzz: a seed frame was refused (\(error)); the seeds are wrong\n".data(using: .utf8)!)
            exit(3)
        }
    }
    return out
}

func accessUnit(_ rng: inout Random, slice: Int, idr: Bool) -> [UInt8] {
    var au: [UInt8] = []
    if idr {
        au += [0, 0, 0, 1, 0x67] + rng.bytes(9, avoiding: 0) + [0, 0, 0, 1, 0x68] + rng.bytes(3, avoiding: 0)
        au += [0, 0, 1, 0x06] + rng.bytes(12, avoiding: 0)
    }
    au += [0, 0, 0, 1, idr ? 0x65 : 0x41] + rng.bytes(slice, avoiding: 0)
    return au
}

func jpeg(_ rng: inout Random, width: Int, height: Int, sampling: UInt8, restart: Int, scan: Int) -> [UInt8] {
    var j: [UInt8] = [0xFF, 0xD8, 0xFF, 0xFE, 0, 6] + Array("fuzz".utf8)
    j += [0xFF, 0xDB, 0, 132, 0x00] + rng.bytes(64, avoiding: 0) + [0x01] + rng.bytes(64, avoiding: 0)
    j += [0xFF, 0xC0, 0, 17, 8, UInt8(height >> 8), UInt8(height & 0xFF), UInt8(width >> 8), UInt8(width & 0xFF), 3,
          1, sampling, 0, 2, 0x11, 1, 3, 0x11, 1]
    if restart > 0 { j += [0xFF, 0xDD, 0, 4, 0, UInt8(restart)] }
    j += [0xFF, 0xDA, 0, 12, 3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0] + rng.bytes(scan, avoiding: 0xFF) + [0xFF, 0xD9]
    return j
}

/// One fuzz target: a seed corpus and what to do with one (mutated) input; returns true when refused.
struct Target {
    let name: String
    let seeds: [[UInt8]]
    let run: @MainActor ([UInt8]) -> Bool
    var counters: @MainActor () -> String = { "" }
}

// Arguments: [seconds] [--seed N] [--only NAME]
var seconds = 60.0
var seed: UInt64 = 20261123
var only: String?
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let a = arguments.next() {
    switch a {
    case "--seed": seed = UInt64(arguments.next() ?? "") ?? seed
    case "--only": only = arguments.next()
    case "-h", "--help":
        print("usage: classbox-fuzz [seconds (default 60, shared by all targets)] [--seed N] [--only rtp|rtcp|srtp|srtcp|h264|jpeg|annexb|jpegfile]")
        exit(0)
    default:
        guard let s = Double(a), s > 0 else { print("classbox-fuzz: unknown argument '\(a)'; see --help"); exit(2) }
        seconds = s
    }
}

var rng = Random(seed: seed)

// Valid seeds: H.264 and JPEG frames through our own packetizers, SRTP/SRTCP through our own protect.
var h264Frames: [[UInt8]] = []
var h264Packets: [[UInt8]] = []
var sequence: UInt16 = 65500
do {
    var packetizer = try H264Packetizer(maxPayload: 300)
    for i in 0..<12 {
        let au = accessUnit(&rng, slice: [1, 40, 297, 298, 299, 900, 2500][i % 7], idr: i % 4 == 0)
        h264Frames.append(au)
        h264Packets += packets(&packetizer, au, sequence: &sequence, timestamp: UInt32(i * 3000), payloadType: 96)
    }
} catch { exit(3) }
var jpegFrames: [[UInt8]] = []
var jpegPackets: [[UInt8]] = []
do {
    var packetizer = try JPEGPacketizer(maxPayload: 400)
    for i in 0..<6 {
        let frame = jpeg(&rng, width: 64 + 16 * i, height: 48, sampling: i % 2 == 0 ? 0x22 : 0x21, restart: i % 3, scan: 100 + 500 * i)
        jpegFrames.append(frame)
        jpegPackets += packets(&packetizer, frame, sequence: &sequence, timestamp: UInt32(i * 3000), payloadType: 26)
    }
} catch { exit(3) }
let rtcpSeeds: [[UInt8]] = {
    var out: [[UInt8]] = []
    let block = RTCPReportBlock(ssrc: 7, fractionLost: 12, cumulativeLost: -3, extendedHighestSequence: 70000, jitter: 40,
                                lastSR: 0x1234_5678, delaySinceLastSR: 655)
    for report in [RTCPReport(ssrc: 1, sender: .init(ntp: 0xE000_0000_8000_0000, rtpTimestamp: 9, packetCount: 3, octetCount: 300), blocks: [block]),
                   RTCPReport(ssrc: 2, sender: nil, blocks: [block, block])] {
        var b = [UInt8](repeating: 0, count: report.length)
        _ = b.withUnsafeMutableBytes { report.write(into: $0) }
        out.append(b)
    }
    out.append(out[0] + out[1] + [0x81, 203, 0, 1, 0, 0, 0, 1])  // SR + RR + BYE compound
    return out
}()
let key = (0..<30).map { UInt8($0 * 7 + 3) }
func srtpContext(_ profile: SRTPProfile) -> SRTPContext {
    // Fixed-length keys of the right size never fail; exit names the bug if they do.
    guard let c = try? SRTPContext(profile: profile, masterKey: Array(key[0..<16]), masterSalt: Array(key[16..<16 + profile.saltLength])) else { exit(3) }
    return c
}
func protect(_ packets: [[UInt8]], rtcp: Bool) -> [[UInt8]] {
    var out: [[UInt8]] = []
    for profile in SRTPProfile.allCases {
        let context = srtpContext(profile)
        for p in packets {
            var b = p + [UInt8](repeating: 0, count: 32)
            let n = b.withUnsafeMutableBytes { (try? (rtcp ? context.protectRTCP($0, length: p.count) : context.protect($0, length: p.count))) ?? 0 }
            if n > 0 { out.append(Array(b[0..<n])) }
        }
    }
    return out
}
let srtpSeeds = protect(Array(h264Packets.prefix(20)), rtcp: false)
let srtcpSeeds = protect(rtcpSeeds, rtcp: true)

let h264 = H264Depacketizer(maxAccessUnitBytes: 256 << 10)
let jpegReceiver = JPEGDepacketizer(maxFrameBytes: 256 << 10)
var delivered = 0
var h264Packetizer = try H264Packetizer(maxPayload: 200)
var jpegPacketizer = try JPEGPacketizer(maxPayload: 300)
let unprotectors = SRTPProfile.allCases.map { srtpContext($0) }
var scratch = [UInt8](repeating: 0, count: 4096)

@MainActor func withScratch(_ input: [UInt8], _ body: (UnsafeMutableRawBufferPointer, Int) -> Bool) -> Bool {
    let n = min(input.count, scratch.count)
    for i in 0..<n { scratch[i] = input[i] }
    return scratch.withUnsafeMutableBytes { body($0, n) }
}

var targets: [Target] = [
    Target(name: "rtp", seeds: h264Packets + jpegPackets) { input in
        input.withUnsafeBytes { (try? RTPHeader.parse($0)) == nil }
    },
    Target(name: "rtcp", seeds: rtcpSeeds) { input in
        input.withUnsafeBytes { (try? RTCPReport.parseCompound($0)) == nil }
    },
    Target(name: "srtp", seeds: srtpSeeds) { input in
        withScratch(input) { buffer, n in unprotectors.allSatisfy { (try? $0.unprotect(buffer, length: n)) == nil } }
    },
    Target(name: "srtcp", seeds: srtcpSeeds) { input in
        withScratch(input) { buffer, n in unprotectors.allSatisfy { (try? $0.unprotectRTCP(buffer, length: n)) == nil } }
    },
    Target(name: "h264", seeds: h264Packets, run: { input in
        let before = h264.counters.refused + h264.counters.droppedFrames
        input.withUnsafeBytes { h264.push(packet: $0) { delivered &+= $0.bytes.count > 4 ? 1 : 0 } }
        return h264.counters.refused + h264.counters.droppedFrames > before
    }, counters: { "\(h264.counters)" }),
    Target(name: "jpeg", seeds: jpegPackets, run: { input in
        let before = jpegReceiver.counters.refused + jpegReceiver.counters.droppedFrames
        input.withUnsafeBytes { jpegReceiver.push(packet: $0) { delivered &+= $0.bytes.count > 0 ? 1 : 0 } }
        return jpegReceiver.counters.refused + jpegReceiver.counters.droppedFrames > before
    }, counters: { "\(jpegReceiver.counters)" }),
    Target(name: "annexb", seeds: h264Frames) { input in
        input.withUnsafeBytes { f in (try? h264Packetizer.packetize(f) { _, _ in }) == nil }
    },
    Target(name: "jpegfile", seeds: jpegFrames) { input in
        input.withUnsafeBytes { f in (try? jpegPacketizer.packetize(f) { _, _ in }) == nil }
    },
]
if let only {
    targets = targets.filter { $0.name == only }
    guard !targets.isEmpty else { print("classbox-fuzz: no target '\(only)'; see --help"); exit(2) }
}

print("classbox-fuzz: seed \(seed), \(Int(seconds)) s over \(targets.count) targets (rerun with --seed \(seed) --only NAME to reproduce)")
let perTarget = seconds / Double(targets.count)
var total = 0
for target in targets {
    var executions = 0, refused = 0
    let deadline = Date().addingTimeInterval(perTarget)
    while true {
        if executions & 255 == 0 && Date() >= deadline { break }
        // One in eight inputs is a valid seed, so stateful depacketizers also see whole frames.
        let pick = rng.below(target.seeds.count)
        let input = executions & 7 == 0 ? target.seeds[pick] : rng.mutate(target.seeds[pick])
        if target.run(input) { refused += 1 }
        executions += 1
    }
    total += executions
    let extra = target.counters()
    print("  \(target.name): \(executions) executions, \(refused) refused\(extra.isEmpty ? "" : ", \(extra)")")
}
print("classbox-fuzz: \(total) executions, no crash; frames delivered by the depacketizers: \(delivered)")
