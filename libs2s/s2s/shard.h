/* s2s/shard.h — shards: the compressed, indexed, verifiable form of a sample stream on disk.
 *
 * A shard is a plain POSIX ustar archive (docs/shards.md) whose members are compressed one by
 * one: audio as FLAC ("KEY.ctx.flac"), text members as gzip ("KEY.json.gz", "KEY.c0.units.gz").
 * Beside each shard NAME.tar lies NAME.tar.idx (docs/shard-index.md): the shard's size and
 * SHA-256, then per sample its key and per member its name, header offset, data offset, size
 * and CRC-32. A directory of shards has one dataset.json (shard list with SHA-256 and counts).
 *
 * s2s_packer writes shards from samples (one sample in memory at a time). s2s_shard_verify
 * checks a shard against its index byte by byte. s2s_shard_get reads one sample by seeking.
 * s2s_shard_sample_to_stream turns a sample read from a shard back into the stream form
 * (".gz" inflated, FLAC decoded to WAV) that every other tool expects. */
#ifndef S2S_SHARD_H
#define S2S_SHARD_H

#include "s2s/err.h"
#include "s2s/item.h"
#include "s2s/sample.h"
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- member codecs ------------------------------------------------------------------------ */

/* Deterministic gzip of a buffer (zlib, level 0-9): no name, mtime 0, OS byte 255 (unknown), so
 * the same bytes and level always give the same output. *out is malloc'd (caller frees). */
int s2s_gzip(const void *in, size_t n, int level, unsigned char **out, size_t *out_n, s2s_err *err);
/* Inflates gzip data (several concatenated gzip members are joined; trailing garbage, a bad
 * CRC-32 or length is an error). *out is malloc'd and NUL-terminated (not counted). */
int s2s_gunzip(const void *in, size_t n, unsigned char **out, size_t *out_n, s2s_err *err);

/* WAV bytes (8/16/24-bit PCM, 1-8 channels) -> FLAC bytes (lossless; 8- and 16-bit input give
 * 16-bit FLAC, 24-bit gives 24-bit). level 0: the built-in encoder (s2s/flacenc.h); 1-8:
 * libFLAC at that level. No MD5 in STREAMINFO. Float or 32-bit WAV: S2S_EUNSUP; 0 frames:
 * S2S_EDATA. */
int s2s_flac_encode(const void *wav, size_t n, int level, unsigned char **out, size_t *out_n,
                    s2s_err *err);
/* FLAC bytes -> canonical 44-byte-header PCM WAV (16-bit, or 24-bit for 24-bit FLAC). */
int s2s_flac_decode(const void *flac, size_t n, unsigned char **out, size_t *out_n, s2s_err *err);

/* CRC-32 (zlib/gzip polynomial) of a buffer, as stored in the index. */
uint32_t s2s_crc32(const void *p, size_t n);

/* ---- packing ------------------------------------------------------------------------------ */
typedef struct s2s_pack_opts {
    const char *pattern; /* "DIR/NAME-%06d.tar": exactly one %d conversion (flags 0, width) */
    uint64_t per_shard;  /* samples per shard; 0 = no limit */
    uint64_t max_bytes;  /* shard size limit in bytes (a bigger single sample gets a shard of
                            its own); 0 = no limit */
    int gzip_level;      /* 0-9 (default 6) */
    int flac_level;      /* 0 = the built-in fast encoder (s2s/flacenc.h, default); 1-8 =
                            libFLAC's levels */
    const char *part;    /* "I/N" when only a part of the stream is packed (recorded in
                            dataset.json build.params); NULL otherwise */
} s2s_pack_opts;

/* Defaults: per_shard 1000, max_bytes 0, gzip 6, flac 0, pattern NULL. */
void s2s_pack_opts_init(s2s_pack_opts *o);

/* Checks a shard name pattern: one %d conversion ("%d", "%06d"), "%%" for a literal '%',
 * ending in ".tar". Returns 0 or S2S_EINVAL. */
int s2s_pack_pattern_check(const char *pattern, s2s_err *err);

typedef struct s2s_packer s2s_packer;

/* Opens a packer; nothing is written until the first put. The directory of the pattern must
 * exist. Returns NULL and fills err on failure. */
s2s_packer *s2s_packer_open(const s2s_pack_opts *o, s2s_err *err);
/* Adds one sample (the item must be valid: counts of pairs are taken from it). A key with a dot
 * or a member suffix that would collide after compression is S2S_EDATA. The sample is not
 * modified. */
int s2s_packer_put(s2s_packer *p, const s2s_sample *s, s2s_err *err);
/* Like put, but takes the members' data instead of copying it: s's members are left with data
 * NULL and size 0 (s2s_sample_free still frees s). What s2s-pack uses. */
int s2s_packer_put_steal(s2s_packer *p, s2s_sample *s, s2s_err *err);
/* Compression runs on a worker thread one sample behind: put returns before its sample is
 * written, and a compression error of sample i is returned by the put of sample i+1 (or by
 * flush/close), its message naming sample i. flush waits for the sample in flight and writes
 * it. */
int s2s_packer_flush(s2s_packer *p, s2s_err *err);
/* Finishes the last shard and its index, writes DIR/dataset.json. Frees p. */
int s2s_packer_close(s2s_packer *p, s2s_err *err);
/* Gives up: removes the open temporary shard and every shard and index this packer committed
 * (an interrupted pack leaves no file that looks finished). Frees p. Safe with NULL. */
void s2s_packer_abort(s2s_packer *p);
/* Shards and samples written so far (call flush first to count the sample in flight). */
uint64_t s2s_packer_shards(const s2s_packer *p);
uint64_t s2s_packer_samples(const s2s_packer *p);

/* ---- index -------------------------------------------------------------------------------- */
typedef struct s2s_index_member {
    char *name; /* full member name "KEY.ctx.flac" */
    uint64_t hdr_off, data_off, size;
    uint32_t crc;
} s2s_index_member;

typedef struct s2s_index_sample {
    char *key;
    size_t first, n; /* members[first .. first+n-1] */
} s2s_index_sample;

typedef struct s2s_index {
    char *shard;         /* shard base name recorded in the index */
    uint64_t shard_size; /* bytes */
    char sha256[65];     /* hex */
    s2s_index_sample *samples;
    size_t n_samples;
    s2s_index_member *members;
    size_t n_members;
} s2s_index;

/* Reads and checks the syntax of PATH (a NAME.tar.idx). Returns a malloc'd index (free with
 * s2s_index_free) or NULL with err naming "PATH:LINE". */
s2s_index *s2s_index_read(const char *path, s2s_err *err);
void s2s_index_free(s2s_index *ix);
/* Index path for a shard path: "SHARD.idx" (malloc'd). */
char *s2s_index_path(const char *shard_path);

/* ---- reading, verifying ------------------------------------------------------------------- */

/* Verifies one shard: the index exists, names this shard, matches its size and SHA-256, and
 * every member's header, data (CRC-32), padding and the end-of-archive marker are byte for byte
 * what the index describes; keys are valid, members of a sample are contiguous and named
 * "KEY.*"; gzip members inflate; FLAC members start with "fLaC". On the first fault returns
 * S2S_EDATA (or EIO/EFORMAT) with a message naming the shard, sample and member. expect_sha may
 * be NULL, else the SHA-256 the shard must have (from dataset.json). keys (may be NULL)
 * collects the keys across calls: a key already in it is a fault ("sample K in two shards").
 * *n_samples (may be NULL) receives the sample count. */
int s2s_shard_verify(const char *shard_path, const char *expect_sha, s2s_idset *keys,
                     uint64_t *n_samples, s2s_err *err);

/* Verifies a dataset directory: dataset.json parses (no duplicate keys) and holds only the keys
 * of docs/shards.md with their types, format "s2s-shards" version 1; every listed shard verifies
 * with the listed SHA-256, size, index SHA-256, sample and member counts and first key; the
 * shard, sample, member, pair and per-task counts add up; no key appears in two shards; no
 * unlisted *.tar or temporary file lies in the directory; a "recipe" (s2s-build) matches its
 * SHA-256 and the build's shard pattern; the "self_sha256" seal (when present) matches; and the
 * file is byte for byte in the canonical form of s2s_dataset_write. So any damaged byte of
 * dataset.json is a fault. Returns 0 or the first fault (S2S_EDATA/EFORMAT/EUNSUP/EIO). */
int s2s_dataset_verify(const char *dir, s2s_err *err);

/* s2s_dataset_verify with up to `threads` shards checked at once (threads <= 1: one at a time,
 * the same as s2s_dataset_verify). The shards are still judged in dataset.json order: the
 * result, and the fault reported when there are several, are the same for any threads. */
int s2s_dataset_verify_threads(const char *dir, int threads, s2s_err *err);

/* Seals a dataset.json object: sets "self_sha256" to the SHA-256 of its canonical text (as
 * s2s_dataset_write writes it) without the "self_sha256" and "recipe" keys. Call it after the
 * last change of any other key. Returns 0 or S2S_ENOMEM/S2S_EINVAL. */
int s2s_dataset_seal(json_t *ds, s2s_err *err);

/* Seals ds (modifies it) and writes it to path (e.g. "DIR/dataset.json") atomically in the
 * canonical form that s2s_dataset_verify requires: 2-space indent, keys in insertion order
 * (json_dumps with JSON_INDENT(2) | JSON_PRESERVE_ORDER), one final newline. Every writer of a
 * dataset.json (pack, merge) should use it; adding "recipe" afterwards with the same dump flags
 * keeps the seal valid. Returns 0 or a negative S2S_E* (nothing written then). */
int s2s_dataset_write(const char *path, json_t *ds, s2s_err *err);

/* Shard paths of a dataset directory in dataset.json order (or, without dataset.json, every
 * "*.tar" in name order). *paths is a malloc'd array of malloc'd strings. */
int s2s_dataset_shards(const char *dir, char ***paths, size_t *n, s2s_err *err);
void s2s_paths_free(char **paths, size_t n);

/* Finds KEY through the indexes of shards[0..n-1] and reads its members by seeking (each one's
 * CRC-32 checked). Returns 1 and a new sample in stored form (members as in the shard, item
 * parsed from KEY.json.gz), 0 if no index holds KEY, negative on error. */
int s2s_shard_get(const char *const *shards, size_t n, const char *key, s2s_sample **out,
                  s2s_err *err);

/* Sequential reader of one shard through its index (what cat, extract and export use): the
 * index must exist, name this shard and match its size (else S2S_EDATA/EFORMAT before anything
 * is returned); every member is checked as it is read (CRC-32, tar header and padding byte for
 * byte), and the end-of-archive marker at the end. Samples come in stored form (KEY.json.gz
 * parsed into item; "ctx.flac", "c0.units.gz" as members). */
typedef struct s2s_shard_reader s2s_shard_reader;
s2s_shard_reader *s2s_shard_reader_open(const char *path, s2s_err *err);
/* 1 and a new sample (caller frees), 0 after the last one, negative on a fault (message names
 * shard, sample and member). */
int s2s_shard_reader_next(s2s_shard_reader *r, s2s_sample **out, s2s_err *err);
/* Samples in the shard (from the index). */
size_t s2s_shard_reader_count(const s2s_shard_reader *r);
void s2s_shard_reader_close(s2s_shard_reader *r);

/* Converts a sample read from a shard to the stream form in place: "X.gz" members inflated
 * and renamed "X", "X.flac" decoded to "X.wav". */
int s2s_shard_sample_to_stream(s2s_sample *s, s2s_err *err);

#endif
