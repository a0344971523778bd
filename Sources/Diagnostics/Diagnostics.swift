// Diagnostics: the hardware and network self-test behind `classbox diagnose`: it plays, records,
// captures and probes, and says in a teacher's words what works and what to do about what does not.
// It must never change the box's configuration or leave a device held after it returns.
public import BoxConfig
public import Foundation

/// How one check ended. Ordered from best to worst for the verdict (`skip` counts as a pass).
public enum CheckStatus: String, Sendable, Codable, CaseIterable {
    /// Works as it should.
    case pass
    /// Works, but something will degrade the lesson.
    case warn
    /// Does not work; the remedy says what to do.
    case fail
    /// Not tested here, with the reason in the finding.
    case skip

    var severity: Int {
        switch self {
        case .skip, .pass: return 0
        case .warn: return 1
        case .fail: return 2
        }
    }
}

/// One measured value of a check, with its unit (`value`) or a text (`text`: versions, names, formats).
public struct Measurement: Sendable, Codable, Equatable {
    /// What was measured, as a short key (`delay`, `erl`, `fps`).
    public var name: String
    /// The number, when the measurement is a number.
    public var value: Double?
    /// The unit of `value` (`ms`, `dB`, `dBFS`, `ppm`, `fps`, `%`, `MB`, `°C`, `s`); empty for counts.
    public var unit: String
    /// The text, when the measurement is not a number.
    public var text: String?

    /// A number with its unit.
    public init(_ name: String, _ value: Double, _ unit: String) {
        self.name = name
        self.value = value.isFinite ? value : nil
        self.unit = unit
        self.text = value.isFinite ? nil : (value.isNaN ? "unknown" : (value > 0 ? "+inf" : "-inf"))
    }

    /// A text value.
    public init(_ name: String, text: String) {
        self.name = name
        self.value = nil
        self.unit = ""
        self.text = text
    }

    /// `delay 43.5 ms`, `kernel 6.1.0-28-amd64`.
    public var display: String {
        if let value {
            let digits = abs(value) >= 100 || value == value.rounded() ? 0 : 1
            let number = String(format: "%.\(digits)f", value)
            return unit.isEmpty ? "\(name) \(number)" : "\(name) \(number)\(unit == "%" || unit == "°C" ? "" : " ")\(unit)"
        }
        return "\(name) \(text ?? "")"
    }
}

/// The result of one check: what it measured, how it ended, what it means and what to do.
public struct CheckResult: Sendable, Codable, Equatable {
    /// The check's id (`audio`, `camera`), as `--only`/`--skip` name it.
    public var id: String
    /// A title for people.
    public var title: String
    /// How it ended.
    public var status: CheckStatus
    /// One line a teacher understands.
    public var finding: String
    /// What to do (on warn and fail).
    public var remedy: String?
    /// What was measured.
    public var measurements: [Measurement]
    /// How long the check took, in seconds.
    public var seconds: Double

    /// A result.
    public init(id: String, title: String, status: CheckStatus, finding: String, remedy: String? = nil,
                measurements: [Measurement] = [], seconds: Double = 0) {
        self.id = id
        self.title = title
        self.status = status
        self.finding = finding
        self.remedy = remedy
        self.measurements = measurements
        self.seconds = seconds
    }

    /// The value of the measurement called `name`, if it is a number.
    public func value(_ name: String) -> Double? { measurements.first { $0.name == name }?.value }
}

/// The whole self-test, as printed and as saved for the provisioning tool.
public struct DiagnoseReport: Sendable, Codable, Equatable {
    /// The JSON schema's version; raised when a field changes meaning or disappears.
    public static let schemaVersion = "classbox-diagnose/1"
    /// `classbox-diagnose/1`.
    public var schema: String
    /// The firmware's version.
    public var classbox: String
    /// The board profile's name.
    public var board: String
    /// The box's id from the configuration.
    public var box: String
    /// When the test started (ISO 8601, UTC).
    public var started: String
    /// How long it took in seconds.
    public var seconds: Double
    /// The worst status of all checks (skip counts as pass).
    public var verdict: CheckStatus
    /// One line for people: the verdict in words.
    public var summary: String
    /// Each check in the order it ran.
    public var checks: [CheckResult]
    /// Where the report was saved, when it was.
    public var savedTo: String?

    /// A report over `checks`; verdict and summary follow from them.
    public init(classbox: String, board: String, box: String, started: Date, seconds: Double, checks: [CheckResult]) {
        schema = DiagnoseReport.schemaVersion
        self.classbox = classbox
        self.board = board
        self.box = box
        self.started = DiagnoseReport.timestamp(started)
        self.seconds = seconds
        self.checks = checks
        verdict = DiagnoseReport.verdict(of: checks)
        summary = DiagnoseReport.summary(of: checks)
    }

    /// The worst status among `checks`.
    public static func verdict(of checks: [CheckResult]) -> CheckStatus {
        let worst = checks.map(\.status.severity).max() ?? 0
        return worst == 2 ? .fail : worst == 1 ? .warn : .pass
    }

    /// Exit code of `classbox diagnose`: 0 all pass (or skipped), 1 warnings, 2 failures.
    public var exitCode: Int32 { Int32(verdict.severity) }

    static func summary(of checks: [CheckResult]) -> String {
        let failed = checks.filter { $0.status == .fail }, warned = checks.filter { $0.status == .warn }
        let names = { (list: [CheckResult]) in list.map { $0.title.lowercased() }.joined(separator: ", ") }
        if !failed.isEmpty {
            return "FAIL: \(failed.count) of \(checks.count) checks failed (\(names(failed)))\(warned.isEmpty ? "" : ", \(warned.count) warned"); the class will not work properly until this is fixed."
        }
        if !warned.isEmpty {
            return "WARN: the box works, but \(warned.count) of \(checks.count) checks need attention (\(names(warned)))."
        }
        let skipped = checks.filter { $0.status == .skip }.count
        return "PASS: all \(checks.count - skipped) checks passed\(skipped > 0 ? " (\(skipped) skipped)" : ""); the box is ready for class."
    }

    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }

    /// The report as JSON (sorted keys, pretty), as `--json` prints it and as it is saved.
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }
}

/// What a check may use: the board and configuration, and how it may talk to a person.
public struct DiagnoseContext: Sendable {
    /// The board profile.
    public var board: BoardProfile
    /// The box's configuration.
    public var config: BoxConfiguration
    /// A person is at the box: prompt them (press the button, watch the LED).
    public var interactive: Bool
    /// The classbox service is running and holds the devices: skip the tests that need them.
    public var whileRunning: Bool
    /// Prints a prompt for the person at the box (stderr).
    public var prompt: @Sendable (String) -> Void
    /// The data partition's directory, whose free space the system check reports.
    public var dataDirectory: String
    /// Seconds the network probe waits for each peer's answers.
    public var networkProbeSeconds: Double = 2
    /// Seconds between the two chirps of the drift measurement on real sound cards.
    public var driftIntervalSeconds: Double = 4

    /// A context for `board` and `config`.
    public init(board: BoardProfile, config: BoxConfiguration, interactive: Bool = false, whileRunning: Bool = false,
                dataDirectory: String = DiagnoseOptions.defaultReportDirectory, prompt: @escaping @Sendable (String) -> Void = { _ in }) {
        self.board = board
        self.config = config
        self.interactive = interactive
        self.whileRunning = whileRunning
        self.dataDirectory = dataDirectory
        self.prompt = prompt
    }
}

/// One check: an id for `--only`/`--skip`, a title, a time limit and the work.
public struct DiagnosticCheck: Sendable {
    /// `audio`, `camera`, ...
    public var id: String
    /// For people.
    public var title: String
    /// Seconds after which the check is reported as failed (it is abandoned, not killed).
    public var timeoutSeconds: Double
    /// The work; returns the result (its id, title and duration are filled in by the runner).
    public var run: @Sendable (DiagnosticCheck, DiagnoseContext) -> CheckResult

    /// A check.
    public init(id: String, title: String, timeoutSeconds: Double, run: @escaping @Sendable (DiagnosticCheck, DiagnoseContext) -> CheckResult) {
        self.id = id
        self.title = title
        self.timeoutSeconds = timeoutSeconds
        self.run = run
    }

    /// A result of this check.
    func result(_ status: CheckStatus, _ finding: String, remedy: String? = nil, _ measurements: [Measurement] = []) -> CheckResult {
        CheckResult(id: id, title: title, status: status, finding: finding, remedy: remedy, measurements: measurements)
    }
}

/// A wrong `--only`/`--skip`: names the unknown id and the ids there are.
public struct CheckSelectionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The unknown ids.
    public var unknown: [String]
    /// The ids there are.
    public var known: [String]
    public var description: String {
        "unknown check\(unknown.count == 1 ? "" : "s") \(unknown.map { "'\($0)'" }.joined(separator: ", ")); the checks are \(known.joined(separator: ", "))"
    }
}

/// Which checks run, from `--only` and `--skip` (comma-separated ids; both may be given several times).
public struct CheckSelection: Sendable, Equatable {
    /// Ids to run (empty: all).
    public var only: [String]
    /// Ids not to run.
    public var skip: [String]

    /// Parses the options' values (`["camera,audio"]`, `["network"]`).
    public init(only: [String] = [], skip: [String] = [], known: [String]) throws(CheckSelectionError) {
        func split(_ values: [String]) -> [String] {
            values.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty }
        }
        self.only = split(only)
        self.skip = split(skip)
        let unknown = (self.only + self.skip).filter { !known.contains($0) }
        if !unknown.isEmpty { throw CheckSelectionError(unknown: unknown, known: known) }
    }

    /// The checks selected, in their standard order.
    public func apply(to checks: [DiagnosticCheck]) -> [DiagnosticCheck] {
        checks.filter { (only.isEmpty || only.contains($0.id)) && !skip.contains($0.id) }
    }
}

/// Options of a run that are not about one check.
public enum DiagnoseOptions {
    /// Where reports are saved unless told otherwise (on the data partition).
    public static let defaultReportDirectory = "/var/lib/classbox/diagnose"
}

/// Runs checks one after another, each on its own thread under its time limit.
public enum DiagnoseRunner {
    /// Runs `checks` in order; `progress` is told before each (index, count, check).
    public static func run(_ checks: [DiagnosticCheck], context: DiagnoseContext,
                           progress: (Int, Int, DiagnosticCheck) -> Void = { _, _, _ in }) -> [CheckResult] {
        var results: [CheckResult] = []
        for (index, check) in checks.enumerated() {
            progress(index, checks.count, check)
            results.append(runOne(check, context: context))
        }
        return results
    }

    /// Runs one check under its time limit.
    public static func runOne(_ check: DiagnosticCheck, context: DiagnoseContext) -> CheckResult {
        let box = ResultBox()
        let done = DispatchSemaphore(value: 0)
        let start = Date()
        let thread = Thread {
            box.set(check.run(check, context))
            done.signal()
        }
        thread.name = "diagnose-\(check.id)"
        thread.stackSize = 8 << 20
        thread.start()
        var result: CheckResult
        if done.wait(timeout: .now() + check.timeoutSeconds) == .success, let finished = box.get() {
            result = finished
        } else {
            result = check.result(.fail, "The test did not finish within \(Int(check.timeoutSeconds)) seconds.",
                                  remedy: "Something is stuck (a device that does not answer). Restart the box and run `classbox diagnose --only \(check.id)` again; if it still hangs, report it with this report.")
        }
        result.id = check.id
        result.title = check.title
        result.seconds = (Date().timeIntervalSince(start) * 10).rounded() / 10
        return result
    }
}

private final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value: CheckResult?
    func set(_ v: CheckResult) { lock.lock(); value = v; lock.unlock() }
    func get() -> CheckResult? { lock.lock(); defer { lock.unlock() }; return value }
}
