/* sample.c — samples, and the reader/writer of the stream between tools (s2s/sample.h). */
#include "s2s/sample.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "s2s/item.h"
#include "s2s/tar.h"

/* ---- samples -------------------------------------------------------------------------------- */
s2s_sample *s2s_sample_new(const char *key, s2s_err *err) {
    s2s_sample *s = calloc(1, sizeof *s);
    if (!s || !(s->key = strdup(key))) {
        free(s);
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        return NULL;
    }
    return s;
}

void s2s_sample_free(s2s_sample *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n_members; i++) {
        free(s->members[i].suffix);
        free(s->members[i].data);
    }
    free(s->members);
    json_decref(s->item);
    free(s->key);
    free(s->origin);
    free(s);
}

s2s_member *s2s_sample_get(const s2s_sample *s, const char *suffix) {
    for (size_t i = 0; i < s->n_members; i++)
        if (strcmp(s->members[i].suffix, suffix) == 0) return &s->members[i];
    return NULL;
}

int s2s_sample_put(s2s_sample *s, const char *suffix, unsigned char *data, size_t size,
                   s2s_err *err) {
    s2s_member *m = s2s_sample_get(s, suffix);
    if (m) {
        free(m->data);
        m->data = data;
        m->size = size;
        return 0;
    }
    if (s->n_members == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 8;
        s2s_member *p = realloc(s->members, cap * sizeof *p);
        if (!p) {
            free(data);
            return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        }
        s->members = p;
        s->cap = cap;
    }
    char *sfx = strdup(suffix);
    if (!sfx) {
        free(data);
        return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    }
    s2s_member *nm = &s->members[s->n_members++];
    nm->suffix = sfx; /* stored field by field: cppcheck loses track of a compound literal */
    nm->data = data;
    nm->size = size;
    return 0;
}

int s2s_sample_put_copy(s2s_sample *s, const char *suffix, const void *data, size_t size,
                        s2s_err *err) {
    unsigned char *p = malloc(size + 1);
    if (!p) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    if (size) memcpy(p, data, size);
    p[size] = 0;
    return s2s_sample_put(s, suffix, p, size, err);
}

int s2s_sample_remove(s2s_sample *s, const char *suffix) {
    s2s_member *m = s2s_sample_get(s, suffix);
    if (!m) return 0;
    free(m->suffix);
    free(m->data);
    size_t i = (size_t)(m - s->members);
    memmove(m, m + 1, (s->n_members - i - 1) * sizeof *m);
    s->n_members--;
    return 1;
}

/* ---- gzip members --------------------------------------------------------------------------- */
int s2s_gunzip_member(const unsigned char *in, size_t n, unsigned char **out, size_t *outn,
               const char *where, s2s_err *err) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return s2s_err_set(err, S2S_ENOMEM, "zlib init");
    s2s_buf b = {0};
    z.next_in = (unsigned char *)in;
    z.avail_in = (uInt)n;
    int zr = Z_OK, rc = 0;
    while (zr != Z_STREAM_END) {
        if ((rc = s2s_buf_reserve(&b, 65536, err))) break;
        z.next_out = b.data + b.len;
        z.avail_out = 65536;
        zr = inflate(&z, Z_NO_FLUSH);
        b.len += 65536 - z.avail_out;
        if (zr == Z_STREAM_END) break;
        if (zr != Z_OK || (z.avail_in == 0 && z.avail_out != 0)) {
            rc = s2s_err_set(err, S2S_EFORMAT, "%s: gzip data is corrupt or truncated (%s)", where,
                             z.msg ? z.msg : "unexpected end");
            break;
        }
    }
    if (rc == 0 && z.avail_in != 0)
        rc = s2s_err_set(err, S2S_EFORMAT, "%s: %u bytes of trailing data after the gzip stream",
                         where, z.avail_in);
    inflateEnd(&z);
    if (rc) {
        s2s_buf_free(&b);
        return rc;
    }
    if ((rc = s2s_buf_reserve(&b, 0, err))) {
        s2s_buf_free(&b);
        return rc;
    }
    b.data[b.len] = 0;
    *out = s2s_buf_steal(&b, outn);
    return 0;
}

/* ---- reader --------------------------------------------------------------------------------- */
struct s2s_reader {
    char **paths;
    size_t n_paths, cur; /* cur = index of the open input */
    int flags;
    s2s_part part;
    FILE *fp;
    int owns_fp;
    const char *name; /* display name of the current input */
    int fmt;          /* of the current input */
    int last_fmt;
    long line;
    char *linebuf;
    size_t linecap;
    s2s_tar_reader *tar;
    s2s_sample *pending; /* tar: sample being assembled */
    int tar_done;
    s2s_idset *seen;
    uint64_t count, skipped;
};

s2s_reader *s2s_reader_open(const char *const *paths, size_t n, int flags, s2s_err *err) {
    s2s_reader *r = calloc(1, sizeof *r);
    if (!r) goto nomem;
    r->flags = flags;
    r->part.count = 1;
    r->cur = (size_t)-1;
    size_t np = n ? n : 1;
    if (!(r->paths = calloc(np, sizeof *r->paths))) goto nomem;
    r->n_paths = np;
    for (size_t i = 0; i < np; i++)
        if (!(r->paths[i] = strdup(n ? paths[i] : "-"))) goto nomem;
    if (!(r->seen = s2s_idset_new())) goto nomem;
    return r;
nomem:
    s2s_reader_close(r);
    s2s_err_set(err, S2S_ENOMEM, "out of memory");
    return NULL;
}

void s2s_reader_set_part(s2s_reader *r, const s2s_part *part) {
    r->part = *part;
}

int s2s_reader_format(const s2s_reader *r) {
    return r->fmt ? r->fmt : r->last_fmt;
}

uint64_t s2s_reader_count(const s2s_reader *r) {
    return r->count;
}

uint64_t s2s_reader_skipped(const s2s_reader *r) {
    return r->skipped;
}

static void close_input(s2s_reader *r) {
    s2s_tar_reader_free(r->tar);
    r->tar = NULL;
    s2s_sample_free(r->pending);
    r->pending = NULL;
    if (r->fp && r->owns_fp) fclose(r->fp);
    r->fp = NULL;
    if (r->fmt) r->last_fmt = r->fmt;
    r->fmt = 0;
}

void s2s_reader_close(s2s_reader *r) {
    if (!r) return;
    close_input(r);
    for (size_t i = 0; r->paths && i < r->n_paths; i++)
        free(r->paths[i]);
    free(r->paths);
    free(r->linebuf);
    s2s_idset_free(r->seen);
    free(r);
}

/* Opens input r->cur and detects its format from the first byte: '{' (after optional blanks or
 * a BOM) means JSON lines, anything else a tar stream. Returns 0, or 1 if it is empty. */
static int open_input(s2s_reader *r, s2s_err *err) {
    const char *p = r->paths[r->cur];
    if (strcmp(p, "-") == 0) {
        r->fp = stdin;
        r->owns_fp = 0;
        r->name = "<stdin>";
    } else {
        if (!(r->fp = fopen(p, "rb"))) return s2s_err_errno(err, "%s: cannot open", p);
        r->owns_fp = 1;
        r->name = p;
    }
    r->line = 0;
    r->tar_done = 0;
    int c = getc(r->fp);
    if (c == EOF) {
        if (ferror(r->fp)) return s2s_err_errno(err, "%s: read failed", r->name);
        return s2s_err_set(err, S2S_EFORMAT,
                           "%s: empty input: no items and no tar stream (did the previous tool "
                           "fail?)",
                           r->name);
    }
    ungetc(c, r->fp);
    if (c == '{' || c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == 0xEF) {
        r->fmt = S2S_FMT_JSONL;
    } else {
        r->fmt = S2S_FMT_TAR;
        if (!(r->tar = s2s_tar_reader_new(r->fp, r->name, err)))
            return err ? err->code : S2S_ENOMEM;
        s2s_tar_reader_set_lenient(r->tar, (r->flags & S2S_READ_LENIENT_END) != 0);
    }
    return 0;
}

/* Checks that the key is new, parses/validates the item. Takes s. */
static int finish_sample(s2s_reader *r, s2s_sample *s, s2s_sample **out, s2s_err *err) {
    int rc;
    if (r->fmt == S2S_FMT_TAR) {
        s2s_member *m = s2s_sample_get(s, "json");
        if (m) {
            json_error_t je;
            s->item = json_loadb((const char *)m->data, m->size, JSON_REJECT_DUPLICATES, &je);
            if (!s->item) {
                rc = s2s_err_set(
                    err, S2S_EFORMAT,
                    "%s: sample %s: member %s.json: invalid JSON: %s (line %d, column %d)", r->name,
                    s->key, s->key, je.text, je.line, je.column);
                goto fail;
            }
            s2s_sample_remove(s, "json");
        } else if (!(r->flags & S2S_READ_RAW)) {
            rc = s2s_err_set(err, S2S_EFORMAT, "%s: sample %s has no %s.json member", r->name,
                             s->key, s->key);
            goto fail;
        }
        if (!(s->origin = strdup(r->name))) goto nomem;
    }
    if (s->item && !(r->flags & S2S_READ_NO_VALIDATE)) {
        if ((rc = s2s_item_validate(s->item, err)) != 0) {
            if (r->fmt == S2S_FMT_JSONL)
                s2s_err_prefix(err, "%s:%ld: ", r->name, r->line);
            else
                s2s_err_prefix(err, "%s: sample %s: ", r->name, s->key);
            goto fail;
        }
    }
    if (s->item && r->fmt == S2S_FMT_TAR) {
        const char *id = s2s_item_id(s->item);
        if (id && strcmp(id, s->key) != 0 && !(r->flags & S2S_READ_NO_VALIDATE)) {
            rc = s2s_err_set(err, S2S_EDATA, "%s: sample %s: its %s.json has id \"%s\"", r->name,
                             s->key, s->key, id);
            goto fail;
        }
    }
    int added = s2s_idset_add(r->seen, s->key);
    if (added < 0) goto nomem;
    if (added == 0) {
        if (r->fmt == S2S_FMT_JSONL)
            rc = s2s_err_set(err, S2S_EDATA, "%s:%ld: duplicate id %s", r->name, r->line, s->key);
        else
            rc = s2s_err_set(err, S2S_EDATA,
                             "%s: sample %s appears twice (duplicate id, or its members are not "
                             "contiguous: sample split)",
                             r->name, s->key);
        goto fail;
    }
    if (!s2s_part_keep(&r->part, s->key)) {
        r->skipped++;
        s2s_sample_free(s);
        return 0;
    }
    r->count++;
    *out = s;
    return 1;
nomem:
    rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
fail:
    s2s_sample_free(s);
    return rc;
}

static int next_jsonl(s2s_reader *r, s2s_sample **out, s2s_err *err) {
    for (;;) {
        errno = 0;
        ssize_t len = getline(&r->linebuf, &r->linecap, r->fp);
        if (len < 0) {
            if (ferror(r->fp)) return s2s_err_errno(err, "%s: read failed", r->name);
            return 0;
        }
        r->line++;
        char *p = r->linebuf;
        if (r->line == 1 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB &&
            (unsigned char)p[2] == 0xBF)
            p += 3, len -= 3;
        if ((size_t)len != strlen(p))
            return s2s_err_set(err, S2S_EFORMAT, "%s:%ld: NUL byte in a JSON line", r->name,
                               r->line);
        char *q = p;
        while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
            q++;
        if (!*q) continue; /* blank line */
        json_error_t je;
        json_t *item = json_loads(p, JSON_REJECT_DUPLICATES, &je);
        if (!item)
            return s2s_err_set(err, S2S_EFORMAT, "%s:%ld: invalid JSON: %s (column %d)", r->name,
                               r->line, je.text, je.column);
        const char *id = json_is_object(item) ? s2s_item_id(item) : NULL;
        if (!id) {
            int is_obj = json_is_object(item);
            json_decref(item);
            return s2s_err_set(err, S2S_EDATA, "%s:%ld: %s", r->name, r->line,
                               is_obj ? "missing or non-string field \"id\""
                                      : "item is not a JSON object");
        }
        s2s_sample *s = s2s_sample_new(id, err);
        if (!s) {
            json_decref(item);
            return S2S_ENOMEM;
        }
        s->item = item;
        char where[64];
        snprintf(where, sizeof where, ":%ld", r->line);
        size_t nl = strlen(r->name) + strlen(where) + 1;
        if (!(s->origin = malloc(nl))) {
            s2s_sample_free(s);
            return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        }
        snprintf(s->origin, nl, "%s%s", r->name, where);
        int rc = finish_sample(r, s, out, err);
        if (rc != 0) return rc;
    }
}

static int next_tar(s2s_reader *r, s2s_sample **out, s2s_err *err) {
    for (;;) {
        if (r->tar_done) {
            if (!r->pending) return 0;
            s2s_sample *s = r->pending;
            r->pending = NULL;
            int rc = finish_sample(r, s, out, err);
            if (rc != 0) return rc;
            continue;
        }
        s2s_tar_entry *e;
        int rc = s2s_tar_next(r->tar, &e, err);
        if (rc < 0) return rc;
        if (rc == 0) {
            r->tar_done = 1;
            continue;
        }
        const char *base = strrchr(e->name, '/');
        base = base ? base + 1 : e->name;
        const char *dot = strchr(base, '.');
        if (!dot || dot == base || !dot[1])
            return s2s_err_set(err, S2S_EFORMAT,
                               "%s: member '%s' at byte %llu is not named KEY.SUFFIX (WebDataset "
                               "naming)",
                               r->name, e->name, (unsigned long long)e->hdr_off);
        size_t klen = (size_t)(dot - e->name);
        char *key = strndup(e->name, klen);
        char *suffix = strdup(dot + 1);
        if (!key || !suffix) {
            free(key), free(suffix);
            return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        }
        unsigned char *data;
        size_t size;
        char member[512];
        snprintf(member, sizeof member, "%s", e->name);
        if ((rc = s2s_tar_read_data(r->tar, &data, &size, err)) != 0) {
            free(key), free(suffix);
            return rc;
        }
        size_t sl = strlen(suffix);
        if (!(r->flags & S2S_READ_KEEP_GZ) && sl > 3 && strcmp(suffix + sl - 3, ".gz") == 0) {
            unsigned char *plain = NULL;
            size_t pn = 0;
            char where[600];
            snprintf(where, sizeof where, "%s: member %s", r->name, member);
            rc = s2s_gunzip_member(data, size, &plain, &pn, where, err);
            free(data);
            if (rc) {
                free(key), free(suffix);
                return rc;
            }
            data = plain, size = pn;
            suffix[sl - 3] = 0;
        }
        s2s_sample *done = NULL;
        if (r->pending && strcmp(r->pending->key, key) != 0) {
            done = r->pending;
            r->pending = NULL;
        }
        if (!r->pending) {
            if (s2s_idset_has(r->seen, key) || (done && strcmp(done->key, key) == 0)) {
                rc = s2s_err_set(err, S2S_EDATA,
                                 "%s: member '%s': sample %s appeared before (duplicate id, or its "
                                 "members are not contiguous: sample split)",
                                 r->name, member, key);
                free(key), free(suffix), free(data);
                s2s_sample_free(done);
                return rc;
            }
            if (!(r->pending = s2s_sample_new(key, err))) {
                free(key), free(suffix), free(data);
                s2s_sample_free(done);
                return S2S_ENOMEM;
            }
        }
        if (s2s_sample_get(r->pending, suffix)) {
            rc = s2s_err_set(err, S2S_EDATA, "%s: member '%s' appears twice in sample %s", r->name,
                             member, key);
            free(key), free(suffix), free(data);
            s2s_sample_free(done);
            return rc;
        }
        rc = s2s_sample_put(r->pending, suffix, data, size, err);
        free(key), free(suffix);
        if (rc) {
            s2s_sample_free(done);
            return rc;
        }
        if (done) {
            rc = finish_sample(r, done, out, err);
            if (rc != 0) return rc;
        }
    }
}

int s2s_reader_next(s2s_reader *r, s2s_sample **out, s2s_err *err) {
    *out = NULL;
    for (;;) {
        if (!r->fp) {
            if (r->cur != (size_t)-1 && r->cur + 1 >= r->n_paths) return 0;
            r->cur = r->cur == (size_t)-1 ? 0 : r->cur + 1;
            int rc = open_input(r, err);
            if (rc < 0) return rc;
        }
        int rc = r->fmt == S2S_FMT_JSONL ? next_jsonl(r, out, err) : next_tar(r, out, err);
        if (rc != 0) return rc;
        close_input(r);
        if (r->cur + 1 >= r->n_paths) return 0;
    }
}

/* ---- writer --------------------------------------------------------------------------------- */
struct s2s_writer {
    s2s_ofile *of;
    s2s_tar_writer *tar;
    int format;
};

s2s_writer *s2s_writer_open(const char *path, int format, s2s_err *err) {
    if (format != S2S_FMT_TAR && format != S2S_FMT_JSONL) {
        s2s_err_set(err, S2S_EINVAL, "unknown output format %d", format);
        return NULL;
    }
    s2s_writer *w = calloc(1, sizeof *w);
    if (!w) {
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        return NULL;
    }
    w->format = format;
    if (!(w->of = s2s_ofile_open(path, err))) {
        free(w);
        return NULL;
    }
    if (format == S2S_FMT_TAR &&
        !(w->tar = s2s_tar_writer_new(s2s_ofile_fp(w->of), s2s_ofile_path(w->of), err))) {
        s2s_ofile_abort(w->of);
        free(w);
        return NULL;
    }
    return w;
}

int s2s_writer_put(s2s_writer *w, const s2s_sample *s, s2s_err *err) {
    if (!s->item) return s2s_err_set(err, S2S_EINVAL, "sample %s has no item", s->key);
    if (w->format == S2S_FMT_JSONL) {
        int rc = s2s_item_write(s2s_ofile_fp(w->of), s->item, err);
        if (rc) s2s_err_prefix(err, "%s: ", s2s_ofile_path(w->of));
        return rc;
    }
    char *js = s2s_item_dumps(s->item);
    if (!js) return s2s_err_set(err, S2S_ENOMEM, "cannot serialise item %s", s->key);
    size_t jl = strlen(js);
    js[jl] = 0;
    size_t kl = strlen(s->key);
    char *name = malloc(kl + 1 + 256);
    if (!name) {
        free(js);
        return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    }
    snprintf(name, kl + 256, "%s.json", s->key);
    /* one line of JSON plus a newline, as in a JSON-lines file */
    char *line = malloc(jl + 2);
    int rc = 0;
    if (!line) rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
    if (!rc) {
        memcpy(line, js, jl);
        line[jl] = '\n';
        rc = s2s_tar_write(w->tar, name, line, jl + 1, NULL, NULL, err);
    }
    free(line);
    free(js);
    for (size_t i = 0; rc == 0 && i < s->n_members; i++) {
        size_t need = kl + 2 + strlen(s->members[i].suffix);
        char *nn = realloc(name, need);
        if (!nn) {
            rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
            break;
        }
        name = nn;
        snprintf(name, need, "%s.%s", s->key, s->members[i].suffix);
        rc = s2s_tar_write(w->tar, name, s->members[i].data, s->members[i].size, NULL, NULL, err);
    }
    free(name);
    return rc;
}

int s2s_writer_close(s2s_writer *w, s2s_err *err) {
    int rc = 0;
    if (w->tar) {
        rc = s2s_tar_writer_finish(w->tar, err);
        w->tar = NULL;
    }
    if (rc) {
        s2s_ofile_abort(w->of);
    } else {
        rc = s2s_ofile_commit(w->of, err);
    }
    free(w);
    return rc;
}

void s2s_writer_abort(s2s_writer *w) {
    if (!w) return;
    s2s_tar_writer_free(w->tar);
    s2s_ofile_abort(w->of);
    free(w);
}
