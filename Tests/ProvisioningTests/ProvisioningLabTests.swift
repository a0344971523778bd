import BoxConfig
import Foundation
import Testing
@testable import Provisioning

/// The lab made by scripts/test-provision: 10 real sshd "boxes" in network namespaces.
let labDirectory = ProcessInfo.processInfo.environment["CBXP_LAB"]
let labNamespace = ProcessInfo.processInfo.environment["CBXP_NETNS"] ?? "cbxp-admin"
let labClassbox = ProcessInfo.processInfo.environment["CLASSBOX_BIN"] ?? ""

struct LabBox {
    var n: String, id: String, school: String, classroom: String, role: String, peers: [String]
    var address: String { "10.77.0.\(Int(n)! + 10)" }
}

let labBoxes: [LabBox] = [
    .init(n: "01", id: "town-5b", school: "town", classroom: "Class 5B", role: "lead", peers: ["hill-3a", "river-2"]),
    .init(n: "02", id: "hill-3a", school: "hill", classroom: "Class 3A", role: "remote", peers: ["town-5b"]),
    .init(n: "03", id: "river-2", school: "river", classroom: "Class 2", role: "remote", peers: ["town-5b"]),
    .init(n: "04", id: "north-4a", school: "north", classroom: "Class 4A", role: "lead", peers: ["north-4b"]),
    .init(n: "05", id: "north-4b", school: "north", classroom: "Class 4B", role: "remote", peers: ["north-4a"]),
    .init(n: "06", id: "lake-1", school: "lake", classroom: "Class 1", role: "remote", peers: []),
    .init(n: "07", id: "pine-1", school: "lake", classroom: "Pine annex", role: "remote", peers: []),      // no sshd
    .init(n: "08", id: "stone-2", school: "lake", classroom: "Class 2", role: "remote", peers: []),       // refuses the key
    .init(n: "09", id: "valley-3", school: "valley", classroom: "Class 3", role: "remote", peers: []),     // board unknown there
    .init(n: "10", id: "bay-6", school: "bay", classroom: "Class 6", role: "remote", peers: []),         // drops mid-upload
]
let goodBoxes = Array(labBoxes.prefix(6))
let badBoxes = Array(labBoxes.suffix(4))

func labInventory(_ lab: String, knownHosts: String? = nil, bitrate: Int? = nil) throws -> String {
    let adminKey = try String(contentsOfFile: lab + "/admin/id_ed25519.pub", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    var text = """
        # The lab's county: 10 boxes in 6 schools.
        [defaults]
        board = "qemu-amd64"
        timezone = "Europe/Lisbon"

        [defaults.ssh]
        user = "root"
        identity_file = "\(lab)/admin/id_ed25519"
        known_hosts_file = "\(knownHosts ?? lab + "/admin/known_hosts")"
        config_file = "\(lab)/admin/ssh_config"
        connect_timeout_s = 3

        [defaults.paths]
        restart_command = "{root}/bin/systemctl restart classbox"
        status_command = "{root}/bin/systemctl is-active classbox"
        hostname_command = "{root}/bin/hostnamectl set-hostname"
        timezone_command = "{root}/bin/timedatectl set-timezone"
        restart_timeout_s = 5

        [defaults.media]
        srtp_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd"
        \(bitrate.map { "bitrate = \($0)" } ?? "")

        [[defaults.users]]
        name = "teacher"
        keys = ["\(adminKey)"]

        """
    let names = ["town": "Town Center School", "hill": "Hillside Primary School", "river": "Riverside School",
                 "north": "North Hills School", "lake": "Lakeside School", "valley": "Valley School", "bay": "Bay School"]
    var school = ""
    for box in labBoxes {
        if box.school != school {
            school = box.school
            text += "\n[[schools]]\nid = \"\(school)\"\nname = \"\(names[school]!)\"\n"
            if school == "river" { text += "timezone = \"Atlantic/Azores\"\n" }
        }
        text += """

            [[schools.boxes]]
            id = "\(box.id)"
            classroom = "\(box.classroom)"
            address = "\(box.address)"
            role = "\(box.role)"
            peers = [\(box.peers.map { "\"\($0)\"" }.joined(separator: ", "))]
            paths = { root = "\(lab)/box\(box.n)/root" }

            """
    }
    return text
}

struct Run { var status: Int32; var recap: FleetRecap?; var stdout: String; var stderr: String }

/// Runs `classbox provision` from the admin namespace.
func provisionInLab(_ arguments: [String]) -> Run {
    let result = ProcessRunner().run(["ip", "netns", "exec", labNamespace, labClassbox, "provision"] + arguments, stdinFile: nil, timeout: 150)
    let recap = try? JSONDecoder().decode(FleetRecap.self, from: result.stdout)
    return Run(status: result.status, recap: recap, stdout: result.text, stderr: result.stderr)
}

/// Every file, directory and mode under a box's fake root with its contents' checksum: "as it was" means equal.
func snapshot(_ lab: String, _ box: LabBox) -> String {
    let root = "\(lab)/box\(box.n)/root"
    let result = ProcessRunner().run(["sh", "-c", "cd '\(root)' && find . -path ./var/lib/classbox/diagnose -prune -o -printf '%p %y %m %s\\n' | sort && find . -path ./var/lib/classbox/diagnose -prune -o -type f -print0 | sort -z | xargs -0 sha256sum"],
                                     stdinFile: nil, timeout: 60)
    return result.text
}

func read(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }

@Suite("Provisioning over real OpenSSH in network namespaces",
       .enabled(if: labDirectory != nil, "needs the lab of scripts/test-provision (root, ip netns, openssh-server, nftables)"))
struct ProvisioningLabTests {
    @Test("ten boxes: good ones configured, bad ones untouched with reasons, a second run changes nothing, a changed host key is refused")
    func fleet() throws {
        let lab = try #require(labDirectory)
        let inventoryPath = lab + "/fleet.toml"
        try labInventory(lab).write(toFile: inventoryPath, atomically: true, encoding: .utf8)
        let inventory = try Inventory.load(path: inventoryPath)
        let update = lab + "/classbox-update"
        let updateSHA = try #require(SHA256.hex(file: update))
        let before = Dictionary(uniqueKeysWithValues: labBoxes.map { ($0.id, snapshot(lab, $0)) })

        // Check mode first: says what would change and changes nothing anywhere.
        let check = provisionInLab([inventoryPath, "--check", "--diff", "--json", "--forks", "10"])
        #expect(check.status == 3, "\(check.stderr)")
        let checkRecap = try #require(check.recap, "no JSON recap: \(check.stdout)\n\(check.stderr)")
        #expect(checkRecap.check)
        for box in goodBoxes {
            let o = try #require(checkRecap.boxes.first { $0.box == box.id })
            #expect(o.status == .changed)
            #expect(o.diff?.contains("+id = \"\(box.id)\"") == true)
        }
        for box in labBoxes { #expect(snapshot(lab, box) == before[box.id], "--check changed \(box.id)") }

        // First run: configure, install the update, restart.
        let first = provisionInLab([inventoryPath, "--json", "--forks", "10", "--install", update, "--timeout", "30"])
        let recap = try #require(first.recap, "no JSON recap: \(first.stdout)\n\(first.stderr)")
        #expect(first.status == 3)
        print("10 boxes provisioned in \(String(format: "%.1f", recap.seconds)) s (classbox provision --forks 10, 9.6 MB update each)")
        print(recap.table)
        print("seconds per box: " + recap.boxes.map { "\($0.box) \(String(format: "%.1f", $0.seconds))" }.joined(separator: ", "))
        func outcome(_ box: LabBox, in recap: FleetRecap) throws -> BoxOutcome { try #require(recap.boxes.first { $0.box == box.id }) }

        for box in goodBoxes {
            let o = try outcome(box, in: recap)
            #expect(o.status == .changed, "\(box.id): \(o.reason ?? "")")
            #expect(Set(o.changes) == ["config", "keys:teacher", "binary", "hostname", "timezone"], "\(box.id): \(o.changes)")
            let root = "\(lab)/box\(box.n)/root"
            let expected = ConfigRenderer.render(try #require(inventory.boxes.first { $0.id == box.id }).config)
            #expect(read(root + "/etc/classbox/classbox.toml") == expected)
            #expect(read(root + "/etc/classbox/classbox.toml.prev")?.contains("id = \"unprovisioned\"") == true)
            #expect(read(root + "/etc/hostname") == box.id + "\n")
            #expect(read(root + "/etc/timezone") == (box.school == "river" ? "Atlantic/Azores\n" : "Europe/Lisbon\n"))
            #expect(read(root + "/home/teacher/.ssh/authorized_keys") == (try String(contentsOfFile: lab + "/admin/id_ed25519.pub", encoding: .utf8)))
            #expect(SHA256.hex(file: root + "/usr/bin/classbox") == updateSHA)
            #expect(read(root + "/run/classbox.state") == "active\n")
            let calls = read(root + "/var/log/calls") ?? ""
            #expect(calls.contains("systemctl restart classbox") && calls.contains("hostnamectl set-hostname \(box.id)"))
            #expect(!snapshot(lab, box).contains(".cbx-new"), "\(box.id) kept a staged file")
        }
        let reasons = try Dictionary(uniqueKeysWithValues: badBoxes.map { ($0.id, try outcome($0, in: recap)) })
        #expect(reasons["pine-1"]?.status == .unreachable)
        #expect(reasons["pine-1"]?.reason == "10.77.0.17: connection refused (after 3 attempts)")
        #expect(reasons["stone-2"]?.status == .failed)
        #expect(reasons["stone-2"]?.reason?.hasPrefix("key refused: 10.77.0.18 refused the SSH key") == true)
        #expect(reasons["valley-3"]?.status == .failed)
        #expect(reasons["valley-3"]?.reason?.contains("the box rejected the new configuration (classbox config check, exit 2)") == true)
        #expect(reasons["valley-3"]?.reason?.contains("no board profile named \"qemu-amd64\"") == true)
        #expect(reasons["bay-6"]?.status == .unreachable)
        #expect(reasons["bay-6"]?.reason?.hasPrefix("connection lost during uploading config, keys:teacher, binary (") == true, "\(reasons["bay-6"]?.reason ?? "")")
        // The box's sshd notices the dead link within ClientAliveInterval x CountMax (3 s) and the upload
        // step removes its partial file; give it that long before comparing.
        let deadline = Date().addingTimeInterval(8)
        while snapshot(lab, badBoxes[3]) != before["bay-6"] && Date() < deadline { Thread.sleep(forTimeInterval: 0.25) }
        for box in badBoxes { #expect(snapshot(lab, box) == before[box.id], "\(box.id) changed although it failed") }

        // Second run: the good boxes are ok with no change; diagnose is collected into the fleet report.
        let after = Dictionary(uniqueKeysWithValues: goodBoxes.map { ($0.id, snapshot(lab, $0)) })
        let reportDir = lab + "/report"
        let second = provisionInLab([inventoryPath, "--json", "--forks", "10", "--install", update, "--report", reportDir])
        let recap2 = try #require(second.recap, "no JSON recap: \(second.stdout)\n\(second.stderr)")
        print(recap2.table)
        print("seconds per box: " + recap2.boxes.map { "\($0.box) \(String(format: "%.1f", $0.seconds))" }.joined(separator: ", "))
        #expect(second.status == 3)
        for box in goodBoxes {
            let o = try outcome(box, in: recap2)
            #expect(o.status == .ok && o.changes.isEmpty, "\(box.id): \(o.status) \(o.changes) \(o.reason ?? "")")
            #expect(snapshot(lab, box) == after[box.id], "the second run wrote to \(box.id)")
            let diagnose = try #require(o.diagnose, "\(box.id): no diagnose result")
            // The boxes' classbox is this build, whose diagnose exists: on these fake boxes (no camera, sound
            // card or GPIO chip) it reports failures (exit 2) but always prints its JSON report.
            do {
                #expect(diagnose.json != nil, "\(box.id): diagnose printed no JSON (exit \(diagnose.exitCode)): \(diagnose.note ?? "")")
                // diagnose saved its report on the box too (outside the snapshot: reports are not configuration).
                let saved = (try? FileManager.default.contentsOfDirectory(atPath: "\(lab)/box\(box.n)/root/var/lib/classbox/diagnose")) ?? []
                #expect(saved.contains { $0.hasSuffix(".json") }, "\(box.id): no saved diagnose report")
            }
        }
        for box in badBoxes { #expect(try outcome(box, in: recap2).status == reasons[box.id]?.status) }
        let csv = try #require(read(reportDir + "/fleet.csv"))
        #expect(csv.split(separator: "\r\n").count == 11)
        let html = try #require(read(reportDir + "/fleet.html"))
        for box in labBoxes { #expect(html.contains("<td>\(box.id)</td>")) }
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: reportDir + "/fleet.json"))) as? [Any]
        #expect(json?.count == 10)

        // A changed inventory in check mode: the diff shows it, the box stays as it is.
        try labInventory(lab, bitrate: 64000).write(toFile: lab + "/fleet-64k.toml", atomically: true, encoding: .utf8)
        let diff = provisionInLab([lab + "/fleet-64k.toml", "--check", "--diff", "--limit", "town-5b,lake-1"])
        #expect(diff.status == 0, "\(diff.stderr)")
        #expect(diff.stdout.contains("+bitrate = 64000"))
        #expect(diff.stdout.contains("2 boxes in"))
        #expect(snapshot(lab, goodBoxes[0]) == after["town-5b"])

        // A service that does not come back after the change is rolled back.
        try "bitrate = 64000\n".write(toFile: "\(lab)/box06/root/run/refuse-restart", atomically: true, encoding: .utf8)
        let broken = provisionInLab([lab + "/fleet-64k.toml", "--json", "--limit", "lake-1"])
        try? FileManager.default.removeItem(atPath: "\(lab)/box06/root/run/refuse-restart")
        let brokenOutcome = try #require(broken.recap?.boxes.first)
        #expect(broken.status == 3)
        #expect(brokenOutcome.status == .failed)
        #expect(brokenOutcome.reason?.hasPrefix("the restart command failed after the change; rolled back") == true, "\(brokenOutcome.reason ?? "")")
        #expect(read("\(lab)/box06/root/etc/classbox/classbox.toml") == ConfigRenderer.render(inventory.boxes[5].config))

        // A changed host key: refused with a clear message, nothing sent.
        let hosts = try #require(read(lab + "/admin/known_hosts")).split(separator: "\n")
        let impostor = try #require(hosts.first { $0.hasPrefix("10.77.0.12 ") }).split(separator: " ").dropFirst()
        let forged = hosts.map { $0.hasPrefix("10.77.0.11 ") ? "10.77.0.11 " + impostor.joined(separator: " ") : String($0) }
        try (forged.joined(separator: "\n") + "\n").write(toFile: lab + "/admin/known_hosts.forged", atomically: true, encoding: .utf8)
        try labInventory(lab, knownHosts: lab + "/admin/known_hosts.forged").write(toFile: lab + "/fleet-forged.toml", atomically: true, encoding: .utf8)
        let townBefore = snapshot(lab, goodBoxes[0])
        let mismatch = provisionInLab([lab + "/fleet-forged.toml", "--limit", "town-5b"])
        #expect(mismatch.status == 3)
        #expect(mismatch.stdout.contains("town-5b  10.77.0.11  failed  host key mismatch: 10.77.0.11 presented a different host key than known_hosts records"), "\(mismatch.stdout)")
        #expect(snapshot(lab, goodBoxes[0]) == townBefore)
    }
}
