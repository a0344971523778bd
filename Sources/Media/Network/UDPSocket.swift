#if canImport(Glibc)
internal import Glibc
#endif

/// A network call failed: which one, on which address, and the error number.
public struct NetworkError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The system call.
    public var call: String
    /// The local or remote address concerned.
    public var address: String
    /// The error number.
    public var code: Int32
    public var description: String { "\(call) \(address): \(String(cString: strerror(code)))" }
}

/// An IPv4 UDP endpoint.
public struct UDPEndpoint: Sendable, Equatable, CustomStringConvertible {
    /// Dotted-quad address.
    public var host: String
    /// Port.
    public var port: UInt16

    /// An endpoint from its parts.
    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    public var description: String { "\(host):\(port)" }

    /// Resolves `host` (a dotted quad or a host name, IPv4) to an address; nil while it cannot be
    /// resolved (no DNS yet on a rural line: the caller retries).
    public func resolve() -> UDPAddress? {
        if let address = socketAddress() { return UDPAddress(address) }
        var hints = addrinfo()
        hints.ai_family = AF_INET
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>? = nil
        guard getaddrinfo(host, nil, &hints, &result) == 0, let first = result else { return nil }
        defer { freeaddrinfo(result) }
        guard let raw = first.pointee.ai_addr else { return nil }
        var address = raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee }
        address.sin_port = port.bigEndian
        return UDPAddress(address)
    }

    func socketAddress() -> sockaddr_in? {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { return nil }
        return address
    }
}

/// A resolved IPv4 address and port, packed so it can cross threads in one atomic word.
public struct UDPAddress: Sendable, Hashable, CustomStringConvertible {
    /// IPv4 address in host byte order.
    public var ip: UInt32
    /// Port.
    public var port: UInt16

    /// An address from its parts (host byte order).
    public init(ip: UInt32, port: UInt16) {
        self.ip = ip
        self.port = port
    }

    init(_ address: sockaddr_in) {
        ip = UInt32(bigEndian: address.sin_addr.s_addr)
        port = UInt16(bigEndian: address.sin_port)
    }

    /// The same host on another port (RTCP on RTP + 1).
    public func with(port: UInt16) -> UDPAddress { UDPAddress(ip: ip, port: port) }

    /// ip << 16 | port; never 0 for a real address.
    public var packed: UInt64 { UInt64(ip) << 16 | UInt64(port) }
    /// The address packed by `packed`, nil for 0.
    public init?(packed: UInt64) {
        guard packed != 0 else { return nil }
        ip = UInt32(truncatingIfNeeded: packed >> 16)
        port = UInt16(truncatingIfNeeded: packed)
    }

    var socketAddress: sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = ip.bigEndian
        return address
    }

    public var description: String {
        "\(ip >> 24).\((ip >> 16) & 255).\((ip >> 8) & 255).\(ip & 255):\(port)"
    }
}

/// A UDP socket for RTP and RTCP: bound to a local port, sending to a fixed peer; receive waits at most
/// a given time so a media thread can check whether it should stop. `send` and `receive` allocate nothing.
public final class UDPSocket: @unchecked Sendable {
    // One sending thread and one receiving thread may use it at once (the kernel serialises them).
    private let fd: Int32
    private var peer: sockaddr_in
    /// The local endpoint it is bound to.
    public let local: UDPEndpoint

    /// Binds `local` (port 0: any free port) and sends to `peer`.
    public init(local: UDPEndpoint, peer: UDPEndpoint) throws(NetworkError) {
        guard var bindAddress = local.socketAddress(), let peerAddress = peer.socketAddress() else {
            throw NetworkError(call: "inet_pton", address: "\(local) / \(peer)", code: EINVAL)
        }
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw NetworkError(call: "socket", address: local.description, code: errno) }
        let bound = withUnsafePointer(to: &bindAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else {
            let code = errno
            close(fd)
            throw NetworkError(call: "bind", address: local.description, code: code)
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        self.fd = fd
        self.peer = peerAddress
        self.local = UDPEndpoint(host: local.host, port: UInt16(bigEndian: actual.sin_port))
    }

    deinit { close(fd) }

    /// Sends one datagram to the peer; returns false when the kernel refused it (counted by the caller).
    @discardableResult
    public func send(_ bytes: UnsafeRawBufferPointer) -> Bool {
        withUnsafePointer(to: &peer) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT), $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        } == bytes.count
    }

    /// Sends one datagram to `destination` instead of the fixed peer (a lead box serving several rooms
    /// from one port); returns false when the kernel refused it (no route yet, for instance).
    @discardableResult
    public func send(_ bytes: UnsafeRawBufferPointer, to destination: UDPAddress) -> Bool {
        var address = destination.socketAddress
        return withUnsafePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT), $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        } == bytes.count
    }

    /// Waits up to `timeoutMs` for a datagram and says where it came from; returns its length, 0 on
    /// timeout, or -1 on error (ICMP errors such as "port unreachable" included: the caller goes on).
    public func receive(into buffer: UnsafeMutableRawBufferPointer, timeoutMs: Int32, from source: inout UDPAddress) -> Int {
        receive(into: buffer, timeoutNanoseconds: Int64(timeoutMs) * 1_000_000, from: &source)
    }

    /// Waits up to about `timeoutNanoseconds` for a datagram and says where it came from; returns its
    /// length, 0 on timeout, or -1 on error. Finer than poll's milliseconds, for a thread that keeps time
    /// with the sound card's periods: whole milliseconds are waited in poll, and a last part under a
    /// millisecond in a sleep (a datagram arriving then waits in the socket for that part).
    public func receive(into buffer: UnsafeMutableRawBufferPointer, timeoutNanoseconds: Int64, from source: inout UDPAddress) -> Int {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let wait = max(0, timeoutNanoseconds)
        var ready: Int32
        if wait >= 1_000_000 {
            ready = poll(&poller, 1, Int32(min(wait / 1_000_000, 1000)))
        } else {
            if wait > 0 {
                var pause = timespec(tv_sec: 0, tv_nsec: Int(wait)), rest = timespec()
                while nanosleep(&pause, &rest) != 0 && errno == EINTR { pause = rest }
            }
            ready = poll(&poller, 1, 0)
        }
        guard ready > 0 else { return ready == 0 ? 0 : -1 }
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let n = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                recvfrom(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT), $0, &length)
            }
        }
        if n >= 0 { source = UDPAddress(address) }
        return n
    }

    /// Waits up to `timeoutMs` for a datagram; returns its length, 0 on timeout, or -1 on error.
    public func receive(into buffer: UnsafeMutableRawBufferPointer, timeoutMs: Int32) -> Int {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&poller, 1, timeoutMs)
        guard ready > 0 else { return ready == 0 ? 0 : -1 }
        return recv(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT))
    }
}
