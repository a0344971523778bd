import Devices
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import Media

@Suite("Direct-mode pump: a lead serving two rooms over loopback", .serialized)
struct DirectAudioPumpTests {
    func sine(_ frequency: Double, _ index: Int, count: Int = 960) -> [Float] {
        (0..<count).map { Float(0.25 * sin(2 * Double.pi * frequency * Double(index * count + $0) / 48000)) }
    }

    @Test("the lead's loudspeaker mixes both rooms, and each room hears the teacher and the other room but never itself")
    func mixMinus() throws {
        let local = UDPEndpoint(host: "127.0.0.1", port: 0), nowhere = UDPEndpoint(host: "127.0.0.1", port: 9)
        let leadRTP = try UDPSocket(local: local, peer: nowhere), leadRTCP = try UDPSocket(local: local, peer: nowhere)
        let room1 = try UDPSocket(local: local, peer: nowhere), room2 = try UDPSocket(local: local, peer: nowhere)
        var opus = OpusSettings()
        opus.frameMs = 20
        let settings = AudioSessionSettings(opus: opus, jitterMinMs: 20, jitterMaxMs: 100, srtpMaster: (0..<30).map { UInt8($0) })
        let toRoom1 = try AudioSession(peerID: "room1", settings: settings, socket: leadRTP, ssrc: 11)
        let toRoom2 = try AudioSession(peerID: "room2", settings: settings, socket: leadRTP, ssrc: 12)
        toRoom1.setRemote(UDPAddress(ip: 0x7F00_0001, port: room1.local.port))
        toRoom2.setRemote(UDPAddress(ip: 0x7F00_0001, port: room2.local.port))
        let lead = UDPAddress(ip: 0x7F00_0001, port: leadRTP.local.port)
        let fromRoom1 = try AudioSession(peerID: "lead", settings: settings, socket: room1, ssrc: 21)
        let fromRoom2 = try AudioSession(peerID: "lead", settings: settings, socket: room2, ssrc: 22)
        fromRoom1.setRemote(lead)
        fromRoom2.setRemote(lead)

        let mic = SPSCRing(minimumCapacity: 48000), speaker = SPSCRing(minimumCapacity: 48000)
        let pump = DirectAudioPump(sessions: [toRoom1, toRoom2], rtp: leadRTP, rtcp: leadRTCP, capture: mic, playback: speaker,
                                   counters: AudioCounters(), playbackPeriod: 480, realtimePriority: 40)  // as on a box
        pump.start()
        defer { pump.stop() }

        // 3 s in real time, 20 ms at a time: the teacher says 200 Hz, room 1 says 440 Hz, room 2 1000 Hz.
        var heardByLead: [Float] = [], heard1: [Float] = [], heard2: [Float] = []
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 2048, alignment: 16)
        defer { buffer.deallocate() }
        var drain = [Float](repeating: 0, count: 480)
        var source = UDPAddress(ip: 0, port: 0)
        let start = Date()
        for step in 0..<300 {
            // The loudspeaker takes a 10 ms period every 10 ms, as the playback thread does.
            let n = drain.withUnsafeMutableBufferPointer { speaker.read(into: $0) }
            heardByLead += drain[0..<n]
            let due = start.addingTimeInterval(Double(step + 1) * 0.01)
            defer { if due > Date() { usleep(UInt32(due.timeIntervalSinceNow * 1e6)) } }
            guard step % 2 == 0 else { continue }
            let i = step / 2
            sine(200, i).withUnsafeBufferPointer { _ = mic.write($0) }
            sine(440, i).withUnsafeBufferPointer { fromRoom1.send($0) }
            sine(1000, i).withUnsafeBufferPointer { fromRoom2.send($0) }
            for (socket, session) in [(room1, fromRoom1), (room2, fromRoom2)] {
                var got = socket.receive(into: buffer, timeoutMs: 0, from: &source)
                while got > 0 {
                    session.acceptRTP(buffer, length: got, now: Date().timeIntervalSince(start), nanoseconds: Int64(Date().timeIntervalSince(start) * 1e9))
                    got = socket.receive(into: buffer, timeoutMs: 0, from: &source)
                }
                session.pullFrame()
            }
            heard1 += UnsafeBufferPointer(start: fromRoom1.decoded, count: 960)
            heard2 += UnsafeBufferPointer(start: fromRoom2.decoded, count: 960)
        }
        let late = { (x: [Float]) in Array(x[(x.count / 3)...]) }  // after the buffers settled
        #expect(toneShare(late(heardByLead), frequency: 440) > 0.2, "the teacher hears room 1")
        #expect(toneShare(late(heardByLead), frequency: 1000) > 0.2, "the teacher hears room 2")
        #expect(toneShare(late(heard1), frequency: 200) > 0.2, "room 1 hears the teacher")
        #expect(toneShare(late(heard1), frequency: 1000) > 0.1, "room 1 hears room 2")
        #expect(toneShare(late(heard1), frequency: 440) < 0.02, "room 1 does not hear itself")
        #expect(toneShare(late(heard2), frequency: 200) > 0.2, "room 2 hears the teacher")
        #expect(toneShare(late(heard2), frequency: 440) > 0.1, "room 2 hears room 1")
        #expect(toneShare(late(heard2), frequency: 1000) < 0.02, "room 2 does not hear itself")
        usleep(1_200_000)  // one report interval
        let snapshot = pump.snapshot()
        #expect(snapshot.sessions.map(\.peer) == ["room1", "room2"])
        #expect(snapshot.sessions.allSatisfy { $0.packetsReceived > 100 && $0.packetsSent > 100 })
        #expect(snapshot.unknownSourcePackets == 0)
    }

    @Test("on the engine's period clock the loudspeaker gets each period just before the card takes it, not a period early")
    func justInTime() throws {
        let local = UDPEndpoint(host: "127.0.0.1", port: 0), nowhere = UDPEndpoint(host: "127.0.0.1", port: 9)
        let leadRTP = try UDPSocket(local: local, peer: nowhere), leadRTCP = try UDPSocket(local: local, peer: nowhere)
        let room = try UDPSocket(local: local, peer: nowhere)
        var opus = OpusSettings()
        opus.frameMs = 10
        let settings = AudioSessionSettings(opus: opus, jitterMinMs: 20, jitterMaxMs: 100, srtpMaster: nil)
        let toRoom = try AudioSession(peerID: "room", settings: settings, socket: leadRTP, ssrc: 31)
        toRoom.setRemote(UDPAddress(ip: 0x7F00_0001, port: room.local.port))
        let fromRoom = try AudioSession(peerID: "lead", settings: settings, socket: room, ssrc: 32)
        fromRoom.setRemote(UDPAddress(ip: 0x7F00_0001, port: leadRTP.local.port))
        let counters = AudioCounters()
        let mic = SPSCRing(minimumCapacity: 48000), speaker = SPSCRing(minimumCapacity: 48000)
        let pump = DirectAudioPump(sessions: [toRoom], rtp: leadRTP, rtcp: leadRTCP, capture: mic, playback: speaker,
                                   counters: counters, playbackPeriod: 240, realtimePriority: 40)
        pump.start()
        defer { pump.stop() }

        // The playback thread's cycle with 5 ms periods: wait for the card, stamp the period clock, take
        // the next period from the ring. The room sends a 10 ms frame every other period.
        // On a real-time thread, as the engine's playback thread is; a period where this "card" itself
        // woke more than a millisecond late (a loaded test machine) says nothing about the pump.
        nonisolated(unsafe) var full = 0, short = 0, between: [Int] = []
        let tones = (0..<200).map { sine(440, $0, count: 480) }
        let card = RealtimeThread(name: "test-card", priority: 45) {
            var period = [Float](repeating: 0, count: 240)
            between.reserveCapacity(400)
            let start = monotonicNanoseconds() + 5_000_000
            for k in 0..<400 {
                let due = start + Int64(k) * 5_000_000
                var deadline = timespec(tv_sec: Int(due / 1_000_000_000), tv_nsec: Int(due % 1_000_000_000))
                while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, nil) == EINTR {}
                let woke = monotonicNanoseconds()
                counters.playbackCycleNanoseconds.store(woke, ordering: .releasing)
                let got = period.withUnsafeMutableBufferPointer { speaker.read(into: $0) }
                if got < 240 { counters.playbackStarvedFrames.add(240 - got, ordering: .relaxed) }  // as the engine counts
                if k >= 100 && woke - due < 1_000_000 { if got == 240 { full += 1 } else { short += 1 } }
                if k % 2 == 0 { tones[k / 2].withUnsafeBufferPointer { fromRoom.send($0) } }
                // Half a period later: what waits in the ring then is the playout queue's latency.
                let half = due + 2_500_000
                var middle = timespec(tv_sec: Int(half / 1_000_000_000), tv_nsec: Int(half % 1_000_000_000))
                while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &middle, nil) == EINTR {}
                if k >= 100 { between.append(speaker.readable) }
            }
        }
        card.join()
        let meanBetween = Double(between.reduce(0, +)) / Double(max(1, between.count))
        #expect(full + short >= 150, "the test's card woke on time often enough to judge (\(full + short) of 300)")
        #expect(Double(full) >= 0.95 * Double(full + short), "the card found its period ready \(full) of \(full + short) times")
        // Kept a period and a chunk ahead (the pump without the clock), 360 samples would wait half a
        // period after the card took its period. Just in time, nothing waits then while the fill lead is
        // under half a period; a debug build on a loaded machine may have widened the lead (a period
        // found short adds a millisecond), and then the next period waits, but never more.
        pump.stop()  // (its counters are the thread's own until then)
        let lead = pump.playbackLeadSamples
        #expect(lead <= 360, "the fill lead stays within a period and a chunk: \(lead) samples")
        #expect(meanBetween < 300, "half a period after the card took its period, \(meanBetween) samples waited on average")
        if lead <= 96 { #expect(meanBetween < 120, "with a \(lead)-sample lead, \(meanBetween) samples waited at mid-period") }
    }

    @Test("a card whose timestamps are not on the monotonic clock gets its loudspeaker filled a period and a chunk ahead")
    func foreignClock() throws {
        let local = UDPEndpoint(host: "127.0.0.1", port: 0), nowhere = UDPEndpoint(host: "127.0.0.1", port: 9)
        let rtp = try UDPSocket(local: local, peer: nowhere), rtcp = try UDPSocket(local: local, peer: nowhere)
        var opus = OpusSettings()
        opus.frameMs = 10
        let session = try AudioSession(peerID: "room", settings: AudioSessionSettings(opus: opus, jitterMinMs: 20, jitterMaxMs: 100, srtpMaster: nil),
                                       socket: rtp, ssrc: 41)
        let counters = AudioCounters()
        // CLOCK_REALTIME, as a card left on gettimeofday timestamps would report: decades ahead of CLOCK_MONOTONIC.
        var wall = timespec()
        clock_gettime(CLOCK_REALTIME, &wall)
        counters.playbackCycleNanoseconds.store(Int64(wall.tv_sec) * 1_000_000_000, ordering: .releasing)
        let mic = SPSCRing(minimumCapacity: 4800), speaker = SPSCRing(minimumCapacity: 4800)
        let pump = DirectAudioPump(sessions: [session], rtp: rtp, rtcp: rtcp, capture: mic, playback: speaker,
                                   counters: counters, playbackPeriod: 240)
        pump.start()
        usleep(100_000)
        pump.stop()
        #expect(speaker.readable == 240 + 120, "the ring was kept a period and a 2.5 ms chunk ahead: \(speaker.readable)")
        #expect(pump.playbackLeadSamples == 360)
    }
}
