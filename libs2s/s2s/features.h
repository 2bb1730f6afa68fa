/* s2s/features.h — log-mel filterbank features (Kaldi "fbank" / GSLM "logmel" baseline).
 *
 * Defaults follow Kaldi's compute-fbank-feats with the GSLM logmel settings: 16 kHz input,
 * 25 ms frames (400 samples) every 10 ms (160 samples), snip-edges framing (a frame only where
 * the whole window fits: n_frames = 1 + (n - 400) / 160, 0 when n < 400), no dither (so the
 * output is deterministic), DC offset removed per frame, pre-emphasis 0.97, Povey window, zero
 * padding to 512, power spectrum through our own real FFT, 80 triangular mel filters
 * (mel = 1127 ln(1 + f/700)) between 20 Hz and Nyquist laid out as in Kaldi (FFT bins
 * 0 .. N/2-1), natural log (our own, correctly rounded in all tests) with a floor of
 * FLT_EPSILON. Samples in [-1, 1] are multiplied by 32768 first, so values match Kaldi on the
 * same 16-bit WAV. The results are the same bits on every x86-64 CPU, whichever vector kernel
 * (SSE2, AVX2, AVX-512) runs, and do not depend on libm.
 * Optional per-utterance mean/variance normalisation (CMVN) of each mel dimension.
 * The full specification and the JSON form of the settings: docs/tokenize.md. */
#ifndef S2S_FEATURES_H
#define S2S_FEATURES_H

#include "s2s/err.h"
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

enum { S2S_WIN_POVEY = 0, S2S_WIN_HAMMING = 1, S2S_WIN_HANN = 2 };

typedef struct s2s_fbank_opts {
    int rate;        /* input sample rate in Hz (16000) */
    double frame_ms; /* window length (25) */
    double hop_ms;   /* frame shift (10) */
    int n_mels;      /* mel filters = feature dimension (80) */
    double low_hz;   /* lowest filter edge (20) */
    double high_hz;  /* highest edge; <= 0 means Nyquist + high_hz, as in Kaldi (0) */
    double preemph;  /* pre-emphasis coefficient, 0 = none (0.97) */
    int window;      /* S2S_WIN_POVEY (default), S2S_WIN_HAMMING, S2S_WIN_HANN */
    int remove_dc;   /* subtract each frame's mean before pre-emphasis (1) */
    int cmvn;        /* per-utterance mean/variance normalisation of every dimension (0) */
    double scale;    /* input multiplier before analysis (32768: Kaldi's 16-bit scale) */
} s2s_fbank_opts;

/* Fills o with the defaults above. */
void s2s_fbank_opts_default(s2s_fbank_opts *o);

/* Checks ranges (rate 1000..384000, frame 1..1000 ms, hop 1..frame, 1..512 mels, 0 <= low <
 * high <= Nyquist, preemph in [0, 1], known window, scale > 0). Returns 0 or S2S_EINVAL. */
int s2s_fbank_opts_check(const s2s_fbank_opts *o, s2s_err *err);

/* The settings as a JSON object with every field (window as "povey"/"hamming"/"hann", high_hz
 * resolved to Hz, frame/hop also in samples). New reference; NULL on ENOMEM. */
json_t *s2s_fbank_opts_to_json(const s2s_fbank_opts *o);

/* Reads settings written by s2s_fbank_opts_to_json (all fields required). Returns 0, S2S_EFORMAT
 * (missing/ill-typed field, named in the message) or S2S_EINVAL (out of range). */
int s2s_fbank_opts_from_json(const json_t *j, s2s_fbank_opts *o, s2s_err *err);

/* Window name <-> constant; parse returns -1 if unknown. */
const char *s2s_fbank_window_name(int window);
int s2s_fbank_window_parse(const char *name);

typedef struct s2s_fbank s2s_fbank;

/* Creates an analyser (window, mel matrix and FFT plan precomputed). One per thread: compute
 * uses its scratch buffers. Returns NULL and fills err on bad options or ENOMEM. */
s2s_fbank *s2s_fbank_new(const s2s_fbank_opts *o, s2s_err *err);
void s2s_fbank_free(s2s_fbank *fb); /* safe with NULL */

/* Options the analyser was made with; frame and hop lengths in samples; FFT size. */
const s2s_fbank_opts *s2s_fbank_get_opts(const s2s_fbank *fb);
size_t s2s_fbank_frame_len(const s2s_fbank *fb);
size_t s2s_fbank_hop_len(const s2s_fbank *fb);
size_t s2s_fbank_fft_len(const s2s_fbank *fb);

/* Frames for n samples: 0 if n < frame length, else 1 + (n - frame) / hop. */
size_t s2s_fbank_n_frames(const s2s_fbank *fb, size_t n);

/* Computes the features of x[0..n-1] (mono, at opts.rate) into out, row-major:
 * out[t * n_mels + m] for t < s2s_fbank_n_frames(fb, n). out is the caller's and must hold that
 * many floats. Returns the number of frames (>= 0); S2S_EDATA if a sample is NaN/infinite.
 * CMVN is applied when the options ask for it. */
long s2s_fbank_compute(s2s_fbank *fb, const float *x, size_t n, float *out, s2s_err *err);

/* Same for 16-bit samples x[0..n-1] (native byte order), read as x / 32768: the same floats as
 * s2s_fbank_compute on the decoded audio, without the float copy. Cannot fail. */
long s2s_fbank_compute_s16(s2s_fbank *fb, const int16_t *x, size_t n, float *out);

/* Frames t0 .. t0+count-1 of x[0..n-1] only (count is cut to the frames that exist), into
 * out[(t - t0) * n_mels + m], WITHOUT CMVN and without checking x for NaN: for computing a long
 * member in chunks with flat memory. Frame t of a chunk is bit for bit frame t of
 * s2s_fbank_compute (without CMVN). Returns the number of frames written. */
long s2s_fbank_frames(s2s_fbank *fb, const float *x, size_t n, size_t t0, size_t count, float *out);
long s2s_fbank_frames_s16(s2s_fbank *fb, const int16_t *x, size_t n, size_t t0, size_t count,
                          float *out);

/* Per-utterance mean/variance normalisation of out[nf][dim] in place (what opts.cmvn does).
 * Returns 0. */
int s2s_fbank_cmvn(float *out, size_t nf, size_t dim);

/* The natural log used for the mel energies (deterministic, no libm: docs/tokenize.md gives its
 * accuracy). log of 0 is -inf, of a negative number or NaN is NaN, of +inf is +inf. */
float s2s_fbank_log(float x);

/* Chooses the kernel: 0 portable C (SSE2), 1 AVX2, 2 AVX-512, -1 the best the CPU has (what
 * s2s_fbank_new does). All give bit-identical features; this exists for the test that proves
 * it. Returns the kernel chosen, S2S_EUNSUP if the CPU (or build) lacks it, S2S_EINVAL for
 * another value. */
int s2s_fbank_set_impl(s2s_fbank *fb, int impl);

/* The triangular mel weights of filter m over FFT bins (length s2s_fbank_fft_len/2), for tests
 * and plots; borrowed pointer, first non-zero bin in *first, count in *len. */
const float *s2s_fbank_mel_weights(const s2s_fbank *fb, int m, size_t *first, size_t *len);

/* Centre frequency in Hz of mel filter m. */
double s2s_fbank_mel_center_hz(const s2s_fbank *fb, int m);

#endif
