// Proof that the real-time path allocates nothing. The test executable replaces malloc and friends with
// per-thread counting wrappers (the CAllocationCounter test-support target).
#if canImport(Glibc)
import CAllocationCounter
import Glibc
import Testing
@testable import EchoCancel

private func allocationsBegin() { cb_allocations_begin() }
private func allocationsEnd() -> Int { cb_allocations_end() }
private func allocationsInterposed() -> Int32 { cb_allocations_interposed() }

/// The counting allocator's entry points.
struct AllocationCounter {
    /// nil when this process's malloc is not the counting one.
    init?() {
        guard allocationsInterposed() == 1 else { return nil }
    }

    /// Allocations made by the calling thread while `body` runs.
    func count(_ body: () -> Void) -> Int {
        allocationsBegin()
        body()
        return allocationsEnd()
    }
}

@Suite("Real-time discipline")
struct AllocationTests {
    @Test("shifting and realigning filters allocates nothing")
    func shiftAllocatesNothing() throws {
        let counter = try #require(AllocationCounter())
        let f = PartitionedFilter(partitions: 8)
        var core = CancellerCore(mainPartitions: 8, shadowPartitions: 4)
        _ = f.onset()   // first call: runtime metadata
        let n = counter.count {
            f.shift(by: 2)
            f.shift(by: -3)
            _ = f.onset()
            _ = core.main.peak()
        }
        _ = core.alignment
        #expect(n == 0)
    }

    @Test("the counter really sees an allocation")
    func counterDetectsAllocation() throws {
        let counter = try #require(AllocationCounter(), "the counting allocator is not linked into this test binary")
        var sink = 0
        let n = counter.count {
            let a = [Float](repeating: 1, count: 100 + sink)
            sink &+= a.count
        }
        #expect(n >= 1)
        #expect(sink > 0)
    }

    @Test("render and process allocate nothing across 300 frames", arguments: [16000, 48000])
    func noAllocations(rate: Int) throws {
        let counter = try #require(AllocationCounter(), "the counting allocator is not linked into this test binary")
        var aec = try EchoCanceller(EchoCancellerConfiguration(sampleRate: rate))
        let frame = aec.frameLength
        let far = TestSignals.speechLike(count: frame * 300, level: 0.1, seed: 71, rate: rate)
        let mic = far.indices.map { $0 >= 800 ? 0.5 * far[$0 - 800] + 0.01 * far[$0] : 0 }
        var out = [Float](repeating: 0, count: frame)
        let allocations = far.withUnsafeBufferPointer { f in
            mic.withUnsafeBufferPointer { m in
                out.withUnsafeMutableBufferPointer { o in
                    // The harness's own first use of buffer slices instantiates runtime metadata (allocates
                    // once per process): touch it before counting. The canceller warmed itself up in init.
                    _ = UnsafeBufferPointer(rebasing: f[0..<frame]).count + UnsafeBufferPointer(rebasing: m[0..<frame]).count
                    return counter.count {
                        for i in 0..<300 {
                            let r = i * frame..<(i + 1) * frame
                            aec.render(UnsafeBufferPointer(rebasing: f[r]))
                            aec.process(capture: UnsafeBufferPointer(rebasing: m[r]), output: o)
                        }
                    }
                }
            }
        }
        #expect(allocations == 0)
        #expect(aec.statistics.delayChanges > 0 || rate == 48000, "the run should include a realignment")
        #expect(aec.statistics.framesProcessed == 300)
    }
}
#endif
