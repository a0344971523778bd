/* Peer for scripts/bench-audio: SpeexDSP's resampler doing the resampler benchmark's work (mono 48 kHz,
 * 480-sample blocks, a ratio 100 ppm off unity), printing CPU seconds per audio second. */
#include <speex/speex_resampler.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <sys/resource.h>

static double cpu(void) {
    struct rusage u; getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_utime.tv_usec * 1e-6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec * 1e-6;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 300;
    int quality = argc > 2 ? atoi(argv[2]) : 10;
    int err = 0;
    /* in 48000 Hz, out 48000 / (1 + 100e-6) Hz, as the ratio num/den */
    SpeexResamplerState *st = speex_resampler_init_frac(1, 1000100, 1000000, 48000, 47995, quality, &err);
    if (!st || err) { fprintf(stderr, "speex_resampler_init_frac failed\n"); return 1; }
    float in[480], out[600];
    for (int i = 0; i < 480; i++) in[i] = 0.5f * sinf(i * 0.05f);
    long blocks = (long)(seconds * 100), produced = 0;
    double start = cpu();
    for (long b = 0; b < blocks; b++) {
        spx_uint32_t inLen = 480, outLen = 600;
        speex_resampler_process_float(st, 0, in, &inLen, out, &outLen);
        produced += outLen;
    }
    double used = cpu() - start;
    printf("speex_resampler_q%d %.6f cpu_s_per_audio_s (%ld samples out)\n", quality, used / seconds, produced);
    speex_resampler_destroy(st);
    return 0;
}
