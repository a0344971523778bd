import Testing
@testable import Media

func hex(_ s: String) -> [UInt8] {
    let digits = Array(s.filter { !$0.isWhitespace })
    return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
}

let rfc3711Key = hex("E1F97A0D3E018BE0D64FA32C06DE4139")
let rfc3711Salt = hex("0EC675AD498AFEEBB6960B3AABE6")

@Suite("SRTP (RFC 3711, RFC 7714)")
struct SRTPTests {
    @Test("session keys are derived as RFC 3711 appendix B.3 says")
    func keyDerivation() throws {
        #expect(try SRTPContext.deriveKey(masterKey: rfc3711Key, masterSalt: rfc3711Salt, label: 0, length: 16) == hex("C61E7A93744F39EE10734AFE3FF7A087"))
        #expect(try SRTPContext.deriveKey(masterKey: rfc3711Key, masterSalt: rfc3711Salt, label: 2, length: 14) == hex("30CBBC08863D8C85D49DB34A9AE1"))
        #expect(try SRTPContext.deriveKey(masterKey: rfc3711Key, masterSalt: rfc3711Salt, label: 1, length: 20) == hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"))
    }

    @Test("AES_CM_128_HMAC_SHA1_80 protects the reference packet to the reference bytes, and back")
    func aesCmVector() throws {
        let plain = hex("800f1234decafbadcafebabe" + String(repeating: "ab", count: 16))
        let expected = hex("800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb")
        let sender = try SRTPContext(profile: .aes128CmHmacSha1_80, masterKey: rfc3711Key, masterSalt: rfc3711Salt)
        let receiver = try SRTPContext(profile: .aes128CmHmacSha1_80, masterKey: rfc3711Key, masterSalt: rfc3711Salt)
        var buffer = plain + [UInt8](repeating: 0, count: 16)
        let n = try buffer.withUnsafeMutableBytes { try sender.protect($0, length: plain.count) }
        #expect(Array(buffer[0..<n]) == expected)
        let m = try buffer.withUnsafeMutableBytes { try receiver.unprotect($0, length: n) }
        #expect(Array(buffer[0..<m]) == plain)
    }

    @Test("SRTCP protects the reference RTCP packet to the reference bytes (index 1), and back")
    func srtcpVector() throws {
        let plain = hex("81c8000bcafebabe" + String(repeating: "ab", count: 16))
        let expected = hex("81c8000bcafebabe7128035be487b9bdbef89041f977a5a880000001993e08cd54d6c1230798")
        let sender = try SRTPContext(profile: .aes128CmHmacSha1_80, masterKey: rfc3711Key, masterSalt: rfc3711Salt)
        var buffer = plain + [UInt8](repeating: 0, count: 20)
        let n = try buffer.withUnsafeMutableBytes { try sender.protectRTCP($0, length: plain.count) }
        #expect(Array(buffer[0..<n]) == expected)
        let receiver = try SRTPContext(profile: .aes128CmHmacSha1_80, masterKey: rfc3711Key, masterSalt: rfc3711Salt)
        let m = try buffer.withUnsafeMutableBytes { try receiver.unprotectRTCP($0, length: n) }
        #expect(Array(buffer[0..<m]) == plain)
    }

    @Test("AEAD_AES_128_GCM matches RFC 7714's example (session key and salt given directly)")
    func gcmVector() throws {
        // RFC 7714 §16 gives the *session* key and salt; derive nothing by comparing the raw AEAD.
        let key = hex("000102030405060708090a0b0c0d0e0f"), salt = hex("517569642070726f2071756f")
        let plain = hex("8040f17b8041f8d35501a0b247616c6c696120657374206f6d6e69732064697669736120696e207061727465732074726573")
        let expected = hex("""
            8040f17b8041f8d35501a0b2f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b36de3adf8833899d7f27beb16a9152cf765ee4390cce
            """)
        let context = try SRTPContext(sessionKeysForTestingGCM: key, salt: salt)
        var buffer = plain + [UInt8](repeating: 0, count: 16)
        let n = try buffer.withUnsafeMutableBytes { try context.protect($0, length: plain.count) }
        #expect(Array(buffer[0..<n]) == expected)
        let back = try SRTPContext(sessionKeysForTestingGCM: key, salt: salt)
        let m = try buffer.withUnsafeMutableBytes { try back.unprotect($0, length: n) }
        #expect(Array(buffer[0..<m]) == plain)
    }

    @Test("a flipped bit, a replay and a very old packet are refused", arguments: SRTPProfile.allCases)
    func refusals(profile: SRTPProfile) throws {
        let key = [UInt8](repeating: 7, count: 16), salt = [UInt8](repeating: 9, count: profile.saltLength)
        let sender = try SRTPContext(profile: profile, masterKey: key, masterSalt: salt)
        let receiver = try SRTPContext(profile: profile, masterKey: key, masterSalt: salt)
        func packet(_ seq: UInt16) throws -> [UInt8] {
            var b = [UInt8](repeating: 0x5A, count: 60)
            b.withUnsafeMutableBytes { _ = RTPHeader(payloadType: 111, sequence: seq, timestamp: UInt32(seq) * 960, ssrc: 42).write(into: $0) }
            let n = try b.withUnsafeMutableBytes { try sender.protect($0, length: 44) }
            return Array(b[0..<n])
        }
        var tampered = try packet(1)
        tampered[20] ^= 1
        let tamperedLength = tampered.count
        #expect(throws: SRTPError.authenticationFailed) { try tampered.withUnsafeMutableBytes { _ = try receiver.unprotect($0, length: tamperedLength) } }
        let good = try packet(2)
        var copy = good
        _ = try copy.withUnsafeMutableBytes { try receiver.unprotect($0, length: good.count) }
        copy = good
        #expect(throws: SRTPError.replayed) { try copy.withUnsafeMutableBytes { _ = try receiver.unprotect($0, length: good.count) } }
        for s in UInt16(3)..<200 {
            var p = try packet(s)
            let length = p.count
            _ = try p.withUnsafeMutableBytes { try receiver.unprotect($0, length: length) }
        }
        var old = try packet(5)
        let oldLength = old.count
        #expect(throws: SRTPError.tooOld) { try old.withUnsafeMutableBytes { _ = try receiver.unprotect($0, length: oldLength) } }
    }

    @Test("the rollover counter follows the sequence number across 65535 -> 0, with reordering", arguments: SRTPProfile.allCases)
    func rollover(profile: SRTPProfile) throws {
        let key = [UInt8](repeating: 3, count: 16), salt = [UInt8](repeating: 4, count: profile.saltLength)
        let sender = try SRTPContext(profile: profile, masterKey: key, masterSalt: salt)
        let receiver = try SRTPContext(profile: profile, masterKey: key, masterSalt: salt)
        var packets: [[UInt8]] = []
        for i in 0..<40 {
            let seq = UInt16(truncatingIfNeeded: 65520 + i)
            var b = [UInt8](repeating: UInt8(i), count: 60)
            b.withUnsafeMutableBytes { _ = RTPHeader(payloadType: 111, sequence: seq, timestamp: UInt32(i), ssrc: 7).write(into: $0) }
            let n = try b.withUnsafeMutableBytes { try sender.protect($0, length: 40) }
            packets.append(Array(b[0..<n]))
        }
        packets.swapAt(16, 17)  // 0 arrives before 65535
        for var p in packets {
            let length = p.count
            let n = try p.withUnsafeMutableBytes { try receiver.unprotect($0, length: length) }
            #expect(n == 40 && p[39] == p[12])
        }
    }

    @Test("protecting and unprotecting allocate nothing after a source's first packet")
    func noAllocation() throws {
        let sender = try SRTPContext(profile: .aes128CmHmacSha1_80, masterKey: rfc3711Key, masterSalt: rfc3711Salt)
        let receiver = try SRTPContext(profile: .aes128CmHmacSha1_80, masterKey: rfc3711Key, masterSalt: rfc3711Salt)
        var b = [UInt8](repeating: 1, count: 200)
        var count = 0
        b.withUnsafeMutableBytes { buffer in
            for seq in UInt16(1)..<100 {
                _ = RTPHeader(payloadType: 111, sequence: seq, timestamp: 0, ssrc: 1).write(into: buffer)
                // The first packet registers the source and warms the runtime's caches; count the rest.
                let n = seq == 1 ? ((try? sender.protect(buffer, length: 160)) ?? 0)
                    : { var n = 0; count += allocations { n = (try? sender.protect(buffer, length: 160)) ?? 0 }; return n }()
                if seq == 1 { _ = try? receiver.unprotect(buffer, length: n) } else {
                    count += allocations { _ = try? receiver.unprotect(buffer, length: n) }
                }
            }
        }
        #expect(count == 0)
    }
}
