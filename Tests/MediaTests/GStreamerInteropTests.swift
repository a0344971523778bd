import Foundation
import Testing
@testable import Media

let gstLaunch = ["/usr/bin/gst-launch-1.0", "/usr/local/bin/gst-launch-1.0"].first { FileManager.default.isExecutableFile(atPath: $0) }
let interopKey = (0..<30).map { UInt8($0 * 7 + 3) }  // 16-byte master key + 14-byte salt
let interopKeyHex = interopKey.map { String(format: "%02x", $0) }.joined()

/// Runs gst-launch-1.0 with a pipeline; `-e` so an interrupt sends EOS and files are finalised.
func gstreamer(_ pipeline: String) throws -> Process {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: gstLaunch!)
    process.arguments = ["-q", "-e"] + pipeline.split(separator: " ").map(String.init)
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    return process
}

/// Share of `samples`' energy at `frequency` (Goertzel), 0...1.
func toneShare(_ samples: [Float], frequency: Double, rate: Double = 48000) -> Double {
    let block = 4800
    var best = 0.0
    for start in stride(from: 0, to: samples.count - block, by: block) {
        let k = 2 * cos(2 * Double.pi * frequency / rate)
        var s1 = 0.0, s2 = 0.0, energy = 0.0
        for x in samples[start..<start + block] {
            let s = Double(x) + k * s1 - s2
            s2 = s1; s1 = s
            energy += Double(x) * Double(x)
        }
        let power = s1 * s1 + s2 * s2 - k * s1 * s2
        if energy > 1e-6 { best = max(best, 2 * power / (Double(block) * energy)) }
    }
    return best
}

@Suite("Interoperability with GStreamer (real peer on loopback)", .serialized, .enabled(if: gstLaunch != nil))
struct GStreamerInteropTests {
    func sine(_ frequency: Double, frame: Int, index: Int) -> [Float] {
        (0..<frame).map { Float(0.4 * sin(2 * Double.pi * frequency * Double(index * frame + $0) / 48000)) }
    }

    @Test("GStreamer receives and decodes our Opus stream, plain RTP and SRTP", arguments: [false, true])
    func gstreamerReceives(srtp: Bool) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("classbox-gst-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // Reserve a free port for GStreamer by binding and releasing it.
        let port = try UDPSocket(local: .init(host: "127.0.0.1", port: 0), peer: .init(host: "127.0.0.1", port: 9)).local.port
        let caps = srtp
            ? "application/x-srtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload=111,ssrc=(uint)305419896,srtp-key=(buffer)\(interopKeyHex),srtp-cipher=aes-128-icm,srtp-auth=hmac-sha1-80,srtcp-cipher=aes-128-icm,srtcp-auth=hmac-sha1-80"
            : "application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload=111"
        let decrypt = srtp ? "! srtpdec " : ""
        // udpsrc ends the stream after the 100 packets we send, so wavenc finalises the file.
        let gst = try gstreamer("udpsrc address=127.0.0.1 port=\(port) num-buffers=100 caps=\(caps) \(decrypt)! rtpjitterbuffer latency=50 ! rtpopusdepay ! opusdec ! audioconvert ! audioresample ! audio/x-raw,format=S16LE,channels=1,rate=48000 ! wavenc ! filesink location=\(dir)/out.wav")
        usleep(800_000)  // let the pipeline reach PLAYING
        var settings = OpusSettings()
        settings.frameMs = 20
        let context = srtp ? try SRTPContext(profile: .aes128CmHmacSha1_80, masterKey: Array(interopKey[0..<16]), masterSalt: Array(interopKey[16...])) : nil
        let sender = AudioStreamSender(encoder: try OpusEncoder(settings: settings),
                                       socket: try UDPSocket(local: .init(host: "127.0.0.1", port: 0), peer: .init(host: "127.0.0.1", port: port)),
                                       srtp: context, ssrc: 0x1234_5678, initialSequence: 65500)
        for i in 0..<100 {  // 2 s of 440 Hz, paced at real time, across the sequence wrap
            sine(440, frame: 960, index: i).withUnsafeBufferPointer { sender.send($0) }
            usleep(20_000)
        }
        let deadline = Date().addingTimeInterval(10)
        while gst.isRunning && Date() < deadline { usleep(50_000) }
        let finished = !gst.isRunning
        if !finished { gst.terminate(); gst.waitUntilExit() }
        #expect(finished, "GStreamer ended its stream after 100 packets")
        #expect(sender.packets == 100 && sender.failures == 0)
        let received = try WAVAudio.read(path: dir + "/out.wav")
        #expect(received.duration > 1.5, "GStreamer decoded \(received.duration) s")
        let share = toneShare(received.mono(), frequency: 440)
        #expect(share > 0.8, "440 Hz carries \(share) of the decoded energy")
    }

    @Test("our receiver plays GStreamer's Opus stream, plain RTP and SRTP", arguments: [false, true])
    func weReceive(srtp: Bool) throws {
        let socket = try UDPSocket(local: .init(host: "127.0.0.1", port: 0), peer: .init(host: "127.0.0.1", port: 9))
        let context = srtp ? try SRTPContext(profile: .aes128CmHmacSha1_80, masterKey: Array(interopKey[0..<16]), masterSalt: Array(interopKey[16...])) : nil
        let receiver = AudioStreamReceiver(socket: socket, srtp: context,
                                           jitterBuffer: JitterBuffer(decoder: try OpusDecoder(), frameSamples: 960, minDelayMs: 40))
        let encrypt = srtp ? "! srtpenc key=\(interopKeyHex) rtp-cipher=aes-128-icm rtp-auth=hmac-sha1-80 rtcp-cipher=aes-128-icm rtcp-auth=hmac-sha1-80 " : ""
        let gst = try gstreamer("audiotestsrc is-live=true freq=660 volume=0.4 num-buffers=150 ! audio/x-raw,rate=48000,channels=1 ! opusenc frame-size=20 ! rtpopuspay pt=111 \(encrypt)! udpsink host=127.0.0.1 port=\(socket.local.port)")
        defer { gst.terminate(); gst.waitUntilExit() }
        var pcm = [Float](repeating: 0, count: 960)
        var played: [Float] = []
        let start = Date()
        var nextPull = 0.0
        while Date().timeIntervalSince(start) < 4.5 {
            let now = Date().timeIntervalSince(start)
            receiver.poll(timeoutMs: 5, now: now)
            if now >= nextPull {
                _ = pcm.withUnsafeMutableBufferPointer { receiver.jitterBuffer.pull(into: $0) }
                played += pcm
                nextPull += 0.02
            }
        }
        #expect(receiver.refused == 0)
        #expect(receiver.jitterBuffer.statistics.received > 100, "\(receiver.jitterBuffer.statistics)")
        let share = toneShare(played, frequency: 660)
        #expect(share > 0.8, "660 Hz carries \(share) of the played energy")
    }
}
