/* s2s/merge.h — combining the parts of a dataset built with `--shard I/N` into one dataset
 * directory (docs/fanout.md).
 *
 * A part is the output directory of `s2s-build --shard I/N` (or `s2s-pack --shard I/N`): shards
 * NAME-pIofN-%06d.tar with their indexes and a dataset.json that records the part ("I/N"), the
 * recipe and its SHA-256, the tool versions and the provenance of the samples. s2s_merge checks
 * that the parts add up to one dataset (every part 0..N-1 exactly once, same recipe, same tool
 * versions and codebook, every part verifies, no sample twice, each sample in the part its id
 * hashes to) and writes DIR with the parts' shards (hard links when on the same file system,
 * else copies; names kept, so the indexes stay valid) and one combined dataset.json that
 * `s2s_dataset_verify` accepts. Nothing appears at DIR unless the merge succeeds: the directory
 * is assembled under a temporary name beside it and renamed at the end. */
#ifndef S2S_MERGE_H
#define S2S_MERGE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "s2s/err.h"

typedef struct s2s_merge_opts {
    int copy;                          /* 1: always copy the files (default: hard link when
                                          possible, copy otherwise) */
    const volatile sig_atomic_t *stop; /* may be NULL; when it becomes non-zero the merge stops
                                          with S2S_EINTR and removes what it wrote */
} s2s_merge_opts;

typedef struct s2s_merge_stats {
    uint64_t parts, shards, samples, pairs;
    uint64_t linked, copied; /* files (shards and indexes) hard-linked / copied */
} s2s_merge_stats;

/* Merges the part directories parts[0..n-1] (any order) into out, which must not exist or be an
 * empty directory. Returns 0, or a negative S2S_E* code with err naming the part directory and
 * what is wrong (S2S_EDATA: the parts do not add up or one is damaged; S2S_EINVAL: out is not
 * empty or an argument is not a part; S2S_EIO: file system). stats (may be NULL) receives the
 * counts. On failure nothing is left at out (an empty directory that existed before is kept). */
int s2s_merge(const char *const *parts, size_t n, const char *out, const s2s_merge_opts *opts,
              s2s_merge_stats *stats, s2s_err *err);

#endif
