/* features.c — Kaldi-compatible log-mel filterbank, own deterministic FFT (no libm, no CPU
 * dispatch in the results). */
#include "s2s/features.h"

#include "simd_x86.h"
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FB_B 16 /* frames per group (the kernel below) */
#define DC_P 8  /* partial sums of the DC mean */

struct s2s_fbank {
    s2s_fbank_opts o;
    size_t frame, hop, nfft, M; /* M = nfft / 2: the complex FFT's size */
    float *win;                 /* frame */
    /* Scratch of the kernel, 64-byte aligned, FB_B lanes (frames) per row: */
    float *T;         /* frame rows: samples; then (nfft/2 rows) the power spectra */
    float *zr, *zi;   /* M rows: the complex FFT */
    float *E;         /* n_mels rows: mel energies, then their logs */
    float *twr, *twi; /* M/2: e^{-2 pi i t / M} */
    float *pcr, *pci; /* M: e^{-2 pi i k / nfft} (real-FFT post-processing) */
    uint32_t *rev;    /* M: bit reversal */
    int impl;         /* 0 portable, 1 AVX2 (s2s_fbank_set_impl) */
    /* Sparse mel matrix: filter m covers bins first[m] .. first[m]+len[m]-1. */
    size_t *first, *len;
    float **w;
    double *center_hz;
    float *zrow; /* n_mels: the features of a frame of 16-bit zeros */
};

void s2s_fbank_opts_default(s2s_fbank_opts *o) {
    o->rate = 16000;
    o->frame_ms = 25.0;
    o->hop_ms = 10.0;
    o->n_mels = 80;
    o->low_hz = 20.0;
    o->high_hz = 0.0;
    o->preemph = 0.97;
    o->window = S2S_WIN_POVEY;
    o->remove_dc = 1;
    o->cmvn = 0;
    o->scale = 32768.0;
}

static const char *win_names[] = {"povey", "hamming", "hann"};

const char *s2s_fbank_window_name(int window) {
    return window >= 0 && window < 3 ? win_names[window] : NULL;
}

int s2s_fbank_window_parse(const char *name) {
    for (int i = 0; i < 3; i++)
        if (name && strcmp(name, win_names[i]) == 0) return i;
    return -1;
}

static double resolved_high(const s2s_fbank_opts *o) {
    double nyq = o->rate / 2.0;
    return o->high_hz > 0 ? o->high_hz : nyq + o->high_hz;
}

static size_t ms_to_samples(int rate, double ms) {
    return (size_t)llround(rate * ms / 1000.0);
}

int s2s_fbank_opts_check(const s2s_fbank_opts *o, s2s_err *err) {
    if (o->rate < 1000 || o->rate > 384000)
        return s2s_err_set(err, S2S_EINVAL, "feature rate %d Hz out of range 1000..384000",
                           o->rate);
    if (!(o->frame_ms >= 1 && o->frame_ms <= 1000))
        return s2s_err_set(err, S2S_EINVAL, "frame length %g ms out of range 1..1000", o->frame_ms);
    if (!(o->hop_ms >= 0.1 && o->hop_ms <= o->frame_ms))
        return s2s_err_set(err, S2S_EINVAL, "hop %g ms must be in 0.1..frame length (%g ms)",
                           o->hop_ms, o->frame_ms);
    if (ms_to_samples(o->rate, o->hop_ms) < 1 || ms_to_samples(o->rate, o->frame_ms) < 2)
        return s2s_err_set(err, S2S_EINVAL, "frame or hop shorter than a sample at %d Hz", o->rate);
    if (o->n_mels < 1 || o->n_mels > 512)
        return s2s_err_set(err, S2S_EINVAL, "number of mel filters %d out of range 1..512",
                           o->n_mels);
    double hi = resolved_high(o);
    if (!(o->low_hz >= 0 && o->low_hz < hi && hi <= o->rate / 2.0))
        return s2s_err_set(err, S2S_EINVAL,
                           "mel range %g..%g Hz invalid (need 0 <= low < high <= %g Hz)", o->low_hz,
                           hi, o->rate / 2.0);
    if (!(o->preemph >= 0 && o->preemph <= 1))
        return s2s_err_set(err, S2S_EINVAL, "pre-emphasis %g out of range 0..1", o->preemph);
    if (!s2s_fbank_window_name(o->window))
        return s2s_err_set(err, S2S_EINVAL, "unknown window type %d", o->window);
    if (!(o->scale > 0 && isfinite(o->scale)))
        return s2s_err_set(err, S2S_EINVAL, "input scale %g must be positive", o->scale);
    return 0;
}

json_t *s2s_fbank_opts_to_json(const s2s_fbank_opts *o) {
    return json_pack("{s:s, s:i, s:f, s:f, s:I, s:I, s:i, s:f, s:f, s:f, s:s, s:b, s:b, s:f}",
                     "type", "logmel", "rate", o->rate, "frame_ms", o->frame_ms, "hop_ms",
                     o->hop_ms, "frame_samples", (json_int_t)ms_to_samples(o->rate, o->frame_ms),
                     "hop_samples", (json_int_t)ms_to_samples(o->rate, o->hop_ms), "n_mels",
                     o->n_mels, "low_hz", o->low_hz, "high_hz", resolved_high(o), "preemph",
                     o->preemph, "window", s2s_fbank_window_name(o->window), "remove_dc",
                     o->remove_dc, "cmvn", o->cmvn, "scale", o->scale);
}

static int get_num(const json_t *j, const char *k, double *v, s2s_err *err) {
    json_t *x = json_object_get(j, k);
    if (!json_is_number(x))
        return s2s_err_set(err, S2S_EFORMAT, "features: \"%s\" missing or not a number", k);
    *v = json_number_value(x);
    return 0;
}

static int get_int(const json_t *j, const char *k, int *v, s2s_err *err) {
    json_t *x = json_object_get(j, k);
    if (!json_is_integer(x) || json_integer_value(x) < -2147483647 ||
        json_integer_value(x) > 2147483647)
        return s2s_err_set(err, S2S_EFORMAT, "features: \"%s\" missing or not an integer", k);
    *v = (int)json_integer_value(x);
    return 0;
}

static int get_bool(const json_t *j, const char *k, int *v, s2s_err *err) {
    json_t *x = json_object_get(j, k);
    if (!json_is_boolean(x))
        return s2s_err_set(err, S2S_EFORMAT, "features: \"%s\" missing or not a boolean", k);
    *v = json_is_true(x);
    return 0;
}

int s2s_fbank_opts_from_json(const json_t *j, s2s_fbank_opts *o, s2s_err *err) {
    if (!json_is_object(j)) return s2s_err_set(err, S2S_EFORMAT, "features: not a JSON object");
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!type || strcmp(type, "logmel") != 0)
        return s2s_err_set(err, S2S_EFORMAT, "features: \"type\" must be \"logmel\"");
    const char *win = json_string_value(json_object_get(j, "window"));
    if (!win) return s2s_err_set(err, S2S_EFORMAT, "features: \"window\" missing");
    s2s_fbank_opts_default(o);
    int rc;
    if ((rc = get_int(j, "rate", &o->rate, err)) < 0 ||
        (rc = get_num(j, "frame_ms", &o->frame_ms, err)) < 0 ||
        (rc = get_num(j, "hop_ms", &o->hop_ms, err)) < 0 ||
        (rc = get_int(j, "n_mels", &o->n_mels, err)) < 0 ||
        (rc = get_num(j, "low_hz", &o->low_hz, err)) < 0 ||
        (rc = get_num(j, "high_hz", &o->high_hz, err)) < 0 ||
        (rc = get_num(j, "preemph", &o->preemph, err)) < 0 ||
        (rc = get_bool(j, "remove_dc", &o->remove_dc, err)) < 0 ||
        (rc = get_bool(j, "cmvn", &o->cmvn, err)) < 0 ||
        (rc = get_num(j, "scale", &o->scale, err)) < 0)
        return rc;
    if ((o->window = s2s_fbank_window_parse(win)) < 0)
        return s2s_err_set(err, S2S_EFORMAT, "features: unknown window \"%s\"", win);
    return s2s_fbank_opts_check(o, err);
}

static double mel_scale(double hz) {
    return 1127.0 * log(1.0 + hz / 700.0);
}

static double inverse_mel(double mel) {
    return 700.0 * (exp(mel / 1127.0) - 1.0);
}

void s2s_fbank_free(s2s_fbank *fb) {
    if (!fb) return;
    if (fb->w)
        for (int m = 0; m < fb->o.n_mels; m++)
            free(fb->w[m]);
    free(fb->w);
    free(fb->first);
    free(fb->len);
    free(fb->center_hz);
    free(fb->win);
    free(fb->T);
    free(fb->zr);
    free(fb->zi);
    free(fb->E);
    free(fb->twr);
    free(fb->twi);
    free(fb->pcr);
    free(fb->pci);
    free(fb->rev);
    free(fb->zrow);
    free(fb);
}

/* n floats, 64-byte aligned, zeroed. */
static float *alloc64(size_t n) {
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    float *p = aligned_alloc(64, bytes ? bytes : 64);
    if (p) memset(p, 0, bytes);
    return p;
}

static void group_run(s2s_fbank *fb, const float *xf, const int16_t *xs, const size_t *fi, size_t g,
                      float *out);

s2s_fbank *s2s_fbank_new(const s2s_fbank_opts *o, s2s_err *err) {
    if (s2s_fbank_opts_check(o, err) < 0) return NULL;
    s2s_fbank *fb = calloc(1, sizeof *fb);
    if (!fb) {
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        return NULL;
    }
    fb->o = *o;
    fb->frame = ms_to_samples(o->rate, o->frame_ms);
    fb->hop = ms_to_samples(o->rate, o->hop_ms);
    fb->nfft = 2;
    while (fb->nfft < fb->frame)
        fb->nfft *= 2;
    size_t nb = fb->nfft / 2, M = nb;
    int nm = o->n_mels;
    fb->M = M;
    fb->win = malloc(fb->frame * sizeof *fb->win);
    fb->T = alloc64(fb->frame * FB_B);
    fb->zr = alloc64(M * FB_B);
    fb->zi = alloc64(M * FB_B);
    fb->E = alloc64((size_t)nm * FB_B);
    fb->twr = alloc64(M / 2 + 1);
    fb->twi = alloc64(M / 2 + 1);
    fb->pcr = alloc64(M);
    fb->pci = alloc64(M);
    fb->rev = malloc(M * sizeof *fb->rev);
    fb->first = calloc((size_t)nm, sizeof *fb->first);
    fb->len = calloc((size_t)nm, sizeof *fb->len);
    fb->w = calloc((size_t)nm, sizeof *fb->w);
    fb->center_hz = calloc((size_t)nm, sizeof *fb->center_hz);
    if (!fb->win || !fb->T || !fb->zr || !fb->zi || !fb->E || !fb->twr || !fb->twi || !fb->pcr ||
        !fb->pci || !fb->rev || !fb->first || !fb->len || !fb->w || !fb->center_hz)
        goto nomem;
    /* FFT tables: twiddles computed in double, rounded to float once. */
    for (size_t t = 0; t < M / 2; t++) {
        double a = -2.0 * M_PI * (double)t / (double)M;
        fb->twr[t] = (float)cos(a);
        fb->twi[t] = (float)sin(a);
    }
    for (size_t k = 0; k < M; k++) {
        double a = -2.0 * M_PI * (double)k / (double)fb->nfft;
        fb->pcr[k] = (float)cos(a);
        fb->pci[k] = (float)sin(a);
    }
    int bits = 0;
    while (((size_t)1 << bits) < M)
        bits++;
    for (size_t i = 0; i < M; i++) {
        uint32_t r = 0;
        for (int b = 0; b < bits; b++)
            if (i >> b & 1) r |= 1u << (bits - 1 - b);
        fb->rev[i] = r;
    }
    /* Window, in double then rounded, as Kaldi's FeatureWindowFunction. */
    double a = 2.0 * M_PI / (double)(fb->frame - 1);
    for (size_t i = 0; i < fb->frame; i++) {
        double c = cos(a * (double)i), v;
        if (o->window == S2S_WIN_POVEY)
            v = pow(0.5 - 0.5 * c, 0.85);
        else if (o->window == S2S_WIN_HAMMING)
            v = 0.54 - 0.46 * c;
        else
            v = 0.5 - 0.5 * c;
        fb->win[i] = (float)v;
    }
    /* Mel filters as Kaldi's MelBanks: equal widths on the mel scale, evaluated at the centre
     * frequency of FFT bins 0 .. N/2-1 (the Nyquist bin is not used). */
    double bin_hz = (double)o->rate / (double)fb->nfft;
    double mlo = mel_scale(o->low_hz), mhi = mel_scale(resolved_high(o));
    double delta = (mhi - mlo) / (nm + 1);
    for (int m = 0; m < nm; m++) {
        double left = mlo + m * delta, center = left + delta, right = center + delta;
        fb->center_hz[m] = inverse_mel(center);
        size_t first = nb, last = 0;
        for (size_t i = 0; i < nb; i++) {
            double mel = mel_scale(bin_hz * (double)i);
            if (mel > left && mel < right) {
                if (first == nb) first = i;
                last = i;
            }
        }
        if (first == nb) { /* too narrow to hold a bin: an all-zero filter, as Kaldi */
            first = 0;
            last = 0;
        }
        fb->first[m] = first;
        fb->len[m] = last - first + 1;
        if (!(fb->w[m] = calloc(fb->len[m], sizeof(float)))) goto nomem;
        for (size_t i = first; i <= last; i++) {
            double mel = mel_scale(bin_hz * (double)i), v = 0;
            if (mel > left && mel < right)
                v = mel <= center ? (mel - left) / (center - left)
                                  : (right - mel) / (right - center);
            fb->w[m][i - first] = (float)v;
        }
    }
    s2s_fbank_set_impl(fb, -1);
    /* the features of silence (the same bits from every kernel) */
    int16_t *zeros = calloc(fb->frame, sizeof *zeros);
    if (!zeros || !(fb->zrow = malloc((size_t)nm * sizeof *fb->zrow))) {
        free(zeros);
        goto nomem;
    }
    const size_t fi0 = 0;
    group_run(fb, NULL, zeros, &fi0, 1, fb->zrow);
    free(zeros);
    return fb;
nomem:
    s2s_fbank_free(fb);
    s2s_err_set(err, S2S_ENOMEM, "out of memory");
    return NULL;
}

const s2s_fbank_opts *s2s_fbank_get_opts(const s2s_fbank *fb) {
    return &fb->o;
}
size_t s2s_fbank_frame_len(const s2s_fbank *fb) {
    return fb->frame;
}
size_t s2s_fbank_hop_len(const s2s_fbank *fb) {
    return fb->hop;
}
size_t s2s_fbank_fft_len(const s2s_fbank *fb) {
    return fb->nfft;
}

size_t s2s_fbank_n_frames(const s2s_fbank *fb, size_t n) {
    return n < fb->frame ? 0 : 1 + (n - fb->frame) / fb->hop;
}

const float *s2s_fbank_mel_weights(const s2s_fbank *fb, int m, size_t *first, size_t *len) {
    if (m < 0 || m >= fb->o.n_mels) return NULL;
    *first = fb->first[m];
    *len = fb->len[m];
    return fb->w[m];
}

double s2s_fbank_mel_center_hz(const s2s_fbank *fb, int m) {
    return m >= 0 && m < fb->o.n_mels ? fb->center_hz[m] : 0.0;
}

/* ---- the frame kernel -------------------------------------------------------------------
 * Frames are computed in groups of FB_B = 16, one frame per vector lane: every array of the
 * kernel holds, per row, the same quantity for the 16 frames of a group (structure of arrays),
 * and every step is written with GCC's vector types over whole rows. Each lane therefore does
 * exactly the scalar operations of the algorithm of docs/tokenize.md, in a fixed order (sums
 * included: the DC mean is a sequential sum in double, as in the scalar code); the vector width
 * of the CPU changes the speed and never a bit of the result. GCC in ISO C mode never contracts
 * a*b+c into an FMA, so the AVX2 copy of the kernel (chosen at run time) and the portable one
 * (SSE2) give the same floats on every x86-64 CPU (tests/unit/test_features.c compares them).
 * The FFT is our own (radix-2, decimation in time, twiddles rounded to float from double
 * cos/sin once), not libavutil's, whose SIMD variants are picked by the CPU. */
#define LN2_D 0.6931471805599453094

/* log(x) for x > 0 finite and normal (the mel energies, floored at FLT_EPSILON and capped at
 * FLT_MAX), computed in double and rounded once: x = 2^k z with z in [0.699, 1.398),
 * log z = 2 atanh(r), r = (z-1)/(z+1), |r| < 0.178, by its series to r^19 (truncation < 1e-16
 * relative). The double is within ~3e-16 relative of log x, so the float is the correctly
 * rounded log unless log x lies that close to a midpoint between two floats (tests compare it
 * with log() in double: docs/tokenize.md). No libm: no dependence on the C library's version. */
static inline __attribute__((always_inline)) double det_logd(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    uint32_t tmp = u - 0x3f330000u;
    int32_t k = (int32_t)tmp >> 23; /* arithmetic shift (GCC, clang) */
    uint32_t iz = u - (tmp & 0xff800000u);
    float z;
    memcpy(&z, &iz, sizeof z);
    double m = (double)z, r = (m - 1.0) / (m + 1.0), r2 = r * r;
    double p = 1.0 / 19;
    p = p * r2 + 1.0 / 17;
    p = p * r2 + 1.0 / 15;
    p = p * r2 + 1.0 / 13;
    p = p * r2 + 1.0 / 11;
    p = p * r2 + 1.0 / 9;
    p = p * r2 + 1.0 / 7;
    p = p * r2 + 1.0 / 5;
    p = p * r2 + 1.0 / 3;
    p = p * r2 + 1.0;
    return (double)k * LN2_D + 2.0 * r * p;
}

float s2s_fbank_log(float x) {
    if (!(x > 0)) return x == 0 ? -INFINITY : NAN;
    if (x < FLT_MIN) /* subnormal: scale by 2^24 first */
        return (float)(det_logd(x * 16777216.0f) - 24 * LN2_D);
    return x <= FLT_MAX ? (float)det_logd(x) : x; /* +inf unchanged */
}

/* The kernel, written once in features_kernel.inc over a native vector type of VW floats
 * (FB_B / VW vectors per row), instantiated for SSE2 (VW 4, the portable x86-64 baseline) and
 * for AVX2 (VW 8). */
typedef float vf4 __attribute__((vector_size(16)));
typedef int32_t vi4 __attribute__((vector_size(16)));
typedef double vd4 __attribute__((vector_size(32)));
typedef float vf8 __attribute__((vector_size(32)));
typedef int32_t vi8 __attribute__((vector_size(32)));
typedef double vd8 __attribute__((vector_size(64)));

#define KFN group_generic
#define KATTR __attribute__((optimize("O3")))
#define VW 4
#define VF vf4
#define VI vi4
#include "features_kernel.inc"
#undef KFN
#undef KATTR
#undef VW
#undef VF
#undef VI

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FB_HAVE_AVX2 1
#define KFN group_avx2
#define KATTR __attribute__((target("avx2"), optimize("O3")))
#define VW 8
#define VF vf8
#define VI vi8
#include "features_kernel.inc"
#undef KFN
#undef KATTR
#undef VW
#undef VF
#undef VI
/* AVX-512: one vector per row (same operations again; ~8% less CPU than AVX2 on a Zen 4). */
typedef float vf16 __attribute__((vector_size(64)));
typedef int32_t vi16 __attribute__((vector_size(64)));
#define KFN group_avx512
#define KATTR __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw"), optimize("O3")))
#define VW 16
#define VF vf16
#define VI vi16
#include "features_kernel.inc"
#undef KFN
#undef KATTR
#undef VW
#undef VF
#undef VI
#else
#define FB_HAVE_AVX2 0
#endif

int s2s_fbank_set_impl(s2s_fbank *fb, int impl) {
    if (impl < 0) {
        impl = s2s_cpu_has_kernel(2) ? 2 : s2s_cpu_has_kernel(1) ? 1 : 0;
    } else if (impl > 2) {
        return S2S_EINVAL;
    } else if (!s2s_cpu_has_kernel(impl)) {
        return S2S_EUNSUP;
    }
    fb->impl = impl;
    return impl;
}

/* Frames fi[0..g) (g <= FB_B, increasing) by the kernel of fb->impl; frame fi[f] to
 * out + (fi[f] - fi[0]) * n_mels. */
static void group_run(s2s_fbank *fb, const float *xf, const int16_t *xs, const size_t *fi, size_t g,
                      float *out) {
#if FB_HAVE_AVX2
    if (fb->impl == 2) {
        group_avx512(fb, xf, xs, fi, g, out);
        return;
    }
    if (fb->impl == 1) {
        group_avx2(fb, xf, xs, fi, g, out);
        return;
    }
#endif
    group_generic(fb, xf, xs, fi, g, out);
}

/* Index of the first non-zero sample of x[i..n), or n. */
static size_t first_nonzero(const int16_t *x, size_t i, size_t n) {
    for (; i + 4 <= n; i += 4) {
        uint64_t w;
        memcpy(&w, x + i, sizeof w);
        if (w) break;
    }
    while (i < n && x[i] == 0)
        i++;
    return i;
}

/* Frames [t0, t0+count) of x (16-bit or float), FB_B at a time. A 16-bit frame whose samples
 * are all 0 (digital silence: 14 % of the frames of espeak-ng speech) gets fb->zrow, the
 * kernel's result for such a frame computed once, and the kernel takes the next frames that are
 * not silent in its lanes instead (lanes are independent: a frame's features do not depend on
 * the frames computed beside it). */
static long frames_run(s2s_fbank *fb, const float *xf, const int16_t *xs, size_t n, size_t t0,
                       size_t count, float *out) {
    size_t nf = s2s_fbank_n_frames(fb, n), D = (size_t)fb->o.n_mels;
    if (t0 >= nf) return 0;
    if (count > nf - t0) count = nf - t0;
    size_t fi[FB_B], g = 0;
    if (!xs) {
        for (size_t t = 0; t < count; t += FB_B) {
            g = count - t < FB_B ? count - t : FB_B;
            for (size_t f = 0; f < g; f++)
                fi[f] = t0 + t + f;
            group_run(fb, xf, xs, fi, g, out + t * D);
        }
        return (long)count;
    }
    size_t L = fb->frame, hop = fb->hop;
    size_t scan = SIZE_MAX, nz = SIZE_MAX; /* xs[scan .. nz) are 0, xs[nz] is not (or nz = n) */
    for (size_t t = 0; t < count; t++) {
        size_t s0 = (t0 + t) * hop;
        if (s0 < scan || s0 > nz) {
            scan = s0;
            nz = first_nonzero(xs, s0, n);
        }
        if (nz >= s0 + L) { /* silent */
            memcpy(out + t * D, fb->zrow, D * sizeof *out);
            continue;
        }
        fi[g++] = t0 + t;
        if (g == FB_B) {
            group_run(fb, xf, xs, fi, g, out + (fi[0] - t0) * D);
            g = 0;
        }
    }
    if (g) group_run(fb, xf, xs, fi, g, out + (fi[0] - t0) * D);
    return (long)count;
}

long s2s_fbank_frames(s2s_fbank *fb, const float *x, size_t n, size_t t0, size_t count,
                      float *out) {
    return frames_run(fb, x, NULL, n, t0, count, out);
}

long s2s_fbank_frames_s16(s2s_fbank *fb, const int16_t *x, size_t n, size_t t0, size_t count,
                          float *out) {
    return frames_run(fb, NULL, x, n, t0, count, out);
}

int s2s_fbank_cmvn(float *out, size_t nf, size_t D) {
    if (nf == 0) return 0;
    for (size_t d = 0; d < D; d++) {
        double s = 0, ss = 0;
        for (size_t t = 0; t < nf; t++) {
            double v = out[t * D + d];
            s += v;
            ss += v * v;
        }
        double mean = s / (double)nf, var = ss / (double)nf - mean * mean;
        double inv = var > 1e-10 ? 1.0 / sqrt(var) : 1.0;
        for (size_t t = 0; t < nf; t++)
            out[t * D + d] = (float)((out[t * D + d] - mean) * inv);
    }
    return 0;
}

/* Index of the first sample that is NaN or infinite, or n. Vectorisable: an OR over the
 * exponent tests of blocks of 64 samples, the exact index looked for only in a bad block. */
static size_t first_nonfinite(const float *x, size_t n) {
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        uint32_t bad = 0;
        for (size_t j = 0; j < 64; j++) {
            uint32_t u;
            memcpy(&u, &x[i + j], sizeof u);
            bad |= (uint32_t)((u & 0x7f800000u) == 0x7f800000u);
        }
        if (bad) break;
    }
    for (; i < n; i++)
        if (!isfinite(x[i])) return i;
    return n;
}

long s2s_fbank_compute(s2s_fbank *fb, const float *x, size_t n, float *out, s2s_err *err) {
    size_t bad = first_nonfinite(x, n);
    if (bad < n) return s2s_err_set(err, S2S_EDATA, "sample %zu is not a finite number", bad);
    long nf = frames_run(fb, x, NULL, n, 0, SIZE_MAX, out);
    if (fb->o.cmvn) s2s_fbank_cmvn(out, (size_t)nf, (size_t)fb->o.n_mels);
    return nf;
}

long s2s_fbank_compute_s16(s2s_fbank *fb, const int16_t *x, size_t n, float *out) {
    long nf = frames_run(fb, NULL, x, n, 0, SIZE_MAX, out);
    if (fb->o.cmvn) s2s_fbank_cmvn(out, (size_t)nf, (size_t)fb->o.n_mels);
    return nf;
}
