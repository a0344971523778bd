// CAlsa: libasound for Swift. Only what Swift cannot import directly lives here.
#ifndef CLASSBOX_CALSA_SHIM_H
#define CLASSBOX_CALSA_SHIM_H
#include <alsa/asoundlib.h>

// SND_LIB_VERSION_STR is a string macro built by concatenation; expose it as a function so the
// headers the firmware was built against can be compared with the library it runs on.
static inline const char *cb_alsa_header_version(void) { return SND_LIB_VERSION_STR; }

#endif
