import Foundation
import Testing
@testable import BoxConfig

let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

let boardFiles: [String] = (try? FileManager.default.contentsOfDirectory(atPath: packageRoot + "/Board"))?
    .filter { $0.hasSuffix(".toml") }.sorted() ?? []

@Suite("Board profiles")
struct BoardProfileTests {
    @Test("the repository has the six boards the product supports")
    func allBoardsPresent() {
        #expect(boardFiles == ["generic-amd64.toml", "generic-arm64.toml", "qemu-amd64.toml", "rpi4.toml", "rpi5.toml", "sim.toml"])
    }

    @Test("every Board/*.toml loads, validates and is named after its file", arguments: boardFiles)
    func loads(file: String) throws {
        let catalog = BoardCatalog(searchPaths: [packageRoot + "/Board"])
        let name = String(file.dropLast(5))
        let board = try catalog.load(name)
        #expect(board.name == name)
        #expect(!board.summary.isEmpty)
        if board.audio.backend == .alsa {
            #expect(!board.audio.captureCards.isEmpty && !board.audio.playbackCards.isEmpty)
            #expect(board.image != nil && board.architecture != nil)
        }
        if board.gpio.backend == .gpiod {
            #expect(board.gpio.chipLabel?.hasPrefix("gpiochip") == false)
        }
    }

    @Test("boards match by label and names, and say what the Pi 5 lacks")
    func boardFacts() throws {
        let catalog = BoardCatalog(searchPaths: [packageRoot + "/Board"])
        let pi4 = try catalog.load("rpi4"), pi5 = try catalog.load("rpi5"), qemu = try catalog.load("qemu-amd64")
        #expect(pi4.gpio.chipLabel == "pinctrl-bcm2711")
        #expect(pi5.gpio.chipLabel == "pinctrl-rp1")
        #expect(pi4.camera.hardwareEncoder == "bcm2835-codec")
        #expect(pi5.camera.hardwareEncoder == nil)
        #expect(pi5.image?.aptSources.count == 1)
        #expect(qemu.image?.modules == ["snd-aloop", "vivid", "gpio-sim"])
        #expect(qemu.image?.buildModules == ["gpio-sim"] && qemu.image?.bootloader == .systemdBoot)
        #expect(qemu.image?.initramfsModules.contains("virtio_blk") == true && qemu.image?.rootMiB == 1024)
        #expect(pi4.image?.rootMiB == 1536 && pi4.image?.initramfsModules.isEmpty == false)
        #expect(pi4.camera.encoderFormat == "H264" && pi4.camera.encoderBitrate == 1_500_000 && pi4.camera.encoderKeyFrameInterval == 60)
        #expect(qemu.camera.hardwareEncoder == "vicodec" && qemu.camera.encoderFormat == "FWHT" && qemu.camera.encoderKeyFrameInterval == 10)
        #expect(pi5.camera.encoderBitrate == nil)
        #expect(qemu.audio.captureDevice == 1 && qemu.audio.playbackDevice == 0)
        #expect(pi4.architecture == .arm64 && qemu.architecture == .amd64)
    }

    @Test("the sim board built into the binary is Board/sim.toml byte for byte")
    func embeddedSimMatchesFile() throws {
        let file = try String(contentsOfFile: packageRoot + "/Board/sim.toml", encoding: .utf8)
        #expect(BoardCatalog.embeddedSimProfile == file)
    }

    @Test("the sim board loads with no profile directory at all")
    func embeddedSimLoads() throws {
        let board = try BoardCatalog(searchPaths: ["/nonexistent"]).load("sim")
        #expect(board.audio.backend == .sim)
        #expect(board.simRoom?.deviceDelayMs == 40)
        #expect(board.architecture == nil && board.image == nil)
    }

    @Test("an unknown board name lists the known ones")
    func unknownBoard() {
        let catalog = BoardCatalog(searchPaths: [packageRoot + "/Board"])
        #expect {
            _ = try catalog.load("rpi3")
        } throws: { error in
            let text = (error as? ConfigError)?.description ?? ""
            return text.contains("no board profile named \"rpi3\"") && text.contains("rpi4") && text.contains("qemu-amd64")
        }
    }

    static let minimalAlsaBoard = """
        name = "test"
        summary = "test board"
        architecture = "arm64"
        [image]
        kernel_packages = ["linux-image-arm64"]
        bootloader = "systemd-boot"
        [audio]
        backend = "alsa"
        capture_cards = ["USB"]
        playback_cards = ["USB"]
        [camera]
        backend = "none"
        [gpio]
        backend = "none"

        """

    @Test("profile mistakes are reported by line and key", arguments: [
        ("capture_cards = [\"USB\"]", "capture_cards = [\"1\"]", 9, "audio.capture_cards", "card index"),
        ("backend = \"none\"\n[gpio]", "backend = \"none\"\n[gpio]\nchip_label = \"gpiochip4\"", 14, "gpio.chip_label", "label"),
        ("playback_cards = [\"USB\"]", "playback_cards = [\"USB\"]\nmic_channels = [2]", 11, "audio.mic_channels", "does not exist"),
        ("architecture = \"arm64\"", "architecture = \"riscv\"", 3, "architecture", "\"riscv\" is not one of"),
        ("[gpio]\nbackend = \"none\"", "[gpio]\nbackend = \"gpiod\"", 13, "gpio.chip_label", "required"),
        ("backend = \"alsa\"", "backend = \"alsa\"\nperiod_ms = 40", 9, "audio.period_ms", "out of range"),
        ("[camera]\nbackend = \"none\"", "[camera]\nbackend = \"v4l2\"\nencoder_format = \"VP8\"", 13, "camera.encoder_format", "FWHT, H264, HEVC"),
        ("[camera]\nbackend = \"none\"", "[camera]\nbackend = \"v4l2\"\nencoder_bitrate = 100", 13, "camera.encoder_bitrate", "out of range"),
        ("bootloader = \"systemd-boot\"", "bootloader = \"systemd-boot\"\nmodules = [\"gpio-mockup\"]\nbuild_modules = [\"gpio-mockup\"]", 8, "image.build_modules", "cannot be built out of tree"),
        ("bootloader = \"systemd-boot\"", "bootloader = \"systemd-boot\"\nbuild_modules = [\"gpio-sim\"]", 7, "image.build_modules", "never loaded"),
        ("bootloader = \"systemd-boot\"", "bootloader = \"systemd-boot\"\nroot_mib = 100", 7, "image.root_mib", "out of range"),
    ])
    func profileMistakes(find: String, replace: String, line: Int, key: String, fragment: String) throws {
        let text = Self.minimalAlsaBoard.replacingOccurrences(of: find, with: replace)
        #expect(text != Self.minimalAlsaBoard, "the test's substitution must apply")
        do {
            _ = try BoardProfile.parse(text, file: "test.toml")
            Issue.record("expected a validation error")
        } catch {
            let problem = try #require(error.problems.first { $0.key?.description == key })
            #expect(problem.line == line, "\(problem)")
            #expect(problem.message.contains(fragment), "\(problem)")
            #expect(problem.description.hasPrefix("test.toml:\(line): error: key '\(key)'"))
        }
    }

    @Test("the minimal profile itself is valid")
    func minimalIsValid() throws {
        let board = try BoardProfile.parse(Self.minimalAlsaBoard, file: "test.toml")
        #expect(board.audio.rate == 48000 && board.audio.periodMs == 10 && board.audio.bufferPeriods == 3)
        #expect(board.gpio.debounceMs == 30)
    }
}
