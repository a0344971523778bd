// The `sim` board, built into the binary so a laptop needs no files. It must equal Board/sim.toml
// byte for byte (a test checks): edit that file, then copy it here.
extension BoardCatalog {
    /// The text of `Board/sim.toml`.
    public static let embeddedSimProfile = #"""
# The simulated classroom: runs on any laptop or build machine, with no sound card, camera or GPIO.
# A loudspeaker and a pupil are heard by one microphone in a reverberant room; the firmware cannot tell
# it from a real classroom. Built into the classbox binary too, so it works with no files installed.
name = "sim"
summary = "Simulated classroom (no hardware): speaker, room, pupil and microphone in-process"

[audio]
backend = "sim"
rate = 48000
period_ms = 5                # as an ALSA period would be: 5 ms keeps the live lesson's latency low

[camera]
backend = "sim"
width = 640
height = 360
fps = 15

[gpio]
backend = "sim"
debounce_ms = 30

[performance]
opus_complexity = 9

[sim]
rt60_s = 0.45               # a furnished classroom
speaker_distance_m = 1.2    # box on the teacher's desk, microphone in front of it
pupil_distance_m = 2.5
device_delay_ms = 40        # playback-to-capture latency of a USB sound card
speaker_gain_db = -6.0        # a loudspeaker turned to classroom level
pupil_gain_db = 0.0
noise_dbfs = -65.0
seed = 7

"""#
}
