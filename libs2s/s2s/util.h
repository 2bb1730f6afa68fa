/* s2s/util.h — small shared helpers: atomic output files, growable buffers, hashing. */
#ifndef S2S_UTIL_H
#define S2S_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include "s2s/err.h"

/* Version of the toolchain, recorded in every output's provenance. */
#define S2S_VERSION "0.3.0"

/* ---- output files that appear only when complete -------------------------------------------
 * s2s_ofile_open("out.tar") writes to "out.tar.tmp-PID-N" in the same directory; commit renames
 * it to the final name, abort removes it. A path of NULL or "-" means stdout (no temp file; the
 * tar stream's missing end-of-archive marker tells readers that an aborted stream is short). */
typedef struct s2s_ofile s2s_ofile;
s2s_ofile *s2s_ofile_open(const char *path, s2s_err *err);
FILE *s2s_ofile_fp(s2s_ofile *of);
const char *s2s_ofile_path(const s2s_ofile *of); /* final path ("<stdout>" for stdout) */
/* Tells of that n more bytes went to its FILE. Every 8 MiB it flushes them and asks the kernel
 * to start writing them out (Linux sync_file_range, a hint: errors are left to commit's fsync),
 * so that commit's fsync of a large file does not wait for all of it. */
void s2s_ofile_wrote(s2s_ofile *of, size_t n);
/* Flushes, fsyncs (files only), closes and renames. Frees of. */
int s2s_ofile_commit(s2s_ofile *of, s2s_err *err);
/* Closes and removes the temporary file. Frees of. Safe with NULL. */
void s2s_ofile_abort(s2s_ofile *of);

/* ---- growable byte buffer ------------------------------------------------------------------- */
typedef struct s2s_buf {
    unsigned char *data;
    size_t len, cap;
} s2s_buf;
int s2s_buf_reserve(s2s_buf *b, size_t extra, s2s_err *err);
int s2s_buf_append(s2s_buf *b, const void *p, size_t n, s2s_err *err);
/* Transfers ownership of the bytes to the caller; the buffer is left empty. */
unsigned char *s2s_buf_steal(s2s_buf *b, size_t *len);
void s2s_buf_free(s2s_buf *b);

/* Reads a whole file ("-" = stdin) into memory. *data is NUL-terminated (not counted in *len). */
int s2s_read_file(const char *path, unsigned char **data, size_t *len, s2s_err *err);

/* ---- hashing -------------------------------------------------------------------------------- */
/* FNV-1a 64-bit of a NUL-terminated string (offset basis 14695981039346656037, prime
 * 1099511628211): stable across machines. Before 0.2.0 the offset basis lacked a digit
 * (1469598103934665603), so parts and --voices picks of 0.1.x differ. */
uint64_t s2s_fnv1a64(const char *s);

/* SHA-256. */
typedef struct s2s_sha256 {
    uint32_t h[8];
    uint64_t nbytes;
    unsigned char block[64];
    size_t fill;
} s2s_sha256;
void s2s_sha256_init(s2s_sha256 *c);
void s2s_sha256_update(s2s_sha256 *c, const void *p, size_t n);
void s2s_sha256_final(s2s_sha256 *c, unsigned char out[32]);
/* Hex digest of a buffer or a file into out[65]. */
void s2s_sha256_hex(const void *p, size_t n, char out[65]);
int s2s_sha256_file(const char *path, char out[65], s2s_err *err);

/* ---- deterministic partitioning: --shard I/N ------------------------------------------------
 * An item belongs to part fnv1a64(id) % N. Every id lands in exactly one part whatever the input
 * order, so N independent jobs over the same input cover it exactly once. */
typedef struct s2s_part {
    unsigned index, count; /* count 1 = everything */
} s2s_part;
/* Parses "I/N" (0 <= I < N, N >= 1). */
int s2s_part_parse(const char *spec, s2s_part *part, s2s_err *err);
int s2s_part_keep(const s2s_part *part, const char *id);

/* ---- ids ------------------------------------------------------------------------------------ */
/* 1 if id is non-empty, at most 200 bytes, and only ASCII letters, digits, '_' and '-'. */
int s2s_id_valid(const char *id);

/* ---- progress line on stderr, only when stderr is a terminal -------------------------------- */
typedef struct s2s_progress s2s_progress;
/* total may be 0 (unknown). what names the unit ("items", "samples"). */
s2s_progress *s2s_progress_new(const char *label, const char *what, uint64_t total);
/* Redraws at most ~5 times a second: count, rate and, with a total, ETA. */
void s2s_progress_update(s2s_progress *p, uint64_t done);
/* Final line (if a terminal) and free. Safe with NULL. */
void s2s_progress_end(s2s_progress *p, uint64_t done);

#endif
