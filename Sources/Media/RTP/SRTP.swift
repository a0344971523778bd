internal import CCrypto

/// SRTP protection profiles the box speaks (RFC 3711, RFC 7714).
public enum SRTPProfile: String, Sendable, CaseIterable {
    /// AES-128 counter mode with an 80-bit HMAC-SHA1 tag: what every SRTP peer supports.
    case aes128CmHmacSha1_80 = "AES_CM_128_HMAC_SHA1_80"
    /// AES-128-GCM authenticated encryption with a 128-bit tag (RFC 7714).
    case aeadAes128Gcm = "AEAD_AES_128_GCM"

    /// Master key length in bytes.
    public var keyLength: Int { 16 }
    /// Master salt length in bytes.
    public var saltLength: Int { self == .aeadAes128Gcm ? 12 : 14 }
    /// Bytes the protection adds to an RTP packet.
    public var rtpOverhead: Int { self == .aeadAes128Gcm ? 16 : 10 }
}

/// Why a packet could not be protected or unprotected; unprotect failures are counted and the packet dropped.
public enum SRTPError: Error, Sendable, Equatable {
    /// Too short for its headers and tag, or not RTP/RTCP.
    case malformed
    /// The tag did not verify: forged, corrupted, or the wrong key.
    case authenticationFailed
    /// Already received (a replay or a network duplicate).
    case replayed
    /// Older than the replay window.
    case tooOld
    /// No room in the buffer for the tag.
    case bufferTooSmall
    /// Too many sources for one context.
    case tooManySources
    /// The crypto library failed (should not happen).
    case cryptoFailure
    /// The master key or salt has the wrong length.
    case badKey
}

/// One direction's SRTP and SRTCP crypto state for one master key: session keys derived per RFC 3711
/// §4.3, a rollover counter and a 64-packet replay window per source, and reusable OpenSSL contexts, so
/// protecting and unprotecting allocate nothing after the first packet of a source.
public final class SRTPContext {
    /// The profile in use.
    public let profile: SRTPProfile
    private let rtp: SessionKeys
    private let rtcp: SessionKeys
    private var sources: [SourceState]
    private var sourceCount = 0
    /// The last SRTCP index sent (31 bits); the next packet carries this + 1. Internal so the RFC's test
    /// vectors can start at their index.
    var rtcpIndex: UInt32 = 0
    /// The highest SRTCP index received so far and a 64-packet replay window below it.
    private var rtcpHighestIndex: Int64 = -1
    private var rtcpReplayMask: UInt64 = 0

    private final class SessionKeys {
        let cipher: OpaquePointer  // EVP_CIPHER_CTX (AES-128-CTR or GCM), keyed once
        let mac: UnsafeMutablePointer<cb_hmac_sha1_key>  // HMAC-SHA1 key schedule (CM profile)
        let salt: [UInt8]

        init(profile: SRTPProfile, key: [UInt8], authKey: [UInt8], salt: [UInt8]) throws(SRTPError) {
            guard let ctx = EVP_CIPHER_CTX_new() else { throw .cryptoFailure }
            let cipher = profile == .aeadAes128Gcm ? EVP_aes_128_gcm() : EVP_aes_128_ctr()
            guard EVP_EncryptInit_ex(ctx, cipher, nil, key, nil) == 1 else { EVP_CIPHER_CTX_free(ctx); throw .cryptoFailure }
            self.cipher = ctx
            mac = .allocate(capacity: 1)
            cb_hmac_sha1_setup(mac, authKey, authKey.count)
            self.salt = salt
        }

        deinit {
            EVP_CIPHER_CTX_free(cipher)
            mac.deallocate()
        }
    }

    private struct SourceState {
        var ssrc: UInt32
        var rolloverCounter: UInt32 = 0
        var highestSequence: UInt16 = 0
        var replayMask: UInt64 = 0
        var highestIndex: Int64 = -1
        var started = false
    }

    /// A context for `masterKey` and `masterSalt` (from the control channel or the configuration).
    public init(profile: SRTPProfile, masterKey: [UInt8], masterSalt: [UInt8], maxSources: Int = 8) throws(SRTPError) {
        guard masterKey.count == profile.keyLength, masterSalt.count == profile.saltLength else { throw .badKey }
        self.profile = profile
        func derive(_ label: UInt8, _ length: Int) throws(SRTPError) -> [UInt8] {
            try SRTPContext.deriveKey(masterKey: masterKey, masterSalt: masterSalt, label: label, length: length)
        }
        rtp = try SessionKeys(profile: profile, key: derive(0x00, 16), authKey: derive(0x01, 20), salt: derive(0x02, profile.saltLength))
        rtcp = try SessionKeys(profile: profile, key: derive(0x03, 16), authKey: derive(0x04, 20), salt: derive(0x05, profile.saltLength))
        sources = [SourceState](repeating: SourceState(ssrc: 0), count: maxSources)
    }

    /// A GCM context keyed with session keys directly (RFC 7714's examples give session keys, not master keys).
    init(sessionKeysForTestingGCM key: [UInt8], salt: [UInt8]) throws(SRTPError) {
        profile = .aeadAes128Gcm
        rtp = try SessionKeys(profile: .aeadAes128Gcm, key: key, authKey: [], salt: salt)
        rtcp = try SessionKeys(profile: .aeadAes128Gcm, key: key, authKey: [], salt: salt)
        sources = [SourceState](repeating: SourceState(ssrc: 0), count: 8)
    }

    /// The RFC 3711 §4.3 key derivation (key derivation rate 0): AES-CM keystream of the master key at
    /// IV = (master salt XOR label << 48) << 16.
    static func deriveKey(masterKey: [UInt8], masterSalt: [UInt8], label: UInt8, length: Int) throws(SRTPError) -> [UInt8] {
        var iv = [UInt8](repeating: 0, count: 16)
        for i in 0..<masterSalt.count { iv[i] = masterSalt[i] }
        iv[7] ^= label
        return try aesCounterKeystream(key: masterKey, iv: iv, length: length)
    }

    static func aesCounterKeystream(key: [UInt8], iv: [UInt8], length: Int) throws(SRTPError) -> [UInt8] {
        guard let ctx = EVP_CIPHER_CTX_new() else { throw .cryptoFailure }
        defer { EVP_CIPHER_CTX_free(ctx) }
        var out = [UInt8](repeating: 0, count: length + 16)
        let zeros = [UInt8](repeating: 0, count: length)
        var written: Int32 = 0
        guard EVP_EncryptInit_ex(ctx, EVP_aes_128_ctr(), nil, key, iv) == 1,
              EVP_EncryptUpdate(ctx, &out, &written, zeros, Int32(length)) == 1 else { throw .cryptoFailure }
        return Array(out[0..<length])
    }

    private func source(_ ssrc: UInt32) throws(SRTPError) -> Int {
        for i in 0..<sourceCount where sources[i].ssrc == ssrc { return i }
        guard sourceCount < sources.count else { throw .tooManySources }
        sources[sourceCount] = SourceState(ssrc: ssrc)
        sourceCount += 1
        return sourceCount - 1
    }

    // MARK: SRTP

    /// Encrypts and authenticates the RTP packet of `length` bytes in place; returns the new length.
    public func protect(_ packet: UnsafeMutableRawBufferPointer, length: Int) throws(SRTPError) -> Int {
        guard packet.count >= length + profile.rtpOverhead else { throw .bufferTooSmall }
        let header: RTPHeader
        do { header = try RTPHeader.parse(UnsafeRawBufferPointer(rebasing: packet[0..<length])) } catch { throw .malformed }
        let s = try source(header.ssrc)
        var state = sources[s]
        if state.started && header.sequence < state.highestSequence && state.highestSequence - header.sequence > 32768 {
            state.rolloverCounter &+= 1  // the sequence number wrapped
        }
        if !state.started || isNewer(header.sequence, than: state.highestSequence) { state.highestSequence = header.sequence }
        state.started = true
        sources[s] = state
        let roc = state.rolloverCounter
        let payload = header.payloadOffset
        switch profile {
        case .aes128CmHmacSha1_80:
            try ctr(rtp, ssrc: header.ssrc, index: UInt64(roc) << 16 | UInt64(header.sequence), packet, from: payload, to: length)
            try authenticate(rtp.mac, packet, length: length, trailer: roc, into: packet.baseAddress! + length, tagLength: 10)
            return length + 10
        case .aeadAes128Gcm:
            let tag = try gcm(encrypt: true, rtp.cipher, iv: gcmIV(rtp.salt, ssrc: header.ssrc, roc: roc, sequence: header.sequence),
                              packet, aadLength: payload, end: length)
            return tag
        }
    }

    /// Verifies and decrypts the SRTP packet of `length` bytes in place; returns the RTP length.
    /// Replays, forgeries and corrupted packets throw and leave the state unchanged.
    public func unprotect(_ packet: UnsafeMutableRawBufferPointer, length: Int) throws(SRTPError) -> Int {
        guard length >= 12 + profile.rtpOverhead else { throw .malformed }
        let header: RTPHeader
        do { header = try RTPHeader.parse(UnsafeRawBufferPointer(rebasing: packet[0..<length - profile.rtpOverhead])) } catch {
            throw .malformed
        }
        let s = try source(header.ssrc)
        let state = sources[s]
        // RFC 3711 §3.3.1: the rollover counter this packet most likely belongs to.
        var roc = state.rolloverCounter
        if state.started {
            let sl = Int(state.highestSequence), seq = Int(header.sequence)
            if sl < 32768 {
                if seq - sl > 32768 && roc > 0 { roc -= 1 }
            } else if sl - 32768 > seq {
                roc &+= 1
            }
        }
        let index = Int64(roc) << 16 | Int64(header.sequence)
        if state.started {
            if index <= state.highestIndex - 64 { throw .tooOld }
            if index <= state.highestIndex && (state.replayMask >> UInt64(state.highestIndex - index)) & 1 == 1 { throw .replayed }
        }
        let payload = header.payloadOffset
        let plainLength: Int
        switch profile {
        case .aes128CmHmacSha1_80:
            let end = length - 10
            var computed = (UInt64(0), UInt16(0))  // 10 bytes
            try withUnsafeMutableBytes(of: &computed) { tag throws(SRTPError) in
                try authenticate(rtp.mac, packet, length: end, trailer: roc, into: tag.baseAddress!, tagLength: 10)
                var difference: UInt8 = 0
                for i in 0..<10 { difference |= tag[i] ^ packet[end + i] }
                if difference != 0 { throw .authenticationFailed }
            }
            try ctr(rtp, ssrc: header.ssrc, index: UInt64(index), packet, from: payload, to: end)
            plainLength = end
        case .aeadAes128Gcm:
            plainLength = try gcm(encrypt: false, rtp.cipher, iv: gcmIV(rtp.salt, ssrc: header.ssrc, roc: roc, sequence: header.sequence),
                                  packet, aadLength: payload, end: length)
        }
        // Authenticated: only now update the rollover counter and the replay window.
        var updated = state
        if !updated.started {
            updated.started = true
            updated.highestIndex = index
            updated.replayMask = 1
        } else if index > updated.highestIndex {
            let shift = index - updated.highestIndex
            updated.replayMask = shift >= 64 ? 1 : (updated.replayMask << UInt64(shift)) | 1
            updated.highestIndex = index
        } else {
            updated.replayMask |= 1 << UInt64(updated.highestIndex - index)
        }
        updated.rolloverCounter = UInt32(truncatingIfNeeded: updated.highestIndex >> 16)
        updated.highestSequence = UInt16(truncatingIfNeeded: updated.highestIndex)
        sources[s] = updated
        return plainLength
    }

    // MARK: SRTCP

    /// Encrypts and authenticates an RTCP compound packet in place (E flag set, SRTCP index appended):
    /// AES-CM + HMAC-SHA1-80 (RFC 3711 §3.4) or AEAD_AES_128_GCM (RFC 7714 §9: the tag after the
    /// ciphertext, then E || index; the first 8 octets and E || index are the associated data).
    public func protectRTCP(_ packet: UnsafeMutableRawBufferPointer, length: Int) throws(SRTPError) -> Int {
        guard length >= 8 else { throw .malformed }
        let overhead = profile == .aeadAes128Gcm ? 20 : 14
        guard packet.count >= length + overhead else { throw .bufferTooSmall }
        rtcpIndex = (rtcpIndex &+ 1) & 0x7FFF_FFFF
        let ssrc = readU32(UnsafeRawBufferPointer(packet), 4)
        let e = rtcpIndex | 0x8000_0000
        switch profile {
        case .aes128CmHmacSha1_80:
            try ctr(rtcp, ssrc: ssrc, index: UInt64(rtcpIndex), packet, from: 8, to: length)
            writeU32(packet, length, e)
            try authenticate(rtcp.mac, packet, length: length + 4, trailer: nil, into: packet.baseAddress! + length + 4, tagLength: 10)
            return length + 14
        case .aeadAes128Gcm:
            try gcmRTCP(encrypt: true, packet, bodyEnd: length, ssrc: ssrc, trailer: e)
            writeU32(packet, length + 16, e)
            return length + 20
        }
    }

    /// Verifies and decrypts an SRTCP packet in place; returns the RTCP length. Forged, replayed and
    /// too old packets throw and leave the state unchanged.
    public func unprotectRTCP(_ packet: UnsafeMutableRawBufferPointer, length: Int) throws(SRTPError) -> Int {
        let overhead = profile == .aeadAes128Gcm ? 20 : 14
        guard length >= 8 + overhead else { throw .malformed }
        let end = length - overhead
        let trailerAt = profile == .aeadAes128Gcm ? length - 4 : end
        let e = readU32(UnsafeRawBufferPointer(packet), trailerAt)
        let index = Int64(e & 0x7FFF_FFFF)
        if rtcpHighestIndex >= 0 {
            if index <= rtcpHighestIndex - 64 { throw .tooOld }
            if index <= rtcpHighestIndex && (rtcpReplayMask >> UInt64(rtcpHighestIndex - index)) & 1 == 1 { throw .replayed }
        }
        let ssrc = readU32(UnsafeRawBufferPointer(packet), 4)
        switch profile {
        case .aes128CmHmacSha1_80:
            var computed = (UInt64(0), UInt16(0))
            try withUnsafeMutableBytes(of: &computed) { tag throws(SRTPError) in
                try authenticate(rtcp.mac, packet, length: end + 4, trailer: nil, into: tag.baseAddress!, tagLength: 10)
                var difference: UInt8 = 0
                for i in 0..<10 { difference |= tag[i] ^ packet[end + 4 + i] }
                if difference != 0 { throw .authenticationFailed }
            }
            if e & 0x8000_0000 != 0 {
                try ctr(rtcp, ssrc: ssrc, index: UInt64(index), packet, from: 8, to: end)
            }
        case .aeadAes128Gcm:
            try gcmRTCP(encrypt: false, packet, bodyEnd: end, ssrc: ssrc, trailer: e)
        }
        if index > rtcpHighestIndex {
            let shift = index - rtcpHighestIndex
            rtcpReplayMask = rtcpHighestIndex < 0 || shift >= 64 ? 1 : (rtcpReplayMask << UInt64(shift)) | 1
            rtcpHighestIndex = index
        } else {
            rtcpReplayMask |= 1 << UInt64(rtcpHighestIndex - index)
        }
        return end
    }

    /// AES-GCM for SRTCP (RFC 7714 §9): IV = salt XOR (00 00 || SSRC || 00 00 || 0 || index). With the E
    /// flag set the associated data is the first 8 octets and E || index and octets 8..<bodyEnd are
    /// encrypted; without it (authentication only, §9.3) the whole packet and E || index are associated
    /// data. The 16-byte tag sits at `bodyEnd`.
    private func gcmRTCP(encrypt: Bool, _ packet: UnsafeMutableRawBufferPointer, bodyEnd: Int, ssrc: UInt32, trailer: UInt32) throws(SRTPError) {
        var iv = (UInt64(0), UInt32(0))
        withUnsafeMutableBytes(of: &iv) { v in
            v[2] = UInt8(ssrc >> 24); v[3] = UInt8((ssrc >> 16) & 0xFF); v[4] = UInt8((ssrc >> 8) & 0xFF); v[5] = UInt8(ssrc & 0xFF)
            let index = trailer & 0x7FFF_FFFF
            v[8] = UInt8(index >> 24); v[9] = UInt8((index >> 16) & 0xFF); v[10] = UInt8((index >> 8) & 0xFF); v[11] = UInt8(index & 0xFF)
            for i in 0..<12 { v[i] ^= rtcp.salt[i] }
        }
        var word = trailer.bigEndian
        let encrypted = trailer & 0x8000_0000 != 0
        let aadEnd = encrypted ? 8 : bodyEnd
        let base = packet.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let ctx = rtcp.cipher
        var written: Int32 = 0
        let ok = withUnsafeMutableBytes(of: &iv) { v -> Bool in
            withUnsafeBytes(of: &word) { w -> Bool in
                let ivPointer = v.baseAddress!.assumingMemoryBound(to: UInt8.self)
                let wordPointer = w.baseAddress!.assumingMemoryBound(to: UInt8.self)
                if encrypt {
                    guard EVP_EncryptInit_ex(ctx, nil, nil, nil, ivPointer) == 1,
                          EVP_EncryptUpdate(ctx, nil, &written, base, Int32(aadEnd)) == 1,
                          EVP_EncryptUpdate(ctx, nil, &written, wordPointer, 4) == 1 else { return false }
                    if bodyEnd > aadEnd {
                        guard EVP_EncryptUpdate(ctx, base + aadEnd, &written, base + aadEnd, Int32(bodyEnd - aadEnd)) == 1 else { return false }
                    }
                    guard EVP_EncryptFinal_ex(ctx, base + bodyEnd, &written) == 1 else { return false }
                    return EVP_CIPHER_CTX_ctrl(ctx, cb_EVP_CTRL_GCM_GET_TAG(), 16, base + bodyEnd) == 1
                } else {
                    guard EVP_DecryptInit_ex(ctx, nil, nil, nil, ivPointer) == 1,
                          EVP_DecryptUpdate(ctx, nil, &written, base, Int32(aadEnd)) == 1,
                          EVP_DecryptUpdate(ctx, nil, &written, wordPointer, 4) == 1 else { return false }
                    if bodyEnd > aadEnd {
                        guard EVP_DecryptUpdate(ctx, base + aadEnd, &written, base + aadEnd, Int32(bodyEnd - aadEnd)) == 1 else { return false }
                    }
                    guard EVP_CIPHER_CTX_ctrl(ctx, cb_EVP_CTRL_GCM_SET_TAG(), 16, base + bodyEnd) == 1 else { return false }
                    return EVP_DecryptFinal_ex(ctx, base + bodyEnd, &written) == 1
                }
            }
        }
        guard ok else { throw encrypt ? .cryptoFailure : .authenticationFailed }
    }

    // MARK: Primitives

    /// AES-CM over `packet[from..<to]` with IV = (salt << 16) XOR (ssrc << 64) XOR (index << 16).
    private func ctr(_ keys: SessionKeys, ssrc: UInt32, index: UInt64, _ packet: UnsafeMutableRawBufferPointer,
                     from: Int, to: Int) throws(SRTPError) {
        var iv = (UInt64(0), UInt64(0))
        try withUnsafeMutableBytes(of: &iv) { v throws(SRTPError) in
            for i in 0..<14 { v[i] = keys.salt[i] }
            v[4] ^= UInt8(ssrc >> 24); v[5] ^= UInt8((ssrc >> 16) & 0xFF); v[6] ^= UInt8((ssrc >> 8) & 0xFF); v[7] ^= UInt8(ssrc & 0xFF)
            for k in 0..<6 { v[8 + k] ^= UInt8((index >> UInt64(40 - 8 * k)) & 0xFF) }
            guard EVP_EncryptInit_ex(keys.cipher, nil, nil, nil, v.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 1 else {
                throw .cryptoFailure
            }
            var written: Int32 = 0
            let data = packet.baseAddress!.assumingMemoryBound(to: UInt8.self) + from
            guard to > from else { return }
            guard EVP_EncryptUpdate(keys.cipher, data, &written, data, Int32(to - from)) == 1 else { throw .cryptoFailure }
        }
    }

    /// HMAC-SHA1 over `packet[0..<length]` (and the rollover counter for SRTP), truncated to `tagLength`.
    private func authenticate(_ mac: UnsafeMutablePointer<cb_hmac_sha1_key>, _ packet: UnsafeMutableRawBufferPointer, length: Int,
                              trailer: UInt32?, into tag: UnsafeMutableRawPointer, tagLength: Int) throws(SRTPError) {
        var digest = (UInt64(0), UInt64(0), UInt32(0))  // 20 bytes
        var roc = (trailer ?? 0).bigEndian
        withUnsafeMutableBytes(of: &digest) { d in
            withUnsafeBytes(of: &roc) { r in
                cb_hmac_sha1(mac, packet.baseAddress!.assumingMemoryBound(to: UInt8.self), length,
                             trailer == nil ? nil : r.baseAddress!.assumingMemoryBound(to: UInt8.self), 4,
                             d.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
            tag.copyMemory(from: d.baseAddress!, byteCount: tagLength)
        }
    }

    private func gcmIV(_ salt: [UInt8], ssrc: UInt32, roc: UInt32, sequence: UInt16) -> (UInt64, UInt32) {
        var iv = (UInt64(0), UInt32(0))
        withUnsafeMutableBytes(of: &iv) { v in
            v[2] = UInt8(ssrc >> 24); v[3] = UInt8((ssrc >> 16) & 0xFF); v[4] = UInt8((ssrc >> 8) & 0xFF); v[5] = UInt8(ssrc & 0xFF)
            v[6] = UInt8(roc >> 24); v[7] = UInt8((roc >> 16) & 0xFF); v[8] = UInt8((roc >> 8) & 0xFF); v[9] = UInt8(roc & 0xFF)
            v[10] = UInt8(sequence >> 8); v[11] = UInt8(sequence & 0xFF)
            for i in 0..<12 { v[i] ^= salt[i] }
        }
        return iv
    }

    /// AES-GCM with the RTP header as additional data; returns the new end (encrypt: + tag; decrypt: - tag).
    private func gcm(encrypt: Bool, _ ctx: OpaquePointer, iv: (UInt64, UInt32), _ packet: UnsafeMutableRawBufferPointer,
                     aadLength: Int, end: Int) throws(SRTPError) -> Int {
        var iv = iv
        let base = packet.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let textEnd = encrypt ? end : end - 16
        guard textEnd >= aadLength else { throw .malformed }
        var written: Int32 = 0
        let ok = withUnsafeMutableBytes(of: &iv) { v -> Bool in
            let ivPointer = v.baseAddress!.assumingMemoryBound(to: UInt8.self)
            if encrypt {
                guard EVP_EncryptInit_ex(ctx, nil, nil, nil, ivPointer) == 1,
                      EVP_EncryptUpdate(ctx, nil, &written, base, Int32(aadLength)) == 1 else { return false }
                if textEnd > aadLength {
                    guard EVP_EncryptUpdate(ctx, base + aadLength, &written, base + aadLength, Int32(textEnd - aadLength)) == 1 else { return false }
                }
                guard EVP_EncryptFinal_ex(ctx, base + textEnd, &written) == 1 else { return false }
                return EVP_CIPHER_CTX_ctrl(ctx, cb_EVP_CTRL_GCM_GET_TAG(), 16, base + textEnd) == 1
            } else {
                guard EVP_DecryptInit_ex(ctx, nil, nil, nil, ivPointer) == 1,
                      EVP_DecryptUpdate(ctx, nil, &written, base, Int32(aadLength)) == 1 else { return false }
                if textEnd > aadLength {
                    guard EVP_DecryptUpdate(ctx, base + aadLength, &written, base + aadLength, Int32(textEnd - aadLength)) == 1 else { return false }
                }
                guard EVP_CIPHER_CTX_ctrl(ctx, cb_EVP_CTRL_GCM_SET_TAG(), 16, base + textEnd) == 1 else { return false }
                return EVP_DecryptFinal_ex(ctx, base + textEnd, &written) == 1
            }
        }
        guard ok else { throw encrypt ? .cryptoFailure : .authenticationFailed }
        return encrypt ? textEnd + 16 : textEnd
    }

    private func isNewer(_ a: UInt16, than b: UInt16) -> Bool { a != b && (a &- b) < 32768 }
}
