#if canImport(Glibc)
import Glibc
#endif
import BoxConfig
import Foundation
import Logging
import Testing
@testable import Box

/// A datagram socket standing in for systemd's notify socket: bound to a file path or an abstract name.
final class NotifySocket {
    let fd: Int32
    let address: String
    private let file: String?

    init(abstract: Bool) throws {
        let name = "classbox-test-\(UUID().uuidString.prefix(12))"
        file = abstract ? nil : FileManager.default.temporaryDirectory.appendingPathComponent("\(name).sock").path
        address = file ?? "@\(name)"
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var sa = sockaddr_un()
        sa.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(address.utf8)
        if abstract { bytes[0] = 0 } else { bytes.append(0) }
        withUnsafeMutableBytes(of: &sa.sun_path) { raw in for (i, b) in bytes.enumerated() { raw[i] = b } }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count)
        let rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard rc == 0 else { close(fd); throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// The next datagram (nil after 5 s without one).
    func receive() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return n < 0 ? nil : String(decoding: buffer[0..<n], as: UTF8.self)
    }

    deinit {
        close(fd)
        if let file { unlink(file) }
    }
}

@Suite("systemd notifications")
struct SystemdNotifierTests {
    @Test("READY, STATUS and WATCHDOG reach a notify socket bound to a file path", arguments: [false, true])
    func messagesArrive(abstract: Bool) throws {
        let socket = try NotifySocket(abstract: abstract)
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": socket.address])
        #expect(notifier.isActive)
        try notifier.ready(status: "not provisioned: waiting")
        #expect(socket.receive() == "READY=1\nSTATUS=not provisioned: waiting")
        try notifier.watchdog()
        #expect(socket.receive() == "WATCHDOG=1")
        try notifier.status("line one\nline two")
        #expect(socket.receive() == "STATUS=line one line two")
    }

    @Test("without NOTIFY_SOCKET every call does nothing and succeeds")
    func outsideSystemd() throws {
        let notifier = SystemdNotifier(environment: [:])
        #expect(!notifier.isActive && notifier.watchdogTimeout == nil)
        try notifier.ready(status: "x")
        try notifier.watchdog()
    }

    @Test("a socket nobody listens on is an error naming the socket and the call")
    func nobodyListening() {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("classbox-missing-\(UUID()).sock").path
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": path])
        #expect(throws: SystemdNotifyError.self) { try notifier.watchdog() }
        do { try notifier.watchdog() } catch {
            #expect(error.call == "sendto" && error.socket == path && error.errno == ENOENT)
            #expect(error.description.contains(path))
        }
        let relative = SystemdNotifier(environment: ["NOTIFY_SOCKET": "relative/notify"])
        #expect(throws: SystemdNotifyError(socket: "relative/notify", call: "address", errno: EINVAL)) { try relative.ready() }
    }

    @Test("WATCHDOG_USEC gives the timeout; WATCHDOG_PID of another process or a bad value gives none",
          arguments: [
            ("30000000", nil, Duration.seconds(30)), ("30000000", "42", Duration.seconds(30)),
            ("30000000", "43", nil), ("0", nil, nil), ("abc", nil, nil), ("-5", nil, nil), ("500000", "", Duration.milliseconds(500)),
          ] as [(String, String?, Duration?)])
    func watchdogParsing(usec: String, pid: String?, expected: Duration?) {
        #expect(SystemdNotifier.watchdogTimeout(usec: usec, watchdogPID: pid, pid: 42) == expected)
    }

    @Test("the firmware feeds the watchdog at half its timeout")
    func keepAlive() {
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"], pid: 7)
        #expect(notifier.keepAliveInterval == .seconds(15))
    }
}

@Suite("An unprovisioned box")
struct ProvisioningWaitTests {
    let catalog = BoardCatalog(searchPaths: [URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Board").path])

    @Test("a real board without its configuration waits; the sim board and a configured box do not")
    func whenNeeded() throws {
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("classbox-\(UUID())/classbox.toml").path
        #expect(try ProvisioningWait.ifUnprovisioned(board: "qemu-amd64", config: missing, catalog: catalog)?.boardName == "qemu-amd64")
        #expect(try ProvisioningWait.ifUnprovisioned(board: "sim", config: missing, catalog: catalog) == nil)
        #expect(try ProvisioningWait.ifUnprovisioned(board: nil, config: missing, catalog: catalog) == nil)
        #expect(try ProvisioningWait.ifUnprovisioned(board: "qemu-amd64", config: #filePath, catalog: catalog) == nil)
        #expect(throws: ConfigError.self) { try ProvisioningWait.ifUnprovisioned(board: "qemu-amd46", config: missing, catalog: catalog) }
    }

    @Test("it reports ready with the status, feeds the watchdog, and ends when the configuration appears")
    func readyWatchdogAndConfiguration() throws {
        let socket = try NotifySocket(abstract: true)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("classbox-wait-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = dir.appendingPathComponent("classbox.toml").path
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": socket.address, "WATCHDOG_USEC": "100000"])
        let wait = ProvisioningWait(configPath: config, boardName: "qemu-amd64", notifier: notifier, pollInterval: .seconds(1))
        let outcome = Shared<ProvisioningWait.Outcome?>(nil)
        let thread = Thread { outcome.set(wait.run(logger: Logger(label: "test"))) }
        thread.start()
        #expect(socket.receive() == "READY=1\nSTATUS=not provisioned: waiting for configuration at \(config)")
        #expect(socket.receive() == "WATCHDOG=1")
        #expect(socket.receive() == "WATCHDOG=1")   // every 50 ms: half of WATCHDOG_USEC
        FileManager.default.createFile(atPath: config, contents: Data("[box]\n".utf8))
        var last: String?
        repeat { last = socket.receive() } while last == "WATCHDOG=1"
        #expect(last == "STOPPING=1\nSTATUS=configuration installed, restarting")
        for _ in 0..<100 where outcome.get() == nil { usleep(10_000) }
        #expect(outcome.get() == .configurationAppeared)
    }
}

/// A value shared with the waiting thread.
final class Shared<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func get() -> Value { lock.lock(); defer { lock.unlock() }; return value }
    func set(_ new: Value) { lock.lock(); value = new; lock.unlock() }
}
