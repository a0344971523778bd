#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
public import BoxConfig
public import Logging
import Foundation

/// A freshly flashed box has a board but no configuration yet: it must still look healthy to systemd
/// (ready, watchdog fed) and say why it is idle, until provisioning installs the configuration. This
/// waits for that: it reports `READY=1` with a "not provisioned" status, logs once, feeds the watchdog,
/// and returns when the configuration file appears (systemd's `Restart=always` then starts the firmware
/// again, configured) or when SIGTERM, SIGINT or SIGHUP asks it to stop.
public struct ProvisioningWait: Sendable {
    /// Why the wait ended.
    public enum Outcome: Sendable, Equatable {
        /// The configuration file now exists: exit so the service restarts with it.
        case configurationAppeared
        /// A stop signal arrived (its number).
        case stopped(signal: Int32)
    }

    /// The configuration file provisioning will install.
    public var configPath: String
    /// The board the box runs (named in the status line).
    public var boardName: String
    /// How systemd is told.
    public var notifier: SystemdNotifier
    /// How often the configuration file is looked for when there is no faster watchdog interval.
    public var pollInterval: Duration

    /// A wait for `configPath` on board `boardName`.
    public init(configPath: String, boardName: String, notifier: SystemdNotifier = SystemdNotifier(),
                pollInterval: Duration = .seconds(5)) {
        self.configPath = configPath
        self.boardName = boardName
        self.notifier = notifier
        self.pollInterval = pollInterval
    }

    /// True when this box has no configuration yet: the file is missing and the board is a real one
    /// (the `sim` board runs on built-in defaults instead).
    public static func isNeeded(configPath: String, boardName: String) -> Bool {
        boardName != "sim" && !FileManager.default.fileExists(atPath: configPath)
    }

    /// The wait `classbox run` needs, or nil when the box can run: a board is named (`--board`) but
    /// its configuration file is missing. The board must load (a misspelt board is still an error), and
    /// the `sim` board never waits (it runs on built-in defaults).
    public static func ifUnprovisioned(board: String?, config: String?,
                                       catalog: BoardCatalog = .standard()) throws(ConfigError) -> ProvisioningWait? {
        let path = config ?? BoxConfiguration.defaultPath
        guard let board, !FileManager.default.fileExists(atPath: path) else { return nil }
        let profile = try catalog.load(board)
        guard isNeeded(configPath: path, boardName: profile.name) else { return nil }
        return ProvisioningWait(configPath: path, boardName: profile.name)
    }

    /// The status line shown by `systemctl status classbox`.
    public var statusLine: String { "not provisioned: waiting for configuration at \(configPath)" }

    /// Blocks until the configuration appears or a stop signal arrives. Stop signals are blocked on the
    /// calling thread and taken with `sigtimedwait`, so call this from the main thread before others start.
    public func run(logger: Logger) -> Outcome {
        var signals = sigset_t()
        sigemptyset(&signals)
        for s in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&signals, s) }
        var previous = sigset_t()
        pthread_sigmask(SIG_BLOCK, &signals, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }

        notify(logger) { () throws(SystemdNotifyError) in try notifier.ready(status: statusLine) }
        logger.notice("\(statusLine) (board \(boardName)); the service stays ready and restarts once it is installed")
        let tick = min(notifier.keepAliveInterval ?? pollInterval, pollInterval)
        while true {
            if FileManager.default.fileExists(atPath: configPath) {
                logger.notice("configuration installed at \(configPath): restarting to apply it")
                notify(logger) { () throws(SystemdNotifyError) in try notifier.send(["STOPPING=1", "STATUS=configuration installed, restarting"]) }
                return .configurationAppeared
            }
            notify(logger) { () throws(SystemdNotifyError) in try notifier.watchdog() }
            var timeout = timespec(tv_sec: Int(tick.components.seconds),
                                   tv_nsec: Int(tick.components.attoseconds / 1_000_000_000))
            let received = sigtimedwait(&signals, nil, &timeout)
            if received > 0 {
                logger.notice("stopping on signal \(received) while waiting for configuration")
                notify(logger) { () throws(SystemdNotifyError) in try notifier.stopping() }
                return .stopped(signal: received)
            }
        }
    }

    private func notify(_ logger: Logger, _ body: () throws(SystemdNotifyError) -> Void) {
        do { try body() } catch { logger.warning("\(error.description)") }
    }
}
