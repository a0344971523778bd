public import Foundation

/// What a finished (or stopped) local command left behind.
public struct CommandResult: Sendable, Equatable {
    /// Exit status (or 128 + signal when it was killed).
    public var status: Int32
    /// Everything it wrote to stdout.
    public var stdout: Data
    /// Everything it wrote to stderr, as text.
    public var stderr: String
    /// True when the timeout stopped it.
    public var timedOut: Bool

    /// A result from its parts.
    public init(status: Int32, stdout: Data = Data(), stderr: String = "", timedOut: Bool = false) {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
        self.timedOut = timedOut
    }

    /// stdout as UTF-8 text.
    public var text: String { String(decoding: stdout, as: UTF8.self) }
}

/// Runs a local program (here: `ssh`); the seam where unit tests put a scripted fake.
public protocol CommandRunner: Sendable {
    /// Runs `arguments[0]` (searched in PATH) with the rest as arguments, stdin from `stdinFile`
    /// (or empty), and stops it after `timeout` seconds.
    func run(_ arguments: [String], stdinFile: String?, timeout: Double) -> CommandResult
}

/// Runs programs with Foundation's `Process`. Output goes to temporary files rather than pipes, so a
/// background ssh master that keeps the descriptors open cannot make the caller wait for it.
public struct ProcessRunner: CommandRunner {
    /// A runner.
    public init() {}

    public func run(_ arguments: [String], stdinFile: String?, timeout: Double) -> CommandResult {
        let fm = FileManager.default
        let scratch = fm.temporaryDirectory.appendingPathComponent("classbox-run-\(UUID().uuidString)")
        do { try fm.createDirectory(at: scratch, withIntermediateDirectories: true) } catch {
            return CommandResult(status: 127, stderr: "cannot create a temporary directory: \(error)")
        }
        defer { try? fm.removeItem(at: scratch) }
        let outPath = scratch.appendingPathComponent("out").path, errPath = scratch.appendingPathComponent("err").path
        _ = fm.createFile(atPath: outPath, contents: nil)
        _ = fm.createFile(atPath: errPath, contents: nil)
        guard let out = FileHandle(forWritingAtPath: outPath), let err = FileHandle(forWritingAtPath: errPath),
              let input = FileHandle(forReadingAtPath: stdinFile ?? "/dev/null") else {
            return CommandResult(status: 127, stderr: "cannot open \(stdinFile ?? "/dev/null") or the output files")
        }
        defer { try? out.close(); try? err.close(); try? input.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardInput = input
        process.standardOutput = out
        process.standardError = err
        do { try process.run() } catch {
            return CommandResult(status: 127, stderr: "cannot start \(arguments.first ?? "?"): \(error)")
        }
        let deadline = Date().addingTimeInterval(timeout)
        var timedOut = false
        while process.isRunning {
            if Date() >= deadline {
                timedOut = true
                process.terminate()
                let grace = Date().addingTimeInterval(2)
                while process.isRunning && Date() < grace { usleep(10_000) }
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                break
            }
            usleep(5_000)
        }
        process.waitUntilExit()
        let status = process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
        let stdout = fm.contents(atPath: outPath) ?? Data()
        let stderr = String(decoding: fm.contents(atPath: errPath) ?? Data(), as: UTF8.self)
        return CommandResult(status: status, stdout: stdout, stderr: stderr, timedOut: timedOut)
    }
}
