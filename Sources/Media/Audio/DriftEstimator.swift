/// Measures how fast a sound card's clock runs, from (monotonic time, frame position) pairs taken at
/// every period, and from two such clocks their drift in parts per million.
///
/// A straight line is fitted by least squares over a sliding window (default 60 s); the fit is redone
/// once without the points whose residual exceeds four times the median absolute residual, so a late
/// wake-up, a USB frame boundary or an xrun does not tilt it. After construction nothing allocates
/// (storage is raw memory: array accessors on stored properties allocate in debug builds).
public final class ClockRateEstimator {
    private let capacity: Int
    private let times: UnsafeMutablePointer<Double>
    private let positions: UnsafeMutablePointer<Double>
    private let residuals: UnsafeMutablePointer<Double>
    private var count = 0
    private var next = 0
    private var origin: (time: Int64, position: Double)? = nil
    /// The rate the device claims (Hz); estimates are relative to it.
    public let nominalRate: Double

    /// An estimator keeping the last `capacity` points (e.g. 60 s of 10 ms periods = 6000).
    public init(nominalRate: Int, capacity: Int = 6000) {
        self.nominalRate = Double(nominalRate)
        self.capacity = capacity
        times = .allocate(capacity: capacity)
        times.initialize(repeating: 0, count: capacity)
        positions = .allocate(capacity: capacity)
        positions.initialize(repeating: 0, count: capacity)
        residuals = .allocate(capacity: capacity)
        residuals.initialize(repeating: 0, count: capacity)
    }

    deinit {
        times.deallocate()
        positions.deallocate()
        residuals.deallocate()
    }

    /// Forgets everything (after a reopen or an xrun that broke the frame count).
    public func reset() {
        count = 0
        next = 0
        origin = nil
    }

    /// Adds one observation: at `nanoseconds` (CLOCK_MONOTONIC) the device had converted `position` frames.
    public func add(nanoseconds: Int64, position: Double) {
        if origin == nil { origin = (nanoseconds, position) }
        guard let origin else { return }
        times[next] = Double(nanoseconds &- origin.time) * 1e-9
        positions[next] = position - origin.position
        next = (next + 1) % capacity
        count = min(count + 1, capacity)
    }

    /// Seconds covered by the points held.
    public var span: Double {
        guard count > 1 else { return 0 }
        let newest = (next - 1 + capacity) % capacity
        let oldest = count < capacity ? 0 : next
        return times[newest] - times[oldest]
    }

    /// The measured rate in Hz, or nil with fewer than 2 s of points.
    public func rate() -> Double? {
        guard count >= 10, span >= 2 else { return nil }
        guard let first = fit(limit: .infinity) else { return nil }
        for i in 0..<count { residuals[i] = abs(positions[i] - (first.intercept + first.slope * times[i])) }
        let median = Self.median(residuals, count: count)
        let limit = max(4 * median, 1e-9)
        return fit(limit: limit, line: first)?.slope ?? first.slope
    }

    /// Deviation of the measured rate from the nominal one, in ppm.
    public func ppm() -> Double? { rate().map { ($0 / nominalRate - 1) * 1e6 } }

    private func fit(limit: Double, line: (slope: Double, intercept: Double)? = nil) -> (slope: Double, intercept: Double)? {
        var n = 0.0, st = 0.0, sx = 0.0
        for i in 0..<count {
            if let line, abs(positions[i] - (line.intercept + line.slope * times[i])) > limit { continue }
            n += 1; st += times[i]; sx += positions[i]
        }
        guard n >= 2 else { return nil }
        let mt = st / n, mx = sx / n
        var stt = 0.0, stx = 0.0
        for i in 0..<count {
            if let line, abs(positions[i] - (line.intercept + line.slope * times[i])) > limit { continue }
            let dt = times[i] - mt
            stt += dt * dt; stx += dt * (positions[i] - mx)
        }
        guard stt > 0 else { return nil }
        let slope = stx / stt
        return (slope, mx - slope * mt)
    }

    /// Median of the first `count` values (reorders them).
    static func median(_ values: UnsafeMutablePointer<Double>, count: Int) -> Double {
        quickselect(values, count: count, rank: count / 2)
    }
}

/// The value of rank `rank` among the first `count` values, reordering them in place (Hoare's
/// quickselect): order statistics on the real-time path without allocating or sorting.
func quickselect(_ values: UnsafeMutablePointer<Double>, count: Int, rank: Int) -> Double {
    var low = 0, high = count - 1
    while low < high {
        let pivot = values[(low + high) / 2]
        var i = low, j = high
        while i <= j {
            while values[i] < pivot { i += 1 }
            while values[j] > pivot { j -= 1 }
            if i <= j { (values[i], values[j]) = (values[j], values[i]); i += 1; j -= 1 }
        }
        if rank <= j { high = j } else if rank >= i { low = i } else { break }
    }
    return values[rank]
}

/// The drift between a capture and a playback clock: how many ppm faster the microphone's clock runs
/// than the loudspeaker's. Positive means the capture side produces more samples per second.
public struct ClockDriftEstimator {
    /// The capture clock.
    public let capture: ClockRateEstimator
    /// The playback clock.
    public let playback: ClockRateEstimator

    /// Estimators for two devices with the same nominal rate.
    public init(nominalRate: Int, capacity: Int = 6000) {
        capture = ClockRateEstimator(nominalRate: nominalRate, capacity: capacity)
        playback = ClockRateEstimator(nominalRate: nominalRate, capacity: capacity)
    }

    /// Capture rate over playback rate minus one, in ppm; nil until both clocks have 2 s of points.
    public func driftPPM() -> Double? {
        guard let c = capture.rate(), let p = playback.rate() else { return nil }
        return (c / p - 1) * 1e6
    }
}
