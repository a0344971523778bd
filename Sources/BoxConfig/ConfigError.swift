/// One thing wrong in a configuration or board file, located by file, line and key.
public struct ConfigProblem: Sendable, Equatable, CustomStringConvertible {
    /// The file the problem is in.
    public var file: String
    /// The 1-based line the key (or its table) is written on, when the file has one for it.
    public var line: Int?
    /// The key the problem is about, e.g. `media.frame_ms`; nil for a whole-file problem.
    public var key: KeyPath?
    /// What is wrong and what to do about it, in words a technician can act on.
    public var message: String

    /// A problem at a place in a file.
    public init(file: String, line: Int?, key: KeyPath?, message: String) {
        self.file = file
        self.line = line
        self.key = key
        self.message = message
    }

    /// `file:line: error: key 'a.b': message`, the shape editors and terminals link to.
    public var description: String {
        var text = file
        if let line { text += ":\(line)" }
        text += ": error: "
        if let key, !key.components.isEmpty { text += "key '\(key)': " }
        return text + message
    }
}

/// Loading a configuration or board profile failed; every problem found is listed, not just the first.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong, in file order.
    public var problems: [ConfigProblem]

    /// An error from its problems.
    public init(problems: [ConfigProblem]) { self.problems = problems }

    /// An error about a file as a whole (cannot be read, is not TOML, ...).
    public init(file: String, line: Int? = nil, message: String) {
        self.problems = [ConfigProblem(file: file, line: line, key: nil, message: message)]
    }

    /// The process exit code for a configuration error: 2, as for every usage error of `classbox`.
    public static let exitCode: Int32 = 2

    public var description: String { problems.map(\.description).joined(separator: "\n") }
}
