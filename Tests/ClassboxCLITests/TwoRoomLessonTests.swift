import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

// A lead box serving two remote rooms, as three `classbox run` processes on loopback (the sim board):
// the teacher's voice must reach both rooms, and the lead's loudspeaker must carry both pupils at once.
// Each talker says a known chirp; the proof is the correlation of what a loudspeaker played with what
// the talker's microphone heard (the room's reverberation included), and the lead's per-room counters.

/// A linear chirp from `from` to `to` Hz, `seconds` long, after `delay` seconds of silence, padded to `total` seconds.
private func chirp(from: Double, to: Double, seconds: Double, delay: Double, total: Double, level: Float = 0.3) -> [Float] {
    let rate = 48000.0
    var out = [Float](repeating: 0, count: Int(total * rate))
    let start = Int(delay * rate), n = Int(seconds * rate)
    for i in 0..<n where start + i < out.count {
        let t = Double(i) / rate
        let phase = 2 * Double.pi * (from * t + (to - from) * t * t / (2 * seconds))
        // 10 ms fades so the codec sees no clicks.
        let fade = min(1, Double(min(i, n - i)) / 480)
        out[start + i] = level * Float(sin(phase) * fade)
    }
    return out
}

/// Writes mono 16-bit PCM at 48 kHz.
private func writeWAV(_ samples: [Float], to path: String) throws {
    var data = Data()
    func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
    func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
    data.append(contentsOf: Array("RIFF".utf8)); u32(UInt32(36 + samples.count * 2)); data.append(contentsOf: Array("WAVE".utf8))
    data.append(contentsOf: Array("fmt ".utf8)); u32(16); u16(1); u16(1); u32(48000); u32(96000); u16(2); u16(16)
    data.append(contentsOf: Array("data".utf8)); u32(UInt32(samples.count * 2))
    for s in samples { u16(UInt16(bitPattern: Int16(max(-32767, min(32767, (s * 32767).rounded()))))) }
    try data.write(to: URL(fileURLWithPath: path))
}

/// Reads a mono 16-bit PCM WAV (what the box writes).
private func readWAV(_ path: String) throws -> [Float] {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    let bytes = [UInt8](data)
    var offset = 12
    while offset + 8 <= bytes.count {
        let id = String(decoding: bytes[offset..<offset + 4], as: UTF8.self)
        let size = Int(bytes[offset + 4]) | Int(bytes[offset + 5]) << 8 | Int(bytes[offset + 6]) << 16 | Int(bytes[offset + 7]) << 24
        if id == "data" {
            let end = min(bytes.count, offset + 8 + size)
            return stride(from: offset + 8, to: end - 1, by: 2).map {
                Float(Int16(bitPattern: UInt16(bytes[$0]) | UInt16(bytes[$0 + 1]) << 8)) / 32768
            }
        }
        offset += 8 + size + (size & 1)
    }
    throw CocoaError(.fileReadCorruptFile)
}

/// 4:1 decimation by block averaging (48 kHz to 12 kHz; the chirps stay below 3 kHz).
private func decimate(_ x: [Float]) -> [Float] {
    stride(from: 0, to: x.count - 3, by: 4).map { (x[$0] + x[$0 + 1] + x[$0 + 2] + x[$0 + 3]) / 4 }
}

/// The best normalised correlation of `reference[segment]` inside `signal`, over lags `lags` (12 kHz
/// samples, signal index = reference index + lag), and that lag.
private func bestCorrelation(_ reference: [Float], segment: Range<Int>, in signal: [Float], lags: ClosedRange<Int>) -> (value: Double, lag: Int) {
    var best = (value: 0.0, lag: 0)
    reference.withUnsafeBufferPointer { r in
        signal.withUnsafeBufferPointer { s in
            var refEnergy: Float = 0
            for i in segment { refEnergy += r[i] * r[i] }
            for lag in lags where segment.lowerBound + lag >= 0 && segment.upperBound + lag <= s.count {
                var c: Float = 0, e: Float = 0
                for i in segment {
                    let v = s[i + lag]
                    c += r[i] * v
                    e += v * v
                }
                let value = Double(c) / (Double(refEnergy * e).squareRoot() + 1e-12)
                if value > best.value { best = (value, lag) }
            }
        }
    }
    return best
}

/// A free UDP port pair (even RTP port, RTCP above it) on this machine, found by binding.
private func freePortPair() -> Int {
    func free(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
    while true {
        let base = Int.random(in: 20000...30000) * 2
        if free(base) && free(base + 1) { return base }
    }
}

/// Three boxes with real-time threads and echo cancellers need the machine's cores to themselves;
/// `swift test` runs suites in parallel, so scripts/test runs this one afterwards, alone, with the
/// release build (CLASSBOX_BIN): three debug builds starve their loudspeakers on a loaded machine.
let serialStep = ProcessInfo.processInfo.environment["CLASSBOX_SERIAL_TESTS"] == "1"

@Suite("A lead with two remote rooms: three classbox processes on loopback", .serialized,
       .enabled(if: serialStep, "runs alone in a later step of scripts/test (CLASSBOX_SERIAL_TESTS=1 CLASSBOX_BIN=<release classbox> swift test --filter TwoRoomLessonTests)"))
struct TwoRoomLessonTests {
    /// One box's configuration: its role, its ports and its peers (id, port).
    func config(id: String, role: String, port: Int, peers: [(id: String, port: Int)], pupil: String?, key: String) -> String {
        var text = """
            board = "sim"
            [box]
            id = "\(id)"
            school = "Test School"
            classroom = "\(id)"
            role = "\(role)"

            """
        for peer in peers {
            text += """
                [[peers]]
                id = "\(peer.id)"
                address = "127.0.0.1"
                role = "\(role == "lead" ? "remote" : "lead")"
                audio_port = \(peer.port)

                """
        }
        text += """
            [media]
            audio_port = \(port)
            frame_ms = 10
            jitter_min_ms = 20
            jitter_max_ms = 120
            security = "srtp"
            srtp_key = "\(key)"
            [sim]
            lesson = "../teacher.wav"
            \(pupil.map { "pupil = \"../\($0)\"" } ?? "")
            output_dir = "."

            """
        return text
    }

    @Test("the teacher reaches both rooms and the lead's loudspeaker plays both pupils at once, each room counted apart")
    func leadServesTwoRooms() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("classbox-rooms-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // CLASSBOX_KEEP_TEST_OUTPUT=1 keeps the boxes' WAVs and lesson.json files for a listener.
        let keep = ProcessInfo.processInfo.environment["CLASSBOX_KEEP_TEST_OUTPUT"] == "1"
        defer { if keep { print("two rooms: outputs in \(dir)") } else { try? FileManager.default.removeItem(atPath: dir) } }
        // The teacher talks first (3.0-4.2 s); then both pupils answer at once (5.2-6.4 s), each with its
        // own chirp, so the lead's loudspeaker can only carry both if it mixes the rooms. (Each box's
        // clock starts with its process; the first 3 s leave room for a loaded machine's slow starts.)
        try writeWAV(chirp(from: 300, to: 3000, seconds: 1.2, delay: 3.0, total: 7), to: dir + "/teacher.wav")
        try writeWAV(chirp(from: 400, to: 1600, seconds: 1.2, delay: 5.2, total: 7), to: dir + "/pupil-a.wav")
        try writeWAV(chirp(from: 2400, to: 700, seconds: 1.2, delay: 5.2, total: 7), to: dir + "/pupil-b.wav")
        let key = Data((0..<30).map { UInt8($0 * 7 + 3) }).base64EncodedString()
        let leadPort = freePortPair(), portA = freePortPair(), portB = freePortPair()
        let boxes: [(name: String, text: String)] = [
            ("lead", config(id: "town-lead", role: "lead", port: leadPort,
                            peers: [("village-a", portA), ("village-b", portB)], pupil: nil, key: key)),
            ("room-a", config(id: "village-a", role: "remote", port: portA, peers: [("town-lead", leadPort)], pupil: "pupil-a.wav", key: key)),
            ("room-b", config(id: "village-b", role: "remote", port: portB, peers: [("town-lead", leadPort)], pupil: "pupil-b.wav", key: key)),
        ]
        // The sim board, with 10 ms periods: three debug-built boxes with echo cancellers share this
        // test machine's cores, and 5 ms periods leave a debug build too little slack (the demo runs the
        // release build at the sim board's 5 ms). And a quieter loudspeaker: each pupil talks while their
        // room plays the other pupil, and a canceller in double talk trims the near voice by the echo's level.
        let sim = try String(contentsOfFile: root + "/Board/sim.toml", encoding: .utf8)
        let board = sim.replacingOccurrences(of: "period_ms = 5 ", with: "period_ms = 10")
            .replacingOccurrences(of: "speaker_gain_db = -6.0", with: "speaker_gain_db = -16.0")
        #expect(!board.contains("period_ms = 5 ") && !board.contains("speaker_gain_db = -6.0"), "the sim board's lines must be found")
        try FileManager.default.createDirectory(atPath: dir + "/board", withIntermediateDirectories: true)
        try board.write(toFile: dir + "/board/sim.toml", atomically: true, encoding: .utf8)
        var processes: [(String, Process, Pipe)] = []
        for box in boxes {
            try FileManager.default.createDirectory(atPath: dir + "/" + box.name, withIntermediateDirectories: true)
            try box.text.write(toFile: "\(dir)/\(box.name)/classbox.toml", atomically: true, encoding: .utf8)
        }
        for box in boxes {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: classboxBinary)
            process.arguments = ["run", "--config", "\(dir)/\(box.name)/classbox.toml", "--board", dir + "/board/sim.toml", "--log-level", "warning"]
            let err = Pipe()
            process.standardError = err
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            processes.append((box.name, process, err))
        }
        for (name, process, err) in processes {
            let log = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "\(name) failed: \(log)")
        }

        func lesson(_ box: String) throws -> [String: Any] {
            let data = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(box)/lesson.json"))
            return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        }
        func start(_ box: String) throws -> Double { Double(try #require(try lesson(box)["captureStartNanoseconds"] as? Int)) * 1e-9 }
        // What each talker's microphone heard of the talker, and what each loudspeaker played, at 12 kHz.
        let talker = try ["lead", "room-a", "room-b"].reduce(into: [String: [Float]]()) { $0[$1] = decimate(try readWAV("\(dir)/\($1)/talker-at-mic.wav")) }
        let speaker = try ["lead", "room-a", "room-b"].reduce(into: [String: [Float]]()) { $0[$1] = decimate(try readWAV("\(dir)/\($1)/speaker.wav")) }
        /// Correlation of `from`'s talker (its words between `seconds`) in `to`'s loudspeaker, searched over
        /// 0-400 ms of mouth-to-ear latency on the shared monotonic clock; and that latency in ms.
        /// With `reversed`, the same words played backwards: a signal nobody said, the chance level.
        func heard(_ from: String, in to: String, seconds: ClosedRange<Double>, reversed: Bool = false) throws -> (value: Double, ms: Double) {
            let rate = 12000.0
            let offset = Int(((try start(from)) - (try start(to))) * rate)
            let segment = Int(seconds.lowerBound * rate)..<Int(seconds.upperBound * rate)
            var reference = try #require(talker[from])
            if reversed { reference.replaceSubrange(segment, with: reference[segment].reversed()) }
            // In quarters, each at its own best lag: a jitter buffer that stretches or drops a frame
            // moves the lag by 10 ms, which would smear one long correlation. The median quarter counts.
            let quarter = segment.count / 4
            let found = (0..<4).map { q in
                bestCorrelation(reference, segment: segment.lowerBound + q * quarter..<segment.lowerBound + (q + 1) * quarter,
                                in: speaker[to] ?? [], lags: offset...(offset + Int(0.4 * rate)))
            }.sorted { $0.value < $1.value }
            let median = (value: (found[1].value + found[2].value) / 2, lag: found[2].lag)
            return (median.value, Double(median.lag - offset) / rate * 1000)
        }
        let teacherInA = try heard("lead", in: "room-a", seconds: 3.1...4.1)
        let teacherInB = try heard("lead", in: "room-b", seconds: 3.1...4.1)
        let pupilAInLead = try heard("room-a", in: "lead", seconds: 5.3...6.3)
        let pupilBInLead = try heard("room-b", in: "lead", seconds: 5.3...6.3)
        let pupilBInA = try heard("room-b", in: "room-a", seconds: 5.3...6.3)
        let chanceA = try heard("room-a", in: "lead", seconds: 5.3...6.3, reversed: true)
        let chanceB = try heard("room-b", in: "lead", seconds: 5.3...6.3, reversed: true)
        print("two rooms: teacher in room A \(teacherInA), in room B \(teacherInB); pupil A in the lead's mix \(pupilAInLead), pupil B \(pupilBInLead) (chance: \(chanceA.value), \(chanceB.value)); pupil B in room A \(pupilBInA)")
        let chanceTeacher = try heard("lead", in: "room-a", seconds: 3.1...4.1, reversed: true)
        // Held against chance too (the same words reversed): a release build gives about 0.94 here.
        for (room, teacher) in [("A", teacherInA), ("B", teacherInB)] {
            #expect(teacher.value > 0.5 && teacher.value > 3 * chanceTeacher.value,
                    "room \(room)'s loudspeaker plays the teacher: \(teacher) (chance \(chanceTeacher.value))")
        }
        // Two talkers at once in one mix, each through its room's echo canceller in double talk (each
        // room's loudspeaker plays the other pupil meanwhile): each is found well above chance (the same
        // words reversed, which nobody said).
        for (pupil, chance, name) in [(pupilAInLead, chanceA, "A"), (pupilBInLead, chanceB, "B")] {
            #expect(pupil.value > 0.25 && pupil.value > 3 * chance.value,
                    "the lead's loudspeaker carries pupil \(name): \(pupil) (chance \(chance.value))")
        }
        #expect(pupilBInA.value > 0.25, "room A hears room B too (each room gets the teacher plus the other room): \(pupilBInA)")
        // Both pupils arrive at the lead in the same window: the mix is simultaneous, not one after the other.
        #expect(abs(pupilAInLead.ms - pupilBInLead.ms) < 60, "\(pupilAInLead.ms) vs \(pupilBInLead.ms) ms")

        let sessions = try #require((try lesson("lead")["network"] as? [String: Any])?["sessions"] as? [[String: Any]])
        #expect(sessions.map { $0["peer"] as? String } == ["village-a", "village-b"], "the lead reports each room apart")
        for session in sessions {
            let received = try #require(session["packetsReceived"] as? Int), lost = try #require(session["packetsLost"] as? Int)
            let sent = try #require(session["packetsSent"] as? Int)
            #expect(received > 300 && sent > 300, "\(session["peer"] ?? "?"): \(received) received, \(sent) sent")
            #expect(lost * 50 < received, "\(session["peer"] ?? "?"): \(lost) lost of \(received) on loopback")
            #expect(session["refused"] as? Int == 0)
        }
        let depth = try #require(try lesson("lead")["jitterDepthMs"] as? [[Double]])
        #expect(depth.count == 2 && depth.allSatisfy { !$0.isEmpty }, "a jitter-buffer history per room: \(depth)")
    }
}
