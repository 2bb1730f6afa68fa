/* s2s/units.h — unit sequences made by other tokenizers, to attach to samples
 * (s2s-tokenize import; format in docs/tokenize.md).
 *
 * A units file is either GSLM / fairseq speech2unit lines, "NAME|u1 u2 ...", where NAME is ID
 * (member ctx), ID.STEM, or a path whose base name is ID.STEM.EXT (directories and an audio
 * extension are dropped); or JSON lines {"id": ID, "member": STEM (default "ctx"), "units": [..]}.
 * The first non-blank byte decides ('{' = JSON lines). Units are non-negative integers (below
 * the vocabulary size when one is given); an ID.STEM may appear once. */
#ifndef S2S_UNITS_H
#define S2S_UNITS_H

#include "s2s/err.h"
#include "s2s/sample.h"
#include "s2s/util.h"
#include <jansson.h>
#include <stddef.h>

typedef struct s2s_units_set s2s_units_set;

/* Parses a units file held in memory (data is not kept). name is used in messages ("FILE:LINE:
 * ..."). k > 0 bounds the units (u < k), 0 = no bound. Returns NULL and fills err:
 * S2S_EFORMAT (not units lines, bad JSON, a non-integer, a NUL byte), S2S_EDATA (invalid id,
 * negative or out-of-range unit, ID.STEM twice, no lines at all), S2S_ENOMEM.
 * Free with s2s_units_set_free. */
s2s_units_set *s2s_units_set_parse(const unsigned char *data, size_t len, const char *name,
                                   long long k, s2s_err *err);
/* Reads and parses a file ("-" = stdin). */
s2s_units_set *s2s_units_set_load(const char *path, long long k, s2s_err *err);
void s2s_units_set_free(s2s_units_set *u); /* safe with NULL */

/* "gslm" or "jsonl"; SHA-256 (hex) of the file bytes; number of unit sequences. */
const char *s2s_units_set_format(const s2s_units_set *u);
const char *s2s_units_set_sha256(const s2s_units_set *u);
size_t s2s_units_set_size(const s2s_units_set *u);

/* Attaches every sequence for sample s->key as member "STEM.units" (single spaces, no newline;
 * an empty sequence is an empty member), replacing one already there, and marks them used.
 * *frames gets a new JSON object {STEM: length, ...} (caller decrefs), NULL when none.
 * Returns the number of sequences attached (0: the file has none for this sample) or a negative
 * S2S_E* code. */
int s2s_units_set_attach(s2s_units_set *u, s2s_sample *s, json_t **frames, s2s_err *err);

/* 0 if every sequence whose id belongs to part (NULL = every id) was attached; else S2S_EDATA
 * "FILE:LINE: unknown id 'X': no such sample in the input" for the first one in id order. */
int s2s_units_set_check_used(const s2s_units_set *u, const s2s_part *part, s2s_err *err);

#endif
