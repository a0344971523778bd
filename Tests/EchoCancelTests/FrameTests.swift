import Testing
import EchoCancel

@Suite("Echo canceller frames")
struct FrameTests {
    @Test("a frame is 10 ms at the supported rates and nothing elsewhere", arguments: [
        (16000, 160), (48000, 480), (44100, nil), (8000, nil),
    ] as [(Int, Int?)])
    func frameLength(rate: Int, samples: Int?) {
        #expect(EchoCancelFrame.samples(atRate: rate) == samples)
    }
}
