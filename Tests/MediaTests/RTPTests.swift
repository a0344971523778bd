import Testing
@testable import Media

@Suite("RTP packets and receiver statistics")
struct RTPTests {
    @Test("a packet with CSRCs, a header extension and padding is read field by field")
    func parseFull() throws {
        let packet: [UInt8] = [
            0xB2, 0xE0, 0x12, 0x34,  // V=2 P=1 X=1 CC=2 | M=1 PT=96 | seq 0x1234
            0xDE, 0xAD, 0xBE, 0xEF,  // timestamp
            0x01, 0x02, 0x03, 0x04,  // SSRC
            0, 0, 0, 1, 0, 0, 0, 2,  // two CSRCs
            0xBE, 0xDE, 0x00, 0x01, 0x10, 0xAA, 0x00, 0x00,  // one-byte extension, 1 word
            0x11, 0x22, 0x33,  // payload
            0x00, 0x00, 0x03,  // 3 bytes of padding
        ]
        let header = try packet.withUnsafeBytes { try RTPHeader.parse($0) }
        #expect(header.marker && header.payloadType == 96 && header.sequence == 0x1234)
        #expect(header.timestamp == 0xDEADBEEF && header.ssrc == 0x01020304 && header.csrcCount == 2)
        #expect(header.payloadOffset == 28 && header.payloadLength == 3)
    }

    @Test("malformed packets are refused with the reason", arguments: [
        ([UInt8](repeating: 0x80, count: 11), RTPParseError.truncated),
        ([0x40] + [UInt8](repeating: 0, count: 11), .badVersion),
        ([0x81] + [UInt8](repeating: 0, count: 11), .truncated),
        ([0x90] + [UInt8](repeating: 0, count: 11) + [0, 0, 0, 5], .badExtension),
        ([0xA0] + [UInt8](repeating: 0, count: 11) + [9], .badPadding),
    ])
    func malformed(bytes: [UInt8], error: RTPParseError) {
        #expect(throws: error) { try bytes.withUnsafeBytes { _ = try RTPHeader.parse($0) } }
    }

    @Test("random bytes never crash the parser, and what it accepts stays inside the packet")
    func fuzz() {
        var state: UInt64 = 12345
        var accepted = 0
        for _ in 0..<50_000 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let length = Int(state >> 58)
            var bytes = [UInt8](repeating: 0, count: length)
            for i in 0..<length {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                bytes[i] = UInt8(truncatingIfNeeded: state >> 33)
            }
            if length > 0 && state & 1 == 0 { bytes[0] = 0x80 | (bytes[0] & 0x3F) }
            if let header = try? bytes.withUnsafeBytes({ try RTPHeader.parse($0) }) {
                accepted += 1
                #expect(header.payloadOffset + header.payloadLength <= length)
            }
        }
        #expect(accepted > 1000)
    }

    @Test("a written header reads back")
    func roundTrip() throws {
        var buffer = [UInt8](repeating: 0, count: 20)
        let header = RTPHeader(marker: true, payloadType: 111, sequence: 65535, timestamp: 4_000_000_000, ssrc: 0xCAFEBABE)
        buffer.withUnsafeMutableBytes { _ = header.write(into: $0) }
        let back = try buffer.withUnsafeBytes { try RTPHeader.parse($0) }
        #expect(back.marker && back.payloadType == 111 && back.sequence == 65535 && back.timestamp == 4_000_000_000)
        #expect(back.ssrc == 0xCAFEBABE && back.payloadLength == 8)
    }

    @Test("sequence numbers wrap into the extended count without loss")
    func wrap() {
        var stats = RTPReceiverStatistics()
        for i in 0..<12 { stats.record(sequence: UInt16(truncatingIfNeeded: 65530 + i), timestamp: UInt32(i * 960), arrival: Double(i * 960)) }
        #expect(stats.extendedHighest == 65536 + 5)
        #expect(stats.cumulativeLost == 0 && stats.received == 11, "the first packet only validates the source")
    }

    @Test("losses, duplicates and reordering are counted as RFC 3550 counts them")
    func lossAndReorder() {
        var stats = RTPReceiverStatistics()
        let order: [UInt16] = [1, 2, 3, 5, 4, 6, 6, 9, 10]  // 7 and 8 lost, 4 late, 6 duplicated
        for s in order { stats.record(sequence: s, timestamp: UInt32(s) * 960, arrival: Double(s) * 960) }
        #expect(stats.extendedHighest == 10)
        #expect(stats.expected == 9, "2...10 after probation")
        #expect(stats.received == 8)
        #expect(stats.cumulativeLost == 1, "two lost, one duplicate")
        let fraction = stats.fractionLostSinceLastReport()
        #expect(fraction == UInt8((1 << 8) / 9))
        let again = stats.fractionLostSinceLastReport()
        #expect(again == 0, "nothing new since the last report")
    }

    @Test("a sender that restarts with a new sequence is followed after one confirming packet")
    func restart() {
        var stats = RTPReceiverStatistics()
        for s in UInt16(100)..<110 { stats.record(sequence: s, timestamp: 0, arrival: 0) }
        let jumped = stats.record(sequence: 40000, timestamp: 0, arrival: 0)
        let confirmed = stats.record(sequence: 40001, timestamp: 0, arrival: 0)
        #expect(!jumped && confirmed)
        #expect(stats.extendedHighest == 40001 && stats.discarded == 1)
    }

    @Test("jitter is zero for a steady stream and follows the spread of arrival times")
    func jitter() {
        var steady = RTPReceiverStatistics(), shaky = RTPReceiverStatistics()
        for i in 0..<500 {
            let ts = UInt32(i * 960)
            steady.record(sequence: UInt16(i), timestamp: ts, arrival: Double(i * 960) + 5000)
            shaky.record(sequence: UInt16(i), timestamp: ts, arrival: Double(i * 960) + (i % 2 == 0 ? 0 : 480))
        }
        #expect(steady.jitter < 1e-9)
        #expect(abs(shaky.jitter - 480) < 10, "alternating 10 ms delay: jitter \(shaky.jitter)")
    }
}
