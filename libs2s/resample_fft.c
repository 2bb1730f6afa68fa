/* resample_fft.c — the "s2s" resampling engine: overlap-save resampling in the frequency domain.
 *
 * in/out = a/b in lowest terms. An N_in = a*m point DFT at the input rate and an N_out = b*m
 * point DFT at the output rate have the same bin spacing, so a block of N_in input samples is
 * transformed, multiplied by the filter's spectrum H (a Kaiser-windowed sinc of L taps at the
 * input rate: passband to 95 % of min(in, out)/2, stop band from min(in, out)/2, as sox's rate
 * effect), cut to the bins below the lower Nyquist frequency, and transformed back at size
 * N_out: the inverse DFT evaluates the filtered block's band-limited interpolation at the output
 * instants. The first `overlap` = a*o >= L-1 input samples of a block repeat the previous block
 * (the circular wrap-around lands there and is discarded); each block gives hop_out = b*(m-o)
 * new output samples from hop_in = a*(m-o) new input samples.
 *
 * h is real, so two consecutive blocks go through one complex transform (block 2k in the real
 * part, 2k+1 in the imaginary part: the output's real part is the first block's, its imaginary
 * part the second's). Pairs are fixed by position in the stream, so the bytes do not depend on
 * how the input is cut into calls. Independent pairs run side by side, one per vector lane
 * (resample_fft_kernel.inc, compiled for 4 / 8 / 16 lanes); every lane does the same float
 * operations in the same order, so every kernel gives the same bytes on every x86-64 CPU.
 *
 * Time alignment: output sample n is the filtered input at time n*a/b input samples (the filter
 * delay (L-1)/2 is taken out by where the blocks start); zeros before the start and after the
 * end. Twiddles and constants are computed in double without libm (see sincos_2pi) and rounded
 * to float once. */
#include "resample_fft.h"
#include "simd_x86.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { RS_MAX_STAGES = 40, RS_MAX_N = 1 << 16, RS_MAX_LANES = 16 };
#define RS_ATTEN 120.0 /* minimum stop-band attenuation the filter length is chosen for, dB */
#define RS_ATTEN_MAX 140.0

typedef struct rs_plan {
    size_t n;
    int n_stages;
    int radix[RS_MAX_STAGES];
    size_t tw_off[RS_MAX_STAGES];
    float *twr, *twi;
    size_t it_off[RS_MAX_STAGES]; /* internal twiddles of the p*p stages */
    float *itr, *iti;
} rs_plan;

typedef struct rs_consts { /* cos / sin (2 pi k q / p) of the odd radices */
    float c3[1], s3[1], c5[4], s5[4], c7[9], s7[9];
} rs_consts;

struct s2s_rsfft {
    int in_rate, out_rate, impl, lanes;
    int64_t a, b;
    size_t taps, delay, overlap, hop_in, hop_out, kmax, m, o;
    rs_plan pin, pout;
    rs_consts k;
    float *hr, *hi; /* H / N_in, bins 0..N_in-1 (only |k| <= kmax used) */
    float *zeros;   /* N_in zeros: the input of idle lanes */
    float *buf;     /* 4 arrays of nmax rows of RS_MAX_LANES floats */
    size_t nmax;
    /* stream */
    /* input samples x0 .. x0+xn-1 (global indices; negative = before the start) at x + xd; the
     * xd samples before them are dead, reclaimed only when the buffer is full (fewer moves) */
    float *x;
    size_t xd, xn, xcap;
    int64_t x0, total_in, next_pair;
    float *y; /* output of the last call */
    size_t ycap;
};

typedef float rs_vf4 __attribute__((vector_size(16)));

#define KS _gen
#define KATTR __attribute__((optimize("O3")))
#define VW 4
#define VF rs_vf4
#include "resample_fft_kernel.inc"
#undef KS
#undef KATTR
#undef VW
#undef VF

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define RS_HAVE_X86 1
typedef float rs_vf8 __attribute__((vector_size(32)));
typedef float rs_vf16 __attribute__((vector_size(64)));
#define KS _avx2
#define KATTR __attribute__((target("avx2"), optimize("O3")))
#define VW 8
#define VF rs_vf8
#include "resample_fft_kernel.inc"
#undef KS
#undef KATTR
#undef VW
#undef VF
#define KS _avx512
#define KATTR __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw"), optimize("O3")))
#define VW 16
#define VF rs_vf16
#include "resample_fft_kernel.inc"
#undef KS
#undef KATTR
#undef VW
#undef VF
#else
#define RS_HAVE_X86 0
#endif

/* ---- moving samples between the streams and the lane layout (data movement only) ----------
 * fill: dst[j * vw + l] = src[l][j] for j < n, l < vw. take: y[l * 2 * hop + r] = zr[(first + r)
 * * vw + l] and y[l * 2 * hop + hop + r] = -zi[...] for r < hop, l < cnt (negation is exact).
 * The SIMD versions transpose 4x4 / 8x8 tiles; all give the same floats. */
static void fill_scalar(float *restrict dst, size_t vw, const float *const *src, size_t j0,
                        size_t n) {
    for (size_t j = j0; j < n; j++)
        for (size_t l = 0; l < vw; l++)
            dst[j * vw + l] = src[l][j];
}

static void take_scalar(float *restrict y, size_t vw, size_t cnt, const float *zr, const float *zi,
                        size_t first, size_t hop, size_t r0) {
    for (size_t r = r0; r < hop; r++)
        for (size_t l = 0; l < cnt; l++) {
            y[l * 2 * hop + r] = zr[(first + r) * vw + l];
            y[l * 2 * hop + hop + r] = -zi[(first + r) * vw + l];
        }
}

#if RS_HAVE_X86
static void fill_sse(float *restrict dst, size_t vw, const float *const *src, size_t n) {
    size_t n4 = n / 4 * 4;
    for (size_t g = 0; g < vw; g += 4)
        for (size_t j = 0; j < n4; j += 4) {
            __m128 r0 = _mm_loadu_ps(src[g] + j), r1 = _mm_loadu_ps(src[g + 1] + j);
            __m128 r2 = _mm_loadu_ps(src[g + 2] + j), r3 = _mm_loadu_ps(src[g + 3] + j);
            _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
            _mm_store_ps(dst + j * vw + g, r0);
            _mm_store_ps(dst + (j + 1) * vw + g, r1);
            _mm_store_ps(dst + (j + 2) * vw + g, r2);
            _mm_store_ps(dst + (j + 3) * vw + g, r3);
        }
    fill_scalar(dst, vw, src, n4, n);
}

static void take_sse(float *restrict y, size_t vw, size_t cnt, const float *zr, const float *zi,
                     size_t first, size_t hop) {
    size_t h4 = hop / 4 * 4;
    const __m128 neg = _mm_set1_ps(-0.0f);
    for (size_t g = 0; g < cnt; g += 4)
        for (size_t r = 0; r < h4; r += 4) {
            for (int part = 0; part < 2; part++) {
                const float *z = part ? zi : zr;
                __m128 v0 = _mm_load_ps(z + (first + r) * vw + g);
                __m128 v1 = _mm_load_ps(z + (first + r + 1) * vw + g);
                __m128 v2 = _mm_load_ps(z + (first + r + 2) * vw + g);
                __m128 v3 = _mm_load_ps(z + (first + r + 3) * vw + g);
                _MM_TRANSPOSE4_PS(v0, v1, v2, v3);
                __m128 v[4] = {v0, v1, v2, v3};
                for (size_t l = 0; l < 4 && g + l < cnt; l++)
                    _mm_storeu_ps(y + (g + l) * 2 * hop + (part ? hop : 0) + r,
                                  part ? _mm_xor_ps(v[l], neg) : v[l]);
            }
        }
    take_scalar(y, vw, cnt, zr, zi, first, hop, h4);
}

__attribute__((target("avx2"))) static void fill_avx2(float *restrict dst, size_t vw,
                                                      const float *const *src, size_t n) {
    size_t n8 = n / 8 * 8;
    for (size_t g = 0; g < vw; g += 8)
        for (size_t j = 0; j < n8; j += 8) {
            __m256 v[8];
            for (size_t l = 0; l < 8; l++)
                v[l] = _mm256_loadu_ps(src[g + l] + j);
            s2s_transpose8_avx(v);
            for (size_t r = 0; r < 8; r++)
                _mm256_store_ps(dst + (j + r) * vw + g, v[r]);
        }
    fill_scalar(dst, vw, src, n8, n);
}

__attribute__((target("avx2"))) static void take_avx2(float *restrict y, size_t vw, size_t cnt,
                                                      const float *zr, const float *zi,
                                                      size_t first, size_t hop) {
    size_t h8 = hop / 8 * 8;
    const __m256 neg = _mm256_set1_ps(-0.0f);
    for (size_t g = 0; g < cnt; g += 8)
        for (size_t r = 0; r < h8; r += 8)
            for (int part = 0; part < 2; part++) {
                const float *z = part ? zi : zr;
                __m256 v[8];
                for (size_t i = 0; i < 8; i++)
                    v[i] = _mm256_load_ps(z + (first + r + i) * vw + g);
                s2s_transpose8_avx(v);
                for (size_t l = 0; l < 8 && g + l < cnt; l++)
                    _mm256_storeu_ps(y + (g + l) * 2 * hop + (part ? hop : 0) + r,
                                     part ? _mm256_xor_ps(v[l], neg) : v[l]);
            }
    take_scalar(y, vw, cnt, zr, zi, first, hop, h8);
}
#endif

static int64_t gcd64(int64_t a, int64_t b) {
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Radices of n (4s, then a 2, 3s, 5s, 7s); 0 if n has another prime factor. */
static int factor(size_t n, int *radix, int *ns) {
    int k = 0;
    while (n % 4 == 0 && k < RS_MAX_STAGES)
        radix[k++] = 4, n /= 4;
    if (n % 2 == 0 && k < RS_MAX_STAGES) radix[k++] = 2, n /= 2;
    static const int odd[] = {3, 5, 7};
    for (int i = 0; i < 3; i++)
        while (n % (size_t)odd[i] == 0 && k < RS_MAX_STAGES)
            radix[k++] = odd[i], n /= (size_t)odd[i];
    *ns = k;
    return n == 1;
}

static int smooth(int64_t n) {
    static const int p[] = {2, 3, 5, 7};
    for (int i = 0; i < 4; i++)
        while (n % p[i] == 0)
            n /= p[i];
    return n == 1;
}

/* ---- constants without libm ----------------------------------------------------------------
 * glibc picks its sin/cos/log code by CPU (FMA or not), and the two can differ in a double's
 * last bit (measured: ~0.1 % of arguments): rounded to float that almost never shows, but "the
 * same bytes on every x86-64 CPU" should not rest on "almost". So every angle the engine uses
 * is 2 pi num / den with integers, reduced exactly in integers to |psi| <= pi/4 and evaluated
 * with Taylor polynomials in plain double arithmetic (no FMA in ISO C mode): the same doubles
 * on every CPU. Error below 2 ulp of a double: far below the float the constants end up in. */
static void sincos_2pi(int64_t num, int64_t den, double *s, double *c) {
    num %= den;
    if (num < 0) num += den;
    /* nearest quarter turn q, remainder psi = 2 pi (4 num - q den) / (4 den) */
    int64_t q = (4 * num + den / 2) / den, rem = 4 * num - q * den;
    double psi = (double)rem / (double)(4 * den) * (2 * M_PI), x2 = psi * psi;
    double ps = 1, pc = 1;
    for (int k = 21; k >= 3; k -= 2) /* sin: psi (1 - x2/(2*3) (1 - x2/(4*5) (...))) */
        ps = 1 - x2 / ((double)(k - 1) * k) * ps;
    for (int k = 20; k >= 2; k -= 2) /* cos: 1 - x2/(1*2) (1 - x2/(3*4) (...)) */
        pc = 1 - x2 / ((double)(k - 1) * k) * pc;
    double sv = psi * ps, cv = pc;
    switch (q & 3) {
    case 0:
        *s = sv, *c = cv;
        break;
    case 1:
        *s = cv, *c = -sv;
        break;
    case 2:
        *s = -sv, *c = -cv;
        break;
    default:
        *s = -cv, *c = sv;
        break;
    }
}

/* log2(x) for x >= 1 without libm (frexp is exact): for the cost model only. */
static double log2_det(double x) {
    int e;
    double m = frexp(x, &e), z = (m - 1) / (m + 1), z2 = z * z, t = z, sum = 0;
    for (int k = 1; k < 60; k += 2) { /* ln m = 2 atanh z */
        sum += t / k;
        t *= z2;
    }
    return e + 2 * sum / M_LN2;
}

static int plan_init(rs_plan *pl, size_t n) {
    memset(pl, 0, sizeof *pl);
    pl->n = n;
    if (!factor(n, pl->radix, &pl->n_stages)) return -1;
    /* equal neighbours in pairs: 4*4, 3*3, 5*5, 7*7 as one pass over the data (fewer passes
     * through the caches) */
    int k = 0;
    size_t itotal = 0;
    for (int s = 0; s < pl->n_stages; s++) {
        int p = pl->radix[s];
        if (s + 1 < pl->n_stages && pl->radix[s + 1] == p && p != 2) {
            pl->radix[k] = p * p;
            pl->it_off[k++] = itotal;
            itotal += (size_t)(p * p);
            s++;
        } else {
            pl->radix[k++] = p;
        }
    }
    pl->n_stages = k;
    pl->itr = malloc((itotal ? itotal : 1) * sizeof(float));
    pl->iti = malloc((itotal ? itotal : 1) * sizeof(float));
    if (!pl->itr || !pl->iti) return -2;
    for (int s = 0; s < pl->n_stages; s++) {
        int P = pl->radix[s], p = P == 16 ? 4 : P == 9 ? 3 : P == 25 ? 5 : P == 49 ? 7 : 0;
        for (int n2 = 0; p && n2 < p; n2++)
            for (int k1 = 0; k1 < p; k1++) {
                double sv, cv; /* e^{-2 pi i n2 k1 / P} */
                sincos_2pi(-(int64_t)(n2 * k1 % P), P, &sv, &cv);
                pl->itr[pl->it_off[s] + (size_t)(n2 * p + k1)] = (float)cv;
                pl->iti[pl->it_off[s] + (size_t)(n2 * p + k1)] = (float)sv;
            }
    }
    size_t total = 0, L = 1;
    for (int s = 0; s < pl->n_stages; s++) {
        pl->tw_off[s] = total;
        total += L * (size_t)(pl->radix[s] - 1);
        L *= (size_t)pl->radix[s];
    }
    pl->twr = malloc((total ? total : 1) * sizeof(float));
    pl->twi = malloc((total ? total : 1) * sizeof(float));
    if (!pl->twr || !pl->twi) return -2;
    L = 1;
    for (int s = 0; s < pl->n_stages; s++) {
        size_t p = (size_t)pl->radix[s], Lp = L * p;
        for (size_t j = 0; j < L; j++)
            for (size_t q = 1; q < p; q++) {
                double sv, cv; /* e^{-2 pi i j q / (L p)} */
                sincos_2pi(-(int64_t)(j * q % Lp), (int64_t)Lp, &sv, &cv);
                pl->twr[pl->tw_off[s] + j * (p - 1) + q - 1] = (float)cv;
                pl->twi[pl->tw_off[s] + j * (p - 1) + q - 1] = (float)sv;
            }
        L = Lp;
    }
    return 0;
}

static void plan_free(rs_plan *pl) {
    free(pl->twr);
    free(pl->twi);
    free(pl->itr);
    free(pl->iti);
    pl->twr = pl->twi = pl->itr = pl->iti = NULL;
}

static void consts_init(rs_consts *k) {
    float *c[3] = {k->c3, k->c5, k->c7}, *s[3] = {k->s3, k->s5, k->s7};
    static const int ps[3] = {3, 5, 7};
    for (int i = 0; i < 3; i++) {
        int p = ps[i], h = (p - 1) / 2;
        for (int kk = 1; kk <= h; kk++)
            for (int q = 1; q <= h; q++) {
                double sv, cv;
                sincos_2pi(kk * q % p, p, &sv, &cv);
                c[i][(kk - 1) * h + q - 1] = (float)cv;
                s[i][(kk - 1) * h + q - 1] = (float)sv;
            }
    }
}

/* Modified Bessel function I0 (power series; converges for every x used here). */
static double bessel_i0(double x) {
    double sum = 1, term = 1, q = x * x / 4;
    for (int k = 1; k < 500; k++) {
        term *= q / ((double)k * k);
        sum += term;
        if (term < sum * 1e-17) break;
    }
    return sum;
}

/* Rough cost of one output sample with block multiplier m (transform flops, with a penalty
 * for transforms that leave the caches). */
static double cost(int64_t a, int64_t b, int64_t m, int64_t o) {
    double ni = (double)(a * m), no = (double)(b * m), hop = (double)(b * (m - o));
    return (ni * log2_det(ni) + no * log2_det(no)) / hop * (1 + (ni + no) / 8192);
}

void s2s_rsfft_free(s2s_rsfft *f) {
    if (!f) return;
    plan_free(&f->pin);
    plan_free(&f->pout);
    free(f->hr);
    free(f->hi);
    free(f->zeros);
    free(f->buf);
    free(f->x);
    free(f->y);
    free(f);
}

int s2s_rsfft_set_impl(s2s_rsfft *f, int impl) {
    if (impl < 0)
        impl = s2s_cpu_has_kernel(2) ? 2 : s2s_cpu_has_kernel(1) ? 1 : 0;
    else if (impl > 2)
        return S2S_EINVAL;
    else if (!s2s_cpu_has_kernel(impl))
        return S2S_EUNSUP;
    f->impl = impl;
    f->lanes = impl == 2 ? 16 : impl == 1 ? 8 : 4;
    return impl;
}

void s2s_rsfft_reset(s2s_rsfft *f) {
    /* the first block starts at D - overlap: that many zeros come before the input */
    f->x0 = (int64_t)f->delay - (int64_t)f->overlap;
    f->xn = (size_t)(-f->x0);
    f->xd = 0;
    memset(f->x, 0, f->xn * sizeof *f->x);
    f->total_in = 0;
    f->next_pair = 0;
}

void s2s_rsfft_info(const s2s_rsfft *f, size_t *taps, size_t *n_in, size_t *n_out, size_t *hop_in,
                    size_t *hop_out) {
    if (taps) *taps = f->taps;
    if (n_in) *n_in = f->pin.n;
    if (n_out) *n_out = f->pout.n;
    if (hop_in) *hop_in = f->hop_in;
    if (hop_out) *hop_out = f->hop_out;
}

s2s_rsfft *s2s_rsfft_new(int in_rate, int out_rate, s2s_err *err) {
    if (in_rate < 1 || out_rate < 1 || in_rate > 1000000 || out_rate > 1000000 ||
        in_rate == out_rate) {
        s2s_err_set(err, S2S_EINVAL, "s2s resampler: bad rates %d -> %d", in_rate, out_rate);
        return NULL;
    }
    int64_t g = gcd64(in_rate, out_rate), a = in_rate / g, b = out_rate / g;
    if (!smooth(a) || !smooth(b)) {
        s2s_err_set(err, S2S_EUNSUP,
                    "s2s resampler: %d -> %d Hz (ratio %lld/%lld) has a prime factor above 7",
                    in_rate, out_rate, (long long)a, (long long)b);
        return NULL;
    }
    /* filter: transition band from 95 % to 100 % of the lower Nyquist frequency */
    double fmin = in_rate < out_rate ? in_rate : out_rate;
    double fc = 0.975 * fmin / 2 / in_rate;               /* cutoff, cycles per input sample */
    double dw = 2 * M_PI * 0.05 * fmin / 2 / in_rate;     /* transition width, rad per sample */
    double lmin = ceil((RS_ATTEN - 7.95) / (2.285 * dw)); /* Kaiser's estimate of L - 1 */
    int64_t o = ((int64_t)lmin + a - 1) / a, overlap = o * a;
    int64_t best_m = 0;
    double best = 0;
    for (int64_t m = o + 1; a * m <= RS_MAX_N && b * m <= RS_MAX_N; m++) {
        if (!smooth(m)) continue; /* a, b are smooth: a*m and b*m are iff m is */
        double c = cost(a, b, m, o);
        if (!best_m || c < best) best = c, best_m = m;
    }
    size_t taps = (size_t)(overlap % 2 == 0 ? overlap + 1 : overlap);
    if (!best_m || (double)taps * (double)(a * best_m) > 2e8) {
        s2s_err_set(err, S2S_EUNSUP,
                    "s2s resampler: %d -> %d Hz needs transforms larger than %d points", in_rate,
                    out_rate, RS_MAX_N);
        return NULL;
    }
    s2s_rsfft *f = calloc(1, sizeof *f);
    if (!f) {
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        return NULL;
    }
    f->in_rate = in_rate;
    f->out_rate = out_rate;
    f->a = a;
    f->b = b;
    f->m = (size_t)best_m;
    f->o = (size_t)o;
    f->overlap = (size_t)overlap;
    f->taps = taps;
    f->delay = (taps - 1) / 2;
    f->hop_in = (size_t)(a * (best_m - o));
    f->hop_out = (size_t)(b * (best_m - o));
    size_t nin = (size_t)(a * best_m), nout = (size_t)(b * best_m);
    size_t kn = nin < nout ? nin : nout;
    f->kmax = (kn - 1) / 2;
    f->nmax = nin > nout ? nin : nout;
    consts_init(&f->k);
    s2s_rsfft_set_impl(f, -1);
    int rc = plan_init(&f->pin, nin);
    if (rc == 0) rc = plan_init(&f->pout, nout);
    f->hr = malloc(nin * sizeof *f->hr);
    f->hi = malloc(nin * sizeof *f->hi);
    f->zeros = calloc(nin, sizeof *f->zeros);
    size_t bufsz = 4 * f->nmax * RS_MAX_LANES * sizeof(float);
    f->buf = aligned_alloc(64, (bufsz + 63) / 64 * 64);
    f->xcap = f->overlap + 2 * RS_MAX_LANES * 2 * f->hop_in + nin + 4 * 65536;
    f->x = malloc(f->xcap * sizeof *f->x);
    double *h = malloc(taps * sizeof *h), *cs = malloc(nin * sizeof *cs),
           *sn = malloc(nin * sizeof *sn);
    if (rc < 0 || !f->hr || !f->hi || !f->zeros || !f->buf || !f->x || !h || !cs || !sn) {
        free(h);
        free(cs);
        free(sn);
        s2s_rsfft_free(f);
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        return NULL;
    }
    /* Kaiser window: attenuation reached by these taps over this transition (Kaiser's
     * formula), capped where float arithmetic's own floor is far below anyway */
    double atten = 2.285 * (double)(taps - 1) * dw + 7.95;
    if (atten > RS_ATTEN_MAX) atten = RS_ATTEN_MAX;
    double beta = 0.1102 * (atten - 8.7), i0b = bessel_i0(beta), sum = 0, D = (double)f->delay;
    for (size_t i = 0; i < taps; i++) {
        double t = (double)i - D, r = D > 0 ? t / D : 0;
        double w = bessel_i0(beta * sqrt(fmax(0, 1 - r * r))) / i0b;
        /* sin(2 pi fc t) with fc t = 39 fmin t / (80 in_rate) exactly (fc = 0.975 fmin / 2 / in) */
        double sv, cv;
        sincos_2pi((int64_t)39 * (int64_t)fmin * ((int64_t)i - (int64_t)f->delay),
                   (int64_t)80 * in_rate, &sv, &cv);
        double s = t == 0 ? 2 * fc : sv / (M_PI * t);
        h[i] = s * w;
        sum += h[i];
    }
    /* H = DFT_{N_in}(h) / sum / N_in: unity gain at DC, the inverse DFT's scale folded in */
    for (size_t i = 0; i < nin; i++) {
        sincos_2pi((int64_t)i, (int64_t)nin, &sn[i], &cs[i]);
    }
    for (size_t kb = 0; kb < nin; kb++) {
        if (kb > f->kmax && kb < nin - f->kmax) { /* never read: only |k| <= kmax is kept */
            f->hr[kb] = f->hi[kb] = 0;
            continue;
        }
        double re = 0, im = 0;
        size_t idx = 0;
        for (size_t i = 0; i < taps; i++) {
            re += h[i] * cs[idx];
            im -= h[i] * sn[idx];
            idx += kb;
            if (idx >= nin) idx -= nin;
        }
        f->hr[kb] = (float)(re / sum / (double)nin);
        f->hi[kb] = (float)(im / sum / (double)nin);
    }
    free(h);
    free(cs);
    free(sn);
    s2s_rsfft_reset(f);
    return f;
}

static int x_reserve(s2s_rsfft *f, size_t extra, s2s_err *err) {
    if (f->xd + f->xn + extra <= f->xcap) return 0;
    if (f->xd) { /* reclaim the dead samples first */
        memmove(f->x, f->x + f->xd, f->xn * sizeof *f->x);
        f->xd = 0;
        if (f->xn + extra <= f->xcap) return 0;
    }
    size_t cap = f->xcap * 2;
    while (cap < f->xn + extra)
        cap *= 2;
    float *p = realloc(f->x, cap * sizeof *p);
    if (!p) return s2s_err_set(err, S2S_ENOMEM, "out of memory resampling");
    f->x = p;
    f->xcap = cap;
    return 0;
}

/* Global index of the first input sample of block p. */
static int64_t block_start(const s2s_rsfft *f, int64_t p) {
    return p * (int64_t)f->hop_in - (int64_t)f->overlap + (int64_t)f->delay;
}

/* Runs pairs next_pair .. next_pair+cnt-1 (cnt <= lanes), appending 2*cnt*hop_out samples to
 * y + *ny. */
static void run_batch(s2s_rsfft *f, int64_t cnt, float *y) {
    /* A short last batch runs on a narrower kernel when it fits (fewer idle lanes): every
     * kernel gives the same floats, so this changes only the time. */
    int impl = f->impl;
    while (impl > 0 && cnt <= (impl == 2 ? 8 : 4))
        impl--;
    const size_t VWn = impl == 2   ? 16
                       : impl == 1 ? 8
                                   : 4,
                 nin = f->pin.n, nmax = f->nmax, plane = nmax * RS_MAX_LANES;
    float *b0r = f->buf, *b0i = b0r + plane, *b1r = b0i + plane, *b1i = b1r + plane;
    /* row j of the batch: sample j of every lane's block pair (lanes past cnt: silence) */
    const float *xa[RS_MAX_LANES], *xb[RS_MAX_LANES];
    for (size_t l = 0; l < VWn; l++) {
        if ((int64_t)l < cnt) {
            xa[l] = f->x + f->xd + (block_start(f, 2 * (f->next_pair + (int64_t)l)) - f->x0);
            xb[l] = xa[l] + f->hop_in;
        } else {
            xa[l] = xb[l] = f->zeros;
        }
    }
#if RS_HAVE_X86
    if (impl >= 1) {
        fill_avx2(b0r, VWn, xa, nin);
        fill_avx2(b0i, VWn, xb, nin);
    } else {
        fill_sse(b0r, VWn, xa, nin);
        fill_sse(b0i, VWn, xb, nin);
    }
#else
    fill_scalar(b0r, VWn, xa, 0, nin);
    fill_scalar(b0i, VWn, xb, 0, nin);
#endif
    int w;
#if RS_HAVE_X86
    if (impl == 2)
        w = batch_avx512(f, (rs_vf16 *)b0r, (rs_vf16 *)b0i, (rs_vf16 *)b1r, (rs_vf16 *)b1i);
    else if (impl == 1)
        w = batch_avx2(f, (rs_vf8 *)b0r, (rs_vf8 *)b0i, (rs_vf8 *)b1r, (rs_vf8 *)b1i);
    else
#endif
        w = batch_gen(f, (rs_vf4 *)b0r, (rs_vf4 *)b0i, (rs_vf4 *)b1r, (rs_vf4 *)b1i);
    const float *zr = w ? b1r : b0r, *zi = w ? b1i : b0i;
    const size_t first = (size_t)f->b * f->o, hop = f->hop_out;
#if RS_HAVE_X86
    if (impl >= 1)
        take_avx2(y, VWn, (size_t)cnt, zr, zi, first, hop);
    else
        take_sse(y, VWn, (size_t)cnt, zr, zi, first, hop);
#else
    take_scalar(y, VWn, (size_t)cnt, zr, zi, first, hop, 0);
#endif
}

int s2s_rsfft_feed(s2s_rsfft *f, const float *in, size_t n, int eof, const float **out,
                   size_t *n_out, s2s_err *err) {
    *out = NULL;
    *n_out = 0;
    if (n) {
        if (x_reserve(f, n, err) < 0) return S2S_ENOMEM;
        memcpy(f->x + f->xd + f->xn, in, n * sizeof *in);
        f->xn += n;
        f->total_in += (int64_t)n;
    }
    const int64_t hin = (int64_t)f->hop_in, nin = (int64_t)f->pin.n;
    int64_t pairs_end;
    if (eof) {
        int64_t target = (f->total_in * f->b + f->a / 2) / f->a; /* round(n * out / in) */
        int64_t blocks = (target + (int64_t)f->hop_out - 1) / (int64_t)f->hop_out;
        pairs_end = (blocks + 1) / 2;
        if (pairs_end > f->next_pair) { /* zeros after the end, up to the last pair's input */
            int64_t end = block_start(f, 2 * (pairs_end - 1)) + hin + nin;
            int64_t have = f->x0 + (int64_t)f->xn;
            if (end > have) {
                if (x_reserve(f, (size_t)(end - have), err) < 0) return S2S_ENOMEM;
                memset(f->x + f->xd + f->xn, 0, (size_t)(end - have) * sizeof *f->x);
                f->xn += (size_t)(end - have);
            }
        }
    } else {
        /* pair k needs input up to block_start(2k) + hop_in + N_in */
        int64_t num = f->total_in - block_start(f, 0) - hin - nin;
        pairs_end = num < 0 ? 0 : num / (2 * hin) + 1;
    }
    int64_t todo = pairs_end - f->next_pair;
    if (!eof) todo -= todo % f->lanes; /* whole batches only until the end */
    if (todo > 0) {
        size_t need = (size_t)todo * 2 * f->hop_out;
        if (need > f->ycap) {
            float *p = realloc(f->y, need * sizeof *p);
            if (!p) return s2s_err_set(err, S2S_ENOMEM, "out of memory resampling");
            f->y = p;
            f->ycap = need;
        }
        for (int64_t done = 0; done < todo;) {
            int64_t cnt = todo - done < f->lanes ? todo - done : f->lanes;
            run_batch(f, cnt, f->y + (size_t)done * 2 * f->hop_out);
            f->next_pair += cnt;
            done += cnt;
        }
        *out = f->y;
        *n_out = need;
        /* drop the input no later pair needs */
        int64_t keep = block_start(f, 2 * f->next_pair) - f->x0;
        if (keep > (int64_t)f->xn) keep = (int64_t)f->xn;
        if (keep > 0) {
            f->xd += (size_t)keep;
            f->xn -= (size_t)keep;
            f->x0 += keep;
        }
    }
    return 0;
}
