/* backend_losses.c — losses:FILE: precomputed upstream S2SBench losses (result.jsonl).
 *
 * Upstream writes one JSON line per (uttid, key): {"uttid": 17 or "17_x", "key": null or "A",
 * "loss": [mean NLL per token], "ppl": [...]}. Items imported with `s2s-import s2sbench` keep the
 * uttid (on each candidate for the story sets, on the item for CMMLU) and CMMLU candidates keep
 * their key (A-D); the join is on (uttid, key). The loss is already a per-token mean, so replies
 * carry S2S_REPLY_MEAN_ONLY. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s2s/backend.h"
#include "s2s/util.h"

typedef struct loss_ent {
    char *k;     /* "uttid\x1fkey" */
    double loss; /* loss[0] */
    int has;     /* 0 when "loss" was empty or null (upstream skips those) */
    long line;
} loss_ent;

typedef struct loss_table {
    char *path;
    loss_ent *tab;
    size_t cap, n;
} loss_table;

static void table_free(loss_table *L) {
    if (!L) return;
    for (size_t i = 0; i < L->cap; i++)
        free(L->tab ? L->tab[i].k : NULL);
    free(L->tab);
    free(L->path);
    free(L);
}

/* Text of an uttid or key value into buf: integers in decimal, strings as they are. Returns 1,
 * 0 for null/absent (buf ""), -1 for any other type. */
static int value_text(const json_t *v, char *buf, size_t n) {
    if (!v || json_is_null(v)) {
        buf[0] = 0;
        return 0;
    }
    if (json_is_integer(v)) {
        snprintf(buf, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return 1;
    }
    if (json_is_string(v)) {
        snprintf(buf, n, "%s", json_string_value(v));
        return 1;
    }
    return -1;
}

static char *join_key(const char *uttid, const char *key) {
    size_t a = strlen(uttid), b = strlen(key);
    char *k = malloc(a + b + 2);
    if (!k) return NULL;
    memcpy(k, uttid, a);
    k[a] = '\x1f';
    memcpy(k + a + 1, key, b + 1);
    return k;
}

static size_t slot(const loss_table *L, const char *k) {
    size_t i = (size_t)s2s_fnv1a64(k) & (L->cap - 1);
    while (L->tab[i].k && strcmp(L->tab[i].k, k) != 0)
        i = (i + 1) & (L->cap - 1);
    return i;
}

static int grow(loss_table *L, s2s_err *err) {
    size_t nc = L->cap ? L->cap * 2 : 1024;
    loss_ent *old = L->tab;
    size_t oc = L->cap;
    L->tab = calloc(nc, sizeof *L->tab);
    if (!L->tab) {
        L->tab = old;
        return s2s_err_set(err, S2S_ENOMEM, "losses: out of memory");
    }
    L->cap = nc;
    for (size_t i = 0; i < oc; i++)
        if (old[i].k) L->tab[slot(L, old[i].k)] = old[i];
    free(old);
    return 0;
}

static int lookup_field(const json_t *item, const json_t *cand, const char *name, char *buf,
                        size_t n) {
    int r = value_text(json_object_get(cand, name), buf, n);
    if (r != 0) return r;
    return value_text(json_object_get(item, name), buf, n);
}

typedef struct losses_be {
    loss_table *t[S2S_MODE_COUNT]; /* the distinct files */
    int nt;
    loss_table *mode[S2S_MODE_COUNT]; /* file for each mode, NULL = none */
} losses_be;

static void losses_destroy(void *self) {
    losses_be *B = self;
    if (!B) return;
    for (int i = 0; i < B->nt; i++)
        table_free(B->t[i]);
    free(B);
}

static int losses_answer(void *self, const s2s_request *rq, s2s_reply *out, s2s_err *err) {
    loss_table *L = ((losses_be *)self)->mode[rq->mode];
    (void)err;
    const json_t *cands = json_object_get(rq->item, "candidates");
    const json_t *cand = json_array_get(cands, rq->cand);
    char uttid[256], key[256];
    if (lookup_field(rq->item, cand, "uttid", uttid, sizeof uttid) != 1) {
        out->status = S2S_EDATA;
        snprintf(out->msg, sizeof out->msg,
                 "candidate %u has no upstream uttid (import with s2s-import s2sbench)", rq->cand);
        return 0;
    }
    if (lookup_field(rq->item, cand, "key", key, sizeof key) < 0) key[0] = 0;
    char *k = join_key(uttid, key);
    if (!k) return s2s_err_set(err, S2S_ENOMEM, "losses: out of memory");
    size_t s = slot(L, k);
    free(k);
    if (!L->tab[s].k) {
        out->status = S2S_EDATA;
        snprintf(out->msg, sizeof out->msg, "no loss for uttid %s%s%s in %s", uttid,
                 key[0] ? " key " : "", key, L->path);
        return 0;
    }
    if (!L->tab[s].has) {
        out->status = S2S_EDATA;
        snprintf(out->msg, sizeof out->msg, "%s:%ld: empty loss for uttid %s", L->path,
                 L->tab[s].line, uttid);
        return 0;
    }
    out->nll = L->tab[s].loss;
    out->ntok = 0;
    out->flags = S2S_REPLY_MEAN_ONLY;
    return 0;
}

static int losses_needs(void *self, s2s_mode mode, unsigned *needs, s2s_err *err) {
    losses_be *B = self;
    if (!B->mode[mode])
        return s2s_err_set(err, S2S_EUNSUP,
                           "no losses file for mode %s (give one as losses:%s=FILE,...)",
                           s2s_mode_name(mode), s2s_mode_name(mode));
    *needs = S2S_NEED_UTTID;
    return 0;
}

static const s2s_backend_ops losses_ops = {
    .kind = "losses", .needs = losses_needs, .answer = losses_answer, .destroy = losses_destroy};

static int load(loss_table *L, const char *path, s2s_err *err) {
    unsigned char *data;
    size_t len;
    int rc = s2s_read_file(path, &data, &len, err);
    if (rc) return rc;
    char *p = (char *)data, *end = p + len;
    long line = 0;
    rc = 0;
    while (p < end && !rc) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        line++;
        char *s = p;
        p += n + (nl ? 1 : 0);
        size_t k = 0;
        while (k < n && (s[k] == ' ' || s[k] == '\t' || s[k] == '\r'))
            k++;
        if (k == n) continue;
        json_error_t je;
        json_t *o = json_loadb(s, n, JSON_ALLOW_NUL, &je);
        if (!o || !json_is_object(o)) {
            rc = s2s_err_set(err, S2S_EFORMAT, "%s:%ld: not a JSON object%s%s", path, line,
                             o ? "" : ": ", o ? "" : je.text);
            json_decref(o);
            break;
        }
        char ut[256], ky[256];
        int ru = value_text(json_object_get(o, "uttid"), ut, sizeof ut);
        int rk = value_text(json_object_get(o, "key"), ky, sizeof ky);
        json_t *lv = json_object_get(o, "loss");
        double loss = 0;
        int has = 0;
        if (ru != 1) {
            rc = s2s_err_set(err, S2S_EFORMAT, "%s:%ld: \"uttid\" must be an integer or string",
                             path, line);
        } else if (rk < 0) {
            rc = s2s_err_set(err, S2S_EFORMAT, "%s:%ld: \"key\" must be a string or null", path,
                             line);
        } else if (json_is_array(lv)) {
            /* upstream reads loss[0]; an empty list means "no loss" (skipped upstream) */
            json_t *v = json_array_get(lv, 0);
            if (v && json_is_number(v)) {
                loss = json_number_value(v);
                has = 1;
            } else if (v && !json_is_null(v)) {
                rc = s2s_err_set(err, S2S_EFORMAT, "%s:%ld: \"loss\"[0] is not a number", path,
                                 line);
            }
        } else if (json_is_number(lv)) {
            loss = json_number_value(lv);
            has = 1;
        } else if (lv && !json_is_null(lv)) {
            rc = s2s_err_set(err, S2S_EFORMAT, "%s:%ld: \"loss\" must be a list of numbers", path,
                             line);
        } else if (!lv) {
            rc = s2s_err_set(err, S2S_EFORMAT, "%s:%ld: no \"loss\" field", path, line);
        }
        json_decref(o);
        if (rc) break;
        if ((L->n + 1) * 2 > L->cap && (rc = grow(L, err))) break;
        char *key = join_key(ut, ky);
        if (!key) {
            rc = s2s_err_set(err, S2S_ENOMEM, "losses: out of memory");
            break;
        }
        size_t sl = slot(L, key);
        if (L->tab[sl].k) {
            rc = s2s_err_set(err, S2S_EDATA, "%s:%ld: duplicate uttid %s%s%s (first at line %ld)",
                             path, line, ut, ky[0] ? " key " : "", ky, L->tab[sl].line);
            free(key);
            break;
        }
        L->tab[sl] = (loss_ent){key, loss, has, line};
        L->n++;
    }
    free(data);
    if (!rc && L->n == 0) rc = s2s_err_set(err, S2S_EDATA, "%s: no losses in the file", path);
    return rc;
}

static loss_table *table_open(const char *path, char sha[65], s2s_err *err) {
    loss_table *L = calloc(1, sizeof *L);
    if (!L || !(L->path = strdup(path))) {
        free(L);
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        return NULL;
    }
    if (s2s_sha256_file(path, sha, err) || grow(L, err) || load(L, path, err)) {
        table_free(L);
        return NULL;
    }
    return L;
}

/* "FILE" (every mode) or "MODE=FILE,MODE=FILE" (upstream writes one result.jsonl per mode:
 * t2t and s2t in one run give the degradation). */
s2s_backend *s2s_backend_losses_open(const char *spec, const char *path, const char *opts,
                                     s2s_err *err) {
    if (opts && *opts) {
        s2s_err_set(err, S2S_EINVAL, "--lm '%s': losses takes no options", spec);
        return NULL;
    }
    losses_be *B = calloc(1, sizeof *B);
    char *list = strdup(path);
    if (!B || !list) {
        free(B);
        free(list);
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        return NULL;
    }
    char sha[65], hex[65] = "";
    s2s_sha256 ctx;
    s2s_sha256_init(&ctx);
    const char *eq = strchr(list, '=');
    s2s_mode m = S2S_MODE_T2T;
    char mname[8];
    size_t ml = eq ? (size_t)(eq - list) : 0;
    int per_mode = eq && ml < sizeof mname;
    if (per_mode) {
        memcpy(mname, list, ml);
        mname[ml] = 0;
        per_mode = s2s_mode_parse(mname, &m, NULL) == 0;
    }
    if (!per_mode) {
        loss_table *L = table_open(path, sha, err);
        if (!L) goto fail;
        B->t[B->nt++] = L;
        for (int i = 0; i < S2S_MODE_COUNT; i++)
            B->mode[i] = L;
        memcpy(hex, sha, sizeof hex);
    } else {
        char *save = NULL;
        for (char *p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
            char *e = strchr(p, '=');
            if (!e) {
                s2s_err_set(err, S2S_EINVAL, "--lm '%s': '%s' is not MODE=FILE", spec, p);
                goto fail;
            }
            *e = 0;
            if (s2s_mode_parse(p, &m, err)) {
                s2s_err_prefix(err, "--lm '%s': ", spec);
                goto fail;
            }
            if (B->mode[m]) {
                s2s_err_set(err, S2S_EINVAL, "--lm '%s': mode %s given twice", spec, p);
                goto fail;
            }
            loss_table *L = table_open(e + 1, sha, err);
            if (!L) goto fail;
            B->t[B->nt++] = L;
            B->mode[m] = L;
            s2s_sha256_update(&ctx, p, strlen(p));
            s2s_sha256_update(&ctx, "=", 1);
            s2s_sha256_update(&ctx, sha, 64);
            s2s_sha256_update(&ctx, "\n", 1);
        }
        unsigned char d[32];
        s2s_sha256_final(&ctx, d);
        for (int i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", d[i]);
    }
    free(list);
    return s2s_backend_new(&losses_ops, B, spec, hex, err);
fail:
    free(list);
    losses_destroy(B);
    return NULL;
}
