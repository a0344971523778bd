public import Devices
import Synchronization
#if canImport(Glibc)
internal import Glibc
#endif

/// The network side of a direct-mode lesson: one thread between the audio engine's rings and the
/// peers' sessions. It takes the echo-cancelled microphone from the engine, sends it to every peer
/// (a lead with two rooms adds the other room's voice, so the rooms hear each other), receives the
/// peers' RTP and RTCP on one port pair (told apart by source address), and keeps the loudspeaker's
/// ring topped up a few milliseconds ahead with the mix of the peers' jitter buffers, after each
/// peer's clock drift is resampled away. Sender reports and receiver reports go out once a second.
///
/// Packets and frames allocate nothing; once a second the thread builds RTCP reports and publishes a
/// snapshot of the counters (small allocations off the real-time audio threads).
public final class DirectAudioPump: @unchecked Sendable {
    // @unchecked: the thread owns every mutable member except `running` and `published` (atomic, locked).

    /// The sessions, one per peer.
    public let sessions: [AudioSession]
    private let rtp: UDPSocket
    private let rtcp: UDPSocket
    private let capture: SPSCRing
    private let playback: SPSCRing
    private let counters: AudioCounters
    private let playbackPeriod: Int
    private let chunk: Int
    private let frameSamples: Int
    private let running = Atomic<Bool>(false)
    private var thread: RealtimeThread?
    private let priority: Int32?
    private let published = Mutex<DirectAudioSnapshot>(DirectAudioSnapshot())

    // Thread state.
    private let datagram: UnsafeMutableRawBufferPointer
    private let micFrame: UnsafeMutablePointer<Float>
    private let sendFrame: UnsafeMutablePointer<Float>
    private let other: UnsafeMutablePointer<Float>
    private let mix: UnsafeMutablePointer<Float>
    private let piece: UnsafeMutablePointer<Float>
    private var micFill = 0
    private var unknownSource = 0
    private var chunksMixed = 0

    /// A pump between the engine's `capture` (processed microphone) and `playback` rings, with the
    /// loudspeaker's period of `playbackPeriod` samples, over sockets bound to the lesson's RTP and RTCP ports.
    public init(sessions: [AudioSession], rtp: UDPSocket, rtcp: UDPSocket, capture: SPSCRing, playback: SPSCRing,
                counters: AudioCounters, playbackPeriod: Int, realtimePriority: Int32? = nil) {
        priority = realtimePriority
        precondition(!sessions.isEmpty)
        self.sessions = sessions
        self.rtp = rtp
        self.rtcp = rtcp
        self.capture = capture
        self.playback = playback
        self.counters = counters
        self.playbackPeriod = playbackPeriod
        frameSamples = sessions[0].frameSamples
        chunk = max(1, sessions[0].rate / 400)  // 2.5 ms
        datagram = .allocate(byteCount: 2048, alignment: 16)
        micFrame = .allocate(capacity: frameSamples)
        sendFrame = .allocate(capacity: frameSamples)
        other = .allocate(capacity: frameSamples)
        mix = .allocate(capacity: chunk)
        piece = .allocate(capacity: chunk)
    }

    deinit {
        stop()
        datagram.deallocate()
        micFrame.deallocate()
        sendFrame.deallocate()
        other.deallocate()
        mix.deallocate()
        piece.deallocate()
    }

    /// Samples kept queued for the loudspeaker beyond what its next period takes: the playout's own
    /// latency (besides the jitter buffer).
    public var playbackLeadSamples: Int { playbackPeriod + chunk }

    /// Starts the network thread (SCHED_FIFO at `realtimePriority` where permitted: it feeds the loudspeaker).
    public func start() {
        guard !running.load(ordering: .relaxed) else { return }
        running.store(true, ordering: .releasing)
        thread = RealtimeThread(name: "classbox-net", priority: priority) { [unowned self] in run() }
    }

    /// Whether the network thread got real-time scheduling.
    public var isRealtime: Bool { thread?.isRealtime ?? false }

    /// Stops the thread and waits for it.
    public func stop() {
        running.store(false, ordering: .releasing)
        thread?.join()
        thread = nil
    }

    /// The counters as last published (about once a second).
    public func snapshot() -> DirectAudioSnapshot { published.withLock { $0 } }

    // MARK: The thread

    private func run() {
        var nextReport = monotonicNanoseconds() + 500_000_000
        var source = UDPAddress(ip: 0, port: 0)
        while running.load(ordering: .relaxed) {
            // Wait for the network at most 2 ms: the microphone and loudspeaker rings need us that often.
            var nanoseconds = monotonicNanoseconds()
            var n = rtp.receive(into: datagram, timeoutMs: 2, from: &source)
            while n > 0 {
                nanoseconds = monotonicNanoseconds()
                if let session = match(source, rtcp: false) {
                    session.acceptRTP(datagram, length: n, now: Double(nanoseconds) * 1e-9, nanoseconds: nanoseconds)
                } else {
                    unknownSource &+= 1
                }
                n = rtp.receive(into: datagram, timeoutMs: 0, from: &source)
            }
            nanoseconds = monotonicNanoseconds()
            var m = rtcp.receive(into: datagram, timeoutMs: 0, from: &source)
            while m > 0 {
                if let session = match(source, rtcp: true) {
                    session.acceptRTCP(datagram, length: m, now: Double(nanoseconds) * 1e-9)
                } else {
                    unknownSource &+= 1
                }
                m = rtcp.receive(into: datagram, timeoutMs: 0, from: &source)
            }
            sendMicrophone()
            fillLoudspeaker()
            if nanoseconds >= nextReport {
                nextReport = nanoseconds + 1_000_000_000
                report(now: Double(nanoseconds) * 1e-9)
            }
        }
    }

    /// The session a datagram belongs to: exact address first, then the only peer at that host.
    private func match(_ source: UDPAddress, rtcp: Bool) -> AudioSession? {
        var hostMatch: AudioSession? = nil, hostMatches = 0
        for session in sessions {
            guard let remote = session.remoteAddress, remote.ip == source.ip else { continue }
            if remote.port &+ (rtcp ? 1 : 0) == source.port { return session }
            hostMatch = session
            hostMatches += 1
        }
        return hostMatches == 1 ? hostMatch : nil
    }

    /// Sends every complete Opus frame of processed microphone to every peer.
    private func sendMicrophone() {
        while true {
            let got = capture.read(into: UnsafeMutableBufferPointer(start: micFrame + micFill, count: frameSamples &- micFill))
            micFill &+= got
            guard micFill == frameSamples else { return }
            micFill = 0
            let frame = UnsafeBufferPointer(start: UnsafePointer(micFrame), count: frameSamples)
            if sessions.count == 1 {
                sessions[0].send(frame)
                continue
            }
            for (i, session) in sessions.enumerated() {
                // Mix-minus: each room hears the teacher and the other rooms, never itself.
                sendFrame.update(from: micFrame, count: frameSamples)
                for (j, peer) in sessions.enumerated() where j != i {
                    let n = peer.returned.read(into: UnsafeMutableBufferPointer(start: other, count: frameSamples))
                    for k in 0..<n { sendFrame[k] += other[k] }
                }
                session.send(UnsafeBufferPointer(start: UnsafePointer(sendFrame), count: frameSamples))
            }
            if sessions.count > 2 { for s in sessions { _ = s.returned.discard(s.returned.readable) } }
        }
    }

    /// Keeps the loudspeaker's ring a period and a chunk ahead with the peers' mixed audio.
    private func fillLoudspeaker() {
        while playback.readable < playbackPeriod &+ chunk {
            for k in 0..<chunk { mix[k] = 0 }
            for session in sessions {
                while session.resampler.available < chunk { session.pullFrame() }
                _ = session.resampler.pull(into: UnsafeMutableBufferPointer(start: piece, count: chunk))
                for k in 0..<chunk { mix[k] += piece[k] }
                if sessions.count > 1 { _ = session.returned.write(UnsafeBufferPointer(start: UnsafePointer(piece), count: chunk)) }
            }
            for k in 0..<chunk { mix[k] = max(-1, min(1, mix[k])) }
            if playback.write(UnsafeBufferPointer(start: UnsafePointer(mix), count: chunk)) < chunk { return }
            chunksMixed &+= 1
        }
    }

    /// Once a second: RTCP to every peer, drift, and a published snapshot.
    private func report(now: Double) {
        let playbackPPM: Double? = counters.playbackClockKnown.load(ordering: .relaxed)
            ? Double(counters.playbackClockMilliPPM.load(ordering: .relaxed)) / 1000 : nil
        var snapshots: [AudioSessionSnapshot] = []
        for session in sessions {
            session.updateDrift(playbackPPM: playbackPPM)
            if let remote = session.remoteAddress {
                let length = session.makeRTCP(into: datagram, now: now)
                if length > 0 { rtcp.send(UnsafeRawBufferPointer(rebasing: datagram[0..<length]), to: remote.with(port: remote.port &+ 1)) }
            }
            snapshots.append(session.makeSnapshot(now: now))
        }
        let snapshot = DirectAudioSnapshot(sessions: snapshots, unknownSourcePackets: unknownSource, chunksMixed: chunksMixed,
                                           playbackPPM: playbackPPM, time: now)
        published.withLock { $0 = snapshot }
    }
}

/// The network side's counters at one moment.
public struct DirectAudioSnapshot: Sendable, Codable, Equatable {
    /// One entry per peer.
    public var sessions: [AudioSessionSnapshot] = []
    /// Datagrams from addresses that are no peer of ours (dropped).
    public var unknownSourcePackets = 0
    /// 2.5 ms chunks mixed for the loudspeaker.
    public var chunksMixed = 0
    /// The loudspeaker's clock against the monotonic clock, ppm; nil until known.
    public var playbackPPM: Double?
    /// Monotonic time of the snapshot in seconds (0: none yet).
    public var time: Double = 0

    /// An empty snapshot.
    public init() {}

    /// A snapshot from its parts.
    public init(sessions: [AudioSessionSnapshot], unknownSourcePackets: Int, chunksMixed: Int, playbackPPM: Double?, time: Double) {
        self.sessions = sessions
        self.unknownSourcePackets = unknownSourcePackets
        self.chunksMixed = chunksMixed
        self.playbackPPM = playbackPPM
        self.time = time
    }
}
