/* s2s/cache.h — the score cache of s2s-score: resume a run, never share scores between models.
 *
 * One append-only JSON-lines file (s2s-score keeps it as DIR/scores.cache.jsonl, docs/score.md
 * "Score cache"). Every answer a backend gave is one line, keyed by
 *   - the backend identity: SHA-256 of (backend spec, model identity, --model-id, --dedup),
 *     written as "b" (16 hex digits) on every line, declared once per file in a line that spells
 *     the spec and the model identity out;
 *   - the item id, the mode and the candidate index;
 *   - "h": a hash of everything the request carries (the item's JSON, lang, texts, units after
 *     --dedup, and the bytes of the audio files), so a changed dataset never reuses a stale score.
 * The values (nll as a C99 hex float, so exact; ntok; reply flags) reproduce the reply bit for bit,
 * so a report built from cached answers is byte-identical to one built from the backend's.
 * Failed replies are not cached: a rerun asks again.
 *
 * The file is locked (flock) while open: two runs on the same file fail fast (where the file
 * system has no locks, open goes on with a note). Lines are flushed every 64 lines or second and
 * fsynced every 5 s and at close, so a crash loses at most the last second of answers. A torn last line (a killed run) is cut off at open with a note; any other
 * malformed line is an error naming FILE:LINE. */
#ifndef S2S_CACHE_H
#define S2S_CACHE_H

#include <stdint.h>

#include "s2s/err.h"
#include "s2s/score.h"

typedef struct s2s_cache s2s_cache;

/* Opens (creating it if needed) the cache file at path for one backend identity: spec (the --lm
 * SPEC), model (the backend's model identity: file SHA-256 or a worker's announced id; may be
 * ""), model_id (--model-id, or NULL), dedup (--dedup). Locks the file, loads the answers of this
 * identity (lines of other identities are checked and skipped), cuts a torn last line off.
 * Returns NULL and fills err: S2S_EIO (cannot open/lock: "in use by another s2s-score"),
 * S2S_EFORMAT (a malformed line, "PATH:LINE: ..."), S2S_ENOMEM. Free with s2s_cache_close. */
s2s_cache *s2s_cache_open(const char *path, const char *spec, const char *model,
                          const char *model_id, int dedup, s2s_err *err);

/* A note about what open found ("PATH:17: torn last line (an interrupted run) removed"), or ""
 * (borrowed, valid until close). */
const char *s2s_cache_note(const s2s_cache *c);

/* Fills h with lookup/store hooks over c for s2s_scorer_set_hooks (c must outlive the scorer's
 * use of them). */
void s2s_cache_hooks(s2s_cache *c, s2s_score_hooks *h);

/* Answers of this identity found in the file at open; answers appended since; lookups answered. */
uint64_t s2s_cache_loaded(const s2s_cache *c);
uint64_t s2s_cache_stored(const s2s_cache *c);
uint64_t s2s_cache_hits(const s2s_cache *c);

/* The 16-hex-digit identity key ("b" of the lines); borrowed. */
const char *s2s_cache_identity(const s2s_cache *c);

/* Writes buffered lines to the file and fsyncs it. 0 or S2S_EIO. */
int s2s_cache_flush(s2s_cache *c, s2s_err *err);

/* Flushes, fsyncs, unlocks, closes and frees. Returns 0 or S2S_EIO (err may be NULL; the handle is
 * freed either way). Safe with NULL. */
int s2s_cache_close(s2s_cache *c, s2s_err *err);

#endif
