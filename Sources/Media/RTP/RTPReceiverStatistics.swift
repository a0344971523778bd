/// What a receiver knows about one incoming RTP source (RFC 3550 §6.4.1 and appendix A): extended
/// highest sequence number with wrap-around, packets expected and lost, interarrival jitter, and the
/// fraction lost since the last report. Validates a new source over two packets (probation) and
/// re-synchronises after a large jump, as A.1 describes.
public struct RTPReceiverStatistics: Sendable {
    /// Sequence-number jumps beyond this restart the count (after one confirming packet).
    static let maxDropout: UInt32 = 3000
    /// Out-of-order packets older than this are taken for a restarted sender.
    static let maxMisorder: UInt32 = 100

    private var maxSeq: UInt16 = 0
    private var cycles: UInt32 = 0
    private var baseSeq: UInt32 = 0
    private var badSeq: UInt32 = 1 << 17  // RTP_SEQ_MOD + 1: "none"
    private var probation = 2
    private var started = false
    /// Packets received (duplicates included, as RFC 3550 counts them).
    public private(set) var received: UInt32 = 0
    private var expectedPrior: UInt32 = 0
    private var receivedPrior: UInt32 = 0
    private var transit: Double? = nil
    /// Interarrival jitter in timestamp units.
    public private(set) var jitter: Double = 0
    /// Packets refused as out of the valid sequence window.
    public private(set) var discarded = 0

    /// Empty statistics; the first packets validate the source.
    public init() {}

    /// The extended highest sequence number received (cycles × 65536 + highest).
    public var extendedHighest: UInt32 { cycles &+ UInt32(maxSeq) }
    /// Packets expected from the first to the highest sequence number.
    public var expected: UInt32 { extendedHighest &- baseSeq &+ 1 }
    /// Cumulative packets lost (may be negative with duplicates; clamped as RFC 3550 allows 24 bits).
    public var cumulativeLost: Int32 { Int32(truncatingIfNeeded: Int64(expected) - Int64(received)) }

    /// Accounts a packet with `sequence`, arriving at `arrival` (in timestamp units) with `timestamp`.
    /// Returns false when the packet is refused (probation, or a jump awaiting confirmation).
    @discardableResult
    public mutating func record(sequence: UInt16, timestamp: UInt32, arrival: Double) -> Bool {
        let seq = sequence
        if !started {
            start(seq)
            maxSeq = seq &- 1
            probation = 2
            started = true
        }
        let delta = UInt32(seq &- maxSeq)
        if probation > 0 {
            if seq == maxSeq &+ 1 {
                probation -= 1
                maxSeq = seq
                if probation == 0 {
                    start(seq)
                    received += 1
                    updateJitter(timestamp: timestamp, arrival: arrival)
                    return true
                }
            } else {
                probation = 1
                maxSeq = seq
            }
            return false
        } else if delta < Self.maxDropout {
            if seq < maxSeq { cycles &+= 65536 }  // wrapped
            maxSeq = seq
        } else if delta <= 65536 - Self.maxMisorder {
            // A very large jump: accept only if the next packet confirms the new sequence.
            if UInt32(seq) == badSeq {
                start(seq)
            } else {
                badSeq = (UInt32(seq) + 1) & 0xFFFF
                discarded += 1
                return false
            }
        }
        // else: duplicate or reordered within the window: counted, not moving the maximum.
        received += 1
        updateJitter(timestamp: timestamp, arrival: arrival)
        return true
    }

    private mutating func start(_ seq: UInt16) {
        baseSeq = UInt32(seq)
        maxSeq = seq
        badSeq = 1 << 17
        cycles = 0
        received = 0
        receivedPrior = 0
        expectedPrior = 0
    }

    private mutating func updateJitter(timestamp: UInt32, arrival: Double) {
        let t = arrival - Double(timestamp)
        if let previous = transit {
            var d = abs(t - previous)
            if d > 1_073_741_824 { d = 0 }  // a timestamp wrap or a new source: skip one sample
            jitter += (d - jitter) / 16
        }
        transit = t
    }

    /// The fraction lost since the previous call (8-bit fixed point, as in a report block), and resets
    /// the interval.
    public mutating func fractionLostSinceLastReport() -> UInt8 {
        let expectedInterval = expected &- expectedPrior
        let receivedInterval = received &- receivedPrior
        expectedPrior = expected
        receivedPrior = received
        guard expectedInterval > 0, expectedInterval > receivedInterval else { return 0 }
        return UInt8(min(255, ((expectedInterval - receivedInterval) << 8) / expectedInterval))
    }
}
