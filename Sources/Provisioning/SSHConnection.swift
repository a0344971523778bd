import Foundation

/// Why an SSH connection could not be used, in the administrator's words.
public enum SSHFailure: Sendable, Equatable, CustomStringConvertible {
    /// The host answered with a key other than the one in known_hosts: refused, nothing was sent.
    case hostKeyMismatch(detail: String)
    /// known_hosts has no key for the host and new keys are not accepted.
    case unknownHostKey(detail: String)
    /// The host refused every key offered.
    case authenticationRefused(detail: String)
    /// The network: refused, timed out, no route, dropped. Worth retrying.
    case connection(detail: String)

    /// Only network failures are retried; a key problem stays a key problem.
    public var isRetryable: Bool { if case .connection = self { return true }; return false }

    public var description: String {
        switch self {
        case .hostKeyMismatch(let d): return "host key mismatch: \(d)"
        case .unknownHostKey(let d): return "unknown host key: \(d)"
        case .authenticationRefused(let d): return "key refused: \(d)"
        case .connection(let d): return d
        }
    }

    /// Reads OpenSSH's stderr (exit status 255) and names the failure.
    static func classify(_ stderr: String, address: String, timedOut: Bool, knownHosts: String?) -> SSHFailure {
        let lines = stderr.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        if stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") || stderr.contains("Host key for") && stderr.contains("has changed") {
            let offending = lines.first { $0.hasPrefix("Offending") }.map { " (\($0))" } ?? ""
            return .hostKeyMismatch(detail: "\(address) presented a different host key than known_hosts records\(offending); refused, nothing was sent. If the box was reflashed, verify its new key and remove the old one with `ssh-keygen -R \(address)`\(knownHosts.map { " -f \($0)" } ?? "")")
        }
        if stderr.contains("Host key verification failed") || stderr.contains("No ") && stderr.contains("host key is known") {
            return .unknownHostKey(detail: "\(address) is not in known_hosts and host-key checking is strict; add its key (ssh-keyscan, then verify) or set host_key_checking = \"accept-new\" / --accept-new-host-keys")
        }
        if stderr.contains("Permission denied") || stderr.contains("Too many authentication failures") {
            return .authenticationRefused(detail: "\(address) refused the SSH key (\(lines.last { $0.contains("Permission denied") } ?? "permission denied")); install the county key in the box's authorized_keys")
        }
        if timedOut { return .connection(detail: "connection to \(address) timed out") }
        for marker in ["Connection refused", "Connection timed out", "No route to host", "Network is unreachable",
                       "Could not resolve hostname", "Connection reset", "Connection closed", "Broken pipe",
                       "Timeout, server", "closed by remote host"] where stderr.contains(marker) {
            return .connection(detail: "\(address): \(marker.lowercased())")
        }
        let last = lines.last { !$0.isEmpty && !$0.hasPrefix("Warning: Permanently added") } ?? "the connection dropped (ssh exited with status 255 and no message)"
        return .connection(detail: "\(address): \(last)")
    }
}

/// One multiplexed OpenSSH connection to a box: a ControlMaster started once, then every command
/// through it. The administrator's ssh configuration, agent and known_hosts apply as usual.
public final class SSHConnection: Sendable {
    let address: String
    let settings: SSHSettings
    let runner: any CommandRunner
    let controlPath: String
    let acceptNewHostKeys: Bool

    /// A connection (not yet open) to `address`; the control socket lives in `controlDirectory`.
    public init(address: String, settings: SSHSettings, runner: any CommandRunner, controlDirectory: String, boxId: String,
                acceptNewHostKeys: Bool = false) {
        self.address = address
        self.settings = settings
        self.runner = runner
        self.controlPath = controlDirectory + "/" + boxId
        self.acceptNewHostKeys = acceptNewHostKeys
    }

    /// The options every ssh invocation for this box shares.
    public var baseArguments: [String] {
        var args = ["ssh"]
        if let file = settings.configFile { args += ["-F", file] }
        let policy = acceptNewHostKeys ? SSHSettings.HostKeyChecking.acceptNew : settings.hostKeyChecking
        args += ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=\(policy.rawValue)",
                 "-o", "ConnectTimeout=\(settings.connectTimeoutS)",
                 "-o", "ServerAliveInterval=2", "-o", "ServerAliveCountMax=3",
                 "-o", "ControlPath=\(controlPath)"]
        if let file = settings.knownHostsFile { args += ["-o", "UserKnownHostsFile=\(file)"] }
        if let file = settings.identityFile { args += ["-i", file, "-o", "IdentitiesOnly=yes"] }
        if let port = settings.port { args += ["-p", String(port)] }
        if let user = settings.user { args += ["-l", user] }
        return args
    }

    /// Opens the master connection (authenticates, then keeps running in the background).
    public func open(timeout: Double) -> SSHFailure? {
        let args = baseArguments + ["-o", "ControlMaster=yes", "-o", "ControlPersist=300", "-f", "-N", address]
        let result = runner.run(args, stdinFile: nil, timeout: timeout)
        guard result.status != 0 || result.timedOut else { return nil }
        return SSHFailure.classify(result.stderr, address: address, timedOut: result.timedOut, knownHosts: settings.knownHostsFile)
    }

    /// Runs a shell command line on the box through the master connection.
    public func run(_ command: String, stdinFile: String? = nil, timeout: Double) -> CommandResult {
        runner.run(baseArguments + ["-o", "ControlMaster=no", address, "--", command], stdinFile: stdinFile, timeout: timeout)
    }

    /// Whether a command's result means the connection itself failed (ssh's own status 255).
    public func transportFailure(_ result: CommandResult) -> SSHFailure? {
        guard result.status == 255 || result.timedOut else { return nil }
        return SSHFailure.classify(result.stderr, address: address, timedOut: result.timedOut, knownHosts: settings.knownHostsFile)
    }

    /// Stops the master connection.
    public func close() {
        _ = runner.run(baseArguments + ["-O", "exit", address], stdinFile: nil, timeout: 5)
    }
}

/// `s` quoted for a POSIX shell.
func shellQuote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
