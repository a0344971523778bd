import Foundation
import Testing

@Suite("classbox diagnose through the real binary")
struct DiagnoseCLITests {
    let reports = FileManager.default.temporaryDirectory.appendingPathComponent("cbxd-cli-\(UUID().uuidString)").path

    @Test("on the sim board the speaker test passes: exit 0, JSON with the schema and only the checks asked for, report saved")
    func simJSON() throws {
        let r = try classbox(["diagnose", "--board", "sim", "--json", "--only", "audio,devices", "--report-dir", reports])
        #expect(r.status == 0, "\(r.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(object["schema"] as? String == "classbox-diagnose/1")
        #expect(object["verdict"] as? String == "pass")
        let checks = try #require(object["checks"] as? [[String: Any]])
        #expect(checks.map { $0["id"] as? String } == ["devices", "audio"])
        let saved = try #require(object["savedTo"] as? String)
        #expect(saved.hasPrefix(reports + "/") && FileManager.default.fileExists(atPath: saved))
        // The saved report shows as the table, with the same verdict.
        let shown = try classbox(["diagnose", "--show", saved])
        #expect(shown.status == 0 && shown.stdout.hasPrefix("PASS: all 2 checks passed") && shown.stdout.contains("Speaker and microphone"))
        try? FileManager.default.removeItem(atPath: reports)
    }

    @Test("a room whose speaker cannot be heard fails: exit 2, the table's first line says FAIL, and the remedy is shown")
    func failingRoom() throws {
        let board = try writeTemporary(try String(contentsOfFile: root + "/Board/sim.toml", encoding: .utf8)
            .replacingOccurrences(of: "speaker_gain_db = -6.0", with: "speaker_gain_db = -40.0")
            .replacingOccurrences(of: "noise_dbfs = -65.0", with: "noise_dbfs = -25.0")
            .replacingOccurrences(of: "name = \"sim\"", with: "name = \"quiet\""), name: "quiet.toml")
        let config = try writeTemporary(validConfig)
        let r = try classbox(["diagnose", "--board", board, "--config", config, "--only", "audio", "--no-save"])
        #expect(r.status == 2)
        let first = r.stdout.split(separator: "\n").first.map(String.init) ?? ""
        #expect(first.hasPrefix("FAIL: 1 of 1 checks failed (speaker and microphone)"), "\(r.stdout)")
        #expect(r.stdout.contains("what to do:"))
        #expect(!r.stdout.contains("\u{1B}["), "no colour when not on a terminal")
    }

    @Test("a peer that does not answer is a warning: exit 1")
    func warning() throws {
        let config = try writeTemporary("""
            [box]
            id = "hillside-3a"
            school = "Hillside"
            classroom = "3A"
            role = "remote"
            [[peers]]
            id = "town-5b"
            address = "127.0.0.1"
            role = "lead"
            audio_port = 47999
            [media]
            security = "plain"
            """)
        let r = try classbox(["diagnose", "--board", "sim", "--config", config, "--only", "network", "--json", "--no-save"])
        #expect(r.status == 1, "\(r.stdout)\(r.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        #expect(object?["verdict"] as? String == "warn")
    }

    @Test("an unknown check id is a usage error naming the known ids: exit 2")
    func unknownCheck() throws {
        let r = try classbox(["diagnose", "--board", "sim", "--only", "audio,speaker", "--no-save"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("unknown check 'speaker'") && r.stderr.contains("devices, audio, drift, aec, camera, button, network, system"))
    }

    @Test("an unwritable report directory falls back with a warning on stderr")
    func fallback() throws {
        let blocked = try writeTemporary("", name: "blocked")
        let r = try classbox(["diagnose", "--board", "sim", "--only", "system", "--report-dir", blocked + "/diagnose"])
        #expect(r.status <= 1)
        #expect(r.stderr.contains("warning: cannot save the report in \(blocked)/diagnose"))
        #expect(r.stdout.contains("Report saved to "))
    }
}
