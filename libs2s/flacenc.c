/* flacenc.c — a small, fast FLAC encoder (s2s/flacenc.h). Fixed predictors of order 0-2,
 * Rice-coded residuals, fixed 4096-sample blocks; integer arithmetic only. The format is
 * RFC 9639; the choices (which predictor, which partition order and parameters) are made from
 * exact integer sums, so the bytes never depend on the compiler's vectorisation or the CPU
 * (runtime dispatch picks faster code for the same bytes: an AVX2 build of the loop, PCLMULQDQ
 * for the frame CRC-16). */
#include "s2s/flacenc.h"

#include <stdlib.h>
#include <string.h>

/* The sample loops below are plain integer C; -O2 leaves most of them scalar, the vectoriser
 * makes the encoder 1.4x faster. Integer sums are exact in any order, so the bytes written are
 * the same with or without it (test_shard's golden SHA-256 runs in the -O2, -O0 and ASan builds).
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif

enum { BS = 4096, MAXPO = 8, MAXCH = 8 };

/* Every function of the encoding loop is inlined into encode_frames, which is compiled twice:
 * for any x86-64 (SSE2) and for CPUs with AVX2/BMI2/LZCNT (wider vectors for the sums and
 * residuals, shifts without the CL register in the bit writer, and two parts only that build
 * has: Rice codes formed in vector lanes, rice_run_avx2, and the vectorised parameter search,
 * best_bits_row16). The code is integer arithmetic only, so both write the same bytes
 * (test_flacenc compares them). */
#define KINLINE static inline __attribute__((always_inline))
static const char vendor[] = "s2sbench flacenc 1";

static const uint8_t crc8_tab[256] = {
    0x00, 0x07, 0x0e, 0x09, 0x1c, 0x1b, 0x12, 0x15, 0x38, 0x3f, 0x36, 0x31, 0x24, 0x23, 0x2a, 0x2d,
    0x70, 0x77, 0x7e, 0x79, 0x6c, 0x6b, 0x62, 0x65, 0x48, 0x4f, 0x46, 0x41, 0x54, 0x53, 0x5a, 0x5d,
    0xe0, 0xe7, 0xee, 0xe9, 0xfc, 0xfb, 0xf2, 0xf5, 0xd8, 0xdf, 0xd6, 0xd1, 0xc4, 0xc3, 0xca, 0xcd,
    0x90, 0x97, 0x9e, 0x99, 0x8c, 0x8b, 0x82, 0x85, 0xa8, 0xaf, 0xa6, 0xa1, 0xb4, 0xb3, 0xba, 0xbd,
    0xc7, 0xc0, 0xc9, 0xce, 0xdb, 0xdc, 0xd5, 0xd2, 0xff, 0xf8, 0xf1, 0xf6, 0xe3, 0xe4, 0xed, 0xea,
    0xb7, 0xb0, 0xb9, 0xbe, 0xab, 0xac, 0xa5, 0xa2, 0x8f, 0x88, 0x81, 0x86, 0x93, 0x94, 0x9d, 0x9a,
    0x27, 0x20, 0x29, 0x2e, 0x3b, 0x3c, 0x35, 0x32, 0x1f, 0x18, 0x11, 0x16, 0x03, 0x04, 0x0d, 0x0a,
    0x57, 0x50, 0x59, 0x5e, 0x4b, 0x4c, 0x45, 0x42, 0x6f, 0x68, 0x61, 0x66, 0x73, 0x74, 0x7d, 0x7a,
    0x89, 0x8e, 0x87, 0x80, 0x95, 0x92, 0x9b, 0x9c, 0xb1, 0xb6, 0xbf, 0xb8, 0xad, 0xaa, 0xa3, 0xa4,
    0xf9, 0xfe, 0xf7, 0xf0, 0xe5, 0xe2, 0xeb, 0xec, 0xc1, 0xc6, 0xcf, 0xc8, 0xdd, 0xda, 0xd3, 0xd4,
    0x69, 0x6e, 0x67, 0x60, 0x75, 0x72, 0x7b, 0x7c, 0x51, 0x56, 0x5f, 0x58, 0x4d, 0x4a, 0x43, 0x44,
    0x19, 0x1e, 0x17, 0x10, 0x05, 0x02, 0x0b, 0x0c, 0x21, 0x26, 0x2f, 0x28, 0x3d, 0x3a, 0x33, 0x34,
    0x4e, 0x49, 0x40, 0x47, 0x52, 0x55, 0x5c, 0x5b, 0x76, 0x71, 0x78, 0x7f, 0x6a, 0x6d, 0x64, 0x63,
    0x3e, 0x39, 0x30, 0x37, 0x22, 0x25, 0x2c, 0x2b, 0x06, 0x01, 0x08, 0x0f, 0x1a, 0x1d, 0x14, 0x13,
    0xae, 0xa9, 0xa0, 0xa7, 0xb2, 0xb5, 0xbc, 0xbb, 0x96, 0x91, 0x98, 0x9f, 0x8a, 0x8d, 0x84, 0x83,
    0xde, 0xd9, 0xd0, 0xd7, 0xc2, 0xc5, 0xcc, 0xcb, 0xe6, 0xe1, 0xe8, 0xef, 0xfa, 0xfd, 0xf4, 0xf3,
};
static const uint16_t crc16_tab[256] = {
    0x0000, 0x8005, 0x800f, 0x000a, 0x801b, 0x001e, 0x0014, 0x8011, 0x8033, 0x0036, 0x003c, 0x8039,
    0x0028, 0x802d, 0x8027, 0x0022, 0x8063, 0x0066, 0x006c, 0x8069, 0x0078, 0x807d, 0x8077, 0x0072,
    0x0050, 0x8055, 0x805f, 0x005a, 0x804b, 0x004e, 0x0044, 0x8041, 0x80c3, 0x00c6, 0x00cc, 0x80c9,
    0x00d8, 0x80dd, 0x80d7, 0x00d2, 0x00f0, 0x80f5, 0x80ff, 0x00fa, 0x80eb, 0x00ee, 0x00e4, 0x80e1,
    0x00a0, 0x80a5, 0x80af, 0x00aa, 0x80bb, 0x00be, 0x00b4, 0x80b1, 0x8093, 0x0096, 0x009c, 0x8099,
    0x0088, 0x808d, 0x8087, 0x0082, 0x8183, 0x0186, 0x018c, 0x8189, 0x0198, 0x819d, 0x8197, 0x0192,
    0x01b0, 0x81b5, 0x81bf, 0x01ba, 0x81ab, 0x01ae, 0x01a4, 0x81a1, 0x01e0, 0x81e5, 0x81ef, 0x01ea,
    0x81fb, 0x01fe, 0x01f4, 0x81f1, 0x81d3, 0x01d6, 0x01dc, 0x81d9, 0x01c8, 0x81cd, 0x81c7, 0x01c2,
    0x0140, 0x8145, 0x814f, 0x014a, 0x815b, 0x015e, 0x0154, 0x8151, 0x8173, 0x0176, 0x017c, 0x8179,
    0x0168, 0x816d, 0x8167, 0x0162, 0x8123, 0x0126, 0x012c, 0x8129, 0x0138, 0x813d, 0x8137, 0x0132,
    0x0110, 0x8115, 0x811f, 0x011a, 0x810b, 0x010e, 0x0104, 0x8101, 0x8303, 0x0306, 0x030c, 0x8309,
    0x0318, 0x831d, 0x8317, 0x0312, 0x0330, 0x8335, 0x833f, 0x033a, 0x832b, 0x032e, 0x0324, 0x8321,
    0x0360, 0x8365, 0x836f, 0x036a, 0x837b, 0x037e, 0x0374, 0x8371, 0x8353, 0x0356, 0x035c, 0x8359,
    0x0348, 0x834d, 0x8347, 0x0342, 0x03c0, 0x83c5, 0x83cf, 0x03ca, 0x83db, 0x03de, 0x03d4, 0x83d1,
    0x83f3, 0x03f6, 0x03fc, 0x83f9, 0x03e8, 0x83ed, 0x83e7, 0x03e2, 0x83a3, 0x03a6, 0x03ac, 0x83a9,
    0x03b8, 0x83bd, 0x83b7, 0x03b2, 0x0390, 0x8395, 0x839f, 0x039a, 0x838b, 0x038e, 0x0384, 0x8381,
    0x0280, 0x8285, 0x828f, 0x028a, 0x829b, 0x029e, 0x0294, 0x8291, 0x82b3, 0x02b6, 0x02bc, 0x82b9,
    0x02a8, 0x82ad, 0x82a7, 0x02a2, 0x82e3, 0x02e6, 0x02ec, 0x82e9, 0x02f8, 0x82fd, 0x82f7, 0x02f2,
    0x02d0, 0x82d5, 0x82df, 0x02da, 0x82cb, 0x02ce, 0x02c4, 0x82c1, 0x8243, 0x0246, 0x024c, 0x8249,
    0x0258, 0x825d, 0x8257, 0x0252, 0x0270, 0x8275, 0x827f, 0x027a, 0x826b, 0x026e, 0x0264, 0x8261,
    0x0220, 0x8225, 0x822f, 0x022a, 0x823b, 0x023e, 0x0234, 0x8231, 0x8213, 0x0216, 0x021c, 0x8219,
    0x0208, 0x820d, 0x8207, 0x0202,
};

/* MSB-first bit writer into a buffer the caller sized with 8 bytes of slack. The pending bits
 * sit at the top of acc (n < 8 of them between calls); every put stores all 8 bytes of acc
 * (big-endian) and advances by the whole bytes it completed, so no branch depends on the data:
 * a Rice code costs a handful of instructions whatever its length. */
typedef struct bw {
    unsigned char *p;
    uint64_t acc;
    unsigned n;
} bw;

KINLINE void store_be64(unsigned char *p, uint64_t v) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
    memcpy(p, &v, 8);
#else
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (56 - 8 * i));
#endif
}

/* Appends the low len bits of v (1 <= len <= 56, v < 2^len) to the writer state held in the
 * locals acc, n, p. */
#define PUTB(v, len)                                                                               \
    do {                                                                                           \
        n += (len);                                                                                \
        acc |= (uint64_t)(v) << (64 - n);                                                          \
        store_be64(p, acc);                                                                        \
        p += n >> 3;                                                                               \
        acc <<= n & ~7u;                                                                           \
        n &= 7;                                                                                    \
    } while (0)

KINLINE void put(bw *w, uint32_t v, unsigned len) { /* 1 <= len <= 32, v < 2^len */
    uint64_t acc = w->acc;
    unsigned n = w->n;
    unsigned char *p = w->p;
    PUTB(v, len);
    w->acc = acc, w->n = n, w->p = p;
}

/* Pads with zero bits to a byte boundary (the pending byte, if any, is already stored). */
KINLINE void align_flush(bw *w) {
    if (w->n) {
        w->p++;
        w->acc = 0;
        w->n = 0;
    }
}

/* Rice codes of u[0..cnt-1] with parameter k (q zeros, the stop bit, the k low bits); umax is
 * the largest of those values, so no code is longer than (umax >> k) + 1 + k bits. Codes
 * short enough go into the writer four or two at a time (one flush for the group). The writer
 * state lives in locals here (stores through the byte pointer could alias *w). */
KINLINE void put_rice_run(bw *w, const uint32_t *u, size_t cnt, unsigned k, uint32_t umax) {
    uint64_t acc = w->acc;
    unsigned n = w->n;
    unsigned char *p = w->p;
    uint32_t lowmask = (1u << k) - 1, top = 1u << k;
    uint64_t lmax = (uint64_t)(umax >> k) + 1 + k;
    size_t i = 0;
#define RC(j) ((uint64_t)(top | (u[j] & lowmask)))
#define RL(j) ((u[j] >> k) + 1 + k)
    if (lmax <= 7) { /* quiet partitions (k 0-3): eight codes a flush */
        for (; i + 8 <= cnt; i += 8) {
            uint64_t c = RC(i);
            unsigned l = RL(i);
            for (size_t j = i + 1; j < i + 8; j++) {
                unsigned lj = RL(j);
                c = c << lj | RC(j);
                l += lj;
            }
            PUTB(c, l);
        }
    } else if (lmax <= 14) {
        for (; i + 4 <= cnt; i += 4) {
            unsigned l1 = RL(i + 1), l2 = RL(i + 2), l3 = RL(i + 3);
            uint64_t c = ((RC(i) << l1 | RC(i + 1)) << l2 | RC(i + 2)) << l3 | RC(i + 3);
            PUTB(c, RL(i) + l1 + l2 + l3);
        }
    } else if (lmax <= 18) {
        for (; i + 3 <= cnt; i += 3) {
            unsigned l1 = RL(i + 1), l2 = RL(i + 2);
            uint64_t c = (RC(i) << l1 | RC(i + 1)) << l2 | RC(i + 2);
            PUTB(c, RL(i) + l1 + l2);
        }
    } else if (lmax <= 28) {
        for (; i + 2 <= cnt; i += 2) {
            unsigned l1 = RL(i + 1);
            PUTB(RC(i) << l1 | RC(i + 1), RL(i) + l1);
        }
    }
    for (; i < cnt; i++) {
        uint32_t q = u[i] >> k;
        unsigned len = q + 1 + k;
        if (__builtin_expect(len <= 56, 1)) {
            PUTB(RC(i), len);
        } else { /* rare: a long unary part, 32 zeros at a time */
            while (q > 32) {
                PUTB(0, 32);
                q -= 32;
            }
            if (q) PUTB(0, q);
            PUTB(RC(i), k + 1);
        }
    }
#undef RC
#undef RL
    w->acc = acc, w->n = n, w->p = p;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_RICE_AVX2 1
/* put_rice_run for CPUs with AVX2: in partitions whose codes are at most 28 bits long (nearly
 * all of them on speech) eight codes are formed at a time in vector lanes (codes and lengths,
 * then pairs in 64-bit lanes, then quads in 128-bit lanes) and written as four pairs (codes of
 * 15-28 bits), two quads (8-14 bits) or one group of eight (at most 7 bits). Every group is
 * the same bits in the same order as the scalar code writes, so the stream is the same. */
__attribute__((target("avx2,bmi,bmi2,lzcnt"))) static void
rice_run_avx2(bw *w, const uint32_t *u, size_t cnt, unsigned k, uint32_t umax) {
    uint64_t lmax = (uint64_t)(umax >> k) + 1 + k;
    if (lmax > 28 || cnt < 8) {
        put_rice_run(w, u, cnt, k, umax);
        return;
    }
    uint64_t acc = w->acc;
    unsigned n = w->n;
    unsigned char *p = w->p;
    const __m256i top = _mm256_set1_epi32((int)(1u << k)),
                  low = _mm256_set1_epi32((int)((1u << k) - 1)), k1 = _mm256_set1_epi32((int)k + 1),
                  lo32 = _mm256_set1_epi64x(0xffffffffLL);
    const __m128i vk = _mm_cvtsi32_si128((int)k);
    size_t i = 0;
    for (; i + 8 <= cnt; i += 8) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(u + i));
        __m256i len = _mm256_add_epi32(_mm256_srl_epi32(v, vk), k1);
        __m256i code = _mm256_or_si256(_mm256_and_si256(v, low), top);
        /* pairs: the earlier code (low half of a 64-bit lane) above the later one */
        __m256i pc = _mm256_or_si256(
            _mm256_sllv_epi64(_mm256_and_si256(code, lo32), _mm256_srli_epi64(len, 32)),
            _mm256_srli_epi64(code, 32));
        __m256i pl = _mm256_add_epi64(_mm256_and_si256(len, lo32), _mm256_srli_epi64(len, 32));
        if (lmax > 14) { /* codes of 15-28 bits: pairs of at most 56 */
            uint64_t c[4], l[4];
            _mm256_storeu_si256((__m256i *)(void *)c, pc);
            _mm256_storeu_si256((__m256i *)(void *)l, pl);
            PUTB(c[0], (unsigned)l[0]);
            PUTB(c[1], (unsigned)l[1]);
            PUTB(c[2], (unsigned)l[2]);
            PUTB(c[3], (unsigned)l[3]);
            continue;
        }
        /* quads: the earlier pair (low 64 bits of a 128-bit lane) above the later one */
        __m256i pcb = _mm256_srli_si256(pc, 8), plb = _mm256_srli_si256(pl, 8);
        __m256i qc = _mm256_or_si256(_mm256_sllv_epi64(pc, plb), pcb);
        __m256i ql = _mm256_add_epi64(pl, plb);
        uint64_t q0 = (uint64_t)_mm256_extract_epi64(qc, 0),
                 q1 = (uint64_t)_mm256_extract_epi64(qc, 2);
        unsigned l0 = (unsigned)_mm256_extract_epi64(ql, 0),
                 l1 = (unsigned)_mm256_extract_epi64(ql, 2);
        if (lmax <= 7) {
            PUTB(q0 << l1 | q1, l0 + l1);
        } else {
            PUTB(q0, l0);
            PUTB(q1, l1);
        }
    }
    w->acc = acc, w->n = n, w->p = p;
    if (i < cnt) put_rice_run(w, u + i, cnt - i, k, umax);
}
#endif

/* Bits of n Rice codes with parameter k for values summing to s: an upper bound (the sum of
 * the quotients is at most s >> k), exact enough to choose by. */
KINLINE uint64_t rice_bits(uint64_t n, uint64_t s, unsigned k) {
    return n * (k + 1) + (s >> k);
}

KINLINE unsigned ilog2(uint64_t v) { /* floor(log2(v)), v > 0 */
    return 63u - (unsigned)__builtin_clzll(v);
}

/* The Rice parameter (0-30) with the fewest bits by rice_bits for n values summing to s. The
 * optimum of n*k + s/2^k lies within one of floor(log2(s/n)); the three neighbours are tried. */
KINLINE unsigned best_k(uint64_t n, uint64_t s, uint64_t *bits) {
    if (s < n || n == 0) { /* mean below 1: k = 0, n stop bits and s zeros */
        *bits = n + s;
        return 0;
    }
    unsigned k0 = ilog2(s) - ilog2(n); /* within 1 of floor(log2(s / n)) */
    unsigned lo = k0 > 0 ? k0 - 1 : 0, hi = k0 + 1 < 30 ? k0 + 1 : 30;
    if (lo > 30) lo = 30;
    unsigned best = lo;
    uint64_t bb = rice_bits(n, s, lo);
    for (unsigned k = lo + 1; k <= hi; k++) {
        uint64_t b = rice_bits(n, s, k);
        if (b < bb) bb = b, best = k;
    }
    *bits = bb;
    return best;
}

/* best_k for partitions 1..np-1 of one partition order, all of n values, when the sums are
 * below 2^30 (16-bit samples: residuals below 2^18, at most 4096 of them): returns the sum of
 * their bits and sets *kmax to the largest parameter. The same choices as best_k (the same three
 * candidates, the same tie rule), written for 32-bit vector lanes: ilog2 through a float (exact
 * after the correction of a conversion that rounded up), no branches, so the compiler
 * vectorises the loop (variable shifts: AVX2, so only that build uses it; without vectors
 * best_k's short branchy loop is faster). */
KINLINE uint64_t best_bits_row16(const uint32_t *restrict sums, unsigned np, uint32_t n,
                                 unsigned *kmax) {
    int32_t ln = (int32_t)ilog2(n);
    uint32_t tot = 0, km = 0;
    for (unsigned p = 1; p < np; p++) {
        uint32_t s = sums[p], s1 = s | 1;
        float f = (float)(int32_t)s1;
        uint32_t fb;
        memcpy(&fb, &f, 4);
        int32_t e = (int32_t)(fb >> 23) - 127;      /* 0-30 */
        e -= s1 < (1u << e);                        /* rounded up to a power of two */
        int32_t k0 = (e - ln) & -(int32_t)(s >= n); /* (a mask: a branch stops the vectoriser) */
        int32_t lo = k0 > 0 ? k0 - 1 : 0, hi = k0 + 1 < 30 ? k0 + 1 : 30;
        int32_t k1 = lo + 1 < hi ? lo + 1 : hi, k2 = lo + 2 < hi ? lo + 2 : hi;
        uint32_t b0 = n * (uint32_t)(lo + 1) + (s >> lo), b1 = n * (uint32_t)(k1 + 1) + (s >> k1),
                 b2 = n * (uint32_t)(k2 + 1) + (s >> k2);
        int32_t c1 = b1 < b0, k = c1 ? k1 : lo;
        b0 = c1 ? b1 : b0;
        int32_t c2 = b2 < b0;
        k = c2 ? k2 : k;
        b0 = c2 ? b2 : b0;
        tot += b0;
        km = (uint32_t)k > km ? (uint32_t)k : km;
    }
    *kmax = km;
    return tot;
}

typedef struct work {
    uint16_t crc[8][256]; /* crc16_tabs */
    uint64_t sums[MAXPO + 1][1 << MAXPO];
    uint32_t sums32[MAXPO + 1][1 << MAXPO]; /* the same, for 16-bit samples (below 2^30) */
    uint32_t maxs[MAXPO + 1][1 << MAXPO];   /* the largest value of the partition */
    uint32_t u[BS];
    int32_t x[]; /* channels x BS */
} work;

/* Sums of |residual| of the fixed predictors of order 0-2 over x[4..bs-1]. Orders 3 and 4 are
 * not tried: on speech they win in under 0.4% of the blocks and save under 0.01% of the bytes
 * (docs/shards.md), and leaving them out saves a fifth of the encoder's time. With 16-bit
 * samples the sums fit 32 bits (|e2| <= 2^17, 4096 samples), which vectorises twice as wide. */
KINLINE void order_sums16(const int32_t *x, unsigned bs, uint64_t s[3]) {
    uint32_t s0 = 0, s1 = 0, s2 = 0;
    for (unsigned i = 4; i < bs; i++) {
        int32_t e0 = x[i], e1 = x[i] - x[i - 1], e2 = x[i] - 2 * x[i - 1] + x[i - 2];
        s0 += (uint32_t)(e0 < 0 ? -e0 : e0);
        s1 += (uint32_t)(e1 < 0 ? -e1 : e1);
        s2 += (uint32_t)(e2 < 0 ? -e2 : e2);
    }
    s[0] = s0, s[1] = s1, s[2] = s2;
}

KINLINE void order_sums24(const int32_t *x, unsigned bs, uint64_t s[3]) {
    uint64_t s0 = 0, s1 = 0, s2 = 0;
    for (unsigned i = 4; i < bs; i++) {
        int32_t e0 = x[i], e1 = x[i] - x[i - 1], e2 = x[i] - 2 * x[i - 1] + x[i - 2];
        s0 += (uint32_t)(e0 < 0 ? -e0 : e0);
        s1 += (uint32_t)(e1 < 0 ? -e1 : e1);
        s2 += (uint32_t)(e2 < 0 ? -e2 : e2);
    }
    s[0] = s0, s[1] = s1, s[2] = s2;
}

#define ZZ(r) (((uint32_t)(r) << 1) ^ (uint32_t) - (int32_t)((r) < 0))

/* Zigzag-mapped residual of the fixed predictor of the given order, u[order..bs-1]. */
KINLINE void residual(const int32_t *x, unsigned bs, unsigned order, uint32_t *u) {
    switch (order) {
    case 0:
        for (unsigned i = 0; i < bs; i++)
            u[i] = ZZ(x[i]);
        break;
    case 1:
        for (unsigned i = 1; i < bs; i++)
            u[i] = ZZ(x[i] - x[i - 1]);
        break;
    case 2:
        for (unsigned i = 2; i < bs; i++)
            u[i] = ZZ(x[i] - 2 * x[i - 1] + x[i - 2]);
        break;
    case 3:
        for (unsigned i = 3; i < bs; i++)
            u[i] = ZZ(x[i] - 3 * x[i - 1] + 3 * x[i - 2] - x[i - 3]);
        break;
    default:
        for (unsigned i = 4; i < bs; i++)
            u[i] = ZZ(x[i] - 4 * x[i - 1] + 6 * x[i - 2] - 4 * x[i - 3] + x[i - 4]);
        break;
    }
}

/* Sum and largest value of u[a..b-1]. */
KINLINE uint64_t sum_u(const uint32_t *restrict u, unsigned a, unsigned b, uint32_t *umax) {
    uint64_t t = 0;
    uint32_t o = 0;
    for (unsigned i = a; i < b; i++) {
        t += u[i];
        o = u[i] > o ? u[i] : o;
    }
    *umax = o;
    return t;
}

/* The same for 16-bit samples (values below 2^18, sums below 2^30): 32-bit lanes, twice as many
 * a vector. */
KINLINE uint64_t sum_u16(const uint32_t *restrict u, unsigned a, unsigned b, uint32_t *umax) {
    uint32_t t = 0, o = 0;
    for (unsigned i = a; i < b; i++) {
        t += u[i];
        o = u[i] > o ? u[i] : o;
    }
    *umax = o;
    return t;
}

/* One channel's subframe of a block of bs samples. */
KINLINE void subframe(bw *w, work *wk, const int32_t *x, unsigned bs, unsigned bps, int avx2) {
    uint32_t mask = (1u << bps) - 1;
    uint64_t verbatim = (uint64_t)bs * bps;
    if (bs > 8) {
        uint64_t s[3];
        if (bps <= 16)
            order_sums16(x, bs, s);
        else
            order_sums24(x, bs, s);
        if (s[1] == 0 && x[0] == x[4] && x[1] == x[4] && x[2] == x[4] && x[3] == x[4]) {
            put(w, 0, 8); /* CONSTANT */
            put(w, (uint32_t)x[0] & mask, bps);
            return;
        }
        unsigned order = 0;
        for (unsigned o = 1; o < 3; o++)
            if (s[o] < s[order]) order = o;
        uint32_t *u = wk->u;
        residual(x, bs, order, u);
        /* partition sums at the finest order, then merged pairwise */
        unsigned pmax = 0;
        while (pmax < MAXPO && (bs % (2u << pmax)) == 0 && (bs >> (pmax + 1)) > order)
            pmax++;
        unsigned np = 1u << pmax, ps = bs >> pmax;
        for (unsigned p = 0; p < np; p++) {
            wk->sums[pmax][p] =
                bps <= 16 ? sum_u16(u, p ? p * ps : order, (p + 1) * ps, &wk->maxs[pmax][p])
                          : sum_u(u, p ? p * ps : order, (p + 1) * ps, &wk->maxs[pmax][p]);
            wk->sums32[pmax][p] = (uint32_t)wk->sums[pmax][p];
        }
        for (unsigned po = pmax; po > 0; po--)
            for (unsigned p = 0; p < (1u << (po - 1)); p++) {
                wk->sums[po - 1][p] = wk->sums[po][2 * p] + wk->sums[po][2 * p + 1];
                wk->sums32[po - 1][p] = (uint32_t)wk->sums[po - 1][p];
                wk->maxs[po - 1][p] = wk->maxs[po][2 * p] > wk->maxs[po][2 * p + 1]
                                          ? wk->maxs[po][2 * p]
                                          : wk->maxs[po][2 * p + 1];
            }
        unsigned bpo = 0, bpb = 4;
        uint64_t best = UINT64_MAX;
        for (unsigned po = 0; po <= pmax; po++) {
            uint64_t tot = 0;
            unsigned kmax = 0, n = 1u << po, len = bs >> po;
            if (avx2 && bps <= 16 && n > 1) { /* partition 0, then the rest in vector lanes */
                tot = best_bits_row16(wk->sums32[po], n, len, &kmax);
                uint64_t b;
                unsigned k = best_k(len - order, wk->sums[po][0], &b);
                tot += b;
                if (k > kmax) kmax = k;
            } else {
                for (unsigned p = 0; p < n; p++) {
                    uint64_t b;
                    unsigned k = best_k(p ? len : len - order, wk->sums[po][p], &b);
                    tot += b;
                    if (k > kmax) kmax = k;
                }
            }
            unsigned pb = kmax > 14 ? 5 : 4;
            tot += (uint64_t)n * pb;
            if (tot < best) best = tot, bpo = po, bpb = pb;
        }
        best += 8 + (uint64_t)order * bps + 6;
        if (best < verbatim + 8) {
            unsigned n = 1u << bpo, len = bs >> bpo;
            put(w, (0x08u | order) << 1, 8); /* FIXED, order, no wasted bits */
            for (unsigned i = 0; i < order; i++)
                put(w, (uint32_t)x[i] & mask, bps);
            put(w, bpb == 5 ? 1 : 0, 2); /* RICE or RICE2 */
            put(w, bpo, 4);
            unsigned i = order;
            for (unsigned p = 0; p < n; p++) {
                uint64_t b;
                unsigned k = best_k(p ? len : len - order, wk->sums[bpo][p], &b);
                put(w, k, bpb);
                unsigned end = (p + 1) * len;
#ifdef HAVE_RICE_AVX2
                if (avx2)
                    rice_run_avx2(w, u + i, end - i, k, wk->maxs[bpo][p]);
                else
#endif
                    put_rice_run(w, u + i, end - i, k, wk->maxs[bpo][p]);
                i = end;
            }
            return;
        }
    } else {
        int constant = 1;
        for (unsigned i = 1; i < bs; i++)
            constant &= x[i] == x[0];
        if (constant) {
            put(w, 0, 8); /* CONSTANT */
            put(w, (uint32_t)x[0] & mask, bps);
            return;
        }
    }
    put(w, 1u << 1, 8); /* VERBATIM */
    for (unsigned i = 0; i < bs; i++)
        put(w, (uint32_t)x[i] & mask, bps);
}

typedef uint16_t crc16_tabs[8][256]; /* [k][b]: CRC-16 of byte b followed by k zero bytes */

static void crc16_init(crc16_tabs t) {
    memcpy(t[0], crc16_tab, sizeof crc16_tab);
    for (unsigned k = 1; k < 8; k++)
        for (unsigned b = 0; b < 256; b++) {
            uint16_t c = t[k - 1][b];
            t[k][b] = (uint16_t)(c << 8) ^ crc16_tab[c >> 8];
        }
}

/* CRC-16 (polynomial 0x8005, MSB first) of p[0..n-1] continuing from c, eight bytes a step. */
static uint16_t crc16_sw(const crc16_tabs t, uint16_t c, const unsigned char *p, size_t n) {
    for (; n >= 8; n -= 8, p += 8) { /* one 8-byte load (the compiler makes it a bswap) */
        uint64_t v = (uint64_t)p[0] << 56 | (uint64_t)p[1] << 48 | (uint64_t)p[2] << 40 |
                     (uint64_t)p[3] << 32 | (uint64_t)p[4] << 24 | (uint64_t)p[5] << 16 |
                     (uint64_t)p[6] << 8 | (uint64_t)p[7];
        c = t[7][(v >> 56) ^ (c >> 8)] ^ t[6][((v >> 48) & 255) ^ (c & 255)] ^
            t[5][(v >> 40) & 255] ^ t[4][(v >> 32) & 255] ^ t[3][(v >> 24) & 255] ^
            t[2][(v >> 16) & 255] ^ t[1][(v >> 8) & 255] ^ t[0][v & 255];
    }
    for (; n > 0; n--, p++)
        c = (uint16_t)(c << 8) ^ crc16_tab[(c >> 8) ^ *p];
    return c;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_CRC16_CLMUL 1
/* The same CRC-16 by carry-less multiplication (PCLMULQDQ), 3-4x the table's speed: the
 * message is folded 16 bytes at a time into four 128-bit remainders, R = R * x^512 + next
 * (mod P, P = x^16 + x^15 + x^2 + 1), the four are folded into one, and the table code finishes
 * with those 16 bytes and the tail: a CRC with initial value 0 is M * x^16 mod P, so any
 * M' = M (mod P) of the same length gives the same CRC. Exact arithmetic on polynomials over
 * GF(2): the value is the table code's on every input (tested by test_flacenc). n >= 64. */
__attribute__((target("pclmul,sse4.1,ssse3"))) static uint16_t
crc16_clmul(const crc16_tabs t, const unsigned char *p, size_t n) {
    const __m128i rev = _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    /* (hi, lo) multipliers: x^(e+64) mod P for the high half, x^e mod P for the low half */
    const __m128i k512 = _mm_set_epi64x(0x1446, 0x8107), k384 = _mm_set_epi64x(0x4aaa, 0x926f),
                  k256 = _mm_set_epi64x(0x9323, 0x8011), k128 = _mm_set_epi64x(0x1666, 0x0106);
#define LD(o) _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)(p + (o))), rev)
#define FOLD(r, k) _mm_xor_si128(_mm_clmulepi64_si128(r, k, 0x11), _mm_clmulepi64_si128(r, k, 0x00))
    __m128i r0 = LD(0), r1 = LD(16), r2 = LD(32), r3 = LD(48);
    p += 64, n -= 64;
    for (; n >= 64; p += 64, n -= 64) {
        r0 = _mm_xor_si128(FOLD(r0, k512), LD(0));
        r1 = _mm_xor_si128(FOLD(r1, k512), LD(16));
        r2 = _mm_xor_si128(FOLD(r2, k512), LD(32));
        r3 = _mm_xor_si128(FOLD(r3, k512), LD(48));
    }
    __m128i r = _mm_xor_si128(_mm_xor_si128(FOLD(r0, k384), FOLD(r1, k256)),
                              _mm_xor_si128(FOLD(r2, k128), r3));
    for (; n >= 16; p += 16, n -= 16)
        r = _mm_xor_si128(FOLD(r, k128), LD(0));
#undef LD
#undef FOLD
    unsigned char b[16];
    _mm_storeu_si128((__m128i *)(void *)b, _mm_shuffle_epi8(r, rev)); /* big-endian again */
    return crc16_sw(t, crc16_sw(t, 0, b, 16), p, n);
}

static int have_clmul(void) {
    return __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1") &&
           __builtin_cpu_supports("ssse3");
}
#endif

/* CRC-16 of a frame (initial value 0); use_hw: the PCLMUL code where the CPU has it. */
static uint16_t crc16(const crc16_tabs t, int use_hw, const unsigned char *p, size_t n) {
#ifdef HAVE_CRC16_CLMUL
    if (use_hw && n >= 64) return crc16_clmul(t, p, n);
#else
    (void)use_hw;
#endif
    return crc16_sw(t, 0, p, n);
}

int s2s_flac_crc16(const void *p, size_t n, int portable) {
    crc16_tabs t;
    crc16_init(t);
    int hw = 0;
#ifdef HAVE_CRC16_CLMUL
    hw = !portable && have_clmul();
#endif
    return crc16(t, hw, p, n);
}

KINLINE unsigned rate_code(unsigned rate) {
    static const unsigned tab[] = {0,     88200, 176400, 192000, 8000,  16000,
                                   22050, 24000, 32000,  44100,  48000, 96000};
    for (unsigned c = 1; c < 12; c++)
        if (tab[c] == rate) return c;
    if (rate % 1000 == 0 && rate / 1000 <= 255) return 12;
    if (rate <= 65535) return 13;
    if (rate % 10 == 0 && rate / 10 <= 65535) return 14;
    return 0; /* from STREAMINFO (not in the streamable subset) */
}

/* Mono 16-bit little-endian PCM to int32 (restrict: the compiler may vectorise it). */
KINLINE void load16(int32_t *restrict d, const unsigned char *restrict s, unsigned bs) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (size_t i = 0; i < bs; i++) { /* (size_t: an unsigned 2 * i could wrap) */
        int16_t v;
        memcpy(&v, s + 2 * i, 2);
        d[i] = v;
    }
#else
    for (unsigned i = 0; i < bs; i++)
        d[i] = (int16_t)(uint16_t)(s[2 * i] | (unsigned)s[2 * i + 1] << 8);
#endif
}

/* Deinterleaves frames [f0, f0+bs) into wk->x. */
KINLINE void load(work *wk, const s2s_flacenc_in *in, uint64_t f0, unsigned bs) {
    unsigned ch = in->channels;
    if (in->i32) {
        const int32_t *s = in->i32 + f0 * ch;
        for (unsigned i = 0; i < bs; i++)
            for (unsigned c = 0; c < ch; c++)
                wk->x[(size_t)c * BS + i] = s[(size_t)i * ch + c];
    } else if (in->in_bits == 16) {
        const unsigned char *s = in->raw + f0 * ch * 2;
        if (ch == 1) {
            load16(wk->x, s, bs);
        } else {
            for (unsigned i = 0; i < bs; i++)
                for (unsigned c = 0; c < ch; c++) {
                    size_t j = 2 * ((size_t)i * ch + c);
                    wk->x[(size_t)c * BS + i] = (int16_t)(uint16_t)(s[j] | (unsigned)s[j + 1] << 8);
                }
        }
    } else if (in->in_bits == 24) {
        const unsigned char *s = in->raw + f0 * ch * 3;
        for (unsigned i = 0; i < bs; i++)
            for (unsigned c = 0; c < ch; c++) {
                size_t j = 3 * ((size_t)i * ch + c);
                uint32_t v = s[j] | (uint32_t)s[j + 1] << 8 | (uint32_t)s[j + 2] << 16;
                wk->x[(size_t)c * BS + i] = (int32_t)(v ^ 0x800000u) - 0x800000;
            }
    } else { /* 8-bit unsigned */
        const unsigned char *s = in->raw + f0 * ch;
        for (unsigned i = 0; i < bs; i++)
            for (unsigned c = 0; c < ch; c++)
                wk->x[(size_t)c * BS + i] = ((int32_t)s[(size_t)i * ch + c] - 128) * 256;
    }
}

/* The frames of the stream after its header, appended to out (the encoder's loop). */
KINLINE int encode_frames(const s2s_flacenc_in *in, s2s_buf *out, work *wk, int hw, int avx2,
                          size_t frame_max, unsigned *minfs, unsigned *maxfs, s2s_err *err) {
    unsigned ch = in->channels, bps = in->out_bits, rate = in->rate, rc = rate_code(rate);
    uint64_t nframes = (in->frames + BS - 1) / BS;
    for (uint64_t fn = 0; fn < nframes; fn++) {
        uint64_t f0 = fn * BS;
        unsigned bs = in->frames - f0 < BS ? (unsigned)(in->frames - f0) : BS;
        if (out->cap - out->len < frame_max && s2s_buf_reserve(out, frame_max, err) < 0)
            return S2S_ENOMEM;
        load(wk, in, f0, bs);
        unsigned char *start = out->data + out->len;
        bw w = {start, 0, 0};
        unsigned bsc = bs == BS ? 12 : bs <= 256 ? 6 : 7;
        put(&w, 0x3ffe, 14);
        put(&w, 0, 2); /* reserved, fixed block size */
        put(&w, bsc, 4);
        put(&w, rc, 4);
        put(&w, ch - 1, 4); /* independent channels */
        put(&w, bps == 16 ? 4 : 6, 3);
        put(&w, 0, 1);
        /* frame number, UTF-8-like */
        uint32_t v = (uint32_t)fn;
        if (v < 0x80) {
            put(&w, v, 8);
        } else {
            unsigned nb = v < 0x800       ? 2
                          : v < 0x10000   ? 3
                          : v < 0x200000  ? 4
                          : v < 0x4000000 ? 5
                                          : 6;
            put(&w, ((0xff00u >> nb) & 0xff) | (v >> (6 * (nb - 1))), 8);
            for (unsigned b = nb - 1; b > 0; b--)
                put(&w, 0x80 | ((v >> (6 * (b - 1))) & 0x3f), 8);
        }
        if (bsc == 6) put(&w, bs - 1, 8);
        if (bsc == 7) put(&w, bs - 1, 16);
        if (rc == 12) put(&w, rate / 1000, 8);
        if (rc == 13) put(&w, rate, 16);
        if (rc == 14) put(&w, rate / 10, 16);
        align_flush(&w);
        uint8_t c8 = 0;
        for (unsigned char *q = start; q < w.p; q++)
            c8 = crc8_tab[c8 ^ *q];
        put(&w, c8, 8);
        for (unsigned c = 0; c < ch; c++)
            subframe(&w, wk, wk->x + (size_t)c * BS, bs, bps, avx2);
        align_flush(&w);
        uint16_t c16 = crc16(wk->crc, hw, start, (size_t)(w.p - start));
        w.p[0] = (unsigned char)(c16 >> 8);
        w.p[1] = (unsigned char)c16;
        w.p += 2;
        unsigned fs = (unsigned)(w.p - start);
        if (fs < *minfs) *minfs = fs;
        if (fs > *maxfs) *maxfs = fs;
        out->len += fs;
    }
    return 0;
}

#define ENC_ARGS                                                                                   \
    const s2s_flacenc_in *in, s2s_buf *out, work *wk, int hw, size_t frame_max, unsigned *minfs,   \
        unsigned *maxfs, s2s_err *err
static int encode_base(ENC_ARGS) {
    return encode_frames(in, out, wk, hw, 0, frame_max, minfs, maxfs, err);
}
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2,bmi,bmi2,lzcnt"))) static int encode_v3(ENC_ARGS) {
    return encode_frames(in, out, wk, hw, 1, frame_max, minfs, maxfs, err);
}

static int have_v3(void) {
    /* clang 14 knows no "lzcnt" (nor "abm") feature name; every CPU with AVX2 and BMI2
     * (Intel Haswell, AMD Excavator and later) has LZCNT */
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi") &&
           __builtin_cpu_supports("bmi2")
#ifndef __clang__
           && __builtin_cpu_supports("lzcnt")
#endif
        ;
}
#endif
#undef ENC_ARGS

int s2s_flacenc(const s2s_flacenc_in *in, s2s_buf *out, s2s_err *err) {
    return s2s_flacenc_flags(in, 0, out, err);
}

int s2s_flacenc_flags(const s2s_flacenc_in *in, unsigned flags, s2s_buf *out, s2s_err *err) {
    unsigned ch = in->channels, bps = in->out_bits, rate = in->rate;
    if (ch < 1 || ch > MAXCH || rate < 1 || rate > 1048575 || (bps != 16 && bps != 24) ||
        in->frames < 1 || in->frames >= (1ULL << 36) || (!in->i32 && !in->raw) ||
        (!in->i32 && in->in_bits != 8 && in->in_bits != 16 && in->in_bits != 24) ||
        (!in->i32 && (in->in_bits == 24) != (bps == 24)))
        return s2s_err_set(err, S2S_EINVAL,
                           "FLAC encoder: unsupported input (%u Hz, %u channels, %u bits, %llu "
                           "frames)",
                           rate, ch, bps, (unsigned long long)in->frames);
    if (in->i32) { /* values must fit out_bits: wider ones would be masked or overflow */
        int32_t hi = (int32_t)((1u << (bps - 1)) - 1), lo = -hi - 1;
        for (uint64_t i = 0, n = in->frames * ch; i < n; i++)
            if (in->i32[i] < lo || in->i32[i] > hi)
                return s2s_err_set(err, S2S_EINVAL,
                                   "FLAC encoder: sample %llu (%ld) does not fit %u bits",
                                   (unsigned long long)i, (long)in->i32[i], bps);
    }
    uint64_t nframes = (in->frames + BS - 1) / BS;
    if (nframes > 0x7fffffffULL)
        return s2s_err_set(err, S2S_EINVAL, "FLAC encoder: too many frames");
    work *wk = malloc(sizeof *wk + sizeof(int32_t) * BS * ch); /* ~54 KB for mono */
    if (!wk) return s2s_err_set(err, S2S_ENOMEM, "FLAC encoder: out of memory");
    crc16_init(wk->crc);
    int hw = 0;
#ifdef HAVE_CRC16_CLMUL
    hw = !(flags & S2S_FLACENC_PORTABLE) && have_clmul();
#endif
    /* worst case of one frame: header, VERBATIM subframes, CRC, and the writer's slack */
    size_t frame_max = 32 + (size_t)ch * (2 + (size_t)BS * (bps / 8)) + 16;
    out->len = 0;
    size_t vl = sizeof vendor - 1, head = 4 + 4 + 34 + 4 + 8 + vl;
    if (s2s_buf_reserve(out, head + (size_t)(in->frames * ch * (bps / 8) / 2) + frame_max, err) <
        0) {
        free(wk);
        return S2S_ENOMEM;
    }
    unsigned char *h = out->data;
    memcpy(h, "fLaC", 4);
    /* STREAMINFO header (filled in at the end), then VORBIS_COMMENT (last block) */
    h[4] = 0;
    h[5] = 0, h[6] = 0, h[7] = 34;
    unsigned char *vc = h + 8 + 34;
    vc[0] = 0x80 | 4;
    uint32_t vlen = (uint32_t)(4 + vl + 4);
    vc[1] = (unsigned char)(vlen >> 16), vc[2] = (unsigned char)(vlen >> 8),
    vc[3] = (unsigned char)vlen;
    vc[4] = (unsigned char)vl, vc[5] = vc[6] = vc[7] = 0; /* little-endian lengths */
    memcpy(vc + 8, vendor, vl);
    memset(vc + 8 + vl, 0, 4);
    out->len = head;
    unsigned minfs = 0xffffff, maxfs = 0;
    int rc;
#if defined(__x86_64__) && defined(__GNUC__)
    if (!(flags & S2S_FLACENC_PORTABLE) && have_v3())
        rc = encode_v3(in, out, wk, hw, frame_max, &minfs, &maxfs, err);
    else
#endif
        rc = encode_base(in, out, wk, hw, frame_max, &minfs, &maxfs, err);
    if (rc < 0) {
        free(wk);
        return rc;
    }
    free(wk);
    /* STREAMINFO */
    unsigned char *si = out->data + 8; /* (the buffer may have moved) */
    si[0] = BS >> 8, si[1] = BS & 255, si[2] = BS >> 8, si[3] = BS & 255;
    si[4] = (unsigned char)(minfs >> 16), si[5] = (unsigned char)(minfs >> 8),
    si[6] = (unsigned char)minfs;
    si[7] = (unsigned char)(maxfs >> 16), si[8] = (unsigned char)(maxfs >> 8),
    si[9] = (unsigned char)maxfs;
    uint64_t tot = in->frames;
    si[10] = (unsigned char)(rate >> 12);
    si[11] = (unsigned char)(rate >> 4);
    si[12] = (unsigned char)(((rate & 15) << 4) | ((ch - 1) << 1) | ((bps - 1) >> 4));
    si[13] = (unsigned char)((((bps - 1) & 15) << 4) | (unsigned)(tot >> 32));
    si[14] = (unsigned char)(tot >> 24), si[15] = (unsigned char)(tot >> 16);
    si[16] = (unsigned char)(tot >> 8), si[17] = (unsigned char)tot;
    memset(si + 18, 0, 16); /* MD5 unset */
    return 0;
}
