import BoxConfig
import Foundation
import Testing
@testable import Provisioning

/// Runs the remote steps with `sh -c` on this machine instead of through ssh, against a fake root in
/// a temporary directory: the shell the box would run, without namespaces (the lab adds real sshd).
struct LocalShell: CommandRunner {
    func run(_ arguments: [String], stdinFile: String?, timeout: Double) -> CommandResult {
        guard let i = arguments.firstIndex(of: "--") else { return CommandResult(status: 0) }  // master, -O exit
        return ProcessRunner().run(["sh", "-c", arguments[i + 1]], stdinFile: stdinFile, timeout: timeout)
    }
}

/// A fake box root: trixie-style time zone (only the /etc/localtime link), a classbox whose config
/// check passes, and service tools that record their calls; `fail-restart` makes the restart fail.
func makeFakeRoot() throws -> String {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("cbx-root-\(UUID().uuidString)").path
    let fm = FileManager.default
    for dir in ["etc/classbox", "usr/bin", "bin", "home/teacher/.ssh", "var/log"] {
        try fm.createDirectory(atPath: root + "/" + dir, withIntermediateDirectories: true)
    }
    try "debian\n".write(toFile: root + "/etc/hostname", atomically: true, encoding: .utf8)
    try fm.createSymbolicLink(atPath: root + "/etc/localtime", withDestinationPath: "/usr/share/zoneinfo/Etc/UTC")
    try "board = \"sim\"\n[box]\nid = \"unprovisioned\"\nschool = \"x\"\nclassroom = \"x\"\nrole = \"remote\"\n"
        .write(toFile: root + "/etc/classbox/classbox.toml", atomically: true, encoding: .utf8)
    let tools = [
        "usr/bin/classbox": "case \"$1\" in --version) echo 0.1.0;; config) exit 0;; diagnose) echo 'classbox diagnose: not yet available' >&2; exit 2;; esac",
        "bin/systemctl": "echo \"systemctl $*\" >> \"$R/var/log/calls\"; [ \"$1\" = restart ] && [ -e \"$R/fail-restart\" ] && exit 1; exit 0",
        "bin/hostnamectl": "echo \"hostnamectl $*\" >> \"$R/var/log/calls\"; echo \"$2\" > \"$R/etc/hostname\"",
        "bin/timedatectl": "echo \"timedatectl $*\" >> \"$R/var/log/calls\"; ln -sf \"/usr/share/zoneinfo/$2\" \"$R/etc/localtime\"",
    ]
    for (path, body) in tools {
        let script = "#!/bin/sh\nR=\(root)\n\(body)\n"
        try script.write(toFile: root + "/" + path, atomically: true, encoding: .utf8)
        try fm.setAttributes([.posixPermissions: 0o755], ofItemAtPath: root + "/" + path)
    }
    return root
}

func localInventory(root: String, bitrate: Int = 32000) throws -> Inventory {
    try Inventory.parse("""
        [defaults]
        timezone = "Europe/Lisbon"
        [defaults.media]
        security = "plain"
        bitrate = \(bitrate)
        [defaults.paths]
        root = "\(root)"
        restart_command = "{root}/bin/systemctl restart classbox"
        status_command = "{root}/bin/systemctl is-active classbox"
        hostname_command = "{root}/bin/hostnamectl set-hostname"
        timezone_command = "{root}/bin/timedatectl set-timezone"
        [[defaults.users]]
        name = "teacher"
        keys = ["\(adminKey)"]
        [[schools]]
        name = "Hillside Primary School"
        [[schools.boxes]]
        id = "hill-3a"
        classroom = "Class 3A"
        address = "192.0.2.21"
        role = "remote"
        """, file: "fleet.toml")
}

func contents(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }

@Suite("Remote steps on a local fake root (sh instead of ssh)")
struct RemoteScriptTests {
    @Test("a first run commits everything and keeps .prev; a second run finds nothing to change")
    func commitThenNoChange() throws {
        let root = try makeFakeRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let original = contents(root + "/etc/classbox/classbox.toml")
        let inventory = try localInventory(root: root)
        var options = ProvisionOptions()
        options.diagnose = true
        let first = FleetProvisioner(runner: LocalShell(), options: options).run(inventory)
        let box = first.boxes[0]
        #expect(box.status == .changed, "\(box.reason ?? "")")
        #expect(box.changes == ["config", "keys:teacher", "hostname", "timezone"])
        #expect(box.facts?.timezone == "Etc/UTC")
        #expect(contents(root + "/etc/classbox/classbox.toml") == ConfigRenderer.render(inventory.boxes[0].config))
        #expect(contents(root + "/etc/classbox/classbox.toml.prev") == original)
        #expect(contents(root + "/etc/hostname") == "hill-3a\n")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: root + "/etc/localtime")) == "/usr/share/zoneinfo/Europe/Lisbon")
        #expect(contents(root + "/home/teacher/.ssh/authorized_keys") == adminKey + "\n")
        #expect(contents(root + "/var/log/calls")?.contains("systemctl restart classbox") == true)
        #expect(box.diagnose?.exitCode == 2)
        #expect(box.notes == ["diagnose is not yet available in this box's Classbox (0.1.0)"])
        let leftovers = try FileManager.default.subpathsOfDirectory(atPath: root).filter { $0.hasSuffix(".cbx-new") }
        #expect(leftovers.isEmpty)

        let second = FleetProvisioner(runner: LocalShell(), options: ProvisionOptions()).run(inventory)
        #expect(second.boxes[0].status == .ok, "\(second.boxes[0].changes)")
        #expect(second.exitCode == 0)
    }

    @Test("a restart that fails puts back the configuration, the hostname and the time zone")
    func rollback() throws {
        let root = try makeFakeRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let original = contents(root + "/etc/classbox/classbox.toml")
        try "".write(toFile: root + "/fail-restart", atomically: true, encoding: .utf8)
        let recap = FleetProvisioner(runner: LocalShell(), options: ProvisionOptions()).run(try localInventory(root: root))
        let box = recap.boxes[0]
        #expect(box.status == .failed)
        #expect(box.reason?.hasPrefix("the restart command failed after the change; ") == true)
        #expect(contents(root + "/etc/classbox/classbox.toml") == original)
        #expect(contents(root + "/etc/hostname") == "debian\n")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: root + "/etc/localtime")) == "/usr/share/zoneinfo/Etc/UTC")
        #expect(!FileManager.default.fileExists(atPath: root + "/home/teacher/.ssh/authorized_keys"))
        #expect(recap.exitCode == ProvisionExit.boxesFailed)
    }

    @Test("an upload whose checksum does not match is removed and nothing is committed")
    func checksumMismatch() throws {
        let root = try makeFakeRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let bundle = root + "/../cbx-bundle-\(UUID().uuidString)"
        try Data("new firmware".utf8).write(to: URL(fileURLWithPath: bundle))
        defer { try? FileManager.default.removeItem(atPath: bundle) }
        let before = contents(root + "/etc/classbox/classbox.toml")
        var options = ProvisionOptions()
        options.install = InstallFile(path: bundle, sha256: String(repeating: "0", count: 64))  // not its checksum
        let recap = FleetProvisioner(runner: LocalShell(), options: options).run(try localInventory(root: root))
        #expect(recap.boxes[0].status == .failed)
        #expect(recap.boxes[0].reason?.hasPrefix("upload failed: binary: checksum after upload is ") == true, "\(recap.boxes[0].reason ?? "")")
        #expect(contents(root + "/etc/classbox/classbox.toml") == before)
        let leftovers = try FileManager.default.subpathsOfDirectory(atPath: root).filter { $0.hasSuffix(".cbx-new") }
        #expect(leftovers.isEmpty)
    }
}
