import Foundation

/// Finds board profiles by name or path: the `sim` board is built into the binary (so a laptop needs
/// no files), the others are read from the profile directories of the image or the source tree.
public struct BoardCatalog: Sendable {
    /// Directories searched for `NAME.toml`, in order.
    public var searchPaths: [String]

    /// The directories a box and a developer's checkout use: `$CLASSBOX_BOARD_PATH` (colon-separated),
    /// `/etc/classbox/boards`, `/usr/share/classbox/boards`, and `Board/` under the current directory.
    public static func standard(environment: [String: String]? = nil, currentDirectory: String? = nil) -> BoardCatalog {
        let environment = environment ?? ProcessInfo.processInfo.environment
        let currentDirectory = currentDirectory ?? FileManager.default.currentDirectoryPath
        var paths: [String] = []
        if let extra = environment["CLASSBOX_BOARD_PATH"] {
            paths += extra.split(separator: ":").map(String.init)
        }
        paths += ["/etc/classbox/boards", "/usr/share/classbox/boards", currentDirectory + "/Board"]
        return BoardCatalog(searchPaths: paths)
    }

    /// A catalog over the given directories.
    public init(searchPaths: [String]) { self.searchPaths = searchPaths }

    /// The name of the board used when none is configured: the simulated classroom.
    public static let defaultBoard = "sim"

    /// Loads a board by name (searched) or by path (anything containing `/` or ending in `.toml`).
    public func load(_ nameOrPath: String) throws(ConfigError) -> BoardProfile {
        if nameOrPath.contains("/") || nameOrPath.hasSuffix(".toml") {
            return try loadFile(nameOrPath, expectedName: nil)
        }
        guard BoardProfile.isValidName(nameOrPath) else {
            throw ConfigError(file: nameOrPath, message: "\"\(nameOrPath)\" is not a board name; use one of \(availableNames().joined(separator: ", "))")
        }
        for directory in searchPaths {
            let path = directory + "/" + nameOrPath + ".toml"
            if FileManager.default.fileExists(atPath: path) { return try loadFile(path, expectedName: nameOrPath) }
        }
        if nameOrPath == BoardCatalog.defaultBoard {
            return try BoardProfile.parse(BoardCatalog.embeddedSimProfile, file: "<built-in sim board>")
        }
        throw ConfigError(file: nameOrPath, message: "no board profile named \"\(nameOrPath)\" in \(searchPaths.joined(separator: ", ")); known boards: \(availableNames().joined(separator: ", "))")
    }

    /// Names of the boards found in the search paths, plus the built-in `sim`.
    public func availableNames() -> [String] {
        var names: Set<String> = [BoardCatalog.defaultBoard]
        for directory in searchPaths {
            guard let entries = try? FileManager.default.contentsOfDirectory(atPath: directory) else { continue }
            for entry in entries where entry.hasSuffix(".toml") { names.insert(String(entry.dropLast(5))) }
        }
        return names.sorted()
    }

    private func loadFile(_ path: String, expectedName: String?) throws(ConfigError) -> BoardProfile {
        let text = try readConfigText(path)
        let profile = try BoardProfile.parse(text, file: path)
        let stem = String((path.split(separator: "/").last ?? "").dropLast(path.hasSuffix(".toml") ? 5 : 0))
        if profile.name != stem {
            throw ConfigError(file: path, line: 1, message: "the profile's name \"\(profile.name)\" differs from its file name \"\(stem).toml\"; make them equal")
        }
        if let expectedName, profile.name != expectedName {
            throw ConfigError(file: path, message: "asked for board \"\(expectedName)\", found \"\(profile.name)\"")
        }
        return profile
    }
}

/// Reads a configuration file as UTF-8, with an error that says what to do when it cannot.
package func readConfigText(_ path: String) throws(ConfigError) -> String {
    guard let data = FileManager.default.contents(atPath: path) else {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            throw ConfigError(file: path, message: isDirectory.boolValue ? "is a directory, not a file" : "cannot be read; check its permissions")
        }
        throw ConfigError(file: path, message: "does not exist; create it or pass another with --config")
    }
    guard let text = String(data: data, encoding: .utf8) else {
        throw ConfigError(file: path, message: "is not UTF-8 text")
    }
    return text
}
