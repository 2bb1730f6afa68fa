/* s2s/sample.h — samples (an item plus its members) and the stream between tools.
 *
 * A sample is what one item becomes in the tar stream of DESIGN.md: members named "KEY.SUFFIX"
 * ("KEY.json", "KEY.ctx.wav", "KEY.c0.units", ...), contiguous in the archive. KEY is the item
 * id; SUFFIX is everything after the first dot of the member's base name (WebDataset's rule).
 *
 * s2s_reader reads samples from JSON lines of items or from a tar stream (detected from the first
 * bytes), from stdin or from a list of files (shards included: ".gz" members are inflated and the
 * ".gz" dropped from the suffix, so tools read shards and streams alike).
 * s2s_writer writes samples as a tar stream (KEY.json first, then members in sample order) or as
 * JSON lines (items only). */
#ifndef S2S_SAMPLE_H
#define S2S_SAMPLE_H

#include "s2s/err.h"
#include "s2s/util.h"
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct s2s_member {
    char *suffix;        /* "ctx.wav", "c1.units", ... (without the key and the first dot) */
    unsigned char *data; /* owned; NUL-terminated for convenience (not counted in size) */
    size_t size;
} s2s_member;

typedef struct s2s_sample {
    char *key;           /* = item id */
    json_t *item;        /* the parsed KEY.json (owned reference); NULL only in raw mode */
    s2s_member *members; /* members other than KEY.json, in stream order */
    size_t n_members, cap;
    /* Where the sample came from, for messages: "FILE:LINE" or "FILE" (tar). */
    char *origin;
} s2s_sample;

s2s_sample *s2s_sample_new(const char *key, s2s_err *err);
void s2s_sample_free(s2s_sample *s);
/* Finds a member by suffix ("ctx.wav"); NULL if absent. */
s2s_member *s2s_sample_get(const s2s_sample *s, const char *suffix);
/* Adds or replaces a member; takes ownership of data (malloc'd) even on failure. */
int s2s_sample_put(s2s_sample *s, const char *suffix, unsigned char *data, size_t size,
                   s2s_err *err);
/* Like put, copying the bytes. */
int s2s_sample_put_copy(s2s_sample *s, const char *suffix, const void *data, size_t size,
                        s2s_err *err);
/* Removes a member if present; returns 1 if removed. */
int s2s_sample_remove(s2s_sample *s, const char *suffix);

/* ---- reader --------------------------------------------------------------------------------- */
enum {
    S2S_READ_NO_VALIDATE = 1 << 0, /* skip s2s_item_validate (for raw tools such as s2s-shard) */
    S2S_READ_KEEP_GZ = 1 << 1,     /* keep ".gz" members compressed and their suffix as is */
    S2S_READ_LENIENT_END = 1 << 2, /* accept a tar without end-of-archive marker */
    S2S_READ_RAW = 1 << 3          /* do not require or parse KEY.json (item may be NULL) */
};

enum { S2S_FMT_AUTO = 0, S2S_FMT_TAR = 1, S2S_FMT_JSONL = 2 };

typedef struct s2s_reader s2s_reader;

/* Opens paths[0..n-1] in order (n = 0, or a path "-": stdin). Rejects duplicate keys across all
 * of them and samples whose members are not contiguous ("sample K split"). */
s2s_reader *s2s_reader_open(const char *const *paths, size_t n, int flags, s2s_err *err);
/* Only keep samples of this part (--shard I/N). */
void s2s_reader_set_part(s2s_reader *r, const s2s_part *part);
/* Returns 1 and a new sample the caller frees, 0 at the end of all inputs, negative on error
 * (message names file and line, or file, member and byte offset). */
int s2s_reader_next(s2s_reader *r, s2s_sample **out, s2s_err *err);
/* Format of the current input (S2S_FMT_TAR or S2S_FMT_JSONL), known after the first next. */
int s2s_reader_format(const s2s_reader *r);
/* Samples returned so far; samples dropped by the part filter. */
uint64_t s2s_reader_count(const s2s_reader *r);
uint64_t s2s_reader_skipped(const s2s_reader *r);
void s2s_reader_close(s2s_reader *r);

/* ---- writer --------------------------------------------------------------------------------- */
typedef struct s2s_writer s2s_writer;

/* path NULL or "-" = stdout; otherwise written to a temporary name and renamed by close.
 * format S2S_FMT_TAR or S2S_FMT_JSONL. */
s2s_writer *s2s_writer_open(const char *path, int format, s2s_err *err);
/* Writes KEY.json (from s->item, one line of compact JSON) then every member. */
int s2s_writer_put(s2s_writer *w, const s2s_sample *s, s2s_err *err);
/* Ends the archive and commits the file. Frees w. */
int s2s_writer_close(s2s_writer *w, s2s_err *err);
/* Gives up: removes the temporary file; on stdout the archive is left without its end marker so
 * the next tool in a pipe reports a truncated stream. Frees w. Safe with NULL. */
void s2s_writer_abort(s2s_writer *w);

/* Inflates one gzip member (a `.gz` member of a shard): *out (malloc'd, NUL-terminated, caller
 * frees) and *outn. Corrupt, truncated or trailing data is S2S_EFORMAT naming `where`. */
int s2s_gunzip_member(const unsigned char *in, size_t n, unsigned char **out, size_t *outn,
               const char *where, s2s_err *err);

#endif
