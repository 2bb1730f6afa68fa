/* build.c — resumable builds: shard moves, the journal, dataset.json assembly (s2s/build.h). */
#include "s2s/build.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "s2s/util.h"

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static char *idx_path(const char *shard) {
    size_t n = strlen(shard) + 5;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s.idx", shard);
    return p;
}

int s2s_build_move_shard(const char *staged, const char *final, char idx_sha[65], s2s_err *err) {
    char *sidx = idx_path(staged), *fidx = idx_path(final);
    unsigned char *data = NULL;
    size_t len = 0;
    int rc = 0;
    if (!sidx || !fidx) {
        rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = s2s_read_file(sidx, &data, &len, err)) < 0) goto out;
    /* line 1 "s2s-shard-index 1", line 2 "shard<TAB>BASE<TAB>SIZE<TAB>SHA" (shard-index.md) */
    static const char magic[] = "s2s-shard-index 1\nshard\t";
    const char *sb = base_name(staged);
    size_t ml = strlen(magic), bl = strlen(sb);
    if (len < ml + bl + 1 || memcmp(data, magic, ml) != 0 || memcmp(data + ml, sb, bl) != 0 ||
        data[ml + bl] != '\t') {
        rc = s2s_err_set(err, S2S_EFORMAT,
                         "%s: does not start with the index header naming %s (shard-index.md)",
                         sidx, sb);
        goto out;
    }
    s2s_ofile *of = s2s_ofile_open(fidx, err);
    if (!of) {
        rc = err->code;
        goto out;
    }
    FILE *f = s2s_ofile_fp(of);
    const char *fb = base_name(final);
    size_t rest = len - ml - bl;
    if (fwrite(data, 1, ml, f) != ml || fputs(fb, f) == EOF ||
        fwrite(data + ml + bl, 1, rest, f) != rest) {
        s2s_ofile_abort(of);
        rc = s2s_err_errno(err, "%s: write failed", fidx);
        goto out;
    }
    if ((rc = s2s_ofile_commit(of, err)) < 0) goto out;
    if (rename(staged, final) != 0) {
        rc = s2s_err_errno(err, "rename %s -> %s", staged, final);
        unlink(fidx);
        goto out;
    }
    unlink(sidx);
    rc = s2s_sha256_file(fidx, idx_sha, err);
out:
    free(data);
    free(sidx);
    free(fidx);
    return rc < 0 ? rc : 0;
}

/* ---- journal ------------------------------------------------------------------------------- */
struct s2s_journal {
    char *path;
    int fd;
    json_t *records;
};

void s2s_journal_close(s2s_journal *j) {
    if (!j) return;
    if (j->fd >= 0) close(j->fd);
    json_decref(j->records);
    free(j->path);
    free(j);
}

static int write_line(int fd, const json_t *v, const char *path, s2s_err *err) {
    char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!s) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    size_t n = strlen(s);
    s[n] = '\n'; /* json_dumps leaves room for the NUL: the newline replaces it */
    size_t off = 0;
    while (off < n + 1) {
        ssize_t w = write(fd, s + off, n + 1 - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            free(s);
            return s2s_err_errno(err, "%s: write failed", path);
        }
        off += (size_t)w;
    }
    free(s);
    if (fdatasync(fd) != 0) return s2s_err_errno(err, "%s: fdatasync", path);
    return 0;
}

/* First key whose value differs between two objects (either side), or NULL. */
static const char *first_diff(const json_t *a, const json_t *b) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)a, k, v) if (!json_equal(v, json_object_get(b, k))) return k;
    json_object_foreach((json_t *)b, k, v) if (!json_object_get(a, k)) return k;
    return NULL;
}

s2s_journal *s2s_journal_open(const char *path, const json_t *header, int *resumed, s2s_err *err) {
    s2s_journal *j = calloc(1, sizeof *j);
    if (!j || !(j->path = strdup(path)) || !(j->records = json_array())) {
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        s2s_journal_close(j);
        return NULL;
    }
    j->fd = -1;
    *resumed = 0;
    if (access(path, F_OK) == 0) {
        unsigned char *data;
        size_t len;
        if (s2s_read_file(path, &data, &len, err) < 0) {
            s2s_journal_close(j);
            return NULL;
        }
        char *cur = (char *)data;
        long line = 0;
        int rc = 0;
        while (rc == 0 && *cur) {
            char *nl = strchr(cur, '\n');
            if (!nl) break; /* torn last line: the writer died while appending it */
            *nl = 0;
            line++;
            json_error_t je;
            json_t *v = json_loads(cur, JSON_REJECT_DUPLICATES, &je);
            if (!json_is_object(v)) {
                rc = s2s_err_set(err, S2S_EFORMAT, "%s:%ld: not a journal record: %s", path, line,
                                 v ? "not an object" : je.text);
            } else if (line == 1) {
                const char *k = first_diff(header, v);
                if (k) {
                    char *was = json_dumps(json_object_get(v, k), JSON_ENCODE_ANY | JSON_COMPACT);
                    char *now =
                        json_dumps(json_object_get(header, k), JSON_ENCODE_ANY | JSON_COMPACT);
                    rc = s2s_err_set(err, S2S_EINVAL,
                                     "%s: the interrupted build had %s %s, this one has %s", path,
                                     k, was ? was : "(none)", now ? now : "(none)");
                    free(was), free(now);
                }
            } else {
                json_array_append(j->records, v);
            }
            json_decref(v);
            cur = nl + 1;
        }
        free(data);
        if (rc == 0 && line == 0)
            rc = s2s_err_set(err, S2S_EFORMAT, "%s: empty journal (no header line)", path);
        if (rc < 0) {
            s2s_journal_close(j);
            return NULL;
        }
        *resumed = 1;
        /* drop a torn last line so that appends start on a line of their own */
        if (truncate(path, (off_t)(cur - (char *)data)) != 0) {
            s2s_err_errno(err, "%s: truncate", path);
            s2s_journal_close(j);
            return NULL;
        }
    }
    j->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (j->fd < 0) {
        s2s_err_errno(err, "%s", path);
        s2s_journal_close(j);
        return NULL;
    }
    if (!*resumed && write_line(j->fd, header, path, err) < 0) {
        s2s_journal_close(j);
        return NULL;
    }
    return j;
}

int s2s_journal_append(s2s_journal *j, const json_t *rec, s2s_err *err) {
    int rc = write_line(j->fd, rec, j->path, err);
    if (rc == 0 && json_array_append(j->records, (json_t *)rec) != 0)
        rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
    return rc;
}

const json_t *s2s_journal_find(const s2s_journal *j, const char *key, long long n) {
    for (size_t i = json_array_size(j->records); i-- > 0;) {
        json_t *r = json_array_get(j->records, i), *v = json_object_get(r, key);
        if (v && (n < 0 || (json_is_integer(v) && json_integer_value(v) == n))) return r;
    }
    return NULL;
}

/* ---- dataset.json -------------------------------------------------------------------------- */
static int add_int(json_t *obj, const char *key, const json_t *from) {
    json_int_t a = json_integer_value(json_object_get(obj, key));
    json_int_t b = json_integer_value(json_object_get(from, key));
    return json_object_set_new(obj, key, json_integer(a + b));
}

/* equal provenance records, "samples" aside */
static int same_record(const json_t *a, const json_t *b) {
    if (json_object_size(a) != json_object_size(b)) return 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)a, k, v) {
        if (strcmp(k, "samples") == 0) continue;
        json_t *w = json_object_get(b, k);
        if (!w || !json_equal(v, w)) return 0;
    }
    return 1;
}

json_t *s2s_build_dataset(json_t *const *chunks, size_t n, s2s_err *err) {
    if (n == 0) {
        s2s_err_set(err, S2S_EINVAL, "no chunk to assemble");
        return NULL;
    }
    json_t *counts = json_object(), *shards = json_array(), *prov = json_array();
    json_t *tot = json_pack("{s:I, s:I, s:I, s:I}", "shard_count", (json_int_t)0, "samples",
                            (json_int_t)0, "members", (json_int_t)0, "pairs", (json_int_t)0);
    json_t *ds = NULL;
    int bad = !counts || !shards || !prov || !tot;
    for (size_t c = 0; !bad && c < n; c++) {
        const json_t *ch = chunks[c];
        const char *fmt = json_string_value(json_object_get(ch, "format"));
        if (!fmt || strcmp(fmt, "s2s-shards") != 0) {
            s2s_err_set(err, S2S_EFORMAT, "chunk %zu: not an s2s-shards dataset.json", c);
            goto fail;
        }
        bad |= add_int(tot, "shard_count", ch) || add_int(tot, "samples", ch) ||
               add_int(tot, "members", ch) || add_int(tot, "pairs", ch);
        const char *task, *lang;
        json_t *tl, *cnt;
        json_object_foreach(json_object_get(ch, "counts"), task, tl) {
            json_t *t = json_object_get(counts, task);
            if (!t && (!(t = json_object()) || json_object_set_new(counts, task, t) != 0)) bad = 1;
            json_object_foreach(tl, lang, cnt) {
                json_t *l = json_object_get(t, lang);
                if (!l) {
                    l = json_pack("{s:I, s:I}", "samples", (json_int_t)0, "pairs", (json_int_t)0);
                    if (!l || json_object_set_new(t, lang, l) != 0) bad = 1;
                }
                if (!bad) bad |= add_int(l, "samples", cnt) || add_int(l, "pairs", cnt);
            }
        }
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(ch, "shards"), i, v) bad |=
            json_array_append(shards, v) != 0;
        json_array_foreach(json_object_get(ch, "provenance"), i, v) {
            json_t *hit = NULL, *r;
            size_t k;
            json_array_foreach(prov, k, r) if (!hit && same_record(r, v)) hit = r;
            if (hit)
                bad |= add_int(hit, "samples", v);
            else if (json_array_size(prov) < 256)
                bad |= json_array_append_new(prov, json_deep_copy(v)) != 0;
        }
    }
    if (bad) goto nomem;
    ds = json_pack("{s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O}", "format",
                   json_object_get(chunks[0], "format"), "format_version",
                   json_object_get(chunks[0], "format_version"), "shard_count",
                   json_object_get(tot, "shard_count"), "samples", json_object_get(tot, "samples"),
                   "members", json_object_get(tot, "members"), "pairs",
                   json_object_get(tot, "pairs"), "counts", counts, "shards", shards, "build",
                   json_object_get(chunks[0], "build"), "provenance", prov);
    if (!ds) goto nomem;
    json_decref(counts), json_decref(shards), json_decref(prov), json_decref(tot);
    return ds;
nomem:
    s2s_err_set(err, S2S_ENOMEM, "out of memory (or a chunk's dataset.json lacks a key)");
fail:
    json_decref(counts), json_decref(shards), json_decref(prov), json_decref(tot);
    return NULL;
}
