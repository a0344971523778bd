import Testing
@testable import Media

@Suite("H.264 over RTP (RFC 6184)")
struct H264RTPTests {
    @Test("3-byte and 4-byte start codes give the same NAL units, trailing zeros dropped")
    func startCodes() throws {
        let four: [UInt8] = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 9, 9]
        let three: [UInt8] = [0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 1, 0x65, 9, 9, 0, 0]
        let expected: [[UInt8]] = [[0x67, 1, 2], [0x68, 3], [0x65, 9, 9]]
        #expect(try AnnexB.nalUnits(in: four) == expected)
        #expect(try AnnexB.nalUnits(in: three) == expected)
    }

    @Test("a frame without a start code, an empty frame and bare start codes are refused by name")
    func refusals() throws {
        #expect(throws: VideoPayloadError.missingStartCode) { try AnnexB.nalUnits(in: [0x65, 1, 2, 3]) }
        #expect(throws: VideoPayloadError.emptyFrame) { try AnnexB.nalUnits(in: []) }
        #expect(throws: VideoPayloadError.noNALUnits) { try AnnexB.nalUnits(in: [0, 0, 0, 1, 0, 0, 1]) }
        #expect(throws: VideoPayloadError.payloadSizeTooSmall) { try H264Packetizer(maxPayload: 8) }
        var p = try H264Packetizer()
        #expect(throws: VideoPayloadError.missingStartCode) { try payloads(&p, [1, 2, 3, 0, 0, 1, 0x65]) }
    }

    @Test("SPS, PPS and a small IDR slice travel in one STAP-A with the marker")
    func stapA() throws {
        var p = try H264Packetizer(maxPayload: 1200)
        let au: [UInt8] = [0, 0, 0, 1, 0x67, 0x42, 0xC0, 0x1E, 0, 0, 0, 1, 0x68, 0xCE, 0x3C, 0x80, 0, 0, 1, 0x25, 0xB8, 0x10]
        let out = try payloads(&p, au)
        #expect(out.count == 1)
        // STAP-A header: F 0, NRI the largest (3), type 24; then 16-bit sizes before each NAL unit.
        #expect(out[0].bytes == [0x78, 0, 4, 0x67, 0x42, 0xC0, 0x1E, 0, 4, 0x68, 0xCE, 0x3C, 0x80, 0, 3, 0x25, 0xB8, 0x10])
        #expect(out[0].last)
    }

    @Test("a large slice is cut into FU-A fragments: start and end bits, header rebuilt, marker on the last")
    func fuA() throws {
        var rng = TestRandom(seed: 7)
        var p = try H264Packetizer(maxPayload: 1200)
        let au = syntheticAccessUnit(&rng, sliceBytes: 3000, idr: true)
        let out = try payloads(&p, au)
        #expect(out.count == 4, "STAP-A(SPS, PPS), then 2999 bytes in 1198-byte fragments")
        #expect(out[0].bytes[0] & 0x1F == 24 && !out[0].last)
        for (i, fu) in out.dropFirst().enumerated() {
            #expect(fu.bytes[0] == 0x60 | 28, "indicator keeps F and NRI of 0x65")
            #expect(fu.bytes[1] & 0x1F == 5)
            #expect((fu.bytes[1] & 0x80 != 0) == (i == 0), "start bit on the first fragment only")
            #expect((fu.bytes[1] & 0x40 != 0) == (i == 2), "end bit on the last fragment only")
            #expect(fu.last == (i == 2))
            #expect(fu.bytes.count <= 1200)
        }
        #expect(out[1].bytes.count == 1200 && out[3].bytes.count == 2 + 2999 - 2 * 1198)
    }

    @Test("a NAL unit of exactly the payload size goes alone; one byte more is fragmented", arguments: [false, true])
    func mtuBoundary(oneMore: Bool) throws {
        var rng = TestRandom(seed: 3)
        var p = try H264Packetizer(maxPayload: 500)
        let au = [0, 0, 0, 1, 0x41] + rng.bytes(499 + (oneMore ? 1 : 0), avoiding: 0)
        let out = try payloads(&p, au)
        if oneMore {
            #expect(out.count == 2 && out[0].bytes[0] & 0x1F == 28 && out[1].bytes.count == 2 + 500 - 498)
        } else {
            #expect(out.count == 1 && out[0].bytes == Array(au[4...]) && out[0].last)
        }
    }

    @Test("access units of every shape come back byte for byte, across the sequence wrap")
    func roundTrip() throws {
        var rng = TestRandom(seed: 42)
        var p = try H264Packetizer(maxPayload: 300)
        let d = H264Depacketizer()
        var sequence: UInt16 = 65500
        var sent: [[UInt8]] = []
        var packets: [[UInt8]] = []
        for i in 0..<60 {
            let size = [1, 2, 150, 296, 297, 298, 299, 300, 301, 302, 5000, 20000][i % 12]
            let au = syntheticAccessUnit(&rng, sliceBytes: size, idr: i % 10 == 0, extraNALs: i % 3)
            sent.append(try normalisedAnnexB(au))
            for payload in try payloads(&p, au) {
                packets.append(rtpPacket(payload.bytes, sequence: sequence, timestamp: UInt32(i * 3000), marker: payload.last))
                sequence &+= 1
            }
        }
        let frames = depacketize(d, packets)
        #expect(frames.count == 60 && d.counters.frames == 60)
        #expect(frames.map(\.bytes) == sent)
        #expect(frames.map(\.key) == (0..<60).map { $0 % 10 == 0 })
        #expect(d.counters.refused == 0 && d.counters.gaps == 0 && !d.keyframeRequested)
    }

    /// Three access units (the middle one fragmented) as RTP packets.
    func threeFrames(_ rng: inout TestRandom) throws -> (packets: [[UInt8]], frames: [[UInt8]], middle: Range<Int>) {
        var p = try H264Packetizer(maxPayload: 200)
        var packets: [[UInt8]] = [], frames: [[UInt8]] = []
        var middle = 0..<0
        for i in 0..<3 {
            let au = syntheticAccessUnit(&rng, sliceBytes: i == 1 ? 1000 : 100, idr: i == 0)
            frames.append(try normalisedAnnexB(au))
            let start = packets.count
            for payload in try payloads(&p, au) {
                packets.append(rtpPacket(payload.bytes, sequence: UInt16(packets.count), timestamp: UInt32(i * 3000), marker: payload.last))
            }
            if i == 1 { middle = start..<packets.count }
        }
        return (packets, frames, middle)
    }

    @Test("a lost fragment drops its access unit, counts it and asks for a keyframe; the next one arrives")
    func lostFragment() throws {
        var rng = TestRandom(seed: 9)
        var (packets, frames, middle) = try threeFrames(&rng)
        packets.remove(at: middle.lowerBound + 2)
        let d = H264Depacketizer()
        let got = depacketize(d, packets)
        #expect(got.map(\.bytes) == [frames[0], frames[2]])
        #expect(d.counters.droppedFrames == 1 && d.counters.gaps == 1)
        #expect(d.takeKeyframeRequest() && !d.takeKeyframeRequest())
    }

    @Test("a fragment start without its end (last fragment and marker lost) drops only that access unit")
    func startWithoutEnd() throws {
        var rng = TestRandom(seed: 10)
        var (packets, frames, middle) = try threeFrames(&rng)
        packets.remove(at: middle.upperBound - 1)
        let d = H264Depacketizer()
        #expect(depacketize(d, packets).map(\.bytes) == [frames[0], frames[2]])
        #expect(d.counters.droppedFrames == 1)
    }

    @Test("an end fragment without its start, with the sequence intact, is dropped")
    func endWithoutStart() throws {
        var rng = TestRandom(seed: 11)
        var (packets, frames, middle) = try threeFrames(&rng)
        packets[middle.lowerBound][13] &= 0x7F  // clear the start bit: the fragment has no beginning
        let d = H264Depacketizer()
        #expect(depacketize(d, packets).map(\.bytes) == [frames[0], frames[2]])
        #expect(d.counters.droppedFrames == 1 && d.keyframeRequested)
    }

    @Test("without the marker, an access unit ends when the timestamp changes")
    func missingMarker() throws {
        let d = H264Depacketizer()
        let packets = [rtpPacket([0x65, 1, 2], sequence: 1, timestamp: 0, marker: false),
                       rtpPacket([0x41, 3], sequence: 2, timestamp: 3000, marker: true)]
        let got = depacketize(d, packets)
        #expect(got.map(\.bytes) == [[0, 0, 0, 1, 0x65, 1, 2], [0, 0, 0, 1, 0x41, 3]])
        #expect(got.map(\.timestamp) == [0, 3000] && got[0].key && !got[1].key)
    }

    @Test("malformed payloads are counted and their access units dropped", arguments: [
        [UInt8](),                      // empty payload
        [0x7C],                         // FU-A without its FU header
        [0x7C, 0x85],                   // FU-A with no data (truncated)
        [0x7C, 0xC5, 1],                // start and end bits together
        [0x7C, 0x80, 1],                // FU-A of NAL type 0
        [0x78, 0, 9, 0x67, 1],          // STAP-A size past the end
        [0x78, 0, 0, 0x67],             // STAP-A with a zero size
        [0x78, 0],                      // STAP-A cut in its size field
        [0x78, 0, 2, 0x7C, 0x85],       // an FU-A inside a STAP-A
    ])
    func malformed(payload: [UInt8]) {
        let d = H264Depacketizer()
        let got = depacketize(d, [rtpPacket(payload, sequence: 5, timestamp: 0, marker: true),
                                  rtpPacket([0x41, 1], sequence: 6, timestamp: 3000, marker: true)])
        #expect(d.counters.malformed == 1 && d.counters.droppedFrames == 1)
        #expect(got.map(\.bytes) == [[0, 0, 0, 1, 0x41, 1]], "the next access unit is unharmed")
    }

    @Test("interleaved-mode packets (STAP-B, MTAP, FU-B) and reserved types are counted as unsupported",
          arguments: [UInt8(25), 26, 27, 29, 30, 31, 0])
    func unsupported(type: UInt8) {
        let d = H264Depacketizer()
        _ = depacketize(d, [rtpPacket([0x60 | type, 0, 2, 3, 4], sequence: 1, timestamp: 0, marker: true)])
        #expect(d.counters.unsupported == 1 && d.counters.frames == 0 && d.counters.droppedFrames == 1)
    }

    @Test("an access unit past the size limit is dropped and counted, not grown without bound")
    func oversized() throws {
        var rng = TestRandom(seed: 12)
        var p = try H264Packetizer(maxPayload: 1000)
        let d = H264Depacketizer(maxAccessUnitBytes: 4000)
        var packets: [[UInt8]] = []
        for payload in try payloads(&p, syntheticAccessUnit(&rng, sliceBytes: 6000, idr: false)) {
            packets.append(rtpPacket(payload.bytes, sequence: UInt16(packets.count), timestamp: 0, marker: payload.last))
        }
        #expect(depacketize(d, packets).isEmpty)
        #expect(d.counters.oversized == 1 && d.counters.droppedFrames == 1)
    }

    @Test("not-RTP datagrams are counted")
    func notRTP() {
        let d = H264Depacketizer()
        _ = depacketize(d, [[1, 2, 3], [0x40] + [UInt8](repeating: 0, count: 20)])
        #expect(d.counters.notRTP == 2)
    }

    @Test("a few seconds of mutated packets never crash the depacketizer, and every refusal is counted")
    func fuzz() throws {
        var rng = TestRandom(seed: 2026)
        var seeds: [[UInt8]] = []
        var p = try H264Packetizer(maxPayload: 180)
        for i in 0..<8 {
            for payload in try payloads(&p, syntheticAccessUnit(&rng, sliceBytes: 50 + 300 * i, idr: i % 4 == 0, extraNALs: i % 2)) {
                seeds.append(rtpPacket(payload.bytes, sequence: UInt16(seeds.count), timestamp: UInt32(i * 3000), marker: payload.last))
            }
        }
        let d = H264Depacketizer(maxAccessUnitBytes: 64 << 10)
        var delivered = 0
        for i in 0..<10000 {
            let pick = seeds[rng.below(seeds.count)]
            let packet = i % 4 == 0 ? seeds[i / 4 % seeds.count] : rng.mutate(pick)
            packet.withUnsafeBytes { d.push(packet: $0) { frame in delivered += frame.bytes.count > 4 ? 1 : 0 } }
        }
        #expect(d.counters.refused > 0 && d.counters.droppedFrames > 0)
        #expect(delivered == d.counters.frames)
        // Annex-B splitting and packetizing of mutated access units: refused or packetized, never a trap.
        var refusals = 0
        for i in 0..<3000 {
            let valid = syntheticAccessUnit(&rng, sliceBytes: 10 + i % 700, idr: i % 2 == 0)
            let au = rng.mutate(valid)
            do { _ = try payloads(&p, au) } catch { refusals += 1 }
        }
        #expect(refusals < 3000)
    }
}
