import Testing
@testable import Media

@Suite("JPEG over RTP (RFC 2435)")
struct JPEGRTPTests {
    @Test("the first packet carries the main header and both tables in-band (Q 255); offsets follow the scan")
    func packetLayout() throws {
        var rng = TestRandom(seed: 1)
        let jpeg = syntheticJPEG(&rng, width: 640, height: 480, scanBytes: 2000)
        var p = try JPEGPacketizer(maxPayload: 600)
        let out = try payloads(&p, jpeg)
        let first = out[0].bytes
        let mainHeader: [UInt8] = [0, 0, 0, 0, 1, 255, 80, 60]
        let tableHeader: [UInt8] = [0, 0, 0, 128]
        let lumaTable: [UInt8] = (0..<64).map { UInt8($0 % 50 + 1) }
        #expect(Array(first[0..<8]) == mainHeader, "type 1 (4:2:0), Q 255, 640/8, 480/8")
        #expect(Array(first[8..<12]) == tableHeader, "quantisation table header: 8-bit tables, 128 bytes")
        #expect(Array(first[12..<76]) == lumaTable, "luma table as in the DQT")
        var offset = 0
        for (i, packet) in out.enumerated() {
            let o = Int(packet.bytes[1]) << 16 | Int(packet.bytes[2]) << 8 | Int(packet.bytes[3])
            #expect(o == offset)
            #expect(packet.bytes.count <= 600)
            #expect(packet.last == (i == out.count - 1))
            offset += packet.bytes.count - (i == 0 ? 140 : 8)
        }
        #expect(offset == 2000, "every scan byte sent once")
    }

    @Test("a frame comes back as a JPEG with the same tables, size, sampling and scan", arguments: [
        (UInt8(0x22), 0, false), (UInt8(0x21), 0, true), (UInt8(0x22), 4, false), (UInt8(0x21), 10, true),
    ])
    func roundTrip(sampling: UInt8, restart: Int, dht: Bool) throws {
        var rng = TestRandom(seed: 2)
        let jpeg = syntheticJPEG(&rng, width: 176, height: 144, lumaSampling: sampling, dht: dht, restart: restart, scanBytes: 5000)
        var p = try JPEGPacketizer(maxPayload: 1000)
        let packets = try payloads(&p, jpeg).enumerated().map {
            rtpPacket($1.bytes, sequence: UInt16(truncatingIfNeeded: 65533 + $0), timestamp: 90000, marker: $1.last, payloadType: 26)
        }
        let d = JPEGDepacketizer()
        let frames = depacketize(d, packets)
        try #require(frames.count == 1)
        let sent = try jpeg.withUnsafeBytes { try JPEGPacketizer.parse($0) }
        let back = try frames[0].bytes.withUnsafeBytes { try JPEGPacketizer.parse($0) }
        #expect(back.width == 176 && back.height == 144 && back.type == sent.type && back.restartInterval == restart)
        #expect(frames[0].bytes[back.scan] == jpeg[sent.scan])
        let eoi: [UInt8] = [0xFF, 0xD9]
        #expect(Array(frames[0].bytes.suffix(2)) == eoi)
        let lumaSent = jpeg[sent.tableOffsets[sent.lumaTable]..<sent.tableOffsets[sent.lumaTable] + 64]
        let lumaBack = frames[0].bytes[back.tableOffsets[back.lumaTable]..<back.tableOffsets[back.lumaTable] + 64]
        #expect(lumaSent == lumaBack)
        #expect(d.counters.frames == 1 && d.counters.refused == 0)
    }

    @Test("frames RFC 2435 cannot carry are refused with the reason", arguments: [
        ("progressive", VideoPayloadError.unsupportedJPEG("baseline (SOF0) only, not SOF2")),
        ("grayscale", .unsupportedJPEG("3 components (YCbCr) only; grayscale is not in RFC 2435")),
        ("4:4:4", .unsupportedJPEG("sampling 4:2:2 or 4:2:0 only (luma 2x1 or 2x2, chroma 1x1)")),
        ("too wide", .pictureTooLarge),
        ("odd size", .unsupportedJPEG("width and height must be non-zero multiples of 8")),
        ("optimised Huffman", .nonStandardHuffmanTables),
        ("no EOI", .truncatedJPEG("EOI")),
        ("not a JPEG", .notJPEG),
    ])
    func refusals(name: String, error: VideoPayloadError) throws {
        var rng = TestRandom(seed: 3)
        var jpeg: [UInt8]
        switch name {
        case "progressive": jpeg = syntheticJPEG(&rng, sof: 0xC2)
        case "grayscale": jpeg = syntheticJPEG(&rng, components: 1)
        case "4:4:4": jpeg = syntheticJPEG(&rng, lumaSampling: 0x11)
        case "too wide": jpeg = syntheticJPEG(&rng, width: 2048)
        case "odd size": jpeg = syntheticJPEG(&rng, width: 100, height: 75)
        case "optimised Huffman":
            jpeg = syntheticJPEG(&rng, dht: true)
            let dht = jpeg.firstIndex(of: 0xC4)! + 3
            jpeg[dht + 2] ^= 1  // a different code-length count
        case "no EOI": jpeg = Array(syntheticJPEG(&rng).dropLast(2))
        default: jpeg = [0x89, 0x50, 0x4E, 0x47, 0, 0]
        }
        var p = try JPEGPacketizer()
        #expect(throws: error) { try payloads(&p, jpeg) }
    }

    @Test("a lost fragment drops the frame; the next frame is whole")
    func lostFragment() throws {
        var rng = TestRandom(seed: 4)
        var p = try JPEGPacketizer(maxPayload: 400)
        var packets: [[UInt8]] = []
        for i in 0..<2 {
            for payload in try payloads(&p, syntheticJPEG(&rng, scanBytes: 1500)) {
                packets.append(rtpPacket(payload.bytes, sequence: UInt16(packets.count), timestamp: UInt32(i * 3000), marker: payload.last, payloadType: 26))
            }
        }
        packets.remove(at: 2)
        let d = JPEGDepacketizer()
        let frames = depacketize(d, packets)
        #expect(frames.count == 1 && frames[0].timestamp == 3000)
        #expect(d.counters.droppedFrames == 1 && d.counters.gaps == 1)
    }

    @Test("headers that lie are counted: reserved Q, derived-table Q, unknown type, short header, bad table length",
          arguments: [
            ([UInt8](repeating: 0, count: 5), "malformed"),
            ([0, 0, 0, 0, 1, 110, 10, 10, 1, 2], "malformed"),
            ([0, 0, 0, 0, 1, 50, 10, 10, 1, 2], "unsupported"),
            ([0, 0, 0, 0, 3, 255, 10, 10, 0, 0, 0, 128], "unsupported"),
            ([0, 0, 0, 0, 1, 255, 10, 10, 0, 0, 0, 99, 1], "malformed"),
            ([0, 0, 0, 0, 1, 255, 0, 10, 0, 0, 0, 128], "malformed"),
            ([0, 0, 0, 0, 65, 255, 10, 10, 0, 4], "malformed"),
          ])
    func malformed(payload: [UInt8], kind: String) {
        let d = JPEGDepacketizer()
        _ = depacketize(d, [rtpPacket(payload, sequence: 1, timestamp: 0, marker: true, payloadType: 26)])
        #expect((kind == "malformed" ? d.counters.malformed : d.counters.unsupported) == 1)
        #expect(d.counters.frames == 0 && d.counters.droppedFrames == 1)
    }

    @Test("a few seconds of mutated packets and files never crash the JPEG parsers")
    func fuzz() throws {
        var rng = TestRandom(seed: 2435)
        var p = try JPEGPacketizer(maxPayload: 300)
        var seeds: [[UInt8]] = []
        var files: [[UInt8]] = []
        for i in 0..<6 {
            let jpeg = syntheticJPEG(&rng, width: 64 + 16 * i, height: 48, lumaSampling: i % 2 == 0 ? 0x22 : 0x21, dht: i % 3 == 0,
                                     restart: i % 2, scanBytes: 200 + 400 * i)
            files.append(jpeg)
            for payload in try payloads(&p, jpeg) {
                seeds.append(rtpPacket(payload.bytes, sequence: UInt16(seeds.count), timestamp: UInt32(i * 3000), marker: payload.last, payloadType: 26))
            }
        }
        let d = JPEGDepacketizer(maxFrameBytes: 64 << 10)
        var delivered = 0
        for i in 0..<10000 {
            let pick = seeds[rng.below(seeds.count)]
            let packet = i % 4 == 0 ? seeds[i / 4 % seeds.count] : rng.mutate(pick)
            packet.withUnsafeBytes { d.push(packet: $0) { frame in delivered += frame.bytes.count > 0 ? 1 : 0 } }
        }
        #expect(d.counters.refused > 0 && d.counters.frames > 0 && delivered == d.counters.frames)
        var refusals = 0
        for _ in 0..<5000 {
            let file = files[rng.below(files.count)]
            let mutated = rng.mutate(file)
            do { _ = try payloads(&p, mutated) } catch { refusals += 1 }
        }
        #expect(refusals > 0 && refusals < 5000)
    }
}
