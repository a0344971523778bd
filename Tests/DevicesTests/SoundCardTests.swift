import Foundation
import Testing
@testable import Devices

let usbSpeakerphone = SoundCard(index: 2, id: "Speakerphone", name: "Jabra SPEAK 410 USB", longName: "Jabra SPEAK 410 USB at usb-0000:01:00.0-1.3, full speed",
                                pcms: [.init(device: 0, name: "USB Audio", streams: [.capture, .playback], capabilities: [])])
let headphones = SoundCard(index: 0, id: "Headphones", name: "bcm2835 Headphones", longName: "bcm2835 Headphones",
                           pcms: [.init(device: 0, name: "bcm2835 Headphones", streams: [.playback], capabilities: [])])
let dongle = SoundCard(index: 1, id: "Device", name: "USB Audio Device", longName: "C-Media Electronics Inc. USB Audio Device at usb-...",
                       pcms: [.init(device: 0, name: "USB Audio", streams: [.capture, .playback], capabilities: [])])

@Suite("Sound cards by name")
struct SoundCardTests {
    @Test("the first profile name that matches a card with that direction wins, whatever the card's index")
    func preference() throws {
        let cards = [headphones, dongle, usbSpeakerphone]
        #expect(try SoundCard.resolve(names: ["Speakerphone", "Device"], device: 0, stream: .capture, among: cards) == "hw:CARD=Speakerphone,DEV=0")
        #expect(try SoundCard.resolve(names: ["Headphones"], device: 0, stream: .playback, among: cards) == "hw:CARD=Headphones,DEV=0")
        // Headphones have no capture: the next name is used.
        #expect(try SoundCard.resolve(names: ["Headphones", "c-media"], device: 0, stream: .capture, among: cards) == "hw:CARD=Device,DEV=0")
    }

    @Test("no match lists the cards that are there")
    func noMatch() {
        #expect {
            _ = try SoundCard.resolve(names: ["Speakerphone"], device: 0, stream: .capture, among: [headphones])
        } throws: { error in
            let text = (error as? ALSAError)?.description ?? ""
            return text.contains("capture_cards") && text.contains("Headphones (bcm2835 Headphones)")
        }
        #expect {
            _ = try SoundCard.resolve(names: ["x"], device: 0, stream: .playback, among: [])
        } throws: { ($0 as? ALSAError)?.description.contains("no sound cards at all") == true }
    }

    @Test("the cards listed are the kernel's cards, by index and id (none on a machine without sound drivers)")
    func listing() throws {
        // /proc/asound/cards lines look like " 0 [Loopback       ]: Loopback - Loopback"; absent without ALSA.
        let text = (try? String(contentsOfFile: "/proc/asound/cards", encoding: .utf8)) ?? ""
        let kernel = text.split(separator: "\n").compactMap { line -> (Int, String)? in
            guard let open = line.firstIndex(of: "["), let close = line.firstIndex(of: "]"),
                  let index = Int(line[..<open].trimmingCharacters(in: .whitespaces)) else { return nil }
            return (index, line[line.index(after: open)..<close].trimmingCharacters(in: .whitespaces))
        }
        let listed = SoundCard.list(probe: false)
        #expect(listed.map(\.index) == kernel.map(\.0))
        #expect(listed.map(\.id) == kernel.map(\.1))
    }

    @Test("a PCM's capabilities are probed through libasound")
    func probe() throws {
        let config = try ALSAConfigTree(text: "pcm.only44k { type plug slave { pcm { type null } rate 44100 } }")
        let caps = try #require(PCMCapabilities.probe(name: "only44k", stream: .playback, config: config))
        #expect(caps.rates == [44100])
        #expect(caps.formats.contains(.s16) && caps.minChannels == 1)
    }
}
