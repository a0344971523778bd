import Foundation
import Testing
import Devices
@testable import Media

@Suite("SRTCP with AEAD_AES_128_GCM (RFC 7714 §17)")
struct SRTCPGCMTests {
    // RFC 7714 §17: the session key and salt, and the SRTCP packet of SSRC "Mars" at index 0x5d4.
    let key = hex("000102030405060708090a0b0c0d0e0f"), salt = hex("517569642070726f2071756f")
    let plain = hex("81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61deadbeefdeadbeefdeadbeefdeadbeefdeadbeef")

    @Test("an SR is encrypted to §17.1's bytes (tag, then E || index 0x5d4) and decrypted back")
    func encryptedVector() throws {
        let expected = hex("""
            81c8000d4d61727363e94885dcdab67ca727d7662f6b7e997ff5c0f76c06f32dc676a5f1730d6fda4ce09b4686303ded0bb9275b\
            c84aa45896cf4d2fc5abf87245d9eade800005d4
            """)
        let sender = try SRTPContext(sessionKeysForTestingGCM: key, salt: salt)
        sender.rtcpIndex = 0x5d3
        var buffer = plain + [UInt8](repeating: 0, count: 20)
        let n = try buffer.withUnsafeMutableBytes { try sender.protectRTCP($0, length: plain.count) }
        #expect(Array(buffer[0..<n]) == expected)
        let receiver = try SRTPContext(sessionKeysForTestingGCM: key, salt: salt)
        let m = try buffer.withUnsafeMutableBytes { try receiver.unprotectRTCP($0, length: n) }
        #expect(Array(buffer[0..<m]) == plain)
    }

    @Test("§17.3's authenticated-only packet (E = 0) verifies and is left as it was")
    func tagOnlyVector() throws {
        let protected = plain + hex("841dd9683dd78ec92ae58790125f62b3000005d4")
        var buffer = protected
        let receiver = try SRTPContext(sessionKeysForTestingGCM: key, salt: salt)
        let m = try buffer.withUnsafeMutableBytes { try receiver.unprotectRTCP($0, length: protected.count) }
        #expect(Array(buffer[0..<m]) == plain)
    }

    @Test("a flipped bit and a replayed SRTCP packet are refused", arguments: SRTPProfile.allCases)
    func refusals(profile: SRTPProfile) throws {
        let master = [UInt8](0..<16), masterSalt = [UInt8](100..<UInt8(100 + profile.saltLength))
        let sender = try SRTPContext(profile: profile, masterKey: master, masterSalt: masterSalt)
        let receiver = try SRTPContext(profile: profile, masterKey: master, masterSalt: masterSalt)
        var packet = plain + [UInt8](repeating: 0, count: 20)
        let n = try packet.withUnsafeMutableBytes { try sender.protectRTCP($0, length: plain.count) }
        var forged = packet
        forged[12] ^= 1
        #expect(throws: SRTPError.authenticationFailed) { try forged.withUnsafeMutableBytes { try receiver.unprotectRTCP($0, length: n) } }
        var copy = packet
        let m = try copy.withUnsafeMutableBytes { try receiver.unprotectRTCP($0, length: n) }
        #expect(Array(copy[0..<m]) == plain)
        #expect(throws: SRTPError.replayed) { try packet.withUnsafeMutableBytes { try receiver.unprotectRTCP($0, length: n) } }
    }
}

@Suite("RTCP SDES and keyframe requests (RFC 3550 §6.5, RFC 4585, RFC 5104)")
struct RTCPFeedbackTests {
    @Test("a compound RR + SDES CNAME + PLI + FIR reads back as written")
    func roundTrip() throws {
        var buffer = [UInt8](repeating: 0, count: 256)
        let length = buffer.withUnsafeMutableBytes { b -> Int in
            var o = RTCPReport(ssrc: 7, sender: nil, blocks: []).write(into: b)!
            o += RTCPSourceDescription(ssrc: 7, cname: "classbox@rural-2").write(into: UnsafeMutableRawBufferPointer(rebasing: b[o...]))!
            o += RTCPKeyframeRequest.pli(sender: 7, media: 99).write(into: UnsafeMutableRawBufferPointer(rebasing: b[o...]))!
            o += RTCPKeyframeRequest.fir(sender: 7, media: 98, sequence: 3).write(into: UnsafeMutableRawBufferPointer(rebasing: b[o...]))!
            return o
        }
        #expect(length % 4 == 0)
        let extras = try buffer.withUnsafeBytes { try RTCPExtras.parse(UnsafeRawBufferPointer(rebasing: $0[0..<length])) }
        #expect(extras.descriptions == [RTCPSourceDescription(ssrc: 7, cname: "classbox@rural-2")])
        #expect(extras.keyframeRequests == [.pli(sender: 7, media: 99), .fir(sender: 7, media: 98, sequence: 3)])
        let reports = try buffer.withUnsafeBytes { try RTCPReport.parseCompound(UnsafeRawBufferPointer(rebasing: $0[0..<length])) }
        #expect(reports.count == 1, "the report parser skips SDES and feedback")
    }

    @Test("truncated or lying SDES and feedback packets are refused, never read past their end")
    func malformed() {
        var rng = TestRandom(seed: 11)
        var base = [UInt8](repeating: 0, count: 64)
        let n = base.withUnsafeMutableBytes { RTCPSourceDescription(ssrc: 1, cname: "box").write(into: $0)! }
        base = Array(base[0..<n])
        var refused = 0
        for _ in 0..<2000 {
            let input = rng.mutate(base)
            do { _ = try input.withUnsafeBytes { try RTCPExtras.parse($0) } } catch { refused += 1 }
        }
        #expect(refused > 100, "mutations are refused, not crashed on (\(refused))")
    }
}

@Suite("The software JPEG encoder and the simulated camera")
struct JPEGEncoderTests {
    @Test("its frames go through RFC 2435 packetizing and depacketizing whole", arguments: [RawPictureLayout.i420, .yuyv])
    func packetizes(layout: RawPictureLayout) throws {
        let camera = SimulatedCamera(width: 320, height: 176, fps: 10)
        var picture = [UInt8](repeating: 0, count: camera.frameBytes)
        picture.withUnsafeMutableBytes { camera.render(frame: 5, into: $0) }
        if layout == .yuyv {  // the same picture, packed 4:2:2
            var packed = [UInt8](repeating: 0, count: 320 * 176 * 2)
            for y in 0..<176 {
                for x in 0..<320 {
                    packed[(y * 320 + x) * 2] = picture[y * 320 + x]
                    let c = (y / 2) * 160 + x / 2
                    packed[(y * 320 + x) * 2 + 1] = x % 2 == 0 ? picture[320 * 176 + c] : picture[320 * 176 + 160 * 88 + c]
                }
            }
            picture = packed
        }
        let encoder = try JPEGEncoder(width: 320, height: 176, layout: layout, quality: 70)
        let jpeg = try encoder.encode(picture)
        #expect(jpeg.prefix(2) == [0xFF, 0xD8] && jpeg.suffix(2) == [0xFF, 0xD9])
        #expect(jpeg.count > 2000 && jpeg.count < 60000, "\(jpeg.count) bytes")
        var packetizer = try JPEGPacketizer(maxPayload: 1200)
        let parts = try payloads(&packetizer, jpeg)
        #expect(parts.count > 1 && parts.last?.last == true)
        let packets = parts.enumerated().map { rtpPacket($1.bytes, sequence: UInt16($0), timestamp: 9000, marker: $1.last, payloadType: 26) }
        let depacketizer = JPEGDepacketizer()
        let frames = depacketize(depacketizer, packets)
        #expect(frames.count == 1 && depacketizer.counters.refused == 0)
        // The rebuilt file carries the same entropy-coded scan.
        let scan = Array(jpeg[(jpeg.count - 2 - 1000)..<(jpeg.count - 2)])
        #expect(frames.first.map { Array($0.bytes.suffix(1002).prefix(1000)) } == scan)
    }

    @Test("odd or oversized pictures and short buffers are refused with what to change")
    func refusals() throws {
        #expect(throws: JPEGEncoderError.badSize(width: 321, height: 176)) { try JPEGEncoder(width: 321, height: 176, layout: .i420) }
        let encoder = try JPEGEncoder(width: 64, height: 64, layout: .i420)
        #expect(throws: JPEGEncoderError.shortPicture(expected: 6144, got: 10)) { try encoder.encode([UInt8](repeating: 0, count: 10)) }
    }

    @Test("GStreamer's jpegdec decodes our frames to the camera's picture (PSNR) and its frame number",
          .enabled(if: gstLaunch != nil, "needs gst-launch-1.0 (scripts/bootstrap)"))
    func gstreamerDecodes() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("classbox-jpeg-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let camera = SimulatedCamera(width: 320, height: 176, fps: 10)
        var picture = [UInt8](repeating: 0, count: camera.frameBytes)
        picture.withUnsafeMutableBytes { camera.render(frame: 1234, into: $0) }
        let jpeg = try JPEGEncoder(width: 320, height: 176, layout: .i420, quality: 80).encode(picture)
        try Data(jpeg).write(to: URL(fileURLWithPath: dir + "/f.jpg"))
        let run = try gstreamerOutput("filesrc location=\(dir)/f.jpg ! jpegdec ! videoconvert ! video/x-raw,format=I420 ! filesink location=\(dir)/f.yuv")
        #expect(run.finished)
        let decoded = Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/f.yuv")))
        try #require(decoded.count == camera.frameBytes, "decoded \(decoded.count) bytes")
        var squared = 0.0
        for i in 0..<(320 * 176) { let d = Double(decoded[i]) - Double(picture[i]); squared += d * d }
        let psnr = 10 * log10(255 * 255 / max(1e-9, squared / Double(320 * 176)))
        #expect(psnr > 30, "luma PSNR \(psnr) dB")
        #expect(decoded.withUnsafeBytes { camera.frameNumber(luma: $0) } == 1234)
    }
}
