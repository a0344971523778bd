import Foundation

/// Measures of a recorded lesson from its separate parts, with the same frame labels as the echo
/// canceller evaluation kit: 10 ms frames; echo-active within 40 dB of the loudest echo frame and 6 dB
/// above the noise; pupil-active within 45 dB of the loudest pupil frame, widened by 100 ms.
public struct LessonAnalysis: Sendable, Codable, Equatable {
    /// Peak and RMS level of a signal.
    public struct Level: Sendable, Codable, Equatable {
        /// Peak level in dBFS.
        public var peakDbfs: Double
        /// RMS level in dBFS.
        public var rmsDbfs: Double
    }
    /// Loudspeaker level.
    public var speaker: Level
    /// Microphone level.
    public var mic: Level
    /// Level of what the box sends.
    public var processed: Level
    /// Seconds of far-end single talk (echo active, pupil silent).
    public var farOnlySeconds: Double
    /// Seconds of double talk.
    public var doubleTalkSeconds: Double
    /// Seconds of near-end single talk (pupil active, no echo).
    public var nearOnlySeconds: Double
    /// Echo energy over pupil energy at the microphone during double talk.
    public var echoToPupilDb: Double?
    /// Echo return loss enhancement over far-end single talk: 10 log10(mic energy / output energy).
    public var erleDb: Double?
    /// Attenuation of the pupil's voice in the output during double talk (least-squares gain).
    public var doubleTalkNearLossDb: Double?
    /// Loudspeaker-to-microphone delay found by cross-correlating the loudspeaker and microphone signals.
    public var measuredEchoDelayMs: Double?

    /// Analyses a lesson from the loudspeaker signal, the microphone, the processed output and the two
    /// components the microphone heard (echo and pupil), all of equal length.
    public init(sampleRate: Int, speaker: [Float], mic: [Float], processed: [Float], echo: [Float], pupil: [Float]) {
        self.speaker = Self.level(speaker)
        self.mic = Self.level(mic)
        self.processed = Self.level(processed)
        let frame = sampleRate / 100
        let count = mic.count / frame
        func energies(_ x: [Float]) -> [Double] {
            (0..<count).map { f in
                var e = 0.0
                for i in f * frame..<(f + 1) * frame { e += Double(x[i]) * Double(x[i]) }
                return e
            }
        }
        let echoE = energies(echo), pupilE = energies(pupil), micE = energies(mic), outE = energies(processed)
        let noiseE = zip(micE, zip(echoE, pupilE)).map { max($0 - $1.0 - $1.1, 0) }
        let noiseFloor = noiseE.sorted()[noiseE.count / 2]
        let echoMax = echoE.max() ?? 0, pupilMax = pupilE.max() ?? 0
        let echoActive = echoE.map { $0 > echoMax * 1e-4 && $0 > noiseFloor * 3.98 && $0 > 0 }
        let pupilRaw = pupilE.map { $0 > pupilMax * pow(10, -4.5) && $0 > 0 }
        var pupilActive = pupilRaw
        for (f, active) in pupilRaw.enumerated() where active {
            for g in max(0, f - 10)...min(count - 1, f + 10) { pupilActive[g] = true }
        }
        var far = 0, both = 0, near = 0
        var farMic = 0.0, farOut = 0.0, dtEcho = 0.0, dtPupil = 0.0, dtCross = 0.0
        for f in 0..<count {
            switch (echoActive[f], pupilActive[f]) {
            case (true, false): far += 1; farMic += micE[f]; farOut += outE[f]
            case (true, true):
                both += 1; dtEcho += echoE[f]; dtPupil += pupilE[f]
                for i in f * frame..<(f + 1) * frame { dtCross += Double(processed[i]) * Double(pupil[i]) }
            case (false, true): near += 1
            case (false, false): break
            }
        }
        farOnlySeconds = Double(far) / 100
        doubleTalkSeconds = Double(both) / 100
        nearOnlySeconds = Double(near) / 100
        echoToPupilDb = both > 0 && dtPupil > 0 ? 10 * log10(dtEcho / dtPupil) : nil
        erleDb = far > 0 && farOut > 0 ? 10 * log10(farMic / farOut) : nil
        if both > 0, dtPupil > 0 {
            let gain = dtCross / dtPupil
            doubleTalkNearLossDb = gain > 1e-6 ? -20 * log10(gain) : 60
        }
        measuredEchoDelayMs = Self.delay(speaker: speaker, mic: mic, sampleRate: sampleRate).map { $0 * 1000 }
    }

    static func level(_ x: [Float]) -> Level {
        var peak: Float = 0, sum = 0.0
        for v in x { peak = max(peak, abs(v)); sum += Double(v) * Double(v) }
        let rms = (sum / Double(max(x.count, 1))).squareRoot()
        return Level(peakDbfs: 20 * log10(max(Double(peak), 1e-10)), rmsDbfs: 20 * log10(max(rms, 1e-10)))
    }

    /// The lag (0-500 ms) that best aligns `mic` with `speaker`, found at 8 kHz on the loudest 4 s.
    static func delay(speaker: [Float], mic: [Float], sampleRate: Int) -> Double? {
        let factor = max(1, sampleRate / 8000)
        func decimate(_ x: [Float]) -> [Float] {
            stride(from: 0, to: x.count - factor + 1, by: factor).map { i in
                var s: Float = 0
                for k in 0..<factor { s += x[i + k] }
                return s / Float(factor)
            }
        }
        let s = decimate(speaker), m = decimate(mic)
        let rate = Double(sampleRate / factor)
        let window = Int(4 * rate), maxLag = Int(0.5 * rate)
        guard s.count > window + maxLag else { return nil }
        // Start where the loudspeaker is loudest over a 4 s window (coarse 0.5 s steps).
        var bestStart = 0, bestEnergy = 0.0
        for start in stride(from: 0, to: s.count - window - maxLag, by: Int(rate / 2)) {
            var e = 0.0
            for i in start..<start + window { e += Double(s[i]) * Double(s[i]) }
            if e > bestEnergy { bestEnergy = e; bestStart = start }
        }
        guard bestEnergy > 0 else { return nil }
        var bestLag = 0, bestValue = -Double.infinity
        s.withUnsafeBufferPointer { sp in
            m.withUnsafeBufferPointer { mp in
                for lag in 0...maxLag {
                    var c: Float = 0
                    for i in bestStart..<bestStart + window { c += sp[i] * mp[i + lag] }
                    if Double(abs(c)) > bestValue { bestValue = Double(abs(c)); bestLag = lag }
                }
            }
        }
        return Double(bestLag) / rate
    }
}
