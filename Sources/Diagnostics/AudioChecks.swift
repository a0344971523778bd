public import BoxConfig
import Devices
import EchoCancel
import Foundation

/// The speaker, microphone, clock and echo-canceller checks: each plays a test signal through the
/// room and measures what the microphone heard.
public enum AudioChecks {
    /// The loop the board's audio backend gives (the simulated room, or the ALSA cards).
    public static func loop(for board: BoardProfile) -> (any AcousticLoop)? {
        switch board.audio.backend {
        case .sim:
            guard let room = board.simRoom else { return nil }
            return SimulatedAcousticLoop(spec: room, rate: board.audio.rate)
        case .alsa:
            return ALSAAcousticLoop(spec: board.audio)
        }
    }

    static let busyRemedy = "Stop the service with `sudo systemctl stop classbox` and run `classbox diagnose` again, or run `classbox diagnose --while-running` to skip the sound tests during a lesson."

    /// A device error as a result a teacher (and a technician) can act on.
    static func result(for error: ALSAError, check: DiagnosticCheck, board: BoardProfile) -> CheckResult {
        let what = error.stream == .capture ? "microphone" : "speaker"
        let cards = (error.stream == .capture ? board.audio.captureCards : board.audio.playbackCards).joined(separator: " or ")
        let detail = [Measurement("device", text: error.device), Measurement("error", text: error.description)]
        switch error.kind {
        case .busy:
            return check.result(.warn, "Could not test: the classbox service (or another program) is using the \(what) (\(error.device)).",
                                remedy: busyRemedy, detail)
        case .notFound, .gone:
            return check.result(.fail, "The \(what)'s sound card (\(cards.isEmpty ? error.device : cards)) is not there.",
                                remedy: "Plug in the USB speakerphone or check its cable (and that its driver is loaded), then run `classbox devices` to see the sound cards the box finds.", detail)
        case .permissionDenied:
            return check.result(.fail, "Not allowed to open the \(what) (\(error.device)).",
                                remedy: "Run diagnose as root (`sudo classbox diagnose`) or as a member of the 'audio' group.", detail)
        case .refusedParameter(let parameter):
            return check.result(.fail, "The \(what) does not accept the board profile's \(parameter).",
                                remedy: "Fix the board profile's [audio] section: \(error.detail).", detail)
        case .failed:
            return check.result(.fail, "The \(what) failed: \(error.detail).",
                                remedy: "Unplug and replug the sound card, or restart the box; if it persists, report this.", detail)
        }
    }

    static func skipped(_ check: DiagnosticCheck, _ context: DiagnoseContext) -> CheckResult? {
        if context.whileRunning {
            return check.result(.skip, "Skipped: the classbox service is running and holds the microphone and speaker (--while-running).")
        }
        if context.board.audio.backend == .sim && context.board.simRoom == nil {
            return check.result(.skip, "Skipped: the simulated board has no [sim] room.")
        }
        return nil
    }

    /// The card delivered less than was played: it stalled.
    static func shortRecording(_ check: DiagnosticCheck, got: Int, wanted: Int, rate: Int) -> CheckResult? {
        guard got < wanted else { return nil }
        return check.result(.fail, String(format: "The microphone's sound card delivered only %.1f s of a %.1f s recording.", Double(got) / Double(rate), Double(wanted) / Double(rate)),
                            remedy: "Unplug and replug the sound card (or restart the box); check that no other program uses it.")
    }

    static let noEchoRemedy = "Check that the speaker is switched on, its volume is up and its cable is plugged in, and that the microphone is not muted or covered; then run diagnose again."

    // MARK: Speaker and microphone

    /// Bands of the frequency-response sketch (Hz).
    static let bands: [(Double, Double)] = [(125, 250), (250, 500), (500, 1000), (1000, 2000), (2000, 4000), (4000, 8000)]

    /// Plays a sweep and measures delay, echo level (ERL), noise floor, SNR, clipping, dead channels
    /// and a coarse frequency response.
    public static let speakerAndMicrophone = DiagnosticCheck(id: "audio", title: "Speaker and microphone", timeoutSeconds: 30) { check, context in
        if let skip = skipped(check, context) { return skip }
        guard let loop = loop(for: context.board) else { return check.result(.skip, "Skipped: this board has no sound devices.") }
        let rate = loop.rate
        let silence = Int(0.5 * Double(rate))
        let sweep = TestSignal.sweep(rate: rate, seconds: 1.5)
        let played = [Float](repeating: 0, count: silence) + sweep
        let recording: Recording
        do throws(ALSAError) { recording = try loop.playAndRecord(played, extraSeconds: 0.6) } catch {
            return result(for: error, check: check, board: context.board)
        }
        return analyse(check: check, played: played, silence: silence, sweep: sweep, recording: recording, rate: rate)
    }

    /// The audio check's analysis of one recording (separate, so tests can feed it recordings).
    static func analyse(check: DiagnosticCheck, played: [Float], silence: Int, sweep: [Float], recording: Recording, rate: Int) -> CheckResult {
        if let short = shortRecording(check, got: recording.mic.count, wanted: played.count, rate: rate) { return short }
        let mic = recording.mic
        let noise = Array(mic[Int(0.05 * Double(rate))..<min(silence - Int(0.05 * Double(rate)), mic.count)])
        let noiseFloor = Acoustics.dBFS(noise)
        var m: [Measurement] = [Measurement("noise_floor", noiseFloor, "dBFS")]
        let clipped = recording.channels.map { Acoustics.clippedSamples($0) }.reduce(0, +)
        guard let found = Acoustics.delay(of: played, in: mic, maxLag: min(Int(0.5 * Double(rate)) + recording.queuedFrames, mic.count)), found.prominence >= 6 else {
            return check.result(.fail, "The microphone did not hear the test sound from the speaker.", remedy: noEchoRemedy,
                                m + [Measurement("clipped_samples", Double(clipped), "")])
        }
        let delay = Int(found.samples.rounded())
        let start = min(delay + silence, mic.count), end = min(start + sweep.count, mic.count)
        let echoWindow = Array(mic[start..<end])
        let noisePower = Acoustics.power(noise)
        let echoPower = max(Acoustics.power(echoWindow) - noisePower, 1e-20)
        let erl = 10 * log10(Acoustics.power(sweep) / echoPower)
        let snr = 10 * log10(echoPower / max(noisePower, 1e-20))
        // On real cards the test's own queue (measured to about one period) is taken off: what is left
        // is the device path's delay; a digital loop (snd-aloop) has none, so it is floored at 0.
        let delayMs = max(0, found.samples - Double(recording.queuedFrames)) / Double(rate) * 1000
        m.insert(contentsOf: [Measurement("delay", delayMs, "ms"), Measurement("erl", erl, "dB"), Measurement("snr", snr, "dB")], at: 0)
        if recording.queuedFrames > 0 { m.append(Measurement("test_queue", Double(recording.queuedFrames) / Double(rate) * 1000, "ms")) }
        m.append(Measurement("clipped_samples", Double(clipped), ""))
        // Dead channels: digitally silent or 90 dB below full scale while the speaker plays.
        var dead: [Int] = []
        for (c, channel) in recording.channels.enumerated() {
            let window = channel[min(start, channel.count)..<min(end, channel.count)]
            if Acoustics.power(window) < 1e-9 { dead.append(c) }
        }
        m.append(Measurement("channels", Double(recording.channels.count), ""))
        if !dead.isEmpty { m.append(Measurement("dead_channels", text: dead.map(String.init).joined(separator: ","))) }
        let gains = Acoustics.bandGains(played: sweep, recorded: echoWindow, noise: noise, rate: rate, bands: bands)
        let median = gains.sorted()[gains.count / 2]
        for (band, gain) in zip(bands, gains) {
            m.append(Measurement("response_\(Int(band.0))_\(Int(band.1))Hz", gain - median, "dB"))
        }
        m.append(Measurement("xruns", Double(recording.xruns), ""))

        var warnings: [String] = [], remedies: [String] = []
        if snr < 10 {
            return check.result(.fail, String(format: "The speaker is barely audible at the microphone (%.0f dB above the room's noise).", snr),
                                remedy: "Turn the speaker up, move it closer to the box's microphone, or make the room quieter; then run diagnose again.", m)
        }
        if dead.count == recording.channels.count {
            return check.result(.fail, "The microphone records only silence.", remedy: noEchoRemedy, m)
        }
        if !dead.isEmpty { warnings.append("microphone channel \(dead.map(String.init).joined(separator: ", ")) records silence"); remedies.append("Check the microphone's cable and mute switch; if the device has one microphone, set the board profile's capture_channels to 1.") }
        if clipped > 0 { warnings.append("the sound is so loud it distorts"); remedies.append("Turn the speaker volume (or the microphone gain in alsamixer) down.") }
        if snr < 20 { warnings.append(String(format: "the speaker is quiet at the microphone (%.0f dB above the noise)", snr)); remedies.append("Turn the speaker up or move it closer.") }
        if noiseFloor > -40 { warnings.append(String(format: "the room or microphone is noisy (%.0f dBFS)", noiseFloor)); remedies.append("Find the noise (fan, projector, open window) or a better place for the box.") }
        if delayMs > 250 { warnings.append(String(format: "the sound takes %.0f ms from speaker to microphone", delayMs)); remedies.append("Use the sound card directly (no Bluetooth, no extra processing); the echo canceller works best below 250 ms.") }
        if erl < -10 { warnings.append("the speaker is much louder at the microphone than the sound sent to it"); remedies.append("Move the speaker away from the microphone or turn it down, so the echo canceller can keep up.") }
        if gains[0] - median < -20 { warnings.append("the speaker makes almost no bass"); remedies.append("Check the speaker (a damaged or tiny speaker loses bass).") }
        if gains[gains.count - 1] - median < -20 { warnings.append("high tones are missing"); remedies.append("Check that nothing covers the microphone or the speaker.") }
        if recording.xruns > 0 { warnings.append("the sound card lost samples \(recording.xruns) time(s)"); remedies.append("Check the USB cable and what else runs on the box.") }
        let base = String(format: "The microphone hears the speaker %.0f ms after it plays, %.0f dB above the room's noise.", delayMs, snr)
        if warnings.isEmpty { return check.result(.pass, base, m) }
        return check.result(.warn, base + " But " + warnings.joined(separator: "; ") + ".", remedy: remedies.joined(separator: " "), m)
    }

    // MARK: Clock drift

    /// Plays three short sweeps over a measured interval and fits how their echo delay moves: the
    /// capture clock's drift against the playback clock in ppm.
    public static let clockDrift = DiagnosticCheck(id: "drift", title: "Clock drift", timeoutSeconds: 40) { check, context in
        if let skip = skipped(check, context) { return skip }
        guard let loop = loop(for: context.board) else { return check.result(.skip, "Skipped: this board has no sound devices.") }
        // The simulated room runs faster than real time: measure over a longer interval there.
        let interval = context.board.audio.backend == .sim ? 10.0 : context.driftIntervalSeconds
        return measureDrift(check: check, loop: loop, intervalSeconds: interval, board: context.board)
    }

    static func measureDrift(check: DiagnosticCheck, loop: any AcousticLoop, intervalSeconds: Double, board: BoardProfile) -> CheckResult {
        let rate = loop.rate
        let sweep = TestSignal.sweep(rate: rate, seconds: 0.5, low: 200, high: 6000)
        let span = Int(intervalSeconds * Double(rate))
        let positions = [0, span / 2, span]
        var played = [Float](repeating: 0, count: span + sweep.count)
        for p in positions { for i in 0..<sweep.count { played[p + i] = sweep[i] } }
        let recording: Recording
        do throws(ALSAError) { recording = try loop.playAndRecord(played, extraSeconds: 0.6) } catch {
            return result(for: error, check: check, board: board)
        }
        if let short = shortRecording(check, got: recording.mic.count, wanted: played.count, rate: rate) { return short }
        let maxLag = Int(0.5 * Double(rate)) + recording.queuedFrames
        var delays: [Double] = []
        for p in positions {
            let window = Array(recording.mic[min(p, recording.mic.count)..<min(p + sweep.count + maxLag, recording.mic.count)])
            guard let found = Acoustics.delay(of: sweep, in: window, maxLag: maxLag), found.prominence >= 6 else {
                return check.result(.fail, "The microphone did not hear the test sound from the speaker, so the clocks could not be compared.",
                                    remedy: noEchoRemedy, [Measurement("interval", intervalSeconds, "s")])
            }
            delays.append(found.samples)
        }
        if recording.xruns > 0 {
            return check.result(.warn, "The sound card lost samples \(recording.xruns) time(s) during the measurement, so the clocks could not be compared.",
                                remedy: "Run diagnose again with the classbox service stopped and nothing else busy; if samples are still lost, check the USB cable and port.",
                                [Measurement("interval", intervalSeconds, "s"), Measurement("xruns", Double(recording.xruns), "")])
        }
        let ppm = Acoustics.driftPPM(positions: positions.map(Double.init), delays: delays) ?? .nan
        let m = [Measurement("drift", ppm, "ppm"), Measurement("interval", intervalSeconds, "s"),
                 Measurement("delay_start", (delays[0] - Double(recording.queuedFrames)) / Double(rate) * 1000, "ms"),
                 Measurement("delay_end", (delays[2] - Double(recording.queuedFrames)) / Double(rate) * 1000, "ms"),
                 Measurement("xruns", Double(recording.xruns), "")]
        let text = abs(ppm) < 0.05 ? "The microphone's and the speaker's clocks run at the same rate"
            : String(format: "The microphone's clock runs %.1f ppm %@ than the speaker's", abs(ppm), ppm >= 0 ? "faster" : "slower")
        if abs(ppm) >= 2000 {
            return check.result(.fail, text + ": more than the box can compensate.",
                                remedy: "Use one sound card for both speaker and microphone (a USB speakerphone), or replace the sound card.", m)
        }
        if abs(ppm) > 300 {
            return check.result(.warn, text + ": unusually far apart; the box compensates, but echo cancelling suffers.",
                                remedy: "Prefer one sound card for speaker and microphone; check the card with another computer.", m)
        }
        return check.result(.pass, text + " (the box compensates this).", m)
    }

    // MARK: Echo canceller

    /// Plays speech-like sound, runs the echo canceller on what the microphone heard, and reports how
    /// much echo it removes (ERLE) and how soon.
    public static let echoCanceller = DiagnosticCheck(id: "aec", title: "Echo canceller", timeoutSeconds: 90) { check, context in
        if let skip = skipped(check, context) { return skip }
        guard let loop = loop(for: context.board) else { return check.result(.skip, "Skipped: this board has no sound devices.") }
        let rate = loop.rate
        guard EchoCancelFrame.supportedRates.contains(rate) else {
            return check.result(.skip, "Skipped: the echo canceller runs at \(EchoCancelFrame.supportedRates.map(String.init).joined(separator: " or ")) Hz, the sound card at \(rate) Hz.")
        }
        let seconds = context.board.audio.backend == .sim ? 6.0 : 3.0
        let speech = TestSignal.speechLike(rate: rate, seconds: seconds)
        let recording: Recording
        do throws(ALSAError) { recording = try loop.playAndRecord(speech, extraSeconds: 0.3) } catch {
            return result(for: error, check: check, board: context.board)
        }
        if let short = shortRecording(check, got: recording.mic.count, wanted: speech.count, rate: rate) { return short }
        return measureCanceller(check: check, played: speech, mic: recording.mic, rate: rate)
    }

    static func measureCanceller(check: DiagnosticCheck, played: [Float], mic: [Float], rate: Int) -> CheckResult {
        let canceller: EchoCanceller
        do { canceller = try EchoCanceller(EchoCancellerConfiguration(sampleRate: rate)) } catch {
            return check.result(.fail, "The echo canceller could not start: \(error).", remedy: "Report this with the report file.")
        }
        var aec = canceller
        let frame = aec.frameLength
        let count = min(played.count, mic.count) / frame * frame
        var output = [Float](repeating: 0, count: count)
        played.withUnsafeBufferPointer { p in
            mic.withUnsafeBufferPointer { m in
                output.withUnsafeMutableBufferPointer { o in
                    var i = 0
                    while i < count {
                        aec.render(UnsafeBufferPointer(rebasing: p[i..<i + frame]))
                        aec.process(capture: UnsafeBufferPointer(rebasing: m[i..<i + frame]), output: UnsafeMutableBufferPointer(rebasing: o[i..<i + frame]))
                        i += frame
                    }
                }
            }
        }
        let stats = aec.statistics
        let half = count / 2
        let erle = 10 * log10(Acoustics.power(mic[half..<count]) / max(Acoustics.power(output[half..<count]), 1e-20))
        // Convergence: the end of the first 250 ms window whose ERLE reaches 3 dB below the final one
        // (at most 15 dB), counting only windows where the speaker was heard.
        let window = rate / 4
        let target = min(15, erle - 3)
        var converged: Double?
        var w = 0
        while w + window <= count {
            let pm = Acoustics.power(mic[w..<w + window])
            if pm > 1e-7, 10 * log10(pm / max(Acoustics.power(output[w..<w + window]), 1e-20)) >= target {
                converged = Double(w + window) / Double(rate)
                break
            }
            w += window
        }
        var m = [Measurement("erle", erle, "dB"), Measurement("convergence", converged ?? .nan, "s"),
                 Measurement("duration", Double(count) / Double(rate), "s")]
        if let d = stats.delayMilliseconds { m.append(Measurement("canceller_delay", d, "ms")) }
        m.append(Measurement("divergence_resets", Double(stats.divergenceResets), ""))
        let text = String(format: "The echo canceller removes %.0f dB of the speaker's echo in this room", erle)
        if erle < 10 || converged == nil {
            return check.result(.fail, text + ": the other classroom will hear itself.",
                                remedy: "Move the speaker away from the microphone and turn it down, keep the box still, and run the speaker and microphone test; if it stays low, send this report to support.", m)
        }
        if erle < 20 || (converged ?? 0) > 3 {
            return check.result(.warn, text + String(format: " after %.1f s: some echo may be heard at first or in loud passages.", converged ?? 0),
                                remedy: "Turn the speaker down a little or move it further from the microphone.", m)
        }
        return check.result(.pass, text + String(format: ", within %.1f s.", converged ?? 0), m)
    }
}

