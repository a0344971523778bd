import BoxConfig
import Foundation
import Testing
@testable import Provisioning

let adminKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl county-admin"

let sampleInventory = """
    # The county's fleet.
    [defaults]
    board = "rpi4"
    timezone = "Europe/Lisbon"

    [defaults.ssh]
    user = "admin"
    identity_file = "~/.ssh/county_ed25519"

    [defaults.media]
    srtp_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd"

    [[defaults.users]]
    name = "teacher"
    keys = ["\(adminKey)"]

    [[schools]]
    id = "town"
    name = "Town Center School"

    [[schools.boxes]]
    id = "town-5b"
    classroom = "Class 5B"
    address = "192.0.2.10"
    role = "lead"
    peers = ["hill-3a"]

    [[schools]]
    id = "hill"
    name = "Hillside Primary School"
    timezone = "Atlantic/Azores"
    ssh = { port = 2222 }

    [[schools.boxes]]
    id = "hill-3a"
    classroom = "Class 3A"
    address = "hill-3a.edu.example"
    role = "remote"
    board = "rpi5"
    peers = ["town-5b"]

    """

/// Parses inventory text that must be wrong, and returns its problems.
func problems(_ text: String) -> [ConfigProblem] {
    do {
        _ = try Inventory.parse(text, file: "fleet.toml")
        Issue.record("the inventory was accepted")
        return []
    } catch {
        return error.problems
    }
}

@Suite("Inventory")
struct InventoryTests {
    @Test("a valid inventory resolves defaults, school overrides and peers")
    func valid() throws {
        let inventory = try Inventory.parse(sampleInventory, file: "fleet.toml")
        #expect(inventory.boxes.map(\.id) == ["town-5b", "hill-3a"])
        let town = inventory.boxes[0], hill = inventory.boxes[1]
        #expect(town.config.board == "rpi4")
        #expect(hill.config.board == "rpi5")
        #expect(town.config.identity.timezone == "Europe/Lisbon")
        #expect(hill.config.identity.timezone == "Atlantic/Azores")
        #expect(hill.config.identity.school == "Hillside Primary School")
        #expect(town.ssh.user == "admin" && town.ssh.port == nil)
        #expect(hill.ssh.user == "admin" && hill.ssh.port == 2222)
        #expect(hill.ssh.hostKeyChecking == .yes)
        #expect(town.config.peers == [.init(id: "hill-3a", address: "hill-3a.edu.example", role: .remote)])
        #expect(hill.config.peers == [.init(id: "town-5b", address: "192.0.2.10", role: .lead)])
        #expect(town.users == [BoxUser(name: "teacher", keys: [adminKey])])
        #expect(town.line == 21)
        #expect(hill.line == 34)
    }

    @Test("mistakes are named by file, line and key", arguments: [
        ("[[schools]]\nname = \"S\"\n[[schools.boxes]]\nid = \"a\"\nclasroom = \"C\"\naddress = \"10.0.0.1\"\nrole = \"remote\"\n",
         "fleet.toml:5: error: key 'schools[0].boxes[0].clasroom': unknown key; did you mean 'classroom'?"),
        ("[[schools]]\nname = \"S\"\n[[schools.boxes]]\nid = \"a\"\nclassroom = \"C\"\nrole = \"remote\"\n",
         "fleet.toml:3: error: key 'schools[0].boxes[0].address': is required and missing: add `address = \"192.0.2.21\"` under [schools[0].boxes[0]]"),
        ("[[schools]]\nname = \"S\"\n[[schools.boxes]]\nid = \"a\"\nclassroom = \"C\"\naddress = \"10.0.0.1\"\nrole = \"middle\"\n",
         "fleet.toml:7: error: key 'schools[0].boxes[0].role': \"middle\" is not one of \"lead\", \"remote\""),
        ("[defaults.ssh]\nport = 70000\n[[schools]]\nname = \"S\"\n[[schools.boxes]]\nid = \"a\"\nclassroom = \"C\"\naddress = \"10.0.0.1\"\nrole = \"remote\"\n",
         "fleet.toml:2: error: key 'defaults.ssh.port': 70000 is out of range; use 1...65535"),
        ("[defaults.ssh]\nhost_key_checking = \"no\"\n[[schools]]\nname = \"S\"\n[[schools.boxes]]\nid = \"a\"\nclassroom = \"C\"\naddress = \"10.0.0.1\"\nrole = \"remote\"\n",
         "fleet.toml:2: error: key 'defaults.ssh.host_key_checking': \"no\" is not one of \"yes\", \"accept-new\""),
        ("[[schools]]\nname = \"S\"\n[[schools.boxes]]\nid = \"a\"\nclassroom = \"C\"\naddress = \"10.0.0.1\"\nrole = \"remote\"\npeers = [\"towncenter\"]\n[[schools.boxes]]\nid = \"town-center\"\nclassroom = \"C\"\naddress = \"10.0.0.2\"\nrole = \"lead\"\n",
         "fleet.toml:8: error: key 'schools[0].boxes[0].peers': \"towncenter\" is not a box of this inventory; did you mean \"town-center\"?"),
        ("[[schools]]\nname = \"S\"\n[[schools.boxes]]\nid = \"a\"\nclassroom = \"C\"\naddress = \"10.0.0.1\"\nrole = \"remote\"\n[[schools.boxes]]\nid = \"a\"\nclassroom = \"D\"\naddress = \"10.0.0.1\"\nrole = \"remote\"\n",
         "fleet.toml:9: error: key 'schools[0].boxes[1].id': box \"a\" is listed twice"),
        ("[[defaults.users]]\nname = \"teacher\"\nkeys = [\"not a key\"]\n[[schools]]\nname = \"S\"\n[[schools.boxes]]\nid = \"a\"\nclassroom = \"C\"\naddress = \"10.0.0.1\"\nrole = \"remote\"\n",
         "fleet.toml:3: error: key 'defaults.users[0].keys': element 0 is not an OpenSSH public key line (\"ssh-ed25519 AAAA... comment\")"),
        ("[defaults.paths]\nconfig = \"etc/classbox.toml\"\n[[schools]]\nname = \"S\"\n[[schools.boxes]]\nid = \"a\"\nclassroom = \"C\"\naddress = \"10.0.0.1\"\nrole = \"remote\"\n",
         "fleet.toml:2: error: key 'defaults.paths.config': \"etc/classbox.toml\" must be an absolute path on the box"),
    ])
    func located(text: String, expected: String) {
        let found = problems(text)
        #expect(found.map(\.description).contains(expected), "got: \(found.map(\.description))")
    }

    @Test("a box whose rendered configuration the box would reject stops the run before any connection")
    func renderedConfigValidated() {
        // Two remote boxes as each other's peers: the box's own validation says a remote box's peers are leads.
        let text = """
            [defaults.media]
            security = "plain"
            [[schools]]
            name = "S"
            [[schools.boxes]]
            id = "a"
            classroom = "C"
            address = "10.0.0.1"
            role = "remote"
            peers = ["b"]
            [[schools.boxes]]
            id = "b"
            classroom = "D"
            address = "10.0.0.2"
            role = "remote"
            """
        let found = problems(text)
        #expect(found.contains { $0.line == 5 && $0.message.contains("box \"a\": its rendered configuration is invalid: key 'peers[0].role'") })
    }

    @Test("an inventory with no boxes says how to add one")
    func empty() {
        #expect(problems("[defaults]\nboard = \"rpi4\"\n").map(\.message) == ["the inventory lists no boxes: add [[schools]] with [[schools.boxes]]"])
    }

    @Test("a syntax error names its line")
    func syntax() {
        let found = problems("[[schools]]\nname = \"S\n")
        #expect(found.first?.line == 2)
        #expect(found.first?.message.hasPrefix("not valid TOML") == true)
    }
}

@Suite("Rendering a box's configuration")
struct RenderingTests {
    @Test("the rendered file reads back as the same configuration")
    func roundTrip() throws {
        let inventory = try Inventory.parse(sampleInventory, file: "fleet.toml")
        for box in inventory.boxes {
            let text = ConfigRenderer.render(box.config)
            let back = try BoxConfiguration.parse(text, file: "\(box.id).toml")
            #expect(back == box.config)
        }
    }

    @Test("rendering is byte-for-byte stable, so a second run finds nothing to change")
    func stable() throws {
        let a = try Inventory.parse(sampleInventory, file: "fleet.toml")
        let b = try Inventory.parse(sampleInventory, file: "elsewhere/fleet.toml")
        #expect(a.boxes.map { ConfigRenderer.render($0.config) } == b.boxes.map { ConfigRenderer.render($0.config) })
    }

    @Test("the rendered file is the documented schema")
    func schema() throws {
        let box = try Inventory.parse(sampleInventory, file: "fleet.toml").boxes[1]
        #expect(ConfigRenderer.render(box.config) == """
            # Written by `classbox provision` from the county inventory: change the inventory, not this file.
            board = "rpi5"

            [box]
            id = "hill-3a"
            school = "Hillside Primary School"
            classroom = "Class 3A"
            role = "remote"
            timezone = "Atlantic/Azores"

            [[peers]]
            id = "town-5b"
            address = "192.0.2.10"
            role = "lead"
            audio_port = 5004
            video_port = 5006

            [media]
            srtp_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd"

            """)
    }

    @Test("names with quotes, backslashes and accents survive rendering")
    func escaping() throws {
        var config = BoxConfiguration.simDefault
        config.identity.school = "Escola \"São João\" \\ Norte"
        config.identity.classroom = "Sala 2\tB"
        let back = try BoxConfiguration.parse(ConfigRenderer.render(config), file: "x.toml")
        #expect(back.identity.school == config.identity.school)
        #expect(back.identity.classroom == config.identity.classroom)
    }
}

@Suite("Unified diff")
struct DiffTests {
    @Test("equal texts have no diff")
    func equal() {
        #expect(UnifiedDiff.diff(old: "a\nb\n", new: "a\nb\n", oldName: "x", newName: "y") == "")
    }

    @Test("a changed line shows with its context")
    func changed() {
        let old = (1...10).map { "line \($0)" }.joined(separator: "\n") + "\n"
        let new = old.replacingOccurrences(of: "line 5\n", with: "line five\n")
        #expect(UnifiedDiff.diff(old: old, new: new, oldName: "a", newName: "b") == """
            --- a
            +++ b
            @@ -2,7 +2,7 @@
             line 2
             line 3
             line 4
            -line 5
            +line five
             line 6
             line 7
             line 8

            """)
    }

    @Test("the hunks agree with diff -u", arguments: [
        ("a\nb\nc\n", "a\nc\nd\n"),
        ("", "board = \"rpi4\"\n[box]\nid = \"x\"\n"),
        ((1...30).map { "k\($0) = \($0)" }.joined(separator: "\n") + "\n",
         (1...30).map { $0 == 3 || $0 == 25 ? "k\($0) = changed" : "k\($0) = \($0)" }.joined(separator: "\n") + "\nk31 = 31\n"),
        ("x\ny\n", ""),
    ])
    func agreesWithDiff(old: String, new: String) throws {
        let ours = UnifiedDiff.diff(old: old, new: new, oldName: "a", newName: "b")
        let theirs = try systemDiff(old, new)
        // diff(1) writes dates on the --- and +++ lines; compare from the first hunk on.
        #expect(ours.split(separator: "\n").dropFirst(2) == theirs.split(separator: "\n").dropFirst(2))
    }

    func systemDiff(_ a: String, _ b: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cbx-diff-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try a.write(to: dir.appendingPathComponent("a"), atomically: true, encoding: .utf8)
        try b.write(to: dir.appendingPathComponent("b"), atomically: true, encoding: .utf8)
        let result = ProcessRunner().run(["diff", "-u", dir.appendingPathComponent("a").path, dir.appendingPathComponent("b").path],
                                         stdinFile: nil, timeout: 10)
        #expect(result.status == 1)
        return result.text
    }
}

@Suite("SHA-256")
struct SHA256Tests {
    @Test("FIPS 180-4 examples and sha256sum agree", arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    ])
    func vectors(input: String, digest: String) {
        #expect(SHA256.hex(Data(input.utf8)) == digest)
    }

    @Test("a file hashed in pieces matches sha256sum")
    func file() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cbx-sha-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        var data = Data()
        for i in 0..<(3 << 20 / 7) { data.append(UInt8(truncatingIfNeeded: i &* 31 &+ 7)) }
        try data.write(to: URL(fileURLWithPath: path))
        let result = ProcessRunner().run(["sha256sum", path], stdinFile: nil, timeout: 30)
        #expect(SHA256.hex(file: path) == String(result.text.prefix(64)))
        #expect(SHA256.hexInSwift(file: path) == String(result.text.prefix(64)))
        #expect(SHA256.hex(data) == String(result.text.prefix(64)))
    }
}
