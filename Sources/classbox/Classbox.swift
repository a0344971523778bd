// classbox: the executable: subcommands and their options only. Every decision is made in the modules
// below (Box, Diagnostics, Provisioning, BoxConfig); this file parses arguments and reports results.
import ArgumentParser
import Box
import BoxConfig
import Foundation
import Logging
import Media

@main
struct Classbox: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "classbox",
        abstract: "The classroom box for synchronous blended classes.",
        discussion: """
            Runs a classroom's lesson (lead or remote role), tests the box's hardware and network, \
            evaluates the echo canceller, and provisions fleets of boxes. Exit codes: 0 success, \
            1 warnings (diagnose), 2 configuration or usage errors and unavailable features.
            """,
        version: BuildInfo.version,
        subcommands: [Run.self, Diagnose.self, AEC.self, Devices.self, Provision.self, ConfigCommand.self, Version.self])
}

/// Options every subcommand that runs on a box takes.
struct GlobalOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Board profile: a name (rpi4, rpi5, generic-arm64, generic-amd64, qemu-amd64, sim) or a .toml path.",
                               valueName: "name|path"))
    var board: String?

    @Option(help: ArgumentHelp("Configuration file.", valueName: "path"))
    var config: String?

    @Option(name: .customLong("log-level"), help: "Lowest log level written to stderr.")
    var logLevel: LogLevel?

    /// Loads board and configuration, exiting with code 2 and the located problems when they are wrong,
    /// and installs the journald-friendly logger at the chosen level.
    func setup() throws -> BoxSetup {
        let setup: BoxSetup
        do {
            setup = try BoxSetup.load(board: board, config: config)
        } catch {
            printError(error.description)
            throw ExitCode(ConfigError.exitCode)
        }
        let chosen = logLevel?.rawValue ?? setup.config.logLevel?.rawValue ?? "info"
        JournalLogHandler.bootstrap(level: Logger.Level(rawValue: chosen) ?? .info)
        return setup
    }
}

extension GlobalOptions {
    /// The not-provisioned wait when a board is named but its configuration is missing (see Box).
    func provisioningWait() throws -> ProvisioningWait? {
        let wait: ProvisioningWait?
        do { wait = try ProvisioningWait.ifUnprovisioned(board: board, config: config) } catch {
            printError(error.description)
            throw ExitCode(ConfigError.exitCode)
        }
        if wait != nil { JournalLogHandler.bootstrap(level: Logger.Level(rawValue: logLevel?.rawValue ?? "info") ?? .info) }
        return wait
    }
}

/// `--log-level` values (swift-log's levels).
enum LogLevel: String, CaseIterable, ExpressibleByArgument {
    case trace, debug, info, notice, warning, error, critical
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// A subcommand whose feature is not in this firmware yet: it says so and exits with 2.
func notYetAvailable(_ command: String, _ what: String) -> ExitCode {
    printError("classbox \(command): \(what) is not yet available in Classbox \(BuildInfo.version).")
    return ExitCode(2)
}

func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the classroom: join the lesson in the configured role (on the sim board: a simulated lesson).")

    @OptionGroup var options: GlobalOptions

    @Flag(name: .customLong("no-aec"), help: "Send the microphone without echo cancellation (to hear the difference).")
    var noAEC = false

    func run() throws {
        // A flashed box without its configuration stays ready for systemd and waits to be provisioned.
        if let wait = try options.provisioningWait() {
            _ = wait.run(logger: Logger(label: "classbox.run"))
            return
        }
        let setup = try options.setup()
        guard setup.board.audio.backend == .sim else {
            throw notYetAvailable("run", "a live lesson on real hardware (board \"\(setup.board.name)\")")
        }
        let lesson = SimLesson(board: setup.board, config: setup.config)
        let report: SimLessonReport
        do {
            if noAEC {
                var processor = PassThroughProcessor()
                report = try lesson.run(processor: &processor)
            } else {
                var processor: EchoCancellerProcessor
                do { processor = try EchoCancellerProcessor(sampleRate: setup.board.audio.rate) } catch {
                    printError("classbox run: \(error)")
                    throw ExitCode(2)
                }
                report = try lesson.run(processor: &processor)
            }
        } catch let error as SimLessonError {
            printError("classbox run: \(error.description)")
            throw ExitCode(2)
        }
        print("Simulated lesson: \(String(format: "%.1f", report.audioSeconds)) s at \(report.sampleRate) Hz in \(String(format: "%.2f", report.processingSeconds)) s, processor \(report.processor)")
        print("Wrote:")
        for file in report.files { print("  \(file)") }
        print("Summary: \(report.summaryPath)")
    }
}

struct Diagnose: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Test the box's speaker, microphone, camera, button and network.")
    @OptionGroup var options: GlobalOptions
    @Flag(help: "Print the report as JSON.") var json = false
    func run() throws { throw notYetAvailable("diagnose", "the hardware and network self-test") }
}

struct AEC: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aec", abstract: "Run the echo canceller over WAV files, frame by frame as the box does.")
    @Option(help: ArgumentHelp("Loudspeaker (far-end) WAV file.", valueName: "path")) var far: String
    @Option(help: ArgumentHelp("Microphone WAV file.", valueName: "path")) var mic: String
    @Option(help: ArgumentHelp("Output WAV file.", valueName: "path")) var out: String
    @Flag(help: "Print the canceller's statistics.") var stats = false
    @Flag(name: .customLong("linear-only"), help: "Diagnostics: switch the residual-echo suppressor off (linear filter output).")
    var linearOnly = false
    func run() throws {
        let report: AECFileReport
        do {
            report = try AECFileRunner.run(far: far, mic: mic, out: out, linearOnly: linearOnly)
        } catch {
            printError("classbox aec: \(error.description)")
            throw ExitCode(AECFileError.exitCode)
        }
        if stats { for line in report.lines { print(line) } }
    }
}

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List sound cards (with rates, formats, channels), cameras and GPIO chips.")
    @Flag(help: "Print the list as JSON.") var json = false
    func run() throws {
        let inventory = DeviceInventory.current()
        if json { try printJSON(inventory) } else { print(inventory.text) }
    }
}

struct Provision: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Configure a fleet of boxes over SSH from an inventory file.")
    @Argument(help: ArgumentHelp("Inventory file.", valueName: "inventory")) var inventory: String?
    @Flag(help: "Print the recap as JSON.") var json = false
    func run() throws { throw notYetAvailable("provision", "fleet provisioning") }
}

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Check configuration files and list board profiles.",
        subcommands: [Check.self, Boards.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a configuration and its board profile; exit 2 with file, line and key of each mistake.")
        @OptionGroup var options: GlobalOptions
        @Flag(help: "Print the result as JSON.") var json = false

        struct Result: Encodable {
            var ok: Bool
            var config: String?
            var board: String?
            var boxId: String?
            var role: String?
            var problems: [Problem]
            struct Problem: Encodable { var file: String; var line: Int?; var key: String?; var message: String }
        }

        func run() throws {
            let setup: BoxSetup
            do {
                setup = try BoxSetup.load(board: options.board, config: options.config)
            } catch {
                if json {
                    try printJSON(Result(ok: false, config: options.config ?? BoxConfiguration.defaultPath, board: options.board, boxId: nil, role: nil,
                                         problems: error.problems.map { .init(file: $0.file, line: $0.line, key: $0.key?.description, message: $0.message) }))
                } else {
                    printError(error.description)
                }
                throw ExitCode(ConfigError.exitCode)
            }
            let identity = setup.config.identity
            if json {
                try printJSON(Result(ok: true, config: setup.configPath, board: setup.board.name, boxId: identity.id,
                                     role: identity.role.rawValue, problems: []))
            } else {
                print("ok: \(setup.configPath ?? "built-in simulator defaults"): box \(identity.id) (\(identity.role.rawValue)), \(identity.school), \(identity.classroom); board \(setup.board.name)")
            }
        }
    }

    struct Boards: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the board profiles this box can find.")
        @Flag(help: "Print the list as JSON.") var json = false

        struct Entry: Encodable { var name: String; var summary: String?; var architecture: String?; var problem: String? }

        func run() throws {
            let catalog = BoardCatalog.standard()
            var entries: [Entry] = []
            for name in catalog.availableNames() {
                do {
                    let board = try catalog.load(name)
                    entries.append(Entry(name: name, summary: board.summary, architecture: board.architecture?.rawValue))
                } catch {
                    entries.append(Entry(name: name, problem: error.description))
                }
            }
            if json { try printJSON(entries); return }
            for e in entries {
                print("\(e.name.padding(toLength: 14, withPad: " ", startingAt: 0)) \((e.architecture ?? "host").padding(toLength: 6, withPad: " ", startingAt: 0)) \(e.summary ?? "INVALID: \(e.problem ?? "")")")
            }
            if entries.contains(where: { $0.problem != nil }) { throw ExitCode(ConfigError.exitCode) }
        }
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the firmware's version and those of the libraries it runs on.")
    @Flag(help: "Print as JSON.") var json = false
    func run() throws {
        let info = BuildInfo.current()
        if json { try printJSON(info); return }
        print("classbox \(info.classbox) (Swift \(info.swiftCompiler))")
        print("libasound \(info.devices.alsa) (built with \(info.devices.alsaHeaders) headers)")
        print("libgpiod \(info.devices.gpiod) (v\(info.devices.gpiodAPI) API)")
        print("\(info.opus)")
        print("kernel \(info.devices.kernel) \(info.devices.machine)")
    }
}
