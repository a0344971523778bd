#if canImport(Glibc)
import Glibc
#endif

/// Runs a system tool with a time limit and collects its output, with posix_spawn and poll only:
/// Foundation's `Process` needs a CFRunLoop wake-up socket pair, which could not be created in the
/// kernel-driver VM (the call then hung), and a diagnose must never hang on a tool.
public enum Subprocess {
    /// The result of a run.
    public struct Result: Sendable, Equatable {
        /// The exit status (128 + signal when killed).
        public var status: Int32
        /// Everything it wrote to stdout.
        public var stdout: String
        /// Everything it wrote to stderr.
        public var stderr: String
        /// It ran past the time limit and was killed.
        public var timedOut: Bool
    }

    /// Runs `path` with `arguments`; nil when it cannot be started.
    public static func run(_ path: String, _ arguments: [String], timeoutSeconds: Double) -> Result? {
        var outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0]
        guard pipe(&outPipe) == 0 else { return nil }
        guard pipe(&errPipe) == 0 else { close(outPipe[0]); close(outPipe[1]); return nil }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        for fd in outPipe + errPipe { posix_spawn_file_actions_addclose(&actions, fd) }
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, nil, argv, environ)
        close(outPipe[1])
        close(errPipe[1])
        guard rc == 0 else { close(outPipe[0]); close(errPipe[0]); return nil }
        var out: [UInt8] = [], err: [UInt8] = []
        var open = [true, true]
        var timedOut = false
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let end = Double(deadline.tv_sec) + Double(deadline.tv_nsec) / 1e9 + timeoutSeconds
        var buffer = [UInt8](repeating: 0, count: 65536)
        while open[0] || open[1] {
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            if Double(now.tv_sec) + Double(now.tv_nsec) / 1e9 > end { timedOut = true; kill(pid, SIGKILL); break }
            var fds = [pollfd(fd: open[0] ? outPipe[0] : -1, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: open[1] ? errPipe[0] : -1, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&fds, 2, 100)
            if ready < 0 && errno != EINTR { break }
            for i in 0..<2 where open[i] && fds[i].revents != 0 {
                let n = read(i == 0 ? outPipe[0] : errPipe[0], &buffer, buffer.count)
                if n > 0 { if i == 0 { out += buffer[0..<n] } else { err += buffer[0..<n] } } else if n == 0 || errno != EINTR { open[i] = false }
            }
        }
        close(outPipe[0])
        close(errPipe[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Result(status: code, stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self), timedOut: timedOut)
    }
}
