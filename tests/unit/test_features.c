/* test_features.c — libs2s/features.c: frame counts, pure tones land in the right mel bin, the
 * whole pipeline against a slow direct-DFT reference written here from Kaldi's definitions,
 * CMVN, settings as JSON, errors. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "s2s/features.h"
#include "s2s/stats.h"

static float *tone(size_t n, int rate, double f, double amp) {
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(amp * sin(2 * M_PI * f * (double)i / rate));
    return x;
}

static s2s_fbank *make(const s2s_fbank_opts *o) {
    s2s_err err;
    s2s_err_clear(&err);
    s2s_fbank *fb = s2s_fbank_new(o, &err);
    if (!fb) fail_msg("s2s_fbank_new: %s", err.msg);
    return fb;
}

static void test_frame_counts(void **state) {
    (void)state;
    s2s_fbank_opts o;
    s2s_fbank_opts_default(&o);
    s2s_fbank *fb = make(&o);
    assert_int_equal(s2s_fbank_frame_len(fb), 400);
    assert_int_equal(s2s_fbank_hop_len(fb), 160);
    assert_int_equal(s2s_fbank_fft_len(fb), 512);
    assert_int_equal(s2s_fbank_n_frames(fb, 0), 0);
    assert_int_equal(s2s_fbank_n_frames(fb, 399), 0);
    assert_int_equal(s2s_fbank_n_frames(fb, 400), 1);
    assert_int_equal(s2s_fbank_n_frames(fb, 559), 1);
    assert_int_equal(s2s_fbank_n_frames(fb, 560), 2);
    assert_int_equal(s2s_fbank_n_frames(fb, 16000), 98); /* Kaldi: 1 s -> 98 frames */
    float out[80];
    float x[399] = {0};
    s2s_err err;
    assert_int_equal(s2s_fbank_compute(fb, x, 399, out, &err), 0);
    s2s_fbank_free(fb);
}

/* A tone at f puts the most energy in the filter whose triangle weighs f's FFT bin most, and
 * far more than in filters far from it. */
static void test_pure_tones(void **state) {
    (void)state;
    s2s_fbank_opts o;
    s2s_fbank_opts_default(&o);
    s2s_fbank *fb = make(&o);
    const double freqs[] = {150, 440, 1000, 2500, 4000, 7000};
    size_t n = 16000, nf = s2s_fbank_n_frames(fb, n);
    float *out = malloc(nf * 80 * sizeof *out);
    assert_non_null(out);
    for (size_t fi = 0; fi < sizeof freqs / sizeof *freqs; fi++) {
        double f = freqs[fi];
        float *x = tone(n, 16000, f, 0.5);
        s2s_err err;
        assert_int_equal(s2s_fbank_compute(fb, x, n, out, &err), (long)nf);
        double mean[80] = {0};
        for (size_t t = 0; t < nf; t++)
            for (int m = 0; m < 80; m++)
                mean[m] += out[t * 80 + m] / (double)nf;
        int best = 0;
        for (int m = 1; m < 80; m++)
            if (mean[m] > mean[best]) best = m;
        /* Expected: the filter with the largest weight at the tone's bin. */
        size_t bin = (size_t)lround(f / (16000.0 / 512));
        int want = -1;
        float ww = 0;
        for (int m = 0; m < 80; m++) {
            size_t first, len;
            const float *w = s2s_fbank_mel_weights(fb, m, &first, &len);
            if (bin >= first && bin < first + len && w[bin - first] > ww) {
                ww = w[bin - first];
                want = m;
            }
        }
        if (abs(best - want) > 0)
            fail_msg("tone %.0f Hz: peak in mel bin %d (centre %.0f Hz), expected %d (%.0f Hz)", f,
                     best, s2s_fbank_mel_center_hz(fb, best), want,
                     s2s_fbank_mel_center_hz(fb, want));
        /* The centre of that filter is near the tone (within one filter spacing). */
        double c = s2s_fbank_mel_center_hz(fb, best);
        assert_true(fabs(c - f) < 0.15 * f + 60);
        /* Far bins are much weaker: > 8 nepers (~35 dB) below the peak. */
        for (int m = 0; m < 80; m++)
            if (abs(m - best) > 8 && mean[m] > mean[best] - 8)
                fail_msg("tone %.0f Hz: mel bin %d only %.2f below the peak", f, m,
                         mean[best] - mean[m]);
        free(x);
    }
    free(out);
    s2s_fbank_free(fb);
}

/* Reference: Kaldi's fbank from its definitions, with a direct O(N^2) DFT in double. */
static double ref_mel(double hz) {
    return 1127.0 * log(1.0 + hz / 700.0);
}

static void reference(const float *x, size_t n, int n_mels, int cmvn, double *out, size_t *nf_out) {
    const size_t L = 400, H = 160, N = 512;
    size_t nf = n < L ? 0 : 1 + (n - L) / H;
    double w[400], fr[512], pw[256];
    for (size_t i = 0; i < L; i++)
        w[i] = pow(0.5 - 0.5 * cos(2 * M_PI * (double)i / (double)(L - 1)), 0.85);
    double mlo = ref_mel(20), mhi = ref_mel(8000), d = (mhi - mlo) / (n_mels + 1);
    for (size_t t = 0; t < nf; t++) {
        double mean = 0;
        for (size_t i = 0; i < L; i++) {
            fr[i] = x[t * H + i] * 32768.0;
            mean += fr[i];
        }
        mean /= (double)L;
        for (size_t i = 0; i < L; i++)
            fr[i] -= mean;
        for (size_t i = L - 1; i > 0; i--)
            fr[i] -= 0.97 * fr[i - 1];
        fr[0] -= 0.97 * fr[0];
        for (size_t i = 0; i < L; i++)
            fr[i] *= w[i];
        for (size_t k = 0; k < N / 2; k++) {
            double re = 0, im = 0;
            for (size_t i = 0; i < L; i++) { /* samples L..N-1 are the zero padding */
                double a = -2 * M_PI * (double)k * (double)i / (double)N;
                re += fr[i] * cos(a);
                im += fr[i] * sin(a);
            }
            pw[k] = re * re + im * im;
        }
        for (int m = 0; m < n_mels; m++) {
            double left = mlo + m * d, c = left + d, right = c + d, e = 0;
            for (size_t k = 0; k < N / 2; k++) {
                double mel = ref_mel(16000.0 * (double)k / (double)N);
                if (mel > left && mel < right)
                    e += pw[k] *
                         (mel <= c ? (mel - left) / (c - left) : (right - mel) / (right - c));
            }
            out[t * (size_t)n_mels + (size_t)m] = log(e > 1.1920929e-07 ? e : 1.1920929e-07);
        }
    }
    if (cmvn && nf)
        for (int m = 0; m < n_mels; m++) {
            double s = 0, ss = 0;
            for (size_t t = 0; t < nf; t++) {
                s += out[t * (size_t)n_mels + (size_t)m];
                ss += out[t * (size_t)n_mels + (size_t)m] * out[t * (size_t)n_mels + (size_t)m];
            }
            double mu = s / (double)nf, sd = sqrt(ss / (double)nf - mu * mu);
            for (size_t t = 0; t < nf; t++)
                out[t * (size_t)n_mels + (size_t)m] =
                    (out[t * (size_t)n_mels + (size_t)m] - mu) / sd;
        }
    *nf_out = nf;
}

static void compare_with_reference(int n_mels, int cmvn) {
    s2s_fbank_opts o;
    s2s_fbank_opts_default(&o);
    o.n_mels = n_mels;
    o.cmvn = cmvn;
    s2s_fbank *fb = make(&o);
    /* Noise plus a chirp: energy in every filter, values that change from frame to frame. */
    size_t n = 400 + 160 * 24 + 77;
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    s2s_rng r;
    s2s_rng_seed(&r, 7);
    for (size_t i = 0; i < n; i++) {
        double u = (double)(s2s_rng_next(&r) >> 11) / 9007199254740992.0 - 0.5;
        double tt = (double)i / 16000;
        x[i] = (float)(0.1 * u + 0.3 * sin(2 * M_PI * (100 + 30000 * tt) * tt));
    }
    size_t nf = s2s_fbank_n_frames(fb, n), rnf;
    float *out = malloc(nf * (size_t)n_mels * sizeof *out);
    double *ref = malloc(nf * (size_t)n_mels * sizeof *ref);
    assert_true(out && ref);
    s2s_err err;
    assert_int_equal(s2s_fbank_compute(fb, x, n, out, &err), (long)nf);
    reference(x, n, n_mels, cmvn, ref, &rnf);
    assert_int_equal(nf, rnf);
    assert_int_equal(nf, 25);
    double worst = 0;
    for (size_t i = 0; i < nf * (size_t)n_mels; i++) {
        double e = fabs(out[i] - ref[i]);
        if (e > worst) worst = e;
    }
    /* Float FFT vs double DFT: log-energies (natural log, values ~10..25) agree to 1e-3. */
    if (worst > 1e-3)
        fail_msg("n_mels %d cmvn %d: max |ours - reference| = %g", n_mels, cmvn, worst);
    free(x);
    free(out);
    free(ref);
    s2s_fbank_free(fb);
}

static void test_reference_dft(void **state) {
    (void)state;
    compare_with_reference(80, 0);
    compare_with_reference(23, 0); /* Kaldi's own default bin count */
    compare_with_reference(80, 1);
}

static void test_cmvn(void **state) {
    (void)state;
    s2s_fbank_opts o;
    s2s_fbank_opts_default(&o);
    o.cmvn = 1;
    s2s_fbank *fb = make(&o);
    size_t n = 8000, nf = s2s_fbank_n_frames(fb, n);
    float *x = tone(n, 16000, 700, 0.3);
    for (size_t i = 0; i < n; i++)
        x[i] *= (float)(0.2 + (double)i / (double)n); /* a rising level: non-constant frames */
    float *out = malloc(nf * 80 * sizeof *out);
    s2s_err err;
    assert_int_equal(s2s_fbank_compute(fb, x, n, out, &err), (long)nf);
    for (int m = 0; m < 80; m++) {
        double s = 0, ss = 0;
        for (size_t t = 0; t < nf; t++) {
            s += out[t * 80 + m];
            ss += (double)out[t * 80 + m] * out[t * 80 + m];
        }
        assert_true(fabs(s / (double)nf) < 1e-4);
        assert_true(fabs(ss / (double)nf - 1.0) < 1e-3);
    }
    free(x);
    free(out);
    s2s_fbank_free(fb);
}

static void test_json_and_errors(void **state) {
    (void)state;
    s2s_fbank_opts o, back;
    s2s_fbank_opts_default(&o);
    o.window = S2S_WIN_HAMMING;
    o.cmvn = 1;
    o.n_mels = 40;
    json_t *j = s2s_fbank_opts_to_json(&o);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "frame_samples")), 400);
    assert_true(json_real_value(json_object_get(j, "high_hz")) == 8000.0);
    s2s_err err;
    s2s_err_clear(&err);
    assert_int_equal(s2s_fbank_opts_from_json(j, &back, &err), 0);
    assert_int_equal(back.window, S2S_WIN_HAMMING);
    assert_int_equal(back.n_mels, 40);
    assert_int_equal(back.cmvn, 1);
    assert_true(back.preemph == o.preemph && back.hop_ms == o.hop_ms);
    json_object_del(j, "n_mels");
    assert_int_equal(s2s_fbank_opts_from_json(j, &back, &err), S2S_EFORMAT);
    assert_non_null(strstr(err.msg, "n_mels"));
    json_decref(j);

    s2s_fbank_opts bad = o;
    bad.high_hz = 9000; /* above Nyquist */
    assert_int_equal(s2s_fbank_opts_check(&bad, &err), S2S_EINVAL);
    assert_null(s2s_fbank_new(&bad, &err));
    bad = o;
    bad.n_mels = 0;
    assert_int_equal(s2s_fbank_opts_check(&bad, &err), S2S_EINVAL);
    bad = o;
    bad.hop_ms = 30;
    assert_int_equal(s2s_fbank_opts_check(&bad, &err), S2S_EINVAL);
    assert_int_equal(s2s_fbank_window_parse("povey"), S2S_WIN_POVEY);
    assert_int_equal(s2s_fbank_window_parse("blackman"), -1);

    s2s_fbank_opts_default(&o);
    s2s_fbank *fb = make(&o);
    float *x = tone(800, 16000, 300, 0.5), out[2 * 80];
    x[500] = NAN;
    assert_int_equal(s2s_fbank_compute(fb, x, 800, out, &err), S2S_EDATA);
    assert_non_null(strstr(err.msg, "500"));
    free(x);
    s2s_fbank_free(fb);
}

/* Random 16-bit "speech": a random walk with bursts, so frames differ and some are silent. */
static int16_t *rand_s16(size_t n, uint64_t seed) {
    int16_t *x = malloc(n * sizeof *x);
    assert_non_null(x);
    s2s_rng r;
    s2s_rng_seed(&r, seed);
    double v = 0;
    for (size_t i = 0; i < n; i++) {
        double step = (double)(s2s_rng_next(&r) >> 11) / 9007199254740992.0 - 0.5;
        v = 0.97 * v + step * ((i / 4000) % 3 == 0 ? 20.0 : 8000.0);
        long s = lrint(v);
        x[i] = (int16_t)(s > 32767 ? 32767 : s < -32768 ? -32768 : s);
    }
    return x;
}

/* The portable kernel, the AVX2 one, the 16-bit and the float entry points and chunked
 * computation all give the same bits; several option sets (FFT sizes, windows, scale). */
static void test_paths_bit_identical(void **state) {
    (void)state;
    for (int variant = 0; variant < 5; variant++) {
        s2s_fbank_opts o;
        s2s_fbank_opts_default(&o);
        if (variant == 1) {
            o.n_mels = 23;
            o.window = S2S_WIN_HAMMING;
            o.frame_ms = 32; /* 512 samples: frame = FFT size */
        } else if (variant == 2) {
            o.rate = 8000;
            o.scale = 1000;
            o.remove_dc = 0;
            o.preemph = 0;
        } else if (variant == 3) {
            o.rate = 1000;
            o.frame_ms = 4; /* 4 samples: a 4-point FFT */
            o.hop_ms = 2;
            o.n_mels = 1;
            o.low_hz = 0;
        } else if (variant == 4) {
            o.rate = 1000;
            o.frame_ms = 2; /* 2 samples: the 1-point complex FFT */
            o.hop_ms = 1;
            o.n_mels = 2;
            o.low_hz = 0;
        }
        s2s_fbank *fb = make(&o);
        size_t n = 40000 + (size_t)variant * 77, D = (size_t)o.n_mels;
        size_t nf = s2s_fbank_n_frames(fb, n);
        int16_t *xs = rand_s16(n, 7 + (uint64_t)variant);
        float *xf = malloc(n * sizeof *xf);
        float *a = malloc(nf * D * sizeof *a), *b = malloc(nf * D * sizeof *b);
        assert_true(xf && a && b);
        for (size_t i = 0; i < n; i++)
            xf[i] = (float)xs[i] / 32768.0f;
        s2s_err err;
        assert_int_equal(s2s_fbank_set_impl(fb, 0), 0);
        assert_int_equal(s2s_fbank_compute(fb, xf, n, a, &err), (long)nf);
        for (int impl = 1; impl <= 2; impl++) {
            int rc = s2s_fbank_set_impl(fb, impl);
            if (rc != impl) {
                assert_int_equal(rc, S2S_EUNSUP);
                print_message("kernel %d not available on this CPU: not tested\n", impl);
                continue;
            }
            memset(b, 0, nf * D * sizeof *b);
            assert_int_equal(s2s_fbank_compute(fb, xf, n, b, &err), (long)nf);
            if (memcmp(a, b, nf * D * sizeof *a) != 0)
                fail_msg("variant %d: kernel %d and the portable one differ", variant, impl);
        }
        /* the rest with the best kernel, and the 16-bit path of every kernel */
        for (int impl = 0; impl <= 2; impl++) {
            if (s2s_fbank_set_impl(fb, impl) != impl) continue;
            memset(b, 0, nf * D * sizeof *b);
            assert_int_equal(s2s_fbank_compute_s16(fb, xs, n, b), (long)nf);
            if (memcmp(a, b, nf * D * sizeof *a) != 0)
                fail_msg("variant %d: kernel %d, 16-bit input differs", variant, impl);
        }
        assert_true(s2s_fbank_set_impl(fb, -1) >= 0);
        /* 16-bit input: same floats as the float input */
        memset(b, 0, nf * D * sizeof *b);
        assert_int_equal(s2s_fbank_compute_s16(fb, xs, n, b), (long)nf);
        if (memcmp(a, b, nf * D * sizeof *a) != 0)
            fail_msg("variant %d: 16-bit and float input differ", variant);
        /* chunks of 37 frames (not a multiple of the group size) */
        memset(b, 0, nf * D * sizeof *b);
        for (size_t t = 0; t < nf; t += 37) {
            long got = variant & 1 ? s2s_fbank_frames(fb, xf, n, t, 37, b + t * D)
                                   : s2s_fbank_frames_s16(fb, xs, n, t, 37, b + t * D);
            assert_int_equal(got, (long)(nf - t < 37 ? nf - t : 37));
        }
        assert_int_equal(s2s_fbank_frames_s16(fb, xs, n, nf, 5, b), 0);
        if (memcmp(a, b, nf * D * sizeof *a) != 0)
            fail_msg("variant %d: chunked and whole computation differ", variant);
        for (size_t i = 0; i < nf * D; i++)
            assert_true(isfinite(a[i]));
        assert_int_equal(s2s_fbank_set_impl(fb, 7), S2S_EINVAL);
        assert_int_equal(s2s_fbank_set_impl(fb, 0), 0);
        memset(b, 0, nf * D * sizeof *b);
        for (size_t t = 0; t < nf; t += 16) /* portable kernel, 16-bit, whole groups */
            s2s_fbank_frames_s16(fb, xs, n, t, 16, b + t * D);
        if (memcmp(a, b, nf * D * sizeof *a) != 0)
            fail_msg("variant %d: portable kernel, 16-bit input differs", variant);
        free(xs);
        free(xf);
        free(a);
        free(b);
        s2s_fbank_free(fb);
    }
}

/* The features of session 4's kernel, pinned: FNV-1a 64 of the output float bits for option
 * sets that take every path of the kernel (even and odd FFT stage counts, the 1- and 2-point
 * complex FFT, frame = FFT size, no DC removal, float and 16-bit input), from every kernel this
 * CPU has. A faster kernel must give these bits (items record units made from them). */
static uint64_t fnv64(const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void test_pinned_bits(void **state) {
    (void)state;
    static const uint64_t want[7] = {
        0xb67c9c2d9eb34639ull, 0xd898bfcdf5b18f55ull, 0xd72ef8f6cc9fbbe1ull, 0x1ec0254f6e8b349eull,
        0xeebb7159ffdab30full, 0x89d070d15da73caeull, 0x58f55e5a3170af3bull};
    for (int variant = 0; variant < 7; variant++) {
        s2s_fbank_opts o;
        s2s_fbank_opts_default(&o);
        if (variant == 1) {
            o.n_mels = 23;
            o.window = S2S_WIN_HAMMING;
            o.frame_ms = 32;
        } else if (variant == 2) { /* 200 samples: 128-point complex FFT, 7 stages */
            o.rate = 8000;
            o.scale = 1000;
            o.remove_dc = 0;
            o.preemph = 0;
        } else if (variant == 3) {
            o.rate = 1000;
            o.frame_ms = 4;
            o.hop_ms = 2;
            o.n_mels = 1;
            o.low_hz = 0;
        } else if (variant == 4) {
            o.rate = 1000;
            o.frame_ms = 2;
            o.hop_ms = 1;
            o.n_mels = 2;
            o.low_hz = 0;
        } else if (variant == 5) { /* 8 samples: the 4-point complex FFT */
            o.rate = 1000;
            o.frame_ms = 8;
            o.hop_ms = 3;
            o.n_mels = 3;
            o.low_hz = 0;
            o.remove_dc = 0;
            o.preemph = 0.5;
        } else if (variant == 6) {
            o.remove_dc = 0;
            o.window = S2S_WIN_HANN;
            o.n_mels = 40;
            o.low_hz = 100;
            o.high_hz = -400;
        }
        s2s_fbank *fb = make(&o);
        size_t n = 40000 + (size_t)variant * 77, D = (size_t)o.n_mels;
        size_t nf = s2s_fbank_n_frames(fb, n);
        int16_t *xs = rand_s16(n, 7 + (uint64_t)variant);
        float *xf = malloc(n * sizeof *xf), *a = malloc(nf * D * sizeof *a);
        assert_true(xf && a);
        for (size_t i = 0; i < n; i++)
            xf[i] = (float)xs[i] / 32768.0f;
        for (int impl = 0; impl <= 2; impl++) {
            if (s2s_fbank_set_impl(fb, impl) != impl) continue;
            s2s_err err;
            s2s_err_clear(&err);
            assert_int_equal(s2s_fbank_compute(fb, xf, n, a, &err), (long)nf);
            if (fnv64(a, nf * D * sizeof *a) != want[variant])
                fail_msg("variant %d kernel %d: float input, bits changed", variant, impl);
            assert_int_equal(s2s_fbank_compute_s16(fb, xs, n, a), (long)nf);
            if (fnv64(a, nf * D * sizeof *a) != want[variant])
                fail_msg("variant %d kernel %d: 16-bit input, bits changed", variant, impl);
        }
        s2s_fbank_free(fb);
        free(xs);
        free(xf);
        free(a);
    }
}

/* The deterministic log against log() in double: every result is within 1 ulp of the
 * correctly rounded value, and in practice equal to it (counted). */
static void test_log_accuracy(void **state) {
    (void)state;
    s2s_rng r;
    s2s_rng_seed(&r, 42);
    size_t n = 0, exact = 0;
    double worst = 0;
    for (int i = 0; i < 3000000; i++) {
        uint32_t u;
        float x;
        if (i < 1000000) /* uniform over the bit patterns of positive normal floats */
            u = 0x00800000u + (uint32_t)(s2s_rng_next(&r) % (0x7f800000u - 0x00800000u));
        else if (i < 2000000) /* near 1 (relative accuracy of small logs) */
            u = 0x3f000000u + (uint32_t)(s2s_rng_next(&r) % 0x01000000u);
        else /* the range of mel energies: FLT_EPSILON .. 1e13 */
            u = 0x34000000u + (uint32_t)(s2s_rng_next(&r) % (0x55800000u - 0x34000000u));
        memcpy(&x, &u, 4);
        double ref = log((double)x);
        float got = s2s_fbank_log(x), cr = (float)ref;
        n++;
        exact += got == cr;
        double ulp = fabs(nextafterf(cr, INFINITY) - cr);
        double e = fabs((double)got - ref) / ulp;
        if (e > worst) worst = e;
    }
    print_message("s2s_fbank_log: %zu of %zu equal to (float)log(double), max error %.4f ulp\n",
                  exact, n, worst);
    assert_true(worst < 0.5001);
    assert_true(exact == n);
    assert_true(s2s_fbank_log(1.0f) == 0.0f);
    assert_true(isinf(s2s_fbank_log(0.0f)) && s2s_fbank_log(0.0f) < 0);
    assert_true(isnan(s2s_fbank_log(-1.0f)));
    assert_true(isinf(s2s_fbank_log(INFINITY)));
    assert_true(fabsf(s2s_fbank_log(1e-40f) - (float)log(1e-40)) <= 1e-5f); /* subnormal */
    assert_true(s2s_fbank_log(FLT_MAX) == (float)log((double)FLT_MAX));
}

/* Digital silence: 16-bit frames of zeros take a precomputed row instead of the kernel. Runs
 * of zeros of many lengths (shorter than a frame, a few frames, many groups; at the start, in
 * the middle, at the end) must give the bits of the float path (which computes every frame),
 * whole and in chunks of 37 frames, from every kernel. */
static void test_silence(void **state) {
    (void)state;
    s2s_fbank_opts o;
    s2s_fbank_opts_default(&o);
    s2s_fbank *fb = make(&o);
    size_t n = 160000, D = (size_t)o.n_mels, nf = s2s_fbank_n_frames(fb, n);
    int16_t *xs = rand_s16(n, 99);
    const size_t runs[][2] = {{0, 5000},      {9000, 9399},   {12000, 12400}, {20000, 20900},
                              {30000, 36000}, {50000, 50561}, {70001, 90000}, {150000, 160000}};
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++)
        for (size_t i = runs[r][0]; i < runs[r][1]; i++)
            xs[i] = 0;
    float *xf = malloc(n * sizeof *xf), *a = malloc(nf * D * sizeof *a);
    float *b = malloc(nf * D * sizeof *b);
    assert_true(xf && a && b);
    for (size_t i = 0; i < n; i++)
        xf[i] = (float)xs[i] / 32768.0f;
    size_t silent = 0;
    for (size_t t = 0; t < nf; t++) {
        size_t z = 0;
        for (size_t i = 0; i < s2s_fbank_frame_len(fb); i++)
            z += xs[t * s2s_fbank_hop_len(fb) + i] == 0;
        silent += z == s2s_fbank_frame_len(fb);
    }
    assert_true(silent > nf / 5); /* the runs do make silent frames */
    for (int impl = 0; impl <= 2; impl++) {
        if (s2s_fbank_set_impl(fb, impl) != impl) continue;
        s2s_err err;
        s2s_err_clear(&err);
        assert_int_equal(s2s_fbank_compute(fb, xf, n, a, &err), (long)nf);
        assert_int_equal(s2s_fbank_compute_s16(fb, xs, n, b), (long)nf);
        if (memcmp(a, b, nf * D * sizeof *a) != 0)
            fail_msg("kernel %d: 16-bit input with silence differs from float input", impl);
        for (size_t t0 = 0; t0 < nf; t0 += 37)
            assert_true(s2s_fbank_frames_s16(fb, xs, n, t0, 37, b + t0 * D) > 0);
        if (memcmp(a, b, nf * D * sizeof *a) != 0)
            fail_msg("kernel %d: chunks of 37 frames with silence differ", impl);
    }
    s2s_fbank_free(fb);
    free(xs);
    free(xf);
    free(a);
    free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_counts),    cmocka_unit_test(test_pure_tones),
        cmocka_unit_test(test_reference_dft),   cmocka_unit_test(test_cmvn),
        cmocka_unit_test(test_json_and_errors), cmocka_unit_test(test_paths_bit_identical),
        cmocka_unit_test(test_log_accuracy),    cmocka_unit_test(test_pinned_bits),
        cmocka_unit_test(test_silence)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
