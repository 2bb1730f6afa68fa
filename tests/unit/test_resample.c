/* test_resample.c — libs2s/resample.c: exact lengths, time alignment, tone SNR and stop-band
 * rejection of every engine/quality, streaming in odd blocks = one block, errors. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "s2s/resample.h"

static float *tone(size_t n, int rate, double f, double amp) {
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(amp * sin(2 * M_PI * f * (double)i / rate));
    return x;
}

/* SNR (dB) of y against the exact tone at the output rate, 50 ms edges left out. A delayed or
 * wrong-pitch output gives ~0 dB, so this checks time alignment and frequency too. */
static double tone_snr(const float *y, size_t n, int rate, double f, double amp) {
    size_t e = (size_t)rate / 20;
    double s = 0, d = 0;
    for (size_t i = e; i + e < n; i++) {
        double r = amp * sin(2 * M_PI * f * (double)i / rate);
        s += r * r;
        d += (y[i] - r) * (y[i] - r);
    }
    return d > 0 ? 10 * log10(s / d) : 999;
}

static double rms_db(const float *y, size_t n, int rate) {
    size_t e = (size_t)rate / 20;
    double s = 0;
    for (size_t i = e; i + e < n; i++)
        s += (double)y[i] * y[i];
    s /= (double)(n - 2 * e);
    return s > 0 ? 10 * log10(s) : -999;
}

static void test_out_len(void **state) {
    (void)state;
    assert_int_equal(s2s_resample_out_len(22050, 22050, 16000), 16000);
    assert_int_equal(s2s_resample_out_len(1, 22050, 16000), 1); /* 0.73 -> 1 */
    assert_int_equal(s2s_resample_out_len(3, 22050, 16000), 2); /* 2.18 -> 2 */
    assert_int_equal(s2s_resample_out_len(16000, 16000, 24000), 24000);
    assert_int_equal(s2s_resample_out_len(7, 16000, 24000), 11); /* 10.5 -> 11 */
    assert_int_equal(s2s_resample_out_len(0, 16000, 24000), 0);
    /* 10 hours at 48 kHz: no overflow */
    assert_int_equal(s2s_resample_out_len((size_t)48000 * 36000, 48000, 16000),
                     (size_t)16000 * 36000);
}

typedef struct {
    int engine, quality;
    double min_snr, max_stop_db; /* thresholds, see below */
} case_t;

/* Thresholds, from what each converter is specified to do (docs/resample.md has the measured
 * figures). soxr (flat passband up to 95 % of Nyquist): 20 bits (medium) runs in single
 * precision, ~131 dB on a tone, so > 120; 28 bits (best) reaches the float floor (~150), so
 * > 120; 16 bits (fastest) > 110. libsamplerate best reaches the float floor too (> 120); medium's
 * and fastest's SNR spec is 97 dB with narrower bands (90 %, 80 %): > 80 and > 70 for tones inside.
 * Stop band: a 9 kHz tone (-9 dBFS) resampled to 16 kHz must vanish: soxr rejects ~6 dB x
 * precision (16 bits: below -110 dB; 20 and 28 bits: -120); libsamplerate specifies
 * 97 dB for all three converters, so below -90. */
static const case_t cases[] = {
    {S2S_RS_SOXR, S2S_RS_MEDIUM, 120, -120},  {S2S_RS_SOXR, S2S_RS_BEST, 120, -120},
    {S2S_RS_SOXR, S2S_RS_FASTEST, 110, -110}, {S2S_RS_SRC, S2S_RS_BEST, 120, -100},
    {S2S_RS_SRC, S2S_RS_MEDIUM, 80, -100},    {S2S_RS_SRC, S2S_RS_FASTEST, 70, -90},
};

static void run_case(const case_t *c, int in_rate, int out_rate, double f) {
    size_t n = (size_t)in_rate + 123; /* not a whole number of output periods */
    float *x = tone(n, in_rate, f, 0.5), *y = NULL;
    size_t m = 0;
    s2s_err err;
    s2s_err_clear(&err);
    assert_int_equal(
        s2s_resample_buffer(c->engine, c->quality, x, n, in_rate, out_rate, &y, &m, &err), 0);
    assert_int_equal(m, s2s_resample_out_len(n, in_rate, out_rate));
    double snr = tone_snr(y, m, out_rate, f, 0.5);
    if (snr < c->min_snr)
        fail_msg("%s/%s %d->%d %.0f Hz: SNR %.1f dB < %.0f", s2s_resample_engine_name(c->engine),
                 s2s_resample_quality_name(c->quality), in_rate, out_rate, f, snr, c->min_snr);
    free(x);
    free(y);
}

static void test_tones(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_case(&cases[i], 22050, 16000, 1000);
        run_case(&cases[i], 22050, 16000, 3517);
        run_case(&cases[i], 16000, 24000, 440);
        run_case(&cases[i], 16000, 24000, 5000);
    }
}

static void test_stopband(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const case_t *c = &cases[i];
        size_t n = 22050;
        float *x = tone(n, 22050, 9000, 0.5), *y = NULL;
        size_t m;
        s2s_err err;
        assert_int_equal(
            s2s_resample_buffer(c->engine, c->quality, x, n, 22050, 16000, &y, &m, &err), 0);
        double db = rms_db(y, m, 16000);
        if (db > c->max_stop_db)
            fail_msg("%s/%s: 9 kHz tone left at %.1f dB > %.0f",
                     s2s_resample_engine_name(c->engine), s2s_resample_quality_name(c->quality), db,
                     c->max_stop_db);
        free(x);
        free(y);
    }
}

/* Feeding 1, 7, 1000, ... samples at a time gives the same length and the same samples. */
static void test_streaming_blocks(void **state) {
    (void)state;
    for (int e = 0; e < 2; e++) {
        size_t n = 30011;
        float *x = tone(n, 22050, 1234, 0.5), *whole, *parts = malloc(n * sizeof *parts);
        size_t m, got = 0, k;
        s2s_err err;
        assert_int_equal(
            s2s_resample_buffer(e, S2S_RS_MEDIUM, x, n, 22050, 16000, &whole, &m, &err), 0);
        s2s_resampler *r = s2s_resampler_new(e, S2S_RS_MEDIUM, 22050, 16000, &err);
        assert_non_null(r);
        static const size_t blocks[] = {1, 7, 1000, 3, 4096, 65536};
        const float *p;
        for (size_t i = 0, b = 0; i < n; b++) {
            size_t len = blocks[b % 6] < n - i ? blocks[b % 6] : n - i;
            assert_int_equal(s2s_resampler_process(r, x + i, len, &p, &k, &err), 0);
            assert_true(got + k <= m);
            memcpy(parts + got, p, k * sizeof *p);
            got += k;
            i += len;
        }
        assert_int_equal(s2s_resampler_flush(r, &p, &k, &err), 0);
        assert_true(got + k <= m);
        memcpy(parts + got, p, k * sizeof *p);
        got += k;
        assert_int_equal(got, m);
        double maxd = 0;
        for (size_t i = 0; i < m; i++)
            if (fabs(parts[i] - whole[i]) > maxd) maxd = fabs(parts[i] - whole[i]);
        assert_true(maxd < 1e-6);
        /* flushed handles refuse more work */
        assert_true(s2s_resampler_process(r, x, 1, &p, &k, &err) < 0);
        s2s_resampler_free(r);
        free(x);
        free(whole);
        free(parts);
    }
}

static void test_equal_rates_and_tiny(void **state) {
    (void)state;
    float x[5] = {0.1f, -0.2f, 0.3f, -0.4f, 0.5f}, *y;
    size_t m;
    s2s_err err;
    assert_int_equal(
        s2s_resample_buffer(S2S_RS_SOXR, S2S_RS_MEDIUM, x, 5, 16000, 16000, &y, &m, &err), 0);
    assert_int_equal(m, 5);
    assert_memory_equal(x, y, sizeof x);
    free(y);
    for (int e = 0; e < 2; e++) { /* shorter than any filter: still the exact length */
        assert_int_equal(s2s_resample_buffer(e, S2S_RS_BEST, x, 5, 22050, 16000, &y, &m, &err), 0);
        assert_int_equal(m, 4);
        free(y);
        assert_int_equal(s2s_resample_buffer(e, S2S_RS_BEST, x, 0, 22050, 16000, &y, &m, &err), 0);
        assert_int_equal(m, 0);
        free(y);
    }
}

static void test_errors_and_names(void **state) {
    (void)state;
    s2s_err err;
    s2s_err_clear(&err);
    assert_null(s2s_resampler_new(S2S_RS_SOXR, S2S_RS_MEDIUM, 0, 16000, &err));
    assert_int_equal(err.code, S2S_EINVAL);
    assert_non_null(strstr(err.msg, "sample rates"));
    assert_null(s2s_resampler_new(7, S2S_RS_MEDIUM, 8000, 16000, &err));
    assert_int_equal(err.code, S2S_EINVAL);
    assert_null(s2s_resampler_new(S2S_RS_SRC, 9, 8000, 16000, &err));
    assert_int_equal(s2s_resample_parse_engine("soxr"), S2S_RS_SOXR);
    assert_int_equal(s2s_resample_parse_engine("swr"), S2S_RS_SOXR); /* 0.1's name */
    assert_int_equal(s2s_resample_parse_engine("src"), S2S_RS_SRC);
    assert_int_equal(s2s_resample_parse_engine("sox"), -1);
    assert_int_equal(s2s_resample_parse_quality("best"), S2S_RS_BEST);
    assert_int_equal(s2s_resample_parse_quality("fastest"), S2S_RS_FASTEST);
    assert_int_equal(s2s_resample_parse_quality(NULL), -1);
    assert_string_equal(s2s_resample_engine_name(S2S_RS_DEFAULT_ENGINE), "s2s");
    assert_int_equal(s2s_resample_parse_engine("s2s"), S2S_RS_S2S);
    assert_string_equal(s2s_resample_quality_name(S2S_RS_DEFAULT_QUALITY), "medium");
    assert_null(s2s_resample_quality_name(3));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_out_len),
        cmocka_unit_test(test_tones),
        cmocka_unit_test(test_stopband),
        cmocka_unit_test(test_streaming_blocks),
        cmocka_unit_test(test_equal_rates_and_tiny),
        cmocka_unit_test(test_errors_and_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
