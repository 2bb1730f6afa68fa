/* s2s/resample.h — streaming sample-rate conversion of float mono audio, three engines.
 *
 * S2S_RS_S2S (the default, since 0.3.0): our own overlap-save frequency-domain resampler
 *   (libs2s/resample_fft.c): a Kaiser-windowed sinc (passband to 95 % of the lower Nyquist
 *   frequency as sox's rate effect, >= 120 dB from the lower Nyquist frequency up) applied in
 *   the frequency domain with single-precision mixed-radix FFTs, vectorized across blocks; the
 *   same bytes on every x86-64 CPU whatever kernel (SSE2 / AVX2 / AVX-512) runs. It has one
 *   quality, medium; best and fastest run libsoxr's (as S2S_RS_SOXR), and so do rate pairs whose
 *   reduced ratio in/out has a prime factor above 7 (s2s_resampler_engine says which ran).
 * S2S_RS_SOXR: libsoxr, called directly, set up as libswresample's soxr resampler was in 0.1
 *   (same samples for the same precision): passband up to 95 % of the output Nyquist like sox's
 *   rate effect, flat passband (soxr "cheby"). Quality = soxr precision in bits: best 28 (as
 *   sox -v), medium 20 (the default; sox's default -h precision: the output is 16-bit anyway),
 *   fastest 16 (sox -m's). Engine name "soxr"; "swr" (0.1's name) is parsed as an alias.
 *   libsoxr reads SOXR_* environment variables (SIMD use, DFT sizes, coefficient interpolation,
 *   threads) that change its output: a program that wants reproducible bytes unsets them
 *   (s2s-resample does). At <= 20 bits soxr runs its single-precision SSE code on every x86-64
 *   CPU; at 28 bits its double-precision code, whose AVX path is picked at run time (see
 *   docs/resample.md for what that does to the bytes).
 * S2S_RS_SRC: libsamplerate, quality best/medium/fastest = SRC_SINC_BEST_QUALITY /
 *   SRC_SINC_MEDIUM_QUALITY / SRC_SINC_FASTEST.
 * Measured speed and quality of each: docs/resample.md (bench/resample.sh).
 *
 * Streaming: feed blocks of any size with s2s_resampler_process, then call s2s_resampler_flush
 * once; memory stays bounded by the block size. The output is time-aligned with the input (no
 * filter delay) and its total length is exactly round(n_in * out_rate / in_rate) samples. */
#ifndef S2S_RESAMPLE_H
#define S2S_RESAMPLE_H

#include "s2s/err.h"
#include <stddef.h>

enum { S2S_RS_SOXR = 0, S2S_RS_SRC = 1, S2S_RS_S2S = 2 };        /* engines */
#define S2S_RS_SWR S2S_RS_SOXR                                   /* 0.1's name of the soxr engine */
enum { S2S_RS_BEST = 0, S2S_RS_MEDIUM = 1, S2S_RS_FASTEST = 2 }; /* qualities */

/* The default engine and quality (chosen by measurement, see docs/resample.md). */
#define S2S_RS_DEFAULT_ENGINE S2S_RS_S2S
#define S2S_RS_DEFAULT_QUALITY S2S_RS_MEDIUM

typedef struct s2s_resampler s2s_resampler;

/* Creates a converter from in_rate to out_rate (1 .. 1e6 Hz each; equal rates are allowed and
 * copy). Returns NULL and fills err (EINVAL bad rate/engine/quality, EUNSUP if the library
 * lacks the engine, ENOMEM). Free with s2s_resampler_free. */
s2s_resampler *s2s_resampler_new(int engine, int quality, int in_rate, int out_rate, s2s_err *err);

/* Converts in[0..n_in-1] (may be n_in = 0). *out points to *n_out converted samples inside the
 * handle, valid until the next call on it (do not free). Returns 0 or a negative S2S_E*. */
int s2s_resampler_process(s2s_resampler *r, const float *in, size_t n_in, const float **out,
                          size_t *n_out, s2s_err *err);

/* Ends the input: returns the remaining samples like process. Call once; after it the handle
 * only accepts s2s_resampler_free. */
int s2s_resampler_flush(s2s_resampler *r, const float **out, size_t *n_out, s2s_err *err);

/* Frees the handle. Safe with NULL. */
void s2s_resampler_free(s2s_resampler *r);

/* Makes r ready for a new stream at the same rates, as a new handle would be (same output
 * bytes), keeping what can be kept (the s2s engine's filter and FFT tables: a reset costs
 * nothing; soxr and src are re-created). Returns 0 or negative (err set). */
int s2s_resampler_reset(s2s_resampler *r, s2s_err *err);

/* The engine that actually runs: the one asked for, or S2S_RS_SOXR when S2S_RS_S2S fell back
 * (quality best/fastest, or a rate pair it does not take). Equal rates: the one asked for. */
int s2s_resampler_engine(const s2s_resampler *r);

/* Why the engine that runs is not the one asked for, when the reason is the rate pair (e.g.
 * "s2s resampler: 22050 -> 11111 Hz (ratio ...) has a prime factor above 7; libsoxr runs
 * instead"); NULL otherwise. Valid while r lives. */
const char *s2s_resampler_note(const s2s_resampler *r);

/* Tests: forces the s2s engine's kernel (0 portable, 1 AVX2, 2 AVX-512, -1 the best the CPU
 * has; all give the same bytes). Call before the first process. Returns the kernel, or
 * S2S_EUNSUP (CPU lacks it, or the handle does not run the s2s engine: then only 0 and -1
 * succeed, returning 0). */
int s2s_resampler_set_impl(s2s_resampler *r, int impl);

/* Whole-buffer convenience: converts in[0..n-1] in blocks; *out is malloc'd (caller frees),
 * *n_out = round(n * out_rate / in_rate). Returns 0 or negative. */
int s2s_resample_buffer(int engine, int quality, const float *in, size_t n, int in_rate,
                        int out_rate, float **out, size_t *n_out, s2s_err *err);

/* Expected output length for n input samples: round(n * out_rate / in_rate). */
size_t s2s_resample_out_len(size_t n, int in_rate, int out_rate);

/* Names: "soxr"/"src"/"s2s" and "best"/"medium"/"fastest"; parse returns the enum or -1
 * ("swr" is parsed as "soxr"). */
const char *s2s_resample_engine_name(int engine);
const char *s2s_resample_quality_name(int quality);
int s2s_resample_parse_engine(const char *s);
int s2s_resample_parse_quality(const char *s);

#endif
