#if canImport(Glibc)
internal import Glibc
#endif
import Synchronization

/// One kernel call of a V4L2 session: what was asked, what came back. A technician can record a trace
/// of a camera that misbehaves on a box (`RecordingVideoKernel`) and a developer replay it on a laptop
/// (`ReplayingVideoKernel`); the tests replay traces recorded from the kernel's own drivers.
public struct VideoTraceEntry: Codable, Sendable, Equatable {
    /// Which kernel entry point.
    public enum Call: String, Codable, Sendable { case open, close, ioctl, map, wait, poll }
    /// Which kernel entry point.
    public var call: Call
    /// The device node (`open`).
    public var path: String?
    /// The descriptor used (`close`, `ioctl`, `map`, `wait`), or returned (`open`).
    public var fd: Int32?
    /// The ioctl (`ioctl`).
    public var request: VideoRequest?
    /// The argument struct before the call, in hex (`ioctl`), the mapping's length (`map`), or the
    /// events asked for (`poll`, decimal).
    public var input: String?
    /// The argument struct after a successful call, in hex (`ioctl`), or the events returned (`poll`).
    public var output: String?
    /// Whether the descriptor became readable (`wait`).
    public var readable: Bool?
    /// The error the call failed with, if it failed.
    public var errno: Int32?

    /// An entry from its values.
    public init(call: Call, path: String? = nil, fd: Int32? = nil, request: VideoRequest? = nil, input: String? = nil,
                output: String? = nil, readable: Bool? = nil, errno: Int32? = nil) {
        self.call = call
        self.path = path
        self.fd = fd
        self.request = request
        self.input = input
        self.output = output
        self.readable = readable
        self.errno = errno
    }
}

/// A recorded V4L2 session: the device nodes that were present and every call in order.
public struct VideoTrace: Codable, Sendable, Equatable {
    /// `/dev/video*` as listed when recording started.
    public var devicePaths: [String]
    /// The calls in order.
    public var entries: [VideoTraceEntry]

    /// A trace from its values.
    public init(devicePaths: [String], entries: [VideoTraceEntry]) {
        self.devicePaths = devicePaths
        self.entries = entries
    }
}

func hex(_ bytes: UnsafeRawBufferPointer) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out = [UInt8]()
    out.reserveCapacity(bytes.count * 2)
    for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
    return String(decoding: out, as: UTF8.self)
}

func unhex(_ text: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var high: UInt8? = nil
    for c in text.utf8 {
        let v: UInt8 = c >= 97 ? c - 87 : c - 48
        if let h = high { bytes.append(h << 4 | v); high = nil } else { high = v }
    }
    return bytes
}

/// Passes every call to another kernel (the real one) and keeps a trace of it. Buffer contents (frames)
/// are not recorded.
public final class RecordingVideoKernel: VideoKernel {
    private let inner: any VideoKernel
    private let state: Mutex<VideoTrace>

    /// Records the calls made to `inner`.
    public init(_ inner: any VideoKernel) {
        self.inner = inner
        state = Mutex(VideoTrace(devicePaths: inner.devicePaths(), entries: []))
    }

    /// The trace so far.
    public var trace: VideoTrace { state.withLock { $0 } }

    private func append(_ entry: VideoTraceEntry) { state.withLock { $0.entries.append(entry) } }

    public func devicePaths() -> [String] { inner.devicePaths() }

    public func open(_ path: String) throws(Errno) -> Int32 {
        do {
            let fd = try inner.open(path)
            append(.init(call: .open, path: path, fd: fd))
            return fd
        } catch {
            append(.init(call: .open, path: path, errno: error.rawValue))
            throw error
        }
    }

    public func close(_ fd: Int32) {
        append(.init(call: .close, fd: fd))
        inner.close(fd)
    }

    public func ioctl(_ fd: Int32, _ request: VideoRequest, _ argument: UnsafeMutableRawBufferPointer) throws(Errno) {
        let input = hex(UnsafeRawBufferPointer(argument))
        do {
            try inner.ioctl(fd, request, argument)
            append(.init(call: .ioctl, fd: fd, request: request, input: input, output: hex(UnsafeRawBufferPointer(argument))))
        } catch {
            append(.init(call: .ioctl, fd: fd, request: request, input: input, errno: error.rawValue))
            throw error
        }
    }

    public func map(_ fd: Int32, length: Int, offset: Int) throws(Errno) -> UnsafeMutableRawBufferPointer {
        do {
            let region = try inner.map(fd, length: length, offset: offset)
            append(.init(call: .map, fd: fd, input: "\(length)@\(offset)"))
            return region
        } catch {
            append(.init(call: .map, fd: fd, input: "\(length)@\(offset)", errno: error.rawValue))
            throw error
        }
    }

    public func unmap(_ region: UnsafeMutableRawBufferPointer) { inner.unmap(region) }

    public func poll(_ fd: Int32, events: Int16, timeoutMs: Int32) throws(Errno) -> Int16 {
        do {
            let revents = try inner.poll(fd, events: events, timeoutMs: timeoutMs)
            append(.init(call: .poll, fd: fd, input: String(events), output: String(revents)))
            return revents
        } catch {
            append(.init(call: .poll, fd: fd, input: String(events), errno: error.rawValue))
            throw error
        }
    }

    public func waitReadable(_ fd: Int32, timeoutMs: Int32) throws(Errno) -> Bool {
        do {
            let readable = try inner.waitReadable(fd, timeoutMs: timeoutMs)
            append(.init(call: .wait, fd: fd, readable: readable))
            return readable
        } catch {
            append(.init(call: .wait, fd: fd, errno: error.rawValue))
            throw error
        }
    }
}

/// Plays a recorded trace back as the kernel: each call must be the next one recorded (same call, node
/// and ioctl, same argument bytes); the recorded result is returned. Differences are collected in
/// `mismatches` (a replay that diverges in the request itself fails with `EIO`). Mapped buffers are
/// zero-filled memory.
public final class ReplayingVideoKernel: VideoKernel {
    private struct State {
        var next = 0
        var mismatches: [String] = []
        var mapped: Set<Int> = []  // addresses of the zero-filled buffers
    }
    private let trace: VideoTrace
    private let state = Mutex(State())

    /// A kernel answering from `trace`.
    public init(_ trace: VideoTrace) { self.trace = trace }

    deinit { state.withLock { for address in $0.mapped { UnsafeMutableRawPointer(bitPattern: address)?.deallocate() } } }

    /// Where the replay differed from the recording.
    public var mismatches: [String] { state.withLock { $0.mismatches } }
    /// Recorded calls not yet replayed.
    public var remaining: Int { state.withLock { trace.entries.count - $0.next } }

    private func take(_ call: VideoTraceEntry.Call, _ what: String, matches: (VideoTraceEntry) -> Bool) throws(Errno) -> VideoTraceEntry {
        let entry: VideoTraceEntry? = state.withLock { s in
            guard s.next < trace.entries.count else {
                s.mismatches.append("call \(s.next): \(what) after the end of the trace")
                return nil
            }
            let e = trace.entries[s.next]
            guard e.call == call, matches(e) else {
                s.mismatches.append("call \(s.next): \(what), but the trace has \(e.call.rawValue) \(e.request?.rawValue ?? e.path ?? "")")
                return nil
            }
            s.next += 1
            return e
        }
        guard let entry else { throw Errno(EIO) }
        if let errno = entry.errno { throw Errno(errno) }
        return entry
    }

    public func devicePaths() -> [String] { trace.devicePaths }

    public func open(_ path: String) throws(Errno) -> Int32 {
        try take(.open, "open \(path)") { $0.path == path }.fd ?? -1
    }

    public func close(_ fd: Int32) { _ = try? take(.close, "close \(fd)") { $0.fd == fd } }

    public func ioctl(_ fd: Int32, _ request: VideoRequest, _ argument: UnsafeMutableRawBufferPointer) throws(Errno) {
        let input = hex(UnsafeRawBufferPointer(argument))
        let index = state.withLock { $0.next }
        let entry = try take(.ioctl, "\(request.rawValue)") { $0.request == request && $0.fd == fd }
        if entry.input != input {
            state.withLock { $0.mismatches.append("call \(index): \(request.rawValue) asked \(input), the recording asked \(entry.input ?? "")") }
        }
        let output = unhex(entry.output ?? "")
        guard output.count == argument.count else {
            state.withLock { $0.mismatches.append("call \(index): \(request.rawValue) struct is \(argument.count) bytes, recorded \(output.count)") }
            throw Errno(EIO)
        }
        argument.copyBytes(from: output)
    }

    public func map(_ fd: Int32, length: Int, offset: Int) throws(Errno) -> UnsafeMutableRawBufferPointer {
        _ = try take(.map, "map \(length)@\(offset)") { $0.fd == fd && $0.input == "\(length)@\(offset)" }
        let region = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 64)
        region.initializeMemory(as: UInt8.self, repeating: 0)
        let address = Int(bitPattern: region.baseAddress)
        state.withLock { _ = $0.mapped.insert(address) }
        return region
    }

    public func unmap(_ region: UnsafeMutableRawBufferPointer) {
        let address = Int(bitPattern: region.baseAddress)
        if state.withLock({ $0.mapped.remove(address) }) != nil { region.deallocate() }
    }

    public func waitReadable(_ fd: Int32, timeoutMs: Int32) throws(Errno) -> Bool {
        try take(.wait, "wait \(fd)") { $0.fd == fd }.readable ?? false
    }

    public func poll(_ fd: Int32, events: Int16, timeoutMs: Int32) throws(Errno) -> Int16 {
        Int16(try take(.poll, "poll \(fd) for \(events)") { $0.fd == fd && $0.input == String(events) }.output ?? "0") ?? 0
    }
}
