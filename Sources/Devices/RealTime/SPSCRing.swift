import Synchronization

/// A lock-free single-producer, single-consumer ring of `Float` samples: the only way audio crosses
/// between the real-time threads. One thread writes, one other thread reads; neither ever waits, locks
/// or allocates. Indexes only grow (wrapping at `Int.max` is centuries away at 48 kHz).
public final class SPSCRing: @unchecked Sendable {
    // Sendable by protocol, not by the compiler: exactly one producer thread calls `write`, exactly one
    // consumer thread calls `read`/`discard`; `head` and `tail` carry the hand-over with acquire/release.
    private let storage: UnsafeMutablePointer<Float>
    /// Samples the ring holds at most.
    public let capacity: Int
    private let mask: Int
    private let head = Atomic<Int>(0)  // total samples written (producer owns)
    private let tail = Atomic<Int>(0)  // total samples read (consumer owns)

    /// A ring of at least `minimumCapacity` samples (rounded up to a power of two).
    public init(minimumCapacity: Int) {
        var size = 1
        while size < max(minimumCapacity, 2) { size <<= 1 }
        capacity = size
        mask = size - 1
        storage = .allocate(capacity: size)
        storage.initialize(repeating: 0, count: size)
    }

    deinit { storage.deallocate() }

    /// Samples ready to read.
    public var readable: Int { head.load(ordering: .acquiring) &- tail.load(ordering: .acquiring) }
    /// Room for samples to write.
    public var writable: Int { capacity &- readable }

    /// Producer: appends as many of `samples` as fit; returns how many were written.
    @discardableResult
    public func write(_ samples: UnsafeBufferPointer<Float>) -> Int {
        let h = head.load(ordering: .relaxed)
        let t = tail.load(ordering: .acquiring)
        let count = min(samples.count, capacity &- (h &- t))
        guard count > 0, let source = samples.baseAddress else { return 0 }
        let start = h & mask
        let first = min(count, capacity &- start)
        (storage + start).update(from: source, count: first)
        if first < count { storage.update(from: source + first, count: count &- first) }
        head.store(h &+ count, ordering: .releasing)
        return count
    }

    /// Consumer: takes up to `destination.count` samples; returns how many were read.
    @discardableResult
    public func read(into destination: UnsafeMutableBufferPointer<Float>) -> Int {
        let t = tail.load(ordering: .relaxed)
        let h = head.load(ordering: .acquiring)
        let count = min(destination.count, h &- t)
        guard count > 0, let target = destination.baseAddress else { return 0 }
        let start = t & mask
        let first = min(count, capacity &- start)
        target.update(from: storage + start, count: first)
        if first < count { (target + first).update(from: storage, count: count &- first) }
        tail.store(t &+ count, ordering: .releasing)
        return count
    }

    /// Consumer: drops up to `count` of the oldest samples; returns how many were dropped.
    @discardableResult
    public func discard(_ count: Int) -> Int {
        let t = tail.load(ordering: .relaxed)
        let n = min(count, head.load(ordering: .acquiring) &- t)
        tail.store(t &+ max(n, 0), ordering: .releasing)
        return max(n, 0)
    }
}
