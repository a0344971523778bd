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
    private let playbackPeriodNs: Int64
    private let frameNs: Int64
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
    private var justInTimeFills = 0
    private var fallbackFills = 0
    private let fillLead = Atomic<Int64>(DirectAudioPump.fillLeadNanoseconds)  // written by the thread only
    private var starvedSeen = -1  // the engine's starved-sample count at the last look (-1: not filling on the clock yet)
    private var calmSince: Int64 = 0

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
        playbackPeriodNs = Int64(playbackPeriod) * 1_000_000_000 / Int64(sessions[0].rate)
        frameNs = 10_000_000  // the engine processes the microphone in 10 ms frames
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

    /// How long before the loudspeaker's next period is due the thread fills it at first (ns): its
    /// wake-up margin on a real-time thread. Each period the card finds short adds a millisecond (up
    /// to a period and a chunk: the fill-ahead of a thread without the clock); ten calm seconds take a
    /// quarter back.
    static let fillLeadNanoseconds: Int64 = 1_500_000
    /// How long after a microphone period the thread looks for its processed frame (the canceller's time).
    static let captureSettleNanoseconds: Int64 = 400_000

    /// Samples queued for the loudspeaker on average beyond what its card holds: the playout's own
    /// latency (besides the jitter buffer). Filled just in time on the engine's period clock, the queue
    /// holds the next period for the fill lead only; without that clock (before the first period, or a
    /// card without timestamps) it is kept a period and a chunk ahead. Read it once the thread stopped.
    public var playbackLeadSamples: Int {
        let rate = Int64(sessions[0].rate)
        return justInTimeFills > fallbackFills ? Int(fillLead.load(ordering: .relaxed) * rate / 1_000_000_000) : playbackPeriod + chunk
    }

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
            // Wait for the network until the engine's clock says a ring needs us: the loudspeaker's next
            // period (filled just before the card takes it) or the microphone's next frame; at most 2 ms.
            var nanoseconds = monotonicNanoseconds()
            var n = rtp.receive(into: datagram, timeoutNanoseconds: wakeUp(after: nanoseconds) - nanoseconds, from: &source)
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
            fillLoudspeaker(now: monotonicNanoseconds())
            if nanoseconds >= nextReport {
                nextReport = nanoseconds + 1_000_000_000
                report(now: Double(nanoseconds) * 1e-9)
            }
        }
    }

    /// When the thread must be awake next (CLOCK_MONOTONIC ns): just before the loudspeaker's next period
    /// is taken, just after the microphone's next period was processed, and never more than 2 ms away.
    private func wakeUp(after now: Int64) -> Int64 {
        var next = now + 2_000_000
        let played = counters.playbackCycleNanoseconds.load(ordering: .acquiring)
        if onClock(played, now: now) {
            let fill = played + playbackPeriodNs - fillLead.load(ordering: .relaxed)
            if fill > now { next = min(next, fill) }
        }
        // The microphone's next processed frame: one frame after the last, once the canceller is done;
        // overdue (a slow frame), looked for every 200 µs, unless capture has stalled.
        let queued = counters.frameQueuedNanoseconds.load(ordering: .acquiring)
        if queued > 0 && queued <= now + frameNs && now < queued + 4 * frameNs {
            let due = queued + frameNs + Self.captureSettleNanoseconds
            next = min(next, due > now ? due : now + 200_000)
        }
        return next
    }

    /// Whether the loudspeaker's last period stamp can steer the fills: taken (not 0), recent (the card
    /// is running: within 4 periods) and on CLOCK_MONOTONIC (a card whose timestamps came on another clock
    /// gives stamps far from now; the fills then keep a period and a chunk ahead as without a clock).
    private func onClock(_ played: Int64, now: Int64) -> Bool {
        played > 0 && played <= now + playbackPeriodNs && now < played + 4 * playbackPeriodNs
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

    /// Gives the loudspeaker's ring the peers' mixed audio. On the engine's period clock, just in time:
    /// from the fill lead before the card's next period, the ring gets exactly that period (what waits
    /// there is latency). Without the clock, it is kept a period and a chunk ahead.
    private func fillLoudspeaker(now: Int64) {
        let played = counters.playbackCycleNanoseconds.load(ordering: .acquiring)
        let wanted: Int
        if onClock(played, now: now) {
            adaptFillLead(now: now)
            // The card takes its next period at `played + period`.
            guard now >= played + playbackPeriodNs - fillLead.load(ordering: .relaxed) else { return }
            wanted = playbackPeriod
            if playback.readable < wanted { justInTimeFills &+= 1 }
        } else {
            wanted = playbackPeriod &+ chunk
            if playback.readable < wanted { fallbackFills &+= 1 }
        }
        while playback.readable < wanted {
            let count = min(chunk, wanted &- playback.readable)
            for k in 0..<count { mix[k] = 0 }
            for session in sessions {
                while session.resampler.available < count { session.pullFrame() }
                _ = session.resampler.pull(into: UnsafeMutableBufferPointer(start: piece, count: count))
                for k in 0..<count { mix[k] += piece[k] }
                if sessions.count > 1 { _ = session.returned.write(UnsafeBufferPointer(start: UnsafePointer(piece), count: count)) }
            }
            for k in 0..<count { mix[k] = max(-1, min(1, mix[k])) }
            if playback.write(UnsafeBufferPointer(start: UnsafePointer(mix), count: count)) < count { return }
            chunksMixed &+= 1
        }
    }

    /// Widens the fill lead when the card found its period short (this thread woke or mixed too late:
    /// a loaded machine, a slow build), narrows it again after ten calm seconds.
    private func adaptFillLead(now: Int64) {
        let starved = counters.playbackStarvedFrames.load(ordering: .relaxed)
        let lead = fillLead.load(ordering: .relaxed)
        if starvedSeen < 0 || calmSince == 0 {
            starvedSeen = starved  // what starved before the first fill on the clock was the start, not us
            calmSince = now
        } else if starved != starvedSeen {
            starvedSeen = starved
            calmSince = now
            fillLead.store(min(lead + 1_000_000, playbackPeriodNs + 2_500_000), ordering: .relaxed)
        } else if now - calmSince >= 10_000_000_000 {
            calmSince = now
            fillLead.store(max(Self.fillLeadNanoseconds, lead - 250_000), ordering: .relaxed)
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
