import Foundation
import Testing

let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// The `classbox` binary next to this test bundle (SwiftPM builds both into one directory), or
/// `$CLASSBOX_BIN`.
let classboxBinary: String = {
    if let path = ProcessInfo.processInfo.environment["CLASSBOX_BIN"] { return path }
    let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    var dir = exe.deletingLastPathComponent()
    while dir.path != "/" {
        let candidate = dir.appendingPathComponent("classbox").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return root + "/.build/debug/classbox"
}()

struct Result { var status: Int32; var stdout: String; var stderr: String }

func classbox(_ arguments: [String], cwd: String = root) throws -> Result {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: classboxBinary)
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: cwd)
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return Result(status: process.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
}

func writeTemporary(_ text: String, name: String = "classbox.toml") throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("classbox-cli-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let path = dir.appendingPathComponent(name).path
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

let validConfig = """
    board = "qemu-amd64"
    [box]
    id = "hillside-3a"
    school = "Hillside Primary School"
    classroom = "Class 3A"
    role = "remote"

    """

@Suite("The classbox command line")
struct CLITests {
    @Test("--help lists every subcommand")
    func help() throws {
        let r = try classbox(["--help"])
        #expect(r.status == 0)
        for sub in ["run", "diagnose", "aec", "devices", "provision", "version", "config"] {
            #expect(r.stdout.contains("\n  \(sub) "), "missing \(sub)")
        }
    }

    @Test("each broken configuration exits 2 naming file, line and key", arguments: [
        ("unknown key", "role = \"remote\"", "role = \"remote\"\ncolour = \"red\"", 7, "box.colour"),
        ("wrong type", "classroom = \"Class 3A\"", "classroom = 3", 5, "box.classroom"),
        ("missing field", "school = \"Hillside Primary School\"\n", "", 2, "box.school"),
        ("out of range", "role = \"remote\"", "role = \"remote\"\n[media]\nbitrate = 1", 8, "media.bitrate"),
    ])
    func brokenConfig(name: String, find: String, replace: String, line: Int, key: String) throws {
        let text = validConfig.replacingOccurrences(of: find, with: replace)
        #expect(text != validConfig)
        let path = try writeTemporary(text)
        for command in [["config", "check"], ["run"]] {
            let r = try classbox(command + ["--config", path])
            #expect(r.status == 2, "\(command) \(name)")
            #expect(r.stderr.contains("\(path):\(line): error: key '\(key)'"), "\(command) \(name): \(r.stderr)")
        }
    }

    @Test("a valid configuration checks out, as text and as JSON")
    func validConfigChecks() throws {
        let path = try writeTemporary(validConfig)
        let r = try classbox(["config", "check", "--config", path])
        #expect(r.status == 0 && r.stdout.contains("hillside-3a") && r.stdout.contains("qemu-amd64"), "\(r.stderr)")
        let j = try classbox(["config", "check", "--config", path, "--json"])
        let object = try JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as? [String: Any]
        #expect(object?["ok"] as? Bool == true && object?["boxId"] as? String == "hillside-3a")
    }

    @Test("a broken configuration as JSON lists each problem with its line")
    func brokenJSON() throws {
        let path = try writeTemporary(validConfig.replacingOccurrences(of: "role = \"remote\"", with: "role = \"both\""))
        let r = try classbox(["config", "check", "--config", path, "--json"])
        #expect(r.status == 2)
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let problems = object?["problems"] as? [[String: Any]]
        #expect(problems?.first?["line"] as? Int == 6 && problems?.first?["key"] as? String == "box.role")
    }

    @Test("provision names the inventory's mistakes by file, line and key and sends nothing (exit 2)")
    func provisionInventoryErrors() throws {
        let path = try writeTemporary("[[schools]]\nname = \"S\"\n[[schools.boxes]]\nid = \"a\"\nclasroom = \"C\"\naddress = \"127.0.0.1\"\nrole = \"remote\"\n",
                                      name: "fleet.toml")
        let r = try classbox(["provision", path])
        #expect(r.status == 2)
        #expect(r.stderr.contains("fleet.toml:5: error: key 'schools[0].boxes[0].clasroom': unknown key; did you mean 'classroom'?"))
        #expect(r.stdout.isEmpty)
    }

    @Test("provision refuses a file to install whose checksum differs (exit 2)")
    func provisionChecksum() throws {
        let inventory = try writeTemporary("[[schools]]\nname = \"S\"\n[[schools.boxes]]\nid = \"a\"\nclassroom = \"C\"\naddress = \"127.0.0.1\"\nrole = \"remote\"\n",
                                           name: "fleet.toml")
        let bundle = try writeTemporary("not the firmware", name: "bundle")
        let r = try classbox(["provision", inventory, "--install", bundle, "--sha256", String(repeating: "0", count: 64)])
        #expect(r.status == 2)
        #expect(r.stderr.contains("refusing to install it"))
    }

    @Test("provision reports an unreachable box in the recap and exits 3")
    func provisionUnreachable() throws {
        // Port 1 on loopback: refused at once, without any SSH server.
        let inventory = try writeTemporary("""
            [defaults.ssh]
            port = 1
            config_file = "/dev/null"
            [[schools]]
            name = "S"
            [[schools.boxes]]
            id = "a"
            classroom = "C"
            address = "127.0.0.1"
            role = "remote"

            """, name: "fleet.toml")
        let r = try classbox(["provision", inventory, "--retries", "0", "--json"])
        #expect(r.status == 3)
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let boxes = object?["boxes"] as? [[String: Any]]
        #expect(boxes?.first?["status"] as? String == "unreachable")
        #expect((boxes?.first?["reason"] as? String)?.contains("connection refused") == true)
    }

    @Test("run on real hardware without peers says whom it needs; on the sim board without [sim] it says what to add")
    func runBoards() throws {
        let path = try writeTemporary(validConfig)
        let hw = try classbox(["run", "--config", path])
        #expect(hw.status == 2 && hw.stderr.contains("[[peers]]") && hw.stderr.contains("lead box"))
        let sim = try classbox(["run", "--config", path, "--board", "sim", "--log-level", "error"])
        #expect(sim.status == 2 && sim.stderr.contains("[sim]"))
    }

    @Test("version reports the libraries it runs on, as JSON too")
    func version() throws {
        let r = try classbox(["version", "--json"])
        #expect(r.status == 0)
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        #expect((object?["opus"] as? String)?.hasPrefix("libopus") == true)
        let devices = object?["devices"] as? [String: Any]
        #expect((devices?["alsa"] as? String)?.isEmpty == false)
        #expect([1, 2].contains(devices?["gpiodAPI"] as? Int ?? 0))
    }

    @Test("aec with a missing input exits 2 and names the file")
    func aecMissingInput() throws {
        let r = try classbox(["aec", "--far", "/nonexistent/far.wav", "--mic", "/nonexistent/mic.wav", "--out", "/tmp/out.wav"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("/nonexistent/"), "\(r.stderr)")
    }

    @Test("devices lists sound cards (none on a machine without sound drivers), as JSON too")
    func devices() throws {
        let text = try classbox(["devices"])
        #expect(text.status == 0 && text.stdout.hasPrefix("Sound cards (ALSA):"))
        let json = try classbox(["devices", "--json"])
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect(json.status == 0 && object?["soundCards"] is [Any])
    }

    @Test("boards are listed from the repository's Board directory")
    func boards() throws {
        let r = try classbox(["config", "boards"])
        #expect(r.status == 0)
        for name in ["rpi4", "rpi5", "generic-arm64", "generic-amd64", "qemu-amd64", "sim"] { #expect(r.stdout.contains(name)) }
    }

    @Test("an unknown --log-level is a usage error")
    func badLogLevel() throws {
        let r = try classbox(["run", "--log-level", "loud"])
        #expect(r.status != 0 && r.stderr.contains("loud"))
    }

    @Test("run on a real board without its configuration logs once, waits, and exits 0 on SIGTERM")
    func unprovisionedRun() throws {
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("classbox-\(UUID())/classbox.toml").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: classboxBinary)
        process.arguments = ["run", "--board", "qemu-amd64", "--config", missing]
        process.currentDirectoryURL = URL(fileURLWithPath: root)
        let err = Pipe()
        process.standardError = err
        process.standardOutput = Pipe()
        try process.run()
        var log = ""
        let deadline = Date().addingTimeInterval(20)
        while !log.contains("not provisioned") && Date() < deadline {
            log += String(decoding: err.fileHandleForReading.availableData, as: UTF8.self)
        }
        #expect(log.contains("not provisioned: waiting for configuration at \(missing)"))
        #expect(process.isRunning)
        process.terminate()   // SIGTERM
        process.waitUntilExit()
        log += String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationReason == .exit && process.terminationStatus == 0)
        #expect(log.contains("stopping on signal 15"))
        #expect(log.components(separatedBy: "not provisioned").count == 2)   // logged once
    }
}
