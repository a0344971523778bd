public import BoxConfig
import Devices
public import Media
import Logging
import Foundation

/// The camera side of a live lesson: its own RTP session on `media.video_port` (RTCP on the next port),
/// one stream to each peer and one from each. The source is chosen from the board and the configuration:
/// a camera's own H.264 passed through, raw frames through the board's M2M encoder, a camera's MJPEG
/// passed through, or raw frames through the software JPEG encoder (the `sim` board's simulated camera
/// too). Its threads are ordinary (not real-time) and share nothing with the audio path but the CPU.
public final class LiveVideo: @unchecked Sendable {
    // @unchecked: the resolver thread reads `config` and the pump (both thread-safe); `resolverStopped` is guarded by `resolverStop`.
    /// The pump (threads, sessions, counters).
    public let pump: LiveVideoPump
    /// Where received frames are written (the `sim` board's output directory), nil on a real board.
    public let outputDirectory: String?
    private let config: BoxConfiguration
    private let logger = Logger(label: "classbox.video")
    private let recorder: VideoFrameRecorder?
    private var resolver: Thread?
    private let resolverStop = NSCondition()
    private var resolverStopped = false

    /// The lesson's video for `board` and `config`, or nil when `media.video = false`. Without a usable
    /// camera the box still receives (and says why it does not send). Throws when the ports are taken.
    public init?(board: BoardProfile, config: BoxConfiguration, outputDirectory: String?) throws(LiveLessonError) {
        guard config.media.video else { return nil }
        self.config = config
        self.outputDirectory = outputDirectory
        let port = config.media.videoPort
        let rtp: UDPSocket, rtcp: UDPSocket
        do {
            rtp = try UDPSocket(local: .init(host: "0.0.0.0", port: UInt16(port)), peer: .init(host: "127.0.0.1", port: 9))
            rtcp = try UDPSocket(local: .init(host: "0.0.0.0", port: UInt16(port + 1)), peer: .init(host: "127.0.0.1", port: 9))
        } catch {
            throw LiveLessonError(description: "cannot listen on UDP port \(port)/\(port + 1) for video (\(error)); is another classbox running? change media.video_port")
        }
        var key: [UInt8]? = nil
        if config.media.security == .srtp {
            let bytes = config.media.srtpProfile.keyAndSaltBytes
            guard let text = config.media.srtpKey, let data = Data(base64Encoded: text), data.count == bytes else {
                throw LiveLessonError(description: "media.security is \"srtp\" but media.srtp_key is missing or not \(bytes) bytes of base64; set it (the same on both boxes), or media.security = \"plain\" for a loopback test")
            }
            key = Array(data)
        }
        let source = LiveVideo.openSource(board: board, config: config, logger: logger)
        var settings = VideoSessionSettings(codec: source?.codec, srtpProfile: LiveVideo.srtpProfile(config.media.srtpProfile),
                                            srtpMaster: key, cname: LiveVideo.cname(config))
        settings.maxFrameBytes = max(1 << 20, board.camera.width * board.camera.height * 2)
        var generator = SystemRandomNumberGenerator()
        var sessions: [VideoPeerSession] = []
        for peer in config.peers {
            do {
                sessions.append(try VideoPeerSession(peerID: peer.id, settings: settings, socket: rtp, rtcpSocket: rtcp, ssrc: generator.next()))
            } catch {
                throw LiveLessonError(description: "peer \(peer.id): video SRTP: \(error); check media.srtp_key and media.srtp_profile")
            }
        }
        let recorder = outputDirectory.flatMap { try? VideoFrameRecorder(directory: $0 + "/video", peers: config.peers.map(\.id)) }
        self.recorder = recorder
        pump = LiveVideoPump(sessions: sessions, rtp: rtp, rtcp: rtcp, source: source, settings: settings) { frame in
            recorder?.record(frame)
        }
    }

    /// The SRTP profile of a configured suite.
    public static func srtpProfile(_ suite: BoxConfiguration.Media.SRTPSuite) -> SRTPProfile {
        suite == .aeadAes128Gcm ? .aeadAes128Gcm : .aes128CmHmacSha1_80
    }

    /// The box's RTCP CNAME, the same for its audio and video sessions.
    public static func cname(_ config: BoxConfiguration) -> String { "classbox@\(config.identity.id)" }

    /// Starts the threads and resolves the peers' addresses (retrying every 5 s until found).
    public func start() {
        resolveOnce(warn: true)
        pump.start()
        let snapshot = pump.snapshot()
        logger.notice("video running", metadata: [
            "port": "\(config.media.videoPort)", "sending": "\(snapshot.codec ?? "nothing (receive only)")",
            "source": "\(snapshot.source ?? "none")",
        ])
        let thread = Thread { [unowned self] in
            while true {
                resolverStop.lock()
                if !resolverStopped { _ = resolverStop.wait(until: Date().addingTimeInterval(5)) }
                let done = resolverStopped
                resolverStop.unlock()
                if done { return }
                resolveOnce(warn: false)
            }
        }
        thread.start()
        resolver = thread
    }

    /// Stops the threads (the counters stay readable) and closes the recorder's files.
    public func stop() {
        resolverStop.lock()
        resolverStopped = true
        resolverStop.signal()
        resolverStop.unlock()
        while let r = resolver, !r.isFinished { usleep(10_000) }
        pump.stop()
        recorder?.close()
        let s = pump.snapshot()
        for session in s.sessions {
            logger.notice("video from and to \(session.peer)", metadata: [
                "sent": "\(session.framesSent)", "received": "\(session.framesReceived)", "dropped": "\(session.framesDropped)",
                "pli_sent": "\(session.keyframeRequestsSent)", "pli_received": "\(session.keyframeRequestsReceived)",
            ])
        }
    }

    /// The counters now, with the files written.
    public func report() -> LiveVideoReport {
        LiveVideoReport(counters: pump.snapshot(), files: recorder?.files ?? [])
    }

    private func resolveOnce(warn: Bool) {
        for (i, peer) in config.peers.enumerated() where pump.sessions[i].remoteAddress == nil {
            if let address = UDPEndpoint(host: peer.address, port: UInt16(peer.videoPort)).resolve() {
                pump.sessions[i].setRemote(address)
            } else if warn {
                logger.warning("peer \(peer.id): cannot resolve \(peer.address) for video; retrying every 5 s")
            }
        }
    }

    // MARK: Sources

    static func openSource(board: BoardProfile, config: BoxConfiguration, logger: Logger) -> (any VideoFrameSource)? {
        let spec = board.camera
        let choice = config.media.videoCodec
        switch spec.backend {
        case .none:
            logger.notice("board \(board.name) has no camera: receiving video only")
            return nil
        case .sim:
            guard choice != .h264 else {
                logger.warning("media.video_codec = \"h264\" but the sim board has no H.264 encoder: receiving video only (use \"auto\" or \"jpeg\")")
                return nil
            }
            let camera = SimulatedCamera(width: spec.width, height: spec.height, fps: spec.fps)
            do {
                return try SimulatedVideoSource(camera: camera, quality: config.media.videoJPEGQuality)
            } catch {
                logger.error("simulated camera: \(error.description); receiving video only")
                return nil
            }
        case .v4l2:
            do {
                return try CameraVideoSource(spec: spec, preset: config.camera.defaultControls, choice: choice,
                                             quality: config.media.videoJPEGQuality)
            } catch {
                logger.error("camera: \(error.description); receiving video only")
                return nil
            }
        }
    }
}

/// What a box's video did in a lesson (in `lesson.json`).
public struct LiveVideoReport: Sendable, Codable {
    /// The pump's counters at the end.
    public var counters: VideoSnapshot
    /// Files written: per peer the last frame received and a log of every frame.
    public var files: [String]
}

/// The `sim` board's camera coded as JPEG, paced at its frame rate by absolute deadlines.
final class SimulatedVideoSource: VideoFrameSource {
    let codec = VideoCodec.jpeg
    let summary: String
    var failures = 0
    private let camera: SimulatedCamera
    private let encoder: JPEGEncoder
    private let picture: UnsafeMutableRawBufferPointer
    private var index = 0
    private var next: Int64 = 0
    private let period: Int64

    init(camera: SimulatedCamera, quality: Int) throws(JPEGEncoderError) {
        self.camera = camera
        encoder = try JPEGEncoder(width: camera.width, height: camera.height, layout: .i420, quality: quality)
        picture = .allocate(byteCount: camera.frameBytes, alignment: 16)
        period = 1_000_000_000 / Int64(camera.fps)
        summary = "simulated camera \(camera.width)x\(camera.height) at \(camera.fps) fps, software JPEG quality \(quality)"
    }

    deinit { picture.deallocate() }

    func nextFrame(timeoutMs: Int, _ body: (UnsafeRawBufferPointer, Int64, Bool) -> Void) -> Bool {
        let now = monotonicNow()
        if next == 0 { next = now }
        if next > now {
            let wait = next - now
            guard wait <= Int64(timeoutMs) * 1_000_000 else { usleep(UInt32(timeoutMs) * 1000); return false }
            usleep(UInt32(wait / 1000))
        }
        let captured = next
        next += period
        if monotonicNow() - next > 5 * period { next = monotonicNow() }  // fell far behind: skip, do not burst
        camera.render(frame: index, into: picture)
        index += 1
        do {
            try encoder.encode(UnsafeRawBufferPointer(picture)) { body($0, captured, true) }
            return true
        } catch {
            failures += 1
            return false
        }
    }

    func requestKeyframe() {}  // every JPEG frame is a keyframe
}

/// A V4L2 camera: its H.264 or MJPEG passed through, or its raw frames coded by the board's M2M encoder
/// (H.264) or the software JPEG encoder.
final class CameraVideoSource: VideoFrameSource {
    let codec: VideoCodec
    let summary: String
    var failures = 0
    private let camera: Camera
    private let encoder: VideoEncoder?
    private let jpeg: JPEGEncoder?
    private var keyframeWanted = false

    init(spec: CameraSpec, preset: [String: Int], choice: BoxConfiguration.Media.VideoCodecChoice, quality: Int) throws(LiveLessonError) {
        do { camera = try Camera(spec: spec, preset: preset) } catch { throw LiveLessonError(description: error.description) }
        let mode = camera.mode
        switch mode.fourcc {
        case .h264 where choice != .jpeg:
            codec = .h264; encoder = nil; jpeg = nil
            summary = "\(camera.info.card): \(mode) passed through"
        case .mjpeg where choice != .h264, .jpeg where choice != .h264:
            codec = .jpeg; encoder = nil; jpeg = nil
            summary = "\(camera.info.card): \(mode) passed through (RFC 2435)"
        default:
            if choice != .jpeg, spec.hardwareEncoder != nil, spec.encoderFormat == "H264",
               let m2m = try? VideoEncoder(spec: spec, input: mode) {
                codec = .h264; encoder = m2m; jpeg = nil
                summary = "\(camera.info.card): \(mode) through \(m2m.info.card) to H.264"
            } else if choice != .h264, mode.fourcc == .yuyv || mode.fourcc == .yuv420,
                      let software = try? JPEGEncoder(width: mode.width, height: mode.height, layout: mode.fourcc == .yuyv ? .yuyv : .i420, quality: quality) {
                codec = .jpeg; encoder = nil; jpeg = software
                summary = "\(camera.info.card): \(mode) through the software JPEG encoder (quality \(quality))"
            } else {
                throw LiveLessonError(description: "\(camera.info.card) gives \(mode) and media.video_codec = \"\(choice.rawValue)\" has no encoder for it on this board; set [camera] hardware_encoder in the profile, or media.video_codec = \"auto\"")
            }
        }
    }

    func nextFrame(timeoutMs: Int, _ body: (UnsafeRawBufferPointer, Int64, Bool) -> Void) -> Bool {
        if keyframeWanted, let encoder {
            keyframeWanted = false
            _ = try? encoder.requestKeyFrame()
        }
        do {
            let delivered: Bool? = try camera.withNextFrame(timeoutMs: timeoutMs) { frame -> Bool in
                if let encoder {
                    guard (try? encoder.submit(frame.bytes, nanoseconds: frame.nanoseconds)) == true else { failures += 1; return false }
                    let coded: Bool? = try? encoder.withNextFrame(timeoutMs: timeoutMs) { out in body(out.bytes, out.nanoseconds, out.keyFrame); return true }
                    return coded == true
                } else if let jpeg {
                    do { try jpeg.encode(frame.bytes) { body($0, frame.nanoseconds, true) } } catch { failures += 1; return false }
                    return true
                } else {
                    body(frame.bytes, frame.nanoseconds, codec == .jpeg || frame.keyFrame)
                    return true
                }
            }
            if delivered == nil { _ = camera.reopen() }
            return delivered == true
        } catch {
            failures += 1
            _ = camera.reopen()
            return false
        }
    }

    func requestKeyframe() { keyframeWanted = true }
}

/// Writes each peer's received video for the demo: the last frame (`from-PEER-latest.jpg` or
/// `from-PEER.h264`, the whole Annex-B stream) and a CSV log of every frame (RTP timestamp, bytes,
/// keyframe, arrival). Runs on the video network thread.
final class VideoFrameRecorder: @unchecked Sendable {
    // @unchecked: only the video network thread writes; `files` is read after the pump stopped.
    private let directory: String
    private let peers: [String]
    private var logs: [FileHandle?]
    private var streams: [FileHandle?]
    private var counts: [Int]
    private let started = monotonicNow()
    private(set) var files: [String] = []

    init(directory: String, peers: [String]) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        self.directory = directory
        self.peers = peers
        logs = []
        streams = [FileHandle?](repeating: nil, count: peers.count)
        counts = [Int](repeating: 0, count: peers.count)
        for peer in peers {
            let path = "\(directory)/from-\(peer)-frames.csv"
            _ = FileManager.default.createFile(atPath: path, contents: Data("frame,rtp_timestamp,bytes,keyframe,codec,arrival_ms\n".utf8))
            logs.append(FileHandle(forWritingAtPath: path))
            logs.last??.seekToEndOfFile()
            files.append(path)
        }
    }

    func record(_ arrived: ArrivedVideoFrame) {
        let i = arrived.peer
        guard i < peers.count else { return }
        counts[i] += 1
        let frame = arrived.frame
        let line = "\(counts[i]),\(frame.timestamp),\(frame.bytes.count),\(frame.isKeyframe ? 1 : 0),\(arrived.codec.rawValue),\(String(format: "%.1f", Double(arrived.arrivalNanoseconds - started) / 1e6))\n"
        logs[i]?.write(Data(line.utf8))
        let data = Data(frame.bytes)
        switch arrived.codec {
        case .jpeg:
            let path = "\(directory)/from-\(peers[i])-latest.jpg"
            let temporary = path + ".part"
            if FileManager.default.createFile(atPath: temporary, contents: data) {
                _ = try? FileManager.default.removeItem(atPath: path)
                try? FileManager.default.moveItem(atPath: temporary, toPath: path)
                if !files.contains(path) { files.append(path) }
            }
        case .h264:
            if streams[i] == nil {
                let path = "\(directory)/from-\(peers[i]).h264"
                _ = FileManager.default.createFile(atPath: path, contents: nil)
                streams[i] = FileHandle(forWritingAtPath: path)
                files.append(path)
            }
            streams[i]?.write(data)
        }
    }

    func close() {
        for handle in logs + streams { try? handle?.close() }
    }
}

private func monotonicNow() -> Int64 { MediaClock.monotonicNanoseconds() }

extension LiveLesson {
    /// The lesson's video, or nil (logged) when `media.video = false` or it cannot start: video never
    /// stops the audio lesson.
    func openVideo() -> LiveVideo? {
        let directory = board.audio.backend == .sim ? config.sim?.outputDir : nil
        do {
            return try LiveVideo(board: board, config: config, outputDirectory: directory)
        } catch {
            Logger(label: "classbox.video").error("video off for this lesson: \(error.description)")
            return nil
        }
    }
}
