/* resample_fft.h — (library-internal) the "s2s" resampling engine: an overlap-save
 * frequency-domain resampler (see resample_fft.c and docs/resample.md). resample.c wraps it
 * behind s2s/resample.h; nothing else should call it. */
#ifndef S2S_RESAMPLE_FFT_H
#define S2S_RESAMPLE_FFT_H

#include "s2s/err.h"
#include <stddef.h>

typedef struct s2s_rsfft s2s_rsfft;

/* Creates the engine for in_rate -> out_rate (different rates, 1..1e6 Hz). Returns NULL with
 * err->code S2S_EUNSUP when the pair is not supported (a prime factor above 7 in the reduced
 * ratio, or transforms too large): the caller then falls back to another engine. ENOMEM
 * likewise. Free with s2s_rsfft_free. */
s2s_rsfft *s2s_rsfft_new(int in_rate, int out_rate, s2s_err *err);

/* Picks the kernel: 0 portable, 1 AVX2, 2 AVX-512, -1 the best this CPU runs (the default).
 * All give the same bytes. Returns the kernel chosen, S2S_EUNSUP if the CPU lacks it,
 * S2S_EINVAL for another number. Only between streams (after new or reset). */
int s2s_rsfft_set_impl(s2s_rsfft *f, int impl);

/* Feeds in[0..n-1]; eof = 1 ends the input (then n may be 0). *out gets *n_out converted
 * samples (valid until the next call; may run past the final length, which the caller trims
 * to round(n_in * out / in)). Returns 0 or S2S_ENOMEM. */
int s2s_rsfft_feed(s2s_rsfft *f, const float *in, size_t n, int eof, const float **out,
                   size_t *n_out, s2s_err *err);

/* Back to the state of a new handle (same rates, same kernel), for the next stream. */
void s2s_rsfft_reset(s2s_rsfft *f);

/* Design figures, for docs and tests: filter taps, transform sizes, hop sizes (samples). */
void s2s_rsfft_info(const s2s_rsfft *f, size_t *taps, size_t *n_in, size_t *n_out, size_t *hop_in,
                    size_t *hop_out);

/* Frees f. Safe with NULL. */
void s2s_rsfft_free(s2s_rsfft *f);

#endif
