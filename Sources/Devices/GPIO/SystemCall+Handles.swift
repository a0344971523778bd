#if canImport(Glibc)
internal import Glibc
#endif

extension SystemCall {
    /// Runs a call that returns a handle, or nil with errno set on failure (libgpiod's constructors).
    @inline(__always)
    static func checkHandle<H>(retryOnInterrupt: Bool = true, _ body: () -> H?) throws(Errno) -> H {
        while true {
            if let handle = body() { return handle }
            let error = Errno.current
            if retryOnInterrupt && error == .interrupted { continue }
            preconditionIsNotProgrammerError(error)
            throw error
        }
    }

    /// Waits until `fd` is readable or `timeoutMs` passes (negative: forever); true when readable.
    /// `EINTR` is retried with the full timeout, which only lengthens a wait.
    static func waitReadable(_ fd: Int32, timeoutMs: Int32) throws(Errno) -> Bool {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let n = try check { poll(&entry, 1, timeoutMs) }
        if n == 0 { return false }
        if entry.revents & Int16(POLLNVAL) != 0 { preconditionIsNotProgrammerError(Errno(EBADF)) }
        if entry.revents & Int16(POLLERR | POLLHUP) != 0 && entry.revents & Int16(POLLIN) == 0 { throw Errno.noDevice }
        return true
    }

    /// CLOCK_MONOTONIC in nanoseconds: the clock of GPIO edge and V4L2 buffer timestamps.
    static func monotonicNanoseconds() -> Int64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Int64(t.tv_sec) * 1_000_000_000 + Int64(t.tv_nsec)
    }
}
