import Foundation
import Testing
@testable import Media

@Suite("Direct-mode audio session (RTP/SRTP and RTCP between two sessions on loopback)")
struct AudioSessionTests {
    func settings(srtp: Bool) -> AudioSessionSettings {
        var opus = OpusSettings()
        opus.frameMs = 20
        return AudioSessionSettings(opus: opus, jitterMinMs: 20, jitterMaxMs: 200,
                                    srtpMaster: srtp ? (0..<30).map { UInt8(truncatingIfNeeded: $0 * 11 + 5) } : nil)
    }

    @Test("the loss a receiver reports in RTCP reaches the sender's encoder, and the round trip is measured", arguments: [false, true])
    func lossAndRoundTrip(srtp: Bool) throws {
        let socketA = try UDPSocket(local: .init(host: "127.0.0.1", port: 0), peer: .init(host: "127.0.0.1", port: 9))
        let socketB = try UDPSocket(local: .init(host: "127.0.0.1", port: 0), peer: .init(host: "127.0.0.1", port: 9))
        let a = try AudioSession(peerID: "b", settings: settings(srtp: srtp), socket: socketA, ssrc: 0x1111_2222)
        let b = try AudioSession(peerID: "a", settings: settings(srtp: srtp), socket: socketB, ssrc: 0x3333_4444)
        a.setRemote(try #require(UDPEndpoint(host: "127.0.0.1", port: socketB.local.port).resolve()))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 2048, alignment: 16)
        defer { buffer.deallocate() }

        // A sends 200 frames of a tone; the "network" loses every tenth packet on the way to B.
        let frame = (0..<960).map { Float(0.3 * sin(2 * Double.pi * 440 * Double($0) / 48000)) }
        var source = UDPAddress(ip: 0, port: 0)
        var delivered = 0
        for i in 0..<200 {
            frame.withUnsafeBufferPointer { a.send($0) }
            let n = socketB.receive(into: buffer, timeoutMs: 100, from: &source)
            #expect(n > 0)
            #expect(source.port == socketA.local.port, "the datagram says where it came from")
            if i % 10 == 9 { continue }
            b.acceptRTP(buffer, length: n, now: Double(i) * 0.02, nanoseconds: Int64(i) * 20_000_000)
            delivered += 1
        }
        #expect(b.receiver.statistics.received == UInt32(delivered - 1), "all but the probation packet counted")

        // A's sender report reaches B; B's report on A's stream goes back to A.
        let srLength = a.makeRTCP(into: buffer, now: 10)
        #expect(srLength > 0)
        b.acceptRTCP(buffer, length: srLength, now: 10)
        // B answers 20 ms later in real time but says (DLSR) it held the report for no time at all, so
        // A's round trip must come out near 20 ms.
        usleep(20_000)
        let rrLength = b.makeRTCP(into: buffer, now: 10)
        a.acceptRTCP(buffer, length: rrLength, now: 10.02)
        #expect(a.rtcpReceived == 1 && a.rtcpRefused == 0)
        #expect((8...12).contains(a.peerLossPercent), "B reported about 10 % loss (got \(a.peerLossPercent) %)")
        let rtt = try #require(a.roundTrip, "A measured the round trip from B's report")
        #expect(rtt >= 0.015 && rtt < 0.5, "the round trip counts the 20 ms B did not declare (got \(rtt) s)")
        let snapshot = a.makeSnapshot(now: 10.02)
        #expect(snapshot.peerReportedLossPercent == a.peerLossPercent && snapshot.roundTripMs != nil)
    }

    @Test("a forged or corrupted RTCP packet is counted and changes nothing")
    func forgedRTCP() throws {
        let socket = try UDPSocket(local: .init(host: "127.0.0.1", port: 0), peer: .init(host: "127.0.0.1", port: 9))
        let a = try AudioSession(peerID: "b", settings: settings(srtp: true), socket: socket, ssrc: 1)
        let b = try AudioSession(peerID: "a", settings: settings(srtp: true), socket: socket, ssrc: 2)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 2048, alignment: 16)
        defer { buffer.deallocate() }
        let length = b.makeRTCP(into: buffer, now: 1)
        buffer[12] ^= 0x40  // flip a bit inside the encrypted sender info
        a.acceptRTCP(buffer, length: length, now: 1)
        #expect(a.rtcpRefused == 1 && a.rtcpReceived == 0)
        for i in 0..<16 { buffer[i] = 0xFF }
        a.acceptRTCP(buffer, length: 16, now: 1)
        #expect(a.rtcpRefused == 2)
    }

    @Test("addresses pack into one word and back, and a host name resolves")
    func addresses() throws {
        let address = UDPAddress(ip: 0x0A4D_0601, port: 5004)
        #expect(UDPAddress(packed: address.packed) == address)
        #expect(UDPAddress(packed: 0) == nil)
        #expect(address.description == "10.77.6.1:5004")
        #expect(UDPEndpoint(host: "localhost", port: 7).resolve() == UDPAddress(ip: 0x7F00_0001, port: 7))
        #expect(UDPEndpoint(host: "192.0.2.10", port: 5004).resolve()?.description == "192.0.2.10:5004")
    }

    @Test("a peer whose clock runs 300 ppm fast is measured and played 300 ppm faster")
    func senderDrift() throws {
        let socketA = try UDPSocket(local: .init(host: "127.0.0.1", port: 0), peer: .init(host: "127.0.0.1", port: 9))
        let socketB = try UDPSocket(local: .init(host: "127.0.0.1", port: 0), peer: .init(host: "127.0.0.1", port: 9))
        let a = try AudioSession(peerID: "b", settings: settings(srtp: false), socket: socketA, ssrc: 7)
        let b = try AudioSession(peerID: "a", settings: settings(srtp: false), socket: socketB, ssrc: 8)
        a.setRemote(try #require(UDPEndpoint(host: "127.0.0.1", port: socketB.local.port).resolve()))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 2048, alignment: 16)
        defer { buffer.deallocate() }
        let frame = [Float](repeating: 0.01, count: 960)
        var source = UDPAddress(ip: 0, port: 0)
        // 12 s of 20 ms packets whose timestamps advance 960 samples in 20 ms / 1.0003 of our time,
        // with up to 3 ms of network jitter.
        var state: UInt64 = 42
        for i in 0..<600 {
            frame.withUnsafeBufferPointer { a.send($0) }
            let n = socketB.receive(into: buffer, timeoutMs: 100, from: &source)
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let jitter = Double(state >> 40) / Double(1 << 24) * 0.003
            let arrival = Double(i) * 0.02 / 1.0003 + jitter
            b.acceptRTP(buffer, length: n, now: arrival, nanoseconds: Int64(arrival * 1e9))
        }
        b.updateDrift(playbackPPM: 0)
        let measured = try #require(b.senderDriftPPM)
        #expect(abs(measured - 300) < 30, "measured \(measured) ppm")
        #expect(abs(b.resampleStep - 1.0003) < 0.00003)
        b.updateDrift(playbackPPM: 100)  // our loudspeaker runs fast too: only the difference is resampled
        #expect(abs(b.resampleStep - 1.0002) < 0.00003)
    }
}
