// classbox: the executable: subcommands and their options only. Every decision is made in the modules
// below (Box, Diagnostics, Provisioning, BoxConfig); this file parses arguments and reports results.
import ArgumentParser
import Box
import BoxConfig
import Diagnostics
import Foundation
import Logging
import Media
import Provisioning

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
        if LiveLesson.wanted(by: setup.config) || setup.board.audio.backend != .sim {
            // A direct-mode lesson with the configured peers (on the sim board: two simulated rooms).
            LiveLesson.installStopSignals()
            let lesson = LiveLesson(board: setup.board, config: setup.config, echoCancellation: !noAEC)
            // Under systemd (Type=notify): READY=1 once the audio path and the network run, WATCHDOG=1 while
            // they stay healthy, so a stalled audio thread ends in a restart rather than a silent classroom.
            let notifier = SystemdNotifier()
            if notifier.isActive {
                let role = setup.config.identity.role.rawValue
                lesson.serviceHook = { event in
                    switch event {
                    case .ready: try? notifier.ready(status: "in class (\(role))")
                    case .alive: try? notifier.watchdog()
                    case .waiting(let reason):
                        try? notifier.ready(status: reason)
                        try? notifier.watchdog()
                    }
                }
            }
            do {
                if let report = try lesson.run() {
                    print("Live lesson (\(report.role) \(report.boxId)): \(String(format: "%.1f", report.seconds)) s; wrote:")
                    for file in report.files { print("  \(file)") }
                }
            } catch {
                printError("classbox run: \(error.description)")
                throw ExitCode(2)
            }
            return
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
    static let configuration = CommandConfiguration(
        abstract: "Test the box's speaker, microphone, camera, button and network.",
        discussion: """
            Checks (ids for --only/--skip): \(Diagnostics.Diagnose.checkIDs.joined(separator: ", ")). Prints a table with a verdict \
            (or JSON with --json) and saves the JSON report under the report directory. Exit codes: 0 all passed, 1 warnings, 2 failures.
            """)
    @OptionGroup var options: GlobalOptions
    @Flag(help: "Print the report as JSON.") var json = false
    @Option(parsing: .singleValue, help: ArgumentHelp("Run only these checks (comma-separated ids).", valueName: "ids")) var only: [String] = []
    @Option(parsing: .singleValue, help: ArgumentHelp("Do not run these checks (comma-separated ids).", valueName: "ids")) var skip: [String] = []
    @Flag(help: "A person is at the box: ask for a button press and cycle the LED.") var interactive = false
    @Flag(name: .customLong("while-running"), help: "The classbox service is running: skip the tests that need its devices.")
    var whileRunning = false
    @Option(name: .customLong("report-dir"), help: ArgumentHelp("Where to save the JSON report.", valueName: "path"))
    var reportDirectory: String = DiagnoseOptions.defaultReportDirectory
    @Flag(name: .customLong("no-save"), help: "Do not save the report.") var noSave = false
    @Option(help: ArgumentHelp("Show a saved report (JSON) as the table, or as JSON with --json, instead of testing.", valueName: "path"))
    var show: String?

    func run() throws {
        if let show {
            let report: DiagnoseReport
            do { report = try JSONDecoder().decode(DiagnoseReport.self, from: Data(contentsOf: URL(fileURLWithPath: show))) } catch {
                printError("classbox diagnose: cannot read the report \(show): \(error.localizedDescription)")
                throw ExitCode(2)
            }
            if json { print(String(decoding: try report.json(), as: UTF8.self)) } else { print(Diagnostics.Diagnose.render(report, colour: false)) }
            if report.exitCode != 0 { throw ExitCode(report.exitCode) }
            return
        }
        let selection: CheckSelection
        do { selection = try CheckSelection(only: only, skip: skip, known: Diagnostics.Diagnose.checkIDs) } catch {
            printError("classbox diagnose: \(error.description)")
            throw ExitCode(2)
        }
        let setup: (board: BoardProfile, config: BoxConfiguration, note: String?)
        do { setup = try DiagnoseSetup.load(board: options.board, config: options.config) } catch {
            printError(error.description)
            throw ExitCode(ConfigError.exitCode)
        }
        JournalLogHandler.bootstrap(level: Logger.Level(rawValue: options.logLevel?.rawValue ?? setup.config.logLevel?.rawValue ?? "warning") ?? .warning)
        if let note = setup.note { printError("classbox diagnose: \(note)") }
        let terminal = isatty(STDERR_FILENO) == 1
        let context = DiagnoseContext(board: setup.board, config: setup.config, interactive: interactive, whileRunning: whileRunning,
                                      dataDirectory: reportDirectory, prompt: { printError(">>> " + $0) })
        let started = Date()
        let results = DiagnoseRunner.run(selection.apply(to: Diagnostics.Diagnose.checks), context: context) { index, count, check in
            if terminal { FileHandle.standardError.write(Data("\r\u{1B}[Kdiagnose [\(index + 1)/\(count)] \(check.title)...".utf8)) }
        }
        if terminal { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        var report = DiagnoseReport(classbox: BuildInfo.version, board: setup.board.name, box: setup.config.identity.id, started: started,
                                    seconds: (Date().timeIntervalSince(started) * 10).rounded() / 10, checks: results)
        if !noSave {
            let saved = Diagnostics.Diagnose.save(report, directory: reportDirectory)
            if let warning = saved.warning { printError("classbox diagnose: warning: \(warning)") }
            report.savedTo = saved.path
        }
        if json {
            print(String(decoding: try report.json(), as: UTF8.self))
        } else {
            let colour = isatty(STDOUT_FILENO) == 1 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
                && ProcessInfo.processInfo.environment["TERM"] != "dumb"
            print(Diagnostics.Diagnose.render(report, colour: colour))
        }
        if report.exitCode != 0 { throw ExitCode(report.exitCode) }
    }
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
    static let configuration = CommandConfiguration(
        abstract: "Configure a fleet of boxes over SSH from an inventory file.",
        discussion: """
            Per box, through one multiplexed OpenSSH connection: renders its classbox.toml from the inventory, \
            compares it with the box's, uploads what differs beside its target, validates it on the box \
            (classbox config check), keeps the previous file as .prev, renames it into place, restarts the \
            service and rolls back if it does not come back. Exit codes: 0 every box ok or changed, \
            2 inventory or usage error (nothing sent), 3 a box failed or was unreachable.
            """)
    @Argument(help: ArgumentHelp("Inventory file (TOML).", valueName: "inventory")) var inventory: String
    @Flag(help: "Show what would change; change nothing.") var check = false
    @Flag(help: "Show a unified diff of each box's configuration change.") var diff = false
    @Flag(help: "Print the recap as JSON.") var json = false
    @Option(help: "Boxes worked on at the same time.") var forks = 5
    @Option(help: "Extra connection attempts on network failures (exponential backoff).") var retries = 2
    @Option(name: .customLong("timeout"), help: ArgumentHelp("Seconds allowed for each remote step.", valueName: "seconds"))
    var stepTimeout = 60.0
    @Option(help: ArgumentHelp("A classbox binary or update bundle to install on every box.", valueName: "file")) var install: String?
    @Option(help: ArgumentHelp("The SHA-256 the --install file must have (default: FILE.sha256 next to it).", valueName: "hex"))
    var sha256: String?
    @Flag(help: "Run `classbox diagnose --json` on each box and collect the reports.") var diagnose = false
    @Option(help: ArgumentHelp("Write the fleet report (fleet.csv, fleet.json, fleet.html) into this directory (implies --diagnose).",
                               valueName: "dir"))
    var report: String?
    @Option(help: ArgumentHelp("Only these boxes (comma-separated ids).", valueName: "ids")) var limit: String?
    @Flag(name: .customLong("accept-new-host-keys"),
          help: "Record the host keys of boxes not yet in known_hosts (a changed key is still refused).")
    var acceptNewHostKeys = false

    func run() throws {
        let inventory: Inventory
        do { inventory = try Inventory.load(path: self.inventory) } catch {
            printError(error.description)
            throw ExitCode(ProvisionExit.usage)
        }
        var options = ProvisionOptions()
        options.check = check
        options.diff = diff
        options.forks = max(1, forks)
        options.retries = max(0, retries)
        options.stepTimeoutS = max(1, stepTimeout)
        options.diagnose = diagnose || report != nil
        options.acceptNewHostKeys = acceptNewHostKeys
        if let limit {
            let ids = Set(limit.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) })
            let unknown = ids.subtracting(inventory.boxes.map(\.id))
            guard unknown.isEmpty else {
                printError("classbox provision: --limit names boxes not in \(self.inventory): \(unknown.sorted().joined(separator: ", "))")
                throw ExitCode(ProvisionExit.usage)
            }
            options.limit = ids
        }
        if let install {
            // Verified before upload here, and after upload on each box (sha256sum).
            var expected = sha256?.lowercased()
            if expected == nil, let sidecar = try? String(contentsOfFile: install + ".sha256", encoding: .utf8) {
                expected = sidecar.split(separator: " ").first.map { String($0).lowercased() }
            }
            guard let expected, expected.count == 64, expected.allSatisfy(\.isHexDigit) else {
                printError("classbox provision: --install needs the file's SHA-256: pass --sha256 HEX or put `sha256sum` output in \(install).sha256")
                throw ExitCode(ProvisionExit.usage)
            }
            guard let actual = SHA256.hex(file: install) else {
                printError("classbox provision: cannot read \(install)")
                throw ExitCode(ProvisionExit.usage)
            }
            guard actual == expected else {
                printError("classbox provision: \(install) has SHA-256 \(actual), not the expected \(expected); refusing to install it")
                throw ExitCode(ProvisionExit.usage)
            }
            options.install = InstallFile(path: install, sha256: expected)
        }
        let terminal = isatty(2) == 1
        let provisioner = FleetProvisioner(options: options) { line in
            // On a terminal every step is shown; in a log only each box's result.
            if terminal || line.hasPrefix("[") { printError(line) }
        }
        let recap = provisioner.run(inventory)
        if json {
            print(recap.json())
        } else {
            for box in recap.boxes { if let diff = box.diff, !diff.isEmpty, self.diff { print(diff, terminator: "") } }
            print(recap.table, terminator: "")
        }
        if let report {
            do {
                try FleetReport(recap: recap).write(to: report)
                printError("fleet report: \(report)/fleet.html, fleet.csv, fleet.json")
            } catch {
                printError("classbox provision: cannot write the fleet report to \(report): \(error)")
                throw ExitCode(ProvisionExit.boxesFailed)
            }
        }
        if recap.exitCode != 0 { throw ExitCode(recap.exitCode) }
    }
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
