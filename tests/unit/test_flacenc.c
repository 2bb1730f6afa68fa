/* test_flacenc.c — the built-in FLAC encoder's parts that have a CPU-dependent path
 * (s2s/flacenc.h): the frame CRC-16 by PCLMULQDQ must equal the table code on every input, and
 * the encoder's bytes must not depend on the path taken (the whole-stream golden hash is in
 * test_shard). */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "s2s/flacenc.h"
#include "s2s/util.h"

/* bit-at-a-time reference: CRC-16/UMTS (0x8005, MSB first, initial 0, no final xor) */
static unsigned crc16_ref(const unsigned char *p, size_t n) {
    unsigned c = 0;
    for (size_t i = 0; i < n; i++) {
        c ^= (unsigned)p[i] << 8;
        for (int b = 0; b < 8; b++)
            c = (c & 0x8000) ? ((c << 1) ^ 0x8005) & 0xffff : (c << 1) & 0xffff;
    }
    return c;
}

static void test_crc16_check_value(void **state) {
    (void)state;
    const char *s = "123456789";
    assert_int_equal(crc16_ref((const unsigned char *)s, 9), 0xfee8);
    assert_int_equal(s2s_flac_crc16(s, 9, 1), 0xfee8);
    assert_int_equal(s2s_flac_crc16(s, 9, 0), 0xfee8);
    assert_int_equal(s2s_flac_crc16(s, 0, 0), 0);
}

/* every length 0-600 (the fold loops' edges at 16, 64, 128) and long ones, random bytes, all
 * zeros and all ones, at odd offsets: the fast path, the table path and the reference agree */
static void test_crc16_paths_agree(void **state) {
    (void)state;
    size_t cap = 70000;
    unsigned char *buf = malloc(cap + 3);
    assert_non_null(buf);
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < cap + 3; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (unsigned char)(x >> 24);
    }
    size_t lens[700], nl = 0;
    for (size_t n = 0; n <= 600; n++)
        lens[nl++] = n;
    size_t big[] = {1023, 1024, 1025, 4095, 4111, 8192, 9217, 65536, 69999};
    for (size_t i = 0; i < sizeof big / sizeof *big; i++)
        lens[nl++] = big[i];
    for (int fill = 0; fill < 3; fill++) {
        unsigned char *b = buf;
        if (fill) {
            b = malloc(cap);
            assert_non_null(b);
            memset(b, fill == 1 ? 0 : 0xff, cap);
        }
        for (size_t i = 0; i < nl; i++)
            for (size_t off = 0; off < (fill ? 1u : 3u); off++) {
                const unsigned char *p = b + off;
                unsigned ref = crc16_ref(p, lens[i]);
                int sw = s2s_flac_crc16(p, lens[i], 1), hw = s2s_flac_crc16(p, lens[i], 0);
                if (sw != (int)ref || hw != (int)ref)
                    fail_msg("fill %d, length %zu, offset %zu: reference %04x, table %04x, fast "
                             "%04x",
                             fill, lens[i], off, ref, (unsigned)sw, (unsigned)hw);
            }
        if (fill) free(b);
    }
    free(buf);
}

/* a test signal: kind 0 = tone + noise (speech-like levels), 1 = white noise at full scale, 2 =
 * silence with clicks, 3 = full-scale square, 4 = quiet noise (Rice parameter 0-2) */
static int32_t sig(int kind, uint64_t i, unsigned c, unsigned bits, uint64_t *x) {
    *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
    int32_t hi = (int32_t)((1u << (bits - 1)) - 1), v;
    switch (kind) {
    case 0:
        v = (int32_t)((double)hi * 0.3 * __builtin_sin((double)i * 0.05 * (c + 1))) +
            (int32_t)(*x % 2001) - 1000;
        break;
    case 1:
        v = (int32_t)(*x % (2 * (uint64_t)hi + 1)) - hi;
        break;
    case 2:
        v = i % 997 == 0 ? hi / 2 : 0;
        break;
    case 3:
        v = (i / 37) % 2 ? hi : -hi - 1;
        break;
    default:
        v = (int32_t)(*x % 5) - 2;
    }
    return v < -hi - 1 ? -hi - 1 : v > hi ? hi : v;
}

/* The AVX2 build of the encoder and the portable one write the same bytes: every signal kind,
 * 16 and 24 bits, 1-3 channels, lengths around the 4096-sample block. */
static void test_paths_same_bytes(void **state) {
    (void)state;
    struct {
        uint64_t n;
        unsigned ch, bits, rate;
    } cs[] = {{1, 1, 16, 16000},    {9, 1, 16, 16000},     {4095, 1, 16, 16000},
              {4097, 1, 16, 16000}, {40000, 1, 16, 16000}, {9000, 2, 16, 44100},
              {9000, 3, 24, 48000}, {20000, 1, 24, 96000}, {300, 1, 16, 8000},
              {12289, 2, 16, 22050}};
    s2s_buf a = {0}, b = {0};
    for (size_t t = 0; t < sizeof cs / sizeof *cs; t++)
        for (int kind = 0; kind < 5; kind++) {
            size_t ns = (size_t)cs[t].n * cs[t].ch;
            int32_t *v = malloc(ns * sizeof *v);
            assert_non_null(v);
            uint64_t x = 88172645463325252ULL + t;
            for (size_t i = 0; i < ns; i++)
                v[i] = sig(kind, i / cs[t].ch, (unsigned)(i % cs[t].ch), cs[t].bits, &x);
            s2s_flacenc_in in = {NULL, v, 0, cs[t].bits, cs[t].n, cs[t].rate, cs[t].ch};
            s2s_err err;
            assert_int_equal(s2s_flacenc_flags(&in, 0, &a, &err), 0);
            assert_int_equal(s2s_flacenc_flags(&in, S2S_FLACENC_PORTABLE, &b, &err), 0);
            if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
                fail_msg("case %zu, kind %d: %zu bytes by default, %zu portable", t, kind, a.len,
                         b.len);
            /* raw 16-bit little-endian input (the vectorised load) gives the same stream */
            if (cs[t].bits == 16) {
                unsigned char *raw = malloc(ns * 2);
                assert_non_null(raw);
                for (size_t i = 0; i < ns; i++)
                    raw[2 * i] = (unsigned char)(v[i] & 255),
                            raw[2 * i + 1] = (unsigned char)((uint32_t)v[i] >> 8);
                s2s_flacenc_in r = {raw, NULL, 16, 16, cs[t].n, cs[t].rate, cs[t].ch};
                assert_int_equal(s2s_flacenc_flags(&r, S2S_FLACENC_PORTABLE, &b, &err), 0);
                assert_int_equal(b.len, a.len);
                assert_memory_equal(b.data, a.data, a.len);
                free(raw);
            }
            free(v);
        }
    s2s_buf_free(&a);
    s2s_buf_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc16_check_value),
        cmocka_unit_test(test_crc16_paths_agree),
        cmocka_unit_test(test_paths_same_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
