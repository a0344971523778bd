import Box
public import BoxConfig
import Foundation

/// The standard checks in the order they run, and how a report is shown and kept.
public enum Diagnose {
    /// Every check, in order: presence first, then sound, camera, button, network, system.
    public static let checks: [DiagnosticCheck] = [
        HardwareChecks.devicesPresent, AudioChecks.speakerAndMicrophone, AudioChecks.clockDrift, AudioChecks.echoCanceller,
        HardwareChecks.camera, HardwareChecks.buttonAndLED, SystemChecks.network, SystemChecks.system,
    ]

    /// The ids `--only` and `--skip` take.
    public static var checkIDs: [String] { checks.map(\.id) }

    /// The report as a table for people: the verdict first, then one block per check (status, title,
    /// finding; what was measured; what to do). `colour` adds ANSI colours (only on a terminal).
    public static func render(_ report: DiagnoseReport, colour: Bool) -> String {
        func paint(_ text: String, _ status: CheckStatus) -> String {
            guard colour else { return text }
            let code: String
            switch status {
            case .pass: code = "32"
            case .warn: code = "33"
            case .fail: code = "31;1"
            case .skip: code = "2"
            }
            return "\u{1B}[\(code)m\(text)\u{1B}[0m"
        }
        var lines: [String] = []
        lines.append(paint(report.summary, report.verdict))
        lines.append("Classbox \(report.classbox), board \(report.board), box \(report.box), \(report.started), \(String(format: "%.1f", report.seconds)) s")
        lines.append("")
        let width = max(12, report.checks.map(\.title.count).max() ?? 12)
        for check in report.checks {
            let status = paint(check.status.rawValue.uppercased().padding(toLength: 4, withPad: " ", startingAt: 0), check.status)
            lines.append("\(status)  \(check.title.padding(toLength: width, withPad: " ", startingAt: 0))  \(check.finding)")
            let indent = String(repeating: " ", count: width + 8)
            if !check.measurements.isEmpty {
                lines.append(contentsOf: wrap(check.measurements.map(\.display), indent: indent, width: 110))
            }
            if let remedy = check.remedy, check.status == .warn || check.status == .fail {
                lines.append(indent + "what to do: " + remedy)
            }
        }
        if let saved = report.savedTo { lines.append(""); lines.append("Report saved to \(saved)") }
        return lines.joined(separator: "\n")
    }

    /// Measurements joined by " · ", wrapped at `width`.
    static func wrap(_ items: [String], indent: String, width: Int) -> [String] {
        var lines: [String] = [], current = ""
        for item in items {
            if !current.isEmpty && indent.count + current.count + 3 + item.count > width {
                lines.append(indent + current)
                current = ""
            }
            current += current.isEmpty ? item : " · " + item
        }
        if !current.isEmpty { lines.append(indent + current) }
        return lines
    }

    /// Saves `report` as `<directory>/<timestamp>.json`; when that directory cannot be written, in
    /// `fallback` instead. Returns the path written (nil when neither worked) and a warning for stderr.
    public static func save(_ report: DiagnoseReport, directory: String, fallback: String? = nil) -> (path: String?, warning: String?) {
        let name = report.started.replacingOccurrences(of: ":", with: "-") + ".json"
        var warning: String?
        let fallback = fallback ?? NSTemporaryDirectory() + "classbox-diagnose"
        for (index, dir) in [directory, fallback].enumerated() {
            var copy = report
            let path = URL(fileURLWithPath: dir).appendingPathComponent(name).path
            copy.savedTo = path
            do {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                try copy.json().write(to: URL(fileURLWithPath: path), options: .atomic)
                return (path, warning)
            } catch {
                let reason = (error as NSError).localizedDescription
                warning = index == 0 ? "cannot save the report in \(dir) (\(reason)); saving it in \(fallback) instead" : "cannot save the report in \(fallback) either (\(reason))"
            }
        }
        return (nil, warning)
    }
}

/// The board and configuration diagnose runs with: as every subcommand chooses them, except that a box
/// not yet provisioned (no configuration file) can still test its board's devices.
public enum DiagnoseSetup {
    /// Loads board and configuration; without a configuration file and with `--board`, uses an
    /// unprovisioned identity with no peers and says so in `note`.
    public static func load(board: String?, config: String?) throws(ConfigError) -> (board: BoardProfile, config: BoxConfiguration, note: String?) {
        if config == nil, let board, board != BoardCatalog.defaultBoard, !FileManager.default.fileExists(atPath: BoxConfiguration.defaultPath) {
            let profile = try BoardCatalog.standard().load(board)
            var configuration = BoxConfiguration.simDefault
            configuration.identity.id = "unprovisioned"
            configuration.board = profile.name
            configuration.sim = nil
            configuration.peers = []
            return (profile, configuration, "no configuration at \(BoxConfiguration.defaultPath): testing the board's devices only (no peers to probe)")
        }
        let setup = try BoxSetup.load(board: board, config: config)
        return (setup.board, setup.config, nil)
    }
}
