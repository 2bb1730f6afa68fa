/* kmeans.c — k-means++ / Lloyd training, the codebook file and nearest-centroid search. */
#include "s2s/kmeans.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "s2s/stats.h"
#include "s2s/util.h"
#include "simd_x86.h"

#define CB_MAGIC "s2s-codebook 1\n"
#define CB_MAX_K 65536
#define CB_MAX_DIM 4096
#define KPAD 8 /* centroids padded to a multiple of 8 floats: whole AVX2 vectors */

void s2s_kmeans_opts_default(s2s_kmeans_opts *o) {
    o->k = 100;
    o->seed = 1;
    o->max_iters = 100;
    o->tol = 1e-6;
    o->threads = 1;
}

/* ---- the search kernel --------------------------------------------------------------------
 * kmeans_kernel.inc scores 4 frames against a block of centres: acc_f[k] = ||c_k||^2 -
 * 2 x_f . c_k, summed over d in order 0..dim-1 for each (frame, centre) (lanes are centres: no
 * sum is reordered, so every vector width gives the same floats; GCC in ISO C mode does not
 * contract into FMA). It is built for SSE2 (the x86-64 baseline) and AVX2, picked at run time;
 * tests/unit/test_kmeans.c checks that both give the same bits. An AVX-512 copy (blocks of 32
 * centres, half the instructions) measured no faster on a Zen 4, which splits 512-bit
 * multiplies and adds in two: the kernel is bound by its multiplies and adds. */
typedef float kvf4 __attribute__((vector_size(16)));
typedef float kvf8 __attribute__((vector_size(32)));
typedef int32_t kvi4 __attribute__((vector_size(16)));
typedef int32_t kvi8 __attribute__((vector_size(32)));

/* AMASK of kmeans_kernel.inc: bit l set where lane l of a comparison result is true. */
#if S2S_SIMD_X86
static inline __attribute__((always_inline)) unsigned kmask4(kvi4 e) {
    return (unsigned)_mm_movemask_ps((__m128)e);
}
__attribute__((target("avx2"), always_inline)) static inline unsigned kmask8(kvi8 e) {
    return (unsigned)_mm256_movemask_ps((__m256)e);
}
#else
static inline unsigned kmask4(kvi4 e) {
    unsigned mask = 0;
    for (size_t l = 0; l < 4; l++)
        mask |= (unsigned)(e[l] & 1) << l;
    return mask;
}
#endif

#define KFN score4_generic
#define KPREP prep_generic
#define KARG argmin_generic
#define AF kvf4
#define AI kvi4
#define AMASK kmask4
#define KATTR __attribute__((optimize("O3")))
#define VW 4
#define VF kvf4
#include "kmeans_kernel.inc"
#undef KFN
#undef KPREP
#undef KARG
#undef AF
#undef AI
#undef AMASK
#undef KATTR
#undef VW
#undef VF

#if S2S_SIMD_X86
#define KFN score4_avx2
#define KPREP prep_avx2
#define KARG argmin_avx2
#define AF kvf8
#define AI kvi8
#define AMASK kmask8
#define KATTR __attribute__((target("avx2"), optimize("O3")))
#define VW 8
#define VF kvf8
#include "kmeans_kernel.inc"
#undef KFN
#undef KPREP
#undef KARG
#undef KATTR
#undef VW
#undef VF
#undef AF
#undef AI
#undef AMASK
#endif

static void score4(int impl, const float *ct, const float *norm, size_t kp, size_t dim,
                   const float *const *xs, float *const *as, size_t kb, size_t w) {
#if S2S_SIMD_X86
    if (impl == 1) {
        score4_avx2(ct, norm, kp, dim, xs, as, kb, w);
        return;
    }
#endif
    (void)impl;
    score4_generic(ct, norm, kp, dim, xs, as, kb, w);
}

static void prep(int impl, float *v, const float *x, size_t n) {
#if S2S_SIMD_X86
    if (impl == 1) {
        prep_avx2(v, x, n);
        return;
    }
#endif
    (void)impl;
    prep_generic(v, x, n);
}

static int32_t argmin(int impl, const float *a, size_t k, size_t kp, float *best) {
#if S2S_SIMD_X86
    if (impl == 1) return argmin_avx2(a, k, kp, best);
#endif
    (void)impl;
    return argmin_generic(a, k, kp, best);
}

/* argmin (KARG of kmeans_kernel.inc): index of the smallest score among the real centres
 * a[0..k-1] (first on ties); *best its value. a holds kp >= k scores (kp a multiple of 8; the
 * padding scores 3e38). The minimum is found over 8 lanes (min is exact, so the order does not
 * matter), then its first index; when that is not a real centre (scores that are NaN or all
 * above 3e38, i.e. absurd centres) the plain scan over the real centres decides. */

/* Transposed, padded centres and their squared norms (padding: +huge, never chosen). */
typedef struct search {
    size_t k, kp, dim;
    float *ct, *norm;
    int impl; /* 0 portable, 1 AVX2 */
} search;

static void search_fill(search *s, const float *c) {
    for (size_t j = 0; j < s->kp; j++) {
        double n2 = 0;
        for (size_t d = 0; d < s->dim; d++) {
            float v = j < s->k ? c[j * s->dim + d] : 0.0f;
            s->ct[d * s->kp + j] = v;
            n2 += (double)v * v;
        }
        s->norm[j] = j < s->k ? (float)n2 : 3.0e38f;
    }
}

static int search_init(search *s, size_t k, size_t dim) {
    s->k = k;
    s->dim = dim;
    s->kp = (k + KPAD - 1) / KPAD * KPAD;
    s->impl = s2s_cpu_has_kernel(1);
    s->ct = malloc(s->kp * dim * sizeof *s->ct);
    s->norm = malloc(s->kp * sizeof *s->norm);
    return s->ct && s->norm ? 0 : -1;
}

static void search_free(search *s) {
    free(s->ct);
    free(s->norm);
}

/* Nearest centre for n frames; best[i] (optional) gets the score ||c||^2 - 2 x.c. acc holds
 * SEARCH_SCRATCH(kp, dim) floats. Frames go in tiles of TILE: -2 x of a tile (exact) is
 * computed once, then each block of 16 centres (5 KB at dim 80) scores the whole tile while it
 * is in the L1 cache (the codebook, 33 KB at k 100, does not fit there whole). A frame whose
 * floats are bit for bit those of the frame before it gets that frame's unit and score without
 * being scored (the result is a function of the frame's bits alone): runs of digital silence,
 * 12 % of the frames of espeak-ng speech, cost a memcmp each. */
#define TILE 16
#define SEARCH_SCRATCH(kp, dim) ((size_t)TILE * ((kp) + (dim)))
static void search_run(const search *s, const float *x, size_t n, int32_t *units, float *best,
                       float *acc) {
    size_t kp = s->kp, dim = s->dim;
    float *v = acc + TILE * kp;
    for (size_t i = 0; i < n;) {
        size_t idx[TILE], m = 0, end = i; /* frames [i, end): idx[0..m) are scored */
        for (; end < n && m < TILE; end++)
            if (end == 0 || memcmp(x + end * dim, x + (end - 1) * dim, dim * sizeof *x) != 0)
                idx[m++] = end;
        size_t groups = (m + 3) / 4;
        for (size_t j = 0; j < m; j++)
            prep(s->impl, v + j * dim, x + idx[j] * dim, dim);
        for (size_t j = m; j < groups * 4; j++) /* a short tile's spare rows: its first frame */
            memcpy(v + j * dim, v, dim * sizeof *v);
        for (size_t kb = 0; m > 0 && kb < kp;) {
            size_t w = kp - kb >= 16 ? 16 : 8;
            for (size_t g = 0; g < groups; g++) {
                const float *xs[4] = {v + (4 * g) * dim, v + (4 * g + 1) * dim,
                                      v + (4 * g + 2) * dim, v + (4 * g + 3) * dim};
                float *const as[4] = {acc + (4 * g) * kp, acc + (4 * g + 1) * kp,
                                      acc + (4 * g + 2) * kp, acc + (4 * g + 3) * kp};
                score4(s->impl, s->ct, s->norm, kp, dim, xs, as, kb, w);
            }
            kb += w;
        }
        for (size_t j = 0; j < m; j++)
            units[idx[j]] = argmin(s->impl, acc + j * kp, s->k, kp, best ? &best[idx[j]] : NULL);
        for (size_t j = 0, f = i; f < end; f++) { /* the repeats, in order: f - 1 is done */
            if (j < m && idx[j] == f) {
                j++;
                continue;
            }
            units[f] = units[f - 1];
            if (best) best[f] = best[f - 1];
        }
        i = end;
    }
}

/* ---- training ------------------------------------------------------------------------------ */
/* ---- data-parallel loops over frames -------------------------------------------------------
 * Only per-frame work runs in threads (nearest centre, distance to a new centre); every sum over
 * frames stays sequential, so the result is the same for any thread count. */
static double dist2(const float *a, const float *b, size_t dim);

typedef struct par_ctx {
    const search *s;
    const float *x, *cj;
    size_t dim;
    int32_t *as;
    float *best;
    double *mind;
} par_ctx;

typedef struct par_job {
    const par_ctx *c;
    int what; /* 0: assign, 1: update min distances */
    size_t lo, hi;
    float *acc;
} par_job;

static void par_run(par_job *j) {
    const par_ctx *c = j->c;
    if (j->what == 0) {
        search_run(c->s, c->x + j->lo * c->s->dim, j->hi - j->lo, c->as + j->lo, c->best + j->lo,
                   j->acc);
        return;
    }
    for (size_t i = j->lo; i < j->hi; i++) {
        double dd = dist2(c->x + i * c->dim, c->cj, c->dim);
        if (dd < c->mind[i]) c->mind[i] = dd;
    }
}

static void *par_main(void *arg) {
    par_run(arg);
    return NULL;
}

/* Runs job `what` over frames [0, n) in `threads` contiguous parts; a part whose thread cannot
 * start runs in the calling thread. accs: one SEARCH_SCRATCH scratch per part. */
static void par_for(const par_ctx *c, int what, size_t n, int threads, float **accs) {
    enum { MAXT = 64 };
    par_job jobs[MAXT];
    pthread_t th[MAXT];
    int started[MAXT];
    size_t nt = threads < 1 ? 1 : threads > MAXT ? MAXT : (size_t)threads;
    if (n / 1024 < nt) nt = n / 1024 + 1; /* small n: fewer threads (1 below 1024 frames) */
    /* part 0 runs in the calling thread, set up first (nt >= 1) */
    jobs[0] = (par_job){c, what, 0, n / nt, accs[0]};
    started[0] = 0;
    for (size_t t = 1; t < nt; t++) {
        jobs[t] = (par_job){c, what, n * t / nt, n * (t + 1) / nt, accs[t]};
        started[t] = pthread_create(&th[t], NULL, par_main, &jobs[t]) == 0;
    }
    par_run(&jobs[0]);
    for (size_t t = 1; t < nt; t++) {
        if (started[t])
            pthread_join(th[t], NULL);
        else
            par_run(&jobs[t]);
    }
}

static double dist2(const float *a, const float *b, size_t dim) {
    double s = 0;
    for (size_t d = 0; d < dim; d++) {
        double t = (double)a[d] - b[d];
        s += t * t;
    }
    return s;
}

static double uniform01(s2s_rng *r) {
    return (double)(s2s_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

int s2s_kmeans_train(const float *x, size_t n, size_t dim, const s2s_kmeans_opts *o, float *c,
                     s2s_kmeans_stats *stats, s2s_err *err) {
    size_t k = o->k;
    if (k < 1 || k > CB_MAX_K)
        return s2s_err_set(err, S2S_EINVAL, "k = %zu out of range 1..%d", k, CB_MAX_K);
    if (dim < 1 || dim > CB_MAX_DIM)
        return s2s_err_set(err, S2S_EINVAL, "dimension %zu out of range 1..%d", dim, CB_MAX_DIM);
    if (o->max_iters < 0) return s2s_err_set(err, S2S_EINVAL, "negative iteration bound");
    if (n < k)
        return s2s_err_set(err, S2S_EINVAL, "%zu frames are too few for k = %zu clusters", n, k);
    for (size_t i = 0; i < n * dim; i++)
        if (!isfinite(x[i]))
            return s2s_err_set(err, S2S_EDATA, "frame %zu holds a non-finite value", i / dim);
    s2s_kmeans_stats st = {0, 0, 0.0, 0};
    double *mind = malloc(n * sizeof *mind);
    double *sums = malloc(k * dim * sizeof *sums);
    size_t *cnt = malloc(k * sizeof *cnt);
    int32_t *as = malloc(n * sizeof *as), *prev = malloc(n * sizeof *prev);
    float *best = malloc(n * sizeof *best), *x2 = malloc(n * sizeof *x2);
    search s = {0};
    int rc = 0;
    if (!mind || !sums || !cnt || !as || !prev || !best || !x2 || search_init(&s, k, dim) < 0) {
        rc = s2s_err_set(err, S2S_ENOMEM, "out of memory (%zu frames, k = %zu)", n, k);
        goto out;
    }
    int nt = o->threads < 1 ? 1 : o->threads > 64 ? 64 : o->threads;
    float *accs[64];
    float *acc = malloc((size_t)nt * SEARCH_SCRATCH(s.kp, dim) * sizeof *acc);
    if (!acc) {
        rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
        goto out;
    }
    for (int t = 0; t < nt; t++)
        accs[t] = acc + (size_t)t * SEARCH_SCRATCH(s.kp, dim);
    par_ctx pc = {&s, x, NULL, dim, as, best, mind};
    /* k-means++ (Arthur & Vassilvitskii 2007): each next centre drawn with probability
     * proportional to the squared distance to the nearest centre so far. */
    s2s_rng rng;
    s2s_rng_seed(&rng, o->seed);
    size_t pick = (size_t)s2s_rng_below(&rng, n);
    memcpy(c, x + pick * dim, dim * sizeof *c);
    for (size_t i = 0; i < n; i++)
        mind[i] = dist2(x + i * dim, c, dim);
    for (size_t j = 1; j < k; j++) {
        double total = 0;
        for (size_t i = 0; i < n; i++)
            total += mind[i];
        if (!(total > 0)) {
            rc = s2s_err_set(err, S2S_EDATA,
                             "only %zu distinct frames among %zu: cannot make k = %zu clusters", j,
                             n, k);
            free(acc);
            goto out;
        }
        double r = uniform01(&rng) * total, cum = 0;
        pick = n;
        for (size_t i = 0; i < n; i++) {
            if (mind[i] <= 0) continue;
            cum += mind[i];
            pick = i;
            if (cum > r) break;
        }
        float *cj = c + j * dim;
        memcpy(cj, x + pick * dim, dim * sizeof *c);
        pc.cj = cj;
        par_for(&pc, 1, n, nt, accs);
    }
    for (size_t i = 0; i < n; i++) {
        double s2 = 0;
        for (size_t d = 0; d < dim; d++)
            s2 += (double)x[i * dim + d] * x[i * dim + d];
        x2[i] = (float)s2;
        prev[i] = -1;
    }
    /* Lloyd. */
    double last = HUGE_VAL;
    for (int it = 0;; it++) {
        search_fill(&s, c);
        par_for(&pc, 0, n, nt, accs);
        double inertia = 0;
        size_t changed = 0;
        for (size_t i = 0; i < n; i++) {
            double e = (double)x2[i] + best[i];
            inertia += e > 0 ? e : 0;
            changed += as[i] != prev[i];
        }
        st.inertia = inertia;
        if (changed == 0 || (o->tol > 0 && last - inertia < o->tol * last)) {
            st.converged = 1;
            break;
        }
        if (it >= o->max_iters) break;
        last = inertia;
        memcpy(prev, as, n * sizeof *as);
        memset(sums, 0, k * dim * sizeof *sums);
        memset(cnt, 0, k * sizeof *cnt);
        for (size_t i = 0; i < n; i++) {
            double *sj = sums + (size_t)as[i] * dim;
            const float *xi = x + i * dim;
            for (size_t d = 0; d < dim; d++)
                sj[d] += xi[d];
            cnt[as[i]]++;
        }
        for (size_t j = 0; j < k; j++) {
            if (cnt[j] == 0) {
                /* Empty cluster: move it to the frame farthest from its centre (first on
                 * ties), then make that frame ineligible for the next empty one. */
                size_t far = 0;
                double fv = -1;
                for (size_t i = 0; i < n; i++) {
                    double e = (double)x2[i] + best[i];
                    if (e > fv) {
                        fv = e;
                        far = i;
                    }
                }
                memcpy(c + j * dim, x + far * dim, dim * sizeof *c);
                best[far] = -x2[far];
                st.reseeded++;
                continue;
            }
            for (size_t d = 0; d < dim; d++)
                c[j * dim + d] = (float)(sums[j * dim + d] / (double)cnt[j]);
        }
        st.iters = it + 1;
    }
    free(acc);
out:
    if (stats) *stats = st;
    free(mind);
    free(sums);
    free(cnt);
    free(as);
    free(prev);
    free(best);
    free(x2);
    search_free(&s);
    return rc;
}

/* ---- codebook ------------------------------------------------------------------------------ */
struct s2s_codebook {
    size_t k, dim;
    float *c;
    search s;
    s2s_fbank_opts fo;
    json_t *info;
    char hash[65];
};

void s2s_codebook_free(s2s_codebook *cb) {
    if (!cb) return;
    free(cb->c);
    search_free(&cb->s);
    json_decref(cb->info);
    free(cb);
}

/* Allocates and fills everything but the hash. Steals info. */
static s2s_codebook *cb_make(const float *c, size_t k, size_t dim, const s2s_fbank_opts *fo,
                             json_t *info, s2s_err *err) {
    s2s_codebook *cb = calloc(1, sizeof *cb);
    if (!cb || !(cb->c = malloc(k * dim * sizeof *cb->c)) || search_init(&cb->s, k, dim) < 0) {
        json_decref(info);
        s2s_codebook_free(cb);
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        return NULL;
    }
    cb->k = k;
    cb->dim = dim;
    cb->fo = *fo;
    cb->info = info;
    memcpy(cb->c, c, k * dim * sizeof *c);
    search_fill(&cb->s, cb->c);
    return cb;
}

s2s_codebook *s2s_codebook_new(const float *centroids, size_t k, size_t dim,
                               const s2s_fbank_opts *fo, json_t *info, s2s_err *err) {
    if (k < 1 || k > CB_MAX_K || dim < 1 || dim > CB_MAX_DIM || s2s_fbank_opts_check(fo, err) < 0 ||
        (size_t)fo->n_mels != dim || (info && !json_is_object(info))) {
        json_decref(info);
        if (!err || !err->code)
            s2s_err_set(err, S2S_EINVAL, "codebook: k = %zu, dim = %zu do not fit the features", k,
                        dim);
        return NULL;
    }
    for (size_t i = 0; i < k * dim; i++)
        if (!isfinite(centroids[i])) {
            json_decref(info);
            s2s_err_set(err, S2S_EDATA, "codebook: centre %zu is not finite", i / dim);
            return NULL;
        }
    s2s_codebook *cb = cb_make(centroids, k, dim, fo, info, err);
    if (!cb) return NULL;
    unsigned char *bytes;
    size_t len;
    if (s2s_codebook_serialize(cb, &bytes, &len, err) < 0) {
        s2s_codebook_free(cb);
        return NULL;
    }
    s2s_sha256_hex(bytes, len, cb->hash);
    free(bytes);
    return cb;
}

static void put_f32le(unsigned char *p, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    p[0] = (unsigned char)u;
    p[1] = (unsigned char)(u >> 8);
    p[2] = (unsigned char)(u >> 16);
    p[3] = (unsigned char)(u >> 24);
}

static float get_f32le(const unsigned char *p) {
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float v;
    memcpy(&v, &u, 4);
    return v;
}

int s2s_codebook_serialize(const s2s_codebook *cb, unsigned char **out, size_t *len, s2s_err *err) {
    size_t nb = cb->k * cb->dim * 4;
    unsigned char *data = malloc(nb ? nb : 1);
    if (!data) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    for (size_t i = 0; i < cb->k * cb->dim; i++)
        put_f32le(data + 4 * i, cb->c[i]);
    char hex[65];
    s2s_sha256_hex(data, nb, hex);
    json_t *h = json_pack("{s:s, s:i, s:I, s:I, s:s, s:o, s:O?, s:s}", "format", "s2s-codebook",
                          "version", 1, "k", (json_int_t)cb->k, "dim", (json_int_t)cb->dim, "dtype",
                          "float32le", "features", s2s_fbank_opts_to_json(&cb->fo), "train",
                          cb->info, "data_sha256", hex);
    char *js = h ? json_dumps(h, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(h);
    if (!js) {
        free(data);
        return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    }
    size_t ml = strlen(CB_MAGIC), jl = strlen(js);
    unsigned char *buf = malloc(ml + jl + 1 + nb);
    if (!buf) {
        free(js);
        free(data);
        return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    }
    memcpy(buf, CB_MAGIC, ml);
    memcpy(buf + ml, js, jl);
    buf[ml + jl] = '\n';
    memcpy(buf + ml + jl + 1, data, nb);
    free(js);
    free(data);
    *out = buf;
    *len = ml + jl + 1 + nb;
    return 0;
}

int s2s_codebook_save(const s2s_codebook *cb, const char *path, s2s_err *err) {
    unsigned char *bytes;
    size_t len;
    int rc = s2s_codebook_serialize(cb, &bytes, &len, err);
    if (rc < 0) return rc;
    s2s_ofile *of = s2s_ofile_open(path, err);
    if (!of) {
        free(bytes);
        return err && err->code ? err->code : S2S_EIO;
    }
    if (fwrite(bytes, 1, len, s2s_ofile_fp(of)) != len) {
        free(bytes);
        s2s_ofile_abort(of);
        return s2s_err_errno(err, "%s: write", path);
    }
    free(bytes);
    return s2s_ofile_commit(of, err);
}

s2s_codebook *s2s_codebook_parse(const unsigned char *data, size_t len, const char *name,
                                 s2s_err *err) {
    const char *nm = name ? name : "codebook";
    size_t ml = strlen(CB_MAGIC);
    if (len < 13 || memcmp(data, "s2s-codebook ", 13) != 0) {
        s2s_err_set(err, S2S_EFORMAT, "%s: not an s2s codebook (no \"s2s-codebook\" magic)", nm);
        return NULL;
    }
    if (len < ml || memcmp(data, CB_MAGIC, ml) != 0) {
        s2s_err_set(err, S2S_EUNSUP, "%s: unsupported codebook version (this reader knows 1)", nm);
        return NULL;
    }
    const unsigned char *nl = memchr(data + ml, '\n', len - ml);
    if (!nl) {
        s2s_err_set(err, S2S_EFORMAT, "%s: truncated header (no end of the JSON line)", nm);
        return NULL;
    }
    json_error_t je;
    json_t *h = json_loadb((const char *)data + ml, (size_t)(nl - data) - ml, 0, &je);
    if (!h) {
        s2s_err_set(err, S2S_EFORMAT, "%s: header is not JSON: %s", nm, je.text);
        return NULL;
    }
    s2s_codebook *cb = NULL;
    json_t *jk = json_object_get(h, "k"), *jd = json_object_get(h, "dim");
    const char *dtype = json_string_value(json_object_get(h, "dtype"));
    const char *hex = json_string_value(json_object_get(h, "data_sha256"));
    json_t *info = json_object_get(h, "train");
    s2s_fbank_opts fo;
    if (!json_is_integer(jk) || json_integer_value(jk) < 1 || json_integer_value(jk) > CB_MAX_K ||
        !json_is_integer(jd) || json_integer_value(jd) < 1 || json_integer_value(jd) > CB_MAX_DIM) {
        s2s_err_set(err, S2S_EFORMAT, "%s: header needs integer \"k\" (1..%d) and \"dim\" (1..%d)",
                    nm, CB_MAX_K, CB_MAX_DIM);
        goto out;
    }
    if (!dtype || strcmp(dtype, "float32le") != 0 || !hex || strlen(hex) != 64) {
        s2s_err_set(err, S2S_EFORMAT,
                    "%s: header needs \"dtype\": \"float32le\" and a 64-digit \"data_sha256\"", nm);
        goto out;
    }
    if (s2s_fbank_opts_from_json(json_object_get(h, "features"), &fo, err) < 0) {
        s2s_err_prefix(err, "%s: ", nm);
        goto out;
    }
    size_t k = (size_t)json_integer_value(jk), dim = (size_t)json_integer_value(jd);
    if ((size_t)fo.n_mels != dim) {
        s2s_err_set(err, S2S_EFORMAT,
                    "%s: wrong dimension: centres have %zu dimensions but the features have %d "
                    "mel bins",
                    nm, dim, fo.n_mels);
        goto out;
    }
    size_t off = (size_t)(nl - data) + 1, want = k * dim * 4;
    if (len - off != want) {
        s2s_err_set(err, S2S_EFORMAT,
                    "%s: %s: %zu bytes of centres, expected %zu (k %zu x dim %zu x 4)", nm,
                    len - off < want ? "truncated" : "trailing bytes", len - off, want, k, dim);
        goto out;
    }
    char got[65];
    s2s_sha256_hex(data + off, want, got);
    if (strcmp(got, hex) != 0) {
        s2s_err_set(err, S2S_EDATA,
                    "%s: content hash mismatch (header data_sha256 %.12s..., centres hash to "
                    "%.12s...): the file is corrupt",
                    nm, hex, got);
        goto out;
    }
    float *c = malloc(want);
    if (!c) {
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < k * dim; i++) {
        c[i] = get_f32le(data + off + 4 * i);
        if (!isfinite(c[i])) {
            s2s_err_set(err, S2S_EDATA, "%s: centre %zu is not finite", nm, i / dim);
            free(c);
            goto out;
        }
    }
    cb = cb_make(c, k, dim, &fo, json_is_object(info) ? json_incref(info) : NULL, err);
    free(c);
    if (cb) s2s_sha256_hex(data, len, cb->hash);
out:
    json_decref(h);
    return cb;
}

s2s_codebook *s2s_codebook_load(const char *path, s2s_err *err) {
    unsigned char *data;
    size_t len;
    if (s2s_read_file(path, &data, &len, err) < 0) return NULL;
    s2s_codebook *cb = s2s_codebook_parse(data, len, path, err);
    free(data);
    return cb;
}

size_t s2s_codebook_k(const s2s_codebook *cb) {
    return cb->k;
}
size_t s2s_codebook_dim(const s2s_codebook *cb) {
    return cb->dim;
}
const float *s2s_codebook_centroids(const s2s_codebook *cb) {
    return cb->c;
}
const s2s_fbank_opts *s2s_codebook_fbank_opts(const s2s_codebook *cb) {
    return &cb->fo;
}
const char *s2s_codebook_hash(const s2s_codebook *cb) {
    return cb->hash;
}
const json_t *s2s_codebook_info(const s2s_codebook *cb) {
    return cb->info;
}

int s2s_codebook_assign_impl(const s2s_codebook *cb, const float *x, size_t n, int32_t *units,
                             float *best, int impl, s2s_err *err) {
    search s = cb->s;
    if (impl < -1 || impl > 1) return s2s_err_set(err, S2S_EINVAL, "unknown kernel %d", impl);
    if (impl == 1 && !s2s_cpu_has_kernel(1))
        return s2s_err_set(err, S2S_EUNSUP, "the AVX2 kernel cannot run on this CPU");
    if (impl >= 0) s.impl = impl;
    float stack[4096]; /* enough for k + dim <= 256 */
    size_t need = SEARCH_SCRATCH(cb->s.kp, cb->s.dim);
    float *acc = need <= 4096 ? stack : malloc(need * sizeof *acc);
    if (!acc) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    search_run(&s, x, n, units, best, acc);
    if (acc != stack) free(acc);
    return 0;
}

int s2s_codebook_assign(const s2s_codebook *cb, const float *x, size_t n, int32_t *units,
                        s2s_err *err) {
    return s2s_codebook_assign_impl(cb, x, n, units, NULL, -1, err);
}

char *s2s_units_format(const int32_t *units, size_t n, size_t *len) {
    char *s = malloc(n * 12 + 1), *p = s;
    if (!s) return NULL;
    for (size_t i = 0; i < n; i++) {
        char tmp[12];
        int t = 0;
        uint32_t v = (uint32_t)units[i];
        do {
            tmp[t++] = (char)('0' + v % 10);
            v /= 10;
        } while (v);
        while (t)
            *p++ = tmp[--t];
        if (i + 1 < n) *p++ = ' ';
    }
    *p = 0;
    if (len) *len = (size_t)(p - s);
    return s;
}

size_t s2s_units_text_max(size_t n, size_t k) {
    size_t digits = 1;
    for (size_t v = k > 0 ? k - 1 : 0; v >= 10; v /= 10)
        digits++;
    return n * (digits + 1) + 2;
}

size_t s2s_units_format_to(const int32_t *units, size_t n, int leading_space, char *out) {
    char *p = out;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 || leading_space) *p++ = ' ';
        uint32_t v = (uint32_t)units[i];
        if (v < 10) {
            *p++ = (char)('0' + v);
        } else if (v < 100) {
            p[0] = (char)('0' + v / 10);
            p[1] = (char)('0' + v % 10);
            p += 2;
        } else {
            char tmp[12];
            int t = 0;
            do {
                tmp[t++] = (char)('0' + v % 10);
                v /= 10;
            } while (v);
            while (t)
                *p++ = tmp[--t];
        }
    }
    return (size_t)(p - out);
}
