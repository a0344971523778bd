import BoxConfig
import Devices
import Media
import Testing
@testable import Box

@Suite("Board audio")
struct BoardAudioTests {
    func spec(rate: Int = 48000) -> AudioSpec {
        AudioSpec(backend: .alsa, captureCards: ["Speakerphone"], playbackCards: ["Speakerphone"], captureDevice: 0,
                  playbackDevice: 0, rate: rate, captureChannels: 1, micChannels: [0], micMix: .pick, playbackChannels: 2,
                  periodMs: 10, bufferPeriods: 3)
    }

    @Test("the profile's parameters reach the devices; a card without 48 kHz runs at its native rate")
    func openWithFallbackRate() throws {
        let config = try ALSAConfigTree(text: """
            pcm.mic { type plug slave { pcm { type null } rate 44100 } }
            pcm.speaker { type plug slave { pcm { type null } rate 44100 } }
            """)
        let (capture, playback) = try BoardAudio.open(spec(), captureName: "mic", playbackName: "speaker", config: config)
        #expect(playback.configuration.rate == 44100 && capture.configuration.rate == 44100)
        #expect(playback.configuration.periodFrames == 441 && playback.configuration.channels == 2)
        #expect(capture.configuration.channels == 1 && capture.configuration.bufferFrames == 3 * 441)
    }

    @Test("a board whose card is missing gets an error naming the profile key and the cards present")
    func missingCard() {
        let other = SoundCard(index: 0, id: "Headphones", name: "bcm2835 Headphones", longName: "", pcms: [
            .init(device: 0, name: "x", streams: [.playback], capabilities: []),
        ])
        #expect {
            _ = try BoardAudio.open(spec(), cards: [other])
        } throws: { error in
            let text = (error as? ALSAError)?.description ?? ""
            return text.contains("playback_cards") && text.contains("Headphones")
        }
    }

    @Test("a burst of xruns is reported once with its count")
    func monitorBursts() {
        var monitor = AudioCounterMonitor()
        let counters = AudioCounters()
        #expect(monitor.check(counters.snapshot()).isEmpty)
        counters.captureXruns.add(7, ordering: .relaxed)
        #expect(monitor.check(counters.snapshot()) == ["7 capture overrun(s)"])
        #expect(monitor.check(counters.snapshot()).isEmpty, "no new xruns, no new line")
    }
}
