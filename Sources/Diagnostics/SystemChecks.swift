import BoxConfig
import Foundation
import Media
#if canImport(Glibc)
import Glibc
#endif

/// The network and system checks.
public enum SystemChecks {
    // MARK: Network

    /// Reachability, round-trip time, jitter and loss to each configured peer (a bounded UDP probe to
    /// its audio port, answered by a box that echoes probes), TCP reachability of the hub, name
    /// resolution, and whether the clock is synchronised.
    public static let network = DiagnosticCheck(id: "network", title: "Network", timeoutSeconds: 30) { check, context in
        var m: [Measurement] = []
        var problems: [(String, String)] = [], failures: [(String, String)] = [], good: [String] = []
        let sync = clockSynchronised()
        m.append(Measurement("clock_synchronised", text: sync.map { $0 ? "yes" : "no" } ?? "unknown (no systemd-timesyncd status)"))
        for peer in context.config.peers {
            guard let address = resolve(peer.address) else {
                failures.append(("the name of \(peer.id) (\(peer.address)) does not resolve",
                                 "Check the box's DNS server (network settings) and the peer's address in classbox.toml."))
                m.append(Measurement("\(peer.id)_address", text: "\(peer.address): does not resolve"))
                continue
            }
            m.append(Measurement("\(peer.id)_address", text: address == peer.address ? address : "\(peer.address) = \(address)"))
            let probe = udpProbe(host: address, port: UInt16(clamping: peer.audioPort), count: 10, seconds: context.networkProbeSeconds)
            if let error = probe.error {
                failures.append(("the box cannot send to \(peer.id) (\(error))", "Check the box's network cable or Wi-Fi and its address."))
                continue
            }
            if probe.received == 0 {
                problems.append(("\(peer.id) did not answer the network test", "Check that the other classroom's box is on and connected; a firewall may drop UDP port \(peer.audioPort)."))
                m.append(Measurement("\(peer.id)_loss", 100, "%"))
                continue
            }
            let loss = Double(probe.sent - probe.received) / Double(probe.sent) * 100
            m.append(Measurement("\(peer.id)_rtt", probe.rttMs, "ms"))
            m.append(Measurement("\(peer.id)_jitter", probe.jitterMs, "ms"))
            m.append(Measurement("\(peer.id)_loss", loss, "%"))
            if loss > 5 || probe.rttMs > 200 || probe.jitterMs > 40 {
                problems.append((String(format: "the connection to %@ is poor (%.0f ms, %.0f%% lost)", peer.id, probe.rttMs, loss),
                                 "Use a cable instead of Wi-Fi, or ask the county about the school's internet line."))
            } else {
                good.append(String(format: "%@ answers in %.0f ms", peer.id, probe.rttMs))
            }
        }
        for (what, url) in [("hub", context.config.control?.broker), ("media server", context.config.janus?.url)] {
            guard let url, let target = hostAndPort(url) else { continue }
            guard let address = resolve(target.host) else {
                failures.append(("the \(what)'s name \(target.host) does not resolve", "Check the box's DNS server and the \(what)'s address in classbox.toml."))
                continue
            }
            let start = Date()
            if let error = tcpConnect(host: address, port: target.port, timeoutMs: 3000) {
                failures.append(("the \(what) \(target.host):\(target.port) cannot be reached (\(error))", "Check the school's internet connection and firewall (TCP port \(target.port))."))
            } else {
                let ms = Date().timeIntervalSince(start) * 1000
                m.append(Measurement("\(what.replacingOccurrences(of: " ", with: "_"))_connect", ms, "ms"))
                good.append(String(format: "the %@ answers (%.0f ms)", what, ms))
            }
        }
        if sync == false {
            problems.append(("the box's clock is not synchronised", "Check that the network allows NTP (UDP port 123); timetabled lessons start on the box's clock."))
        }
        let nothing = context.config.peers.isEmpty && context.config.control == nil && context.config.janus == nil
        if !failures.isEmpty {
            return check.result(.fail, "Network: " + (failures + problems).map(\.0).joined(separator: "; ") + ".",
                                remedy: (failures + problems).map(\.1).joined(separator: " "), m)
        }
        if !problems.isEmpty {
            return check.result(.warn, "Network: " + problems.map(\.0).joined(separator: "; ") + ".", remedy: problems.map(\.1).joined(separator: " "), m)
        }
        if nothing {
            return check.result(.skip, "Skipped: no other classroom or hub is configured (clock synchronised: \(sync.map { $0 ? "yes" : "no" } ?? "unknown")).", m)
        }
        return check.result(.pass, "The other classroom\(context.config.peers.count > 1 ? "s are" : " is") reachable: " + good.joined(separator: ", ") + ".", m)
    }

    /// The result of a UDP probe.
    public struct ProbeResult: Sendable, Equatable {
        /// Probes sent.
        public var sent = 0
        /// Answers received.
        public var received = 0
        /// Mean round-trip time in ms.
        public var rttMs = 0.0
        /// Mean absolute difference of consecutive round-trip times in ms.
        public var jitterMs = 0.0
        /// Why nothing could be sent.
        public var error: String?
    }

    /// Sends `count` probes 50 ms apart to host:port and counts the echoes (the same bytes sent back),
    /// waiting at most `seconds` in all.
    public static func udpProbe(host: String, port: UInt16, count: Int, seconds: Double) -> ProbeResult {
        var result = ProbeResult()
        let socket: UDPSocket
        do { socket = try UDPSocket(local: UDPEndpoint(host: "0.0.0.0", port: 0), peer: UDPEndpoint(host: host, port: port)) } catch {
            result.error = error.description
            return result
        }
        let start = DispatchTime.now().uptimeNanoseconds
        let deadline = start + UInt64(seconds * 1e9)
        var sentAt = [UInt64](repeating: 0, count: count)
        var rtts: [Double] = []
        var seen = Set<Int>()
        var buffer = [UInt8](repeating: 0, count: 64)
        var next = 0
        while DispatchTime.now().uptimeNanoseconds < deadline && seen.count < count {
            let now = DispatchTime.now().uptimeNanoseconds
            if next < count && now >= start + UInt64(next) * 50_000_000 {
                var packet = Array("CBXPROBE".utf8) + withUnsafeBytes(of: UInt32(next).bigEndian) { Array($0) }
                sentAt[next] = now
                if packet.withUnsafeMutableBytes({ socket.send(UnsafeRawBufferPointer($0)) }) { result.sent += 1 }
                next += 1
                continue
            }
            let n = buffer.withUnsafeMutableBytes { socket.receive(into: $0, timeoutMs: 10) }
            guard n == 12, Array(buffer[0..<8]) == Array("CBXPROBE".utf8) else { continue }
            let sequence = Int(UInt32(buffer[8]) << 24 | UInt32(buffer[9]) << 16 | UInt32(buffer[10]) << 8 | UInt32(buffer[11]))
            guard sequence < next, !seen.contains(sequence) else { continue }
            seen.insert(sequence)
            rtts.append(Double(DispatchTime.now().uptimeNanoseconds - sentAt[sequence]) / 1e6)
        }
        result.sent = max(result.sent, next)
        result.received = rtts.count
        if !rtts.isEmpty {
            result.rttMs = rtts.reduce(0, +) / Double(rtts.count)
            result.jitterMs = rtts.count > 1 ? zip(rtts.dropFirst(), rtts).map { abs($0 - $1) }.reduce(0, +) / Double(rtts.count - 1) : 0
        }
        return result
    }

    /// The IPv4 address of `name` (itself when it is one), or nil when it does not resolve.
    static func resolve(_ name: String) -> String? {
        var probe = in_addr()
        if inet_pton(AF_INET, name, &probe) == 1 { return name }
        var hints = addrinfo()
        hints.ai_family = AF_INET
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(name, nil, &hints, &list) == 0, let first = list else { return nil }
        defer { freeaddrinfo(list) }
        guard let address = first.pointee.ai_addr else { return nil }
        var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        var sin = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
        guard inet_ntop(AF_INET, &sin, &text, socklen_t(text.count)) != nil else { return nil }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The host and port of `mqtts://host:port` or `https://host/path`.
    static func hostAndPort(_ url: String) -> (host: String, port: UInt16)? {
        guard let components = URLComponents(string: url), let host = components.host else { return nil }
        let defaults = ["mqtt": 1883, "mqtts": 8883, "http": 80, "https": 443, "ws": 80, "wss": 443]
        guard let port = components.port ?? defaults[components.scheme ?? ""] else { return nil }
        return (host, UInt16(clamping: port))
    }

    /// Connects over TCP within `timeoutMs`; nil on success, else why not.
    static func tcpConnect(host: String, port: UInt16, timeoutMs: Int32) -> String? {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { return "not an IPv4 address" }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return String(cString: strerror(errno)) }
        defer { close(fd) }
        let rc = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if rc == 0 { return nil }
        guard errno == EINPROGRESS else { return String(cString: strerror(errno)) }
        var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        guard poll(&poller, 1, timeoutMs) == 1 else { return "no answer within \(timeoutMs) ms" }
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
        return error == 0 ? nil : String(cString: strerror(error))
    }

    /// Whether systemd-timesyncd (or another NTP client systemd knows) has synchronised the clock.
    static func clockSynchronised() -> Bool? {
        if FileManager.default.fileExists(atPath: "/run/systemd/timesync/synchronized") { return true }
        // timedatectl asks systemd over D-Bus: without systemd running it has nothing to say.
        guard FileManager.default.fileExists(atPath: "/run/systemd/system"), let out = runTool("timedatectl", ["show", "-p", "NTPSynchronized", "--value"]) else { return nil }
        switch out.trimmingCharacters(in: .whitespacesAndNewlines) {
        case "yes": return true
        case "no": return false
        default: return nil
        }
    }

    /// Runs a system tool with a 3-second limit; its stdout when it exits with 0.
    static func runTool(_ tool: String, _ arguments: [String]) -> String? {
        guard let path = ["/usr/bin/", "/bin/", "/usr/sbin/", "/sbin/"].map({ $0 + tool }).first(where: { FileManager.default.isExecutableFile(atPath: $0) }),
              let result = Subprocess.run(path, arguments, timeoutSeconds: 3), result.status == 0, !result.timedOut else { return nil }
        return result.stdout
    }

    // MARK: System

    /// CPU temperature and throttling, free disk on the data partition, memory, uptime, and the
    /// service's last start and restarts.
    public static let system = DiagnosticCheck(id: "system", title: "System", timeoutSeconds: 15) { check, context in
        var m: [Measurement] = []
        var warnings: [(String, String)] = [], failures: [(String, String)] = []
        if let temperature = cpuTemperature() {
            m.append(Measurement("cpu_temperature", temperature, "°C"))
            if temperature >= 85 { failures.append((String(format: "the processor is too hot (%.0f °C)", temperature), "Let air reach the box: do not cover it, keep it out of the sun, check its fan.")) }
            else if temperature >= 75 { warnings.append((String(format: "the processor is hot (%.0f °C)", temperature), "Let air reach the box: do not cover it, keep it out of the sun.")) }
        } else {
            m.append(Measurement("cpu_temperature", text: "not exposed by this board"))
        }
        if let throttled = readText("/sys/devices/platform/soc/soc:firmware/get_throttled").flatMap({ Int($0, radix: 16) }) {
            m.append(Measurement("throttled", text: String(format: "0x%x", throttled)))
            if throttled & 0x1 != 0 { failures.append(("the power supply is too weak (under-voltage)", "Use the board's official power supply and a short cable.")) }
            if throttled & 0x6 != 0 { warnings.append(("the processor is slowed down to protect itself", "Give the box air and a good power supply.")) }
        } else {
            m.append(Measurement("throttled", text: "not exposed by this board"))
        }
        let data = existingParent(of: context.dataDirectory)
        if let attributes = try? FileManager.default.attributesOfFileSystem(forPath: data),
           let free = (attributes[.systemFreeSize] as? NSNumber)?.doubleValue, let size = (attributes[.systemSize] as? NSNumber)?.doubleValue, size > 0 {
            let freeMB = free / 1_048_576
            m.append(Measurement("data_free", freeMB, "MB"))
            m.append(Measurement("data_free_share", free / size * 100, "%"))
            m.append(Measurement("data_path", text: data))
            if freeMB < 50 { failures.append((String(format: "the data partition is full (%.0f MB free)", freeMB), "Delete old recordings and reports under \(data), or ask the county to reflash the box.")) }
            else if freeMB < 500 || free / size < 0.1 { warnings.append((String(format: "the data partition is nearly full (%.0f MB free)", freeMB), "Delete old recordings and reports under \(data).")) }
        }
        let memory = meminfo()
        if let total = memory["MemTotal"], let available = memory["MemAvailable"] {
            m.append(Measurement("memory_total", total / 1024, "MB"))
            m.append(Measurement("memory_available", available / 1024, "MB"))
            if available / 1024 < 100 { warnings.append((String(format: "little memory is free (%.0f MB)", available / 1024), "Restart the box; if it happens again, report it with this report.")) }
        }
        if let uptime = readText("/proc/uptime")?.split(separator: " ").first.flatMap({ Double($0) }) {
            m.append(Measurement("uptime", uptime / 3600, "h"))
        }
        if let load = readText("/proc/loadavg")?.split(separator: " ").first.flatMap({ Double($0) }) {
            m.append(Measurement("load", load, ""))
        }
        if FileManager.default.fileExists(atPath: "/run/systemd/system"),
           let show = runTool("systemctl", ["show", "classbox.service", "-p", "ActiveState,NRestarts,ExecMainStartTimestamp,Result"]) {
            var fields: [String: String] = [:]
            for line in show.split(separator: "\n") {
                let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
                if parts.count == 2 { fields[parts[0]] = parts[1] }
            }
            m.append(Measurement("service", text: fields["ActiveState"] ?? "unknown"))
            if let started = fields["ExecMainStartTimestamp"], !started.isEmpty { m.append(Measurement("service_started", text: started)) }
            if let restarts = fields["NRestarts"].flatMap({ Int($0) }) {
                m.append(Measurement("service_restarts", Double(restarts), ""))
                if restarts > 0 { warnings.append(("the classbox service restarted \(restarts) time(s) since the box started", "Look at `journalctl -u classbox` for the reason, or send this report to support.")) }
            }
            if let outcome = fields["Result"], outcome != "success" { warnings.append(("the service's last run ended with '\(outcome)'", "Look at `journalctl -u classbox`.")) }
        } else {
            m.append(Measurement("service", text: "not checked: systemd is not running here"))
        }
        if !failures.isEmpty {
            return check.result(.fail, "System: " + (failures + warnings).map(\.0).joined(separator: "; ") + ".", remedy: (failures + warnings).map(\.1).joined(separator: " "), m)
        }
        if !warnings.isEmpty {
            return check.result(.warn, "System: " + warnings.map(\.0).joined(separator: "; ") + ".", remedy: warnings.map(\.1).joined(separator: " "), m)
        }
        let temperatureText = m.first { $0.name == "cpu_temperature" }?.value.map { String(format: ", %.0f °C", $0) } ?? ""
        let freeText = m.first { $0.name == "data_free" }?.value.map { String(format: ", %.0f MB free for data", $0) } ?? ""
        return check.result(.pass, "The box is healthy\(temperatureText)\(freeText).", m)
    }

    static func readText(_ path: String) -> String? {
        (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The highest temperature of the CPU's thermal zones in °C.
    static func cpuTemperature() -> Double? {
        let base = "/sys/class/thermal"
        let zones = ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []).filter { $0.hasPrefix("thermal_zone") }
        let readings = zones.compactMap { readText("\(base)/\($0)/temp").flatMap(Double.init) }.map { $0 / 1000 }
        return readings.max()
    }

    static func meminfo() -> [String: Double] {
        var result: [String: Double] = [:]
        for line in (readText("/proc/meminfo") ?? "").split(separator: "\n") {
            let parts = line.split(whereSeparator: { $0 == ":" || $0 == " " })
            if parts.count >= 2, let kb = Double(parts[1]) { result[String(parts[0])] = kb }
        }
        return result
    }

    static func existingParent(of path: String) -> String {
        var url = URL(fileURLWithPath: path)
        while !FileManager.default.fileExists(atPath: url.path) && url.path != "/" { url.deleteLastPathComponent() }
        return url.path
    }
}
