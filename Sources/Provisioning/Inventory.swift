public import BoxConfig
import Foundation

/// The county's fleet as the administrator writes it: defaults, schools, and the boxes in their
/// classrooms. Validated completely on load, with file:line:key errors like the box's own config.
public struct Inventory: Sendable {
    /// The file it was read from (named in errors and in the recap).
    public var file: String
    /// Every box, in file order, with group defaults already applied.
    public var boxes: [InventoryBox]
}

/// One box of the inventory, fully resolved: what its configuration says and how to reach it.
public struct InventoryBox: Sendable, Equatable {
    /// The configuration rendered onto the box.
    public var config: BoxConfiguration
    /// Host name or address to connect to.
    public var address: String
    /// How to connect.
    public var ssh: SSHSettings
    /// Where things are on the box and how to act on its services.
    public var paths: BoxPaths
    /// Users whose `authorized_keys` provisioning manages.
    public var users: [BoxUser]
    /// Line of the box's table in the inventory.
    public var line: Int?

    /// The box id (also its hostname).
    public var id: String { config.identity.id }
}

/// How to reach a box with OpenSSH; unset values leave the administrator's `~/.ssh/config` in charge.
public struct SSHSettings: Sendable, Equatable {
    /// Host-key policy. Checking is never switched off: an unknown key is refused unless the inventory
    /// or the command line explicitly accepts new (never changed) keys.
    public enum HostKeyChecking: String, Sendable, CaseIterable {
        /// `StrictHostKeyChecking=yes`: the key must already be in known_hosts.
        case yes
        /// `StrictHostKeyChecking=accept-new`: a first key is recorded; a changed key is still refused.
        case acceptNew = "accept-new"
    }
    /// Remote user (`-l`).
    public var user: String?
    /// TCP port (`-p`).
    public var port: Int?
    /// Private key (`-i`, with `IdentitiesOnly=yes`).
    public var identityFile: String?
    /// An ssh_config file to use instead of `~/.ssh/config` (`-F`).
    public var configFile: String?
    /// A known_hosts file to use instead of `~/.ssh/known_hosts`.
    public var knownHostsFile: String?
    /// Host-key policy; `yes` unless asked otherwise.
    public var hostKeyChecking: HostKeyChecking = .yes
    /// Seconds allowed for the TCP connection and SSH handshake.
    public var connectTimeoutS: Int = 5

    /// Settings with every value left to OpenSSH's own configuration.
    public init() {}
}

/// Where provisioning finds things on a box. `root` prefixes every file path (a test's fake root);
/// commands are run as written (the service manager's commands on a real box).
public struct BoxPaths: Sendable, Equatable {
    /// Prefix of every file path below (empty on a real box).
    public var root: String = ""
    /// The configuration file.
    public var config: String = BoxConfiguration.defaultPath
    /// The classbox binary (run for checks, replaced by `--install`).
    public var classbox: String = "/usr/bin/classbox"
    /// Board profiles on the box (searched by `classbox config check`).
    public var boards: [String] = ["/etc/classbox/boards", "/usr/share/classbox/boards"]
    /// The file holding the hostname.
    public var hostnameFile: String = "/etc/hostname"
    /// The file holding the time zone name.
    public var timezoneFile: String = "/etc/timezone"
    /// Home directories of users other than root.
    public var home: String = "/home"
    /// Restarts the service.
    public var restartCommand: String = "systemctl restart classbox"
    /// Exits 0 when the service runs.
    public var statusCommand: String = "systemctl is-active --quiet classbox"
    /// Sets the hostname (the name is appended).
    public var hostnameCommand: String = "hostnamectl set-hostname"
    /// Sets the time zone (the name is appended).
    public var timezoneCommand: String = "timedatectl set-timezone"
    /// Seconds the service has to come back after a restart.
    public var restartTimeoutS: Int = 20

    /// The default paths of a box built from our image.
    public init() {}

    /// A command with `{root}` replaced by `root` (so one command line serves every fake root in a test).
    public func expand(_ command: String) -> String { command.replacingOccurrences(of: "{root}", with: root) }

    /// `path` under `root`.
    public func onBox(_ path: String) -> String { root.isEmpty ? path : root + path }
    /// The `authorized_keys` file of `user`.
    public func authorizedKeys(of user: String) -> String {
        onBox(user == "root" ? "/root/.ssh/authorized_keys" : "\(home)/\(user)/.ssh/authorized_keys")
    }
}

/// A user on the box and the public keys that may log in as them (the file is replaced exactly).
public struct BoxUser: Sendable, Equatable {
    /// Login name.
    public var name: String
    /// OpenSSH public key lines.
    public var keys: [String]
}

// MARK: - Reading

/// Settings any level (defaults, school, box) may give; a lower level overrides a higher one.
private struct GroupSettings {
    var board: String?
    var timezone: String?
    var logLevel: BoxConfiguration.LogLevel?
    var ssh: [(KeyPath, (inout SSHSettings) -> Void)] = []
    var paths: [(inout BoxPaths) -> Void] = []
    var media: [(inout BoxConfiguration.Media) -> Void] = []
    var control: BoxConfiguration.Control?
    var users: [BoxUser] = []

    mutating func overlay(_ other: GroupSettings) {
        board = other.board ?? board
        timezone = other.timezone ?? timezone
        logLevel = other.logLevel ?? logLevel
        ssh += other.ssh
        paths += other.paths
        media += other.media
        control = other.control ?? control
        for user in other.users {
            if let i = users.firstIndex(where: { $0.name == user.name }) { users[i] = user } else { users.append(user) }
        }
    }
}

private let groupKeys = ["board", "timezone", "log_level", "ssh", "paths", "media", "control", "users"]

extension Inventory {
    /// Reads and validates an inventory file.
    public static func load(path: String) throws(ConfigError) -> Inventory {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ConfigError(file: path, message: "does not exist; give the inventory file's path (see README: Provisioning)")
        }
        return try parse(readConfigText(path), file: path)
    }

    /// Reads and validates inventory text; `file` names it in errors. Every box's configuration is
    /// rendered and validated as the box would validate it, so a mistake stops the run before any
    /// connection is made.
    public static func parse(_ text: String, file: String) throws(ConfigError) -> Inventory {
        let root = try TableReader.parse(text: text, file: file)
        var defaults = GroupSettings()
        if let t = root.table("defaults") { defaults = readGroup(t); t.finish() }

        struct Pending { var reader: TableReader; var settings: GroupSettings; var school: String; var peerIds: [String]
                         var id: String?; var classroom: String?; var address: String?; var role: BoxConfiguration.Role? }
        var pending: [Pending] = []
        var schoolIds: Set<String> = []
        for school in root.tables("schools") {
            let name = school.string("name", required: true, example: "\"Hillside Primary School\"")
            if let sid = school.string("id") {
                if !BoardProfile.isValidName(sid) { school.report("id", "\"\(sid)\" must be lowercase letters, digits and dashes") }
                if !schoolIds.insert(sid).inserted { school.report("id", "school \"\(sid)\" is listed twice") }
            }
            var schoolSettings = defaults
            schoolSettings.overlay(readGroup(school))
            let boxes = school.tables("boxes")
            if boxes.isEmpty { school.report("boxes", "a school needs at least one box: add [[schools.boxes]]") }
            for box in boxes {
                let id = box.string("id", required: true, example: "\"hillside-3a\"")
                if let id, !BoardProfile.isValidName(id) {
                    box.report("id", "\"\(id)\" must be 1-63 lowercase letters, digits and dashes (it becomes the hostname)")
                }
                let classroom = box.string("classroom", required: true, example: "\"Class 3A\"")
                let address = box.string("address", required: true, example: "\"192.0.2.21\"")
                if let address, !isValidHost(address) { box.report("address", "\"\(address)\" is not a host name or IP address") }
                let role = box.choice("role", BoxConfiguration.Role.self, required: true)
                let peers = box.strings("peers") ?? []
                var settings = schoolSettings
                settings.overlay(readGroup(box))
                box.finish(known: [])
                pending.append(Pending(reader: box, settings: settings, school: name ?? "", peerIds: peers,
                                       id: id, classroom: classroom, address: address, role: role))
            }
            school.finish()
        }
        root.finish()
        if pending.isEmpty && root.context.sortedProblems.isEmpty {
            root.report("schools", "the inventory lists no boxes: add [[schools]] with [[schools.boxes]]")
        }

        // Ids and addresses are unique; peers name other boxes of the inventory.
        var byId: [String: Pending] = [:]
        var addresses: [String: String] = [:]
        for p in pending {
            guard let id = p.id else { continue }
            if byId[id] != nil { p.reader.report("id", "box \"\(id)\" is listed twice") } else { byId[id] = p }
            if let address = p.address {
                if let other = addresses[address] { p.reader.report("address", "\(address) is also box \"\(other)\"'s address") }
                else { addresses[address] = id }
            }
        }
        var boxes: [InventoryBox] = []
        for p in pending {
            guard let id = p.id, let classroom = p.classroom, let address = p.address, let role = p.role, !p.school.isEmpty else { continue }
            var peers: [BoxConfiguration.Peer] = []
            for peerId in p.peerIds {
                guard let peer = byId[peerId] else {
                    let near = byId.keys.sorted().first { editDistanceText(peerId, $0) <= 2 }
                    p.reader.report("peers", "\"\(peerId)\" is not a box of this inventory" + (near.map { "; did you mean \"\($0)\"?" } ?? ""))
                    continue
                }
                guard let peerAddress = peer.address, let peerRole = peer.role else { continue }
                var media = BoxConfiguration.Media()
                for apply in peer.settings.media { apply(&media) }
                peers.append(.init(id: peerId, address: peerAddress, role: peerRole, audioPort: media.audioPort, videoPort: media.videoPort))
            }
            var media = BoxConfiguration.Media()
            for apply in p.settings.media { apply(&media) }
            var ssh = SSHSettings()
            for (_, apply) in p.settings.ssh { apply(&ssh) }
            var paths = BoxPaths()
            for apply in p.settings.paths { apply(&paths) }
            let config = BoxConfiguration(
                board: p.settings.board,
                identity: .init(id: id, school: p.school, classroom: classroom, role: role, timezone: p.settings.timezone),
                peers: peers, media: media, control: p.settings.control, janus: nil, logLevel: p.settings.logLevel, sim: nil)
            // The box validates what it receives; validate it here first, so nothing invalid is sent.
            let rendered = ConfigRenderer.render(config)
            do throws(ConfigError) {
                _ = try BoxConfiguration.parse(rendered, file: "\(id).toml")
            } catch {
                for problem in error.problems {
                    p.reader.context.report(p.reader.path, "box \"\(id)\": its rendered configuration is invalid: \(problem.key.map { "key '\($0)': " } ?? "")\(problem.message)")
                }
                continue
            }
            boxes.append(InventoryBox(config: config, address: address, ssh: ssh, paths: paths, users: p.settings.users,
                                      line: p.reader.context.sourceMapLine(p.reader.path)))
        }
        let problems = root.context.sortedProblems
        guard problems.isEmpty else { throw ConfigError(problems: problems) }
        return Inventory(file: file, boxes: boxes)
    }
}

private func readGroup(_ t: TableReader) -> GroupSettings {
    var g = GroupSettings()
    g.board = t.string("board")
    if let board = g.board, !BoardProfile.isValidName(board) {
        t.report("board", "\"\(board)\" is not a board name (lowercase letters, digits, dashes)")
    }
    g.timezone = t.string("timezone")
    g.logLevel = t.choice("log_level", BoxConfiguration.LogLevel.self)
    if let s = t.table("ssh") {
        if let user = s.string("user") { g.ssh.append((s.path, { $0.user = user })) }
        if let port = s.int("port", range: 1...65535) { g.ssh.append((s.path, { $0.port = port })) }
        if let file = s.string("identity_file") { g.ssh.append((s.path, { $0.identityFile = file })) }
        if let file = s.string("config_file") { g.ssh.append((s.path, { $0.configFile = file })) }
        if let file = s.string("known_hosts_file") { g.ssh.append((s.path, { $0.knownHostsFile = file })) }
        if let policy = s.choice("host_key_checking", SSHSettings.HostKeyChecking.self) { g.ssh.append((s.path, { $0.hostKeyChecking = policy })) }
        if let timeout = s.int("connect_timeout_s", range: 1...120, unit: " s") { g.ssh.append((s.path, { $0.connectTimeoutS = timeout })) }
        s.finish()
    }
    if let p = t.table("paths") {
        func path(_ key: String, _ set: @escaping @Sendable (inout BoxPaths, String) -> Void) {
            guard let value = p.string(key) else { return }
            if !value.hasPrefix("/") { p.report(key, "\"\(value)\" must be an absolute path on the box") }
            if key == "root" && value.hasSuffix("/") { p.report(key, "\"\(value)\" must not end with /") }
            g.paths.append { set(&$0, value) }
        }
        func command(_ key: String, _ set: @escaping @Sendable (inout BoxPaths, String) -> Void) {
            guard let value = p.string(key, required: false) else { return }
            if value.trimmingCharacters(in: .whitespaces).isEmpty { p.report(key, "must not be empty"); return }
            g.paths.append { set(&$0, value) }
        }
        path("root") { $0.root = $1 }
        path("config") { $0.config = $1 }
        path("classbox") { $0.classbox = $1 }
        path("hostname_file") { $0.hostnameFile = $1 }
        path("timezone_file") { $0.timezoneFile = $1 }
        path("home") { $0.home = $1 }
        if let boards = p.strings("boards") { g.paths.append { $0.boards = boards } }
        command("restart_command") { $0.restartCommand = $1 }
        command("status_command") { $0.statusCommand = $1 }
        command("hostname_command") { $0.hostnameCommand = $1 }
        command("timezone_command") { $0.timezoneCommand = $1 }
        if let s = p.int("restart_timeout_s", range: 1...600, unit: " s") { g.paths.append { $0.restartTimeoutS = s } }
        p.finish()
    }
    if let m = t.table("media") {
        if let v = m.int("audio_port", range: 1024...65534) { g.media.append { $0.audioPort = v } }
        if let v = m.int("video_port", range: 1024...65534) { g.media.append { $0.videoPort = v } }
        if let v = m.int("frame_ms", oneOf: [10, 20], unit: " ms") { g.media.append { $0.frameMs = v } }
        if let v = m.int("bitrate", range: 6000...510_000, unit: " bit/s") { g.media.append { $0.bitrate = v } }
        if let v = m.bool("music") { g.media.append { $0.music = v } }
        if let v = m.int("jitter_min_ms", range: 0...1000, unit: " ms") { g.media.append { $0.jitterMinMs = v } }
        if let v = m.int("jitter_max_ms", range: 20...2000, unit: " ms") { g.media.append { $0.jitterMaxMs = v } }
        if let v = m.choice("security", BoxConfiguration.Media.Security.self) { g.media.append { $0.security = v } }
        if let v = m.string("srtp_key") { g.media.append { $0.srtpKey = v } }
        m.finish()
    }
    if let c = t.table("control") {
        let broker = c.string("broker", required: true, example: "\"mqtts://hub.example.org:8883\"")
        let control = BoxConfiguration.Control(broker: broker ?? "", caFile: c.string("ca_file"), certFile: c.string("cert_file"),
                                               keyFile: c.string("key_file"), keepaliveS: c.int("keepalive_s", range: 5...600, unit: " s") ?? 30)
        c.finish()
        if broker != nil { g.control = control }
    }
    for u in t.tables("users") {
        let name = u.string("name", required: true, example: "\"classbox\"")
        if let name, !isValidUserName(name) { u.report("name", "\"\(name)\" is not a user name (lowercase letters, digits, _ and -, starting with a letter or _)") }
        let keys = u.strings("keys", required: true) ?? []
        for (i, key) in keys.enumerated() where !isPublicKeyLine(key) {
            u.report("keys", "element \(i) is not an OpenSSH public key line (\"ssh-ed25519 AAAA... comment\")")
        }
        u.finish()
        if let name, isValidUserName(name), keys.allSatisfy(isPublicKeyLine) { g.users.append(BoxUser(name: name, keys: keys)) }
    }
    _ = groupKeys
    return g
}

func isValidUserName(_ s: String) -> Bool {
    guard let first = s.first, first == "_" || (first.isASCII && first.isLowercase), s.count <= 32 else { return false }
    return s.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "_" || $0 == "-") }
}

func isPublicKeyLine(_ s: String) -> Bool {
    let parts = s.split(separator: " ", omittingEmptySubsequences: true)
    guard parts.count >= 2, !s.contains("\n") else { return false }
    let types = ["ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
                 "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com"]
    return types.contains(String(parts[0])) && Data(base64Encoded: String(parts[1])) != nil
}

func editDistanceText(_ a: String, _ b: String) -> Int {
    let a = Array(a.utf8), b = Array(b.utf8)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count), current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}
