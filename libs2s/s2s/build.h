/* s2s/build.h — what makes s2s-build resumable: shards packed one at a time and moved to their
 * final names, a journal of finished shards, and dataset.json assembled from them.
 *
 * s2s-build cuts the items into chunks of per_shard items (the boundaries one s2s-pack over the
 * whole stream would use) and packs each chunk alone into a staging directory, where s2s-pack
 * names it NAME-000000.tar. s2s_build_move_shard moves it to its final name (NAME-00000K.tar)
 * and rewrites the only byte sequence of the index that depends on the name (the base name on
 * its "shard" line). The journal (DIR/.build/journal, JSON lines) records each finished shard
 * with the dataset.json its chunk's pack wrote; s2s_build_dataset merges those into the
 * dataset.json one pack over the whole stream writes, byte for byte (tested). An interrupted
 * build therefore resumes at the first shard not in the journal, and its result is the same as
 * an uninterrupted build's. */
#ifndef S2S_BUILD_H
#define S2S_BUILD_H

#include <jansson.h>
#include <stddef.h>

#include "s2s/err.h"

/* Moves the shard `staged` (written alone by s2s-pack, with its index staged.idx) to `final`,
 * which may be in another directory of the same file system: writes final.idx (atomically, the
 * shard line naming final's base name, every other byte unchanged), renames the shard, removes
 * staged.idx. idx_sha (65 bytes) receives the SHA-256 of the new index. Returns 0 or S2S_E*
 * (S2S_EFORMAT when staged.idx does not start as the index format says). */
int s2s_build_move_shard(const char *staged, const char *final, char idx_sha[65], s2s_err *err);

/* The journal: a JSON-lines file whose first line is a header object (what the build is: recipe
 * hash, part, items hash, version) and whose other lines are records appended as the build
 * advances. A last line without its newline (the writer was killed) is ignored. */
typedef struct s2s_journal s2s_journal;

/* Opens the journal at path. If the file does not exist it is created with `header` as its first
 * line and *resumed = 0. If it exists, its header must equal `header` (else S2S_EINVAL naming
 * the first key that differs) and *resumed = 1; its records are loaded. header is not stolen. */
s2s_journal *s2s_journal_open(const char *path, const json_t *header, int *resumed, s2s_err *err);
/* Appends one record (a JSON object, compact, one line) and flushes it to disk (fdatasync). The
 * record is also added to the loaded list. rec is not stolen. */
int s2s_journal_append(s2s_journal *j, const json_t *rec, s2s_err *err);
/* The last record whose key `key` equals the integer n (n < 0: whose key `key` exists), or
 * NULL. Borrowed. */
const json_t *s2s_journal_find(const s2s_journal *j, const char *key, long long n);
void s2s_journal_close(s2s_journal *j);

/* Merges the dataset.json objects of consecutive chunks (each as s2s-pack wrote it, with its
 * shard entry renamed by the caller) into the dataset.json that one s2s-pack over the whole
 * stream writes: counts added in first-seen order, shard lists concatenated, build from the
 * first chunk, provenance records merged (first seen first, samples added, at most 256). n >= 1
 * (a chunk may hold no shard: the pack of an empty part). The chunks' "self_sha256" seals are
 * dropped: write the result with s2s_dataset_write (s2s/shard.h), which seals it. Returns a new
 * object or NULL with err. */
json_t *s2s_build_dataset(json_t *const *chunks, size_t n, s2s_err *err);

#endif
