/* merge.c — combining the parts of a dataset built with --shard I/N (s2s/merge.h,
 * docs/fanout.md). */
#define _GNU_SOURCE /* strndup */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "s2s/err.h"
#include "s2s/item.h"
#include "s2s/merge.h"
#include "s2s/shard.h"
#include "s2s/util.h"

#define MAX_PROVENANCE 256 /* as s2s-pack: at most this many distinct records listed */

typedef struct mpart {
    const char *dir;
    json_t *ds;       /* its dataset.json */
    char ds_sha[65];  /* SHA-256 of the dataset.json file */
    s2s_part p;       /* I/N */
    char partstr[48]; /* "I/N" */
} mpart;

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int stopped(const s2s_merge_opts *o, s2s_err *err) {
    return o && o->stop && *o->stop ? s2s_err_set(err, S2S_EINTR, "interrupted") : 0;
}

/* Compact JSON of a value for messages, cut to fit. */
static void show(const json_t *v, char *buf, size_t n) {
    if (!v) {
        snprintf(buf, n, "(none)");
        return;
    }
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    snprintf(buf, n, "%s", s ? s : "?");
    if (s && strlen(s) >= n && n > 4) memcpy(buf + n - 4, "...", 4);
    free(s);
}

/* The part "I/N" a dataset.json records: recipe.part (s2s-build --shard), else
 * build.params.part (s2s-pack --shard); NULL when it is not a part. */
static const char *part_of(const json_t *ds) {
    const char *p = json_string_value(json_object_get(json_object_get(ds, "recipe"), "part"));
    if (p) return p;
    return json_string_value(
        json_object_get(json_object_get(json_object_get(ds, "build"), "params"), "part"));
}

static int load_part(const char *dir, mpart *mp, s2s_err *err) {
    memset(mp, 0, sizeof *mp);
    mp->dir = dir;
    char *path = join(dir, "dataset.json");
    if (!path) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    struct stat st;
    int rc = 0;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        rc = s2s_err_set(err, S2S_EINVAL,
                         "%s: not a directory (a part is the -o DIR of "
                         "s2s-build --shard I/N)",
                         dir);
        goto out;
    }
    if (stat(path, &st) != 0) {
        rc = s2s_err_set(err, S2S_EINVAL,
                         "%s: no dataset.json (not a part directory, or its build did not "
                         "finish)",
                         dir);
        goto out;
    }
    if ((rc = s2s_sha256_file(path, mp->ds_sha, err)) < 0) goto out;
    json_error_t je;
    mp->ds = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!mp->ds) {
        rc = s2s_err_set(err, S2S_EFORMAT, "%s:%d: %s", path, je.line, je.text);
        goto out;
    }
    const char *fmt = json_string_value(json_object_get(mp->ds, "format"));
    if (!fmt || strcmp(fmt, "s2s-shards") != 0 ||
        !json_is_array(json_object_get(mp->ds, "shards"))) {
        rc = s2s_err_set(err, S2S_EFORMAT, "%s: not an s2s-shards dataset.json", path);
        goto out;
    }
    if (json_object_get(mp->ds, "merge")) {
        rc = s2s_err_set(err, S2S_EINVAL,
                         "%s: already a merged dataset (its dataset.json records a merge): merge "
                         "the original parts instead",
                         dir);
        goto out;
    }
    const char *ps = part_of(mp->ds);
    if (!ps) {
        rc = s2s_err_set(err, S2S_EINVAL,
                         "%s: not a part: its dataset.json records no part I/N (build parts with "
                         "s2s-build --shard I/N)",
                         dir);
        goto out;
    }
    if (s2s_part_parse(ps, &mp->p, err) < 0) {
        rc = s2s_err_set(err, S2S_EFORMAT, "%s: dataset.json: bad part \"%s\"", dir, ps);
        goto out;
    }
    snprintf(mp->partstr, sizeof mp->partstr, "%u/%u", mp->p.index, mp->p.count);
out:
    free(path);
    return rc;
}

/* Same value of a key in two objects (both missing counts as same). */
static int same_key(const json_t *a, const json_t *b, const char *key) {
    const json_t *x = json_object_get(a, key), *y = json_object_get(b, key);
    if (!x && !y) return 1;
    return x && y && json_equal((json_t *)x, (json_t *)y);
}

/* Checks that part b belongs to the same dataset as the reference part a. */
static int compare_parts(const mpart *a, const mpart *b, s2s_err *err) {
    char x[128], y[128];
    if (a->p.count != b->p.count)
        return s2s_err_set(err, S2S_EDATA,
                           "%s: part %s, but %s is part %s: parts of different splits (every part "
                           "must use the same N)",
                           b->dir, b->partstr, a->dir, a->partstr);
    const json_t *ra = json_object_get(a->ds, "recipe"), *rb = json_object_get(b->ds, "recipe");
    if (!ra != !rb)
        return s2s_err_set(err, S2S_EDATA, "%s: %s a recipe but %s %s", b->dir,
                           rb ? "records" : "does not record", a->dir, ra ? "does" : "does not");
    if (ra && !same_key(ra, rb, "name")) {
        show(json_object_get(rb, "name"), x, sizeof x);
        show(json_object_get(ra, "name"), y, sizeof y);
        return s2s_err_set(err, S2S_EDATA,
                           "%s: recipe %s, but %s is recipe %s: parts of "
                           "different datasets",
                           b->dir, x, a->dir, y);
    }
    if (ra && !same_key(ra, rb, "sha256")) {
        show(json_object_get(rb, "sha256"), x, sizeof x);
        show(json_object_get(ra, "sha256"), y, sizeof y);
        return s2s_err_set(err, S2S_EDATA,
                           "%s: recipe SHA-256 %s, but %s has %s: the parts were built from "
                           "different recipe texts (edited between builds?)",
                           b->dir, x, a->dir, y);
    }
    if (!same_key(a->ds, b->ds, "format_version"))
        return s2s_err_set(err, S2S_EDATA, "%s: format_version differs from %s's", b->dir, a->dir);
    const json_t *ba = json_object_get(a->ds, "build"), *bb = json_object_get(b->ds, "build");
    static const char *bkeys[] = {"tool", "version"};
    for (size_t i = 0; i < 2; i++)
        if (!same_key(ba, bb, bkeys[i])) {
            show(json_object_get(bb, bkeys[i]), x, sizeof x);
            show(json_object_get(ba, bkeys[i]), y, sizeof y);
            return s2s_err_set(err, S2S_EDATA, "%s: packed by %s %s, but %s by %s: %s", b->dir,
                               bkeys[i], x, a->dir, y,
                               "install the same s2sbench version everywhere");
        }
    const json_t *pa = json_object_get(ba, "params"), *pb = json_object_get(bb, "params");
    static const char *pkeys[] = {"per_shard", "max_bytes", "gzip_level", "flac_level"};
    for (size_t i = 0; i < 4; i++)
        if (!same_key(pa, pb, pkeys[i])) {
            show(json_object_get(pb, pkeys[i]), x, sizeof x);
            show(json_object_get(pa, pkeys[i]), y, sizeof y);
            return s2s_err_set(err, S2S_EDATA, "%s: pack parameter %s is %s, but %s has %s", b->dir,
                               pkeys[i], x, a->dir, y);
        }
    return 0;
}

/* Provenance across parts. tools: {TOOL: {"version": V, "part": i, "params": [P...]}}: every
 * record of a tool must have the same version everywhere; for every tool but s2s-import (whose
 * records differ by source file, which the recipe's SHA-256 pins) the parameters too (synthesis
 * engine, seed, rate, codebook hash). merged: the union of the records, samples added up. */
static json_t *record_body(const json_t *r) {
    json_t *c = json_deep_copy(r);
    if (c) json_object_del(c, "samples");
    return c;
}

static int check_provenance(const mpart **parts, size_t pi, json_t *tools, json_t *merged,
                            s2s_err *err) {
    const mpart *mp = parts[pi];
    size_t i;
    json_t *r;
    char x[160], y[160];
    json_array_foreach(json_object_get(mp->ds, "provenance"), i, r) {
        const char *tool = json_string_value(json_object_get(r, "tool"));
        json_t *ver = json_object_get(r, "version"), *params = json_object_get(r, "params");
        if (!tool) continue;
        json_t *t = json_object_get(tools, tool);
        if (!t) {
            t = json_pack("{s:O?, s:I, s:[O?]}", "version", ver, "part", (json_int_t)pi, "params",
                          params);
            if (!t || json_object_set_new(tools, tool, t) != 0)
                return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        } else {
            size_t other = (size_t)json_integer_value(json_object_get(t, "part"));
            json_t *tv = json_object_get(t, "version");
            if (!(tv && ver ? json_equal(tv, ver) : tv == ver)) {
                show(ver, x, sizeof x);
                show(tv, y, sizeof y);
                return s2s_err_set(err, S2S_EDATA,
                                   "%s: samples made by %s version %s, but %s's by version %s: "
                                   "install the same s2sbench version everywhere",
                                   mp->dir, tool, x, parts[other]->dir, y);
            }
            json_t *seen = json_object_get(t, "params");
            int found = 0;
            size_t j;
            json_t *q;
            json_array_foreach(seen, j, q) if ((params && json_equal(q, params)) ||
                                               (!params && json_is_null(q))) found = 1;
            if (!found && other == pi) {
                json_array_append(seen, params ? params : json_null());
            } else if (!found && strcmp(tool, "s2s-import") != 0) {
                /* name the first parameter that differs */
                json_t *ref = json_array_get(seen, 0);
                const char *k = NULL, *key;
                json_t *v;
                json_object_foreach(params, key, v) if (!k && !same_key(params, ref, key)) k = key;
                json_object_foreach(ref, key, v) if (!k && !same_key(params, ref, key)) k = key;
                show(k ? json_object_get(params, k) : params, x, sizeof x);
                show(k ? json_object_get(ref, k) : ref, y, sizeof y);
                if (strcmp(tool, "s2s-tokenize") == 0 && k && strcmp(k, "codebook") == 0)
                    return s2s_err_set(err, S2S_EDATA,
                                       "%s: units from codebook %s, but %s's from codebook %s: "
                                       "every part must use the same codebook file",
                                       mp->dir, x, parts[other]->dir, y);
                return s2s_err_set(err, S2S_EDATA, "%s: %s parameter %s is %s, but %s has %s",
                                   mp->dir, tool, k ? k : "(all)", x, parts[other]->dir, y);
            }
        }
        /* union for the combined dataset.json */
        json_t *body = record_body(r);
        if (!body) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        json_int_t ns = json_integer_value(json_object_get(r, "samples"));
        size_t j;
        json_t *m;
        int hit = 0;
        json_array_foreach(merged, j, m) {
            json_t *mb = record_body(m);
            if (!mb) {
                json_decref(body);
                return s2s_err_set(err, S2S_ENOMEM, "out of memory");
            }
            if (json_equal(mb, body)) {
                json_object_set_new(
                    m, "samples",
                    json_integer(json_integer_value(json_object_get(m, "samples")) + ns));
                hit = 1;
            }
            json_decref(mb);
            if (hit) break;
        }
        if (!hit && json_array_size(merged) < MAX_PROVENANCE) {
            json_object_set_new(body, "samples", json_integer(ns));
            json_array_append(merged, body);
        }
        json_decref(body);
    }
    return 0;
}

/* counts: {TASK: {LANG: {"samples": n, "pairs": p}}} added up in first-seen order */
static int add_counts(json_t *into, const json_t *from, s2s_err *err) {
    const char *task, *lang;
    json_t *t, *l;
    json_object_foreach((json_t *)from, task, t) {
        json_t *dt = json_object_get(into, task);
        if (!dt && json_object_set_new(into, task, dt = json_object()) != 0)
            return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        json_object_foreach(t, lang, l) {
            json_t *dl = json_object_get(dt, lang);
            json_int_t s = json_integer_value(json_object_get(l, "samples"));
            json_int_t p = json_integer_value(json_object_get(l, "pairs"));
            if (dl) {
                s += json_integer_value(json_object_get(dl, "samples"));
                p += json_integer_value(json_object_get(dl, "pairs"));
            }
            if (json_object_set_new(dt, lang, json_pack("{s:I, s:I}", "samples", s, "pairs", p)))
                return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        }
    }
    return 0;
}

/* Which earlier part (index < upto in part order) lists key: for the message only. */
static const mpart *find_key(const mpart **order, size_t upto, const char *key) {
    for (size_t i = 0; i < upto; i++) {
        size_t j;
        json_t *e;
        json_array_foreach(json_object_get(order[i]->ds, "shards"), j, e) {
            const char *iname = json_string_value(json_object_get(e, "index"));
            char *ip = iname ? join(order[i]->dir, iname) : NULL;
            s2s_index *ix = ip ? s2s_index_read(ip, NULL) : NULL;
            free(ip);
            int hit = 0;
            for (size_t k = 0; ix && k < ix->n_samples && !hit; k++)
                hit = strcmp(ix->samples[k].key, key) == 0;
            s2s_index_free(ix);
            if (hit) return order[i];
        }
    }
    return NULL;
}

/* Keys of one (verified) part: none seen in an earlier part, each in the part its id hashes to;
 * shard file names not used by an earlier part. */
static int check_keys(const mpart **order, size_t oi, s2s_idset *keys, json_t *names,
                      s2s_err *err) {
    const mpart *mp = order[oi];
    size_t j;
    json_t *e;
    json_array_foreach(json_object_get(mp->ds, "shards"), j, e) {
        const char *name = json_string_value(json_object_get(e, "name"));
        const char *iname = json_string_value(json_object_get(e, "index"));
        if (!name || !iname)
            return s2s_err_set(err, S2S_EFORMAT, "%s: dataset.json: shard %zu lacks name/index",
                               mp->dir, j);
        json_t *prev = json_object_get(names, name);
        if (prev)
            return s2s_err_set(err, S2S_EDATA,
                               "%s: shard %s has the same name as a shard of %s: give each part "
                               "its own shard names (s2s-build --shard names them "
                               "NAME-pIofN-%%06d.tar)",
                               mp->dir, name, json_string_value(prev));
        if (json_object_set_new(names, name, json_string(mp->dir)) != 0)
            return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        char *ip = join(mp->dir, iname);
        if (!ip) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        s2s_index *ix = s2s_index_read(ip, err);
        free(ip);
        if (!ix) return err ? err->code : S2S_EFORMAT;
        int rc = 0;
        for (size_t k = 0; k < ix->n_samples && rc == 0; k++) {
            const char *key = ix->samples[k].key;
            int added = s2s_idset_add(keys, key);
            if (added < 0) {
                rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
            } else if (added == 0) {
                const mpart *o = find_key(order, oi, key);
                rc = s2s_err_set(err, S2S_EDATA,
                                 "%s: sample %s (shard %s) is also in %s (part %s): an item "
                                 "must be in exactly one part",
                                 mp->dir, key, name, o ? o->dir : "an earlier part",
                                 o ? o->partstr : "?");
            } else if (!s2s_part_keep(&mp->p, key)) {
                unsigned want = (unsigned)(s2s_fnv1a64(key) % mp->p.count);
                rc = s2s_err_set(err, S2S_EDATA,
                                 "%s: sample %s (shard %s) is in part %s, but its id belongs "
                                 "to part %u/%u: not a part made by --shard %s",
                                 mp->dir, key, name, mp->partstr, want, mp->p.count, mp->partstr);
            }
        }
        s2s_index_free(ix);
        if (rc) return rc;
    }
    return 0;
}

/* ---- output ------------------------------------------------------------------------------- */
static int copy_file(const char *src, const char *dst, const char *want_sha, s2s_err *err) {
    FILE *in = fopen(src, "rb");
    if (!in) return s2s_err_errno(err, "%s: cannot open", src);
    s2s_ofile *of = s2s_ofile_open(dst, err);
    if (!of) {
        fclose(in);
        return err ? err->code : S2S_EIO;
    }
    s2s_sha256 c;
    s2s_sha256_init(&c);
    static __thread unsigned char buf[1 << 16];
    size_t n;
    int rc = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
        s2s_sha256_update(&c, buf, n);
        if (fwrite(buf, 1, n, s2s_ofile_fp(of)) != n) {
            rc = s2s_err_errno(err, "%s: write failed", dst);
            break;
        }
    }
    if (rc == 0 && ferror(in)) rc = s2s_err_errno(err, "%s: read failed", src);
    fclose(in);
    if (rc == 0 && want_sha) {
        unsigned char d[32];
        char hex[65];
        s2s_sha256_final(&c, d);
        for (int i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", d[i]);
        if (strcmp(hex, want_sha) != 0)
            rc = s2s_err_set(err, S2S_EDATA,
                             "%s: SHA-256 %s while copying, dataset.json says %s (changed "
                             "during the merge?)",
                             src, hex, want_sha);
    }
    if (rc) {
        s2s_ofile_abort(of);
        return rc;
    }
    return s2s_ofile_commit(of, err);
}

/* Hard link src to dst, or copy when the file system cannot (another file system, no hard
 * links). *linked is set to 1 for a link. */
static int place_file(const char *src, const char *dst, const char *want_sha, int copy, int *linked,
                      s2s_err *err) {
    *linked = 0;
    if (!copy) {
        if (link(src, dst) == 0) {
            *linked = 1;
            return 0;
        }
        if (errno != EXDEV && errno != EPERM && errno != EMLINK && errno != ENOTSUP &&
            errno != EACCES)
            return s2s_err_errno(err, "%s: cannot link to %s", src, dst);
    }
    return copy_file(src, dst, want_sha, err);
}

/* Removes the flat temporary directory and everything in it. */
static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            char *p = join(dir, de->d_name);
            if (p) unlink(p);
            free(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

static int dir_empty(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *de;
    int empty = 1;
    while (empty && (de = readdir(d)))
        empty = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
    closedir(d);
    return empty;
}

/* Builds the combined dataset.json (keys in docs/shards.md order, then "merge"). */
static json_t *combined(const mpart **order, size_t n, json_t *counts, json_t *prov,
                        s2s_merge_stats *st, s2s_err *err) {
    json_t *shards = json_array();
    uint64_t members = 0;
    json_t *plist = json_array();
    if (!shards || !plist) goto nomem;
    st->samples = st->pairs = st->shards = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *ds = order[i]->ds;
        json_t *sh = json_object_get(ds, "shards");
        size_t j;
        json_t *e;
        json_array_foreach(sh, j, e) if (json_array_append(shards, e) != 0) goto nomem;
        st->samples += (uint64_t)json_integer_value(json_object_get(ds, "samples"));
        st->pairs += (uint64_t)json_integer_value(json_object_get(ds, "pairs"));
        members += (uint64_t)json_integer_value(json_object_get(ds, "members"));
        st->shards += json_array_size(sh);
        if (json_array_append_new(
                plist,
                json_pack("{s:s, s:s, s:I, s:I}", "part", order[i]->partstr, "dataset_sha256",
                          order[i]->ds_sha, "shards", (json_int_t)json_array_size(sh), "samples",
                          json_integer_value(json_object_get(ds, "samples")))) != 0)
            goto nomem;
    }
    const json_t *ref = order[0]->ds;
    json_t *build = json_deep_copy(json_object_get(ref, "build"));
    if (build) {
        json_t *bp = json_object_get(build, "params");
        json_object_del(bp, "pattern"); /* differs per part: NAME-pIofN-%06d.tar */
        json_object_del(bp, "part");
    }
    json_t *recipe = json_deep_copy(json_object_get(ref, "recipe"));
    /* no "part": the merged directory is a finished build of the whole recipe (s2s-build
     * then only verifies it) */
    if (recipe) json_object_del(recipe, "part");
    json_t *ds = json_pack(
        "{s:s, s:O?, s:I, s:I, s:I, s:I, s:O, s:o, s:o*}", "format", "s2s-shards", "format_version",
        json_object_get(ref, "format_version"), "shard_count", (json_int_t)st->shards, "samples",
        (json_int_t)st->samples, "members", (json_int_t)members, "pairs", (json_int_t)st->pairs,
        "counts", counts, "shards", shards, "build", build);
    shards = NULL;
    if (!ds) {
        json_decref(recipe);
        goto nomem;
    }
    if (recipe && json_object_set_new(ds, "recipe", recipe) != 0) goto nomem_ds;
    if (json_object_set_new(ds, "merge",
                            json_pack("{s:s, s:s, s:I, s:o}", "tool", "s2s-shard merge", "version",
                                      S2S_VERSION, "parts", (json_int_t)order[0]->p.count,
                                      "part_list", plist)) != 0) {
        plist = NULL;
        goto nomem_ds;
    }
    plist = NULL;
    if (json_object_set(ds, "provenance", prov) != 0) goto nomem_ds;
    return ds;
nomem_ds:
    json_decref(ds);
nomem:
    json_decref(shards);
    json_decref(plist);
    s2s_err_set(err, S2S_ENOMEM, "out of memory");
    return NULL;
}

int s2s_merge(const char *const *dirs, size_t n, const char *out, const s2s_merge_opts *opts,
              s2s_merge_stats *stats, s2s_err *err) {
    s2s_merge_stats st;
    memset(&st, 0, sizeof st);
    if (n == 0) return s2s_err_set(err, S2S_EINVAL, "merge: name at least one part directory");
    mpart *parts = calloc(n, sizeof *parts);
    const mpart **order = NULL;
    json_t *tools = json_object(), *prov = json_array(), *counts = json_object(),
           *names = json_object(), *ds = NULL;
    s2s_idset *keys = s2s_idset_new();
    char *tmp = NULL, *outc = NULL;
    int rc = 0, made_tmp = 0;
    if (!parts || !tools || !prov || !counts || !names || !keys) {
        rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
        goto out;
    }
    /* 1. every argument is a part; all parts of one dataset */
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = load_part(dirs[i], &parts[i], err);
        if (rc == 0 && i > 0) rc = compare_parts(&parts[0], &parts[i], err);
    }
    if (rc) goto out;
    /* 2. same tool versions, same synthesis/tokenizer parameters (codebook): checked first in
     * the order given (a part of another build is named before any missing part) */
    {
        const mpart **given = calloc(n, sizeof(const mpart *));
        json_t *t2 = json_object(), *p2 = json_array();
        if (!given || !t2 || !p2) rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
        for (size_t i = 0; i < n && rc == 0; i++)
            given[i] = &parts[i];
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = check_provenance(given, i, t2, p2, err);
        free(given);
        json_decref(t2);
        json_decref(p2);
        if (rc) goto out;
    }
    /* 3. parts 0..N-1 each exactly once */
    unsigned N = parts[0].p.count;
    order = calloc(N, sizeof(const mpart *));
    if (!order) {
        rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned I = parts[i].p.index;
        if (order[I]) {
            rc = s2s_err_set(err, S2S_EDATA, "part %s given twice: %s and %s%s", parts[i].partstr,
                             order[I]->dir, parts[i].dir,
                             strcmp(order[I]->ds_sha, parts[i].ds_sha) == 0 ? " (the same part)"
                                                                            : "");
            goto out;
        }
        order[I] = &parts[i];
    }
    if (n != N) {
        char miss[600] = "";
        size_t len = 0, nm = 0;
        for (unsigned I = 0; I < N; I++) {
            if (order[I]) continue;
            if (nm++ < 12 && len + 40 < sizeof miss)
                len += (size_t)snprintf(miss + len, sizeof miss - len, "%s%u/%u",
                                        nm > 1 ? ", " : "", I, N);
        }
        if (nm > 12) snprintf(miss + len, sizeof miss - len, ", ... (%zu in all)", nm);
        rc = s2s_err_set(err, S2S_EDATA, "%zu of %u parts given; missing: %s", n, N, miss);
        goto out;
    }
    /* 4. the provenance union in part order (so dataset.json does not depend on the order of
     * the arguments) */
    for (unsigned I = 0; I < N && rc == 0; I++)
        rc = check_provenance(order, I, tools, prov, err);
    if (rc) goto out;
    /* 5. every part verifies; no sample twice; each sample in its own part */
    for (unsigned I = 0; I < N && rc == 0; I++) {
        if ((rc = stopped(opts, err)) != 0) break;
        if ((rc = s2s_dataset_verify(order[I]->dir, err)) < 0) {
            s2s_err_prefix(err, "%s (part %s) does not verify: ", order[I]->dir, order[I]->partstr);
            break;
        }
        rc = check_keys(order, I, keys, names, err);
        if (rc == 0) rc = add_counts(counts, json_object_get(order[I]->ds, "counts"), err);
    }
    if (rc) goto out;
    /* 6. the output: assembled under OUT.tmp-merge-PID, renamed to OUT at the end */
    outc = strdup(out);
    if (!outc) {
        rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t l = strlen(outc); l > 1 && outc[l - 1] == '/'; l--)
        outc[l - 1] = 0;
    struct stat ost;
    if (lstat(outc, &ost) == 0 && !(S_ISDIR(ost.st_mode) && dir_empty(outc))) {
        rc = s2s_err_set(err, S2S_EINVAL,
                         "%s exists and is not an empty directory (merge writes a new dataset "
                         "directory)",
                         outc);
        goto out;
    }
    for (unsigned I = 0; I < N; I++) {
        char ra[4096], rb[4096];
        if (realpath(order[I]->dir, ra) && realpath(outc, rb) && strcmp(ra, rb) == 0) {
            rc = s2s_err_set(err, S2S_EINVAL, "%s: output is one of the parts", outc);
            goto out;
        }
    }
    size_t tl = strlen(outc) + 40;
    tmp = malloc(tl);
    if (!tmp) {
        rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(tmp, tl, "%s.tmp-merge-%ld", outc, (long)getpid());
    if (mkdir(tmp, 0755) != 0) {
        rc = s2s_err_errno(err, "%s: cannot create directory", tmp);
        goto out;
    }
    made_tmp = 1;
    int copy = opts ? opts->copy : 0;
    for (unsigned I = 0; I < N && rc == 0; I++) {
        size_t j;
        json_t *e;
        json_array_foreach(json_object_get(order[I]->ds, "shards"), j, e) {
            if ((rc = stopped(opts, err)) != 0) break;
            const char *fk[2][2] = {{"name", "sha256"}, {"index", "index_sha256"}};
            for (int f = 0; f < 2 && rc == 0; f++) {
                const char *name = json_string_value(json_object_get(e, fk[f][0]));
                const char *sha = json_string_value(json_object_get(e, fk[f][1]));
                char *src = join(order[I]->dir, name), *dst = join(tmp, name);
                int linked = 0;
                if (!src || !dst)
                    rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
                else
                    rc = place_file(src, dst, sha, copy, &linked, err);
                if (rc == 0) (linked ? st.linked++ : st.copied++);
                free(src);
                free(dst);
            }
            if (rc) break;
        }
    }
    if (rc) goto out;
    ds = combined(order, N, counts, prov, &st, err);
    if (!ds) {
        rc = err ? err->code : S2S_ENOMEM;
        goto out;
    }
    {
        char *dp = join(tmp, "dataset.json");
        /* sealed and in the canonical form s2s_dataset_verify requires */
        rc = dp ? s2s_dataset_write(dp, ds, err) : s2s_err_set(err, S2S_ENOMEM, "out of memory");
        free(dp);
    }
    if (rc) goto out;
    if ((rc = stopped(opts, err)) != 0) goto out;
    /* the result must be what `s2s-shard verify DIR` accepts */
    if ((rc = s2s_dataset_verify(tmp, err)) < 0) {
        s2s_err_prefix(err, "merged directory does not verify: ");
        goto out;
    }
    if (rename(tmp, outc) != 0) {
        rc = s2s_err_errno(err, "%s: cannot rename %s to it", outc, tmp);
        goto out;
    }
    made_tmp = 0;
    st.parts = N;
out:
    if (made_tmp) remove_dir(tmp);
    if (stats) *stats = st;
    json_decref(ds);
    for (size_t i = 0; parts && i < n; i++)
        json_decref(parts[i].ds);
    free(parts);
    free(order);
    json_decref(tools);
    json_decref(prov);
    json_decref(counts);
    json_decref(names);
    s2s_idset_free(keys);
    free(tmp);
    free(outc);
    return rc;
}
