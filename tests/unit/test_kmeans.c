/* test_kmeans.c — libs2s/kmeans.c: recovery of well-separated clusters, same seed -> same
 * codebook bytes, assignment = brute-force nearest centre, codebook file round trip and every
 * validation error (magic, version, dimension, truncation, trailing bytes, hash). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "s2s/kmeans.h"
#include "s2s/stats.h"
#include "s2s/util.h"

static double unif(s2s_rng *r) {
    return (double)(s2s_rng_next(r) >> 11) / 9007199254740992.0;
}

static double gauss(s2s_rng *r) {
    double u = unif(r), v = unif(r);
    return sqrt(-2 * log(u + 1e-300)) * cos(2 * M_PI * v);
}

/* C clusters of P points in D dims: centres at random points of [-50, 50]^D, noise sd 1. */
static float *clusters(size_t C, size_t P, size_t D, uint64_t seed, float *centres, int *label) {
    s2s_rng r;
    s2s_rng_seed(&r, seed);
    for (size_t c = 0; c < C * D; c++)
        centres[c] = (float)(100 * unif(&r) - 50);
    float *x = malloc(C * P * D * sizeof *x);
    assert_non_null(x);
    /* Interleave clusters so that order does not give them away. */
    for (size_t i = 0; i < C * P; i++) {
        size_t c = i % C;
        label[i] = (int)c;
        for (size_t d = 0; d < D; d++)
            x[i * D + d] = centres[c * D + d] + (float)gauss(&r);
    }
    return x;
}

static void test_recovers_clusters(void **state) {
    (void)state;
    enum { C = 6, P = 150, D = 8 };
    float truth[C * D], got[C * D];
    int label[C * P];
    float *x = clusters(C, P, D, 42, truth, label);
    s2s_kmeans_opts o;
    s2s_kmeans_opts_default(&o);
    o.k = C;
    o.seed = 3;
    s2s_kmeans_stats st;
    s2s_err err;
    s2s_err_clear(&err);
    assert_int_equal(s2s_kmeans_train(x, C * P, D, &o, got, &st, &err), 0);
    assert_true(st.converged);
    /* Every true centre has exactly one learned centre within 0.5 (noise sd 1, 150 points:
     * the mean is off by ~0.08 per dimension), and the learned centres are a permutation. */
    int used[C] = {0};
    for (int c = 0; c < C; c++) {
        int match = -1;
        for (int j = 0; j < C; j++) {
            double d2 = 0;
            for (int d = 0; d < D; d++)
                d2 += (truth[c * D + d] - got[j * D + d]) * (truth[c * D + d] - got[j * D + d]);
            if (sqrt(d2) < 0.5) {
                assert_int_equal(match, -1);
                match = j;
            }
        }
        if (match < 0) fail_msg("true centre %d not recovered", c);
        assert_int_equal(used[match], 0);
        used[match] = 1;
    }
    /* Inertia ~ n * D * sd^2. */
    assert_true(st.inertia / (C * P * D) > 0.8 && st.inertia / (C * P * D) < 1.2);
    free(x);
}

static s2s_codebook *train_cb(const float *x, size_t n, size_t k, uint64_t seed) {
    s2s_fbank_opts fo;
    s2s_fbank_opts_default(&fo);
    fo.n_mels = 8;
    s2s_kmeans_opts o;
    s2s_kmeans_opts_default(&o);
    o.k = k;
    o.seed = seed;
    float *c = malloc(k * 8 * sizeof *c);
    s2s_err err;
    s2s_err_clear(&err);
    s2s_kmeans_stats st;
    assert_int_equal(s2s_kmeans_train(x, n, 8, &o, c, &st, &err), 0);
    json_t *info = json_pack("{s:I, s:f}", "seed", (json_int_t)seed, "inertia", st.inertia);
    s2s_codebook *cb = s2s_codebook_new(c, k, 8, &fo, info, &err);
    if (!cb) fail_msg("%s", err.msg);
    free(c);
    return cb;
}

static void test_same_seed_same_bytes(void **state) {
    (void)state;
    enum { C = 20, P = 40, D = 8 };
    float truth[C * D];
    int label[C * P];
    float *x = clusters(C, P, D, 9, truth, label);
    /* k smaller than the true count: a harder problem where the seed matters. */
    s2s_codebook *a = train_cb(x, C * P, 7, 11), *b = train_cb(x, C * P, 7, 11),
                 *c = train_cb(x, C * P, 7, 12);
    unsigned char *ba, *bb, *bc;
    size_t la, lb, lc;
    s2s_err err;
    assert_int_equal(s2s_codebook_serialize(a, &ba, &la, &err), 0);
    assert_int_equal(s2s_codebook_serialize(b, &bb, &lb, &err), 0);
    assert_int_equal(s2s_codebook_serialize(c, &bc, &lc, &err), 0);
    assert_int_equal(la, lb);
    assert_memory_equal(ba, bb, la);
    assert_string_equal(s2s_codebook_hash(a), s2s_codebook_hash(b));
    /* The hash is the SHA-256 of the file bytes. */
    char hex[65];
    s2s_sha256_hex(ba, la, hex);
    assert_string_equal(hex, s2s_codebook_hash(a));
    /* Another seed starts elsewhere: a different codebook (this data has 20 clusters for 7). */
    assert_string_not_equal(s2s_codebook_hash(a), s2s_codebook_hash(c));
    free(ba);
    free(bb);
    free(bc);
    s2s_codebook_free(a);
    s2s_codebook_free(b);
    s2s_codebook_free(c);
    free(x);
}

static void test_assign_brute_force(void **state) {
    (void)state;
    s2s_rng r;
    s2s_rng_seed(&r, 5);
    enum { N = 999, D = 8 };
    float *x = malloc(N * D * sizeof *x);
    for (size_t i = 0; i < N * D; i++)
        x[i] = (float)(gauss(&r) * 3);
    /* k = 37: not a multiple of the padding, so padded centres must never win. */
    s2s_codebook *cb = train_cb(x, N, 37, 1);
    int32_t *u = malloc(N * sizeof *u);
    s2s_err err;
    assert_int_equal(s2s_codebook_assign(cb, x, N, u, &err), 0);
    const float *c = s2s_codebook_centroids(cb);
    for (size_t i = 0; i < N; i++) {
        double best = HUGE_VAL, mine = 0;
        for (size_t j = 0; j < 37; j++) {
            double d2 = 0;
            for (size_t d = 0; d < D; d++)
                d2 += ((double)x[i * D + d] - c[j * D + d]) * ((double)x[i * D + d] - c[j * D + d]);
            if (d2 < best) best = d2;
            if ((int32_t)j == u[i]) mine = d2;
        }
        assert_true(u[i] >= 0 && u[i] < 37);
        if (mine > best + 1e-4 * (1 + best))
            fail_msg("frame %zu: unit %d at distance %g, nearest is %g", i, u[i], mine, best);
    }
    /* Any block length gives the same units (the kernel works 4 frames at a time). */
    int32_t *v = malloc(N * sizeof *v);
    for (size_t i = 0; i < N;) {
        size_t m = 1 + i % 5;
        if (m > N - i) m = N - i;
        assert_int_equal(s2s_codebook_assign(cb, x + i * D, m, v + i, &err), 0);
        i += m;
    }
    assert_memory_equal(u, v, N * sizeof *u);
    free(u);
    free(v);
    free(x);
    s2s_codebook_free(cb);
}

static s2s_codebook *must_parse_fail(const unsigned char *d, size_t n, int code, const char *what) {
    s2s_err err;
    s2s_err_clear(&err);
    s2s_codebook *cb = s2s_codebook_parse(d, n, "cb.bin", &err);
    if (cb) fail_msg("expected failure (%s)", what);
    if (err.code != code) fail_msg("%s: code %d, want %d (%s)", what, err.code, code, err.msg);
    if (!strstr(err.msg, what)) fail_msg("message '%s' does not say '%s'", err.msg, what);
    assert_non_null(strstr(err.msg, "cb.bin"));
    return cb;
}

static void test_file_round_trip_and_errors(void **state) {
    (void)state;
    s2s_rng r;
    s2s_rng_seed(&r, 8);
    float x[200 * 8];
    for (size_t i = 0; i < 200 * 8; i++)
        x[i] = (float)gauss(&r);
    s2s_codebook *cb = train_cb(x, 200, 5, 2);
    unsigned char *b;
    size_t n;
    s2s_err err;
    s2s_err_clear(&err);
    assert_int_equal(s2s_codebook_serialize(cb, &b, &n, &err), 0);
    s2s_codebook *back = s2s_codebook_parse(b, n, "cb.bin", &err);
    if (!back) fail_msg("%s", err.msg);
    assert_int_equal(s2s_codebook_k(back), 5);
    assert_int_equal(s2s_codebook_dim(back), 8);
    assert_memory_equal(s2s_codebook_centroids(back), s2s_codebook_centroids(cb), 5 * 8 * 4);
    assert_string_equal(s2s_codebook_hash(back), s2s_codebook_hash(cb));
    assert_int_equal(s2s_codebook_fbank_opts(back)->n_mels, 8);
    assert_non_null(json_object_get(s2s_codebook_info(back), "seed"));
    s2s_codebook_free(back);

    /* Truncated by one byte; one byte too many. */
    must_parse_fail(b, n - 1, S2S_EFORMAT, "truncated");
    unsigned char *t = malloc(n + 1);
    memcpy(t, b, n);
    t[n] = 0;
    must_parse_fail(t, n + 1, S2S_EFORMAT, "trailing");
    /* A flipped bit in the centres. */
    memcpy(t, b, n);
    t[n - 3] ^= 0x10;
    must_parse_fail(t, n, S2S_EDATA, "hash mismatch");
    /* Not a codebook; a future version. */
    must_parse_fail((const unsigned char *)"RIFF....WAVEfmt ", 16, S2S_EFORMAT,
                    "not an s2s codebook");
    memcpy(t, b, n);
    t[13] = '2';
    must_parse_fail(t, n, S2S_EUNSUP, "version");
    /* Wrong dimension: header says dim 4 while the features have 8 mel bins. */
    char *s = malloc(n + 1);
    memcpy(s, b, n);
    s[n] = 0;
    char *p = strstr(s, "\"dim\":8");
    assert_non_null(p);
    p[6] = '4';
    must_parse_fail((unsigned char *)s, n, S2S_EFORMAT, "wrong dimension");
    /* Header not JSON. */
    memcpy(s, b, n);
    s[16] = '[';
    must_parse_fail((unsigned char *)s, n, S2S_EFORMAT, "not JSON");
    free(s);
    free(t);

    /* Saved file = serialised bytes; load validates the same way and names the path. */
    char path[] = "/tmp/test_kmeans_cb_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(s2s_codebook_save(cb, path, &err), 0);
    unsigned char *fb;
    size_t fl;
    assert_int_equal(s2s_read_file(path, &fb, &fl, &err), 0);
    assert_int_equal(fl, n);
    assert_memory_equal(fb, b, n);
    free(fb);
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, n / 2, f);
    fclose(f);
    assert_null(s2s_codebook_load(path, &err));
    assert_int_equal(err.code, S2S_EFORMAT);
    assert_non_null(strstr(err.msg, path));
    remove(path);
    free(b);
    s2s_codebook_free(cb);
}

static void test_train_errors_and_units_text(void **state) {
    (void)state;
    float x[10 * 2] = {0};
    float c[5 * 2];
    s2s_kmeans_opts o;
    s2s_kmeans_opts_default(&o);
    o.k = 11;
    s2s_err err;
    assert_int_equal(s2s_kmeans_train(x, 10, 2, &o, c, NULL, &err), S2S_EINVAL);
    o.k = 3; /* ten identical frames: one distinct point for three clusters */
    assert_int_equal(s2s_kmeans_train(x, 10, 2, &o, c, NULL, &err), S2S_EDATA);
    assert_non_null(strstr(err.msg, "distinct"));
    x[3] = NAN;
    assert_int_equal(s2s_kmeans_train(x, 10, 2, &o, c, NULL, &err), S2S_EDATA);

    int32_t u[] = {0, 17, 5, 99, 1234567};
    size_t len;
    char *s = s2s_units_format(u, 5, &len);
    assert_string_equal(s, "0 17 5 99 1234567");
    assert_int_equal(len, strlen(s));
    free(s);
    s = s2s_units_format(u, 0, &len);
    assert_string_equal(s, "");
    assert_int_equal(len, 0);
    free(s);
    /* chunked: the same text */
    char buf[64];
    assert_true(s2s_units_text_max(5, 1234568) <= sizeof buf);
    assert_int_equal(s2s_units_text_max(3, 100), 3 * 3 + 2);
    size_t l2 = s2s_units_format_to(u, 2, 0, buf);
    l2 += s2s_units_format_to(u + 2, 3, 1, buf + l2);
    buf[l2] = 0;
    assert_string_equal(buf, "0 17 5 99 1234567");
}

/* Threads only split per-frame work: the centres are the same bytes for any count. */
static void test_threads_same_result(void **state) {
    (void)state;
    enum { N = 6000, D = 8, K = 12 };
    s2s_rng r;
    s2s_rng_seed(&r, 77);
    float *x = malloc(N * D * sizeof *x), a[K * D], b[K * D];
    assert_non_null(x);
    for (size_t i = 0; i < N * D; i++)
        x[i] = (float)(gauss(&r) * 2 + (i % 3));
    s2s_kmeans_opts o;
    s2s_kmeans_opts_default(&o);
    o.k = K;
    s2s_kmeans_stats sa, sb;
    s2s_err err;
    assert_int_equal(s2s_kmeans_train(x, N, D, &o, a, &sa, &err), 0);
    o.threads = 3;
    assert_int_equal(s2s_kmeans_train(x, N, D, &o, b, &sb, &err), 0);
    assert_memory_equal(a, b, sizeof a);
    assert_int_equal(sa.iters, sb.iters);
    assert_true(sa.inertia == sb.inertia);
    free(x);
}

/* The portable and the AVX2 kernels give the same units and the same score bits, equal to the
 * scalar definition (||c||^2 in double rounded to float, then + (-2 x[d]) c[d] for d in
 * order), on random data with exact ties (values on a 0.5 grid, duplicated centres: the lowest
 * index must win). */
static void test_kernels_bit_identical(void **state) {
    (void)state;
    s2s_rng r;
    s2s_rng_seed(&r, 11);
    const size_t ks[3] = {100, 37, 8}, dims[3] = {80, 8, 3};
    for (int v = 0; v < 3; v++) {
        size_t k = ks[v], D = dims[v], N = 1003;
        float *c = malloc(k * D * sizeof *c), *x = malloc(N * D * sizeof *x);
        float *b0 = malloc(N * sizeof *b0), *b1 = malloc(N * sizeof *b1);
        int32_t *u0 = malloc(N * sizeof *u0), *u1 = malloc(N * sizeof *u1);
        assert_true(c && x && b0 && b1 && u0 && u1);
        for (size_t i = 0; i < k * D; i++)
            c[i] = (float)(s2s_rng_below(&r, 9)) * 0.5f - 2.0f;
        memcpy(c + (k - 1) * D, c + 1 * D, D * sizeof *c); /* centre k-1 = centre 1 */
        for (size_t i = 0; i < N * D; i++)
            x[i] = v == 0 ? (float)(gauss(&r) * 2) : (float)(s2s_rng_below(&r, 9)) * 0.5f - 2.0f;
        s2s_fbank_opts fo;
        s2s_fbank_opts_default(&fo);
        fo.n_mels = (int)D;
        s2s_err err;
        s2s_err_clear(&err);
        s2s_codebook *cb = s2s_codebook_new(c, k, D, &fo, NULL, &err);
        assert_non_null(cb);
        assert_int_equal(s2s_codebook_assign_impl(cb, x, N, u0, b0, 0, &err), 0);
        int rc = s2s_codebook_assign_impl(cb, x, N, u1, b1, 1, &err);
        if (rc == 0) {
            assert_memory_equal(u0, u1, N * sizeof *u0);
            assert_memory_equal(b0, b1, N * sizeof *b0);
        } else {
            assert_int_equal(rc, S2S_EUNSUP);
            print_message("no AVX2 on this CPU: only the portable kernel tested\n");
        }
        assert_int_equal(s2s_codebook_assign_impl(cb, x, N, u1, NULL, 5, &err), S2S_EINVAL);
        size_t ties = 0;
        for (size_t i = 0; i < N; i++) {
            float best = 0;
            int32_t bi = -1;
            size_t nbest = 0;
            for (size_t j = 0; j < k; j++) {
                double n2 = 0;
                for (size_t d = 0; d < D; d++)
                    n2 += (double)c[j * D + d] * c[j * D + d];
                float a = (float)n2;
                for (size_t d = 0; d < D; d++)
                    a += -2.0f * x[i * D + d] * c[j * D + d];
                if (bi < 0 || a < best) {
                    best = a;
                    bi = (int32_t)j;
                    nbest = 1;
                } else if (a == best) {
                    nbest++;
                }
            }
            ties += nbest > 1;
            if (u0[i] != bi || memcmp(&b0[i], &best, sizeof best) != 0)
                fail_msg("k %zu frame %zu: unit %d score %a, scalar definition %d %a", k, i, u0[i],
                         (double)b0[i], bi, (double)best);
        }
        if (v > 0) assert_true(ties > 0); /* the grid data does make ties */
        if (v == 2) {         /* absurd centres: every ||c||^2 overflows to +inf; the padding (3e38)
                               * must still never win */
            float big[5 * 3]; /* k 5: 3 padding centres */
            for (size_t i = 0; i < 5 * 3; i++)
                big[i] = (i % 3 == 0 ? 3e19f : 1e19f) * (i % 2 ? 1.0f : -1.0f);
            s2s_codebook *cbb = s2s_codebook_new(big, 5, 3, &fo, NULL, &err);
            assert_non_null(cbb);
            for (int impl = 0; impl <= 1; impl++) {
                if (s2s_codebook_assign_impl(cbb, x, 9, u1, NULL, impl, &err) != 0) continue;
                for (size_t i = 0; i < 9; i++)
                    assert_true(u1[i] >= 0 && u1[i] < 5);
            }
            s2s_codebook_free(cbb);
        }
        s2s_codebook_free(cb);
        free(c);
        free(x);
        free(b0);
        free(b1);
        free(u0);
        free(u1);
    }
}

/* A NaN score (||c||^2 = +inf against -2 x.c = -inf) first in a lane must not hide a later
 * centre of that lane: unit 11 wins in every kernel, as in the plain scan. */
static void test_nan_lane(void **state) {
    (void)state;
    enum { K = 16, D = 3 };
    float c[K * D] = {0};
    c[3 * D] = 3e19f; /* centre 3: NaN score */
    c[11 * D] = 1.0f; /* centre 11: score 1 - 2e19, the smallest */
    float x[D] = {1e19f, 0, 0};
    s2s_fbank_opts fo;
    s2s_fbank_opts_default(&fo);
    fo.n_mels = D;
    s2s_err err;
    s2s_err_clear(&err);
    s2s_codebook *cb = s2s_codebook_new(c, K, D, &fo, NULL, &err);
    assert_non_null(cb);
    for (int impl = 0; impl <= 1; impl++) {
        int32_t u = -1;
        if (s2s_codebook_assign_impl(cb, x, 1, &u, NULL, impl, &err) != 0) continue;
        assert_int_equal(u, 11);
    }
    s2s_codebook_free(cb);
}

/* Units and scores of session 4's search, pinned: FNV-1a 64 of units[] and best[] for random
 * data (k 100 x 80 dimensions; grid data with ties at k 37 and 8), from every kernel this CPU
 * has. A faster search must give these bits. */
static uint64_t fnv64(const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void test_pinned_bits(void **state) {
    (void)state;
    static const uint64_t want[3][2] = {{0x993293821289135full, 0xe150aa20752b5cd2ull},
                                        {0x65d08ec1bf690a11ull, 0x49eb83394be33939ull},
                                        {0x9771dcea0c82e3b4ull, 0xcc8583b975a929d3ull}};
    const size_t ks[3] = {100, 37, 8}, dims[3] = {80, 8, 3};
    for (int v = 0; v < 3; v++) {
        size_t k = ks[v], D = dims[v], N = 1003;
        s2s_rng r;
        s2s_rng_seed(&r, 5 + (uint64_t)v);
        float *c = malloc(k * D * sizeof *c), *x = malloc(N * D * sizeof *x);
        float *b = malloc(N * sizeof *b);
        int32_t *u = malloc(N * sizeof *u);
        assert_true(c && x && b && u);
        for (size_t i = 0; i < k * D; i++)
            c[i] = (float)(s2s_rng_below(&r, 9)) * 0.5f - 2.0f;
        for (size_t i = 0; i < N * D; i++)
            x[i] = v == 0 ? (float)((double)(s2s_rng_next(&r) >> 40) / 16777216.0 * 8 - 4)
                          : (float)(s2s_rng_below(&r, 9)) * 0.5f - 2.0f;
        s2s_fbank_opts fo;
        s2s_fbank_opts_default(&fo);
        fo.n_mels = (int)D;
        s2s_err err;
        s2s_err_clear(&err);
        s2s_codebook *cb = s2s_codebook_new(c, k, D, &fo, NULL, &err);
        assert_non_null(cb);
        for (int impl = 0; impl <= 1; impl++) {
            if (s2s_codebook_assign_impl(cb, x, N, u, b, impl, &err) != 0) continue;
            if (fnv64(u, N * sizeof *u) != want[v][0] || fnv64(b, N * sizeof *b) != want[v][1])
                fail_msg("k %zu kernel %d: units or scores changed", k, impl);
        }
        s2s_codebook_free(cb);
        free(c);
        free(x);
        free(b);
        free(u);
    }
}

/* Runs of bit-identical frames (digital silence) take the unit and score of the frame before
 * them without being scored: the result must be the one of scoring every frame alone, in every
 * kernel, for runs inside a tile, across tiles and at the start; a frame equal to the one before
 * but for the sign of a zero is not a repeat. */
static void test_repeated_frames(void **state) {
    (void)state;
    enum { K = 37, D = 8, N = 200 };
    s2s_rng r;
    s2s_rng_seed(&r, 21);
    float c[K * D], x[N * D], b1[N], b2[N];
    int32_t u1[N], u2[N];
    for (size_t i = 0; i < K * D; i++)
        c[i] = (float)(s2s_rng_below(&r, 9)) * 0.5f - 2.0f;
    for (size_t i = 0; i < N; i++) {
        int repeat = i > 0 && (i < 40 || (i % 7) != 0);
        for (size_t d = 0; d < D; d++)
            x[i * D + d] = repeat ? x[(i - 1) * D + d] : (float)(gauss(&r) * 2);
    }
    x[100 * D + 3] = 0.0f; /* frames 100, 101: +0 and -0 in one place */
    memcpy(x + 101 * D, x + 100 * D, D * sizeof *x);
    x[101 * D + 3] = -0.0f;
    s2s_fbank_opts fo;
    s2s_fbank_opts_default(&fo);
    fo.n_mels = D;
    s2s_err err;
    s2s_err_clear(&err);
    s2s_codebook *cb = s2s_codebook_new(c, K, D, &fo, NULL, &err);
    assert_non_null(cb);
    for (int impl = 0; impl <= 1; impl++) {
        if (s2s_codebook_assign_impl(cb, x, N, u1, b1, impl, &err) != 0) continue;
        for (size_t i = 0; i < N; i++)
            assert_int_equal(s2s_codebook_assign_impl(cb, x + i * D, 1, &u2[i], &b2[i], impl, &err),
                             0);
        assert_memory_equal(u1, u2, sizeof u1);
        assert_memory_equal(b1, b2, sizeof b1);
    }
    s2s_codebook_free(cb);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_nan_lane),
                                       cmocka_unit_test(test_recovers_clusters),
                                       cmocka_unit_test(test_same_seed_same_bytes),
                                       cmocka_unit_test(test_assign_brute_force),
                                       cmocka_unit_test(test_file_round_trip_and_errors),
                                       cmocka_unit_test(test_train_errors_and_units_text),
                                       cmocka_unit_test(test_threads_same_result),
                                       cmocka_unit_test(test_kernels_bit_identical),
                                       cmocka_unit_test(test_pinned_bits),
                                       cmocka_unit_test(test_repeated_frames)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
