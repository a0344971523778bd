public import Logging
import Foundation

/// Writes log events as single lines to standard error in the form journald reads best: when the
/// service runs under systemd (`JOURNAL_STREAM` is set), each line starts with its syslog priority
/// (`<6>`) and carries no timestamp, since the journal adds one; on a terminal, lines start with an
/// ISO 8601 time and the level's name. Metadata follows as sorted `key=value` pairs.
public struct JournalLogHandler: LogHandler {
    /// Attached to every event of loggers using this handler.
    public var metadata: Logger.Metadata = [:]
    /// The lowest level written.
    public var logLevel: Logger.Level
    private let label: String
    private let journald: Bool

    /// A handler for `label` at `level`; `journald` nil detects it from the environment.
    public init(label: String, level: Logger.Level, journald: Bool? = nil) {
        self.label = label
        self.logLevel = level
        self.journald = journald ?? (ProcessInfo.processInfo.environment["JOURNAL_STREAM"] != nil)
    }

    /// Installs this handler for every logger of the process at `level`.
    public static func bootstrap(level: Logger.Level) {
        LoggingSystem.bootstrap { label in JournalLogHandler(label: label, level: level) }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let line = format(level: event.level, message: event.message.description, metadata: event.metadata)
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// The line written for one event (without the newline).
    public func format(level: Logger.Level, message: String, metadata extra: Logger.Metadata?) -> String {
        var all = metadata
        if let extra { all.merge(extra) { $1 } }
        let fields = all.sorted { $0.key < $1.key }.map { "\($0.key)=\(quoted($0.value.description))" }
        // Newlines would split one event into several journal entries.
        let body = ([message.replacingOccurrences(of: "\n", with: " | ")] + fields).joined(separator: " ")
        if journald { return "<\(Self.priority(level))>\(label): \(body)" }
        return "\(Self.timestamp()) \(level.rawValue) \(label): \(body)"
    }

    /// The syslog priority journald files the level under.
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    private func quoted(_ value: String) -> String {
        value.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" }) || value.isEmpty
            ? "\"" + value.replacingOccurrences(of: "\"", with: "\\\"") + "\"" : value
    }

    private static func timestamp() -> String {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        var parts = tm()
        var seconds = time.tv_sec
        gmtime_r(&seconds, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                      parts.tm_hour, parts.tm_min, parts.tm_sec, Int(time.tv_nsec / 1_000_000))
    }
}
