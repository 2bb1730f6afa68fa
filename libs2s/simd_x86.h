/* simd_x86.h — (library-internal) what the vector kernels of features.c and resample_fft.c
 * share: which kernel this CPU runs, and an 8x8 transpose of floats in AVX registers to move
 * samples into and out of their lanes (data movement only: it cannot change a result). The
 * AVX code exists on x86-64 GCC (S2S_SIMD_X86 1), whose function-level target attributes the
 * kernels use. */
#ifndef S2S_SIMD_X86_H
#define S2S_SIMD_X86_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define S2S_SIMD_X86 1
#include <immintrin.h>
#else
#define S2S_SIMD_X86 0
#endif

/* 1 if this CPU runs kernel impl: 0 portable (always), 1 AVX2, 2 AVX-512 (F, DQ, VL, BW). */
static inline int s2s_cpu_has_kernel(int impl) {
    if (impl == 0) return 1;
#if S2S_SIMD_X86
    __builtin_cpu_init();
    if (impl == 1) return __builtin_cpu_supports("avx2") != 0;
    if (impl == 2)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
#endif
    return 0;
}

#if S2S_SIMD_X86
/* r[0..7] rows in, columns out. */
__attribute__((target("avx2"), always_inline)) static inline void s2s_transpose8_avx(__m256 *r) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

#endif

#endif
