/* s2s/kmeans.h — k-means codebooks for speech units: training (k-means++ then Lloyd), the
 * codebook file (docs/codebook.md) and nearest-centroid assignment.
 *
 * Everything is deterministic: the seed drives an own PRNG (s2s_rng of s2s/stats.h), sums are
 * accumulated in a fixed order, ties go to the lowest index, so the same frames and options give
 * the same codebook bytes on every run. Assignment compares ||c||^2 - 2 x.c over centroids stored
 * transposed (dimension-major, padded), vectorised across centroids without reordering any
 * floating-point sum (kernels for SSE2 and AVX2, picked at run time), so results do not depend
 * on the CPU. */
#ifndef S2S_KMEANS_H
#define S2S_KMEANS_H

#include "s2s/err.h"
#include "s2s/features.h"
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct s2s_kmeans_opts {
    size_t k;      /* clusters (>= 1) */
    uint64_t seed; /* k-means++ and empty-cluster choices */
    int max_iters; /* Lloyd iterations at most (>= 0; 0 = k-means++ centres only) */
    double tol;    /* stop when inertia improves by less than tol (relative); 0 = until no
                    * assignment changes or max_iters */
    int threads;   /* threads for the per-frame work (1..64); the result does not depend on it */
} s2s_kmeans_opts;

/* k 100, seed 1, max_iters 100, tol 1e-6, threads 1. */
void s2s_kmeans_opts_default(s2s_kmeans_opts *o);

typedef struct s2s_kmeans_stats {
    int iters;       /* Lloyd iterations run */
    int converged;   /* 1 if stopped by tol or a stable assignment, 0 by max_iters */
    double inertia;  /* final sum of squared distances to the nearest centre */
    size_t reseeded; /* empty clusters re-seeded during the run */
} s2s_kmeans_stats;

/* Clusters x[n][dim] (row-major) into o->k centres written to centroids[k][dim] (caller's).
 * Returns 0, S2S_EINVAL (k = 0, dim = 0, n < k) or S2S_EDATA (fewer than k distinct frames,
 * non-finite values), S2S_ENOMEM. stats may be NULL. */
int s2s_kmeans_train(const float *x, size_t n, size_t dim, const s2s_kmeans_opts *o,
                     float *centroids, s2s_kmeans_stats *stats, s2s_err *err);

/* ---- codebook: centres + the feature settings they were trained on ------------------------ */
typedef struct s2s_codebook s2s_codebook;

/* Makes a codebook from centroids[k][dim] (copied). fo: the feature settings (dim must equal
 * fo->n_mels). info: optional JSON object stored as "train" in the header (reference stolen,
 * may be NULL). Returns NULL and fills err on bad arguments or ENOMEM. */
s2s_codebook *s2s_codebook_new(const float *centroids, size_t k, size_t dim,
                               const s2s_fbank_opts *fo, json_t *info, s2s_err *err);

/* Serialises (format of docs/codebook.md). *out malloc'd, caller frees. Same codebook => same
 * bytes. Returns 0 or S2S_ENOMEM. */
int s2s_codebook_serialize(const s2s_codebook *cb, unsigned char **out, size_t *len, s2s_err *err);
/* Writes the codebook to path atomically (s2s_ofile; "-" = stdout). */
int s2s_codebook_save(const s2s_codebook *cb, const char *path, s2s_err *err);

/* Parses a codebook from memory and validates magic, header fields, dimension against the
 * feature settings, exact length, content hash and finiteness. name is used in messages.
 * Returns NULL and fills err: S2S_EFORMAT (not a codebook, bad header, wrong dimension,
 * truncated or trailing bytes), S2S_EDATA (hash mismatch, non-finite centre), S2S_EUNSUP
 * (newer version), S2S_ENOMEM. */
s2s_codebook *s2s_codebook_parse(const unsigned char *data, size_t len, const char *name,
                                 s2s_err *err);
/* Reads and parses a file (messages start with the path). */
s2s_codebook *s2s_codebook_load(const char *path, s2s_err *err);
void s2s_codebook_free(s2s_codebook *cb); /* safe with NULL */

size_t s2s_codebook_k(const s2s_codebook *cb);
size_t s2s_codebook_dim(const s2s_codebook *cb);
const float *s2s_codebook_centroids(const s2s_codebook *cb); /* [k][dim], borrowed */
const s2s_fbank_opts *s2s_codebook_fbank_opts(const s2s_codebook *cb);
/* SHA-256 (hex) of the serialised file: the codebook's identity, recorded in items. */
const char *s2s_codebook_hash(const s2s_codebook *cb);
/* The "train" object of the header (borrowed; may be NULL). */
const json_t *s2s_codebook_info(const s2s_codebook *cb);

/* Nearest centre of each of n frames x[n][dim] into units[n] (ties: lowest index).
 * Thread-safe: the codebook is only read. Returns 0 or S2S_ENOMEM (scratch for k + dim > 1024). */
int s2s_codebook_assign(const s2s_codebook *cb, const float *x, size_t n, int32_t *units,
                        s2s_err *err);

/* s2s_codebook_assign with a chosen kernel, for the test that proves the kernels agree:
 * impl 0 portable C, 1 AVX2, -1 the best the CPU has (what s2s_codebook_assign uses). best
 * (optional) gets each frame's winning score ||c||^2 - 2 x.c. Returns 0, S2S_EUNSUP (kernel not
 * available here), S2S_EINVAL (other impl) or S2S_ENOMEM. */
int s2s_codebook_assign_impl(const s2s_codebook *cb, const float *x, size_t n, int32_t *units,
                             float *best, int impl, s2s_err *err);

/* Formats units as text (docs/stream.md): decimal integers separated by single spaces, no
 * newline; n = 0 gives an empty string. Returns a malloc'd string (length in *len) or NULL on
 * ENOMEM. */
char *s2s_units_format(const int32_t *units, size_t n, size_t *len);
/* The same text written into out (not NUL-terminated), preceded by one space when
 * leading_space (to continue a text chunk by chunk). Returns the bytes written. out must hold
 * s2s_units_text_max(n, k) bytes when every unit is below k. */
size_t s2s_units_format_to(const int32_t *units, size_t n, int leading_space, char *out);
/* Bytes that always suffice for the text of n units below k, plus a terminating NUL. */
size_t s2s_units_text_max(size_t n, size_t k);

#endif
