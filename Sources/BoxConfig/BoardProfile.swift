/// A supported board: what the image builder installs and how the firmware finds its sound card,
/// camera and GPIO lines, all by name, never by index (USB card numbers and gpiochip numbers move).
public struct BoardProfile: Sendable, Equatable {
    /// The profile's name, equal to its file name without `.toml` (`rpi4`, `qemu-amd64`, `sim`).
    public var name: String
    /// A line for people: which hardware this is.
    public var summary: String
    /// The CPU architecture of the image and firmware binary; nil for the host-only `sim` board.
    public var architecture: Architecture?
    /// What the image builder puts on the disk for this board; nil for the host-only `sim` board.
    public var image: ImageSpec?
    /// Where the classroom's sound goes in and out.
    public var audio: AudioSpec
    /// How the classroom camera is found and what is asked of it.
    public var camera: CameraSpec
    /// The raise-hand button and its LED.
    public var gpio: GPIOSpec
    /// Budgets tuned to the board's CPU.
    public var performance: PerformanceSpec
    /// The simulated classroom, for the `sim` backends only.
    public var simRoom: SimRoomSpec?

    /// CPU architectures the image builder supports.
    public enum Architecture: String, Sendable, CaseIterable { case arm64, amd64 }
}

/// What the image for a board is made of (read by `scripts/build-image`).
public struct ImageSpec: Sendable, Equatable {
    /// How the board boots.
    public enum Bootloader: String, Sendable, CaseIterable {
        /// The Raspberry Pi's GPU firmware reads `config.txt` from a FAT boot partition.
        case raspiFirmware = "raspi-firmware"
        /// UEFI with systemd-boot on an EFI system partition.
        case systemdBoot = "systemd-boot"
        /// QEMU loads kernel and initramfs directly (tests only).
        case direct
    }

    /// Debian release the image is built from.
    public var suite: String
    /// Kernel packages (one at least).
    public var kernelPackages: [String]
    /// Firmware packages for the board's devices.
    public var firmwarePackages: [String]
    /// More packages this board needs.
    public var extraPackages: [String]
    /// Additional apt sources (`deb` lines) for boards whose kernel is not in Debian.
    public var aptSources: [String]
    /// How the board boots.
    public var bootloader: Bootloader
    /// Files the boot partition must hold besides kernel and initramfs (e.g. `config.txt`, device trees).
    public var bootFiles: [String]
    /// The kernel command line without `root=` (the builder adds the A/B root).
    public var kernelCommandLine: String
    /// Kernel modules loaded at boot (e.g. the test drivers on `qemu-amd64`).
    public var modules: [String]
    /// Modules the builder compiles out of tree against the image kernel (only `gpio-sim` is known).
    public var buildModules: [String]
    /// When non-empty, the initramfs holds only these modules (`MODULES=list`): what it takes to find
    /// the root filesystem. Empty means Debian's default (`MODULES=most`), for unknown hardware.
    public var initramfsModules: [String]
    /// Partition sizes in MiB: the EFI/boot partition, each of the two root slots, and the data partition.
    public var bootMiB: Int
    /// Size of each root slot (A and B) in MiB.
    public var rootMiB: Int
    /// Size of the data partition in MiB (journal, firmware state; kept across updates).
    public var dataMiB: Int

    /// Out-of-tree modules the image builder knows how to build.
    public static let buildableModules: Set<String> = ["gpio-sim"]
}

/// How the firmware opens sound devices on this board.
public struct AudioSpec: Sendable, Equatable {
    /// Where audio frames come from.
    public enum Backend: String, Sendable, CaseIterable {
        /// Real devices through libasound.
        case alsa
        /// The in-process simulated classroom.
        case sim
    }
    /// How several microphone channels become one.
    public enum MicMix: String, Sendable, CaseIterable { case average, pick }

    /// Where audio frames come from.
    public var backend: Backend
    /// ALSA card names (the card's id or name) to capture from, in order of preference.
    public var captureCards: [String]
    /// ALSA card names to play to, in order of preference.
    public var playbackCards: [String]
    /// The PCM device number on the capture card (`hw:CARD,DEV`).
    public var captureDevice: Int
    /// The PCM device number on the playback card.
    public var playbackDevice: Int
    /// Preferred sample rate in Hz; 48 kHz end to end unless the hardware cannot.
    public var rate: Int
    /// Channels the capture device is opened with.
    public var captureChannels: Int
    /// Which capture channels carry the classroom microphone(s), 0-based.
    public var micChannels: [Int]
    /// How the microphone channels are combined.
    public var micMix: MicMix
    /// Channels the playback device is opened with.
    public var playbackChannels: Int
    /// ALSA period in milliseconds.
    public var periodMs: Int
    /// ALSA buffer length in periods.
    public var bufferPeriods: Int

    /// An audio description from its values.
    public init(backend: Backend, captureCards: [String], playbackCards: [String], captureDevice: Int, playbackDevice: Int,
                rate: Int, captureChannels: Int, micChannels: [Int], micMix: MicMix, playbackChannels: Int, periodMs: Int,
                bufferPeriods: Int) {
        self.backend = backend
        self.captureCards = captureCards
        self.playbackCards = playbackCards
        self.captureDevice = captureDevice
        self.playbackDevice = playbackDevice
        self.rate = rate
        self.captureChannels = captureChannels
        self.micChannels = micChannels
        self.micMix = micMix
        self.playbackChannels = playbackChannels
        self.periodMs = periodMs
        self.bufferPeriods = bufferPeriods
    }
}

/// How the firmware finds and drives the classroom camera.
public struct CameraSpec: Sendable, Equatable {
    /// Where video frames come from.
    public enum Backend: String, Sendable, CaseIterable { case v4l2, sim, none }

    /// Where video frames come from.
    public var backend: Backend
    /// V4L2 driver names that qualify (`uvcvideo`, `vivid`); empty means any capture device.
    public var drivers: [String]
    /// Substrings of the card name to prefer, in order; empty means any.
    public var cards: [String]
    /// Pixel formats (FourCC) in order of preference.
    public var formats: [String]
    /// Preferred frame size and rate; the camera's closest mode is chosen.
    public var width: Int
    /// Preferred frame height.
    public var height: Int
    /// Preferred frame rate.
    public var fps: Int
    /// Driver name of the V4L2 memory-to-memory encoder, or nil when the board has none.
    public var hardwareEncoder: String?
    /// What the hardware encoder produces (FourCC): `H264` on boards, `FWHT` with the kernel's test codec.
    public var encoderFormat: String = "H264"
    /// The encoder's target bit rate in bit/s, where the driver has the control.
    public var encoderBitrate: Int? = nil
    /// Frames from one key frame to the next (GOP), where the driver has the control.
    public var encoderKeyFrameInterval: Int? = nil
}

/// The raise-hand button and LED wiring.
public struct GPIOSpec: Sendable, Equatable {
    /// How the button is read.
    public enum Backend: String, Sendable, CaseIterable {
        /// GPIO lines through libgpiod.
        case gpiod
        /// A `gpio-keys` input device (the button is wired as a key).
        case evdev
        /// The in-process simulated button.
        case sim
        /// No button on this board.
        case none
    }

    /// How the button is read.
    public var backend: Backend
    /// The GPIO chip's label (stable across kernels, unlike `gpiochipN`).
    public var chipLabel: String?
    /// The button's line offset on the chip.
    public var buttonLine: Int?
    /// The LED's line offset on the chip, nil when there is no LED.
    public var ledLine: Int?
    /// True when a pressed button reads as a low level.
    public var buttonActiveLow: Bool
    /// True when the LED lights on a low level.
    public var ledActiveLow: Bool
    /// Debounce time in milliseconds.
    public var debounceMs: Int
    /// The input device's name for the `evdev` backend.
    public var evdevName: String?
    /// The key code the `evdev` button sends.
    public var evdevKeyCode: Int?
}

/// Budgets tuned to the board's CPU.
public struct PerformanceSpec: Sendable, Equatable {
    /// Opus encoder complexity, 0 (cheapest) to 10.
    public var opusComplexity: Int
    /// SCHED_FIFO priority of the audio threads, where permitted.
    public var realtimePriority: Int
}

/// The simulated classroom: a loudspeaker and a pupil heard by one microphone in a reverberant room.
public struct SimRoomSpec: Sendable, Equatable {
    /// Reverberation time (RT60) in seconds.
    public var rt60: Double
    /// Loudspeaker-to-microphone distance in metres.
    public var speakerDistance: Double
    /// Pupil-to-microphone distance in metres.
    public var pupilDistance: Double
    /// Playback-to-capture delay of the simulated sound card in milliseconds.
    public var deviceDelayMs: Double
    /// Loudspeaker sensitivity: the level of the direct sound at 1 m relative to the drive signal, in dB.
    public var speakerGainDb: Double
    /// Level of the pupil's voice at 1 m relative to the recording, in dB.
    public var pupilGainDb: Double
    /// Level of the classroom's background noise at the microphone in dBFS.
    public var noiseDbfs: Double
    /// Seed of the room's pseudo-random parts, so every run is the same.
    public var seed: Int
    /// How many ppm faster the simulated sound card's capture clock runs than its playback clock (a USB
    /// speakerphone's two crystals differ by tens of ppm); what `classbox diagnose` should measure.
    public var captureClockPPM: Double

    /// A room from its measures.
    public init(rt60: Double, speakerDistance: Double, pupilDistance: Double, deviceDelayMs: Double,
                speakerGainDb: Double, pupilGainDb: Double, noiseDbfs: Double, seed: Int, captureClockPPM: Double = 0) {
        self.rt60 = rt60
        self.speakerDistance = speakerDistance
        self.pupilDistance = pupilDistance
        self.deviceDelayMs = deviceDelayMs
        self.speakerGainDb = speakerGainDb
        self.pupilGainDb = pupilGainDb
        self.noiseDbfs = noiseDbfs
        self.seed = seed
        self.captureClockPPM = captureClockPPM
    }
}
