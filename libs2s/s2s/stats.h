/* s2s/stats.h — the statistics of the scorer's report: a seeded PRNG, percentile bootstrap
 * confidence intervals of an accuracy, a paired bootstrap of the difference between two modes,
 * and the exact McNemar test. Everything is deterministic: the same data and seed give the same
 * numbers on every machine (own PRNG, no rand(), no floating-point reductions whose order depends
 * on threads). */
#ifndef S2S_STATS_H
#define S2S_STATS_H

#include "s2s/err.h"
#include <stddef.h>
#include <stdint.h>

/* xoshiro256** seeded through splitmix64 (Vigna): fast, 256-bit state, identical everywhere. */
typedef struct s2s_rng {
    uint64_t s[4];
} s2s_rng;

/* Seeds the generator; every seed (0 included) gives a valid, distinct stream. */
void s2s_rng_seed(s2s_rng *r, uint64_t seed);
/* Next 64 random bits. */
uint64_t s2s_rng_next(s2s_rng *r);
/* Uniform integer in [0, n) without modulo bias (Lemire's method with rejection); n >= 1. */
uint64_t s2s_rng_below(s2s_rng *r, uint64_t n);

/* Quantile q in [0,1] of sorted[0..n-1] with linear interpolation between order statistics
 * (Hyndman-Fan type 7, numpy's default). n >= 1. */
double s2s_quantile_sorted(const double *sorted, size_t n, double q);

/* Percentile bootstrap CI of a ratio of sums, sum(num)/sum(den), resampling the n units
 * (items) with replacement B times. For plain accuracy over pairs, num[i] is the outcome of pair
 * i (1, 0.5, 0) and den[i] = 1; for a cluster bootstrap over items (a choice item holds several
 * correlated pairs) num[i] is the item's summed outcome and den[i] its pair count. A replicate
 * whose den sums to 0 is skipped. level is e.g. 0.95. On success *lo <= *hi.
 * Returns 0, or S2S_EINVAL (n = 0, B = 0, bad level), S2S_ENOMEM. */
int s2s_bootstrap_ci(const double *num, const double *den, size_t n, unsigned B, uint64_t seed,
                     double level, double *lo, double *hi, s2s_err *err);

/* Paired bootstrap CI of sum(a)/sum(den) - sum(b)/sum(den): both modes are resampled with the
 * SAME indices in every replicate, so the CI reflects the paired design. Same returns as above. */
int s2s_bootstrap_paired_diff(const double *a, const double *b, const double *den, size_t n,
                              unsigned B, uint64_t seed, double level, double *lo, double *hi,
                              s2s_err *err);

/* Exact two-sided McNemar test: under H0 the b discordant pairs of one kind out of b+c are
 * Binomial(b+c, 1/2); p = min(1, 2 * P[X <= min(b,c)]). b = c (including 0 = 0) gives 1.
 * Computed in log space, exact for any realistic count (b + c up to ~1e9). */
double s2s_mcnemar_exact(uint64_t b, uint64_t c);

#endif
