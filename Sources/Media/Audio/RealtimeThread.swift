#if canImport(Glibc)
internal import Glibc
#endif

/// A thread for one direction of the audio path: SCHED_FIFO at the board's priority where the system
/// permits it (root, or a service with CAP_SYS_NICE / an rtprio limit), an ordinary thread otherwise.
final class RealtimeThread {
    private var thread = pthread_t()
    /// True when the thread got SCHED_FIFO.
    let isRealtime: Bool

    private final class Body {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }

    /// Starts `body` on a new thread; `name` is for the reader of the code and of `ps -L` one day.
    init(name: String, priority: Int32?, body: @escaping () -> Void) {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        var realtime = false
        if let priority {
            var parameters = sched_param()
            parameters.sched_priority = priority
            realtime = pthread_attr_setinheritsched(&attributes, Int32(PTHREAD_EXPLICIT_SCHED)) == 0
                && pthread_attr_setschedpolicy(&attributes, SCHED_FIFO) == 0
                && pthread_attr_setschedparam(&attributes, &parameters) == 0
        }
        let context = Unmanaged.passRetained(Body(body)).toOpaque()
        let entry: @convention(c) (UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? = { raw in
            Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue().run()
            return nil
        }
        var created = pthread_create(&thread, &attributes, entry, context)
        if created == EPERM && realtime {
            // Not permitted to run real-time here: run as an ordinary thread rather than not at all.
            pthread_attr_setinheritsched(&attributes, Int32(PTHREAD_INHERIT_SCHED))
            realtime = false
            created = pthread_create(&thread, &attributes, entry, context)
        }
        precondition(created == 0, "pthread_create failed with \(created)")
        isRealtime = realtime
    }

    /// Waits for the thread to return.
    func join() { pthread_join(thread, nil) }

    /// Locks the process's memory so page faults cannot stall the audio threads; false when not permitted.
    static func lockMemory() -> Bool { mlockall(MCL_CURRENT | MCL_FUTURE) == 0 }
}
