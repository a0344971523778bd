import Foundation
import Testing
@testable import Media

@Suite("Video RTP session over loopback (our sender to our receiver)", .serialized)
struct VideoStreamTests {
    @Test("H.264 access units cross SRTP on loopback whole, across the sequence wrap, with a sender report on RTCP",
          arguments: [SRTPProfile.aes128CmHmacSha1_80, .aeadAes128Gcm])
    func loopback(profile: SRTPProfile) throws {
        let key = (0..<30).map { UInt8(truncatingIfNeeded: $0 * 11 + 1) }
        func context() throws -> SRTPContext {
            try SRTPContext(profile: profile, masterKey: Array(key[0..<16]), masterSalt: Array(key[16..<16 + profile.saltLength]))
        }
        let rtpIn = try UDPSocket(local: .init(host: "127.0.0.1", port: 0), peer: .init(host: "127.0.0.1", port: 9))
        let rtcpIn = try UDPSocket(local: .init(host: "127.0.0.1", port: 0), peer: .init(host: "127.0.0.1", port: 9))
        let receiver = VideoStreamReceiver(socket: rtpIn, rtcpSocket: rtcpIn, srtp: try context(), depacketizer: H264Depacketizer())
        let sender = VideoStreamSender(
            packetizer: try H264Packetizer(maxPayload: 1100),
            socket: try UDPSocket(local: .init(host: "127.0.0.1", port: 0), peer: .init(host: "127.0.0.1", port: rtpIn.local.port)),
            rtcpSocket: try UDPSocket(local: .init(host: "127.0.0.1", port: 0), peer: .init(host: "127.0.0.1", port: rtcpIn.local.port)),
            srtp: try context(), payloadType: 96, ssrc: 0xA1B2_C3D4, initialSequence: 65530, initialTimestamp: 0xFFFF_FF00)
        var rng = TestRandom(seed: 77)
        var sent: [[UInt8]] = []
        var received: [(bytes: [UInt8], timestamp: UInt32)] = []
        for i in 0..<20 {
            let au = syntheticAccessUnit(&rng, sliceBytes: 200 + 700 * (i % 5), idr: i % 10 == 0)
            sent.append(try normalisedAnnexB(au))
            try au.withUnsafeBytes { try sender.send($0, at: Double(i) / 30) }
            while receiver.poll(timeoutMs: 50, now: Double(i) / 30, deliver: { received.append((Array($0.bytes), $0.timestamp)) }) > 0 {}
        }
        // SRTCP protects the sender report under both profiles (AES-CM + HMAC, and AEAD AES-GCM per RFC 7714).
        let reported = sender.sendReport(ntp: 0xE000_0000_0000_0000, at: 20.0 / 30)
        #expect(reported)
        usleep(20_000)
        _ = receiver.poll(timeoutMs: 10, now: 1, deliver: { _ in })
        #expect(received.map(\.bytes) == sent)
        #expect(received.map(\.timestamp) == (0..<20).map { 0xFFFF_FF00 &+ UInt32($0 * 3000) }, "90 kHz, wrapping at 2^32")
        #expect(receiver.refused == 0 && receiver.statistics.cumulativeLost == 0)
        guard reported else { return }
        let report = try #require(receiver.lastSenderReport)
        #expect(report.ssrc == 0xA1B2_C3D4 && report.sender?.packetCount == sender.packets && report.sender?.rtpTimestamp == 0xFFFF_FF00 &+ 6000 * 10)
    }

    @Test("a frame the packetizer refuses is counted and thrown; the next frame goes out")
    func refusedFrame() throws {
        let sink = try UDPSocket(local: .init(host: "127.0.0.1", port: 0), peer: .init(host: "127.0.0.1", port: 9))
        let sender = VideoStreamSender(packetizer: try JPEGPacketizer(),
                                       socket: try UDPSocket(local: .init(host: "127.0.0.1", port: 0), peer: sink.local),
                                       srtp: nil, payloadType: 26, ssrc: 1)
        var rng = TestRandom(seed: 5)
        let progressive = syntheticJPEG(&rng, sof: 0xC2)
        #expect(throws: VideoPayloadError.self) { try progressive.withUnsafeBytes { try sender.send($0, at: 0) } }
        try syntheticJPEG(&rng).withUnsafeBytes { try sender.send($0, at: 1.0 / 30) }
        #expect(sender.refusedFrames == 1 && sender.frames == 1 && sender.packets == 3)
        #expect(sender.lastRefusal == .unsupportedJPEG("baseline (SOF0) only, not SOF2"))
    }
}
