public import BoxConfig
import Foundation

/// The board profile and configuration a command runs with, chosen the same way by every subcommand:
/// `--board` over the configuration's `board` over the built-in `sim`; `--config` over
/// `/etc/classbox/classbox.toml`, which a laptop with the `sim` board may lack.
public struct BoxSetup: Sendable {
    /// The board profile in use.
    public var board: BoardProfile
    /// The configuration in use.
    public var config: BoxConfiguration
    /// The file the configuration came from; nil for the built-in simulator defaults.
    public var configPath: String?

    /// Loads and validates both; every problem is reported with its file, line and key.
    public static func load(board boardOverride: String?, config configPath: String?,
                            catalog: BoardCatalog = .standard()) throws(ConfigError) -> BoxSetup {
        let path = configPath ?? BoxConfiguration.defaultPath
        var config: BoxConfiguration
        var source: String? = path
        if configPath == nil && !FileManager.default.fileExists(atPath: path) {
            // No configuration installed: acceptable only for the simulator on a developer's machine.
            let boardName = boardOverride ?? BoardCatalog.defaultBoard
            guard boardName == BoardCatalog.defaultBoard else {
                throw ConfigError(file: path, message: "does not exist; a box on board \"\(boardName)\" needs its configuration (see README: Configuration), or pass --config FILE")
            }
            config = .simDefault
            source = nil
        } else {
            config = try BoxConfiguration.load(path: path)
        }
        let board = try catalog.load(boardOverride ?? config.board ?? BoardCatalog.defaultBoard)
        config.board = board.name
        return BoxSetup(board: board, config: config, configPath: source)
    }
}
