// COpus: libopus for Swift. opus_encoder_ctl()/opus_decoder_ctl() are variadic and the OPUS_SET_* /
// OPUS_GET_* request macros are function-like, so each control the firmware uses gets a typed wrapper.
#ifndef CLASSBOX_COPUS_SHIM_H
#define CLASSBOX_COPUS_SHIM_H
#include <opus/opus.h>

static inline int cb_opus_set_bitrate(OpusEncoder *e, opus_int32 v) { return opus_encoder_ctl(e, OPUS_SET_BITRATE(v)); }
static inline int cb_opus_get_bitrate(OpusEncoder *e, opus_int32 *v) { return opus_encoder_ctl(e, OPUS_GET_BITRATE(v)); }
static inline int cb_opus_set_complexity(OpusEncoder *e, opus_int32 v) { return opus_encoder_ctl(e, OPUS_SET_COMPLEXITY(v)); }
static inline int cb_opus_get_complexity(OpusEncoder *e, opus_int32 *v) { return opus_encoder_ctl(e, OPUS_GET_COMPLEXITY(v)); }
static inline int cb_opus_set_inband_fec(OpusEncoder *e, opus_int32 v) { return opus_encoder_ctl(e, OPUS_SET_INBAND_FEC(v)); }
static inline int cb_opus_set_packet_loss_perc(OpusEncoder *e, opus_int32 v) { return opus_encoder_ctl(e, OPUS_SET_PACKET_LOSS_PERC(v)); }
static inline int cb_opus_set_dtx(OpusEncoder *e, opus_int32 v) { return opus_encoder_ctl(e, OPUS_SET_DTX(v)); }
static inline int cb_opus_set_signal(OpusEncoder *e, opus_int32 v) { return opus_encoder_ctl(e, OPUS_SET_SIGNAL(v)); }
static inline int cb_opus_set_bandwidth(OpusEncoder *e, opus_int32 v) { return opus_encoder_ctl(e, OPUS_SET_BANDWIDTH(v)); }
static inline int cb_opus_set_vbr(OpusEncoder *e, opus_int32 v) { return opus_encoder_ctl(e, OPUS_SET_VBR(v)); }
static inline int cb_opus_get_lookahead(OpusEncoder *e, opus_int32 *v) { return opus_encoder_ctl(e, OPUS_GET_LOOKAHEAD(v)); }
static inline int cb_opus_encoder_reset(OpusEncoder *e) { return opus_encoder_ctl(e, OPUS_RESET_STATE); }
static inline int cb_opus_decoder_reset(OpusDecoder *d) { return opus_decoder_ctl(d, OPUS_RESET_STATE); }
static inline int cb_opus_decoder_get_last_packet_duration(OpusDecoder *d, opus_int32 *v) {
    return opus_decoder_ctl(d, OPUS_GET_LAST_PACKET_DURATION(v));
}
static inline int cb_opus_decoder_set_gain(OpusDecoder *d, opus_int32 q8_db) { return opus_decoder_ctl(d, OPUS_SET_GAIN(q8_db)); }

// Constant values used as arguments of the controls above (simple macros Swift imports too, kept here
// together for readers).
static inline opus_int32 cb_OPUS_SIGNAL_VOICE(void) { return OPUS_SIGNAL_VOICE; }
static inline opus_int32 cb_OPUS_SIGNAL_MUSIC(void) { return OPUS_SIGNAL_MUSIC; }
static inline opus_int32 cb_OPUS_BANDWIDTH_FULLBAND(void) { return OPUS_BANDWIDTH_FULLBAND; }
static inline opus_int32 cb_OPUS_BANDWIDTH_WIDEBAND(void) { return OPUS_BANDWIDTH_WIDEBAND; }

#endif
