// A source-compatible subset of swift-log's `Logging` API (Logger, LogHandler with `log(event:)`,
// LoggingSystem), built only by toolchains older than Swift 6.2, which cannot read the manifest of the
// one swift-log version in the package mirror (1.16.2, tools 6.2). Debian trixie's Swift 6.0.3 builds
// the image with it. It implements only what Classbox uses; it must stay a subset, never diverge.

/// A logger: a label, a handler that writes events, and the handler's level and metadata.
public struct Logger: Sendable {
    /// The handler that receives this logger's events.
    public var handler: any LogHandler
    /// The logger's label, usually its module.
    public let label: String

    /// A logger using the handler `LoggingSystem.bootstrap` installed.
    public init(label: String) {
        self.label = label
        self.handler = LoggingSystem.factory(label)
    }

    /// A logger using a given handler.
    public init(label: String, factory: (String) -> any LogHandler) {
        self.label = label
        self.handler = factory(label)
    }

    /// The lowest level this logger emits.
    public var logLevel: Level {
        get { handler.logLevel }
        set { handler.logLevel = newValue }
    }

    /// One metadata value attached to every event of this logger.
    public subscript(metadataKey key: String) -> MetadataValue? {
        get { handler[metadataKey: key] }
        set { handler[metadataKey: key] = newValue }
    }

    /// Emits an event at `level` when the level is enabled.
    public func log(level: Level, _ message: @autoclosure () -> Message, metadata: @autoclosure () -> Metadata? = nil,
                    source: @autoclosure () -> String? = nil, file: String = #fileID, function: String = #function,
                    line: UInt = #line) {
        guard level >= handler.logLevel else { return }
        handler.log(event: LogEvent(level: level, message: message(), metadata: metadata(),
                                    source: source() ?? Logger.module(fileID: file), file: file, function: function, line: line))
    }

    /// Emits a trace event.
    public func trace(_ message: @autoclosure () -> Message, metadata: @autoclosure () -> Metadata? = nil,
                      source: @autoclosure () -> String? = nil, file: String = #fileID, function: String = #function, line: UInt = #line) {
        log(level: .trace, message(), metadata: metadata(), source: source(), file: file, function: function, line: line)
    }
    /// Emits a debug event.
    public func debug(_ message: @autoclosure () -> Message, metadata: @autoclosure () -> Metadata? = nil,
                      source: @autoclosure () -> String? = nil, file: String = #fileID, function: String = #function, line: UInt = #line) {
        log(level: .debug, message(), metadata: metadata(), source: source(), file: file, function: function, line: line)
    }
    /// Emits an info event.
    public func info(_ message: @autoclosure () -> Message, metadata: @autoclosure () -> Metadata? = nil,
                     source: @autoclosure () -> String? = nil, file: String = #fileID, function: String = #function, line: UInt = #line) {
        log(level: .info, message(), metadata: metadata(), source: source(), file: file, function: function, line: line)
    }
    /// Emits a notice event.
    public func notice(_ message: @autoclosure () -> Message, metadata: @autoclosure () -> Metadata? = nil,
                       source: @autoclosure () -> String? = nil, file: String = #fileID, function: String = #function, line: UInt = #line) {
        log(level: .notice, message(), metadata: metadata(), source: source(), file: file, function: function, line: line)
    }
    /// Emits a warning event.
    public func warning(_ message: @autoclosure () -> Message, metadata: @autoclosure () -> Metadata? = nil,
                        source: @autoclosure () -> String? = nil, file: String = #fileID, function: String = #function, line: UInt = #line) {
        log(level: .warning, message(), metadata: metadata(), source: source(), file: file, function: function, line: line)
    }
    /// Emits an error event.
    public func error(_ message: @autoclosure () -> Message, metadata: @autoclosure () -> Metadata? = nil,
                      source: @autoclosure () -> String? = nil, file: String = #fileID, function: String = #function, line: UInt = #line) {
        log(level: .error, message(), metadata: metadata(), source: source(), file: file, function: function, line: line)
    }
    /// Emits a critical event.
    public func critical(_ message: @autoclosure () -> Message, metadata: @autoclosure () -> Metadata? = nil,
                         source: @autoclosure () -> String? = nil, file: String = #fileID, function: String = #function, line: UInt = #line) {
        log(level: .critical, message(), metadata: metadata(), source: source(), file: file, function: function, line: line)
    }

    static func module(fileID: String) -> String {
        fileID.split(separator: "/", maxSplits: 1).first.map(String.init) ?? "n/a"
    }

    /// Severity, from the most verbose to the most severe.
    public enum Level: String, Sendable, Codable, CaseIterable, Comparable {
        case trace, debug, info, notice, warning, error, critical
        var order: Int { Level.allCases.firstIndex(of: self)! }
        public static func < (a: Level, b: Level) -> Bool { a.order < b.order }
    }

    /// A log message, written as a string literal with interpolations.
    public struct Message: Sendable, ExpressibleByStringLiteral, ExpressibleByStringInterpolation,
        CustomStringConvertible, Equatable {
        private let value: String
        public init(stringLiteral value: String) { self.value = value }
        public var description: String { value }
    }

    /// Structured key-value data attached to an event.
    public typealias Metadata = [String: MetadataValue]

    /// A metadata value.
    public enum MetadataValue: Sendable, Equatable, CustomStringConvertible, ExpressibleByStringLiteral,
        ExpressibleByStringInterpolation, ExpressibleByDictionaryLiteral, ExpressibleByArrayLiteral {
        case string(String)
        case stringConvertible(any CustomStringConvertible & Sendable)
        case dictionary(Metadata)
        case array([MetadataValue])

        public init(stringLiteral value: String) { self = .string(value) }
        public init(dictionaryLiteral elements: (String, MetadataValue)...) {
            self = .dictionary(Dictionary(elements, uniquingKeysWith: { $1 }))
        }
        public init(arrayLiteral elements: MetadataValue...) { self = .array(elements) }

        public var description: String {
            switch self {
            case .string(let s): return s
            case .stringConvertible(let c): return c.description
            case .dictionary(let d): return d.mapValues(\.description).description
            case .array(let a): return a.map(\.description).description
            }
        }

        public static func == (a: MetadataValue, b: MetadataValue) -> Bool { a.description == b.description }
    }
}

/// One event handed to a `LogHandler`.
public struct LogEvent: Sendable {
    /// Severity.
    public var level: Logger.Level
    /// The message.
    public var message: Logger.Message
    /// Metadata given at the call site (the handler merges its own).
    public var metadata: Logger.Metadata?
    /// The emitting module.
    public var source: String
    /// Source location.
    public var file: String
    /// Source location.
    public var function: String
    /// Source location.
    public var line: UInt
}

/// Writes events somewhere; holds the level and metadata of the loggers using it (value semantics).
public protocol LogHandler: Sendable {
    /// Writes one event whose level is enabled.
    func log(event: LogEvent)
    /// One metadata value.
    subscript(metadataKey _: String) -> Logger.Metadata.Value? { get set }
    /// All metadata.
    var metadata: Logger.Metadata { get set }
    /// The lowest level emitted.
    var logLevel: Logger.Level { get set }
}

/// The process-wide choice of log handler.
public enum LoggingSystem {
    private final class Box: @unchecked Sendable {
        // Written once at start-up by `bootstrap`, before any logger exists, as with swift-log.
        var factory: @Sendable (String) -> any LogHandler = { _ in DiscardingHandler() }
    }
    private static let box = Box()

    /// Installs the handler factory every new `Logger` uses. Call once, at start-up.
    public static func bootstrap(_ factory: @escaping @Sendable (String) -> any LogHandler) {
        box.factory = factory
    }

    static var factory: @Sendable (String) -> any LogHandler { box.factory }

    private struct DiscardingHandler: LogHandler {
        func log(event: LogEvent) {}
        subscript(metadataKey _: String) -> Logger.Metadata.Value? { get { nil } set {} }
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info
    }
}
