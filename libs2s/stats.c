/* stats.c — seeded PRNG, percentile bootstrap, paired bootstrap, exact McNemar. */
#include "s2s/stats.h"

#include <math.h>
#include <stdlib.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void s2s_rng_seed(s2s_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

uint64_t s2s_rng_next(s2s_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t s2s_rng_below(s2s_rng *r, uint64_t n) {
    /* Lemire 2019: multiply-shift with rejection of the biased low range. */
    unsigned __int128 m = (unsigned __int128)s2s_rng_next(r) * n;
    uint64_t l = (uint64_t)m;
    if (l < n) {
        uint64_t t = (0 - n) % n;
        while (l < t) {
            m = (unsigned __int128)s2s_rng_next(r) * n;
            l = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

double s2s_quantile_sorted(const double *sorted, size_t n, double q) {
    if (n == 1) return sorted[0];
    if (q <= 0) return sorted[0];
    if (q >= 1) return sorted[n - 1];
    double h = (double)(n - 1) * q;
    size_t i = (size_t)floor(h);
    if (i >= n - 1) return sorted[n - 1];
    return sorted[i] + (h - (double)i) * (sorted[i + 1] - sorted[i]);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One engine for both: a (and optionally b) resampled with the same indices. */
static int bootstrap(const double *a, const double *b, const double *den, size_t n, unsigned B,
                     uint64_t seed, double level, double *lo, double *hi, s2s_err *err) {
    if (n == 0 || B == 0)
        return s2s_err_set(err, S2S_EINVAL, "bootstrap: need at least one unit and one replicate");
    if (!(level > 0 && level < 1))
        return s2s_err_set(err, S2S_EINVAL, "bootstrap: level %g not in (0,1)", level);
    double *rep = malloc(sizeof *rep * B);
    if (!rep) return s2s_err_set(err, S2S_ENOMEM, "bootstrap: out of memory");
    s2s_rng rng;
    s2s_rng_seed(&rng, seed);
    size_t nrep = 0;
    for (unsigned k = 0; k < B; k++) {
        double sa = 0, sb = 0, sd = 0;
        for (size_t j = 0; j < n; j++) {
            size_t i = (size_t)s2s_rng_below(&rng, n);
            sa += a[i];
            if (b) sb += b[i];
            sd += den ? den[i] : 1.0;
        }
        if (sd <= 0) continue;
        rep[nrep++] = (sa - sb) / sd;
    }
    if (nrep == 0) {
        free(rep);
        return s2s_err_set(err, S2S_EINVAL, "bootstrap: every replicate had no pairs");
    }
    qsort(rep, nrep, sizeof *rep, cmp_double);
    *lo = s2s_quantile_sorted(rep, nrep, (1 - level) / 2);
    *hi = s2s_quantile_sorted(rep, nrep, 1 - (1 - level) / 2);
    free(rep);
    return 0;
}

int s2s_bootstrap_ci(const double *num, const double *den, size_t n, unsigned B, uint64_t seed,
                     double level, double *lo, double *hi, s2s_err *err) {
    return bootstrap(num, NULL, den, n, B, seed, level, lo, hi, err);
}

int s2s_bootstrap_paired_diff(const double *a, const double *b, const double *den, size_t n,
                              unsigned B, uint64_t seed, double level, double *lo, double *hi,
                              s2s_err *err) {
    return bootstrap(a, b, den, n, B, seed, level, lo, hi, err);
}

double s2s_mcnemar_exact(uint64_t b, uint64_t c) {
    uint64_t n = b + c;
    if (n == 0 || b == c) return 1.0;
    uint64_t k = b < c ? b : c;
    /* P[X <= k] for X ~ Bin(n, 1/2), summed in log space from the largest term down so that
     * small terms are not lost: terms grow with i for i <= k < n/2. */
    double ln2n = (double)n * log(2.0);
    double lgn1 = lgamma((double)n + 1);
    double top = lgn1 - lgamma((double)k + 1) - lgamma((double)(n - k) + 1);
    double s = 0;
    for (uint64_t i = 0; i <= k; i++) {
        uint64_t j = k - i; /* from k downwards */
        double lt = lgn1 - lgamma((double)j + 1) - lgamma((double)(n - j) + 1);
        double t = exp(lt - top);
        s += t;
        if (t < 1e-18 * s) break;
    }
    double p = 2.0 * exp(top - ln2n + log(s));
    return p > 1.0 ? 1.0 : p;
}
