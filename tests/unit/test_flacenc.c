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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc16_check_value),
        cmocka_unit_test(test_crc16_paths_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
