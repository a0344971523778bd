import Foundation
import Testing
@testable import Media

/// GStreamer elements the video interop tests need (openh264 from plugins-bad, avdec_h264 from
/// gstreamer1.0-libav, jpeg and rtp from plugins-good, checksumsink from plugins-bad).
let gstVideoElements: Bool = {
    guard let launch = gstLaunch else { return false }
    let inspect = URL(fileURLWithPath: launch).deletingLastPathComponent().appendingPathComponent("gst-inspect-1.0").path
    return ["openh264enc", "avdec_h264", "rtph264pay", "rtph264depay", "jpegenc", "jpegdec", "rtpjpegpay", "rtpjpegdepay",
            "checksumsink", "srtpdec"].allSatisfy { element in
        let p = Process()
        p.executableURL = URL(fileURLWithPath: inspect)
        p.arguments = ["--exists", element]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }
}()

/// Runs a pipeline to its end (at most `timeout` seconds) and returns what it printed (checksumsink's lines).
func gstreamerOutput(_ pipeline: String, timeout: Double = 30) throws -> (output: String, finished: Bool) {
    try RunningPipeline(pipeline).finish(timeout: timeout)
}

/// A started pipeline whose stdout goes to a file read by `finish`.
final class RunningPipeline {
    let process = Process()
    let out = FileManager.default.temporaryDirectory.appendingPathComponent("classbox-gst-out-\(UUID().uuidString)")

    init(_ pipeline: String) throws {
        process.executableURL = URL(fileURLWithPath: gstLaunch!)
        process.arguments = ["-q", "-e"] + pipeline.split(separator: " ").map(String.init)
        FileManager.default.createFile(atPath: out.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    /// Waits up to `timeout` for the pipeline to end by itself; returns its output and whether it ended.
    func finish(timeout: Double) throws -> (output: String, finished: Bool) {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        let finished = !process.isRunning
        if !finished { process.terminate(); process.waitUntilExit() }
        defer { try? FileManager.default.removeItem(at: out) }
        return (try String(contentsOf: out, encoding: .utf8), finished)
    }
}

/// checksumsink prints one line per buffer: "<time> <sha1>".
func checksums(_ output: String) -> [String] {
    var sums: [String] = []
    for line in output.split(separator: "\n") {
        let parts = line.split(separator: " ")
        if parts.count == 2 && parts[1].count == 40 { sums.append(String(parts[1])) }
    }
    return sums
}

/// Files `prefix00000.ext`, `prefix00001.ext`, ... in `dir`, in order.
func numberedFiles(_ dir: String, _ ext: String) throws -> [[UInt8]] {
    try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(ext) }.sorted()
        .map { Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/" + $0))) }
}

func freeUDPPort() throws -> UInt16 {
    try UDPSocket(local: .init(host: "127.0.0.1", port: 0), peer: .init(host: "127.0.0.1", port: 9)).local.port
}

@Suite("Video interoperability with GStreamer (H.264 and JPEG over RTP, real peer on loopback)", .serialized,
       .enabled(if: gstVideoElements, "needs gst-launch-1.0 with openh264, libav, jpeg, rtp and srtp elements (scripts/bootstrap)"))
struct GStreamerVideoInteropTests {
    let frameCount = 30

    /// A real H.264 stream from GStreamer's own encoder, one file per access unit, and the checksums of its decoded frames.
    func encodedH264(_ dir: String) throws -> (units: [[UInt8]], decoded: [String]) {
        let encode = try gstreamerOutput("videotestsrc num-buffers=\(frameCount) pattern=smpte horizontal-speed=4 ! video/x-raw,width=320,height=240,framerate=30/1 ! openh264enc gop-size=15 bitrate=1500000 ! h264parse ! video/x-h264,stream-format=byte-stream,alignment=au ! multifilesink location=\(dir)/au%05d.h264")
        #expect(encode.finished)
        let units = try numberedFiles(dir, ".h264")
        try Data(units.flatMap { $0 }).write(to: URL(fileURLWithPath: dir + "/all.h264"))
        let decode = try gstreamerOutput("filesrc location=\(dir)/all.h264 ! h264parse ! avdec_h264 ! videoconvert ! video/x-raw,format=I420 ! checksumsink")
        return (units, checksums(decode.output))
    }

    func temporaryDirectory() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("classbox-gstv-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test("GStreamer depacketizes and decodes our H.264 stream to the encoder's own frames, plain RTP and SRTP",
          arguments: [false, true])
    func gstreamerDecodesOurH264(srtp: Bool) throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (units, reference) = try encodedH264(dir)
        try #require(units.count == frameCount && reference.count == frameCount, "GStreamer encoded and decoded \(units.count)/\(reference.count) frames")
        #expect(units.contains { $0.count > 1200 }, "some access units need FU-A")
        // How many packets the stream takes, so udpsrc ends the stream after the last one.
        var counter = try H264Packetizer(maxPayload: 1200)
        var packetCount = 0
        for unit in units { packetCount += try payloads(&counter, unit).count }

        let port = try freeUDPPort()
        let caps = srtp
            ? "application/x-srtp,media=video,clock-rate=90000,encoding-name=H264,payload=96,ssrc=(uint)287454020,srtp-key=(buffer)\(interopKeyHex),srtp-cipher=aes-128-icm,srtp-auth=hmac-sha1-80,srtcp-cipher=aes-128-icm,srtcp-auth=hmac-sha1-80"
            : "application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=96"
        let decrypt = srtp ? "! srtpdec " : ""
        let gst = try RunningPipeline("udpsrc address=127.0.0.1 port=\(port) num-buffers=\(packetCount) buffer-size=4194304 caps=\(caps) \(decrypt)! rtph264depay ! h264parse ! avdec_h264 ! videoconvert ! video/x-raw,format=I420 ! checksumsink")
        usleep(800_000)
        let context = srtp ? try SRTPContext(profile: .aes128CmHmacSha1_80, masterKey: Array(interopKey[0..<16]), masterSalt: Array(interopKey[16...])) : nil
        let sender = VideoStreamSender(packetizer: try H264Packetizer(maxPayload: 1200),
                                       socket: try UDPSocket(local: .init(host: "127.0.0.1", port: 0), peer: .init(host: "127.0.0.1", port: port)),
                                       srtp: context, payloadType: 96, ssrc: 0x1122_3344, initialSequence: 65520, initialTimestamp: 0xFFFF_0000)
        for (i, unit) in units.enumerated() {
            try unit.withUnsafeBytes { try sender.send($0, at: Double(i) / 30) }
            usleep(10_000)
        }
        let (output, finished) = try gst.finish(timeout: 15)
        #expect(finished, "GStreamer ended its stream after \(packetCount) packets")
        #expect(sender.frames == frameCount && Int(sender.packets) == packetCount && sender.failures == 0)
        let decoded = checksums(output)
        #expect(decoded.count == frameCount, "GStreamer decoded \(decoded.count) of \(frameCount) frames")
        #expect(decoded == reference, "every decoded frame equals the encoder's own decode")
        #expect(Set(decoded).count > frameCount / 2, "the frames differ (the picture moves)")
    }

    @Test("we rebuild GStreamer's H.264 RTP stream access unit by access unit, plain RTP and SRTP", arguments: [false, true])
    func weRebuildGStreamerH264(srtp: Bool) throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let socket = try UDPSocket(local: .init(host: "127.0.0.1", port: 0), peer: .init(host: "127.0.0.1", port: 9))
        let context = srtp ? try SRTPContext(profile: .aes128CmHmacSha1_80, masterKey: Array(interopKey[0..<16]), masterSalt: Array(interopKey[16...])) : nil
        let receiver = VideoStreamReceiver(socket: socket, srtp: context, depacketizer: H264Depacketizer())
        let encrypt = srtp ? "! srtpenc key=\(interopKeyHex) rtp-cipher=aes-128-icm rtp-auth=hmac-sha1-80 rtcp-cipher=aes-128-icm rtcp-auth=hmac-sha1-80 " : ""
        let gst = try RunningPipeline("videotestsrc is-live=true num-buffers=\(frameCount) pattern=smpte horizontal-speed=4 ! video/x-raw,width=320,height=240,framerate=30/1 ! openh264enc gop-size=15 bitrate=1500000 ! h264parse ! video/x-h264,stream-format=byte-stream,alignment=au ! tee name=t ! queue ! multifilesink location=\(dir)/au%05d.h264 t. ! queue ! rtph264pay pt=96 mtu=1200 \(encrypt)! udpsink host=127.0.0.1 port=\(socket.local.port)")
        var received: [[UInt8]] = []
        let start = Date()
        while Date().timeIntervalSince(start) < 8 && received.count < frameCount {
            receiver.poll(timeoutMs: 20, now: Date().timeIntervalSince(start)) { received.append(Array($0.bytes)) }
        }
        _ = try gst.finish(timeout: 5)
        let sent = try numberedFiles(dir, ".h264")
        #expect(receiver.refused == 0 && receiver.depacketizer.counters.refused == 0)
        #expect(receiver.depacketizer.counters.droppedFrames == 0)
        #expect(received.count == frameCount && sent.count == frameCount, "received \(received.count), encoded \(sent.count)")
        // rtph264pay leaves out access unit delimiters (type 9); every other NAL unit must be identical.
        func withoutDelimiters(_ au: [UInt8]) throws -> [[UInt8]] { try AnnexB.nalUnits(in: au).filter { $0[0] & 0x1F != 9 } }
        for (i, (ours, theirs)) in zip(received, sent).enumerated() {
            #expect(try withoutDelimiters(ours) == withoutDelimiters(theirs), "access unit \(i)")
        }
    }

    /// Real JPEG frames from GStreamer's jpegenc (libjpeg, standard Huffman tables, 4:2:0).
    func encodedJPEG(_ dir: String) throws -> [[UInt8]] {
        let encode = try gstreamerOutput("videotestsrc num-buffers=\(frameCount) pattern=smpte horizontal-speed=4 ! video/x-raw,format=I420,width=320,height=240,framerate=30/1 ! jpegenc quality=85 ! multifilesink location=\(dir)/f%05d.jpg")
        #expect(encode.finished)
        return try numberedFiles(dir, ".jpg")
    }

    func decodedJPEGChecksums(_ dir: String, _ ext: String) throws -> [String] {
        checksums(try gstreamerOutput("multifilesrc location=\(dir)/f%05d.\(ext) caps=image/jpeg,framerate=30/1 ! jpegdec ! videoconvert ! video/x-raw,format=I420 ! checksumsink").output)
    }

    @Test("GStreamer depacketizes and decodes our JPEG stream to the same pictures as the files")
    func gstreamerDecodesOurJPEG() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let frames = try encodedJPEG(dir)
        try #require(frames.count == frameCount)
        let reference = try decodedJPEGChecksums(dir, "jpg")
        var counter = try JPEGPacketizer(maxPayload: 1200)
        var packetCount = 0
        for frame in frames { packetCount += try payloads(&counter, frame).count }
        let port = try freeUDPPort()
        let gst = try RunningPipeline("udpsrc address=127.0.0.1 port=\(port) num-buffers=\(packetCount) buffer-size=4194304 caps=application/x-rtp,media=video,clock-rate=90000,encoding-name=JPEG,payload=26 ! rtpjpegdepay ! jpegdec ! videoconvert ! video/x-raw,format=I420 ! checksumsink")
        usleep(800_000)
        let sender = VideoStreamSender(packetizer: try JPEGPacketizer(maxPayload: 1200),
                                       socket: try UDPSocket(local: .init(host: "127.0.0.1", port: 0), peer: .init(host: "127.0.0.1", port: port)),
                                       srtp: nil, payloadType: 26, ssrc: 0x5566_7788, initialSequence: 65530)
        for (i, frame) in frames.enumerated() {
            try frame.withUnsafeBytes { try sender.send($0, at: Double(i) / 30) }
            usleep(10_000)
        }
        let (output, finished) = try gst.finish(timeout: 15)
        #expect(finished, "GStreamer ended its stream after \(packetCount) packets")
        let decoded = checksums(output)
        #expect(decoded.count == frameCount, "GStreamer decoded \(decoded.count) of \(frameCount) frames")
        #expect(decoded == reference, "the pictures equal the files' own decode")
        #expect(Set(decoded).count > frameCount / 2, "the frames differ")
    }

    @Test("we rebuild GStreamer's JPEG RTP stream into files that decode to the sent pictures")
    func weRebuildGStreamerJPEG() throws {
        let dir = try temporaryDirectory(), ours = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir); try? FileManager.default.removeItem(atPath: ours) }
        let socket = try UDPSocket(local: .init(host: "127.0.0.1", port: 0), peer: .init(host: "127.0.0.1", port: 9))
        let receiver = VideoStreamReceiver(socket: socket, srtp: nil, depacketizer: JPEGDepacketizer())
        let gst = try RunningPipeline("videotestsrc is-live=true num-buffers=\(frameCount) pattern=smpte horizontal-speed=4 ! video/x-raw,format=I420,width=320,height=240,framerate=30/1 ! jpegenc quality=85 ! tee name=t ! queue ! multifilesink location=\(dir)/f%05d.jpg t. ! queue ! rtpjpegpay pt=26 mtu=1200 ! udpsink host=127.0.0.1 port=\(socket.local.port)")
        var received: [[UInt8]] = []
        let start = Date()
        while Date().timeIntervalSince(start) < 8 && received.count < frameCount {
            receiver.poll(timeoutMs: 20, now: Date().timeIntervalSince(start)) { received.append(Array($0.bytes)) }
        }
        _ = try gst.finish(timeout: 5)
        #expect(receiver.depacketizer.counters.refused == 0 && receiver.depacketizer.counters.droppedFrames == 0)
        try #require(received.count == frameCount, "received \(received.count) of \(frameCount) frames")
        for (i, frame) in received.enumerated() {
            try Data(frame).write(to: URL(fileURLWithPath: ours + "/" + String(format: "f%05d.jpg", i)))
        }
        let reference = try decodedJPEGChecksums(dir, "jpg")
        let rebuilt = try decodedJPEGChecksums(ours, "jpg")
        #expect(reference.count == frameCount)
        #expect(rebuilt == reference, "our rebuilt files decode to exactly the sent pictures")
    }
}
