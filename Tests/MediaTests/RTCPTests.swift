import Testing
@testable import Media

@Suite("RTCP sender and receiver reports")
struct RTCPTests {
    @Test("an SR with a block and an RR round-trip through a compound packet with SDES in between")
    func roundTrip() throws {
        let block = RTCPReportBlock(ssrc: 0xAABBCCDD, fractionLost: 25, cumulativeLost: -3, extendedHighestSequence: 70000,
                                    jitter: 480, lastSR: 0x1234_5678, delaySinceLastSR: 65536)
        let sr = RTCPReport(ssrc: 1, sender: .init(ntp: 0xE000_0000_8000_0000, rtpTimestamp: 96000, packetCount: 50, octetCount: 4000),
                            blocks: [block])
        let rr = RTCPReport(ssrc: 2, sender: nil, blocks: [])
        var buffer = [UInt8](repeating: 0, count: 200)
        let sdes: [UInt8] = [0x81, 202, 0, 2, 0, 0, 0, 1, 1, 1, 0x41, 0]  // one chunk with a CNAME "A"
        let n1 = try #require(buffer.withUnsafeMutableBytes { sr.write(into: $0) })
        buffer.replaceSubrange(n1..<n1 + sdes.count, with: sdes)
        let n2 = try #require(buffer.withUnsafeMutableBytes { rr.write(into: UnsafeMutableRawBufferPointer(rebasing: $0[(n1 + sdes.count)...])) })
        let total = n1 + sdes.count + n2
        let parsed = try buffer[0..<total].withUnsafeBytes { try RTCPReport.parseCompound($0) }
        #expect(parsed == [sr, rr])
        #expect(parsed[0].blocks[0].lossPercent == 10)
    }

    @Test("round-trip time comes from LSR and DLSR")
    func rtt() {
        let block = RTCPReportBlock(ssrc: 1, fractionLost: 0, cumulativeLost: 0, extendedHighestSequence: 0, jitter: 0,
                                    lastSR: 0x0001_0000, delaySinceLastSR: 0x0000_8000)  // SR at t=1 s, held 0.5 s
        #expect(block.roundTrip(arrivalMiddle32: 0x0001_C000) == 0.25)
        #expect(RTCPReportBlock(ssrc: 1, fractionLost: 0, cumulativeLost: 0, extendedHighestSequence: 0, jitter: 0, lastSR: 0,
                                delaySinceLastSR: 0).roundTrip(arrivalMiddle32: 5) == nil)
    }

    @Test("a compound whose length runs past the datagram is refused")
    func malformed() {
        let bad: [UInt8] = [0x80, 201, 0, 9, 0, 0, 0, 1]
        #expect(throws: RTPParseError.truncated) { try bad.withUnsafeBytes { _ = try RTCPReport.parseCompound($0) } }
    }

    @Test("receiver statistics become a report block")
    func fromStatistics() {
        var stats = RTPReceiverStatistics()
        for s: UInt16 in [1, 2, 3, 4, 6, 7, 8, 9, 10, 11] { stats.record(sequence: s, timestamp: UInt32(s) * 960, arrival: Double(s) * 960) }
        let block = stats.reportBlock(ssrc: 9, lastSR: 0, delaySinceLastSR: 0)
        #expect(block.cumulativeLost == 1 && block.extendedHighestSequence == 11 && block.fractionLost == 25)
    }
}
