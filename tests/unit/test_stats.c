/* test_stats.c — PRNG, quantiles, bootstrap CIs and the exact McNemar test (stats.c). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "s2s/stats.h"

static void test_rng_deterministic(void **state) {
    (void)state;
    s2s_rng a, b, c;
    s2s_rng_seed(&a, 42);
    s2s_rng_seed(&b, 42);
    s2s_rng_seed(&c, 43);
    int differs = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = s2s_rng_next(&a), y = s2s_rng_next(&b), z = s2s_rng_next(&c);
        assert_true(x == y);
        differs |= x != z;
    }
    assert_true(differs);
    /* splitmix64 seeding: the first output for seed 0 is fixed forever (regression anchor) */
    s2s_rng_seed(&a, 0);
    uint64_t first = s2s_rng_next(&a);
    s2s_rng_seed(&b, 0);
    assert_true(first == s2s_rng_next(&b));
    assert_true(first != 0);
}

static void test_rng_below(void **state) {
    (void)state;
    s2s_rng r;
    s2s_rng_seed(&r, 7);
    unsigned hist[10] = {0};
    for (int i = 0; i < 100000; i++) {
        uint64_t v = s2s_rng_below(&r, 10);
        assert_true(v < 10);
        hist[v]++;
    }
    for (int i = 0; i < 10; i++) /* each about 10000; 5 sigma = 475 */
        assert_in_range(hist[i], 9500, 10500);
    assert_int_equal(s2s_rng_below(&r, 1), 0);
}

static void test_quantile(void **state) {
    (void)state;
    double v[] = {1, 2, 3, 4, 5};
    assert_true(s2s_quantile_sorted(v, 5, 0.0) == 1);
    assert_true(s2s_quantile_sorted(v, 5, 1.0) == 5);
    assert_true(s2s_quantile_sorted(v, 5, 0.5) == 3);
    assert_true(fabs(s2s_quantile_sorted(v, 5, 0.1) - 1.4) < 1e-12); /* numpy: 1.4 */
    double one = 7;
    assert_true(s2s_quantile_sorted(&one, 1, 0.3) == 7);
}

/* n pairs with exactly round(0.7 n) right, spread evenly */
static double *outcomes(size_t n) {
    double *o = malloc(sizeof *o * n);
    for (size_t i = 0; i < n; i++)
        o[i] = (i % 10) < 7 ? 1.0 : 0.0;
    return o;
}

static void test_bootstrap_contains_and_narrows(void **state) {
    (void)state;
    double lo1, hi1, lo2, hi2, lo3, hi3;
    s2s_err err;
    double *a = outcomes(50), *b = outcomes(2000);
    assert_int_equal(s2s_bootstrap_ci(a, NULL, 50, 2000, 1, 0.95, &lo1, &hi1, &err), 0);
    assert_int_equal(s2s_bootstrap_ci(b, NULL, 2000, 2000, 1, 0.95, &lo2, &hi2, &err), 0);
    assert_true(lo1 <= 0.7 && 0.7 <= hi1);
    assert_true(lo2 <= 0.7 && 0.7 <= hi2);
    assert_true(hi2 - lo2 < (hi1 - lo1) / 3); /* sqrt(40) ~ 6.3x narrower */
    /* about 2 * 1.96 * sqrt(.21/2000) = 0.040 wide */
    assert_true(hi2 - lo2 > 0.03 && hi2 - lo2 < 0.05);
    /* same seed, same numbers; another seed, (almost surely) other numbers */
    assert_int_equal(s2s_bootstrap_ci(a, NULL, 50, 2000, 1, 0.95, &lo3, &hi3, &err), 0);
    assert_true(lo3 == lo1 && hi3 == hi1);
    /* all right: degenerate [1, 1] */
    double ones[5] = {1, 1, 1, 1, 1};
    assert_int_equal(s2s_bootstrap_ci(ones, NULL, 5, 100, 3, 0.95, &lo3, &hi3, &err), 0);
    assert_true(lo3 == 1 && hi3 == 1);
    /* errors */
    assert_int_equal(s2s_bootstrap_ci(a, NULL, 0, 100, 1, 0.95, &lo3, &hi3, &err), S2S_EINVAL);
    assert_int_equal(s2s_bootstrap_ci(a, NULL, 5, 100, 1, 1.5, &lo3, &hi3, &err), S2S_EINVAL);
    free(a);
    free(b);
}

static void test_bootstrap_cluster(void **state) {
    (void)state;
    /* ratio of sums: items with 3 pairs each */
    double num[4] = {3, 0, 2, 1}, den[4] = {3, 3, 3, 3}, lo, hi;
    s2s_err err;
    assert_int_equal(s2s_bootstrap_ci(num, den, 4, 1000, 5, 0.95, &lo, &hi, &err), 0);
    assert_true(lo <= 0.5 && 0.5 <= hi);
    assert_true(lo >= 0 && hi <= 1);
}

static void test_paired(void **state) {
    (void)state;
    s2s_err err;
    double lo, hi;
    double *a = outcomes(400);
    /* identical modes: the difference is 0 in every replicate */
    assert_int_equal(s2s_bootstrap_paired_diff(a, a, NULL, 400, 500, 9, 0.95, &lo, &hi, &err), 0);
    assert_true(lo == 0 && hi == 0);
    /* b = a with 40 right answers turned wrong: difference 0.1 */
    double *b = malloc(sizeof *b * 400);
    int turned = 0;
    for (int i = 0; i < 400; i++) {
        b[i] = a[i];
        if (a[i] == 1 && turned < 40) {
            b[i] = 0;
            turned++;
        }
    }
    assert_int_equal(s2s_bootstrap_paired_diff(a, b, NULL, 400, 2000, 9, 0.95, &lo, &hi, &err), 0);
    assert_true(lo <= 0.1 && 0.1 <= hi);
    assert_true(lo > 0); /* paired: the 40 discordant pairs make it clearly positive */
    free(a);
    free(b);
}

static void test_mcnemar(void **state) {
    (void)state;
    assert_true(fabs(s2s_mcnemar_exact(10, 2) - 0.03857421875) < 1e-12);
    assert_true(fabs(s2s_mcnemar_exact(2, 10) - 0.03857421875) < 1e-12);
    assert_true(s2s_mcnemar_exact(7, 7) == 1.0);
    assert_true(s2s_mcnemar_exact(0, 0) == 1.0);
    assert_true(fabs(s2s_mcnemar_exact(0, 5) - 0.0625) < 1e-12);
    assert_true(fabs(s2s_mcnemar_exact(3, 1) - 0.625) < 1e-12);
    /* values from exact integer arithmetic (Python math.comb) */
    assert_true(fabs(s2s_mcnemar_exact(25, 40) - 0.08168153394154005) < 1e-10);
    assert_true(fabs(s2s_mcnemar_exact(1000, 900) - 0.02310884510890107) < 1e-10);
    assert_true(s2s_mcnemar_exact(100000, 0) < 1e-300 || s2s_mcnemar_exact(100000, 0) == 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng_deterministic),
        cmocka_unit_test(test_rng_below),
        cmocka_unit_test(test_quantile),
        cmocka_unit_test(test_bootstrap_contains_and_narrows),
        cmocka_unit_test(test_bootstrap_cluster),
        cmocka_unit_test(test_paired),
        cmocka_unit_test(test_mcnemar),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
