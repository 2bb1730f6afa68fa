/* s2s/import.h — importers: text sources (StoryCloze CSV, CMMLU CSV, upstream S2SBench jsonl,
 * our own item JSON lines) -> items (s2s/item.h), handed one by one to a callback.
 *
 * Formats (docs/items.md describes the items they make):
 *   "storycloze"  StoryCloze Spring 2016 CSV; columns found by header name.
 *   "cmmlu"       CMMLU CSV (",Question,A,B,C,D,Answer"); a directory imports every *.csv in it.
 *   "s2sbench"    upstream S2SBench jsonl: story pairs {"uttid","first","last"} (even uttid =
 *                 right, uttid+1 = wrong, same "first") or CMMLU records {"uttid","first"|
 *                 "question","A".."D","answer"}.
 *   "items"       our JSON lines, validated, unknown fields kept.
 * Every item is validated (s2s_item_validate) before the callback sees it; ids are unique across
 * all the files given to one importer (a duplicate is always an error naming both places). */
#ifndef S2S_IMPORT_H
#define S2S_IMPORT_H

#include "s2s/err.h"
#include <jansson.h>
#include <stdint.h>

typedef struct s2s_import_opts {
    const char *lang;   /* overrides the format's language (NULL: the format's default) */
    const char *prefix; /* id prefix (NULL: "sstorycloze", "scmmlu", "s2sbench") */
    int skip_bad;       /* skip bad rows (counted, reasons kept) instead of failing */
} s2s_import_opts;

/* Receives each item (borrowed: the importer frees it after the call; json_incref to keep it).
 * Return 0 to go on, or a negative S2S_E* code (with err filled) to stop the import. */
typedef int (*s2s_import_cb)(json_t *item, void *arg, s2s_err *err);

typedef struct s2s_importer s2s_importer;

/* format: one of the names above. opts may be NULL (defaults). Returns NULL with err filled
 * (S2S_EINVAL for an unknown format or a bad option, e.g. a --prefix that makes invalid ids). */
s2s_importer *s2s_importer_new(const char *format, const s2s_import_opts *opts, s2s_import_cb cb,
                               void *arg, s2s_err *err);

/* Imports one file ("-" = stdin; a directory for cmmlu). Returns the number of items passed to
 * the callback from this file, or a negative code with "file:line: reason" in err: a bad row
 * (unless skip_bad), a CSV syntax error after which the file cannot be resynchronised, a missing
 * column, a file with no data rows, a duplicate id, or the callback's own error. */
long s2s_importer_file(s2s_importer *im, const char *path, s2s_err *err);

/* Items passed to the callback so far (all files). */
uint64_t s2s_importer_count(const s2s_importer *im);
/* Rows (or pairs) skipped under skip_bad, and the reason of each ("file:line: reason"), in order
 * (borrowed strings, valid until s2s_importer_free). */
uint64_t s2s_importer_skipped(const s2s_importer *im);
const char *s2s_importer_skip_reason(const s2s_importer *im, uint64_t i);

/* Comma-separated list of the format names, for --help and messages. */
const char *s2s_import_formats(void);

void s2s_importer_free(s2s_importer *im);

#endif
