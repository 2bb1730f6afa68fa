/* csv.c — RFC 4180 CSV reader (s2s/csv.h).
 *
 * One pass over the bytes with getc: every byte is checked as UTF-8 as it arrives (so an error
 * names the physical line of the bad byte, not only the record's first line), then fed to a
 * four-state field machine. Fields of a record are stored NUL-separated in one buffer. */
#include "s2s/csv.h"

#include <stdlib.h>
#include <string.h>

#include "s2s/util.h"

struct s2s_csv {
    FILE *fp;
    char *name;
    long line;      /* current physical line (1-based) */
    int started;    /* BOM check done */
    int dead;       /* unrecoverable error seen (unterminated quote): stay at end */
    int eof;        /* end of input reached */
    s2s_buf bytes;  /* field bytes, each field NUL-terminated */
    size_t *starts; /* start offset of each field in bytes */
    char **fields;  /* pointers handed to the caller */
    size_t n, cap;
    int back[4]; /* bytes pushed back (a stack) */
    int nback;
    /* UTF-8 validator state */
    int need, lead; /* continuation bytes still expected; the sequence's first byte */
    unsigned char lo, hi;
};

s2s_csv *s2s_csv_new(FILE *fp, const char *name, s2s_err *err) {
    s2s_csv *c = calloc(1, sizeof *c);
    if (!c) {
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        return NULL;
    }
    c->fp = fp;
    c->name = strdup(name ? name : "<csv>");
    if (!c->name) {
        free(c);
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        return NULL;
    }
    c->line = 1;
    return c;
}

const char *s2s_csv_name(const s2s_csv *c) {
    return c->name;
}

void s2s_csv_free(s2s_csv *c) {
    if (!c) return;
    free(c->name);
    s2s_buf_free(&c->bytes);
    free(c->starts);
    free(c->fields);
    free(c);
}

/* Returns 0 if byte b continues valid UTF-8, -1 otherwise (overlongs, surrogates and code points
 * above U+10FFFF are invalid, as in RFC 3629). */
static int utf8_step(s2s_csv *c, int b) {
    if (c->need) {
        if (b < c->lo || b > c->hi) return -1;
        c->need--;
        c->lo = 0x80;
        c->hi = 0xBF;
        return 0;
    }
    if (b < 0x80) return 0;
    c->lead = b;
    c->lo = 0x80;
    c->hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF)
        c->need = 1;
    else if (b == 0xE0)
        c->need = 2, c->lo = 0xA0;
    else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF)
        c->need = 2;
    else if (b == 0xED)
        c->need = 2, c->hi = 0x9F;
    else if (b == 0xF0)
        c->need = 3, c->lo = 0x90;
    else if (b >= 0xF1 && b <= 0xF3)
        c->need = 3;
    else if (b == 0xF4)
        c->need = 3, c->hi = 0x8F;
    else
        return -1;
    return 0;
}

static int rd(s2s_csv *c) {
    return c->nback ? c->back[--c->nback] : getc(c->fp);
}

static void unrd(s2s_csv *c, int ch) {
    if (ch != EOF) c->back[c->nback++] = ch;
}

static int push_byte(s2s_csv *c, int b, s2s_err *err) {
    unsigned char ch = (unsigned char)b;
    return s2s_buf_append(&c->bytes, &ch, 1, err);
}

static int end_field(s2s_csv *c, s2s_err *err) {
    if (push_byte(c, 0, err) < 0) return S2S_ENOMEM;
    if (c->n + 1 >= c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        size_t *s = realloc(c->starts, cap * sizeof *s);
        if (!s) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        c->starts = s;
        char **f = realloc(c->fields, cap * sizeof *f);
        if (!f) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        c->fields = f;
        c->cap = cap;
    }
    c->n++;
    c->starts[c->n] = c->bytes.len; /* start of the next field */
    return 0;
}

/* After a recoverable error: drop the rest of the physical line so the next call starts afresh. */
static void skip_line(s2s_csv *c) {
    int ch;
    c->need = 0;
    while ((ch = rd(c)) != EOF) {
        if (ch == '\n') {
            c->line++;
            return;
        }
        if (ch == '\r') {
            int nx = rd(c);
            if (nx != '\n' && nx != EOF) unrd(c, nx);
            c->line++;
            return;
        }
    }
    c->eof = 1;
}

enum { F_START, F_PLAIN, F_QUOTED, F_QUOTE_SEEN };

int s2s_csv_next(s2s_csv *c, char ***fields, size_t *n, long *line, s2s_err *err) {
    if (c->dead || c->eof) return 0;
    if (!c->started) {
        c->started = 1;
        int b0 = rd(c), b1 = b0 == 0xEF ? rd(c) : EOF, b2 = b1 == 0xBB ? rd(c) : EOF;
        if (b0 != 0xEF || b1 != 0xBB || b2 != 0xBF) { /* no BOM: give the bytes back */
            unrd(c, b2);
            unrd(c, b1);
            unrd(c, b0);
        }
    }
    if (!c->starts) {
        c->starts = malloc(16 * sizeof *c->starts);
        c->fields = malloc(16 * sizeof *c->fields);
        if (!c->starts || !c->fields) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        c->cap = 16;
    }
    c->bytes.len = 0;
    c->n = 0;
    c->starts[0] = 0;
    long start_line = c->line, quote_line = 0;
    int state = F_START, any = 0;
    for (;;) {
        int ch = rd(c);
        if (ch == EOF) {
            if (ferror(c->fp)) {
                c->dead = 1;
                return s2s_err_errno(err, "%s:%ld: read error", c->name, c->line);
            }
            c->eof = 1;
            if (c->need) {
                c->dead = 1;
                return s2s_err_set(err, S2S_EFORMAT,
                                   "%s:%ld: invalid UTF-8 (the file ends inside a character)",
                                   c->name, c->line);
            }
            if (state == F_QUOTED) {
                c->dead = 1;
                return s2s_err_set(err, S2S_EFORMAT,
                                   "%s:%ld: unterminated quoted field (the quote opened at line "
                                   "%ld is never closed)",
                                   c->name, quote_line, quote_line);
            }
            if (!any) return 0; /* clean end: nothing after the last line end */
            break;
        }
        any = 1;
        if (ch == 0) {
            long at = c->line;
            if (state == F_QUOTED)
                c->dead = 1; /* cannot resynchronise inside quotes */
            else
                skip_line(c);
            return s2s_err_set(err, S2S_EFORMAT, "%s:%ld: NUL byte in the input (not a text file?)",
                               c->name, at);
        }
        if (utf8_step(c, ch) < 0) {
            long at = c->line;
            char what[64];
            if (c->need)
                snprintf(what, sizeof what, "a sequence starting with byte 0x%02X broken by 0x%02X",
                         (unsigned)c->lead, (unsigned)ch);
            else
                snprintf(what, sizeof what, "byte 0x%02X", (unsigned)ch);
            c->need = 0;
            if (state == F_QUOTED)
                c->dead = 1;
            else if (ch == '\r' || ch == '\n')
                unrd(c, ch), skip_line(c);
            else
                skip_line(c);
            return s2s_err_set(err, S2S_EFORMAT, "%s:%ld: invalid UTF-8 (%s)", c->name, at, what);
        }
        if (state == F_QUOTED) {
            if (ch == '"') {
                state = F_QUOTE_SEEN;
            } else {
                if (ch == '\n')
                    c->line++;
                else if (ch == '\r') {
                    int nx = rd(c);
                    if (nx != '\n') c->line++;
                    if (nx != EOF) unrd(c, nx);
                }
                if (push_byte(c, ch, err) < 0) return S2S_ENOMEM;
            }
            continue;
        }
        if (ch == '\n' || ch == '\r') {
            if (ch == '\r') {
                int nx = rd(c);
                if (nx != '\n' && nx != EOF) unrd(c, nx);
            }
            c->line++;
            break;
        }
        if (ch == ',') {
            if (end_field(c, err) < 0) return S2S_ENOMEM;
            state = F_START;
            continue;
        }
        if (ch == '"') {
            if (state == F_START) {
                state = F_QUOTED;
                quote_line = c->line;
                continue;
            }
            if (state == F_QUOTE_SEEN) { /* doubled quote */
                state = F_QUOTED;
                if (push_byte(c, '"', err) < 0) return S2S_ENOMEM;
                continue;
            }
            long at = c->line;
            skip_line(c);
            return s2s_err_set(err, S2S_EFORMAT,
                               "%s:%ld: stray quote inside an unquoted field %zu (quote the whole "
                               "field and double the quotes inside it)",
                               c->name, at, c->n + 1);
        }
        if (state == F_QUOTE_SEEN) {
            long at = c->line;
            skip_line(c);
            return s2s_err_set(err, S2S_EFORMAT,
                               "%s:%ld: stray text after the closing quote of field %zu (a quote "
                               "inside a quoted field must be doubled)",
                               c->name, at, c->n + 1);
        }
        state = F_PLAIN;
        if (push_byte(c, ch, err) < 0) return S2S_ENOMEM;
    }
    if (c->need) { /* a line end cannot be inside a character; utf8_step already rejected it */
        c->need = 0;
        return s2s_err_set(err, S2S_EFORMAT, "%s:%ld: invalid UTF-8", c->name, start_line);
    }
    if (end_field(c, err) < 0) return S2S_ENOMEM;
    for (size_t i = 0; i < c->n; i++)
        c->fields[i] = (char *)c->bytes.data + c->starts[i];
    *fields = c->fields;
    *n = c->n;
    if (line) *line = start_line;
    return 1;
}
