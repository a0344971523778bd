/// What `JitterBuffer.pull` produced for one frame.
public enum JitterFrame: Sendable, Equatable {
    /// A packet decoded in time.
    case decoded
    /// A lost packet rebuilt from the next packet's in-band FEC.
    case recovered
    /// A lost or late packet replaced by Opus packet-loss concealment.
    case concealed
    /// The sender paused (DTX) or nothing has arrived yet: silence.
    case silence
}

/// Counters of one incoming audio stream, for the lesson summary, diagnostics and RTCP.
public struct JitterBufferStatistics: Sendable, Equatable, Codable {
    /// Packets accepted into the buffer.
    public var received = 0
    /// Packets that arrived after their frame had been played (dropped).
    public var late = 0
    /// Packets received twice (dropped).
    public var duplicates = 0
    /// Packets that never arrived in time.
    public var lost = 0
    /// Frames concealed by the decoder.
    public var concealed = 0
    /// Frames recovered from FEC.
    public var recovered = 0
    /// Frames dropped to shrink the buffer after jitter fell (progressive discard).
    public var discarded = 0
    /// Frames of concealment inserted to grow the buffer after jitter rose.
    public var stretched = 0
    /// Packets refused as undecodable.
    public var malformed = 0
    /// Times the sender's sequence jumped and the buffer restarted.
    public var resets = 0
    /// Audio buffered ahead of the playout point, in ms.
    public var depthMs = 0.0
    /// The depth the buffer aims at, from the measured jitter, in ms.
    public var targetMs = 0.0
}

/// An adaptive jitter buffer for one Opus RTP stream: it reorders packets, drops duplicates and late
/// arrivals, recovers single losses from in-band FEC and conceals the rest, follows DTX pauses, and keeps
/// its depth near a target computed from the measured delay variation (the 95th percentile of the last
/// few seconds, within configured bounds): it grows by inserting concealment when jitter rises and
/// shrinks by dropping frames, quiet ones first, when it falls. Storage is allocated up front; `insert`
/// and `pull` allocate nothing.
public final class JitterBuffer {
    private let decoder: OpusDecoder
    private let frame: Int  // samples per packet (Opus frame)
    private let rate: Double
    private let minTarget: Int, maxTarget: Int  // samples
    private let capacity: Int
    private var slotSequence: [Int64]  // extended sequence stored in each slot, -1 when empty
    private var slotTimestamp: [Int64]
    private var slotLength: [Int]
    private var slotData: UnsafeMutableRawPointer
    private let slotSize = 1500
    private let transitCapacity = 256
    private let transit: UnsafeMutablePointer<Double>  // recent (arrival - timestamp) in samples, a ring
    private let transitScratch: UnsafeMutablePointer<Double>
    private var transitCount = 0, transitNext = 0
    private var started = false
    private var nextSequence: Int64 = 0  // the next packet to play
    private var playout: Int64 = 0  // timestamp of the next frame to play
    private var highestTimestamp: Int64 = 0
    private var highestSequence: Int64 = 0
    private var lastSequence: Int64 = 0  // for unwrapping 16-bit sequence numbers
    private var lastTimestamp: Int64 = 0
    private var target: Int
    private var pullsSinceTarget = 0
    private var lastWasSilence = true
    private var excessPulls = 0  // consecutive pulls with the buffer too deep
    private var level = -1.0  // the depth smoothed over ~200 ms, in samples (< 0: not yet measured)
    private let smoothing: Double
    private var windowLow = Int.max, recentLow = Int.max, windowPulls = 0  // lowest depth, this and the last 0.5 s
    private var stalledSequence: Int64 = -1  // a missing packet whose turn was played as concealment (a stall)
    private var stalledTurns = 0  // frames played while stalled on it
    /// Counters so far.
    public private(set) var statistics = JitterBufferStatistics()

    /// A buffer decoding with `decoder`, for packets of `frameSamples`, aiming between `minDelayMs` and `maxDelayMs`.
    public init(decoder: OpusDecoder, frameSamples: Int, minDelayMs: Int = 20, maxDelayMs: Int = 200, capacity: Int = 128) {
        self.decoder = decoder
        frame = frameSamples
        rate = Double(decoder.rate)
        minTarget = minDelayMs * decoder.rate / 1000
        maxTarget = max(minTarget, maxDelayMs * decoder.rate / 1000)
        self.capacity = capacity
        slotSequence = [Int64](repeating: -1, count: capacity)
        slotTimestamp = [Int64](repeating: 0, count: capacity)
        slotLength = [Int](repeating: 0, count: capacity)
        slotData = .allocate(byteCount: capacity * slotSize, alignment: 16)
        transit = .allocate(capacity: transitCapacity)
        transit.initialize(repeating: 0, count: transitCapacity)
        transitScratch = .allocate(capacity: transitCapacity)
        transitScratch.initialize(repeating: 0, count: transitCapacity)
        target = max(minTarget, 2 * frameSamples)
        smoothing = min(0.5, Double(frameSamples) / (0.2 * Double(decoder.rate)))
    }

    /// Where playout starts behind a packet with timestamp `ts` so that the depth (that packet's frame
    /// included) is the target at once.
    private func startingPlayout(_ ts: Int64) -> Int64 { ts - Int64(max(0, target - frame)) }

    deinit {
        slotData.deallocate()
        transit.deallocate()
        transitScratch.deallocate()
    }

    /// The outcome of offering a packet.
    public enum Insertion: Sendable, Equatable { case accepted, late, duplicate, tooLarge }

    /// Offers one RTP payload; `arrival` is the local arrival time in seconds.
    @discardableResult
    public func insert(payload: UnsafeRawBufferPointer, sequence: UInt16, timestamp: UInt32, arrival: Double) -> Insertion {
        guard payload.count <= slotSize else { statistics.malformed += 1; return .tooLarge }
        let seq = unwrap(Int64(sequence), around: lastSequence, modulus: 1 << 16, first: !started)
        let ts = unwrap(Int64(timestamp), around: lastTimestamp, modulus: 1 << 32, first: !started)
        if !started {
            started = true
            nextSequence = seq
            playout = startingPlayout(ts)
            highestTimestamp = ts
            highestSequence = seq
        } else if abs(seq - nextSequence) > 1000 {
            // The sender restarted (new sequence space): start over from this packet.
            statistics.resets += 1
            for i in 0..<capacity { slotSequence[i] = -1 }
            nextSequence = seq
            playout = startingPlayout(ts)
            highestTimestamp = ts
            highestSequence = seq
            transitCount = 0
            level = -1
            stalledSequence = -1
            stalledTurns = 0
        }
        lastSequence = seq
        lastTimestamp = ts
        if seq == stalledSequence && seq == nextSequence && ts + Int64(frame) <= playout && ts + Int64(3 * frame) > playout {
            // The packet the buffer stalled on came after all: late, not lost, so the buffer is too
            // shallow for this stream. Play it next (when it is at most two frames behind): the
            // concealment played in its turn becomes extra depth (a stretch), instead of every following
            // packet arriving late too.
            playout = ts
            stalledSequence = -1
            stalledTurns = 0
            statistics.stretched += 1
        } else if ts + Int64(frame) <= playout || (seq < nextSequence && ts < playout) {
            statistics.late += 1
            // The packet playout waits for came too late to play: stop waiting for it.
            if seq == nextSequence { nextSequence += 1 }
            return .late
        }
        // An earlier packet overtaken by a later one before its turn came (e.g. the stream's first).
        if seq < nextSequence { nextSequence = seq }
        let slot = Int(seq % Int64(capacity))
        if slotSequence[slot] == seq { statistics.duplicates += 1; return .duplicate }
        slotSequence[slot] = seq
        slotTimestamp[slot] = ts
        slotLength[slot] = payload.count
        if let base = payload.baseAddress { (slotData + slot * slotSize).copyMemory(from: base, byteCount: payload.count) }
        highestTimestamp = max(highestTimestamp, ts)
        highestSequence = max(highestSequence, seq)
        statistics.received += 1
        transit[transitNext] = arrival * rate - Double(ts)
        transitNext = (transitNext + 1) % transitCapacity
        transitCount = min(transitCount + 1, transitCapacity)
        return .accepted
    }

    /// Produces the next frame (`frameSamples` samples) of the stream into `pcm`.
    public func pull(into pcm: UnsafeMutableBufferPointer<Float>) -> JitterFrame {
        precondition(pcm.count >= frame)
        let out = UnsafeMutableBufferPointer(rebasing: pcm[0..<frame])
        guard started else { fillSilence(out); return .silence }
        updateTarget()
        let depth = Int(highestTimestamp + Int64(frame) - playout)
        statistics.depthMs = Double(depth) * 1000 / rate
        statistics.targetMs = Double(target) * 1000 / rate

        // The depth swings with each packet's arrival against the pulls; its smoothed level is what is
        // steered to the target, within less than a frame each way, so the buffer settles at its target
        // instead of anywhere in a band of frames around it (every delay that once deepened it stayed).
        if level < 0 { level = Double(depth) } else { level += smoothing * (Double(depth) - level) }
        let excess = level - Double(target)
        windowLow = min(windowLow, depth)
        windowPulls += 1
        if windowPulls * frame * 2 >= Int(rate) { recentLow = windowLow; windowLow = Int.max; windowPulls = 0 }
        // A frame may go only if the buffer held two at its lowest over the last half second or more:
        // one less still never runs dry where this stream's arrivals and our pulls meet.
        let room = min(windowLow, recentLow) >= 2 * frame
        // Too deep: drop one frame, preferably silence, and at once when far too deep; when the excess
        // lasts through half a second of continuous speech (a teacher who never pauses), one speech frame
        // then, so latency comes back down within a second instead of at the next pause.
        if excess > 0.6 * Double(frame) { excessPulls += 1 } else { excessPulls = 0 }
        if excess > 0.6 * Double(frame), room || depth > target + 6 * frame, let slot = find(nextSequence),
           lastWasSilence || depth > target + 6 * frame || excessPulls * frame * 2 >= Int(rate) {
            slotSequence[slot] = -1
            nextSequence += 1
            playout += Int64(frame)
            statistics.discarded += 1
            excessPulls = 0
            level -= Double(frame)
            if windowLow != Int.max { windowLow -= frame }
            if recentLow != Int.max { recentLow -= frame }
        }
        // Too shallow after the jitter rose: play one concealed frame without advancing.
        if excess < -0.9 * Double(frame) && depth < target && depth > 0 && statistics.received > 10 {
            statistics.stretched += 1
            _ = decoder.conceal(into: out)
            lastWasSilence = false
            level += Double(frame)
            return .concealed
        }

        if let slot = find(nextSequence) {
            let ts = slotTimestamp[slot]
            if ts > playout + Int64(frame / 2) {
                // DTX: the sender paused; play silence until its next packet is due.
                playout += Int64(frame)
                fillSilence(out)
                return .silence
            }
            return play(slot, into: out)
        }
        // The packet for this frame is missing. It is lost once anything after it arrived: a later
        // timestamp, or (when jitter keeps every arrival just in time) a later sequence number; waiting
        // for it would hold the stream silent while its successors arrive.
        let later = highestTimestamp >= playout + Int64(frame) || highestSequence > nextSequence
        guard later else {
            // Nothing newer either: the stream stalled or paused. Conceal briefly, then silence, and wait.
            if stalledSequence == nextSequence { stalledTurns += 1 } else { stalledSequence = nextSequence; stalledTurns = 1 }
            if lastWasSilence { fillSilence(out); playout += Int64(frame); return .silence }
            _ = decoder.conceal(into: out)
            statistics.concealed += 1
            lastWasSilence = true
            playout += Int64(frame)
            return .concealed
        }
        statistics.lost += 1
        nextSequence += 1
        if stalledSequence == nextSequence - 1 {
            // Its turn (and those of the missing packets after it, in a burst) was already played as
            // concealment while nothing newer had come: go straight on with the next packet, or the
            // stream would fall further behind with every loss.
            var owed = stalledTurns - 1
            stalledSequence = -1
            stalledTurns = 0
            while owed > 0 && find(nextSequence) == nil && nextSequence < highestSequence {
                statistics.lost += 1
                nextSequence += 1
                owed -= 1
            }
            if let slot = find(nextSequence), slotTimestamp[slot] <= playout + Int64(frame / 2) {
                return play(slot, into: out)
            }
        }
        playout += Int64(frame)
        if let next = find(nextSequence) {
            let n = decoder.decode(UnsafeRawBufferPointer(start: slotData + next * slotSize, count: slotLength[next]), into: out, fec: true)
            if n == frame { statistics.recovered += 1; return .recovered }
        }
        _ = decoder.conceal(into: out)
        statistics.concealed += 1
        return .concealed
    }

    /// Decodes the packet in `slot` (the next in sequence) and moves playout past it.
    private func play(_ slot: Int, into out: UnsafeMutableBufferPointer<Float>) -> JitterFrame {
        let n = decoder.decode(UnsafeRawBufferPointer(start: slotData + slot * slotSize, count: slotLength[slot]), into: out)
        slotSequence[slot] = -1
        nextSequence += 1
        playout = slotTimestamp[slot] + Int64(frame)
        if n < 0 {
            statistics.malformed += 1
            _ = decoder.conceal(into: out)
            statistics.concealed += 1
            return .concealed
        }
        lastWasSilence = isQuiet(out)
        return .decoded
    }

    private func find(_ sequence: Int64) -> Int? {
        let slot = Int(sequence % Int64(capacity))
        return slotSequence[slot] == sequence ? slot : nil
    }

    /// Target = spread of the recent transit times (95th percentile over the minimum) plus one frame,
    /// within the configured bounds and at least two frames; recomputed every 25 frames.
    private func updateTarget() {
        pullsSinceTarget += 1
        guard pullsSinceTarget >= 25, transitCount >= 10 else { return }
        pullsSinceTarget = 0
        transitScratch.update(from: transit, count: transitCount)
        var low = Double.infinity
        for i in 0..<transitCount where transitScratch[i] < low { low = transitScratch[i] }
        let rank = Int(Double(transitCount - 1) * 0.95)
        let p95 = quickselect(transitScratch, count: transitCount, rank: rank)
        let wanted = Int(p95 - low) + frame
        // Never below two frames (the one playing and the next): with less, the packet after a lost one
        // has never arrived in time for its in-band FEC to rebuild it, and every loss is concealed.
        target = max(minTarget, 2 * frame, min(maxTarget, wanted))
    }

    private func fillSilence(_ out: UnsafeMutableBufferPointer<Float>) {
        for i in 0..<out.count { out[i] = 0 }
        lastWasSilence = true
    }

    private func isQuiet(_ out: UnsafeMutableBufferPointer<Float>) -> Bool {
        var energy: Float = 0
        for i in 0..<out.count { energy += out[i] * out[i] }  // (for-in over the buffer allocates in debug builds)
        return energy / Float(out.count) < 1e-6  // below -60 dBFS
    }

    private func unwrap(_ v: Int64, around last: Int64, modulus: Int64, first: Bool) -> Int64 {
        guard !first else { return v + modulus }  // start one cycle up so early reordering stays positive
        let base = last - (last % modulus)
        var candidate = base + v
        if candidate - last > modulus / 2 { candidate -= modulus } else if last - candidate > modulus / 2 { candidate += modulus }
        return candidate
    }
}
