/* import.c — text sources -> items (s2s/import.h).
 *
 * Row numbering: every non-blank CSV record after the header counts as a data row, bad or not,
 * so the ids of the good rows do not move when --skip-bad drops a bad one. Text fields are
 * trimmed of surrounding whitespace (161 CMMLU options carry stray spaces). */
#include "s2s/import.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "s2s/csv.h"
#include "s2s/item.h"
#include "s2s/util.h"

enum { FMT_STORYCLOZE, FMT_CMMLU, FMT_S2SBENCH, FMT_ITEMS };
static const char *const fmt_names[] = {"storycloze", "cmmlu", "s2sbench", "items"};
static const char *const fmt_prefix[] = {"sstorycloze", "scmmlu", "s2sbench", NULL};

struct s2s_importer {
    int fmt;
    char *lang, *prefix;
    int skip_bad;
    s2s_import_cb cb;
    void *arg;
    json_t *seen;  /* id -> "file:line" of its first appearance */
    json_t *files; /* "dev:inode" of every file imported -> its path */
    uint64_t count;
    char **reasons;
    uint64_t n_reasons, cap_reasons;
    long file_count; /* items from the current file */
};

const char *s2s_import_formats(void) {
    return "storycloze, cmmlu, s2sbench, items";
}

static int oom(s2s_err *err) {
    return s2s_err_set(err, S2S_ENOMEM, "out of memory");
}

s2s_importer *s2s_importer_new(const char *format, const s2s_import_opts *opts, s2s_import_cb cb,
                               void *arg, s2s_err *err) {
    int fmt = -1;
    for (int i = 0; i < 4; i++)
        if (format && strcmp(format, fmt_names[i]) == 0) fmt = i;
    if (fmt < 0) {
        s2s_err_set(err, S2S_EINVAL, "unknown format \"%s\" (formats: %s)", format ? format : "",
                    s2s_import_formats());
        return NULL;
    }
    s2s_import_opts o = {0};
    if (opts) o = *opts;
    if (o.lang && !*o.lang) {
        s2s_err_set(err, S2S_EINVAL, "--lang must not be empty");
        return NULL;
    }
    if (o.prefix && fmt == FMT_ITEMS) {
        s2s_err_set(err, S2S_EINVAL, "--prefix does not apply to items (they carry their ids)");
        return NULL;
    }
    if (o.prefix && !s2s_id_valid(o.prefix)) {
        s2s_err_set(err, S2S_EINVAL,
                    "--prefix \"%s\" is not valid: use ASCII letters, digits, '_' and '-' only",
                    o.prefix);
        return NULL;
    }
    s2s_importer *im = calloc(1, sizeof *im);
    if (!im) {
        oom(err);
        return NULL;
    }
    im->fmt = fmt;
    im->skip_bad = o.skip_bad;
    im->cb = cb;
    im->arg = arg;
    im->seen = json_object();
    im->files = json_object();
    const char *prefix = o.prefix ? o.prefix : fmt_prefix[fmt];
    if (!im->seen || !im->files || (o.lang && !(im->lang = strdup(o.lang))) ||
        (prefix && !(im->prefix = strdup(prefix)))) {
        s2s_importer_free(im);
        oom(err);
        return NULL;
    }
    return im;
}

void s2s_importer_free(s2s_importer *im) {
    if (!im) return;
    for (uint64_t i = 0; i < im->n_reasons; i++)
        free(im->reasons[i]);
    free(im->reasons);
    json_decref(im->seen);
    json_decref(im->files);
    free(im->lang);
    free(im->prefix);
    free(im);
}

uint64_t s2s_importer_count(const s2s_importer *im) {
    return im->count;
}

uint64_t s2s_importer_skipped(const s2s_importer *im) {
    return im->n_reasons;
}

const char *s2s_importer_skip_reason(const s2s_importer *im, uint64_t i) {
    return i < im->n_reasons ? im->reasons[i] : NULL;
}

/* A bad row: fail, or with skip_bad keep the reason and go on (returns 0). */
static int row_bad(s2s_importer *im, s2s_err *err) {
    if (!im->skip_bad || err->code == S2S_ENOMEM) return err->code;
    if (im->n_reasons == im->cap_reasons) {
        uint64_t cap = im->cap_reasons ? im->cap_reasons * 2 : 16;
        char **r = realloc(im->reasons, cap * sizeof *r);
        if (!r) return oom(err);
        im->reasons = r;
        im->cap_reasons = cap;
    }
    if (!(im->reasons[im->n_reasons] = strdup(err->msg))) return oom(err);
    im->n_reasons++;
    s2s_err_clear(err);
    return 0;
}

/* Validates, checks the id is new, hands the item to the callback. Steals item. */
static int emit(s2s_importer *im, json_t *item, const char *file, long line, s2s_err *err) {
    char where[512];
    snprintf(where, sizeof where, "%s:%ld", file, line);
    if (!item) return oom(err);
    if (s2s_item_validate(item, err) < 0) {
        s2s_err_prefix(err, "%s: ", where);
        json_decref(item);
        return row_bad(im, err);
    }
    const char *id = s2s_item_id(item);
    const json_t *prev = json_object_get(im->seen, id);
    if (prev) {
        int rc = s2s_err_set(err, S2S_EDATA, "%s: duplicate id \"%s\" (first at %s)%s", where, id,
                             json_string_value(prev),
                             im->fmt == FMT_STORYCLOZE || im->fmt == FMT_CMMLU
                                 ? "; ids number the rows of each file, so import such files "
                                   "separately, each with its own --prefix"
                                 : "");
        json_decref(item);
        return rc;
    }
    if (json_object_set_new(im->seen, id, json_string(where)) < 0) {
        json_decref(item);
        return oom(err);
    }
    int rc = im->cb ? im->cb(item, im->arg, err) : 0;
    json_decref(item);
    if (rc < 0) return rc;
    im->count++;
    im->file_count++;
    return 0;
}

/* ---- small helpers -------------------------------------------------------------------------- */

static int is_space(int ch) {
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\f' || ch == '\v';
}

/* JSON string of s without surrounding whitespace (NULL on ENOMEM). */
static json_t *trimmed(const char *s) {
    size_t n = strlen(s);
    while (n && is_space((unsigned char)s[n - 1]))
        n--;
    while (n && is_space((unsigned char)*s))
        s++, n--;
    return json_stringn(s, n);
}

static const char *base_name(const char *path) {
    if (strcmp(path, "-") == 0) return "stdin";
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static const char *display_name(const char *path) {
    return strcmp(path, "-") == 0 ? "<stdin>" : path;
}

/* Replaces every byte outside [A-Za-z0-9_-] with '_'. */
static void id_sanitize(char *s) {
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-'))
            *s = '_';
    }
}

/* "zh" if the text has a CJK character (U+3000..U+9FFF: lead bytes E3..E9), else "en". */
static const char *guess_lang(const char *s) {
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch >= 0xE3 && ch <= 0xE9) return "zh";
    }
    return "en";
}

static FILE *open_input(const char *path, s2s_err *err) {
    if (strcmp(path, "-") == 0) return stdin;
    FILE *fp = fopen(path, "rb");
    if (!fp) s2s_err_errno(err, "%s: cannot open", path);
    return fp;
}

static void close_input(FILE *fp) {
    if (fp && fp != stdin) fclose(fp);
}

/* Header lookup: index of the column named name (case-insensitive, spaces ignored), or -1. */
static int col_find(char **hdr, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++) {
        const char *h = hdr[i];
        while (is_space((unsigned char)*h))
            h++;
        size_t len = strlen(h);
        while (len && is_space((unsigned char)h[len - 1]))
            len--;
        if (len == strlen(name) && strncasecmp(h, name, len) == 0) return (int)i;
    }
    return -1;
}

static int blank_record(char **f, size_t n) {
    return n == 1 && f[0][0] == '\0';
}

/* ---- storycloze ----------------------------------------------------------------------------- */

static const char *const sc_cols[] = {
    "InputStoryid",   "InputSentence1",           "InputSentence2",           "InputSentence3",
    "InputSentence4", "RandomFifthSentenceQuiz1", "RandomFifthSentenceQuiz2", "AnswerRightEnding"};
enum { SC_ID, SC_S1, SC_S4 = 4, SC_Q1, SC_Q2, SC_ANS, SC_NCOLS };

static json_t *sc_item(s2s_importer *im, char **f, const int *col, const char *file, long line,
                       long row, s2s_err *err) {
    const char *ans = f[col[SC_ANS]];
    while (is_space((unsigned char)*ans))
        ans++;
    size_t alen = strlen(ans);
    while (alen && is_space((unsigned char)ans[alen - 1]))
        alen--;
    int right;
    if (alen == 1 && (ans[0] == '1' || ans[0] == '2')) {
        right = ans[0] - '1';
    } else {
        s2s_err_set(err, S2S_EDATA, "%s:%ld: AnswerRightEnding must be 1 or 2, not \"%.40s\"",
                    display_name(file), line, f[col[SC_ANS]]);
        return NULL;
    }
    s2s_buf ctx = {0};
    for (int k = SC_S1; k <= SC_S4; k++) {
        json_t *t = trimmed(f[col[k]]);
        if (!t) {
            oom(err);
            s2s_buf_free(&ctx);
            return NULL;
        }
        const char *s = json_string_value(t);
        if (!*s) {
            s2s_err_set(err, S2S_EDATA, "%s:%ld: InputSentence%d is empty", display_name(file),
                        line, k - SC_S1 + 1);
            json_decref(t);
            s2s_buf_free(&ctx);
            return NULL;
        }
        if ((ctx.len && s2s_buf_append(&ctx, " ", 1, err) < 0) ||
            s2s_buf_append(&ctx, s, strlen(s), err) < 0) {
            json_decref(t);
            s2s_buf_free(&ctx);
            return NULL;
        }
        json_decref(t);
    }
    char id[300];
    snprintf(id, sizeof id, "%s_%06ld", im->prefix, row);
    json_t *cands = json_array();
    for (int k = 0; k < 2 && cands; k++) {
        json_t *c = json_object();
        if (!c || json_object_set_new(c, "text", trimmed(f[col[SC_Q1 + k]])) < 0 ||
            json_object_set_new(c, "label", json_integer(k == right)) < 0 ||
            json_array_append_new(cands, c) < 0) {
            json_decref(cands);
            cands = NULL;
        }
    }
    json_t *source = json_pack("{s:s, s:s, s:I, s:I, s:s%}", "format", "storycloze", "file",
                               base_name(file), "line", (json_int_t)line, "row", (json_int_t)row,
                               "story_id", f[col[SC_ID]], strlen(f[col[SC_ID]]));
    json_t *item = NULL;
    if (cands && source)
        item = json_pack("{s:s, s:s, s:s, s:s, s:{s:s%}, s:o, s:o}", "id", id, "task", "cloze",
                         "lang", im->lang ? im->lang : "en", "category", "storycloze", "context",
                         "text", ctx.len ? (const char *)ctx.data : "", ctx.len, "candidates",
                         cands, "source", source);
    else {
        json_decref(cands);
        json_decref(source);
    }
    s2s_buf_free(&ctx);
    if (!item) oom(err);
    return item;
}

/* ---- one CSV file: open, header, rows ------------------------------------------------------- */

/* What a CSV format supplies to import_csv: a header check that fills cols[] (0 or an error)
 * and a row builder (a new item, or NULL with err filled). */
typedef struct csv_format {
    int (*header)(struct csv_format *fm, char **f, size_t n, long line, int *cols, s2s_err *err);
    json_t *(*row)(s2s_importer *im, const struct csv_format *fm, char **f, const int *cols,
                   long line, long row, s2s_err *err);
    const char *path, *name;          /* the file, and its name in messages */
    const char *subject, *id_subject; /* cmmlu: from the file name */
    int idx_col;                      /* cmmlu: the unnamed row-index column, or -1 */
} csv_format;

/* Reads one CSV file row by row: a damaged file (CSV syntax) is never skipped, a bad row is
 * skipped only with --skip-bad (row_bad), blank records are ignored, and a file with no data
 * rows is an error. */
static long import_csv(s2s_importer *im, csv_format *fm, s2s_err *err) {
    FILE *fp = open_input(fm->path, err);
    if (!fp) return err->code;
    long rc = 0;
    s2s_csv *csv = s2s_csv_new(fp, fm->name, err);
    if (!csv) {
        close_input(fp);
        return err->code;
    }
    char **f;
    size_t n, ncols;
    long line, row = 0;
    int cols[16];
    int r = s2s_csv_next(csv, &f, &n, &line, err);
    if (r <= 0) {
        rc = r < 0 ? r : s2s_err_set(err, S2S_EDATA, "%s:1: empty file (no header row)", fm->name);
        goto done;
    }
    ncols = n;
    if ((rc = fm->header(fm, f, n, line, cols, err)) < 0) goto done;
    for (;;) {
        r = s2s_csv_next(csv, &f, &n, &line, err);
        if (r < 0) { /* CSV syntax: the file itself is damaged, never skipped */
            rc = r;
            goto done;
        }
        if (r == 0) break;
        if (blank_record(f, n)) continue;
        row++;
        if (n != ncols) {
            s2s_err_set(err, S2S_EDATA, "%s:%ld: %zu fields, the header has %zu", fm->name, line, n,
                        ncols);
            if ((rc = row_bad(im, err)) < 0) goto done;
            continue;
        }
        json_t *item = fm->row(im, fm, f, cols, line, row, err);
        if (!item) {
            if ((rc = row_bad(im, err)) < 0) goto done;
            continue;
        }
        if ((rc = emit(im, item, fm->name, line, err)) < 0) goto done;
    }
    if (row == 0) rc = s2s_err_set(err, S2S_EDATA, "%s:2: no data rows after the header", fm->name);
done:
    s2s_csv_free(csv);
    close_input(fp);
    return rc;
}

static int sc_header(csv_format *fm, char **f, size_t n, long line, int *col, s2s_err *err) {
    for (int k = 0; k < SC_NCOLS; k++)
        col[k] = col_find(f, n, sc_cols[k]);
    if (col[SC_Q1] < 0 && col[SC_Q2] < 0 &&
        (col_find(f, n, "InputSentence5") >= 0 || col_find(f, n, "sentence5") >= 0))
        return s2s_err_set(err, S2S_EDATA,
                           "%s:%ld: this is ROCStories training data (five-sentence stories, no "
                           "RandomFifthSentenceQuiz1/2 columns): it has no wrong ending, so it "
                           "cannot make cloze items; use the Spring 2016 validation or test CSV",
                           fm->name, line);
    for (int k = 0; k < SC_NCOLS; k++)
        if (col[k] < 0)
            return s2s_err_set(err, S2S_EDATA,
                               "%s:%ld: missing column \"%s\" in the header (a StoryCloze Spring "
                               "2016 CSV has InputStoryid, InputSentence1-4, "
                               "RandomFifthSentenceQuiz1-2, AnswerRightEnding)",
                               fm->name, line, sc_cols[k]);
    return 0;
}

static json_t *sc_row(s2s_importer *im, const csv_format *fm, char **f, const int *col, long line,
                      long row, s2s_err *err) {
    return sc_item(im, f, col, fm->path, line, row, err);
}

static long import_storycloze(s2s_importer *im, const char *path, s2s_err *err) {
    csv_format fm = {sc_header, sc_row, path, display_name(path), NULL, NULL, -1};
    return import_csv(im, &fm, err);
}

/* ---- cmmlu ---------------------------------------------------------------------------------- */

static const char *const cm_cols[] = {"Question", "A", "B", "C", "D", "Answer"};
enum { CM_Q, CM_A, CM_D = 4, CM_ANS, CM_NCOLS };

static json_t *cm_item(s2s_importer *im, char **f, const int *col, int idx_col, const char *subject,
                       const char *id_subject, const char *file, long line, long row,
                       s2s_err *err) {
    const char *ans = f[col[CM_ANS]];
    while (is_space((unsigned char)*ans))
        ans++;
    size_t alen = strlen(ans);
    while (alen && is_space((unsigned char)ans[alen - 1]))
        alen--;
    if (alen != 1 || ans[0] < 'A' || ans[0] > 'D') {
        s2s_err_set(err, S2S_EDATA, "%s:%ld: Answer must be A, B, C or D, not \"%.40s\"",
                    display_name(file), line, f[col[CM_ANS]]);
        return NULL;
    }
    int right = ans[0] - 'A';
    char id[400];
    snprintf(id, sizeof id, "%s_%s_%04ld", im->prefix, id_subject, row);
    json_t *cands = json_array();
    for (int k = 0; k < 4 && cands; k++) {
        char key[2] = {(char)('A' + k), 0};
        json_t *c = json_object();
        if (!c || json_object_set_new(c, "text", trimmed(f[col[CM_A + k]])) < 0 ||
            json_object_set_new(c, "label", json_integer(k == right)) < 0 ||
            json_object_set_new(c, "key", json_string(key)) < 0 ||
            json_array_append_new(cands, c) < 0) {
            json_decref(cands);
            cands = NULL;
        }
    }
    json_t *source = json_pack("{s:s, s:s, s:I, s:I}", "format", "cmmlu", "file", base_name(file),
                               "line", (json_int_t)line, "row", (json_int_t)row);
    if (source && idx_col >= 0 && f[idx_col][0])
        json_object_set_new(source, "index", json_string(f[idx_col]));
    json_t *q = trimmed(f[col[CM_Q]]);
    json_t *item = NULL;
    if (cands && source && q)
        item = json_pack("{s:s, s:s, s:s, s:s, s:{s:o}, s:o, s:o}", "id", id, "task", "choice",
                         "lang", im->lang ? im->lang : "zh", "category", subject, "context", "text",
                         q, "candidates", cands, "source", source);
    else {
        json_decref(q);
        json_decref(cands);
        json_decref(source);
    }
    if (!item) oom(err);
    return item;
}

static int cm_header(csv_format *fm, char **f, size_t n, long line, int *col, s2s_err *err) {
    for (int k = 0; k < CM_NCOLS; k++) {
        col[k] = col_find(f, n, cm_cols[k]);
        if (col[k] < 0)
            return s2s_err_set(err, S2S_EDATA,
                               "%s:%ld: missing column \"%s\" in the header (a CMMLU CSV has "
                               "\",Question,A,B,C,D,Answer\")",
                               fm->name, line, cm_cols[k]);
    }
    fm->idx_col = n > 0 && f[0][0] == '\0' ? 0 : -1; /* the unnamed row-index column */
    return 0;
}

static json_t *cm_row(s2s_importer *im, const csv_format *fm, char **f, const int *col, long line,
                      long row, s2s_err *err) {
    return cm_item(im, f, col, fm->idx_col, fm->subject, fm->id_subject, fm->path, line, row, err);
}

static long import_cmmlu_file(s2s_importer *im, const char *path, s2s_err *err) {
    /* The subject is the file name without ".csv"; ids get a sanitised copy. */
    char subject[256], id_subject[256];
    snprintf(subject, sizeof subject, "%s", base_name(path));
    size_t sl = strlen(subject);
    if (sl > 4 && strcmp(subject + sl - 4, ".csv") == 0) subject[sl - 4] = 0;
    snprintf(id_subject, sizeof id_subject, "%s", subject);
    id_sanitize(id_subject);
    csv_format fm = {cm_header, cm_row, path, display_name(path), subject, id_subject, -1};
    return import_csv(im, &fm, err);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static long import_cmmlu_dir(s2s_importer *im, const char *dir, s2s_err *err) {
    DIR *d = opendir(dir);
    if (!d) return s2s_err_errno(err, "%s: cannot open directory", dir);
    char **names = NULL;
    size_t n = 0, cap = 0;
    long rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l <= 4 || strcmp(e->d_name + l - 4, ".csv") != 0 || e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) {
                rc = oom(err);
                goto done;
            }
            names = nn;
        }
        size_t dl = strlen(dir);
        char *p = malloc(dl + l + 2);
        if (!p) {
            rc = oom(err);
            goto done;
        }
        snprintf(p, dl + l + 2, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", e->d_name);
        names[n++] = p;
    }
    if (n == 0) {
        rc = s2s_err_set(err, S2S_EDATA, "%s: no *.csv files in this directory", dir);
        goto done;
    }
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        long got = import_cmmlu_file(im, names[i], err);
        if (got < 0) {
            rc = got;
            goto done;
        }
    }
done:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return rc;
}

/* ---- JSON lines (s2sbench, items) ----------------------------------------------------------- */

/* Calls fn for each non-blank line of the file as a parsed JSON object. Bad JSON is a bad row. */
typedef int (*line_fn)(s2s_importer *im, json_t *obj, const char *name, long line, void *ctx,
                       s2s_err *err);

static long each_json_line(s2s_importer *im, const char *path, line_fn fn, void *ctx, long *nrec,
                           s2s_err *err) {
    const char *name = display_name(path);
    unsigned char *data;
    size_t len;
    int rc = s2s_read_file(path, &data, &len, err);
    if (rc < 0) return rc;
    if (len && memchr(data, 0, len)) {
        /* Find the line of the NUL for the message. */
        long l = 1;
        for (size_t i = 0; i < len && data[i]; i++)
            l += data[i] == '\n';
        free(data);
        return s2s_err_set(err, S2S_EFORMAT, "%s:%ld: NUL byte in the input (not a text file?)",
                           name, l);
    }
    size_t pos = 0;
    long line = 0;
    *nrec = 0;
    if (len >= 3 && data[0] == 0xEF && data[1] == 0xBB && data[2] == 0xBF) pos = 3;
    while (pos < len) {
        line++;
        size_t end = pos;
        while (end < len && data[end] != '\n')
            end++;
        size_t e = end;
        while (e > pos && is_space(data[e - 1]))
            e--;
        size_t b = pos;
        while (b < e && is_space(data[b]))
            b++;
        pos = end + 1;
        if (b == e) continue;
        (*nrec)++;
        json_error_t jerr;
        json_t *obj = json_loadb((const char *)data + b, e - b, JSON_REJECT_DUPLICATES, &jerr);
        if (!obj || !json_is_object(obj)) {
            if (obj)
                s2s_err_set(err, S2S_EFORMAT, "%s:%ld: not a JSON object", name, line);
            else
                s2s_err_set(err, S2S_EFORMAT, "%s:%ld: bad JSON at column %d: %s", name, line,
                            jerr.column, jerr.text);
            json_decref(obj);
            if ((rc = row_bad(im, err)) < 0) break;
            continue;
        }
        rc = fn(im, obj, name, line, ctx, err); /* fn steals obj */
        if (rc < 0) break;
    }
    free(data);
    if (rc >= 0 && *nrec == 0)
        rc = s2s_err_set(err, S2S_EDATA, "%s:1: empty file (no JSON lines)", name);
    return rc < 0 ? rc : 0;
}

static int items_line(s2s_importer *im, json_t *obj, const char *name, long line, void *ctx,
                      s2s_err *err) {
    (void)ctx;
    if (im->lang && !json_object_get(obj, "lang"))
        json_object_set_new(obj, "lang", json_string(im->lang));
    return emit(im, obj, name, line, err);
}

/* A story record waiting for its partner. */
typedef struct story_rec {
    long line;
    long long num; /* uttid number (int uttid, or the digits before the first '_') */
    json_t *obj;
} story_rec;

typedef struct s2sb_ctx {
    story_rec *recs;
    size_t n, cap;
} s2sb_ctx;

static const char *uttid_text(const json_t *u, char *buf, size_t size) {
    if (json_is_integer(u)) {
        snprintf(buf, size, "%lld", (long long)json_integer_value(u));
        return buf;
    }
    return json_string_value(u);
}

static json_t *get_uttid(json_t *obj) {
    json_t *u = json_object_get(obj, "uttid");
    if (!u) u = json_object_get(obj, "id");
    return json_is_integer(u) || (json_is_string(u) && *json_string_value(u)) ? u : NULL;
}

static int s2sb_choice(s2s_importer *im, json_t *obj, const char *name, long line, s2s_err *err) {
    json_t *u = get_uttid(obj);
    json_t *q = json_object_get(obj, "question");
    if (!q) q = json_object_get(obj, "first");
    const char *ans = json_string_value(json_object_get(obj, "answer"));
    char ub[32];
    if (!u)
        s2s_err_set(err, S2S_EDATA, "%s:%ld: no \"uttid\" (or \"id\")", name, line);
    else if (!json_is_string(q))
        s2s_err_set(err, S2S_EDATA, "%s:%ld: no \"first\" (or \"question\") string", name, line);
    else if (!ans || strlen(ans) != 1 || ans[0] < 'A' || ans[0] > 'D')
        s2s_err_set(err, S2S_EDATA, "%s:%ld: \"answer\" must be \"A\", \"B\", \"C\" or \"D\"", name,
                    line);
    else {
        char id[400];
        snprintf(id, sizeof id, "%s_%s", im->prefix, uttid_text(u, ub, sizeof ub));
        id_sanitize(id + strlen(im->prefix));
        json_t *cands = json_array();
        for (int k = 0; k < 4 && cands; k++) {
            char key[2] = {(char)('A' + k), 0};
            const char *t = json_string_value(json_object_get(obj, key));
            if (!t) {
                json_decref(cands);
                json_decref(obj);
                s2s_err_set(err, S2S_EDATA, "%s:%ld: no \"%s\" string", name, line, key);
                return row_bad(im, err);
            }
            json_t *c = json_pack("{s:o, s:i, s:s, s:O}", "text", trimmed(t), "label",
                                  k == ans[0] - 'A', "key", key, "uttid", u);
            if (!c || json_array_append_new(cands, c) < 0) {
                json_decref(cands);
                cands = NULL;
            }
        }
        const char *subj = json_string_value(json_object_get(obj, "subject"));
        json_t *item = cands ? json_pack("{s:s, s:s, s:s, s:s, s:{s:o}, s:o, s:{s:s, s:s, s:I}}",
                                         "id", id, "task", "choice", "lang",
                                         im->lang ? im->lang : guess_lang(json_string_value(q)),
                                         "category", subj ? subj : "cmmlu", "context", "text",
                                         trimmed(json_string_value(q)), "candidates", cands,
                                         "source", "format", "s2sbench", "file", base_name(name),
                                         "line", (json_int_t)line)
                             : NULL;
        json_decref(obj);
        return emit(im, item, name, line, err);
    }
    json_decref(obj);
    return row_bad(im, err);
}

static int s2sb_line(s2s_importer *im, json_t *obj, const char *name, long line, void *vctx,
                     s2s_err *err) {
    s2sb_ctx *ctx = vctx;
    if (json_object_get(obj, "A")) return s2sb_choice(im, obj, name, line, err);
    json_t *u = get_uttid(obj);
    char ub[32];
    const char *ut = u ? uttid_text(u, ub, sizeof ub) : NULL;
    long long num = -1;
    if (ut) { /* upstream pairs by int(uttid.split('_')[0]) */
        const char *p = ut;
        num = 0;
        while (*p >= '0' && *p <= '9' && num < 1000000000000000LL)
            num = num * 10 + (*p++ - '0');
        if (p == ut || (*p && *p != '_')) num = -1;
    }
    if (!json_is_string(json_object_get(obj, "first")) ||
        !json_is_string(json_object_get(obj, "last")))
        s2s_err_set(err, S2S_EDATA,
                    "%s:%ld: neither a story record (\"first\", \"last\") nor a CMMLU record "
                    "(\"A\"-\"D\", \"answer\")",
                    name, line);
    else if (!u)
        s2s_err_set(err, S2S_EDATA, "%s:%ld: no \"uttid\"", name, line);
    else if (num < 0)
        s2s_err_set(err, S2S_EDATA,
                    "%s:%ld: uttid \"%.60s\" does not start with a number (pairs are uttid N = "
                    "right, N+1 = wrong)",
                    name, line, ut);
    else {
        if (ctx->n == ctx->cap) {
            size_t cap = ctx->cap ? ctx->cap * 2 : 256;
            story_rec *r = realloc(ctx->recs, cap * sizeof *r);
            if (!r) {
                json_decref(obj);
                return oom(err);
            }
            ctx->recs = r;
            ctx->cap = cap;
        }
        ctx->recs[ctx->n++] = (story_rec){line, num, obj};
        return 0;
    }
    json_decref(obj);
    return row_bad(im, err);
}

static int cmp_rec(const void *a, const void *b) {
    const story_rec *x = a, *y = b;
    if (x->num != y->num) return x->num < y->num ? -1 : 1;
    return x->line < y->line ? -1 : x->line > y->line;
}

/* dry: only check (so that without skip_bad a bad pair stops the import before any item of the
 * file is written). */
static int s2sb_pairs(s2s_importer *im, s2sb_ctx *ctx, const char *name, int dry, s2s_err *err) {
    for (size_t i = 0; i < ctx->n;) {
        story_rec *a = &ctx->recs[i], *b = i + 1 < ctx->n ? &ctx->recs[i + 1] : NULL;
        if (b && b->num == a->num)
            return s2s_err_set(err, S2S_EDATA,
                               "%s:%ld: duplicate uttid number %lld (first at line %ld)", name,
                               b->line, b->num, a->line);
        if (a->num % 2 != 0 || !b || b->num != a->num + 1) {
            if (a->num % 2 != 0)
                s2s_err_set(err, S2S_EDATA,
                            "%s:%ld: uttid %lld (odd: a wrong ending) has no right ending uttid "
                            "%lld before it (the file has %zu story records%s)",
                            name, a->line, a->num, a->num - 1, ctx->n,
                            ctx->n % 2 ? ", an odd number" : "");
            else
                s2s_err_set(err, S2S_EDATA,
                            "%s:%ld: uttid %lld (even: a right ending) has no wrong ending uttid "
                            "%lld after it (the file has %zu story records%s)",
                            name, a->line, a->num, a->num + 1, ctx->n,
                            ctx->n % 2 ? ", an odd number" : "");
            int rc = dry ? err->code : row_bad(im, err);
            if (rc < 0) return rc;
            i++;
            continue;
        }
        i += 2;
        const char *fa = json_string_value(json_object_get(a->obj, "first"));
        const char *fb = json_string_value(json_object_get(b->obj, "first"));
        if (strcmp(fa, fb) != 0) {
            s2s_err_set(err, S2S_EDATA,
                        "%s:%ld: uttid %lld (right, line %ld) and uttid %lld (wrong, line %ld) "
                        "have different contexts (\"first\"): not a pair",
                        name, b->line, a->num, a->line, b->num, b->line);
            int rc = dry ? err->code : row_bad(im, err);
            if (rc < 0) return rc;
            continue;
        }
        if (dry) continue;
        json_t *ua = get_uttid(a->obj), *ub = get_uttid(b->obj);
        char buf[32], id[400];
        snprintf(id, sizeof id, "%s_%s", im->prefix, uttid_text(ua, buf, sizeof buf));
        id_sanitize(id + strlen(im->prefix));
        json_t *item = json_pack(
            "{s:s, s:s, s:s, s:s, s:{s:o}, s:[{s:o, s:i, s:O}, {s:o, s:i, s:O}], s:{s:s, s:s, "
            "s:I}}",
            "id", id, "task", "cloze", "lang", im->lang ? im->lang : guess_lang(fa), "category",
            "storycloze", "context", "text", trimmed(fa), "candidates", "text",
            trimmed(json_string_value(json_object_get(a->obj, "last"))), "label", 1, "uttid", ua,
            "text", trimmed(json_string_value(json_object_get(b->obj, "last"))), "label", 0,
            "uttid", ub, "source", "format", "s2sbench", "file", base_name(name), "line",
            (json_int_t)a->line);
        int rc = emit(im, item, name, a->line, err);
        if (rc < 0) return rc;
    }
    return 0;
}

static long import_s2sbench(s2s_importer *im, const char *path, s2s_err *err) {
    s2sb_ctx ctx = {0};
    long nrec;
    long rc = each_json_line(im, path, s2sb_line, &ctx, &nrec, err);
    if (rc >= 0) {
        if (ctx.n) qsort(ctx.recs, ctx.n, sizeof *ctx.recs, cmp_rec);
        if (!im->skip_bad) rc = s2sb_pairs(im, &ctx, display_name(path), 1, err);
        if (rc >= 0) rc = s2sb_pairs(im, &ctx, display_name(path), 0, err);
    }
    for (size_t i = 0; i < ctx.n; i++)
        json_decref(ctx.recs[i].obj);
    free(ctx.recs);
    return rc;
}

/* ---- dispatch ------------------------------------------------------------------------------- */

long s2s_importer_file(s2s_importer *im, const char *path, s2s_err *err) {
    s2s_err_clear(err);
    im->file_count = 0;
    struct stat st;
    int is_dir = strcmp(path, "-") != 0 && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    if (strcmp(path, "-") != 0 && !is_dir && access(path, R_OK) != 0)
        return s2s_err_errno(err, "%s: cannot open", path);
    if (strcmp(path, "-") != 0 && stat(path, &st) == 0) {
        /* The same file twice would only give duplicate ids: say so plainly. */
        char key[64];
        snprintf(key, sizeof key, "%llu:%llu", (unsigned long long)st.st_dev,
                 (unsigned long long)st.st_ino);
        const char *prev = json_string_value(json_object_get(im->files, key));
        if (prev) return s2s_err_set(err, S2S_EINVAL, "%s: named twice (also as %s)", path, prev);
        if (json_object_set_new(im->files, key, json_string(path)) < 0) return oom(err);
    }
    if (is_dir && im->fmt != FMT_CMMLU)
        return s2s_err_set(err, S2S_EINVAL,
                           "%s: is a directory (only cmmlu imports a directory of CSVs)", path);
    long rc;
    long nrec;
    switch (im->fmt) {
    case FMT_STORYCLOZE:
        rc = import_storycloze(im, path, err);
        break;
    case FMT_CMMLU:
        rc = is_dir ? import_cmmlu_dir(im, path, err) : import_cmmlu_file(im, path, err);
        break;
    case FMT_S2SBENCH:
        rc = import_s2sbench(im, path, err);
        break;
    default:
        rc = each_json_line(im, path, items_line, NULL, &nrec, err);
        break;
    }
    return rc < 0 ? rc : im->file_count;
}
