/* s2s/csv.h — RFC 4180 CSV reader: quoted fields with commas, doubled quotes and newlines, a
 * UTF-8 BOM, CRLF or LF line ends. Every record knows the line it started on, for messages. */
#ifndef S2S_CSV_H
#define S2S_CSV_H

#include <stdio.h>
#include "s2s/err.h"

typedef struct s2s_csv s2s_csv;

/* Does not own fp; name is used in messages ("cloze.csv:17: ..."). */
s2s_csv *s2s_csv_new(FILE *fp, const char *name, s2s_err *err);
/* Reads the next record. Returns 1 with *fields (n strings, NUL-terminated UTF-8, valid until
 * the next call) and *line (the line the record starts on), 0 at end of file, negative on error
 * (unterminated quote, a quote inside an unquoted field, text after a closing quote, invalid
 * UTF-8, a NUL byte). A blank line is returned as one empty field. */
int s2s_csv_next(s2s_csv *c, char ***fields, size_t *n, long *line, s2s_err *err);
const char *s2s_csv_name(const s2s_csv *c);
void s2s_csv_free(s2s_csv *c);

#endif
