import Synchronization
#if canImport(Glibc)
internal import Glibc
#endif

/// SIGTERM (systemd stopping the service) and SIGINT (Ctrl-C) as a flag the box's run loop polls:
/// the handler only sets an atomic, so the lesson stops its threads and closes its devices in order.
public enum StopSignal {
    private static let flag = Atomic<Bool>(false)

    /// Installs the handlers (once per process; later calls do nothing more).
    public static func install() {
        _ = flag.load(ordering: .relaxed)  // initialise the global before a handler can touch it
        let handler: @convention(c) (Int32) -> Void = { _ in StopSignal.flag.store(true, ordering: .relaxed) }
        signal(SIGTERM, handler)
        signal(SIGINT, handler)
    }

    /// True once a stop was requested.
    public static var requested: Bool { flag.load(ordering: .relaxed) }
}
