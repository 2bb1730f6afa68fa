/* s2s/item.h — the item of DESIGN.md (one benchmark question) as a jansson object.
 *
 * An item is a json_t object; libs2s never copies it into a C struct, so fields it does not know
 * travel through every tool untouched. These helpers validate, read and write items. */
#ifndef S2S_ITEM_H
#define S2S_ITEM_H

#include <jansson.h>
#include <stdio.h>
#include "s2s/err.h"

/* Validates one item; on failure fills err with the reason (no location: callers prefix
 * "file:line: "). Checks: object; id string valid per s2s_id_valid; task "cloze"|"choice";
 * lang non-empty string; category string if present; context object with non-empty string text;
 * candidates array of objects each with non-empty string text and integer label 0/1; exactly one
 * label 1; cloze has exactly 2 candidates, choice at least 2. */
int s2s_item_validate(const json_t *item, s2s_err *err);

/* Accessors (borrowed pointers, NULL/-1 when absent). */
const char *s2s_item_id(const json_t *item);
const char *s2s_item_task(const json_t *item);
const char *s2s_item_lang(const json_t *item);
const char *s2s_item_context_text(const json_t *item);
size_t s2s_item_n_candidates(const json_t *item);
const char *s2s_item_candidate_text(const json_t *item, size_t i);
int s2s_item_candidate_label(const json_t *item, size_t i);
/* Index of the candidate with label 1, or -1. */
int s2s_item_right_index(const json_t *item);

/* Serialises an item as one line of compact JSON (keys in insertion order, UTF-8 kept, no
 * trailing newline). Returns a malloc'd string or NULL on ENOMEM. Byte-identical for equal input. */
char *s2s_item_dumps(const json_t *item);
/* Writes s2s_item_dumps + "\n". */
int s2s_item_write(FILE *fp, const json_t *item, s2s_err *err);

/* Appends a provenance record {"tool":..., "version": S2S_VERSION, "params": params} to the
 * item's "provenance" array (created if absent). Steals the reference to params (may be NULL). */
int s2s_item_add_provenance(json_t *item, const char *tool, json_t *params, s2s_err *err);

/* ---- set of ids, to reject duplicates ------------------------------------------------------- */
typedef struct s2s_idset s2s_idset;
s2s_idset *s2s_idset_new(void);
/* Returns 1 if added, 0 if it was already present, negative on ENOMEM. */
int s2s_idset_add(s2s_idset *set, const char *id);
int s2s_idset_has(const s2s_idset *set, const char *id);
size_t s2s_idset_size(const s2s_idset *set);
void s2s_idset_free(s2s_idset *set);

#endif
