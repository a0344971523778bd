import Foundation

/// The box's own configuration (`/etc/classbox/classbox.toml`): who it is, which role it plays in the
/// lesson, whom it talks to and how. Everything is validated on load; nothing is guessed.
public struct BoxConfiguration: Sendable, Equatable {
    /// The board profile to use, unless `--board` says otherwise.
    public var board: String?
    /// Who this box is.
    public var identity: Identity
    /// Other boxes of the lesson in direct (box-to-box) mode.
    public var peers: [Peer]
    /// Media: ports, codec and jitter-buffer settings.
    public var media: Media
    /// The MQTT control channel, when the county runs a hub.
    public var control: Control?
    /// The Janus media server, when the county runs one.
    public var janus: Janus?
    /// Logging.
    public var logLevel: LogLevel?
    /// Inputs and outputs of the simulated classroom (`sim` board only).
    public var sim: Sim?
    /// Camera control presets (`[camera.presets.NAME]`) and the one applied at start.
    public var camera: CameraSettings = CameraSettings()

    /// A configuration from its parts (provisioning builds them from an inventory).
    public init(board: String?, identity: Identity, peers: [Peer], media: Media, control: Control?, janus: Janus?,
                logLevel: LogLevel?, sim: Sim?, camera: CameraSettings = CameraSettings()) {
        self.board = board
        self.identity = identity
        self.peers = peers
        self.media = media
        self.control = control
        self.janus = janus
        self.logLevel = logLevel
        self.sim = sim
        self.camera = camera
    }

    /// The box's role in a lesson.
    public enum Role: String, Sendable, CaseIterable {
        /// The center school's box: the teacher is here.
        case lead
        /// A rural classroom's box.
        case remote
    }

    /// Log levels, as `--log-level` takes them.
    public enum LogLevel: String, Sendable, CaseIterable { case trace, debug, info, notice, warning, error, critical }

    /// Who this box is.
    public struct Identity: Sendable, Equatable {
        /// Unique box id: lowercase letters, digits and dashes (it is a hostname and an MQTT topic level).
        public var id: String
        /// The school's name, shown to the teacher.
        public var school: String
        /// The classroom's name, shown to the teacher.
        public var classroom: String
        /// Lead (center) or remote (rural) box.
        public var role: Role
        /// IANA time zone, e.g. `Europe/Lisbon`; nil keeps the system's.
        public var timezone: String?

        /// An identity from its parts.
        public init(id: String, school: String, classroom: String, role: Role, timezone: String?) {
            self.id = id
            self.school = school
            self.classroom = classroom
            self.role = role
            self.timezone = timezone
        }
    }

    /// Another box in a direct-mode lesson.
    public struct Peer: Sendable, Equatable {
        /// The peer's box id.
        public var id: String
        /// Its host name or IP address.
        public var address: String
        /// Its role; a remote box has one lead peer, a lead box one or two remote peers.
        public var role: Role
        /// The UDP port of its audio RTP session.
        public var audioPort: Int
        /// The UDP port of its video RTP session.
        public var videoPort: Int

        /// A peer from its parts.
        public init(id: String, address: String, role: Role, audioPort: Int = 5004, videoPort: Int = 5006) {
            self.id = id
            self.address = address
            self.role = role
            self.audioPort = audioPort
            self.videoPort = videoPort
        }
    }

    /// How media is carried.
    public struct Media: Sendable, Equatable {
        /// Transport security of RTP.
        public enum Security: String, Sendable, CaseIterable {
            /// SRTP (RFC 3711); the default.
            case srtp
            /// Plain RTP: only for loopback tests; must be chosen explicitly.
            case plain
        }
        /// Local UDP port of the audio RTP session (RTCP on the next port).
        public var audioPort: Int = 5004
        /// Local UDP port of the video RTP session.
        public var videoPort: Int = 5006
        /// Opus frame length in milliseconds.
        public var frameMs: Int = 20
        /// Opus bit rate in bits per second.
        public var bitrate: Int = 32000
        /// Stereo full-band audio for music lessons.
        public var music: Bool = false
        /// Opus in its restricted low-delay mode (4 ms less latency, no in-band FEC); off: VoIP mode.
        public var lowDelay: Bool = false
        /// Smallest jitter-buffer target in milliseconds.
        public var jitterMinMs: Int = 20
        /// Largest jitter-buffer target in milliseconds.
        public var jitterMaxMs: Int = 200
        /// RTP transport security.
        public var security: Security = .srtp
        /// The SRTP master key and salt (base64: 30 bytes for AES-CM, 28 for GCM), until the control channel delivers keys.
        public var srtpKey: String?
        /// The SRTP protection profile of audio and video (RTP and RTCP).
        public var srtpProfile: SRTPSuite = .aesCm128HmacSha1_80
        /// Whether the lesson carries the camera (its own RTP session on `videoPort`, RTCP on the next port).
        public var video: Bool = true
        /// How the camera is sent: `auto` (H.264 from the camera or the board's encoder, else JPEG), or forced.
        public var videoCodec: VideoCodecChoice = .auto
        /// Quality (1-100) of the software JPEG encoder (boards without a hardware encoder, and `sim`).
        public var videoJPEGQuality: Int = 70

        /// SRTP protection profiles (RFC 3711, RFC 7714).
        public enum SRTPSuite: String, Sendable, CaseIterable {
            /// AES-128 counter mode, HMAC-SHA1 80-bit tag: 16-byte key + 14-byte salt.
            case aesCm128HmacSha1_80 = "AES_CM_128_HMAC_SHA1_80"
            /// AES-128-GCM, 16-byte tag: 16-byte key + 12-byte salt.
            case aeadAes128Gcm = "AEAD_AES_128_GCM"

            /// Bytes of master key plus salt.
            public var keyAndSaltBytes: Int { self == .aeadAes128Gcm ? 28 : 30 }
        }

        /// How the lesson's video is coded.
        public enum VideoCodecChoice: String, Sendable, CaseIterable {
            /// H.264 when the camera or the board's encoder gives it, else JPEG.
            case auto
            /// H.264 only (the camera's own, or the board's M2M encoder); no video if neither exists.
            case h264
            /// JPEG (RFC 2435): the camera's MJPEG or the software encoder; meant for a LAN.
            case jpeg
        }

        /// The defaults: ports 5004/5006, 20 ms frames at 32 kbit/s, SRTP.
        public init() {}
    }

    /// The MQTT control channel.
    public struct Control: Sendable, Equatable {
        /// Broker URL, `mqtts://host:port` (or `mqtt://` on loopback tests).
        public var broker: String
        /// CA certificate file that signed the broker's certificate.
        public var caFile: String?
        /// This box's client certificate.
        public var certFile: String?
        /// This box's client key.
        public var keyFile: String?
        /// MQTT keep-alive in seconds.
        public var keepaliveS: Int

        /// A control channel from its parts.
        public init(broker: String, caFile: String?, certFile: String?, keyFile: String?, keepaliveS: Int = 30) {
            self.broker = broker
            self.caFile = caFile
            self.certFile = certFile
            self.keyFile = keyFile
            self.keepaliveS = keepaliveS
        }
    }

    /// The Janus media server.
    public struct Janus: Sendable, Equatable {
        /// Janus HTTP API URL.
        public var url: String
        /// AudioBridge room the class uses.
        public var audioBridgeRoom: Int?
    }

    /// The simulated classroom's inputs and outputs.
    public struct Sim: Sendable, Equatable {
        /// WAV file the teacher's voice comes from (what the classroom speaker plays).
        public var lesson: String
        /// WAV file of the pupil(s) talking in the room, on the same timeline as the lesson.
        public var pupil: String?
        /// Directory the simulated run writes its WAV files and summary into.
        public var outputDir: String

        /// Inputs and outputs of a simulated run.
        public init(lesson: String, pupil: String?, outputDir: String) {
            self.lesson = lesson
            self.pupil = pupil
            self.outputDir = outputDir
        }
    }

    /// Named camera control presets: a classroom's framing and exposure, chosen by name.
    public struct CameraSettings: Sendable, Equatable {
        /// The preset applied when the camera opens, if any.
        public var defaultPreset: String?
        /// Presets by name; each maps control keys (`brightness`, `exposure`, `pan`...) to values.
        public var presets: [String: [String: Int]]

        /// Settings from their values.
        public init(defaultPreset: String? = nil, presets: [String: [String: Int]] = [:]) {
            self.defaultPreset = defaultPreset
            self.presets = presets
        }

        /// The control keys the firmware knows on every camera (the device layer names the same);
        /// other keys are the driver's own control names in lower case with underscores.
        public static let knownControls: [String] = [
            "brightness", "contrast", "saturation", "hue", "gain", "sharpness", "white_balance_auto",
            "white_balance_temperature", "power_line_frequency", "backlight_compensation", "exposure_auto", "exposure",
            "focus_auto", "focus", "pan", "tilt", "zoom",
        ]

        /// The default preset's controls (empty when none is chosen).
        public var defaultControls: [String: Int] { defaultPreset.flatMap { presets[$0] } ?? [:] }
    }

    /// The configuration a laptop uses with the `sim` board when it has no configuration file.
    public static let simDefault = BoxConfiguration(
        board: "sim",
        identity: Identity(id: "sim-box", school: "Simulated School", classroom: "Simulated Classroom", role: .remote, timezone: nil),
        peers: [], media: Media(), control: nil, janus: nil, logLevel: nil, sim: nil)

    /// The configuration file a box reads by default.
    public static let defaultPath = "/etc/classbox/classbox.toml"
}

extension BoxConfiguration {
    /// Reads and validates a configuration file.
    public static func load(path: String) throws(ConfigError) -> BoxConfiguration {
        try parse(readConfigText(path), file: path)
    }

    /// Reads and validates configuration text; `file` names it in errors. Relative paths in `[sim]`
    /// are taken relative to the file's directory.
    public static func parse(_ text: String, file: String) throws(ConfigError) -> BoxConfiguration {
        let root = try TableReader.parse(text: text, file: file)
        let board = root.string("board")
        if let board, !BoardProfile.isValidName(board) && !board.hasSuffix(".toml") {
            root.report("board", "\"\(board)\" is not a board name (lowercase letters, digits, dashes) or a .toml path")
        }
        let identity = root.table("box", required: true).flatMap(readIdentity)
        let peerReaders = root.tables("peers")
        let peers = peerReaders.compactMap(readPeer)
        let media = root.table("media").flatMap(readMedia) ?? Media()
        let control = root.table("control").flatMap(readControl)
        let janus = root.table("janus").flatMap(readJanus)
        var logLevel: LogLevel? = nil
        if let logging = root.table("logging") {
            logLevel = logging.choice("level", LogLevel.self)
            logging.finish()
        }
        let baseDirectory = (file as NSString).deletingLastPathComponent
        let sim = root.table("sim").flatMap { readSim($0, baseDirectory: baseDirectory) }
        let camera = root.table("camera").map(readCamera) ?? CameraSettings()
        root.finish()

        if let identity, peers.count == peerReaders.count {
            checkPeers(peers, readers: peerReaders, identity: identity, root: root)
        }
        if media.security == .srtp, media.srtpKey == nil, control == nil, !peers.isEmpty {
            root.report("media", "direct-mode peers with SRTP need media.srtp_key (30 bytes, base64) until a [control] broker delivers keys; or set media.security = \"plain\" for a loopback test")
        }

        let problems = root.context.sortedProblems
        guard problems.isEmpty, let identity else { throw ConfigError(problems: problems) }
        return BoxConfiguration(board: board, identity: identity, peers: peers, media: media, control: control,
                                janus: janus, logLevel: logLevel, sim: sim, camera: camera)
    }
}

private func isValidBoxId(_ s: String) -> Bool { BoardProfile.isValidName(s) }

private func readIdentity(_ t: TableReader) -> BoxConfiguration.Identity? {
    let id = t.string("id", required: true, example: "\"school-class-1\"")
    if let id, !isValidBoxId(id) {
        t.report("id", "\"\(id)\" must be 1-63 lowercase letters, digits and dashes, not starting with a dash (it becomes the hostname and an MQTT topic level)")
    }
    let school = t.string("school", required: true, example: "\"Hillside Primary School\"")
    let classroom = t.string("classroom", required: true, example: "\"Class 3\"")
    let role = t.choice("role", BoxConfiguration.Role.self, required: true)
    let timezone = t.string("timezone")
    if let timezone, !isValidTimezone(timezone) {
        t.report("timezone", "\"\(timezone)\" is not a known time zone; use an IANA name such as \"Europe/Lisbon\" (see /usr/share/zoneinfo)")
    }
    t.finish()
    guard let id, isValidBoxId(id), let school, let classroom, let role else { return nil }
    return .init(id: id, school: school, classroom: classroom, role: role, timezone: timezone)
}

private func isValidTimezone(_ name: String) -> Bool {
    guard !name.isEmpty, !name.hasPrefix("/"), !name.contains(".."), !name.contains(" ") else { return false }
    let zoneinfo = "/usr/share/zoneinfo"
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: zoneinfo, isDirectory: &isDirectory), isDirectory.boolValue else {
        return name == "UTC" || name.contains("/")  // no tz database here: accept the shape
    }
    var isZoneDirectory: ObjCBool = false
    return FileManager.default.fileExists(atPath: zoneinfo + "/" + name, isDirectory: &isZoneDirectory) && !isZoneDirectory.boolValue
}

/// Host names (RFC 1123) and IPv4/IPv6 literals.
package func isValidHost(_ s: String) -> Bool {
    guard !s.isEmpty, s.count <= 253 else { return false }
    if s.contains(":") { return s.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." } }
    return s.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
        !label.isEmpty && label.count <= 63 && label.first != "-" && label.last != "-"
            && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
    }
}

private func readPeer(_ t: TableReader) -> BoxConfiguration.Peer? {
    let id = t.string("id", required: true, example: "\"center-class-1\"")
    if let id, !isValidBoxId(id) { t.report("id", "\"\(id)\" must be lowercase letters, digits and dashes") }
    let address = t.string("address", required: true, example: "\"192.0.2.10\"")
    if let address, !isValidHost(address) { t.report("address", "\"\(address)\" is not a host name or IP address") }
    let role = t.choice("role", BoxConfiguration.Role.self, required: true)
    let audioPort = t.int("audio_port", range: 1024...65534) ?? 5004
    let videoPort = t.int("video_port", range: 1024...65534) ?? 5006
    t.finish()
    guard let id, let address, isValidHost(address), let role else { return nil }
    return .init(id: id, address: address, role: role, audioPort: audioPort, videoPort: videoPort)
}

private func checkPeers(_ peers: [BoxConfiguration.Peer], readers: [TableReader],
                        identity: BoxConfiguration.Identity, root: TableReader) {
    var seen: Set<String> = []
    for (peer, reader) in zip(peers, readers) {
        if peer.id == identity.id { reader.report("id", "\"\(peer.id)\" is this box's own id; a peer is another box") }
        if !seen.insert(peer.id).inserted { reader.report("id", "\"\(peer.id)\" is listed twice") }
        if peer.role == identity.role {
            reader.report("role", "a \(identity.role.rawValue) box's peers must be \(identity.role == .lead ? "remote" : "lead") boxes")
        }
    }
    switch identity.role {
    case .remote where peers.count > 1:
        readers[1].report("id", "a remote box follows exactly one lead box; remove the extra [[peers]]")
    case .lead where peers.count > 2:
        readers[2].report("id", "a lead box serves at most 2 remote rooms in direct mode; use a Janus hub ([janus]) for more")
    default:
        break
    }
}

private func readMedia(_ t: TableReader) -> BoxConfiguration.Media? {
    var m = BoxConfiguration.Media()
    m.audioPort = t.int("audio_port", range: 1024...65534) ?? m.audioPort
    m.videoPort = t.int("video_port", range: 1024...65534) ?? m.videoPort
    if m.audioPort == m.videoPort || m.audioPort + 1 == m.videoPort || m.videoPort + 1 == m.audioPort {
        t.report("video_port", "\(m.videoPort) collides with audio_port \(m.audioPort) and its RTCP port; keep them 2 apart")
    }
    m.frameMs = t.int("frame_ms", oneOf: [10, 20], unit: " ms") ?? m.frameMs
    m.bitrate = t.int("bitrate", range: 6000...510_000, unit: " bit/s") ?? m.bitrate
    m.music = t.bool("music") ?? m.music
    m.lowDelay = t.bool("low_delay") ?? m.lowDelay
    m.jitterMinMs = t.int("jitter_min_ms", range: 0...1000, unit: " ms") ?? m.jitterMinMs
    m.jitterMaxMs = t.int("jitter_max_ms", range: 20...2000, unit: " ms") ?? m.jitterMaxMs
    if m.jitterMinMs > m.jitterMaxMs { t.report("jitter_min_ms", "\(m.jitterMinMs) ms is above jitter_max_ms (\(m.jitterMaxMs) ms)") }
    m.security = t.choice("security", BoxConfiguration.Media.Security.self) ?? m.security
    m.srtpProfile = t.choice("srtp_profile", BoxConfiguration.Media.SRTPSuite.self) ?? m.srtpProfile
    m.video = t.bool("video") ?? m.video
    m.videoCodec = t.choice("video_codec", BoxConfiguration.Media.VideoCodecChoice.self) ?? m.videoCodec
    m.videoJPEGQuality = t.int("video_jpeg_quality", range: 10...95) ?? m.videoJPEGQuality
    if let key = t.string("srtp_key") {
        let bytes = m.srtpProfile.keyAndSaltBytes
        if let data = Data(base64Encoded: key), data.count == bytes { m.srtpKey = key } else {
            t.report("srtp_key", "must be \(bytes) bytes (16-byte key + \(bytes - 16)-byte salt for \(m.srtpProfile.rawValue)) in base64; make one with `head -c \(bytes) /dev/urandom | base64`")
        }
        if m.security == .plain { t.report("srtp_key", "is set but security is \"plain\"; remove one of them") }
    }
    t.finish()
    return m
}

private func readControl(_ t: TableReader) -> BoxConfiguration.Control? {
    let broker = t.string("broker", required: true, example: "\"mqtts://hub.example.org:8883\"")
    if let broker {
        let ok = (broker.hasPrefix("mqtts://") || broker.hasPrefix("mqtt://")) && URLComponents(string: broker)?.host?.isEmpty == false
        if !ok { t.report("broker", "\"\(broker)\" is not an MQTT URL; use mqtts://HOST:PORT") }
    }
    let ca = t.string("ca_file")
    let cert = t.string("cert_file")
    let key = t.string("key_file")
    if (cert == nil) != (key == nil) { t.report(cert == nil ? "key_file" : "cert_file", "cert_file and key_file go together; set both or neither") }
    if let broker, broker.hasPrefix("mqtts://"), cert == nil {
        t.report("broker", "a TLS broker needs this box's client certificate: set cert_file and key_file")
    }
    let keepalive = t.int("keepalive_s", range: 5...600, unit: " s") ?? 30
    t.finish()
    guard let broker else { return nil }
    return .init(broker: broker, caFile: ca, certFile: cert, keyFile: key, keepaliveS: keepalive)
}

private func readJanus(_ t: TableReader) -> BoxConfiguration.Janus? {
    let url = t.string("url", required: true, example: "\"https://hub.example.org/janus\"")
    if let url, !(url.hasPrefix("http://") || url.hasPrefix("https://")) || URLComponents(string: url)?.host == nil {
        t.report("url", "\"\(url)\" is not an http(s) URL")
    }
    let room = t.int("audiobridge_room", range: 1...Int(Int32.max))
    t.finish()
    guard let url else { return nil }
    return .init(url: url, audioBridgeRoom: room)
}

private func readSim(_ t: TableReader, baseDirectory: String) -> BoxConfiguration.Sim? {
    func resolve(_ p: String) -> String {
        ((p.hasPrefix("/") || baseDirectory.isEmpty ? p : baseDirectory + "/" + p) as NSString).standardizingPath
    }
    let lesson = t.string("lesson", required: true, example: "\"teacher.wav\"")
    let pupil = t.string("pupil")
    let output = t.string("output_dir", required: true, example: "\"out\"")
    t.finish()
    guard let lesson, let output else { return nil }
    return .init(lesson: resolve(lesson), pupil: pupil.map(resolve), outputDir: resolve(output))
}

private func readCamera(_ t: TableReader) -> BoxConfiguration.CameraSettings {
    var settings = BoxConfiguration.CameraSettings()
    let chosen = t.string("preset")
    if let presets = t.table("presets") {
        for name in presets.table.keys.sorted() {
            guard isValidBoxId(name) || name.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "_" || $0 == "-") }),
                  !name.isEmpty else {
                presets.report(name, "\"\(name)\" is not a preset name; use lowercase letters, digits, dashes or underscores")
                _ = presets.table(name)
                continue
            }
            guard let preset = presets.table(name) else { continue }
            var controls: [String: Int] = [:]
            for key in preset.table.keys.sorted() {
                let known = BoxConfiguration.CameraSettings.knownControls
                if !known.contains(key) {
                    let near = known.first { editDistance(Array(key.utf8), Array($0.utf8)) <= 2 }
                    let shaped = key.first?.isLetter == true && key.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "_") }
                    if let near {
                        preset.report(key, "unknown camera control; did you mean '\(near)'?")
                        _ = preset.int(key, range: Int(Int32.min)...Int(Int32.max))
                        continue
                    }
                    if !shaped {
                        preset.report(key, "is not a control name; use a known control (\(known.joined(separator: ", "))) or the driver's control name in lower case with underscores (see `classbox devices`)")
                        _ = preset.int(key, range: Int(Int32.min)...Int(Int32.max))
                        continue
                    }
                }
                if let value = preset.int(key, range: Int(Int32.min)...Int(Int32.max)) { controls[key] = value }
            }
            preset.finish()
            if preset.table.keys.isEmpty { presets.report(name, "sets no controls; add some (e.g. brightness = 128) or remove the preset") }
            settings.presets[name] = controls
        }
        presets.finish()
    }
    if let chosen {
        if settings.presets[chosen] == nil {
            let names = settings.presets.keys.sorted()
            t.report("preset", "\"\(chosen)\" is not a preset here; define [camera.presets.\(chosen)]" + (names.isEmpty ? "" : " or use one of: \(names.joined(separator: ", "))"))
        } else {
            settings.defaultPreset = chosen
        }
    }
    t.finish()
    return settings
}
