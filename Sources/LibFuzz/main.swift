// classbox-libfuzz: the media parsers behind libFuzzer's coverage-guided engine, built only with
// CLASSBOX_LIBFUZZER=1 and -sanitize=fuzzer (scripts/fuzz --libfuzzer); never part of the firmware.
// The first input byte picks the parser, the rest is the packet; it must never trap on any input.
import CLibFuzzer
import Media

nonisolated(unsafe) let h264 = H264Depacketizer(maxAccessUnitBytes: 256 << 10)
nonisolated(unsafe) let jpeg = JPEGDepacketizer(maxFrameBytes: 256 << 10)
let key = (0..<30).map { UInt8($0 * 7 + 3) }
nonisolated(unsafe) let srtp = try? SRTPContext(profile: .aes128CmHmacSha1_80, masterKey: Array(key[0..<16]), masterSalt: Array(key[16..<30]))
nonisolated(unsafe) var h264Packetizer = try? H264Packetizer(maxPayload: 200)
nonisolated(unsafe) var jpegPacketizer = try? JPEGPacketizer(maxPayload: 300)
nonisolated(unsafe) var scratch = [UInt8](repeating: 0, count: 65536)

// Exported under libFuzzer's conventional name too: its runtime archive refers to it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, size > 0 else { return 0 }
    let input = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    switch data[0] % 8 {
    case 0: _ = try? RTPHeader.parse(input)
    case 1: _ = try? RTCPReport.parseCompound(input)
    case 2, 3:
        let n = min(input.count, scratch.count)
        scratch.withUnsafeMutableBytes { buffer in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: input[0..<n]))
            if data[0] % 8 == 2 { _ = try? srtp?.unprotect(buffer, length: n) } else { _ = try? srtp?.unprotectRTCP(buffer, length: n) }
        }
    case 4: h264.push(packet: input) { _ in }
    case 5: jpeg.push(packet: input) { _ in }
    case 6: _ = try? h264Packetizer?.packetize(input) { _, _ in }
    default: _ = try? jpegPacketizer?.packetize(input) { _, _ in }
    }
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
let status = LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzOne(data, size) }
if status != 0 { fatalError("libFuzzer's driver returned \(status)") }
