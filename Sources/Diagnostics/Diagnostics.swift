// Diagnostics: the hardware and network self-test behind `classbox diagnose`: it plays, records,
// captures and probes, and says in a teacher's words what works and what to do about what does not.
// It must never change the box's configuration or leave a device held after it returns.
