import BoxConfig
import Foundation
import Testing
@testable import Provisioning

/// A scripted stand-in for `ssh`: answers each invocation from a closure and records the remote
/// commands. Only for the decision logic; the real proof runs OpenSSH (ProvisioningLabTests).
final class FakeSSH: CommandRunner, @unchecked Sendable {
    private let lock = NSLock()
    private var _calls: [[String]] = []
    let answer: @Sendable (_ arguments: [String], _ remote: String?) -> CommandResult

    init(answer: @escaping @Sendable (_ arguments: [String], _ remote: String?) -> CommandResult) { self.answer = answer }

    var calls: [[String]] { lock.lock(); defer { lock.unlock() }; return _calls }
    var remoteCommands: [String] { calls.compactMap { args in args.firstIndex(of: "--").map { args[$0 + 1] } } }

    func run(_ arguments: [String], stdinFile: String?, timeout: Double) -> CommandResult {
        lock.lock(); _calls.append(arguments); lock.unlock()
        let remote = arguments.firstIndex(of: "--").map { arguments[$0 + 1] }
        return answer(arguments, remote)
    }
}

let fakeInventory = """
    [defaults]
    timezone = "Europe/Lisbon"
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
    """

/// What the facts step prints for a box holding `config` and the given hostname, time zone and keys.
func factsOutput(config: String?, hostname: String = "hill-3a", timezone: String = "Europe/Lisbon",
                 keys: String = adminKey + "\n") -> CommandResult {
    func line(_ key: String, _ value: String) -> String { "\(key) \(Data(value.utf8).base64EncodedString())\n" }
    var out = ""
    if let config { out += line("config", config) }
    out += line("hostname", hostname + "\n") + line("timezone", timezone + "\n") + line("keys:teacher", keys)
    out += line("version", "0.1.0\n") + line("binary", String(repeating: "a", count: 64))
    return CommandResult(status: 0, stdout: Data(out.utf8))
}

func provision(_ runner: FakeSSH, check: Bool = false, retries: Int = 2) throws -> FleetRecap {
    var options = ProvisionOptions()
    options.check = check
    options.retries = retries
    options.backoffS = 0.001
    let inventory = try Inventory.parse(fakeInventory, file: "fleet.toml")
    return FleetProvisioner(runner: runner, options: options).run(inventory)
}

func isMaster(_ args: [String]) -> Bool { args.contains("ControlMaster=yes") }

@Suite("Provisioning decisions (scripted ssh)")
struct ProvisionerLogicTests {
    static let rendered: String = {
        let inventory = try! Inventory.parse(fakeInventory, file: "fleet.toml")
        return ConfigRenderer.render(inventory.boxes[0].config)
    }()

    @Test("a refused connection is retried with backoff, then the box is unreachable")
    func unreachable() throws {
        let ssh = FakeSSH { _, _ in CommandResult(status: 255, stderr: "ssh: connect to host 192.0.2.21 port 22: Connection refused\n") }
        let recap = try provision(ssh)
        #expect(recap.boxes[0].status == .unreachable)
        #expect(recap.boxes[0].attempts == 3)
        #expect(recap.boxes[0].reason == "192.0.2.21: connection refused (after 3 attempts)")
        #expect(ssh.calls.allSatisfy(isMaster))
        #expect(recap.exitCode == ProvisionExit.boxesFailed)
    }

    @Test("a refused key is not retried and fails the box")
    func keyRefused() throws {
        let ssh = FakeSSH { _, _ in CommandResult(status: 255, stderr: "root@192.0.2.21: Permission denied (publickey).\n") }
        let recap = try provision(ssh)
        #expect(recap.boxes[0].status == .failed)
        #expect(recap.boxes[0].attempts == 1)
        #expect(recap.boxes[0].reason?.hasPrefix("key refused: 192.0.2.21 refused the SSH key") == true)
    }

    @Test("a changed host key is refused with a clear message and nothing is sent")
    func hostKeyChanged() throws {
        let stderr = """
            @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
            @    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
            @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
            Offending ED25519 key in /home/admin/.ssh/known_hosts:3
            Host key verification failed.
            """
        let ssh = FakeSSH { _, _ in CommandResult(status: 255, stderr: stderr) }
        let recap = try provision(ssh)
        #expect(recap.boxes[0].status == .failed)
        #expect(recap.boxes[0].attempts == 1)
        let reason = try #require(recap.boxes[0].reason)
        #expect(reason.hasPrefix("host key mismatch: 192.0.2.21 presented a different host key than known_hosts records (Offending ED25519 key in /home/admin/.ssh/known_hosts:3); refused, nothing was sent"))
        #expect(ssh.remoteCommands.isEmpty)
    }

    @Test("host-key checking is strict unless accept-new is asked for, and never off")
    func hostKeyPolicy() {
        let strict = SSHConnection(address: "h", settings: SSHSettings(), runner: ProcessRunner(), controlDirectory: "/tmp", boxId: "b")
        #expect(strict.baseArguments.contains("StrictHostKeyChecking=yes"))
        let acceptNew = SSHConnection(address: "h", settings: SSHSettings(), runner: ProcessRunner(), controlDirectory: "/tmp", boxId: "b",
                                      acceptNewHostKeys: true)
        #expect(acceptNew.baseArguments.contains("StrictHostKeyChecking=accept-new"))
        #expect(!acceptNew.baseArguments.contains { $0.hasPrefix("StrictHostKeyChecking=no") })
        #expect(strict.baseArguments.contains("BatchMode=yes"))
    }

    @Test("a box that already has everything is ok and nothing is uploaded")
    func noChange() throws {
        let ssh = FakeSSH { args, remote in
            if isMaster(args) || args.contains("-O") { return CommandResult(status: 0) }
            return factsOutput(config: ProvisionerLogicTests.rendered)
        }
        let recap = try provision(ssh)
        #expect(recap.boxes[0].status == .ok)
        #expect(recap.boxes[0].changes == [])
        #expect(ssh.remoteCommands.count == 1)
        #expect(recap.exitCode == 0)
    }

    @Test("check mode reports the changes and the diff without uploading")
    func checkMode() throws {
        let ssh = FakeSSH { args, _ in
            if isMaster(args) || args.contains("-O") { return CommandResult(status: 0) }
            return factsOutput(config: "board = \"sim\"\n", hostname: "debian", timezone: "Etc/UTC", keys: "")
        }
        let recap = try provision(ssh, check: true)
        #expect(recap.boxes[0].status == .changed)
        #expect(recap.boxes[0].changes == ["config", "keys:teacher", "hostname", "timezone"])
        #expect(recap.boxes[0].diff?.contains("-board = \"sim\"\n") == true)
        #expect(recap.boxes[0].diff?.contains("+id = \"hill-3a\"\n") == true)
        #expect(ssh.remoteCommands.count == 1)
        #expect(recap.table.contains("would change: config, keys:teacher, hostname, timezone"))
    }

    @Test("a configuration the box rejects is discarded before anything is committed")
    func rejectedOnBox() throws {
        let ssh = FakeSSH { args, remote in
            guard let remote else { return CommandResult(status: 0) }
            if remote.hasPrefix("f()") { return factsOutput(config: "board = \"sim\"\n") }
            if remote.contains("config check") {
                return CommandResult(status: 2, stdout: Data("/etc/classbox/classbox.toml.cbx-new: error: no board profile named \"rpi9\"\n".utf8))
            }
            return CommandResult(status: 0)
        }
        let recap = try provision(ssh)
        #expect(recap.boxes[0].status == .failed)
        let reason = try #require(recap.boxes[0].reason)
        #expect(reason.contains("the box rejected the new configuration (classbox config check, exit 2): /etc/classbox/classbox.toml: error: no board profile named \"rpi9\""))
        #expect(reason.hasSuffix("nothing was committed"))
        #expect(!ssh.remoteCommands.contains { $0.contains("mv -f") })
        #expect(ssh.remoteCommands.last?.hasPrefix("rm -f '/etc/classbox/classbox.toml.cbx-new'") == true)
    }

    @Test("a connection lost during an upload leaves the box unreachable with nothing committed")
    func lostDuringUpload() throws {
        let ssh = FakeSSH { args, remote in
            guard let remote else { return CommandResult(status: 0) }
            if remote.hasPrefix("f()") { return factsOutput(config: "board = \"sim\"\n") }
            if remote.contains("head -c ") { return CommandResult(status: 255, stderr: "Timeout, server 192.0.2.21 not responding.\n") }
            return CommandResult(status: 0)
        }
        let recap = try provision(ssh)
        #expect(recap.boxes[0].status == .unreachable)
        let bytes = ProvisionerLogicTests.rendered.utf8.count
        #expect(recap.boxes[0].reason == "connection lost during uploading config (\(bytes) bytes) (192.0.2.21: timeout, server); nothing was committed, the box is as it was")
        #expect(!ssh.remoteCommands.contains { $0.contains("mv -f") })
    }

    @Test("a service that does not come back is rolled back")
    func rollback() throws {
        let ssh = FakeSSH { args, remote in
            guard let remote else { return CommandResult(status: 0) }
            if remote.hasPrefix("f()") { return factsOutput(config: "board = \"sim\"\n") }
            if remote.contains("systemctl restart classbox || exit 80") { return CommandResult(status: 81) }
            return CommandResult(status: 0)
        }
        let recap = try provision(ssh)
        #expect(recap.boxes[0].status == .failed)
        #expect(recap.boxes[0].reason == "the service did not come back within 20 s after the change; rolled back to the previous configuration and restarted")
        let undo = try #require(ssh.remoteCommands.last)
        #expect(undo.contains("mv -f '/etc/classbox/classbox.toml.prev' '/etc/classbox/classbox.toml'"))
    }
}

@Suite("Recap and exit codes")
struct RecapTests {
    func outcome(_ id: String, _ status: BoxOutcome.Status, changes: [String] = [], reason: String? = nil) -> BoxOutcome {
        BoxOutcome(box: id, address: "10.0.0.\(id.count)", school: "S", classroom: "C", status: status, changes: changes, reason: reason)
    }

    @Test("exit code is 0 only when every box is ok or changed", arguments: [
        ([BoxOutcome.Status.ok, .changed], Int32(0)),
        ([.ok, .unreachable], Int32(3)),
        ([.failed], Int32(3)),
        ([], Int32(0)),
    ])
    func exitCodes(statuses: [BoxOutcome.Status], expected: Int32) {
        let recap = FleetRecap(inventory: "f", check: false, seconds: 1, boxes: statuses.enumerated().map { outcome("b\($0.offset)", $0.element) })
        #expect(recap.exitCode == expected)
    }

    @Test("the table names each box's state and reason, and counts them")
    func table() {
        let recap = FleetRecap(inventory: "f", check: false, seconds: 12.34, boxes: [
            outcome("town-5b", .changed, changes: ["config", "hostname"]),
            outcome("hill-3a", .ok),
            outcome("pine-1", .unreachable, reason: "10.0.0.6: connection refused (after 3 attempts)"),
        ])
        #expect(recap.table == """
            BOX      ADDRESS   STATUS       WHAT
            town-5b  10.0.0.7  changed      config, hostname
            hill-3a  10.0.0.7  ok           no change
            pine-1   10.0.0.6  unreachable  10.0.0.6: connection refused (after 3 attempts)
            3 boxes in 12.3 s: 1 ok, 1 changed, 1 unreachable, 0 failed

            """)
    }

    @Test("the JSON recap reads back")
    func json() throws {
        let recap = FleetRecap(inventory: "f", check: true, seconds: 2, boxes: [outcome("a", .failed, reason: "why")])
        let back = try JSONDecoder().decode(FleetRecap.self, from: Data(recap.json().utf8))
        #expect(back == recap)
    }
}

@Suite("Fleet report")
struct FleetReportTests {
    func recap() -> FleetRecap {
        var a = BoxOutcome(box: "town-5b", address: "10.0.0.1", school: "Town, \"Center\"", classroom: "5B", status: .ok)
        a.diagnose = .init(exitCode: 1, json: #"{"box": "town-5b", "checks": [{"id": "speaker", "status": "pass"}, {"id": "camera", "status": "warn"}], "board": "rpi4", "cpu": {"temp_c": 51.5}}"#, note: nil)
        var b = BoxOutcome(box: "hill-3a", address: "10.0.0.2", school: "Hill <b>", classroom: "3A", status: .unreachable, reason: "connection refused")
        b.diagnose = nil
        return FleetRecap(inventory: "f", check: false, seconds: 1, boxes: [a, b])
    }

    @Test("diagnose reports become columns under diagnose., checks named by id one column each")
    func columns() {
        let report = FleetReport(recap: recap())
        #expect(report.columns == FleetReport.fixedColumns
                + ["diagnose.board", "diagnose.box", "diagnose.checks.camera", "diagnose.checks.speaker", "diagnose.cpu.temp_c"])
        #expect(report.rows[0].suffix(5) == ["rpi4", "town-5b", "warn", "pass", "51.5"])
        #expect(report.rows[1][4] == "unreachable")
        #expect(report.rows[1].suffix(5) == ["", "", "", "", ""])
    }

    @Test("the JSON report keeps our box column and the report's own box field apart")
    func jsonColumns() throws {
        let data = Data(FleetReport(recap: recap()).json.utf8)
        let rows = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: String]])
        #expect(rows.count == 2)
        #expect(rows[0]["box"] == "town-5b" && rows[0]["diagnose.box"] == "town-5b" && rows[0]["diagnose.checks.camera"] == "warn")
        #expect(rows[1]["provision"] == "unreachable" && rows[1]["diagnose.box"] == nil)
    }

    @Test("CSV quotes what needs quoting")
    func csv() {
        let csv = FleetReport(recap: recap()).csv
        #expect(csv.hasPrefix("box,school,classroom,address,provision,diagnose_exit,note,diagnose.board,"))
        #expect(csv.contains("town-5b,\"Town, \"\"Center\"\"\",5B,10.0.0.1,ok,1,,rpi4,town-5b,warn,pass,51.5\r\n"))
    }

    @Test("the HTML page is self-contained and escaped")
    func html() {
        let html = FleetReport(recap: recap()).html
        #expect(html.contains("<td>Hill &lt;b&gt;</td>"))
        #expect(html.contains("<td class=\"bad\">unreachable</td>"))
        #expect(html.contains("<td class=\"warn\">warn</td>"))
        #expect(!html.contains("<script") && !html.contains("http://") && !html.contains("https://") && !html.contains("<link"))
    }
}
