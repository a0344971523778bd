/// Measures how fast a sound card's clock runs, from (monotonic time, frame position) pairs taken at
/// every period, and from two such clocks their drift in parts per million.
///
/// A straight line is fitted by least squares over a sliding window (default 60 s); the fit is redone
/// once without the points whose residual exceeds four times the median absolute residual, so a late
/// wake-up, a USB frame boundary or an xrun does not tilt it. After construction nothing allocates.
public struct ClockRateEstimator {
    private var times: [Double]
    private var positions: [Double]
    private var residuals: [Double]
    private var count = 0
    private var next = 0
    private var origin: (time: Int64, position: Double)? = nil
    /// The rate the device claims (Hz); estimates are relative to it.
    public let nominalRate: Double

    /// An estimator keeping the last `capacity` points (e.g. 60 s of 10 ms periods = 6000).
    public init(nominalRate: Int, capacity: Int = 6000) {
        self.nominalRate = Double(nominalRate)
        times = [Double](repeating: 0, count: capacity)
        positions = [Double](repeating: 0, count: capacity)
        residuals = [Double](repeating: 0, count: capacity)
    }

    /// Forgets everything (after a reopen or an xrun that broke the frame count).
    public mutating func reset() {
        count = 0
        next = 0
        origin = nil
    }

    /// Adds one observation: at `nanoseconds` (CLOCK_MONOTONIC) the device had converted `position` frames.
    public mutating func add(nanoseconds: Int64, position: Double) {
        if origin == nil { origin = (nanoseconds, position) }
        guard let origin else { return }
        times[next] = Double(nanoseconds &- origin.time) * 1e-9
        positions[next] = position - origin.position
        next = (next + 1) % times.count
        count = min(count + 1, times.count)
    }

    /// Seconds covered by the points held.
    public var span: Double {
        guard count > 1 else { return 0 }
        let newest = (next - 1 + times.count) % times.count
        let oldest = count < times.count ? 0 : next
        return times[newest] - times[oldest]
    }

    /// The measured rate in Hz, or nil with fewer than 2 s of points.
    public mutating func rate() -> Double? {
        guard count >= 10, span >= 2 else { return nil }
        guard let first = fit(limit: .infinity) else { return nil }
        for i in 0..<count { residuals[i] = abs(positions[i] - (first.intercept + first.slope * times[i])) }
        let median = Self.median(&residuals, count: count)
        let limit = max(4 * median, 1e-9)
        return fit(limit: limit, line: first)?.slope ?? first.slope
    }

    /// Deviation of the measured rate from the nominal one, in ppm.
    public mutating func ppm() -> Double? { rate().map { ($0 / nominalRate - 1) * 1e6 } }

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

    /// Median of the first `count` values (reorders them), by quickselect: no allocation.
    static func median(_ values: inout [Double], count: Int) -> Double {
        var low = 0, high = count - 1
        let k = count / 2
        while low < high {
            let pivot = values[(low + high) / 2]
            var i = low, j = high
            while i <= j {
                while values[i] < pivot { i += 1 }
                while values[j] > pivot { j -= 1 }
                if i <= j { values.swapAt(i, j); i += 1; j -= 1 }
            }
            if k <= j { high = j } else if k >= i { low = i } else { break }
        }
        return values[k]
    }
}

/// The drift between a capture and a playback clock: how many ppm faster the microphone's clock runs
/// than the loudspeaker's. Positive means the capture side produces more samples per second.
public struct ClockDriftEstimator {
    /// The capture clock.
    public var capture: ClockRateEstimator
    /// The playback clock.
    public var playback: ClockRateEstimator

    /// Estimators for two devices with the same nominal rate.
    public init(nominalRate: Int, capacity: Int = 6000) {
        capture = ClockRateEstimator(nominalRate: nominalRate, capacity: capacity)
        playback = ClockRateEstimator(nominalRate: nominalRate, capacity: capacity)
    }

    /// Capture rate over playback rate minus one, in ppm; nil until both clocks have 2 s of points.
    public mutating func driftPPM() -> Double? {
        guard let c = capture.rate(), let p = playback.rate() else { return nil }
        return (c / p - 1) * 1e6
    }
}
