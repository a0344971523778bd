// EchoCancel: the acoustic echo canceller, pure Swift DSP: it removes the remote teacher's voice, as the
// classroom loudspeaker plays it, from the classroom microphone while keeping the pupils' voices.
// It must never import anything but the standard library, and after construction its processing must
// never allocate, lock or make a system call: it runs inside the real-time audio thread.
