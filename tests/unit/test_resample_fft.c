/* test_resample_fft.c — libs2s/resample_fft.c (the "s2s" engine), through s2s/resample.h and
 * its own header: tones and sweeps against the exact answer at the five rate pairs speech
 * models use, stop band, exact length, time alignment (an impulse lands where it should,
 * symmetric), streaming in any block sizes = one call (same bytes), reset = new handle, every
 * kernel (portable / AVX2 / AVX-512) bit-identical, unsupported pairs fall back to soxr and
 * say so. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "resample_fft.h"
#include "s2s/resample.h"

static const int pairs[][2] = {
    {22050, 16000}, {22050, 24000}, {44100, 16000}, {48000, 16000}, {16000, 24000},
};
enum { N_PAIRS = sizeof pairs / sizeof pairs[0] };

/* Converts x[0..n-1] with a new s2s handle on kernel impl, in blocks of the given sizes
 * (cycled; NULL: one block). Returns the malloc'd output, *m its length. */
static float *run(const float *x, size_t n, int in, int out, int impl, const size_t *blocks,
                  size_t nb, size_t *m) {
    s2s_err err;
    s2s_err_clear(&err);
    s2s_resampler *r = s2s_resampler_new(S2S_RS_S2S, S2S_RS_MEDIUM, in, out, &err);
    assert_non_null(r);
    assert_int_equal(s2s_resampler_engine(r), S2S_RS_S2S);
    int got_impl = s2s_resampler_set_impl(r, impl);
    if (impl < 0 ? got_impl < 0 : got_impl != impl) {
        s2s_resampler_free(r);
        return NULL;
    }
    size_t want = s2s_resample_out_len(n, in, out), got = 0, k;
    float *y = malloc((want + 1) * sizeof *y);
    assert_non_null(y);
    const float *p;
    for (size_t i = 0, b = 0; i < n; b++) {
        size_t len = blocks ? blocks[b % nb] : n;
        if (len > n - i) len = n - i;
        assert_int_equal(s2s_resampler_process(r, x + i, len, &p, &k, &err), 0);
        assert_true(got + k <= want);
        if (k) memcpy(y + got, p, k * sizeof *p);
        got += k;
        i += len;
    }
    assert_int_equal(s2s_resampler_flush(r, &p, &k, &err), 0);
    assert_true(got + k <= want);
    if (k) memcpy(y + got, p, k * sizeof *p);
    got += k;
    assert_int_equal(got, want);
    s2s_resampler_free(r);
    *m = got;
    return y;
}

/* exact signals: a tone, and a linear chirp f0 -> f1 over the whole length */
static double sig(int kind, double t, double f0, double f1, double dur) {
    if (kind == 0) return 0.5 * sin(2 * M_PI * f0 * t);
    return 0.5 * sin(2 * M_PI * (f0 * t + (f1 - f0) * t * t / (2 * dur)));
}

static float *make(int kind, size_t n, int rate, double f0, double f1) {
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)sig(kind, (double)i / rate, f0, f1, (double)n / rate);
    return x;
}

/* SNR (dB) of y against the exact signal at the output rate, 50 ms edges left out */
static double snr(const float *y, size_t m, int rate, int kind, double f0, double f1, double dur) {
    size_t e = (size_t)rate / 20;
    double s = 0, d = 0;
    for (size_t i = e; i + e < m; i++) {
        double r = sig(kind, (double)i / rate, f0, f1, dur);
        s += r * r;
        d += (y[i] - r) * (y[i] - r);
    }
    return d > 0 ? 10 * log10(s / d) : 999;
}

/* Tones (low, mid, near the passband edge) and a sweep to 90 % of the lower Nyquist frequency:
 * >= 125 dB / 120 dB against the exact answer (float output; sox -h measures ~113-138). */
static void test_exact(void **state) {
    (void)state;
    for (int p = 0; p < N_PAIRS; p++) {
        int in = pairs[p][0], out = pairs[p][1];
        double ny = (in < out ? in : out) / 2.0;
        size_t n = (size_t)in * 2 + 321;
        double dur = (double)n / in;
        const double tones[] = {440, 1000, 3517, 0.9 * ny};
        for (int t = 0; t < 4; t++) {
            float *x = make(0, n, in, tones[t], 0), *y;
            size_t m;
            y = run(x, n, in, out, -1, NULL, 0, &m);
            double s = snr(y, m, out, 0, tones[t], 0, dur);
            if (s < 125)
                fail_msg("%d -> %d: %.0f Hz tone: SNR %.1f dB < 125", in, out, tones[t], s);
            free(x);
            free(y);
        }
        float *x = make(1, n, in, 20, 0.9 * ny), *y;
        size_t m;
        y = run(x, n, in, out, -1, NULL, 0, &m);
        double s = snr(y, m, out, 1, 20, 0.9 * ny, dur);
        if (s < 120) fail_msg("%d -> %d: sweep SNR %.1f dB < 120", in, out, s);
        print_message("%d -> %d: sweep 20-%.0f Hz SNR %.1f dB\n", in, out, 0.9 * ny, s);
        free(x);
        free(y);
    }
}

/* A tone above the new Nyquist frequency vanishes (>= 115 dB down; 10 Hz above it too). */
static void test_stopband(void **state) {
    (void)state;
    for (int p = 0; p < N_PAIRS; p++) {
        int in = pairs[p][0], out = pairs[p][1];
        if (out > in) continue;
        const double fs[] = {out / 2.0 + 10, out / 2.0 + 500, in / 2.0 - 200};
        for (int t = 0; t < 3; t++) {
            size_t n = (size_t)in;
            float *x = make(0, n, in, fs[t], 0), *y;
            size_t m;
            y = run(x, n, in, out, -1, NULL, 0, &m);
            double s = 0; /* 50 ms edges left out: the tone's abrupt start and end are wide-band */
            size_t e = (size_t)out / 20;
            for (size_t i = e; i + e < m; i++)
                s += (double)y[i] * y[i];
            double db = 10 * log10(s / (double)(m - 2 * e) / 0.125 + 1e-30);
            if (db > -115) fail_msg("%d -> %d: %.0f Hz left at %.1f dB", in, out, fs[t], db);
            print_message("%d -> %d: %.0f Hz tone left at %.1f dB\n", in, out, fs[t], db);
            free(x);
            free(y);
        }
    }
}

/* round(n * out / in) samples for every short length and a few odd long ones */
static void test_length(void **state) {
    (void)state;
    for (int p = 0; p < N_PAIRS; p++) {
        int in = pairs[p][0], out = pairs[p][1];
        float *x = make(0, 9000, in, 1000, 0);
        for (size_t n = 0; n < 9000; n = n < 40 ? n + 1 : n * 3 + 7) {
            size_t m;
            float *y = run(x, n, in, out, -1, NULL, 0, &m); /* asserts the length */
            assert_int_equal(m, s2s_resample_out_len(n, in, out));
            free(y);
        }
        free(x);
    }
}

/* An impulse at input sample i0 = a*j (output instant n0 = b*j exactly): the output peaks at
 * n0 and is symmetric around it (the filter is linear-phase and its delay is taken out). */
static void test_alignment(void **state) {
    (void)state;
    for (int p = 0; p < N_PAIRS; p++) {
        int in = pairs[p][0], out = pairs[p][1];
        int g = in, h = out;
        while (h) {
            int t = g % h;
            g = h;
            h = t;
        }
        size_t a = (size_t)(in / g), b = (size_t)(out / g), j = 5000 / a + 1;
        size_t n = a * j * 2 + 77, i0 = a * j, n0 = b * j;
        float *x = calloc(n, sizeof *x), *y;
        assert_non_null(x);
        x[i0] = 1;
        size_t m;
        y = run(x, n, in, out, -1, NULL, 0, &m);
        size_t imax = 0;
        for (size_t i = 0; i < m; i++)
            if (fabsf(y[i]) > fabsf(y[imax])) imax = i;
        assert_int_equal(imax, n0);
        for (size_t k = 1; k < 40; k++)
            if (fabs((double)y[n0 - k] - y[n0 + k]) > 1e-6 * fabs(y[n0]))
                fail_msg("%d -> %d: impulse response not symmetric at +-%zu: %g %g", in, out, k,
                         (double)y[n0 - k], (double)y[n0 + k]);
        free(x);
        free(y);
    }
}

/* noise with an LCG: the same input on every machine */
static float *noise(size_t n) {
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    uint32_t s = 12345;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((int32_t)(s >> 16) - 32768) / 32768.0f;
    }
    return x;
}

/* Blocks of 1, 7, 1000, ... samples give the same bytes as one call; and every kernel the
 * CPU has gives the same bytes as the portable one. */
static void test_blocks_and_kernels(void **state) {
    (void)state;
    static const size_t blocks[] = {1, 7, 1000, 3, 4096, 65536, 13};
    for (int p = 0; p < N_PAIRS; p++) {
        int in = pairs[p][0], out = pairs[p][1];
        size_t n = 200003;
        float *x = noise(n);
        size_t m0, m;
        float *y0 = run(x, n, in, out, 0, NULL, 0, &m0);
        assert_non_null(y0);
        float *y = run(x, n, in, out, 0, blocks, 7, &m);
        assert_int_equal(m, m0);
        if (memcmp(y, y0, m * sizeof *y) != 0)
            fail_msg("%d -> %d: streaming in blocks changed the bytes", in, out);
        free(y);
        for (int impl = 1; impl <= 2; impl++) {
            y = run(x, n, in, out, impl, impl == 1 ? blocks : NULL, 7, &m);
            if (!y) {
                print_message("kernel %d not available on this CPU: not tested\n", impl);
                continue;
            }
            assert_int_equal(m, m0);
            if (memcmp(y, y0, m * sizeof *y) != 0)
                fail_msg("%d -> %d: kernel %d and the portable one differ", in, out, impl);
            free(y);
        }
        free(x);
        free(y0);
    }
}

/* A reset handle gives the bytes of a new one (s2s-resample reuses handles across members). */
static void test_reset(void **state) {
    (void)state;
    size_t n = 120011; /* enough for whole batches of pairs before the flush */
    float *x = noise(n), *y0, *y1;
    size_t m;
    y0 = run(x + 5, n - 5, 22050, 16000, -1, NULL, 0, &m);
    s2s_err err;
    s2s_resampler *r = s2s_resampler_new(S2S_RS_S2S, S2S_RS_MEDIUM, 22050, 16000, &err);
    assert_non_null(r);
    const float *p;
    size_t k;
    assert_int_equal(s2s_resampler_process(r, x, 12345, &p, &k, &err), 0);
    assert_int_equal(s2s_resampler_reset(r, &err), 0); /* mid-stream, without a flush */
    y1 = malloc(m * sizeof *y1);
    size_t got = 0;
    assert_int_equal(s2s_resampler_process(r, x + 5, n - 5, &p, &k, &err), 0);
    assert_true(k > 0);
    memcpy(y1, p, k * sizeof *p);
    got = k;
    assert_int_equal(s2s_resampler_flush(r, &p, &k, &err), 0);
    assert_true(k > 0);
    memcpy(y1 + got, p, k * sizeof *p);
    got += k;
    assert_int_equal(got, m);
    assert_memory_equal(y0, y1, m * sizeof *y0);
    /* and again after a flush */
    assert_int_equal(s2s_resampler_reset(r, &err), 0);
    assert_int_equal(s2s_resampler_process(r, x + 5, n - 5, &p, &k, &err), 0);
    assert_true(k > 0);
    assert_memory_equal(y0, p, k * sizeof *p);
    s2s_resampler_free(r);
    free(x);
    free(y0);
    free(y1);
}

/* Pairs the engine does not take run soxr, and the handle says so; best/fastest are soxr's. */
static void test_fallback(void **state) {
    (void)state;
    s2s_err err;
    s2s_err_clear(&err);
    assert_null(s2s_rsfft_new(22050, 11111, &err)); /* 11111 = 41 * 271 */
    assert_int_equal(err.code, S2S_EUNSUP);
    s2s_resampler *r = s2s_resampler_new(S2S_RS_S2S, S2S_RS_MEDIUM, 22050, 11111, &err);
    assert_non_null(r);
    assert_int_equal(s2s_resampler_engine(r), S2S_RS_SOXR);
    assert_non_null(s2s_resampler_note(r));
    assert_non_null(strstr(s2s_resampler_note(r), "prime factor above 7"));
    s2s_resampler_free(r);
    r = s2s_resampler_new(S2S_RS_S2S, S2S_RS_BEST, 22050, 16000, &err);
    assert_non_null(r);
    assert_int_equal(s2s_resampler_engine(r), S2S_RS_SOXR);
    assert_null(s2s_resampler_note(r));
    s2s_resampler_free(r);
    r = s2s_resampler_new(S2S_RS_S2S, S2S_RS_MEDIUM, 22050, 16000, &err);
    assert_int_equal(s2s_resampler_engine(r), S2S_RS_S2S);
    assert_null(s2s_resampler_note(r));
    s2s_resampler_free(r);
    /* equal rates copy */
    float x[3] = {0.25f, -1, 0.5f}, *y;
    size_t m;
    assert_int_equal(
        s2s_resample_buffer(S2S_RS_S2S, S2S_RS_MEDIUM, x, 3, 16000, 16000, &y, &m, &err), 0);
    assert_int_equal(m, 3);
    assert_memory_equal(x, y, sizeof x);
    free(y);
    /* the design for 22050 -> 16000: 441 taps, 1764 / 1280-point transforms */
    s2s_rsfft *f = s2s_rsfft_new(22050, 16000, &err);
    assert_non_null(f);
    size_t taps, ni, no, hi, ho;
    s2s_rsfft_info(f, &taps, &ni, &no, &hi, &ho);
    assert_int_equal(taps, 441);
    assert_int_equal(ni, 1764);
    assert_int_equal(no, 1280);
    assert_int_equal(hi * 16000, ho * 22050);
    assert_int_equal(s2s_rsfft_set_impl(f, 3), S2S_EINVAL);
    s2s_rsfft_free(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact),
        cmocka_unit_test(test_stopband),
        cmocka_unit_test(test_length),
        cmocka_unit_test(test_alignment),
        cmocka_unit_test(test_blocks_and_kernels),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_fallback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
