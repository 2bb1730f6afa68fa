/* test_audio.c — libs2s/audio.c: WAV/FLAC round trips are exact and deterministic, stereo is
 * mixed down, streaming reads equal whole reads, and every kind of bad input is named. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libavutil/log.h>

#include "s2s/audio.h"

static int16_t *pcm_tone(size_t n) {
    int16_t *p = malloc(n * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (int16_t)lrint(12000 * sin(0.05 * (double)i));
    p[7] = -32768; /* extremes survive */
    p[8] = 32767;
    return p;
}

static void test_s16_round_trip_wav_flac(void **state) {
    (void)state;
    size_t n = 10007;
    int16_t *p = pcm_tone(n);
    s2s_err err;
    s2s_err_clear(&err);
    for (int c = S2S_AUDIO_WAV; c <= S2S_AUDIO_FLAC; c++) {
        unsigned char *b1, *b2;
        size_t l1, l2;
        assert_int_equal(s2s_audio_encode_s16(p, n, 16000, c, &b1, &l1, &err), 0);
        assert_int_equal(s2s_audio_encode_s16(p, n, 16000, c, &b2, &l2, &err), 0);
        assert_int_equal(l1, l2); /* deterministic */
        assert_memory_equal(b1, b2, l1);
        if (c == S2S_AUDIO_WAV) assert_int_equal(l1, 44 + 2 * n); /* plain header, no extras */
        s2s_audio a;
        assert_int_equal(s2s_audio_decode(b1, l1, "x", &a, &err), 0);
        assert_int_equal(a.n, n);
        assert_int_equal(a.rate, 16000);
        assert_int_equal(a.src_channels, 1);
        assert_int_equal(a.src_container, c);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(lrintf(a.samples[i] * 32768.0f), p[i]);
        /* float -> s16 encode gives back the same bytes: the scaling is symmetric */
        unsigned char *b3;
        size_t l3;
        assert_int_equal(s2s_audio_encode(&a, c, S2S_AUDIO_S16, &b3, &l3, &err), 0);
        assert_int_equal(l3, l1);
        assert_memory_equal(b3, b1, l1);
        s2s_audio_free(&a);
        free(b1);
        free(b2);
        free(b3);
    }
    free(p);
}

static void test_f32_wav_and_clipping(void **state) {
    (void)state;
    float x[6] = {0.0f, 0.5f, -0.25f, 1.5f, -3.0f, 0.999f};
    s2s_audio a = {x, 6, 24000, 0, 0, 0, ""};
    s2s_err err;
    unsigned char *b;
    size_t l;
    assert_int_equal(s2s_audio_encode(&a, S2S_AUDIO_WAV, S2S_AUDIO_F32, &b, &l, &err), 0);
    s2s_audio d;
    assert_int_equal(s2s_audio_decode(b, l, "f.wav", &d, &err), 0);
    assert_int_equal(d.src_format, S2S_AUDIO_F32);
    assert_int_equal(d.n, 6);
    assert_memory_equal(d.samples, x, sizeof x); /* float kept as is, > 1 too */
    s2s_audio_free(&d);
    free(b);
    assert_int_equal(s2s_audio_encode(&a, S2S_AUDIO_WAV, S2S_AUDIO_S16, &b, &l, &err), 0);
    assert_int_equal(s2s_audio_decode(b, l, "s.wav", &d, &err), 0);
    assert_true(fabsf(d.samples[3] - 32767 / 32768.0f) < 1e-7f); /* clipped, not wrapped */
    assert_true(d.samples[4] == -1.0f);
    s2s_audio_free(&d);
    free(b);
    assert_int_equal(s2s_audio_encode(&a, S2S_AUDIO_FLAC, S2S_AUDIO_F32, &b, &l, &err), S2S_EINVAL);
    assert_null(b);
    assert_int_equal(s2s_audio_encode(&a, 9, S2S_AUDIO_S16, &b, &l, &err), S2S_EINVAL);
}

/* A stereo 16-bit WAV written by hand: L = 0.5, R = -0.25 -> mono 0.125. */
static unsigned char *stereo_wav(size_t frames, size_t *len) {
    size_t data = frames * 4;
    unsigned char *b = calloc(1, 44 + data);
    assert_non_null(b);
    memcpy(b, "RIFF", 4);
    uint32_t v = (uint32_t)(36 + data);
    memcpy(b + 4, &v, 4);
    memcpy(b + 8, "WAVEfmt ", 8);
    v = 16;
    memcpy(b + 16, &v, 4);
    uint16_t h[2] = {1, 2};
    memcpy(b + 20, h, 4);
    v = 44100;
    memcpy(b + 24, &v, 4);
    v = 44100 * 4;
    memcpy(b + 28, &v, 4);
    h[0] = 4;
    h[1] = 16;
    memcpy(b + 32, h, 4);
    memcpy(b + 36, "data", 4);
    v = (uint32_t)data;
    memcpy(b + 40, &v, 4);
    for (size_t i = 0; i < frames; i++) {
        int16_t s[2] = {16384, -8192};
        memcpy(b + 44 + 4 * i, s, 4);
    }
    *len = 44 + data;
    return b;
}

static void test_stereo_downmix_and_streaming(void **state) {
    (void)state;
    size_t len, n = 20000;
    unsigned char *b = stereo_wav(n, &len);
    s2s_err err;
    s2s_audio a;
    assert_int_equal(s2s_audio_decode(b, len, "st.wav", &a, &err), 0);
    assert_int_equal(a.n, n);
    assert_int_equal(a.src_channels, 2);
    assert_int_equal(a.rate, 44100);
    assert_string_equal(a.codec, "pcm_s16le");
    for (size_t i = 0; i < n; i++)
        assert_true(a.samples[i] == 0.125f);
    /* the reader in small odd blocks gives the same samples */
    s2s_audio info;
    s2s_audio_reader *r = s2s_audio_reader_open(b, len, "st.wav", &info, &err);
    assert_non_null(r);
    assert_null(info.samples);
    float blk[37];
    size_t total = 0;
    long got;
    while ((got = s2s_audio_reader_read(r, blk, 37, &err)) > 0) {
        assert_memory_equal(blk, a.samples + total, (size_t)got * sizeof *blk);
        total += (size_t)got;
    }
    assert_int_equal(got, 0);
    assert_int_equal(total, n);
    assert_int_equal(s2s_audio_reader_count(r), n);
    s2s_audio_reader_close(r);
    s2s_audio_free(&a);
    /* a codec nobody decodes (WAV format tag 0x7777) */
    uint16_t tag = 0x7777;
    memcpy(b + 20, &tag, 2);
    assert_int_equal(s2s_audio_decode(b, len, "u.wav", &a, &err), S2S_EUNSUP);
    assert_non_null(strstr(err.msg, "unsupported codec"));
    s2s_audio_free(&a);
    tag = 1;
    memcpy(b + 20, &tag, 2);
    /* cut: the data chunk says more than there is */
    assert_int_equal(s2s_audio_decode(b, len - 1000, "st.wav", &a, &err), S2S_EFORMAT);
    assert_non_null(strstr(err.msg, "truncated WAV"));
    s2s_audio_free(&a);
    free(b);
}

static void test_bad_inputs(void **state) {
    (void)state;
    s2s_err err;
    s2s_audio a;
    assert_int_equal(s2s_audio_decode("", 0, "e.wav", &a, &err), S2S_EDATA);
    assert_non_null(strstr(err.msg, "zero-length"));
    s2s_audio_free(&a);
    static const char junk[] = "this is not audio at all, just some text in a file........";
    assert_int_equal(s2s_audio_decode(junk, sizeof junk, "j.mp3", &a, &err), S2S_EFORMAT);
    assert_non_null(strstr(err.msg, "not readable as audio"));
    s2s_audio_free(&a);
    /* NaN in a float WAV */
    float x[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    s2s_audio f = {x, 4, 8000, 0, 0, 0, ""};
    unsigned char *b;
    size_t l;
    assert_int_equal(s2s_audio_encode(&f, S2S_AUDIO_WAV, S2S_AUDIO_F32, &b, &l, &err), 0);
    float nan = NAN;
    unsigned char *data = b + l - 4 * 2; /* third sample: samples are the file's last bytes */
    memcpy(data, &nan, 4);
    assert_int_equal(s2s_audio_decode(b, l, "n.wav", &a, &err), S2S_EDATA);
    assert_non_null(strstr(err.msg, "NaN sample at 2"));
    s2s_audio_free(&a);
    free(b);
    /* FLAC cut in half */
    int16_t *p = pcm_tone(20000);
    assert_int_equal(s2s_audio_encode_s16(p, 20000, 16000, S2S_AUDIO_FLAC, &b, &l, &err), 0);
    assert_int_not_equal(s2s_audio_decode(b, l / 2, "c.flac", &a, &err), 0);
    assert_int_equal(err.code, S2S_EFORMAT);
    s2s_audio_free(&a);
    free(b);
    free(p);
    /* no samples at all: a valid empty WAV */
    assert_int_equal(s2s_audio_encode_s16(NULL, 0, 16000, S2S_AUDIO_WAV, &b, &l, &err), 0);
    assert_int_equal(s2s_audio_decode(b, l, "z.wav", &a, &err), S2S_EDATA);
    assert_non_null(strstr(err.msg, "zero-length"));
    s2s_audio_free(&a);
    free(b);
}

static void test_names(void **state) {
    (void)state;
    assert_true(s2s_audio_is_audio_name("ctx.wav"));
    assert_true(s2s_audio_is_audio_name("c0.FLAC"));
    assert_true(s2s_audio_is_audio_name("rec/x.m4a"));
    assert_true(s2s_audio_is_audio_name("opus"));
    assert_false(s2s_audio_is_audio_name("ctx.units"));
    assert_false(s2s_audio_is_audio_name("json"));
    assert_false(s2s_audio_is_audio_name(NULL));
    assert_string_equal(s2s_audio_container_ext(S2S_AUDIO_FLAC), "flac");
    assert_null(s2s_audio_container_ext(S2S_AUDIO_OTHER));
    assert_string_equal(s2s_audio_format_name(S2S_AUDIO_F32), "f32");
}

int main(void) {
    av_log_set_level(AV_LOG_QUIET); /* our messages are checked; libav's would be noise */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_s16_round_trip_wav_flac),
        cmocka_unit_test(test_f32_wav_and_clipping),
        cmocka_unit_test(test_stereo_downmix_and_streaming),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
