import Foundation
import Testing
@testable import BoxConfig

@Suite("Box configuration")
struct ConfigurationTests {
    static let valid = """
        # A rural classroom's box.
        board = "rpi4"

        [box]
        id = "hillside-3a"
        school = "Hillside Primary School"
        classroom = "Class 3A"
        role = "remote"
        timezone = "UTC"

        [[peers]]
        id = "town-center-5b"
        address = "192.0.2.10"
        role = "lead"
        audio_port = 6000

        [media]
        frame_ms = 10
        bitrate = 48000
        jitter_min_ms = 20
        jitter_max_ms = 160
        srtp_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd"

        [control]
        broker = "mqtts://hub.example.org:8883"
        cert_file = "/etc/classbox/box.crt"
        key_file = "/etc/classbox/box.key"

        [logging]
        level = "debug"

        """

    @Test("a complete configuration loads with every value")
    func validConfiguration() throws {
        let config = try BoxConfiguration.parse(Self.valid, file: "/etc/classbox/classbox.toml")
        #expect(config.board == "rpi4")
        #expect(config.identity == .init(id: "hillside-3a", school: "Hillside Primary School", classroom: "Class 3A", role: .remote, timezone: "UTC"))
        #expect(config.peers == [.init(id: "town-center-5b", address: "192.0.2.10", role: .lead, audioPort: 6000, videoPort: 5006)])
        #expect(config.media.frameMs == 10 && config.media.bitrate == 48000 && config.media.jitterMaxMs == 160)
        #expect(config.media.security == .srtp && config.media.srtpKey != nil)
        #expect(config.control?.keepaliveS == 30)
        #expect(config.logLevel == .debug)
        #expect(config.sim == nil)
    }

    /// Each kind of mistake, with the line and key the message must name.
    static let mistakes: [(name: String, find: String, replace: String, line: Int, key: String, fragment: String)] = [
        ("unknown key", "classroom = \"Class 3A\"", "classroom = \"Class 3A\"\nclasroom = \"x\"", 8, "box.clasroom", "did you mean 'classroom'"),
        ("unknown table", "[logging]", "[loging]", 29, "loging", "unknown key"),
        ("wrong type", "bitrate = 48000", "bitrate = \"high\"", 19, "media.bitrate", "must be an integer, but is the string \"high\""),
        ("missing required field", "school = \"Hillside Primary School\"\n", "", 4, "box.school", "is required and missing"),
        ("out of range", "bitrate = 48000", "bitrate = 900000", 19, "media.bitrate", "out of range; use 6000...510000"),
        ("not one of", "role = \"remote\"", "role = \"rural\"", 8, "box.role", "\"rural\" is not one of \"lead\", \"remote\""),
        ("bad box id", "id = \"hillside-3a\"", "id = \"Hillside 3A\"", 5, "box.id", "lowercase letters"),
        ("peer mistake names its index", "audio_port = 6000", "audio_port = 80", 15, "peers[0].audio_port", "out of range"),
        ("peer role", "role = \"lead\"", "role = \"remote\"", 14, "peers[0].role", "must be lead boxes"),
        ("bad address", "address = \"192.0.2.10\"", "address = \"not a host\"", 13, "peers[0].address", "not a host name"),
        ("srtp key length", "srtp_key = \"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd\"", "srtp_key = \"AAEC\"", 22, "media.srtp_key", "30 bytes"),
        ("jitter order", "jitter_min_ms = 20", "jitter_min_ms = 300", 20, "media.jitter_min_ms", "above jitter_max_ms"),
        ("broker URL", "broker = \"mqtts://hub.example.org:8883\"", "broker = \"hub.example.org\"", 25, "control.broker", "not an MQTT URL"),
        ("unknown time zone", "timezone = \"UTC\"", "timezone = \"Mars/Olympus\"", 9, "box.timezone", "not a known time zone"),
        ("wrong type for a table", "board = \"rpi4\"", "board = \"rpi4\"\nsim = \"yes\"", 3, "sim", "must be a table"),
    ]

    @Test("each kind of mistake names file, line and key", arguments: mistakes.map(\.name))
    func mistake(name: String) throws {
        let m = try #require(Self.mistakes.first { $0.name == name })
        let text = Self.valid.replacingOccurrences(of: m.find, with: m.replace)
        #expect(text != Self.valid, "the test's substitution must apply")
        do {
            _ = try BoxConfiguration.parse(text, file: "/etc/classbox/classbox.toml")
            Issue.record("\(name): expected a validation error")
        } catch {
            let problem = try #require(error.problems.first { $0.key?.description == m.key }, "\(error)")
            #expect(problem.file == "/etc/classbox/classbox.toml")
            #expect(problem.line == m.line, "\(problem)")
            #expect(problem.message.contains(m.fragment), "\(problem)")
            #expect(problem.description.hasPrefix("/etc/classbox/classbox.toml:\(m.line): error: key '\(m.key)': "))
        }
    }

    @Test("a syntax error gives the parser's line")
    func syntaxError() {
        let text = Self.valid.replacingOccurrences(of: "bitrate = 48000", with: "bitrate = = 48000")
        #expect {
            _ = try BoxConfiguration.parse(text, file: "c.toml")
        } throws: { error in
            let problem = (error as? ConfigError)?.problems.first
            return problem?.line == 19 && problem?.message.contains("not valid TOML") == true
        }
    }

    @Test("all mistakes of a file are reported at once, in file order")
    func manyMistakes() throws {
        let text = Self.valid
            .replacingOccurrences(of: "role = \"remote\"", with: "role = \"rural\"")
            .replacingOccurrences(of: "bitrate = 48000", with: "bitrate = 1")
            .replacingOccurrences(of: "[logging]", with: "[loging]")
        do {
            _ = try BoxConfiguration.parse(text, file: "c.toml")
            Issue.record("expected errors")
        } catch {
            #expect(error.problems.map(\.line) == [8, 19, 29])
        }
    }

    @Test("a remote box has one lead peer; a lead box at most two remote rooms")
    func peerCounts() throws {
        let secondLead = Self.valid.replacingOccurrences(of: "[media]", with: """
            [[peers]]
            id = "town-center-6a"
            address = "192.0.2.11"
            role = "lead"

            [media]
            """)
        #expect(throws: ConfigError.self) { try BoxConfiguration.parse(secondLead, file: "c.toml") }
    }

    @Test("a lead box takes one or two remote rooms; a third is refused with file, line and key")
    func leadRoomCount() throws {
        func lead(rooms: Int) -> String {
            var text = """
                board = "sim"
                [box]
                id = "town-centre-5b"
                school = "Town Centre School"
                classroom = "Class 5B"
                role = "lead"

                """
            for i in 0..<rooms {
                text += """
                    [[peers]]
                    id = "village-\(i + 1)"
                    address = "192.0.2.\(20 + i)"
                    role = "remote"
                    audio_port = \(6000 + 10 * i)

                    """
            }
            return text + "[media]\nsecurity = \"plain\"\n"
        }
        #expect(try BoxConfiguration.parse(lead(rooms: 1), file: "lead.toml").peers.count == 1)
        #expect(try BoxConfiguration.parse(lead(rooms: 1), file: "lead.toml").media.lowDelay == false, "VoIP mode (with FEC) unless asked")
        #expect(try BoxConfiguration.parse(lead(rooms: 1) + "low_delay = true\n", file: "lead.toml").media.lowDelay)
        #expect(try BoxConfiguration.parse(lead(rooms: 2), file: "lead.toml").peers.map(\.id) == ["village-1", "village-2"])
        let three = lead(rooms: 3)
        // The third room's id: the line after its [[peers]] header (1-based).
        let idLine = three.split(separator: "\n", omittingEmptySubsequences: false).indices
            .filter { three.split(separator: "\n", omittingEmptySubsequences: false)[$0] == "[[peers]]" }[2] + 2
        do {
            _ = try BoxConfiguration.parse(three, file: "/etc/classbox/lead.toml")
            Issue.record("a third remote room must be refused")
        } catch {
            let problem = try #require(error.problems.first { $0.key?.description == "peers[2].id" }, "\(error)")
            #expect(problem.description.hasPrefix("/etc/classbox/lead.toml:\(idLine): error: key 'peers[2].id': "), "\(problem)")
            #expect(problem.message.contains("at most 2 remote rooms"), "\(problem)")
        }
    }

    @Test("direct-mode SRTP without a key is refused; plain RTP must be explicit")
    func srtpNeedsKey() throws {
        let noKey = Self.valid.replacingOccurrences(of: "srtp_key = \"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd\"", with: "")
            .replacingOccurrences(of: "[control]\nbroker = \"mqtts://hub.example.org:8883\"\ncert_file = \"/etc/classbox/box.crt\"\nkey_file = \"/etc/classbox/box.key\"\n", with: "")
        #expect(throws: ConfigError.self) { try BoxConfiguration.parse(noKey, file: "c.toml") }
        let plain = noKey.replacingOccurrences(of: "frame_ms = 10", with: "frame_ms = 10\nsecurity = \"plain\"")
        let config = try BoxConfiguration.parse(plain, file: "c.toml")
        #expect(config.media.security == .plain)
    }

    @Test("sim paths are relative to the configuration file")
    func simPaths() throws {
        let text = """
            [box]
            id = "demo"
            school = "S"
            classroom = "C"
            role = "remote"
            [sim]
            lesson = "teacher.wav"
            pupil = "/abs/pupil.wav"
            output_dir = "out"
            """
        let config = try BoxConfiguration.parse(text, file: "/tmp/demo/classbox.toml")
        #expect(config.sim == .init(lesson: "/tmp/demo/teacher.wav", pupil: "/abs/pupil.wav", outputDir: "/tmp/demo/out"))
    }

    @Test("a missing file and a directory say what to do")
    func unreadableFiles() throws {
        #expect {
            _ = try BoxConfiguration.load(path: "/nonexistent/classbox.toml")
        } throws: { ($0 as? ConfigError)?.description.contains("does not exist") == true }
        #expect {
            _ = try BoxConfiguration.load(path: "/tmp")
        } throws: { ($0 as? ConfigError)?.description.contains("is a directory") == true }
    }
}

@Suite("TOML source map")
struct SourceMapTests {
    @Test("keys after multi-line strings, arrays and inline tables keep their lines")
    func multiLineValues() {
        let text = """
            a = \"\"\"
            b = 1
            \"\"\"
            c = [
              1, # x = 2
              2,
            ]
            d = { e = 1, f = [1,
              2] }
            "quoted key".g = 3
            [t.u]
            h = 'it''s'
            [[arr]]
            k = 1
            [[arr]]
            k = 2
            [arr.sub]
            m = 1
            """
        let map = TOMLSourceMap(text: text)
        func line(_ components: [KeyPath.Component]) -> Int? { map.line(of: KeyPath(components)) }
        #expect(line([.key("a")]) == 1)
        #expect(line([.key("b")]) == nil)
        #expect(line([.key("c")]) == 4)
        #expect(line([.key("x")]) == nil)
        #expect(line([.key("d")]) == 8)
        #expect(line([.key("quoted key"), .key("g")]) == 10)
        #expect(line([.key("t"), .key("u"), .key("h")]) == 12)
        #expect(line([.key("arr"), .index(0), .key("k")]) == 14)
        #expect(line([.key("arr"), .index(1), .key("k")]) == 16)
        #expect(line([.key("arr"), .index(1), .key("sub"), .key("m")]) == 18)
        #expect(line([.key("arr"), .index(1), .key("missing")]) == 15)
    }

    @Test("key paths print as a person writes them")
    func keyPathDescription() {
        #expect(KeyPath([.key("peers"), .index(2), .key("address")]).description == "peers[2].address")
        #expect(KeyPath([.key("a b"), .key("c")]).description == "\"a b\".c")
    }
}

@Suite("Box configuration: camera presets")
struct CameraPresetConfigurationTests {
    static let base = """
        [box]
        id = "hillside-3a"
        school = "Hillside Primary School"
        classroom = "Class 3A"
        role = "remote"

        [camera]
        preset = "front"

        [camera.presets.front]
        brightness = 140
        exposure_auto = 1
        exposure = 300
        pan = 0

        [camera.presets.board]
        pan = 36000
        zoom = 200
        horizontal_movement = 3

        """

    @Test("named presets load with their controls, and the chosen one is the default")
    func presets() throws {
        let config = try BoxConfiguration.parse(Self.base, file: "/etc/classbox/classbox.toml")
        #expect(config.camera.defaultPreset == "front")
        #expect(config.camera.presets["front"] == ["brightness": 140, "exposure_auto": 1, "exposure": 300, "pan": 0])
        #expect(config.camera.presets["board"] == ["pan": 36000, "zoom": 200, "horizontal_movement": 3])
        #expect(config.camera.defaultControls["brightness"] == 140)
    }

    @Test("a configuration without [camera] has no presets")
    func none() throws {
        let text = Self.base.components(separatedBy: "[camera]")[0]
        let config = try BoxConfiguration.parse(text, file: "c.toml")
        #expect(config.camera == .init())
    }

    static let mistakes: [(name: String, find: String, replace: String, line: Int, key: String, fragment: String)] = [
        ("misspelt control", "brightness = 140", "brightnes = 140", 11, "camera.presets.front.brightnes", "did you mean 'brightness'"),
        ("not a control name", "pan = 0", "Pan Absolute = 0", 14, "camera.presets.front", "not valid TOML"),
        ("bad control name", "pan = 0", "\"Pan-Abs\" = 0", 14, "camera.presets.front.Pan-Abs", "is not a control name"),
        ("value type", "zoom = 200", "zoom = \"wide\"", 18, "camera.presets.board.zoom", "must be an integer"),
        ("unknown default", "preset = \"front\"", "preset = \"back\"", 8, "camera.preset", "\"back\" is not a preset here; define [camera.presets.back] or use one of: board, front"),
        ("unknown key in [camera]", "preset = \"front\"", "preset = \"front\"\npresett = 1", 9, "camera.presett", "did you mean 'preset'"),
        ("bad preset name", "[camera.presets.board]", "[camera.presets.Board]", 16, "camera.presets.Board", "not a preset name"),
    ]

    @Test("each kind of preset mistake names file, line and key", arguments: mistakes.map(\.name))
    func mistake(name: String) throws {
        let m = try #require(Self.mistakes.first { $0.name == name })
        let text = Self.base.replacingOccurrences(of: m.find, with: m.replace)
        #expect(text != Self.base)
        do {
            _ = try BoxConfiguration.parse(text, file: "/etc/classbox/classbox.toml")
            Issue.record("\(name): expected a validation error")
        } catch {
            let text = error.description
            #expect(text.contains(m.fragment), "\(name): \(text)")
            if m.fragment != "not valid TOML" {
                let problem = error.problems.first { $0.key?.description == m.key }
                #expect(problem != nil, "\(name): no problem for key \(m.key) in \(text)")
                #expect(problem?.line == m.line, "\(name): line \(String(describing: problem?.line)), expected \(m.line)")
            }
        }
    }
}
